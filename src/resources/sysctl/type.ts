import { z } from 'zod';
import { confPaths } from './paths.ts';
import { defineType, update } from '../define.ts';

export const sysctlType = defineType({
  name: 'sysctl',
  key: 'name',
  description:
    'A kernel parameter, set now and kept across reboots: on Linux in /etc/sysctl.d/99-cairn.conf (one line per ' +
    'parameter Cairn manages, other lines kept), on FreeBSD in /etc/sysctl.conf. Values are compared with runs of ' +
    'whitespace as one space ("4 4 1 7" matches what sysctl prints with tabs).',
  schema: z.strictObject({
    name: z.string().regex(/^[A-Za-z0-9_][^\s=]*$/, 'a sysctl name such as net.ipv4.ip_forward (no spaces or "=")'),
    value: update(z.union([z.string(), z.number()]).transform(String).refine((v) => !/[\r\n]/.test(v), 'a sysctl value must be one line')),
    persist: update(z.boolean().default(true).describe('keep it across reboots (false: set it now only, and drop the line Cairn kept)')),
  }),
  // The file that keeps the values (where the OS tables say), and the `sysctl` command.
  reads: (_attributes, os) => ({ paths: confPaths(os), content: true, commands: true }),
  stateful: false,
  // Sets the running system's state (now), besides any file it keeps.
  needs: ['running-system'],
});

export default sysctlType;
