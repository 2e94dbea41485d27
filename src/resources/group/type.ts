import { z } from 'zod';
import { ensurePresence } from '../attributes.ts';
import { defineType, update } from '../define.ts';

export const groupType = defineType({
  name: 'group',
  key: 'name',
  description: 'A local group.',
  schema: z.strictObject({
    name: z.string().min(1).refine((s) => !/[:\s,]/.test(s), 'must not contain ":", "," or white space'),
    ensure: update(ensurePresence),
    gid: update(z.number().int().nonnegative().optional()),
    system: z.boolean().optional().describe('a system group (groupadd -r, addgroup -S; pw has none)'),
  }),
  stateful: false,
});

export default groupType;
