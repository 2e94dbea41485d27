/**
 * An executor that speaks the shell protocol (DESIGN §7) over any transport (transport.ts): file
 * operations and batched reads through one long-lived `sh`; commands in it too where the transport
 * allows (SSH: shell-command.ts), else apart from it, as the transport runs them. Nothing is needed
 * on the far side but `sh` and the usual POSIX tools. The `ssh` executor is this over an SSH
 * connection.
 *
 * Reads are batched: the engine announces every path the run will read (`prefetch`), and the
 * first read of any of them fetches a window of them in one round trip. A write drops what it may
 * have changed from the cache (the path, what is below it and above it); a command drops all of it,
 * and the next read fetches the window from there on again. A command run in the shell reads a few
 * announced paths in its own request, right after it (READ_AHEAD_PATHS), so the node after it
 * (the next `exec`'s `creates`) usually finds its reading there.
 *
 * Writes are pipelined (DESIGN §7): the engine applies nodes side by side (`overlap`), and the
 * file operations of one turn are queued and sent as one request (write-batch.ts) at the turn's
 * end, or before any other request, behind those still unanswered (remote-shell.ts): the shell
 * runs requests in the order sent, so a read sent after a write sees it, and so does a command
 * run in the shell; one run apart from it waits until every status is in. Each operation keeps
 * its own status: a failed one fails its node alone. A path the run reads again after writing it
 * (lines of one file) is written in a request of its own, and its kind, mode and owner read back
 * in it (the bytes are the ones written).
 */
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { basename, dirname } from 'node:path';
import { printfFormat, shellCommand, shellQuote, withPathFor } from '../../lib/shell.ts';
import { IdLookup } from '../accounts.ts';
import { TargetError, UnreachableError, type Executor, type ExecutorCapability, type GuardedCommand, type GuardedOutcome, type LockAttempt, type LockClaim, type PrefetchEntry, type RunOptions, type RunResult, type Stat, type WriteOptions, VALIDATE_FAILED } from '../types.ts';
import { TEMP_TAG } from '../temp-names.ts';
import { UnsyncedWrites } from '../unsynced-writes.ts';
import { lockRequest, parseLockReply } from './lock.ts';
import { BatchMismatch, END_SECTION, factsScript, ID_TABLES_SCRIPT, parseBatch, parseFacts, parseSetup, splitSections, type PathInfo } from './remote-script.ts';
import { RemoteShell, ShellGone } from './remote-shell.ts';
import { COMMAND_FOLDER_PARENTS, commandRequest, COMMANDS_FOLDER, GUARDED_STEP_SECTIONS, guardedRequests, parseCommandReply, parseGuardedReply, type GuardedStep } from './shell-command.ts';
import { batchRequest, parseBatchReply, writeAlone, type BatchedOp } from './write-batch.ts';
import type { ShellStream } from './stream.ts';
import { NoExitStatus, TransportLost, type ShellTransport } from './transport.ts';

/** Paths per batched read, and bytes of path arguments (well under any ARG_MAX). */
const WINDOW_PATHS = 1000;
const WINDOW_BYTES = 96 * 1024;
/**
 * Announced paths read (their kind, mode and owner) in the request of a command run in the shell,
 * right after it: the ones from the last path asked for on. The next node's read then needs no
 * round trip of its own (an `exec`'s `creates`, the file a command made); a command may change
 * anything, so nothing read before it stands.
 */
const READ_AHEAD_PATHS = 32;
/** Bytes of file content per printf command. */
const WRITE_CHUNK = 64 * 1024;
/**
 * Nodes the engine may have in flight at once (Executor.overlap): each holds one unanswered
 * request at most, and a few hundred keep a first run's writes flowing without waiting on the
 * link, while the bytes waiting in the pipe stay small.
 */
const PIPELINE_DEPTH = 256;

type Need = 'stat' | 'sha' | 'content';

function satisfies(info: PathInfo | undefined, need: Need): boolean {
  if (!info) return false;
  // Asking again would be refused again.
  if (info.denied) return true;
  if (!info.stat || info.stat.type !== 'file' || need === 'stat') return true;
  return need === 'sha' ? info.sha256 !== undefined : info.content !== undefined;
}

/** A write to `path` reads it back when the run reads it again (several nodes announced it). */
function readBack(path: string, rereads: Map<string, boolean>): { readBack?: PrefetchEntry } {
  const content = rereads.get(path);
  return content === undefined ? {} : { readBack: { path, content } };
}

/** Sections a command run in the shell answers with (shell-command.ts): its status, stdout and stderr. */
const COMMAND_SECTIONS = 3;

/** Where the output after its first `n` sections starts (0 for none); -1 if it has fewer. */
function sectionsEnd(output: Buffer, nonce: string, n: number): number {
  const sep = `\n${nonce}\n`;
  let end = 0;
  for (let i = 0; i < n; i++) {
    const at = output.indexOf(sep, end);
    if (at < 0) return -1;
    end = at + sep.length;
  }
  return end;
}

/** Whether `path` is strictly below the folder `folder`. */
function isBelow(path: string, folder: string): boolean {
  return path !== folder && path.startsWith(folder.endsWith('/') ? folder : `${folder}/`);
}

/** The folders above `path`, nearest first, up to the root. */
function* above(path: string): Generator<string> {
  for (let p = dirname(path); ; p = dirname(p)) {
    yield p;
    if (p === dirname(p)) return;
  }
}

/** A refused file operation, with the errno name callers test (ENOENT: a folder above is missing). */
function errnoError(message: string, code: string): TargetError {
  return new TargetError(message, code);
}

/** A path the batched read could not reach or read: the node fails naming it (never "absent", DESIGN §5.9). */
/** A command run in the shell, marked timed out when timeout(1) killed it (`-s KILL`: 137). */
function withTimedOut(result: Pick<RunResult, 'code' | 'stdout' | 'stderr'>, timeoutMs: number | undefined): RunResult {
  return result.code === 137 && timeoutMs ? { ...result, timedOut: true } : result;
}

