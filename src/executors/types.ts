/**
 * How the engine and providers act on a target (DESIGN §7). Providers touch a target only
 * through this interface, so the same provider works locally and (later) over SSH.
 */
import type { ShellStream } from './shell/stream.ts';

export interface RunOptions {
  stdin?: string | Buffer;
  env?: Record<string, string>;
  cwd?: string;
  /** Run as this user (by name or uid). */
  user?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * Sees the output as it arrives (`cairn run` on a terminal), besides the result's copy.
   * Executors that cannot stream leave it uncalled; callers then have the result.
   */
  onOutput?: (stream: 'stdout' | 'stderr', text: string) => void;
}

/** Output of a command kept per stream; beyond it, the rest is dropped. */
export const OUTPUT_LIMIT = 1 << 20;

/** A command's stdout and stderr as text, each kept up to OUTPUT_LIMIT. */
export function collectOutput(stdout: NodeJS.EventEmitter, stderr: NodeJS.EventEmitter,
  onOutput?: RunOptions['onOutput']): { stdout: string; stderr: string } {
  const out = { stdout: '', stderr: '' };
  stdout.on('data', (d: Buffer) => {
    if (out.stdout.length < OUTPUT_LIMIT) out.stdout += d.toString();
    onOutput?.('stdout', d.toString());
  });
  stderr.on('data', (d: Buffer) => {
    if (out.stderr.length < OUTPUT_LIMIT) out.stderr += d.toString();
    onOutput?.('stderr', d.toString());
  });
  return out;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Set when the command was killed for running past its timeout. */
  timedOut?: boolean;
}

/** A command and how it runs (RunOptions without input, cancellation or streamed output). */
export interface CommandLine {
  argv: string[];
  opts: Pick<RunOptions, 'env' | 'cwd' | 'user' | 'timeoutMs'>;
}

/**
 * What says a guarded command is not needed, asked on the target right before it would run:
 * a path that exists (a symlink counts, dangling or not), a command that exits 0 (`unless`), or
 * one that exits non-zero (`onlyif`). A guard command's output is not kept.
 */
export type CommandGuard = { exists: string } | { unless: CommandLine } | { onlyif: CommandLine };

/** A command run unless one of its guards, asked in order, says it is not needed (Executor.runGuarded). */
export interface GuardedCommand extends CommandLine {
  guards: CommandGuard[];
}

/**
 * How a guarded command went: not needed (the guard that said so, by index), ran (its result),
 * or failed before it could run (a guard's path could not be looked at: permission denied).
 */
export type GuardedOutcome = { notNeeded: number } | { ran: RunResult } | { failed: TargetError };

export interface Stat {
  type: 'file' | 'directory' | 'symlink' | 'other';
  /** Permission bits, e.g. 0o644. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
}

export interface WriteOptions {
  /** Octal permission bits; kept from the file being replaced when not given. */
  mode?: number;
  owner?: string;
  group?: string;
  /**
   * A shell command line run on the temp file, with its final mode and owner, before it is
   * renamed into place (`visudo -cf %`: each `%` is the temp file's quoted path, `%%` a `%`). A
   * non-zero exit removes the temp file, leaves `path` as it was, and throws a TargetError with
   * code EVALIDATE whose message is the exit status and the command's output.
   */
  validate?: string;
}

/** The code of the TargetError a refused `validate` throws (WriteOptions.validate). */
export const VALIDATE_FAILED = 'EVALIDATE';

/** A path the run will read, announced up front so a remote executor can read many at once. */
export interface PrefetchEntry {
  path: string;
  /** The reading needs the file's bytes, not just its kind, mode, owner and hash. */
  content?: boolean;
}

/**
 * What an executor offers besides files and commands: a running system (services, the kernel's
 * settings; an offline `chroot` root has none), or Cairn itself on the machine (local, agent).
 */
export type ExecutorCapability = 'running-system' | 'cairn';

/** Whether `exec` offers `capability`; an executor that does not say offers a running system. */
export function offers(exec: Pick<Executor, 'capabilities'>, capability: ExecutorCapability): boolean {
  return (exec.capabilities ?? ['running-system']).includes(capability);
}

