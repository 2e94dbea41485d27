import { z } from 'zod';
import { defineType, update } from '../define.ts';

/** RFC 1123 labels joined by dots, at most 64 characters (the kernel's limit for a node name). */
const HOST_NAME = /^(?=.{1,64}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

export const hostnameType = defineType({
  name: 'hostname',
  key: 'name',
  // Without a running system (an offline root) only the name kept across reboots is set.
  description: "The machine's host name: the running one and the one it keeps across reboots.",
  schema: z.strictObject({
    name: update(z.string().regex(HOST_NAME, 'a host name is letters, digits and hyphens, in dot-separated labels, at most 64 characters')),
  }),
  reads: () => ({ paths: ['/etc/hostname'], content: true, commands: true }),
  stateful: false,
});

export default hostnameType;
