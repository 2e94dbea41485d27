/** Small file helpers for the machine Cairn runs on. */
import { readFileSync } from 'node:fs';

/** A text file's content, or `fallback` when it cannot be read (missing, not a file). */
export function readTextOr(path: string, fallback = ''): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}
