import { z } from 'zod';
import { defineType, ensurePresence } from '../type.ts';

export const authorizedKeyType = defineType({
  name: 'authorized_key',
  key: 'key',
  description: "An SSH public key in a user's authorized_keys.",
  schema: z.strictObject({
    key: z.string().min(1).describe('the public key line, e.g. "ssh-ed25519 AAAA… comment"'),
    user: z.string().min(1),
    ensure: ensurePresence,
    options: z.string().optional().describe('key options, e.g. from="10.0.0.0/8"'),
  }),
  changes: { ensure: 'update', options: 'update' },
  stateful: false,
  identity: (a) => `${String(a.user)}#${String(a.key).split(/\s+/).slice(0, 2).join(' ')}`,
});
