import { z } from 'zod';
import { ensurePresence } from '../attributes.ts';
import { defineType, update } from '../define.ts';

/** A passwd(5) field: a colon or a line break would corrupt the database. */
const passwdField = z.string().refine((s) => !/[:\n]/.test(s), 'must not contain ":" or a line break');
const accountName = z.string().min(1).refine((s) => !/[:\s,]/.test(s), 'must not contain ":", "," or white space');

export const userType = defineType({
  name: 'user',
  key: 'name',
  description: 'A local user account.',
  schema: z.strictObject({
    name: accountName,
    ensure: update(ensurePresence),
    uid: update(z.number().int().nonnegative().optional()),
    gid: update(z.union([z.number().int().nonnegative(), accountName]).optional().describe('primary group, by name or number')),
    groups: update(z.array(accountName).optional().describe('supplementary groups: the exact list (the user leaves groups not listed)')),
    home: update(z.string().min(1).refine((s) => !/[:\n]/.test(s), 'must not contain ":" or a line break').optional().describe('home directory (changing it does not move the old one)')),
    shell: update(passwdField.optional()),
    comment: update(passwdField.optional().describe('the GECOS field')),
    system: z.boolean().optional().describe('a system account (useradd -r, adduser -S; pw has none)'),
    create_home: z.boolean().optional().describe('make the home when the user is created; default true, false for system users'),
    remove_home: z.boolean().optional().describe('with ensure: absent, remove the home too (default false: the home is kept)'),
  }),
  stateful: false,
  // Implicit ordering (DESIGN §6): after its primary and supplementary groups, when they are in the run.
  autoRequires: [{ attribute: 'gid', type: 'group' }, { attribute: 'groups', type: 'group' }],
});

export default userType;
