import { z } from 'zod';
import { defineType } from '../define.ts';

const refList = z.union([z.string(), z.array(z.string())]).transform((v) => (Array.isArray(v) ? v : [v]));

export const transitionType = defineType({
  name: 'transition',
  key: 'name',
  description:
    'Puts `resource` through a temporary state (`attributes`) before any `prior_to` node changes (DESIGN §5.7).',
  schema: z.strictObject({
    name: z.string().min(1),
    resource: z.string().min(1).describe('a reference to the resource to put in the temporary state'),
    attributes: z.record(z.string(), z.unknown()).describe('laid over the resource\'s declared attributes'),
    prior_to: refList.describe('references: the transition happens only if one of them would change'),
  }),
  references: {
    resource: { kind: 'transition', says: (from, to) => `${from} puts ${to} through a transition`, shows: 'puts' },
    prior_to: { kind: 'transition', says: (from, to) => `${from} has prior_to ${to}`, shows: 'before' },
  },
  stateful: false,
  inSync: { status: 'skipped', reason: 'prior_to in sync' },
});

export default transitionType;
