import { z } from 'zod';
import { absolutePath, ensurePresence, fileMode, userName } from '../attributes.ts';
import { defineType, update } from '../define.ts';

export const directoryType = defineType({
  name: 'directory',
  key: 'path',
  description: 'A directory.',
  schema: z.strictObject({
    path: absolutePath.describe('absolute path of the directory'),
    ensure: update(ensurePresence),
    mode: update(fileMode.optional()),
    owner: update(userName.optional()),
    group: update(userName.optional()),
    parents: z.boolean().default(true).describe('create missing parent directories (default true)'),
  }),
  reads: (a) => ({ paths: [String(a.path)] }),
  overlap: 'paths-and-parents',
  stateful: false,
  // Implicit ordering (DESIGN §6): after the folder above it, and its owner and group, when they are in the run.
  autoRequires: [{ attribute: 'path', type: 'directory', parent: true }, { attribute: 'owner', type: 'user' }, { attribute: 'group', type: 'group' }],
});

export default directoryType;
