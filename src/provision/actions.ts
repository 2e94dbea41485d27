/**
 * The privileged side of a build (DESIGN §10): each mount, loop device, volume, root folder and
 * definition is written to the build's journal before it is made, then pushed on the undo stack.
 * A failed or interrupted build unwinds the stack in reverse; a build killed outright (SIGKILL)
 * leaves its journal, from which the next `cairn provision` undoes what is left (`recoverBuilds`).
 *
 * Mounts are made inside the build's own mount namespace (nsenter into the child), so they can
 * never leak into the host's: they end with the namespace even when nothing is left to unwind
 * them. Loop devices, volumes and files are global, and are what the journal is for.
 */
import { execFile } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, rmdirSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** One entry of the undo stack (and of the journal). */
export type Action =
  | { op: 'outdir'; path: string }
  | { op: 'mount'; target: string; source: string }
  | { op: 'loop'; image: string; device?: string }
  | { op: 'volume'; path: string }
  | { op: 'rootfs'; path: string }
  | { op: 'file'; path: string }
  | { op: 'definition'; path: string }
  | { op: 'namespace'; file: string }
  | { op: 'cache'; path: string };

/** What a build keeps when it succeeds; everything else is undone at its end. */
const OUTPUT_OPS = new Set<Action['op']>(['outdir', 'volume', 'rootfs', 'file', 'definition']);
export const isOutput = (a: Action) => OUTPUT_OPS.has(a.op);

