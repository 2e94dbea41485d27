/** Attribute schemas several types share (zod): loaded when sites are validated, never by a run. */
import { z } from 'zod';

export const ensurePresence = z.enum(['present', 'absent']).default('present').describe('present (default) or absent');
export const fileMode = z
  .string()
  .regex(/^0?[0-7]{3,4}$/, 'a mode is an octal string such as "0644"')
  .describe('octal permission bits as a string, e.g. "0644"');
export const userName = z.union([z.string().min(1), z.number().int().nonnegative()]).transform(String);
export const absolutePath = z.string().min(1).refine((p) => p.startsWith('/'), 'must be an absolute path');

