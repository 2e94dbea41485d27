import { z } from 'zod';
import { defineType } from '../type.ts';

export const hostnameType = defineType({
  name: 'hostname',
  key: 'name',
  description: "The machine's host name.",
  schema: z.strictObject({ name: z.string().min(1) }),
  changes: { name: 'update' },
  stateful: false,
});
