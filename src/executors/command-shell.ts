/**
 * A long-lived `/bin/sh` that starts the local executor's commands. For Node to start a program,
 * libuv forks Node's whole address space (tens of MB of page tables, then copy-on-write faults
 * in Node) and waits for the exec: several times what a small shell's fork costs, and most of a
 * short command's time. So commands go to one shell that forks them, one at a time.
 *
 * Each command runs in a subshell with its stdin from /dev/null and its stdout and stderr in
 * files of a private folder, new files each time, read back when it exits (Puppet's exec keeps
 * output in a temp file too). No command can see the shell's pipes: output never mixes between
 * commands, and a daemon a command leaves behind holding its output cannot stall the run.
 *
 * Only runs that a spawn and this shell start identically come here (`accepts`): no user, stdin,
 * timeout or abort signal, which need a process of Node's own to act on, and nothing the shell
 * would read its own way. Everything else, and everything after the shell failed, is spawned.
 */
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { shellQuote } from '../lib/shell.ts';
import { sweepOrphans } from './temp-names.ts';
import type { RunOptions, RunResult } from './types.ts';

/** The command's exit status, or that it never started, or why the shell could not tell. */
type Reply = number | 'not started' | Error;

export type SpawnFunction = (command: string, args: string[], options: SpawnOptions) => ChildProcess;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The shell's folder in $TMPDIR, by the pid of the Cairn that made it (mkdtemp adds six characters). */
const COMMAND_FOLDER = /^cairn-commands-(\d+)-[A-Za-z0-9]{6}$/;

/** Variables sh sets or reads itself: a command whose env sets one is spawned. */
const SHELL_VARIABLES = new Set(['ENV', 'IFS', 'LINENO', 'OLDPWD', 'OPTIND', 'PPID', 'PS1', 'PS2', 'PS4', 'PWD', '_']);

/** What dash or bash print when `exec` cannot start a program: the reason, in spawn's words. */
const EXEC_FAILURE = /^[^\n]*exec: (.*): (not found|Permission denied)\n?$/;

function isDirectory(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

/** At most `limit` bytes of a file, as text; undefined if it is missing. */
function readUpTo(path: string, limit: number): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const size = Math.min(fstatSync(fd).size, limit);
    const buffer = Buffer.allocUnsafe(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, buffer, done, size - done, null);
      if (n === 0) break;
      done += n;
    }
    return buffer.subarray(0, done).toString();
  } finally {
    closeSync(fd);
  }
}

export class CommandShell {
  private child?: ChildProcess;
  private folder?: string;
  private count = 0;
  private busy = false;
  /** Set once the shell went away or could not be set up: from then on every command is spawned. */
  private failed = false;
  private replies = '';
  private shellErrors = '';
  private waiting?: (reply: Reply) => void;

  constructor(
    private readonly spawn: SpawnFunction,
    private readonly env: () => NodeJS.ProcessEnv,
    private readonly outputLimit: number,
  ) {}

  /** Whether the shell is free and would start this command exactly as a spawn would. */
  accepts(argv: string[], opts: RunOptions): boolean {
    if (this.busy || this.failed) return false;
    // Its output goes to files, read at the end: nothing to stream.
    if (opts.stdin !== undefined || opts.user !== undefined || opts.timeoutMs !== undefined || opts.signal || opts.onOutput) return false;
    const program = argv[0];
    // dash's exec takes no `--`: a program named like an option is spawned.
    if (!program || program.startsWith('-') || argv.some((word) => word.includes('\0'))) return false;
    if (opts.env && !Object.entries(opts.env).every(([k, v]) => NAME.test(k) && !SHELL_VARIABLES.has(k) && !v.includes('\0'))) return false;
    // A missing folder is reported the way a spawn reports it.
    return opts.cwd === undefined || isDirectory(opts.cwd);
  }

