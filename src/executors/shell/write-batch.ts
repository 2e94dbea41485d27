/**
 * Writes sent together (DESIGN §7: writes are pipelined; statuses are collected before the next
 * read): the files and links several nodes write in one turn of the engine go to the far side as
 * one request, and a folder that gets two or more of them gets them through a stage folder of its
 * own, so one `mv` puts them all in place instead of one `mv` each. On the far side a process is
 * what a write costs (the shell's builtins write the bytes); a first run of 742 files paid 674 `mv`
 * processes, one per file.
 *
 * Every write keeps its own status, as if sent alone: its bytes go to a temp file (the stage
 * folder is private to this request, made with mkdir so no one else's name is taken over), are
 * checked and synced by the same rules, and the rename is atomic per file (`mv` renames each
 * source on its own); one that stays in the stage after the `mv` failed to move (status 22). The
 * stage folders are named as temp files are (`.…cairn-tmp.TAG.…`), so a run killed mid-request
 * leaves nothing the next one's sweep would not find, and the shell's exit removes them
 * (lock.ts, `__cairn_t`).
 */
import { basename, dirname } from 'node:path';
import { shellQuote } from '../../lib/shell.ts';
import { END_SECTION, splitSections } from './remote-script.ts';

/**
 * What is sent for one operation: a write (`make`: how to make its new file or link at a temp
 * path, checked and ready for the rename, removing it if that fails), or any other file operation
 * (`run`: a fragment run where it stands). A write's rename may come after the operations queued
 * behind it (its folder's stage is moved at the end): the executor never queues an operation
 * on a path at, above or below a queued write's (executor.ts, `queueOp`).
 */
export type BatchedOp = { path: string } & (
  | { make(temp: { raw: string; quoted: string }): string; run?: undefined; folder?: undefined }
  | { run: string; make?: undefined; folder?: undefined }
  /** `mkdir -p` with the default mode: those next to each other in a batch share one process. */
  | { folder: true; make?: undefined; run?: undefined }
);

/** A write's status, as a request of its own would have answered. */
export interface BatchedStatus {
  code: number;
  output: Buffer;
}

/** The status of a write that was made but stayed in its stage: its rename failed. */
export const MOVE_FAILED = 22;

/** Names for the request's temp files and stage folders, beside what they are for. */
export interface TempNames {
  /** A temp file beside `path`. */
  temp(path: string): string;
  /** A stage folder inside `folder`. */
  stage(folder: string): string;
}

/**
 * The request for `writes` (no two writes for one path), in order. Its output: one section per write (what its
 * commands printed), one for the renames, then a line of the writes' statuses.
 */
export function batchRequest(writes: readonly BatchedOp[], names: TempNames): string {
  const perFolder = new Map<string, number>();
  for (const w of writes) if (w.make) perFolder.set(dirname(w.path), (perFolder.get(dirname(w.path)) ?? 0) + 1);
  // A stage costs its folder one mkdir and one rm shared by the whole request, and one mv: worth it from two writes on.
  const stages = new Map<string, string>();
  for (const [folder, n] of perFolder) if (n >= 2) stages.set(folder, names.stage(folder));
  const stageList = [...stages.values()].map(shellQuote).join(' ');
  const lines: string[] = [];
  if (stages.size) lines.push(`__me=$(mkdir -m 0700 -- ${stageList} 2>&1)`, `__cairn_t=${shellQuote(stageList)}`);
  const placed: { index: number; stage: string; name: string }[] = [];
  writes.forEach((w, i) => {
    if (w.run !== undefined) {
      lines.push(`${w.run}\n__w${i}=$?; ${END_SECTION}`);
      return;
    }
    if (w.folder) {
      // The first of a run of folders makes them all; each is then there, or fails with what mkdir said.
      if (!writes[i - 1]?.folder) {
        let end = i;
        while (writes[end + 1]?.folder) end++;
        lines.push(`__mk=$(mkdir -p -- ${writes.slice(i, end + 1).map((f) => shellQuote(f.path)).join(' ')} 2>&1)`);
      }
      lines.push(`if [ -d ${shellQuote(w.path)} ]; then __w${i}=0; else printf '%s\n' "$__mk"; __w${i}=1; fi; ${END_SECTION}`);
      return;
    }
    const folder = dirname(w.path);
    const stage = stages.get(folder);
    if (stage !== undefined) {
      const raw = `${stage}/${basename(w.path)}`;
      // The stage is made at the request's start; an operation before this write may have made
      // its folder since (or removed and made it again): then it is made here.
      lines.push(`__cairn_stage ${shellQuote(stage)} ${shellQuote(folder)} && ${w.make({ raw, quoted: shellQuote(raw) })}; __w${i}=$?; ${END_SECTION}`);
      placed.push({ index: i, stage, name: basename(w.path) });
    } else {
      const raw = names.temp(w.path);
      lines.push(`__cairn_t=${shellQuote(`${stageList} ${shellQuote(raw)}`)}; ${writeAlone(w.path, raw, w.make)}; __w${i}=$?; __cairn_t=${shellQuote(stageList)}; ${END_SECTION}`);
    }
  });
  for (const [folder, stage] of stages) {
    const here = placed.filter((p) => p.stage === stage).map((p) => shellQuote(p.name));
    lines.push(`__cairn_place ${shellQuote(stage)} ${shellQuote(folder)} ${here.join(' ')}`);
  }
  for (const p of placed) {
    const file = shellQuote(`${p.stage}/${p.name}`);
    const target = shellQuote(writes[p.index]!.path);
    // Moved: gone from the stage, and in place.
    lines.push(`[ $__w${p.index} != 0 ] || { [ ! -e ${file} ] && [ ! -L ${file} ] && { [ -e ${target} ] || [ -L ${target} ]; }; } || __w${p.index}=${MOVE_FAILED}`);
  }
  if (stages.size) lines.push(`rm -rf -- ${stageList}`);
  lines.push(`__cairn_t=; ${END_SECTION}`, `echo ${writes.map((_, i) => `$__w${i}`).join(' ')}; ${END_SECTION}`);
  return lines.join('\n');
}

/**
 * A write to `path` through a temp file of its own (`temp`, raw) beside it, as a write sent alone
 * makes it (in a batch, or with its read-back): made by `make`, then renamed into place by
 * `__cairn_rename`, which removes the temp file if the rename fails.
 */
export function writeAlone(path: string, temp: string, make: NonNullable<BatchedOp['make']>): string {
  const quoted = shellQuote(temp);
  return `__cairn_dir ${shellQuote(dirname(path))} && ${make({ raw: temp, quoted })} && __cairn_rename ${quoted} ${shellQuote(path)}`;
}

/** Each write's status from the request's output; undefined when the output does not fit the request. */
export function parseBatchReply(output: Buffer, nonce: string, count: number): BatchedStatus[] | undefined {
  const sections = splitSections(output, nonce);
  if (sections.length !== count + 2) return undefined;
  const codes = sections[count + 1]!.toString().trim().split(' ').map(Number);
  if (codes.length !== count || codes.some((c) => !Number.isInteger(c))) return undefined;
  const renames = sections[count]!;
  return codes.map((code, i) => ({ code, output: code === MOVE_FAILED ? Buffer.concat([sections[i]!, renames]) : sections[i]! }));
}
