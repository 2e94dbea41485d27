/**
 * The local executor: Node's fs and child_process, in-process (no process per file check).
 * File operations use the synchronous fs calls: each is a few microseconds, where an async call
 * waits a thread-pool round trip. The one exception is the fsync before a write's rename (made
 * where the rename replaces content older than the run, see unsynced-writes.ts): it waits on the
 * disk, so it runs in the thread pool while the engine goes on with other nodes
 * (Executor.overlap), batched so the file system commits those writes together.
 */
import { type Stats, chmodSync, chownSync, closeSync, constants as fsConstants, existsSync, fchmodSync, fstatSync, fsync, lchownSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { basename } from 'node:path';
import { commandEnv } from '../lib/command-env.ts';
import { sha256Hex, sha256Stream } from '../lib/digest.ts';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { CommandShell, type SpawnFunction } from './command-shell.ts';
import { childStream, type ShellStream } from './shell/stream.ts';
import { ContentIndex } from './content-index.ts';
import { localFacts } from './local-facts.ts';
import { IdLookup } from './accounts.ts';
import { readTextOr } from '../lib/files.ts';
import { withPathFor } from '../lib/shell.ts';
import { killPoint } from '../lib/test-kill.ts';
import { collectOutput, OUTPUT_LIMIT, TargetError, type Executor, type ExecutorCapability, type LockAttempt, type LockClaim, type RunOptions, type RunResult, type Stat, type WriteOptions, VALIDATE_FAILED } from './types.ts';
import { UnsyncedWrites } from './unsynced-writes.ts';
import { tryLockDir, unlockDir } from './lock-dir.ts';
import { sweepTempFiles, tempPathFor, tempTag } from './temp-names.ts';


/**
 * fsyncs issued together, once the engine has started every node it can (setImmediate runs after
 * the current callback and its promise jobs): the file system then makes the whole batch durable
 * in one or two journal commits, where one fsync at a time costs a commit per file. Each waits in
 * libuv's thread pool (sized in launch.ts), so the process goes on meanwhile.
 */
class SyncBatch {
  private waiting: { fd: number; resolve: () => void; reject: (err: Error) => void }[] = [];

  sync(fd: number): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.waiting.push({ fd, resolve, reject }) === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.waiting;
    this.waiting = [];
    for (const w of batch) fsync(w.fd, (err) => (err ? w.reject(err) : w.resolve()));
  }
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/**
 * A read the file system refused: the node fails naming the path. Only ENOENT and ENOTDIR mean
 * "absent" (DESIGN §5.9): a path behind a folder Cairn may not search is not known to be absent,
 * and a plan that said it would create it (or an `exec` whose `creates` it is that ran) would lie.
 */
function refused(err: unknown, path: string): unknown {
  const code = errno(err);
  return code === 'EACCES' || code === 'EPERM' ? new TargetError(`permission denied: ${path}`, code) : err;
}

/** lstat, with a refusal named (refused()); undefined when absent. */
function lstat(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch (err) {
    throw refused(err, path);
  }
}

/**
 * child_process (and net, which it loads) is loaded on the first command: a converged run of
 * files and directories never needs it, and loading it is a measurable part of start-up.
 */
let spawnFn: SpawnFunction | undefined;
function loadSpawn(): SpawnFunction {
  // getBuiltinModule, not import(): no ES module loader is set up for it (the CLI is CommonJS).
  spawnFn ??= process.getBuiltinModule('node:child_process').spawn;
  return spawnFn;
}

/** Reused for reading file content: most managed files are small, so one read fills it. */
let sharedBuffer = Buffer.allocUnsafe(64 * 1024);

/** The shared buffer, grown to `size` bytes (up to 16 MiB; larger files are read in pieces). */
function readBuffer(size: number): Buffer {
  if (size > sharedBuffer.length && size <= 16 * 1024 * 1024) sharedBuffer = Buffer.allocUnsafe(size);
  return size <= sharedBuffer.length ? sharedBuffer.subarray(0, size) : Buffer.allocUnsafe(size);
}

/** Whether the open file is still the one `s` describes (nothing replaced or wrote it since). */
function sameFile(fd: number, s: Stats): boolean {
  const now = fstatSync(fd);
  return now.dev === s.dev && now.ino === s.ino && now.size === s.size && now.ctimeMs === s.ctimeMs;
}

/** Streams an open file into a hash; `sizeHint` (from a stat just made) sizes the buffer for one read of data. */
function hashFd(fd: number, sizeHint: number): string {
  const buffer = readBuffer(Math.min(sizeHint + 1, 16 * 1024 * 1024));
  const hash = sha256Stream();
  for (;;) {
    const n = readSync(fd, buffer, 0, buffer.length, null);
    if (n === 0) break;
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest('hex');
}

/** Opens a file seen as regular for reading; undefined if it is gone or became a symlink since. */
function openRegular(path: string): number | undefined {
  try {
    return openSync(path, READ_FLAGS);
  } catch (err) {
    if (['ENOENT', 'ELOOP', 'ENOTDIR'].includes(errno(err) ?? '')) return undefined;
    throw refused(err, path);
  }
}

/** Opens never follow a symlink where a regular file was seen (it could have been swapped in between). */
/** holds(): files of a run compared byte for byte though their hash is known, and up to what size. */
export const DIRECT_COMPARES = 32;
const DIRECT_COMPARE_BYTES = 16 * 1024;
const READ_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0);

/** Why a program could not be started, in the words sh would use. */
function spawnFailure(err: Error, program: string, cwd: string | undefined): string {
  if (errno(err) === 'ENOENT') return cwd !== undefined && !existsSync(cwd) ? `no such directory: ${cwd}` : `${program}: not found`;
  if (errno(err) === 'EACCES') return `${program}: permission denied`;
  return err.message;
}


export interface LocalExecutorOptions {
  /** Keeps what file contents were verified, by stat, in this file (see content-index.ts). */
  contentIndex?: { file: string; trust: boolean; save: boolean };
}

export class LocalExecutor implements Executor {
  readonly name = 'local';
  readonly capabilities: readonly ExecutorCapability[] = ['running-system', 'cairn'];
  /** Writes in flight at once: enough for the file system to commit many per journal flush. */
  readonly overlap = 16;
  private readonly syncs = new SyncBatch();
  private readonly unsynced = new UnsyncedWrites();
  /** Starts most commands, for less than a spawn costs (command-shell.ts). */
  private readonly commands = new CommandShell((...args) => loadSpawn()(...args), () => commandEnv(), OUTPUT_LIMIT);
  private readonly ids = new IdLookup(async () => ({ passwd: readTextOr('/etc/passwd'), group: readTextOr('/etc/group') }));
  /**
   * What `stat` saw of recent paths (null: nothing), for the `sha256`, `holds` or `writeFile` of
   * the same path that usually follows (a file's content is read right after its kind and mode,
   * and a missing file is written right after it was found missing): it saves a second lstat.
   * A map, not one entry, because the engine overlaps nodes (their reads interleave). Any change
   * made through this executor forgets it all; it is kept small.
   */
  private readonly seen = new Map<string, Stats | null>();
  /** holds() answers given by reading a file whose hash the content index knew. */
  private directCompares = 0;
  /** What past runs verified files held (content-index.ts); absent: every file is read. */
  private readonly index?: ContentIndex;

  constructor(options: LocalExecutorOptions = {}) {
    if (options.contentIndex) {
      const { file, ...indexOptions } = options.contentIndex;
      this.index = new ContentIndex(file, indexOptions);
    }
  }

  /** The stat `stat` just took of `path` (once), else a fresh lstat. */
  private takeStat(path: string): Stats | undefined {
    const s = this.seen.get(path);
    if (s !== undefined) {
      this.seen.delete(path);
      return s ?? undefined;
    }
    return lstat(path);
  }

  /** Records what was just read through `fd` when the index may keep it: an old enough stat, still the open file's. */
  private remember(path: string, s: Stats, fd: number, sha256: () => string): void {
    // An entry recorded with this stat holds this content already: no hash to compute (holds()).
    if (this.index?.recordable(s) && sameFile(fd, s) && !this.index.recordedAs(path, s)) this.index.record(path, s, sha256());
  }

  private forgetStats(): void {
    this.seen.clear();
  }

  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const uid = opts.user !== undefined ? await this.userId(opts.user) : undefined;
    if (opts.user !== undefined && uid === undefined) return { code: 127, stdout: '', stderr: `no such user: ${opts.user}` };
    // Run as the user's primary group too, not root's.
    const gid = opts.user !== undefined ? await this.ids.primaryGroup(opts.user) : undefined;
    this.forgetStats();
    const result = (this.commands.accepts(argv, opts) ? await this.commands.run(argv, opts) : undefined) ?? await this.spawned(argv, opts, uid, gid);
    // A command may have added or removed users and groups (useradd): read them again when asked.
    this.ids.forget();
    return result;
  }

  /** A process of its own whose stdio is the stream (a nested target's shell, executors/nested.ts). */
  async openProcess(argv: string[]): Promise<ShellStream> {
    this.forgetStats();
    const child = loadSpawn()(argv[0]!, argv.slice(1), { env: commandEnv(), stdio: 'pipe' }) as ChildProcessWithoutNullStreams;
    return childStream(child);
  }

  /** Runs a command in a process of Node's own (user, stdin, timeout, abort signal). */
  private spawned(argv: string[], opts: RunOptions, uid: number | undefined, gid: number | undefined): Promise<RunResult> {
    const spawn = loadSpawn();
    return new Promise((resolve) => {
      const child = spawn(argv[0]!, argv.slice(1), {
        cwd: opts.cwd,
        env: commandEnv(opts.env),
        stdio: [opts.stdin !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
        ...(uid !== undefined ? { uid } : {}),
        ...(gid !== undefined ? { gid } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      const output = collectOutput(child.stdout!, child.stderr!, opts.onOutput);
      let timedOut = false;
      if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
      const timer = opts.timeoutMs ? setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, opts.timeoutMs) : undefined;
      child.on('error', (err) => {
        if (timer) clearTimeout(timer);
        resolve({ code: errno(err) === 'ENOENT' ? 127 : 126, stdout: output.stdout, stderr: output.stderr + spawnFailure(err, argv[0]!, opts.cwd) });
      });
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        // As sh reports a command a signal ended: 128 + its number.
        resolve({ code: code ?? (signal ? 128 + (constants.signals[signal] ?? 9) : 1), ...output, ...(timedOut ? { timedOut } : {}) });
      });
    });
  }

  async readFile(path: string): Promise<Buffer | undefined> {
    try {
      return readFileSync(path);
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return undefined;
      throw refused(err, path);
    }
  }

  async writeFile(path: string, data: string | Buffer, opts: WriteOptions = {}): Promise<void> {
    const existing = this.takeStat(path);
    this.forgetStats();
    const sync = this.unsynced.mustSync(path, existing !== undefined);
    const kept = existing?.isFile() ? existing : undefined;
    const temp = tempPathFor(path);
    const mode = opts.mode ?? (kept ? kept.mode & 0o7777 : undefined);
    const fd = openSync(temp, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, mode ?? 0o666);
    try {
      writeFileSync(fd, data);
      // open() applies the umask; an explicit or kept mode must be exact.
      if (mode !== undefined) fchmodSync(fd, mode);
      if (sync) await this.syncs.sync(fd);
    } catch (err) {
      closeSync(fd);
      rmSync(temp, { force: true });
      throw err;
    }
    closeSync(fd);
    try {
      if (opts.owner !== undefined || opts.group !== undefined) await this.chown(temp, opts.owner, opts.group);
      else if (kept) {
        try {
          chownSync(temp, kept.uid, kept.gid);
        } catch {
          // Keeping the old owner is best effort when not root.
        }
      }
      if (opts.validate !== undefined) await this.validate(temp, opts.validate);
      killPoint('before-rename', basename(path));
      renameSync(temp, path);
    } catch (err) {
      rmSync(temp, { force: true });
      throw err;
    }
    killPoint('after-rename', basename(path));
    if (!sync) this.unsynced.add(path);
  }

  /** Runs a write's `validate` command on its temp file (WriteOptions.validate). */
  private async validate(temp: string, command: string): Promise<void> {
    const r = await this.run(['/bin/sh', '-c', withPathFor(command, temp)]);
    if (r.code === 0 && !r.timedOut) return;
    throw new TargetError(`validate exited with ${r.code}\n${r.stdout}${r.stderr}`.trimEnd(), VALIDATE_FAILED);
  }

  async stat(path: string): Promise<Stat | undefined> {
    const s = lstat(path);
    if (this.seen.size >= 64) this.seen.clear();
    this.seen.set(path, s ?? null);
    if (!s) return undefined;
    const type = s.isSymbolicLink() ? 'symlink' : s.isFile() ? 'file' : s.isDirectory() ? 'directory' : 'other';
    return { type, mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, size: s.size };
  }

  async readLink(path: string): Promise<string | undefined> {
    try {
      return readlinkSync(path);
    } catch (err) {
      if (['ENOENT', 'EINVAL', 'ENOTDIR'].includes(errno(err) ?? '')) return undefined;
      throw refused(err, path);
    }
  }

  async sha256(path: string): Promise<string | undefined> {
    // Only a regular file is opened (opening a device or FIFO can block or have effects).
    const s = this.takeStat(path);
    if (!s?.isFile()) return undefined;
    const known = this.index?.lookup(path, s);
    if (known !== undefined) return known;
    const fd = openRegular(path);
    if (fd === undefined) return undefined;
    try {
      const hash = hashFd(fd, s.size);
      this.remember(path, s, fd, () => hash);
      return hash;
    } finally {
      closeSync(fd);
    }
  }

  async holds(path: string, bytes: Buffer): Promise<boolean | undefined> {
    const s = this.takeStat(path);
    if (!s?.isFile()) return undefined;
    if (s.size !== bytes.length) return false;
    // A file unchanged since its content was verified: it holds these bytes if they hash the same.
    // The first few small ones of a run are compared byte for byte instead, as sure as the hash:
    // a run with a handful of files then never loads node:crypto (a few ms of its own time).
    const known = this.index?.lookup(path, s);
    if (known !== undefined) {
      if (this.directCompares >= DIRECT_COMPARES || bytes.length > DIRECT_COMPARE_BYTES) return known === sha256Hex(bytes);
      this.directCompares++;
    }
    const fd = openRegular(path);
    if (fd === undefined) return undefined;
    try {
      // One byte more than expected: a file that grew since the stat does not match.
      const buffer = readBuffer(bytes.length + 1);
      let length = 0;
      while (length < buffer.length) {
        const n = readSync(fd, buffer, length, buffer.length - length, null);
        if (n === 0) break;
        length += n;
      }
      const same = length === bytes.length && buffer.subarray(0, length).equals(bytes);
      if (same) this.remember(path, s, fd, () => sha256Hex(bytes));
      return same;
    } finally {
      closeSync(fd);
    }
  }

  async mkdir(path: string, opts: { parents?: boolean; mode?: number } = {}): Promise<void> {
    this.forgetStats();
    mkdirSync(path, { recursive: opts.parents ?? false, ...(opts.mode !== undefined ? { mode: opts.mode } : {}) });
    if (opts.mode !== undefined) chmodSync(path, opts.mode);
  }

  async remove(path: string): Promise<void> {
    this.forgetStats();
    rmSync(path, { recursive: true, force: true });
  }

  async symlink(target: string, path: string): Promise<void> {
    this.forgetStats();
    // Making a symlink is atomic in itself: where nothing is in the way, it goes straight in.
    try {
      symlinkSync(target, path);
      return;
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw err;
    }
    const temp = tempPathFor(path);
    symlinkSync(target, temp);
    try {
      renameSync(temp, path);
    } catch (err) {
      rmSync(temp, { force: true });
      throw err;
    }
  }

  async chmod(path: string, mode: number): Promise<void> {
    this.forgetStats();
    chmodSync(path, mode);
  }

  async chown(path: string, owner?: string, group?: string): Promise<void> {
    this.forgetStats();
    const uid = owner === undefined ? -1 : await this.userId(owner);
    const gid = group === undefined ? -1 : await this.groupId(group);
    if (uid === undefined) throw new TargetError(`no such user: ${owner}`);
    if (gid === undefined) throw new TargetError(`no such group: ${group}`);
    lchownSync(path, uid, gid);
  }

  userId(name: string): Promise<number | undefined> {
    return this.ids.userId(name);
  }

  groupId(name: string): Promise<number | undefined> {
    return this.ids.groupId(name);
  }

  async facts(): Promise<Record<string, unknown>> {
    return localFacts();
  }

  async tryLock(stateDir: string, claim: LockClaim): Promise<LockAttempt> {
    return tryLockDir(stateDir, claim, tempTag());
  }

  async sweepTemps(tag: string, folders: string[]): Promise<number> {
    this.forgetStats();
    return sweepTempFiles(tag, folders);
  }

  async unlock(stateDir: string): Promise<void> {
    unlockDir(stateDir);
  }

  /** Keeps the content index for the next run (the only thing a local executor holds). */
  async close(): Promise<void> {
    this.commands.close();
    this.index?.save();
  }
}
