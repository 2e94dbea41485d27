/**
 * What a shell executor (executor.ts) needs from where its shell runs: a stream to one long-lived
 * `sh`, and a way to run a single command apart from it. SSH gives both over one connection
 * (ssh/transport.ts); a local process gives them by spawning (process-transport.ts), which is how
 * `chroot` and `nsenter` executors run.
 */
import type { RunOptions, RunResult } from '../types.ts';
import type { ShellStream } from './stream.ts';


export type CommandOptions = Pick<RunOptions, 'stdin' | 'timeoutMs' | 'signal' | 'onOutput'>;

export interface ShellTransport {
  /** The executor's name, as reports and plan-time checks say it: `ssh`, `chroot`. */
  readonly name: string;
  /** How messages name the far side: `user@host:port`, a root folder. */
  readonly endpoint: string;
  /**
   * Commands may run in the shell itself (shell-command.ts) when they can run there as runCommand
   * runs them: the shell runs where they would, as `runAs`, with the same environment.
   */
  readonly commandsInShell?: boolean;
  /** Who commands run as when they name no one (SSH's `become_user`); absent: the shell's user. */
  readonly runAs?: string;
  /** Starts the `sh` that reads requests on its stdin. Called once. */
  openShell(): Promise<ShellStream>;
  /**
   * Runs a command line (sh syntax) with stdin, stdout and stderr of its own, so it can never
   * disturb the shell's framing. Rejects with TransportLost when it could not be started because
   * the transport is gone, and with NoExitStatus when it ended without reporting a status.
   */
  runCommand(command: string, opts: CommandOptions): Promise<RunResult>;
  /**
   * Starts `command` (sh syntax) as a long-lived process with its stdio as a stream (a nested
   * target's shell); absent: the transport cannot.
   */
  openProcess?(command: string): Promise<ShellStream>;
  /** A command line that runs `command` as `user`; absent: the transport cannot change users. */
  asUser?(command: string, user: string): string;
  /** `listener` runs when the transport goes (a connection dropped). */
  onLost(listener: (why: string) => void): void;
  close(): void;
}

/** The transport went while starting a command: the target is lost for this run. */
export class TransportLost extends Error {}

/**
 * A command ended without an exit status: either the transport went (the executor knows by now)
 * or the far side did not say.
 */
export class NoExitStatus extends Error {
  constructor(readonly stdout: string, readonly stderr: string) {
    super('no exit status received');
  }
}

/**
 * A command's deadline: kills it when its timeout passes or its signal aborts; after a timeout's
 * kill, `giveUp` a second later, since a process the command started may hold its output open
 * (or, remotely, the command may go on without timeout(1)). `done()` when it ended.
 */
export function commandDeadline(opts: CommandOptions, kill: () => void, giveUp: () => void): { timedOut: boolean; done(): void } {
  const timer = opts.timeoutMs ? setTimeout(() => {
    deadline.timedOut = true;
    kill();
    setTimeout(giveUp, 1000).unref();
  }, opts.timeoutMs) : undefined;
  opts.signal?.addEventListener('abort', kill, { once: true });
  const deadline = {
    timedOut: false,
    done() {
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', kill);
    },
  };
  return deadline;
}