function deniedError(path: string): TargetError {
  return new TargetError(`permission denied: ${path}`, 'EACCES');
}

/**
 * `fragment`, which writes the temp file `temp`, with the name kept (quoted, as the lock's
 * release evals it) in `__cairn_t` while it runs: a shell that exits mid-write (the connection
 * lost, the workstation's run killed) removes it as it releases the lock (lock.ts), so the lock's
 * release leaves nothing the next run would have to find. Only a shell killed outright leaves it,
 * with its lock: the next run sweeps.
 */
function inFlight(temp: string, fragment: string): string {
  return `__cairn_t=${shellQuote(shellQuote(temp))}; ${fragment}; __w=$?; __cairn_t=; (exit $__w)`;
}

/** An operation waiting for the turn's batch (write-batch.ts), and its node's promise. */
type QueuedOp = BatchedOp & {
  done(reply: { code: number; output: Buffer }): void;
  failed(err: unknown): void;
};

/** A shell started and set up, with the facts its set-up read. */
export interface OpenedShell {
  shell: RemoteShell;
  nonce: string;
  pid: number;
  umask: string;
  uid: number;
  gid: number;
  hasTimeout: boolean;
  facts: Record<string, unknown>;
}

export interface ShellOptions {
  /**
   * Read the release, init system and package tool from this folder rather than `/` (a chroot
   * executor whose shell runs outside the root); the rest of the facts stay the machine's.
   */
  factsRoot?: string;
  /** The shell runs inside a system that is not running (chroot): `/`'s facts are read from its files. */
  offline?: boolean;
  /** What the executor offers (Executor.capabilities); absent: a running system. */
  capabilities?: readonly ExecutorCapability[];
}

/** Starts the transport's shell and sets it up; the facts come in the same round trip. */
export async function openShell(transport: ShellTransport, options: ShellOptions = {}): Promise<OpenedShell> {
  const stream = await transport.openShell();
  // Every run asks for the facts first.
  const { shell, nonce, init } = await RemoteShell.start(stream, factsScript(options.factsRoot, options.offline));
  const [setupSection = Buffer.alloc(0), ...factSections] = splitSections(init, nonce);
  const setup = parseSetup(setupSection);
  if (!setup) throw new ShellGone(`the remote shell's set-up printed what Cairn cannot read: ${init.toString().trim().slice(0, 500)}`);
  return { shell, nonce, ...setup, facts: parseFacts(factSections) };
}

export class ShellExecutor implements Executor {
  readonly name: string;
  readonly overlap = PIPELINE_DEPTH;
  readonly capabilities?: readonly ExecutorCapability[];
  private readonly cache = new Map<string, PathInfo>();
  private readonly unsynced = new UnsyncedWrites();
  private wanted: PrefetchEntry[] = [];
  private readonly position = new Map<string, number>();
  /** Paths announced more than once (several nodes read them): a write to one reads it back. */
  private readonly rereads = new Map<string, boolean>();
  /** Operations sent so far; what each touched is kept while a read is unanswered (`touchedSince`). */
  private operations = 0;
  private readsInFlight = 0;
  /** The path a node last asked about: a command's read-ahead starts there (READ_AHEAD_PATHS). */
  private lastAsked?: string;
  private touches: { seq: number; path: string; below: boolean }[] = [];
  private readonly ids = new IdLookup(async () => {
    const r = await this.request(ID_TABLES_SCRIPT);
    const [passwd = '', group = ''] = splitSections(r.output, this.nonce).map(String);
    return { passwd, group };
  });
  private commands = 0;
  /** This session's commands run in the shell so far, which numbers their files (shell-command.ts). */
  private commandCount = 0;
  /** The shell has the command functions (sent with the session's first command). */
  private commandsDefined = false;
  /** The shell could not run a command (its files could not be made): they run apart from now on. */
  private commandsApart = false;
  /** Writes queued in this turn of the engine, sent as one request at its end or before any other request. */
  private queued: QueuedOp[] = [];
  /** The paths of the queued writes (whose renames a batch may put off to its end). */
  private readonly queuedPaths = new Set<string>();
  // The session: replaced as a whole when the executor goes on over a new connection (resume).
  private shell: RemoteShell;
  private nonce: string;
  /** The remote shell's umask: a new file's default mode, put back after each write sets its own. */
  private umask: string;
  /** The facts read with the set-up, handed out once; a later `facts()` reads them again. */
  private openingFacts?: Record<string, unknown>;
  /** Who the remote shell runs as: a new file belongs to them without a chown. */
  private shellIds: { uid: number; gid: number };
  /** The far side has timeout(1): a command past its time is killed there, not just abandoned. */
  private hasTimeout: boolean;
  /** Set when the transport or the shell went: every operation after it fails as unreachable. */
  protected lost?: string;
  /** The state directory whose run lock this executor's shell holds, and the claim it was taken with. */
  private lockedDir?: string;
  private lockClaim?: LockClaim;
  /**
   * What this session's temp files carry after `.cairn-tmp.` (the remote shell's pid and a
   * random part), recorded in the run lock's holder: a run that takes over the lock of one
   * killed mid-write removes that one's leftovers by it (sweepTemps).
   */
  private tempTag: string;
  protected transport: ShellTransport;

  constructor(readonly target: string, transport: ShellTransport, opened: OpenedShell, private readonly options: ShellOptions = {}) {
    this.name = transport.name;
    if (options.capabilities) this.capabilities = options.capabilities;
    this.transport = transport;
    this.shell = opened.shell;
    this.nonce = opened.nonce;
    this.hasTimeout = opened.hasTimeout;
    this.umask = opened.umask;
    this.shellIds = { uid: opened.uid, gid: opened.gid };
    this.openingFacts = opened.facts;
    this.tempTag = `${opened.pid}.${randomBytes(4).toString('hex')}`;
    this.watch(transport);
  }

