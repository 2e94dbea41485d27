import { z } from 'zod';
import { defineType, ensurePresence } from '../type.ts';

export const groupType = defineType({
  name: 'group',
  key: 'name',
  description: 'A local group.',
  schema: z.strictObject({
    name: z.string().min(1),
    ensure: ensurePresence,
    gid: z.number().int().nonnegative().optional(),
    system: z.boolean().optional(),
  }),
  changes: { ensure: 'update', gid: 'update' },
  stateful: false,
});
