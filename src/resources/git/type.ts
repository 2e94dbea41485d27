import { z } from 'zod';
import { absolutePath, ensurePresence, userName } from '../attributes.ts';
import { defineType, update } from '../define.ts';

/** A word git is handed as an argument: never one it would read as an option. */
const notAnOption = (what: string) => z.string().min(1).refine((v) => !v.startsWith('-'), `${what} cannot start with '-'`);

export const gitType = defineType({
  name: 'git',
  key: 'path',
  description:
    'A git checkout at a branch, tag or commit of a repository, cloned and updated by the target itself. ' +
    'It changes only when HEAD moves, and never discards local changes unless `force: true`.',
  schema: z
    .strictObject({
      path: absolutePath.describe('the folder of the checkout'),
      ensure: update(ensurePresence),
      repository: update(notAnOption('a repository').optional().describe('the URL or path git clones from (required unless absent)')),
      revision: update(notAnOption('a revision').refine((v) => !/\s/.test(v), 'a revision has no spaces')
        .default('HEAD').describe("a branch, tag or commit; default: the remote's HEAD (its default branch)")),
      depth: z.number().int().positive().optional().describe('fetch only this many commits of history (a shallow clone)'),
      owner: update(userName.optional().describe('owns the checkout; git runs as this user')),
      group: update(userName.optional().describe('group of the checkout (chown -R)')),
      force: z.boolean().default(false).describe('discard local changes and commits when the checkout must move (default false: fail instead)'),
    })
    .refine((a) => a.ensure === 'absent' || a.repository !== undefined, { message: 'repository is required', path: ['repository'] }),
  // Reading runs git (and asks the remote): a requisite that would change makes a plan's reading provisional.
  reads: (a) => ({ paths: [String(a.path)], commands: true }),
  stateful: false,
  refresh: 'fetches again and moves to what the revision names now',
});

export default gitType;
