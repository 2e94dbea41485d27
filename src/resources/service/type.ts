import { z } from 'zod';
import { defineType, update } from '../define.ts';

export const serviceType = defineType({
  name: 'service',
  key: 'name',
  description: 'A system service; notified, it restarts (or reloads when `reload: true`).',
  schema: z.strictObject({
    name: z.string().min(1),
    ensure: update(z.enum(['running', 'stopped']).optional()),
    enable: update(z.boolean().optional().describe('start at boot')),
    reload: z.boolean().default(false).describe('a notification reloads instead of restarting'),
  }),
  stateful: false,
  // Implicit ordering (DESIGN §6): after the package of the same OS-agnostic name, when it is in the run.
  autoRequires: [{ attribute: 'name', type: 'package' }],
  // Starting and stopping needs a running system; `enable` works on the files (an offline root).
  attributeNeeds: { ensure: ['running-system'] },
  refresh: 'restart (or reload)',
});

export default serviceType;