  /** A transport's loss makes the executor lost, while it is the one in use. */
  private watch(transport: ShellTransport): void {
    transport.onLost((why) => {
      if (this.transport === transport) this.lost ??= why;
    });
  }

  /**
   * Lets the current session go (the target is rebooting): every operation fails as unreachable,
   * saying `why`, until resume() brings a new one.
   */
  protected suspend(why: string): void {
    this.lost = why;
    this.cache.clear();
    this.ids.forget();
    this.shell.close();
    this.transport.close();
  }

  /**
   * Goes on over a new transport and shell to the same target (it rebooted): what was read
   * through the old session is forgotten, and the run lock the old shell held is taken again by
   * the new one. The old shell's holder entry, if the reboot left it, carries this session's old
   * temps tag: it is this session's own, taken over without asking whether its pid runs.
   * Throws UnreachableError when another run took the lock meanwhile.
   */
  protected async resume(transport: ShellTransport, opened: OpenedShell): Promise<void> {
    const previousTag = this.tempTag;
    this.transport = transport;
    this.shell = opened.shell;
    this.nonce = opened.nonce;
    this.hasTimeout = opened.hasTimeout;
    this.umask = opened.umask;
    this.shellIds = { uid: opened.uid, gid: opened.gid };
    this.openingFacts = undefined;
    this.tempTag = `${opened.pid}.${randomBytes(4).toString('hex')}`;
    this.commandsDefined = false;
    this.commandsApart = false;
    this.cache.clear();
    this.ids.forget();
    this.watch(transport);
    this.lost = undefined;
    if (this.lockedDir === undefined || !this.lockClaim) return;
    const stateDir = this.lockedDir;
    const by = `${this.lockClaim.by} from ${hostname()} pid ${process.pid}`;
    const r = await this.request(lockRequest(stateDir, { ...this.lockClaim, by }, this.tempTag, END_SECTION, undefined, previousTag));
    const sep = r.output.indexOf(`\n${this.nonce}\n`);
    const attempt = parseLockReply(r.output.subarray(0, sep < 0 ? r.output.length : sep).toString(), stateDir);
    if (attempt.state !== 'taken') {
      const why = attempt.state === 'held' ? `another run took the run lock while the target restarted (${attempt.path})` : `cannot take the run lock again: ${attempt.reason}`;
      this.suspend(why);
      throw this.unreachable();
    }
  }

  /** Opens the transport's shell; the transport is closed again if that fails. */
  static async start(target: string, transport: ShellTransport, options: ShellOptions = {}): Promise<ShellExecutor> {
    try {
      return new ShellExecutor(target, transport, await openShell(transport, options), options);
    } catch (err) {
      transport.close();
      throw err;
    }
  }

  protected unreachable(): UnreachableError {
    return new UnreachableError(this.target, `lost the connection to ${this.transport.endpoint}: ${this.lost ?? 'the connection closed'}`);
  }

  /**
   * The run's round trips (not counting the transport's handshake): commands, and requests sent
   * while no other was unanswered (one sent behind others shares their round trip).
   */
  get roundTrips(): number {
    return this.shell.exchanges + this.commands;
  }

  private async request(fragment: string): Promise<{ code: number; output: Buffer }> {
    // Requests run in the order sent: the writes queued before this one go first.
    this.sendWrites();
    if (this.lost) throw this.unreachable();
    try {
      return await this.shell.request(fragment);
    } catch (err) {
      if (err instanceof ShellGone) {
        this.lost ??= err.message;
        throw this.unreachable();
      }
      throw err;
    }
  }

  /**
   * Runs a file operation; a non-zero status becomes an error with its output (code 20: no such
   * directory). `below`: it may change what is below `path` too. With `readBack`, `path` is read
   * again in the same request, right after the operation, whatever its status.
   */
  private async op(fragment: string, path: string, { below = true, readBack, written }: { below?: boolean; readBack?: PrefetchEntry; written?: Buffer } = {}): Promise<void> {
    if (!readBack) return this.queueOp({ path, run: fragment }, below);
    this.invalidate(path, below);
    // The bytes just written need not come back: only what the write may not have set (the owner
    // a folder's setgid bit gave, a size that shows someone else wrote it since) is read.
    const read = written ? { ...ShellExecutor.batchRead([{ path, content: false }]), written } : ShellExecutor.batchRead([readBack]);
    const fragmentRead = written ? `__nosha=1; ${read.fragment}; __nosha=` : read.fragment;
    const r = await this.reading(`${fragment}\n__o=$?; ${END_SECTION}; ${fragmentRead}; (exit $__o)`, read, 1);
    this.status({ code: r.code, output: splitSections(r.output, this.nonce)[0] ?? r.output });
  }

  private status(r: { code: number; output: Buffer }): void {
    if (r.code === 0) return;
    const text = r.output.toString().trim();
    if (r.code === 20) throw errnoError(text, 'ENOENT');
    if (r.code === 21) throw errnoError(text, VALIDATE_FAILED);
    throw new TargetError(text || `exited with ${r.code}`);
  }

