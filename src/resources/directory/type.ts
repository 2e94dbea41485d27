import { z } from 'zod';
import { absolutePath, ensurePresence, fileMode, userName } from '../attributes.ts';
import { defineType } from '../type.ts';

export const directoryType = defineType({
  name: 'directory',
  key: 'path',
  description: 'A directory.',
  schema: z.strictObject({
    path: absolutePath.describe('absolute path of the directory'),
    ensure: ensurePresence,
    mode: fileMode.optional(),
    owner: userName.optional(),
    group: userName.optional(),
    parents: z.boolean().default(true).describe('create missing parent directories (default true)'),
  }),
  changes: { ensure: 'update', mode: 'update', owner: 'update', group: 'update' },
  reads: (a) => ({ paths: [String(a.path)] }),
  overlap: 'paths-and-parents',
  stateful: false,
});
