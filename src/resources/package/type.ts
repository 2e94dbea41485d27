import { z } from 'zod';
import { defineType } from '../type.ts';

export const packageType = defineType({
  name: 'package',
  key: 'name',
  description: 'A system package; the name is OS-agnostic and mapped through the OS tables.',
  schema: z.strictObject({
    name: z.string().min(1),
    ensure: z.enum(['present', 'absent', 'latest']).default('present'),
    version: z.string().optional().describe('an exact version to hold'),
  }),
  changes: { ensure: 'update', version: 'update' },
  stateful: false,
});