  /**
   * Runs a command: in the shell (shell-command.ts) when the transport offers it and the shell
   * can run it as the transport would, else apart from it. In the shell it waits for the
   * requests sent before it and holds up those after it, so a target's commands run one at a
   * time there. That is how the engine runs them anyway: a node that runs commands is applied
   * alone (engine.ts, overlapPaths), never beside another. A caller that wants one stopped from
   * here (`signal`) or its output as it comes (`onOutput`) has it apart, and so does a timeout
   * the far side cannot enforce (no timeout(1)).
   */
  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const inShell = this.transport.commandsInShell === true && !this.commandsApart && !opts.signal && !opts.onOutput && (!opts.timeoutMs || this.hasTimeout);
    this.forgetAll();
    // In the shell, a read sent after the command runs after it: what it reads stands.
    const result = inShell ? await this.commandInShell(argv, opts) : undefined;
    if (result) return result;
    try {
      // It runs apart from the shell: the writes sent before it must have landed, whatever their status.
      this.sendWrites();
      await this.shell.idle();
      this.forgetAll();
      return await this.command(argv, opts);
    } finally {
      // Other nodes may have read while it ran: what they read may predate its changes.
      this.forgetAll();
    }
  }

  /**
   * A command may change anything: files, and users and groups (useradd). Nothing read before
   * it is kept, and a read still unanswered is not cached either.
   */
  private forgetAll(): void {
    this.touch('/', true);
    this.cache.clear();
    this.ids.forget();
  }

  /** The command line that runs `argv` with `opts` on the far side; `inShell`: from the shell, which runs as `runAs` already. */
  private commandLine(argv: string[], opts: RunOptions, inShell: boolean): string {
    let cmd = shellCommand(argv);
    if (opts.env) cmd = `env ${Object.entries(opts.env).map(([k, v]) => shellQuote(`${k}=${v}`)).join(' ')} ${cmd}`;
    if (opts.cwd) cmd = `cd ${shellQuote(opts.cwd)} && exec ${cmd}`;
    const as = opts.user ?? (inShell ? undefined : this.transport.runAs);
    if (as !== undefined) {
      if (!this.transport.asUser) throw new TargetError(`cannot run a command as ${as}: the ${this.name} executor cannot change users`);
      cmd = this.transport.asUser(cmd, as);
    }
    // A transport need not deliver signals to commands (sshd does not), so the far side enforces the timeout itself.
    if (opts.timeoutMs && this.hasTimeout) cmd = `timeout -s KILL ${Math.ceil(opts.timeoutMs / 1000)} /bin/sh -c ${shellQuote(cmd)}`;
    return cmd;
  }

  /** Runs a command in the shell (shell-command.ts); undefined when it did not start there, and will not from now on. */
  private async commandInShell(argv: string[], opts: RunOptions): Promise<RunResult | undefined> {
    const cmd = this.commandLine(argv, opts, true);
    const stdin = opts.stdin === undefined ? undefined : typeof opts.stdin === 'string' ? Buffer.from(opts.stdin) : opts.stdin;
    const define = !this.commandsDefined;
    this.commandsDefined = true;
    const ahead = this.readAhead();
    // A random part after the session's tag, as a temp file's: the sweep of a killed run's tag finds the folder by it.
    const request = commandRequest(cmd, this.commandCount++, `${this.tempTag}.${randomBytes(6).toString('hex')}`, stdin, define, ahead && `__nosha=1; ${ahead.fragment}; __nosha=`);
    const r = ahead ? await this.reading(request, { ...ahead, hashed: false }, COMMAND_SECTIONS) : await this.request(request);
    const result = parseCommandReply(r.output, this.nonce);
    if (result === undefined) throw new TargetError(`the reply to a command is not understood: ${r.output.toString().slice(0, 200)}`);
    if (result === 'not started') {
      this.commandsApart = true;
      return undefined;
    }
    return withTimedOut(result, opts.timeoutMs);
  }

  /**
   * Runs guarded commands one after the other (Executor.runGuarded): in the shell, as `run` runs
   * each, a request each, sent together (shell-command.ts, guardedRequests), so each outcome is
   * heard as its command ends. None when the shell cannot run them (commands go apart from it, or
   * a timeout the far side cannot enforce). A cancel makes the requests' stop file from beside
   * the shell (a command of its own), so no step starts after the one under way.
   */
  async runGuarded(commands: GuardedCommand[], each: (index: number, outcome: GuardedOutcome) => void, signal?: AbortSignal): Promise<number> {
    const lines = [...commands, ...commands.flatMap((c) => c.guards.flatMap((g) => ('exists' in g ? [] : ['unless' in g ? g.unless : g.onlyif])))];
    // Cancelled already: none starts (the caller reports them so).
    if (signal?.aborted || this.transport.commandsInShell !== true || this.commandsApart || lines.some((l) => l.opts.timeoutMs && !this.hasTimeout)) return 0;
    // Those the cache already says are not needed cost nothing (a converged run's: their paths
    // were read with the others'); the requests start at the first that needs the target.
    let known = 0;
    for (; known < commands.length; known++) {
      const guard = this.cachedGuard(commands[known]!);
      if (guard === undefined) break;
      each(known, { notNeeded: guard });
    }
    if (known === commands.length) return known;
    return known + await this.sendGuarded(commands.slice(known), (i, outcome) => each(known + i, outcome), signal);
  }

  /** The guard that says, from what is cached, that `c` is not needed (a path that exists); undefined when only the target can tell. */
  private cachedGuard(c: GuardedCommand): number | undefined {
    for (const [k, guard] of c.guards.entries()) {
      if (!('exists' in guard)) return undefined;
      const info = this.cache.get(guard.exists);
      if (!info || info.denied === 'path') return undefined;
      this.lastAsked = guard.exists;
      if (info.stat) return k;
    }
    return undefined;
  }

  private async sendGuarded(commands: GuardedCommand[], each: (index: number, outcome: GuardedOutcome) => void, signal?: AbortSignal): Promise<number> {
    const steps: GuardedStep[] = commands.map((c) => ({
      command: this.commandLine(c.argv, c.opts, true),
      guards: c.guards.map((g) => ('exists' in g ? g : 'unless' in g ? { unless: this.commandLine(g.unless.argv, g.unless.opts, true) } : { onlyif: this.commandLine(g.onlyif.argv, g.onlyif.opts, true) })),
    }));
    // The read after them starts from the last path a guard names, as if each step's guards had been asked.
    for (const c of commands) for (const g of c.guards) if ('exists' in g) this.lastAsked = g.exists;
    this.forgetAll();
    const define = !this.commandsDefined;
    this.commandsDefined = true;
    const first = this.commandCount;
    this.commandCount += steps.length;
    const stop = `/tmp/.guarded.cairn-tmp.${this.tempTag}.${randomBytes(6).toString('hex')}`;
    const ahead = this.readAhead();
    const requests = guardedRequests(steps, first, `${this.tempTag}.${randomBytes(6).toString('hex')}`, stop, define, ahead && `__nosha=1; ${ahead.fragment}; __nosha=`);
    let stopping: Promise<unknown> | undefined;
    const onAbort = () => {
      // The run ends anyway: a stop file that could not be made only lets the steps left run.
      stopping = this.command(['sh', '-c', `: > ${shellQuote(stop)}`], {}).catch(() => undefined);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    // Sent one behind the other now; the shell runs them in that order.
    const replies = requests.map((request, i) => (i === requests.length - 1 && ahead
      ? this.reading(request, { ...ahead, hashed: false }, GUARDED_STEP_SECTIONS)
      : this.request(request)));
    // A lost target fails them all: the first awaited says so, the others must not go unheard.
    for (const reply of replies) reply.catch(() => undefined);
    let decided = 0;
    try {
      for (const [i, reply] of replies.entries()) {
        const r = await reply;
        const verdict = parseGuardedReply(splitSections(r.output, this.nonce));
        if (verdict === undefined) throw new TargetError(`the reply to a guarded command is not understood: ${r.output.toString().slice(0, 200)}`);
        if (verdict === 'not started') this.commandsApart = true;
        if (typeof verdict === 'string' || decided < i) continue;
        const c = commands[i]!;
        each(i, 'ran' in verdict ? { ran: withTimedOut(verdict.ran, c.opts.timeoutMs) }
          : verdict.hidden ? { failed: deniedError((c.guards[verdict.guard] as { exists: string }).exists) } : { notNeeded: verdict.guard });
        decided++;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (stopping) {
      // Made after the last request ended, it would stay: taken away behind them.
      await stopping;
      await this.request(`rm -f -- ${shellQuote(stop)}`);
    }
    return decided;
  }

  private async command(argv: string[], opts: RunOptions): Promise<RunResult> {
    const cmd = this.commandLine(argv, opts, false);
    this.commands++;
    if (this.lost) throw this.unreachable();
    try {
      return await this.transport.runCommand(cmd, opts);
    } catch (err) {
      if (err instanceof TransportLost) {
        this.lost ??= err.message;
        throw this.unreachable();
      }
      // The transport has waited for word of its own loss: without it, the far side just did not say.
      if (err instanceof NoExitStatus) {
        if (this.lost) throw this.unreachable();
        return { code: 255, stdout: err.stdout, stderr: `${err.stderr}no exit status received` };
      }
      throw err;
    }
  }

  /** A long-lived process beside the shell (a nested target's shell), as the transport starts one. */
  async openProcess(argv: string[]): Promise<ShellStream> {
    if (this.lost) throw this.unreachable();
    if (!this.transport.openProcess) throw new TargetError(`the ${this.name} executor cannot start a nested target's shell`);
    let cmd = shellCommand(argv);
    const as = this.transport.runAs;
    if (as !== undefined) {
      if (!this.transport.asUser) throw new TargetError(`cannot run a command as ${as}: the ${this.name} executor cannot change users`);
      cmd = this.transport.asUser(cmd, as);
    }
    try {
      return await this.transport.openProcess(cmd);
    } catch (err) {
      if (err instanceof TransportLost) {
        this.lost ??= err.message;
        throw this.unreachable();
      }
      throw err;
    }
  }

  prefetch(entries: PrefetchEntry[]): void {
    this.wanted = entries;
    this.position.clear();
    this.rereads.clear();
    entries.forEach((e, i) => {
      if (!this.position.has(e.path)) this.position.set(e.path, i);
      else this.rereads.set(e.path, (this.rereads.get(e.path) ?? entries[this.position.get(e.path)!]!.content === true) || e.content === true);
    });
  }

  /** The cached reading of `path`, fetching it (and the window of announced paths after it) if needed. */
  private async info(path: string, need: Need): Promise<PathInfo> {
    this.lastAsked = path;
    const have = this.cache.get(path);
    if (have && satisfies(have, need)) return have;
    // Its own reading, not the cache's entry: another reading answered in the same chunk may
    // have replaced that entry already (one that did not fetch the content), or an operation sent
    // after this read may have kept it out of the cache.
    const read = await this.readBatch(this.window(path, need));
    return read.get(path)!;
  }

  /**
   * What a command's request reads after it (READ_AHEAD_PATHS): the announced paths from the one
   * last asked about on, their kind, mode and owner alone (no digest: a `creates` needs none, and
   * a command may come before many files).
   */
  private readAhead(): { fragment: string; paths: string[]; k: number } | undefined {
    const start = this.lastAsked === undefined ? undefined : this.position.get(this.lastAsked);
    if (start === undefined) return undefined;
    const ahead = new Set<string>();
    for (let i = start; i < this.wanted.length && ahead.size < READ_AHEAD_PATHS; i++) ahead.add(this.wanted[i]!.path);
    return ShellExecutor.batchRead([...ahead].map((path) => ({ path, content: false })));
  }

  /** `path` and the announced paths after it not yet read, up to a batch's limits. */
  private window(path: string, need: Need): PrefetchEntry[] {
    const batch: PrefetchEntry[] = [{ path, content: need === 'content' }];
    const start = this.position.get(path);
    if (start !== undefined) {
      let bytes = path.length;
      for (let i = start; i < this.wanted.length && batch.length < WINDOW_PATHS && bytes < WINDOW_BYTES; i++) {
        const e = this.wanted[i]!;
        if (e.path === path || satisfies(this.cache.get(e.path), e.content ? 'content' : 'sha')) continue;
        batch.push(e);
        bytes += e.path.length + 8;
      }
    }
    return batch;
  }

  /** The batched read of `batch`: its shell fragment, and the paths in the order it answers (the first `k` with content). */
  private static batchRead(batch: PrefetchEntry[]): { fragment: string; paths: string[]; k: number } {
    const unique = new Map<string, boolean>();
    for (const e of batch) unique.set(e.path, (unique.get(e.path) ?? false) || e.content === true);
    const withContent = [...unique].filter(([, c]) => c).map(([p]) => p);
    const paths = [...withContent, ...[...unique].filter(([, c]) => !c).map(([p]) => p)];
    return { fragment: `__cairn_read ${withContent.length} ${paths.map(shellQuote).join(' ')}`, paths, k: withContent.length };
  }

  private async readBatch(batch: PrefetchEntry[]): Promise<Map<string, PathInfo>> {
    const read = ShellExecutor.batchRead(batch);
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.reading(read.fragment, read)).parsed;
      } catch (err) {
        // Something changed a path between two commands of the batch: read again.
        if (!(err instanceof BatchMismatch) || attempt === 3) throw err;
      }
    }
  }

  /**
   * Sends `fragment`, whose output ends with `read`'s batched reading (after `own` sections of its
   * own, which come back as the output), and caches that reading. A path an operation sent after
   * it touched is not cached: that operation may have changed it after this reading was taken.
   * `hashed: false`: the reading has no digests (`__nosha`).
   */
  private async reading(fragment: string, read: { paths: string[]; k: number; written?: Buffer; hashed?: boolean }, own = 0): Promise<{ code: number; output: Buffer; parsed: Map<string, PathInfo> }> {
    const since = this.operations;
    this.readsInFlight++;
    try {
      const r = await this.request(fragment);
      const split = sectionsEnd(r.output, this.nonce, own);
      // Fewer sections of its own: what came first did not go as far as the reading.
      if (split < 0) return { ...r, parsed: new Map() };
      const prefixed = own > 0;
      let parsed = new Map<string, PathInfo>();
      try {
        parsed = parseBatch(r.output.subarray(split), this.nonce, read.paths, read.k, read.hashed ?? !read.written);
        if (read.written) {
          // The written bytes are the file's only when the write succeeded and the size agrees; else it is read again when needed.
          const info = parsed.get(read.paths[0]!);
          if (r.code === 0 && info?.stat?.type === 'file' && !info.denied && info.stat.size === read.written.length) {
            info.sha256 = createHash('sha256').update(read.written).digest('hex');
            info.content = read.written;
          }
        }
        for (const [p, info] of parsed) if (!this.touchedSince(since, p)) this.remember(p, info);
      } catch (err) {
        // A read-back that does not fit (the path changed as it was read) is read again when
        // needed; the operation's own status stands.
        if (!prefixed || !(err instanceof BatchMismatch)) throw err;
      }
      return { code: r.code, output: prefixed ? r.output.subarray(0, split) : r.output, parsed };
    } finally {
      if (--this.readsInFlight === 0) this.touches = [];
    }
  }

  /**
   * Caches a reading. Two reads of one path may be answered together, the one that fetched the
   * content first: the later one, of the same bytes (same digest), keeps that content.
   */
  private remember(path: string, info: PathInfo): void {
    const had = this.cache.get(path);
    if (info.content === undefined && had?.content !== undefined && info.sha256 !== undefined && had.sha256 === info.sha256) {
      this.cache.set(path, { ...info, content: had.content });
    } else {
      this.cache.set(path, info);
    }
  }

  /** Whether an operation sent after the `since`th touched `path`: it, what is above it, or (`below`) what is below. */
  private touchedSince(since: number, path: string): boolean {
    if (this.operations === since) return false;
    for (const t of this.touches) {
      if (t.seq > since && (t.path === path || isBelow(t.path, path) || (t.below && isBelow(path, t.path)))) return true;
    }
    return false;
  }

  /**
   * Forgets what a write to `path` may have changed: it, what is above it, and (when `below`)
   * what is below it; a read still unanswered will not cache it either.
   */
  private invalidate(path: string, below = true): void {
    this.touch(path, below);
    if (below) {
      const under = path.endsWith('/') ? path : `${path}/`;
      for (const key of this.cache.keys()) if (key.startsWith(under)) this.cache.delete(key);
    }
    this.cache.delete(path);
    for (const p of above(path)) this.cache.delete(p);
  }

  /** Counts an operation on `path` (and, with `below`, what is below it): a read still unanswered will not cache it. */
  private touch(path: string, below: boolean): void {
    this.operations++;
    if (this.readsInFlight > 0) this.touches.push({ seq: this.operations, path, below });
  }

  /** The reading of `path`; a path the login user cannot reach is refused here. */
  private async reached(path: string, need: Need): Promise<PathInfo> {
    const info = await this.info(path, need);
    if (info.denied === 'path') throw deniedError(path);
    return info;
  }

  async stat(path: string): Promise<Stat | undefined> {
    return (await this.reached(path, 'stat')).stat ?? undefined;
  }

  async readLink(path: string): Promise<string | undefined> {
    return (await this.reached(path, 'stat')).link;
  }

  async readFile(path: string): Promise<Buffer | undefined> {
    const info = await this.reached(path, 'content');
    if (info.denied === 'content') throw deniedError(path);
    if (!info.stat) return undefined;
    if (info.stat.type === 'directory') throw errnoError(`EISDIR: illegal operation on a directory, read '${path}'`, 'EISDIR');
    if (info.stat.type !== 'file') return undefined;
    return info.content;
  }

  async sha256(path: string): Promise<string | undefined> {
    const info = await this.reached(path, 'sha');
    if (info.denied === 'content') throw deniedError(path);
    return info.stat?.type === 'file' ? info.sha256 : undefined;
  }

  /**
   * The session's tag, then a random part per file: the shell's `>` follows a symlink, so a name
   * in a folder others may write (/tmp) must not be one they can foresee.
   */
  private tempPath(path: string): string {
    return `${dirname(path)}/.${basename(path)}.cairn-tmp.${this.tempTag}.${randomBytes(6).toString('hex')}`;
  }

  async writeFile(path: string, data: string | Buffer, opts: WriteOptions = {}): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    const existing = await this.stat(path);
    const sync = this.unsynced.mustSync(path, existing !== undefined);
    const kept = existing?.type === 'file' ? existing : undefined;
    const mode = opts.mode ?? kept?.mode ?? 0o666 & ~parseInt(this.umask, 8);
    const explicitOwner = opts.owner !== undefined || opts.group !== undefined;
    const owner = explicitOwner ? `${opts.owner ?? ''}${opts.group !== undefined ? `:${opts.group}` : ''}`
      : kept && (kept.uid !== this.shellIds.uid || kept.gid !== this.shellIds.gid) ? `${kept.uid}:${kept.gid}` : '-';
    const formats: string[] = [];
    for (let at = 0; at < bytes.length; at += WRITE_CHUNK) formats.push(printfFormat(bytes.subarray(at, at + WRITE_CHUNK)));
    const chunks = (temp: string) => (formats.length === 0 ? [`: > ${temp}`] : formats.map((f, i) => `printf ${f} ${i === 0 ? '>' : '>>'} ${temp}`));
    // The temp file is created with its final mode through the umask when the mode allows (no
    // chmod process), else private until chmod; it is never more open than the file it becomes.
    // An owner kept from the file it replaces is best effort: a non-root user cannot give files away.
    const direct = (mode & ~0o666) === 0;
    const umask = direct ? (~mode & 0o777).toString(8).padStart(4, '0') : '0077';
    const make = (t: { raw: string; quoted: string }) => `{ umask ${umask}; ${chunks(t.quoted).join(' && ')}; __s=$?; umask ${this.umask}; [ $__s = 0 ] || { rm -f -- ${t.quoted}; (exit $__s); }; } && ` +
      `__cairn_prep ${t.quoted} ${direct ? '-' : mode.toString(8).padStart(4, '0')} ${shellQuote(owner)} ${explicitOwner ? 1 : 0} ${sync ? 1 : 0}` +
      `${opts.validate !== undefined ? ` ${shellQuote(withPathFor(opts.validate, t.raw))}` : ''}`;
    const again = readBack(path, this.rereads);
    if (again.readBack) {
      const tempFile = this.tempPath(path);
      await this.op(inFlight(tempFile, writeAlone(path, tempFile, make)), path, { ...again, written: bytes });
    } else {
      await this.queueWrite(path, make);
    }
    if (!sync) this.unsynced.add(path);
  }

  async mkdir(path: string, opts: { parents?: boolean; mode?: number } = {}): Promise<void> {
    const mode = opts.mode !== undefined ? opts.mode.toString(8).padStart(4, '0') : undefined;
    const p = shellQuote(path);
    // A new folder is empty: what was read below it (nothing) stands, unless its mode keeps its owner out.
    const below = opts.mode !== undefined && (opts.mode & 0o100) === 0;
    if (!opts.parents) await this.op(`__cairn_dir ${shellQuote(dirname(path))} && mkdir ${mode ? `-m ${mode} ` : ''}-- ${p}`, path, { below });
    else if (mode === undefined) await this.queueOp({ path, folder: true }, below);
    else await this.op(`mkdir -p -- ${p} && chmod ${mode} -- ${p}`, path, { below });
  }

  async remove(path: string): Promise<void> {
    await this.op(`rm -rf -- ${shellQuote(path)}`, path);
  }

  async symlink(target: string, path: string): Promise<void> {
    await this.queueWrite(path, (t) => `ln -s -- ${shellQuote(target)} ${t.quoted}`);
  }

  /**
   * Queues a write for this turn's batch (write-batch.ts): sent when the turn ends, or before any
   * other request, whichever comes first. A second write to one path sends the first batch first.
   */
  private queueWrite(path: string, make: (temp: { raw: string; quoted: string }) => string): Promise<void> {
    return this.queueOp({ path, make }, true);
  }

  /**
   * Queues an operation; one on a path at, above or below a queued write's sends the batch
   * first, so that it sees that write in place.
   */
  private queueOp(op: BatchedOp, below: boolean): Promise<void> {
    if (this.queuedPaths.size > 0 && (op.make ? this.queuedPaths.has(op.path) : this.nearQueuedWrite(op.path))) this.sendWrites();
    this.invalidate(op.path, below);
    return new Promise<void>((resolve, reject) => {
      if (this.queued.length === 0) setImmediate(() => this.sendWritesOnceStill(0));
      this.queued.push({ ...op, done: (r) => { try { this.status(r); resolve(); } catch (err) { reject(err); } }, failed: reject });
      if (op.make) this.queuedPaths.add(op.path);
    });
  }

  /** Whether `path` is a queued write's path, or above or below one. */
  private nearQueuedWrite(path: string): boolean {
    if (this.queuedPaths.has(path)) return true;
    for (const p of above(path)) if (this.queuedPaths.has(p)) return true;
    for (const q of this.queuedPaths) if (isBelow(q, path)) return true;
    return false;
  }

  /**
   * Sends the queued operations once a turn of the event loop added none: the engine lets the
   * loop turn every few milliseconds while it goes on applying nodes (engine.ts, LOOP_TURN_MS),
   * and a batch sent at each turn held a few dozen operations where it could hold hundreds (one
   * stage folder, one mkdir and one rm each). A full pipeline's worth goes at once.
   */
  private sendWritesOnceStill(seen: number): void {
    if (this.queued.length > seen && this.queued.length < PIPELINE_DEPTH) setImmediate(() => this.sendWritesOnceStill(this.queued.length));
    else this.sendWrites();
  }

  /** Sends the queued writes as one request; each write's promise settles with its own status. */
  private sendWrites(): void {
    if (this.queued.length === 0) return;
    const writes = this.queued;
    this.queued = [];
    this.queuedPaths.clear();
    const names = {
      temp: (path: string) => this.tempPath(path),
      stage: (folder: string) => `${folder === '/' ? '' : folder}/.stage.cairn-tmp.${this.tempTag}.${randomBytes(6).toString('hex')}`,
    };
    this.request(batchRequest(writes, names)).then((r) => {
      const statuses = parseBatchReply(r.output, this.nonce, writes.length);
      if (!statuses) throw new TargetError(`the reply to ${writes.length} writes is not understood: ${r.output.toString().slice(0, 200)}`);
      writes.forEach((w, i) => w.done(statuses[i]!));
    }).catch((err: unknown) => {
      for (const w of writes) w.failed(err);
    });
  }

  async chmod(path: string, mode: number): Promise<void> {
    await this.op(`chmod ${mode.toString(8).padStart(4, '0')} -- ${shellQuote(path)}`, path);
  }

  async chown(path: string, owner?: string, group?: string): Promise<void> {
    if (owner !== undefined && (await this.userId(owner)) === undefined) throw new TargetError(`no such user: ${owner}`);
    if (group !== undefined && (await this.groupId(group)) === undefined) throw new TargetError(`no such group: ${group}`);
    const spec = `${owner ?? ''}${group !== undefined ? `:${group}` : ''}`;
    await this.op(`chown -h ${shellQuote(spec)} -- ${shellQuote(path)}`, path);
  }

  userId(name: string): Promise<number | undefined> {
    return this.ids.userId(name);
  }

  groupId(name: string): Promise<number | undefined> {
    return this.ids.groupId(name);
  }

  async facts(): Promise<Record<string, unknown>> {
    const opening = this.openingFacts;
    this.openingFacts = undefined;
    if (opening) return opening;
    const r = await this.request(factsScript(this.options.factsRoot, this.options.offline));
    return parseFacts(splitSections(r.output, this.nonce));
  }

  /**
   * Tries the run lock (lock.ts). Once the engine has announced its reads, the first window of
   * them (the state files first) is read in the same round trip, right after the lock is taken:
   * a run's lock costs no request of its own.
   */
  async tryLock(stateDir: string, claim: LockClaim): Promise<LockAttempt> {
    if (this.lockedDir === stateDir) return { state: 'taken' };
    this.lockClaim = claim;
    const first = this.wanted[0];
    const read = first && !this.cache.has(first.path) ? ShellExecutor.batchRead(this.window(first.path, first.content ? 'content' : 'sha')) : undefined;
    const by = `${claim.by} from ${hostname()} pid ${process.pid}`;
    const r = await this.request(lockRequest(stateDir, { ...claim, by }, this.tempTag, END_SECTION, read?.fragment));
    const sep = r.output.indexOf(`\n${this.nonce}\n`);
    if (sep < 0) throw new TargetError(`the run lock's reply is not understood: ${r.output.toString().slice(0, 200)}`);
    const attempt = parseLockReply(r.output.subarray(0, sep).toString(), stateDir);
    if (attempt.state !== 'taken') return attempt;
    this.lockedDir = stateDir;
    if (read) {
      try {
        const rest = r.output.subarray(sep + this.nonce.length + 2);
        for (const [p, info] of parseBatch(rest, this.nonce, read.paths, read.k)) this.remember(p, info);
      } catch (err) {
        // A path changed while it was read: the run's first read asks again.
        if (!(err instanceof BatchMismatch)) throw err;
      }
    }
    return attempt;
  }

  /** One request whatever the number of folders: a glob per folder, counted as removed (a stage folder counts one). */
  async sweepTemps(tag: string, folders: string[]): Promise<number> {
    if (!TEMP_TAG.test(tag) || folders.length === 0) return 0;
    const list = [...new Set(folders)].map(shellQuote).join(' ');
    // The folder of the session's command files is in one of their own (shell-command.ts).
    const r = await this.request(`__k=0; for __d in ${list} ${COMMAND_FOLDER_PARENTS}; do for __f in "$__d"/.*.cairn-tmp.${tag}.*; do ` +
      `if { [ -f "$__f" ] || [ -L "$__f" ]; } && rm -f -- "$__f" 2>/dev/null; then __k=$((__k + 1)); ` +
      // A stage folder of a batch of writes (write-batch.ts), with what it held, or that folder.
      `elif [ -d "$__f" ] && case $\{__f##*/} in .stage.cairn-tmp.*|.${COMMANDS_FOLDER}*) true ;; *) false ;; esac && rm -rf -- "$__f" 2>/dev/null; then __k=$((__k + 1)); fi; done; done; echo $__k`);
    this.cache.clear();
    return Number(/(\d+)\s*$/.exec(r.output.toString())?.[1] ?? 0);
  }

  /** The lock is the shell's: it goes when the shell exits, at close (or when the connection drops). */
  async unlock(): Promise<void> {}

  async close(): Promise<void> {
    this.sendWrites();
    this.shell.close();
    // The shell releases the lock as it exits: waiting for that (a short wait, a dead link must
    // not hang the command) means the next run, started right after this one, finds it free.
    if (this.lockedDir !== undefined && !this.lost) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.shell.exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000)))]);
      clearTimeout(timer);
    }
    this.transport.close();
  }
}
