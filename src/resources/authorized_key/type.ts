import { z } from 'zod';
import { ensurePresence } from '../attributes.ts';
import { defineType, update } from '../define.ts';
import { parseKeyLine } from './keys.ts';

export const authorizedKeyType = defineType({
  name: 'authorized_key',
  key: 'key',
  description: "An SSH public key in a user's ~/.ssh/authorized_keys (other lines of the file are kept).",
  schema: z.strictObject({
    key: z.string().min(1)
      .refine((k) => !k.includes('\n') && parseKeyLine(k)?.options === undefined && parseKeyLine(k) !== undefined,
        'a public key line: "<type> <base64> [comment]", options in `options`')
      .describe('the public key line, e.g. "ssh-ed25519 AAAA… comment"; identity is its type and body, not its comment'),
    user: z.string().min(1),
    ensure: update(ensurePresence),
    options: update(z.string().optional().describe('key options, e.g. from="10.0.0.0/8" ("" for none)')),
  }),
  stateful: false,
  // Implicit ordering (DESIGN §6): after its user, when it is in the run.
  autoRequires: [{ attribute: 'user', type: 'user' }],
  identity: (a) => `${String(a.user)}#${String(a.key).trim().split(/\s+/).slice(0, 2).join(' ')}`,
});

export default authorizedKeyType;
