import { z } from 'zod';
import { absolutePath, ensurePresence } from '../attributes.ts';
import { defineType, update } from '../define.ts';

export const symlinkType = defineType({
  name: 'symlink',
  key: 'path',
  description: 'A symbolic link.',
  schema: z
    .strictObject({
      path: absolutePath.describe('absolute path of the link'),
      target: update(z.string().min(1).optional().describe('what the link points to (required unless absent)')),
      ensure: update(ensurePresence),
      force: z.boolean().default(false).describe('replace a file that is in the way'),
    })
    .refine((a) => a.ensure === 'absent' || a.target !== undefined, {
      message: 'target is required',
      path: ['target'],
    }),
  reads: (a) => ({ paths: [String(a.path)] }),
  overlap: 'paths',
  stateful: false,
  // Implicit ordering (DESIGN §6): after the folder above it, when it is in the run.
  autoRequires: [{ attribute: 'path', type: 'directory', parent: true }],
});

export default symlinkType;
