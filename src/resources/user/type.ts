import { z } from 'zod';
import { defineType, ensurePresence } from '../type.ts';

export const userType = defineType({
  name: 'user',
  key: 'name',
  description: 'A local user account.',
  schema: z.strictObject({
    name: z.string().min(1),
    ensure: ensurePresence,
    uid: z.number().int().nonnegative().optional(),
    gid: z.union([z.number().int().nonnegative(), z.string()]).optional().describe('primary group'),
    groups: z.array(z.string()).optional().describe('supplementary groups (the exact list)'),
    home: z.string().optional(),
    shell: z.string().optional(),
    comment: z.string().optional(),
    system: z.boolean().optional(),
  }),
  changes: { ensure: 'update', uid: 'update', gid: 'update', groups: 'update', home: 'update', shell: 'update', comment: 'update' },
  stateful: false,
});
