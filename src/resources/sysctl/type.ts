import { z } from 'zod';
import { defineType } from '../type.ts';

export const sysctlType = defineType({
  name: 'sysctl',
  key: 'name',
  description: 'A kernel parameter, set now and kept across reboots.',
  schema: z.strictObject({
    name: z.string().min(1),
    value: z.union([z.string(), z.number()]).transform(String),
    persist: z.boolean().default(true),
  }),
  changes: { value: 'update', persist: 'update' },
  stateful: false,
});
