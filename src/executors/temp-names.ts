/**
 * Names of the temp files this process writes before renaming them into place:
 * `.<name>.cairn-tmp.<tag>.<n>`, where the tag (pid and a random part, once per process) is
 * recorded in the run lock's holder, so a run that takes the lock over from a killed one can
 * find what that one left behind (DESIGN §5.11) and nothing else.
 *
 * O_EXCL is what guards against a name already taken (it never follows a symlink); the random
 * part keeps a process that reuses a crashed one's pid off its leftovers, and a sweep of the
 * crashed run's tag off this process's files. Math.random is enough for that (node:crypto costs
 * milliseconds to load): the names follow each other anyway, so no draw could make them
 * unpredictable.
 */
import { lstatSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

let tag: string | undefined;
let count = 0;

/** This process's tag: `<pid>.<random hex>`. */
export function tempTag(): string {
  tag ??= `${process.pid}.${Math.floor(Math.random() * 2 ** 32).toString(16)}`;
  return tag;
}

/** A tag as a holder may record it; anything else is not swept (it would go into a glob). */
export const TEMP_TAG = /^\d+\.[0-9a-f]+$/;

/** A name for a temp file beside `path`, so the final rename stays on one file system. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.cairn-tmp.${tempTag()}.${(count++).toString(36)}`);
}

/**
 * Removes the entries of `folders` named `.*.cairn-tmp.<tag>.*` (files and symlinks, never a
 * folder); a folder that is missing or cannot be read is passed over. Returns how many went.
 */
export function sweepTempFiles(tag: string, folders: Iterable<string>): number {
  if (!TEMP_TAG.test(tag)) return 0;
  const marker = `.cairn-tmp.${tag}.`;
  let removed = 0;
  for (const folder of new Set(folders)) {
    let names: string[];
    try {
      names = readdirSync(folder);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!name.startsWith('.') || name.indexOf(marker, 1) < 1) continue;
      try {
        unlinkSync(join(folder, name));
        removed++;
      } catch {
        // A folder by that name, or gone meanwhile: not a temp file of the dead run's to remove.
      }
    }
  }
  return removed;
}

/** Whether process `pid` exists on this machine (EPERM: it does, but belongs to someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Temp files no run lock covers (the compile cache's, the command shell's folder) carry the pid
 * of the process that made them in their name instead: `pattern`'s first group. Removes the
 * entries of `folder` it matches whose process is gone, when they are this user's own and of
 * `kind` (never a symlink, which is not followed); a live process's (a run going on beside
 * this one) stays, whatever its age. A pid reused since only keeps a leftover longer. Returns
 * how many went; a folder that cannot be read is passed over.
 */
export function sweepOrphans(folder: string, pattern: RegExp, kind: 'file' | 'directory'): number {
  let names: string[];
  try {
    names = readdirSync(folder);
  } catch {
    return 0;
  }
  const uid = process.getuid?.();
  let removed = 0;
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.[1] ?? NaN);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || pidAlive(pid)) continue;
    const path = join(folder, name);
    try {
      const s = lstatSync(path);
      if ((kind === 'file' ? !s.isFile() : !s.isDirectory()) || (uid !== undefined && s.uid !== uid)) continue;
      rmSync(path, { recursive: kind === 'directory', force: true });
      removed++;
    } catch {
      // Gone meanwhile, or not ours to remove: left as it is.
    }
  }
  return removed;
}
