import { z } from 'zod';
import { absolutePath, ensurePresence } from '../attributes.ts';
import { defineType, update } from '../define.ts';

export const lineType = defineType({
  name: 'line',
  key: 'path',
  description: 'One line in a file: replace the first line matching `match`, else append `text`.',
  schema: z.strictObject({
    path: absolutePath.describe('absolute path of the file'),
    text: update(z.string().describe('the whole line, without its newline')),
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
    ensure: update(ensurePresence),
    create: z.boolean().default(true).describe('create the file if it is missing (default true)'),
    sensitive: z.boolean().optional().describe('the text is sensitive: never shown, and the line is named by its match or id'),
  }),
  reads: (a) => ({ paths: [String(a.path)], content: true }),
  overlap: 'paths',
  stateful: false,
  // Implicit ordering (DESIGN §6): after the folder above the file, when it is in the run.
  autoRequires: [{ attribute: 'path', type: 'directory', parent: true }],
  // A sensitive text (from a `!secret`, or `sensitive: true`) never goes into the ref: the line is
  // named by its `match`, else its part's `id`.
  identity: (a, { sensitive, id }) => {
    if (a.match !== undefined) return `${String(a.path)}#${String(a.match)}`;
    if (!sensitive.includes('text')) return `${String(a.path)}#${String(a.text)}`;
    if (id !== undefined) return `${String(a.path)}#${id}`;
    return { error: 'its text is sensitive, so it cannot name the line: give the part a `match` or an `id`' };
  },
  hiddenWhenSensitive: ['text'],
});

export default lineType;