export function describeAction(a: Action): string {
  switch (a.op) {
    case 'outdir': return `output folder ${a.path}`;
    case 'mount': return `mount ${a.source} on ${a.target}`;
    case 'loop': return `loop device ${a.device ?? '(attaching)'} for ${a.image}`;
    case 'volume': return `volume ${a.path}`;
    case 'rootfs': return `root folder ${a.path}`;
    case 'file': return `output file ${a.path}`;
    case 'definition': return `definition ${a.path}`;
    case 'namespace': return `mount namespace ${a.file} (enter with: nsenter --mount=${a.file})`;
    case 'cache': return `cache entry being written ${a.path}`;
  }
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function command(argv: string[], input?: string): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 127) : 0;
      resolve({ code, stdout, stderr: err && code === 127 && !stderr ? err.message : stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Runs `argv`, throwing with its output when it fails. */
export async function must(argv: string[]): Promise<string> {
  const r = await command(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join(' / ')}`);
  return r.stdout;
}

/** A line of the journal: the build itself, an action about to be made, made, or undone. */
export type JournalLine =
  | { t: 'build'; name: string; pid: number; start: string; profile: string; outputDir: string; started: string }
  | { t: 'child'; pid: number; ns: string }
  | { t: 'do'; seq: number; action: Action }
  | { t: 'done'; seq: number; action: Action }
  | { t: 'undone'; seq: number }
  | { t: 'kept' }
  | { t: 'committed' };

export const JOURNAL = 'journal.jsonl';

/** Append-only and synced line by line: what it says was begun is on disk before it is begun. */
export class Journal {
  private fd: number | undefined;
  constructor(readonly path: string) {
    this.fd = openSync(path, 'a', 0o600);
  }

  write(line: JournalLine): void {
    if (this.fd === undefined) throw new Error(`the journal ${this.path} is closed`);
    writeSync(this.fd, `${JSON.stringify(line)}\n`);
    fsyncSync(this.fd);
  }

  /** Idempotent: a build closes it however it ends. */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

export function readJournal(path: string): JournalLine[] {
  const out: JournalLine[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as JournalLine);
    } catch {
      // The last line of a build killed mid-write: whatever it began was not begun yet.
    }
  }
  return out;
}

/** The start time of process `pid` (field 22 of /proc/PID/stat), to tell it from a later one of the same pid. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function mountNamespaceOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/** Whether process `pid` sees a mount on `path` (mountinfo escapes blanks as octal). */
function seesMountOn(pid: number, path: string): boolean {
  try {
    const escaped = path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
    return readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').some((l) => l.split(' ')[4] === escaped);
  } catch {
    return false;
  }
}

/**
 * Every process in the build's mount namespace: in namespace `ns` (`mnt:[N]`) and seeing the
 * build's own mount of its work folder. The second test matters: a namespace's number is reused
 * once it is gone, and another namespace that got it must never be taken for the build's.
 */
export function processesIn(ns: string, workDir: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (mountNamespaceOf(pid) === ns && seesMountOn(pid, workDir)) out.push(pid);
  }
  return out;
}

/**
 * Kills every process left in the build's mount namespace (the script, the commands it ran and
 * anything they started), so the namespace ends and its mounts with it; returns once they are
 * gone. A namespace no process holds is already gone.
 */
export async function endNamespace(ns: string, workDir: string): Promise<void> {
  for (let round = 0; ; round++) {
    const left = processesIn(ns, workDir);
    if (left.length === 0) return;
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone meanwhile.
      }
    }
    // A killed process leaves /proc once its parent reaps it; poll for that, briefly.
    if (round > 200) throw new Error(`processes ${left.join(', ')} of the build's namespace ${ns} do not end`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Loop devices backed by `image`. */
export async function loopsOf(image: string): Promise<string[]> {
  const r = await command(['losetup', '-n', '-O', 'NAME', '-j', image]);
  return r.code === 0 ? r.stdout.split('\n').map((l) => l.trim()).filter(Boolean) : [];
}

/** Partition devices the kernel has for loop device `device` (/dev/loop3p1, …), in order. */
export function partitionsOf(device: string): string[] {
  const base = device.replace(/^\/dev\//, '');
  try {
    return readdirSync(`/sys/block/${base}`).filter((e) => e.startsWith(`${base}p`))
      .sort((a, b) => Number(a.slice(base.length + 1)) - Number(b.slice(base.length + 1))).map((p) => `/dev/${p}`);
  } catch {
    return [];
  }
}

export async function detachLoop(device: string): Promise<void> {
  if (partitionsOf(device).length > 0) await command(['partx', '-d', device]);
  const r = await command(['losetup', '-d', device]);
  // Already detached (by the script, or autoclear) is as good as detached.
  if (r.code !== 0 && !/No such device|not a block device|No such device or address/i.test(r.stderr)) {
    throw new Error(`losetup -d ${device}: ${r.stderr.trim()}`);
  }
}

/**
 * Undoes `action` with the build's namespace held by `nsPid` (undefined: the namespace is gone,
 * and its mounts with it).
 */
export async function undo(action: Action, nsPid: number | undefined): Promise<void> {
  switch (action.op) {
    case 'mount': {
      if (nsPid === undefined) return;
      const r = await command(['nsenter', '--target', String(nsPid), '--mount', '--', 'umount', '-R', action.target]);
      if (r.code !== 0 && !/not mounted|no mount point|No such file/i.test(r.stderr)) {
        // The namespace ended meanwhile (the script gone): its mounts went with it.
        if (mountNamespaceOf(nsPid) === undefined) return;
        throw new Error(`umount ${action.target}: ${r.stderr.trim()}`);
      }
      return;
    }
    case 'loop': {
      const devices = action.device ? [action.device] : await loopsOf(action.image);
      for (const device of devices) {
        const backing = await loopsOf(action.image);
        if (backing.includes(device)) await detachLoop(device);
      }
      return;
    }
    case 'volume':
    case 'file':
    case 'definition':
      rmSync(action.path, { force: true });
      return;
    case 'cache':
      // The entry written aside: gone already once it was renamed into place.
      await must(['rm', '-rf', '--one-file-system', action.path]);
      return;
    case 'rootfs':
      // --one-file-system: never into anything still mounted below it.
      await must(['rm', '-rf', '--one-file-system', action.path]);
      return;
    case 'outdir':
      try {
        rmdirSync(action.path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      }
      return;
    case 'namespace': {
      const r = await command(['umount', action.file]);
      if (r.code !== 0 && !/not mounted|no mount point/i.test(r.stderr)) throw new Error(`umount ${action.file}: ${r.stderr.trim()}`);
      rmSync(action.file, { force: true });
      return;
    }
  }
}

/** What a journal says is still there: actions begun and not undone, in the order they were made. */
export function leftOver(lines: JournalLine[]): { seq: number; action: Action }[] {
  const begun = new Map<number, Action>();
  for (const line of lines) {
    if (line.t === 'do') begun.set(line.seq, line.action);
    else if (line.t === 'done') begun.set(line.seq, line.action);
    else if (line.t === 'undone') begun.delete(line.seq);
  }
  return [...begun].map(([seq, action]) => ({ seq, action }));
}

export interface LeftBuild {
  name: string;
  workDir: string;
  state: 'running' | 'interrupted' | 'kept' | 'committed';
  pid?: number;
  actions: Action[];
}

/** The builds in `buildsDir` and what each left. */
export function listBuilds(buildsDir: string): LeftBuild[] {
  if (!existsSync(buildsDir)) return [];
  const out: LeftBuild[] = [];
  for (const name of readdirSync(buildsDir).sort()) {
    const workDir = join(buildsDir, name);
    const journal = join(workDir, JOURNAL);
    if (!existsSync(journal) || !statSync(workDir).isDirectory()) continue;
    const lines = readJournal(journal);
    const head = lines.find((l) => l.t === 'build');
    const alive = head?.t === 'build' && processStart(head.pid) === head.start;
    // Kept before running: a build kept by a process that lives on (a test, an agent) is over.
    const state = lines.some((l) => l.t === 'committed') ? 'committed'
      : lines.some((l) => l.t === 'kept') ? 'kept'
        : alive ? 'running' : 'interrupted';
    out.push({
      name, workDir, state,
      ...(head?.t === 'build' ? { pid: head.pid } : {}),
      actions: state === 'committed' ? [] : leftOver(lines).map((l) => l.action),
    });
  }
  return out;
}

/**
 * Clears a build that is no longer running: ends what is left of its namespace, undoes its
 * actions in reverse and removes its work folder. Returns what was undone.
 */
export async function clearBuild(build: LeftBuild): Promise<Action[]> {
  const lines = readJournal(join(build.workDir, JOURNAL));
  for (const line of lines) if (line.t === 'child') await endNamespace(line.ns, build.workDir);
  const actions = [...build.actions].reverse();
  // A kept namespace first: its mounts hold the loop devices.
  actions.sort((a, b) => Number(b.op === 'namespace') - Number(a.op === 'namespace'));
  for (const action of actions) await undo(action, undefined);
  rmSync(build.workDir, { recursive: true, force: true });
  return actions;
}
