/**
 * Files that may hold rendered secrets (the compile cache, the SQLite store) are kept private:
 * 0600 files in 0700 folders, whatever the umask (open() and mkdir() only ever take permissions
 * away, and a umask of 0077 or 0022 must give the same result), and ones an older Cairn left
 * 0644/0755 are closed when they are next opened.
 */
import { type Stats, chmodSync, closeSync, constants, fchmodSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export const PRIVATE_FILE = 0o600;
export const PRIVATE_DIR = 0o700;

function chmodIfNeeded(path: string, mode: number, s: Stats | undefined): void {
  if (!s || (s.mode & 0o7777) === mode) return;
  try {
    chmodSync(path, mode);
  } catch (err) {
    // Another user's file (a store another user opens to read), or a read-only file system: not
    // ours to change, and nothing can be written there either.
    if (!['EPERM', 'EROFS'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
  }
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Creates `dir` (and missing folders above it, each 0700) or closes an existing one to 0700.
 * Returns whether it had to be closed (an existing folder that was more open).
 */
export function privateDir(path: string): boolean {
  const dir = resolve(path);
  const before = statOrUndefined(dir);
  if (!before) {
    const first = mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR });
    // Every folder mkdir made gets the exact mode: the umask may have taken some of it.
    for (let d = dir; first !== undefined; d = dirname(d)) {
      chmodSync(d, PRIVATE_DIR);
      if (d === first || d === dirname(d)) break;
    }
    return false;
  }
  chmodIfNeeded(dir, PRIVATE_DIR, before);
  return (before.mode & 0o077) !== 0;
}

/** Makes an existing file 0600 (a missing one is passed over). */
export function privateFile(path: string): void {
  chmodIfNeeded(path, PRIVATE_FILE, statOrUndefined(path));
}

/** Creates `path` empty and 0600 if it does not exist (so a program that opens it later keeps that mode). */
export function createPrivateFile(path: string): void {
  try {
    const fd = openSync(path, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, PRIVATE_FILE);
    try {
      fchmodSync(fd, PRIVATE_FILE);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    privateFile(path);
  }
}
