import { z } from 'zod';
import { defineType } from '../type.ts';

export const serviceType = defineType({
  name: 'service',
  key: 'name',
  description: 'A system service; notified, it restarts (or reloads when `reload: true`).',
  schema: z.strictObject({
    name: z.string().min(1),
    ensure: z.enum(['running', 'stopped']).optional(),
    enable: z.boolean().optional().describe('start at boot'),
    reload: z.boolean().default(false).describe('a notification reloads instead of restarting'),
  }),
  changes: { ensure: 'update', enable: 'update' },
  stateful: false,
  refresh: 'restart (or reload)',
});