  /**
   * Runs the command; undefined if it did not start (its output files could not be made), so
   * the caller may spawn it instead.
   */
  async run(argv: string[], opts: RunOptions): Promise<RunResult | undefined> {
    this.busy = true;
    try {
      const child = this.child ?? this.start();
      if (!child) return undefined;
      const n = this.count++;
      const out = join(this.folder!, `o${n}`);
      const err = join(this.folder!, `e${n}`);
      // The command gets Ctrl-C's SIGINT as a spawned one would (the shell itself ignores it).
      const steps: string[] = ['trap - INT'];
      // An absolute folder: cd consults CDPATH (and may print) only for relative ones.
      if (opts.cwd !== undefined) {
        steps.push(`cd ${shellQuote(resolve(opts.cwd))}`);
        // cd sets OLDPWD (and PWD, rightly: a spawn passes Cairn's own); the command gets Cairn's.
        const oldpwd = this.env().OLDPWD;
        steps.push(oldpwd === undefined ? 'unset OLDPWD' : `export OLDPWD=${shellQuote(oldpwd)}`);
      }
      for (const [name, value] of Object.entries(opts.env ?? {})) steps.push(`export ${name}=${shellQuote(value)}`);
      steps.push(`exec ${argv.map(shellQuote).join(' ')}`);
      const reply = new Promise<Reply>((settle) => (this.waiting = settle));
      this.hold(child, true);
      // The files open on the group, so a failure to make them is told apart from the command's
      // own status ("-"); the command gets them as stdout and stderr, and nothing else of the shell's.
      child.stdin!.write(`{ (${steps.join(' && ')}) </dev/null >&3 2>&4 3>&- 4>&-; echo "$?"; } 3>${shellQuote(out)} 4>${shellQuote(err)} || echo -\n`);
      const code = await reply;
      this.hold(child, false);
      if (code === 'not started') {
        this.failed = true;
        return undefined;
      }
      const stdout = readUpTo(out, this.outputLimit) ?? '';
      const stderr = readUpTo(err, this.outputLimit) ?? '';
      rmSync(out, { force: true });
      rmSync(err, { force: true });
      if (code instanceof Error) {
        // The shell went away while the command was in it: whether it ran is unknown, so it failed.
        this.failed = true;
        return { code: 126, stdout, stderr: `${stderr}cannot run ${argv[0]}: ${code.message}${this.shellErrors ? `: ${this.shellErrors.trim()}` : ''}` };
      }
      return { code, stdout, stderr: code === 126 || code === 127 ? spawnWords(stderr, argv[0]!) : stderr };
    } finally {
      this.busy = false;
    }
  }

  /** Starts the shell; undefined (and every command spawned) if it cannot have its folder. */
  private start(): ChildProcess | undefined {
    try {
      // Named by this process, so a later run can tell a killed one's folder (its shell killed
      // with it, or before the trap that removes it was set) from a live run's, and remove it.
      sweepOrphans(tmpdir(), COMMAND_FOLDER, 'directory');
      this.folder = mkdtempSync(join(tmpdir(), `cairn-commands-${process.pid}-`));
    } catch {
      this.failed = true;
      return undefined;
    }
    const child = this.spawn('/bin/sh', [], { stdio: ['pipe', 'pipe', 'pipe'], env: this.env() });
    this.child = child;
    const lost = (why: string) => {
      this.failed = true;
      this.settle(new Error(why));
    };
    child.on('error', (e) => {
      // Never started (no /bin/sh): neither did the command, which can be spawned.
      if (child.pid === undefined) {
        this.failed = true;
        this.settle('not started');
      } else lost(`the command shell failed: ${e.message}`);
    });
    child.on('exit', (code, signal) => lost(`the command shell exited (${signal ?? code})`));
    child.stdin!.on('error', () => undefined); // a shell gone is reported by 'exit'
    child.stdout!.on('data', (d: Buffer) => {
      this.replies += d.toString();
      const end = this.replies.indexOf('\n');
      if (end < 0) return;
      const line = this.replies.slice(0, end);
      this.replies = this.replies.slice(end + 1);
      this.settle(line === '-' ? 'not started' : /^\d+$/.test(line) ? Number(line) : new Error(`the command shell answered ${JSON.stringify(line)}`));
    });
    child.stderr!.on('data', (d: Buffer) => {
      if (this.shellErrors.length < 4096) this.shellErrors += d.toString();
    });
    // The folder goes with the shell, however Cairn ends (its stdin closes). Ctrl-C reaches the
    // whole process group: the shell outlives it, so a run that was interrupted (and cleans up
    // after itself, ProviderContext.signal) still has it for its next commands.
    child.stdin!.write(`__cairn_folder=${shellQuote(this.folder)}; trap 'rm -rf -- "$__cairn_folder"' EXIT; trap '' INT\n`);
    return child;
  }

  private settle(reply: Reply): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.(reply);
  }

  /** The shell keeps Cairn running only while a command is in it. */
  private hold(child: ChildProcess, held: boolean): void {
    for (const handle of [child, child.stdin, child.stdout, child.stderr] as ({ ref(): void; unref(): void } | null)[]) {
      if (held) handle?.ref();
      else handle?.unref();
    }
  }

  close(): void {
    this.child?.stdin?.end();
    if (this.folder) rmSync(this.folder, { recursive: true, force: true });
    this.child = undefined;
    this.failed = true;
  }
}

/** The shell's "exec: prog: not found" as a spawn reports it: "prog: not found". */
function spawnWords(stderr: string, program: string): string {
  const m = EXEC_FAILURE.exec(stderr);
  if (!m || m[1] !== program) return stderr;
  return `${program}: ${m[2] === 'not found' ? 'not found' : 'permission denied'}`;
}