export interface Executor {
  readonly name: string;
  /** What this executor offers (ResourceType.needs); absent: a running system, no Cairn. */
  readonly capabilities?: readonly ExecutorCapability[];
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
  readFile(path: string): Promise<Buffer | undefined>;
  /**
   * Atomic: a temp file in the same directory, renamed into place; mode and owner set before the
   * rename. Where the rename replaces content older than the run, the temp file is fsynced first
   * (unsynced-writes.ts).
   */
  writeFile(path: string, data: string | Buffer, opts?: WriteOptions): Promise<void>;
  /** Like lstat: a symlink is reported as one. */
  stat(path: string): Promise<Stat | undefined>;
  readLink(path: string): Promise<string | undefined>;
  /** The sha256 (hex) of a regular file's content; undefined when it is not a regular file. */
  sha256(path: string): Promise<string | undefined>;
  /**
   * Whether the regular file at `path` holds exactly `bytes` (undefined: not a regular file).
   * Optional: an executor that reads files as cheaply as it hashes them compares the bytes
   * (a size that differs answers without reading); the others leave it out and callers compare
   * sha256 hashes.
   */
  holds?(path: string, bytes: Buffer): Promise<boolean | undefined>;
  /**
   * Runs `commands` one after the other, each unless its guards say it is not needed, the guards
   * asked on the target right before it would run: what `run` and `stat` would do one at a time,
   * in one round trip. `each` hears each outcome, in order, as it comes. Returns how many it
   * decided: the first that many; the rest did not start (the run was cancelled: `signal`, and
   * then none starts after the one under way; or they could not be run together) and are to be
   * run one at a time. Optional: an executor for which a command costs no round trip leaves it out.
   */
  runGuarded?(commands: GuardedCommand[], each: (index: number, outcome: GuardedOutcome) => void, signal?: AbortSignal): Promise<number>;
  /** Announces the paths the run will read, in order (a hint: an executor may ignore it). */
  prefetch?(entries: PrefetchEntry[]): void;
  /**
   * How many nodes whose type allows it (ResourceType.overlap) the engine may have in flight at
   * once; absent: one at a time.
   */
  readonly overlap?: number;
  /** Round trips to the target so far, where that is a cost (remote executors). */
  readonly roundTrips?: number;
  mkdir(path: string, opts?: { parents?: boolean; mode?: number }): Promise<void>;
  /** Removes a file, link or (recursively) a directory; absent is fine. */
  remove(path: string): Promise<void>;
  /** Atomic: replaces whatever is at `path`. */
  symlink(target: string, path: string): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  chown(path: string, owner?: string, group?: string): Promise<void>;
  /** Numeric ids of a user or group name (numbers pass through); undefined if unknown. */
  userId(name: string): Promise<number | undefined>;
  groupId(name: string): Promise<number | undefined>;
  facts(): Promise<Record<string, unknown>>;
  /**
   * One try at the run lock in `stateDir` (DESIGN §5.11), taking over a lock whose holder is
   * gone; absent: runs through this executor are not locked. Operations after a taken lock are
   * the holder's until `unlock` (or `close`).
   */
  tryLock?(stateDir: string, claim: LockClaim): Promise<LockAttempt>;
  unlock?(stateDir: string): Promise<void>;
  /**
   * Removes the temp files of atomic writes that carry `tag` (a LockHolder's `temps`: a run
   * that was killed mid-write) from `folders`, and returns how many; a folder that is missing or
   * cannot be read is passed over. Absent: this executor's temp files cannot be told apart.
   */
  sweepTemps?(tag: string, folders: string[]): Promise<number>;
  /**
   * After the target was told to restart (a reboot): lets the current connection go and opens a
   * new one to the same target, with the same settings and the same host-key verification,
   * trying again until the target answers or `timeoutMs` has passed; operations then go on over
   * it (the run lock is taken again). Rejects with UnreachableError when the time ran out (the
   * executor then stays unreachable). Absent: this executor cannot wait for its target to come
   * back (the local one runs on the machine that would restart).
   */
  reconnect?(options: ReconnectOptions): Promise<void>;
  /**
   * Starts a long-lived process on the target and hands back its stdio as a stream: the shell of
   * a target nested in this one (`via:`, executors/nested.ts), which speaks the shell protocol
   * over it. Absent: this executor cannot carry a nested target.
   */
  openProcess?(argv: string[]): Promise<ShellStream>;
  /** Releases connections; a no-op locally. */
  close(): Promise<void>;
}

export interface ReconnectOptions {
  /** How long the target may take to answer again, from now. */
  timeoutMs: number;
  /** Stops the waiting (the run is cancelled). */
  signal?: AbortSignal;
}

/** Who holds a target's run lock, as STATE_DIR/lock.d/holder records it. */
export interface LockHolder {
  pid: number;
  /** The host the pid lives on (uname -n). */
  host: string;
  /** When the run started (ISO 8601). */
  started: string;
  /** What runs: `cairn apply`, and from where when the holder is a remote shell. */
  by: string;
  /** What the names of the run's temp files carry (`.<name>.cairn-tmp.<temps>.…`); absent in locks of older versions. */
  temps?: string;
}

export interface LockClaim {
  started: string;
  by: string;
}

export type LockAttempt =
  | { state: 'taken'; tookOver?: LockHolder }
  /**
   * Another run has it. `holder` is undefined while the lock is being created; `alive` says
   * whether its pid runs: 'unknown' when it is on another host (nothing here can check it).
   */
  | { state: 'held'; holder?: LockHolder; alive: 'yes' | 'no' | 'unknown'; path: string }
  /** The state directory cannot be written (permission denied, a read-only file system). */
  | { state: 'unwritable'; reason: string };

/** Where a target keeps Cairn's own state (pending notifications, input hashes, the content index), unless its settings say. */
export const DEFAULT_STATE_DIR = '/var/lib/cairn';

/** A target could not be reached: exit code 3. */
export class UnreachableError extends Error {
  constructor(readonly target: string, readonly reason: string) {
    super(`${target}: ${reason}`);
    this.name = 'UnreachableError';
  }
}

/**
 * An operation on the target failed, in the target's own words (a write refused, no such user):
 * the node fails with this message. Errors of any other kind are bugs.
 */
export class TargetError extends Error {
  constructor(message: string, readonly code?: string) {
    super(message);
    this.name = 'TargetError';
  }
}

/**
 * Whether an error is the target's answer (the node fails) rather than a bug in Cairn (the run
 * stops with its stack): Cairn's own TargetError, or a system call's error from the local file
 * system (EACCES, ENOSPC: node's errors carry `syscall`).
 */
export function isTargetFailure(err: unknown): boolean {
  return err instanceof TargetError || (err instanceof Error && typeof (err as NodeJS.ErrnoException).syscall === 'string');
}
