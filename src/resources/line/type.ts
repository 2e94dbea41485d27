import { z } from 'zod';
import { absolutePath, ensurePresence } from '../attributes.ts';
import { defineType } from '../type.ts';

export const lineType = defineType({
  name: 'line',
  key: 'path',
  description: 'One line in a file: replace the first line matching `match`, else append `text`.',
  schema: z.strictObject({
    path: absolutePath.describe('absolute path of the file'),
    text: z.string().describe('the whole line, without its newline'),
    match: z
      .string()
      .refine((re) => {
        try {
          new RegExp(re);
          return true;
        } catch {
          return false;
        }
      }, 'not a valid regular expression')
      .optional()
      .describe('a regular expression: replace the first matching line, else append'),
    ensure: ensurePresence,
    create: z.boolean().default(true).describe('create the file if it is missing (default true)'),
  }),
  changes: { text: 'update', ensure: 'update' },
  reads: (a) => ({ paths: [String(a.path)], content: true }),
  overlap: 'paths',
  stateful: false,
  identity: (a) => `${String(a.path)}#${String(a.match ?? a.text)}`,
});
