/**
 * The shell protocol over local processes: the shell is one long-lived process started from an
 * argv that ends in a shell (`/bin/sh`, `chroot ROOT /bin/sh`, `nsenter -t PID -a /bin/sh`), and
 * each command is a new process started from the same argv with `-c COMMAND`, so it runs where
 * the shell runs.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { constants } from 'node:os';
import type { RunResult } from '../types.ts';
import { childStream, type ShellStream } from './stream.ts';
import { commandDeadline, TransportLost, type CommandOptions, type ShellTransport } from './transport.ts';
import { collectOutput } from '../types.ts';

export interface ProcessTransportOptions {
  /** The executor's name. */
  name: string;
  /** How messages name where the shell runs. */
  endpoint: string;
  /** Starts a POSIX sh that reads commands on its stdin, and runs one with `-c COMMAND` appended. */
  shell: string[];
  /** A command line that runs `command` as `user`; without it, commands cannot change users. */
  asUser?: (command: string, user: string) => string;
  /**
   * The argv of one command, given the shell's pid (to join its namespaces); default: the
   * shell's argv with `-c COMMAND` appended.
   */
  command?: (command: string, shellPid: number | undefined) => string[];
}

export class ProcessTransport implements ShellTransport {
  readonly name: string;
  readonly endpoint: string;
  readonly asUser?: (command: string, user: string) => string;
  private readonly program: string;
  private readonly args: string[];
  private shellProcess?: ChildProcessWithoutNullStreams;
  private readonly commandArgv: (command: string, shellPid: number | undefined) => string[];

  constructor(options: ProcessTransportOptions) {
    const [program, ...args] = options.shell;
    if (!program) throw new Error('a process transport needs the argv of a shell');
    this.name = options.name;
    this.endpoint = options.endpoint;
    if (options.asUser) this.asUser = options.asUser;
    this.program = program;
    this.args = args;
    this.commandArgv = options.command ?? ((command) => [program, ...args, '-c', command]);
  }

  async openShell(): Promise<ShellStream> {
    this.shellProcess = spawn(this.program, this.args, { stdio: 'pipe' });
    return childStream(this.shellProcess);
  }

  async openProcess(command: string): Promise<ShellStream> {
    const sh = this.shellProcess;
    const [program, ...args] = this.commandArgv(command, sh && sh.exitCode === null && sh.signalCode === null ? sh.pid : undefined);
    return childStream(spawn(program!, args, { stdio: 'pipe' }));
  }

  runCommand(command: string, opts: CommandOptions): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      // A shell that ended has no pid to join any more (the number may be another process's by now).
      const sh = this.shellProcess;
      const [program, ...args] = this.commandArgv(command, sh && sh.exitCode === null && sh.signalCode === null ? sh.pid : undefined);
      const child = spawn(program!, args, { stdio: 'pipe' });
      const output = collectOutput(child.stdout, child.stderr, opts.onOutput);
      // A command that exits without reading all its stdin must not fail the run with EPIPE.
      child.stdin.on('error', () => undefined);
      const deadline = commandDeadline(opts, () => child.kill('SIGKILL'), () => resolve({ code: 137, ...output, timedOut: true }));
      child.once('error', (err) => {
        deadline.done();
        reject(new TransportLost(`cannot start ${program}: ${err.message}`));
      });
      child.once('close', (code, signal) => {
        deadline.done();
        const status = code ?? 128 + (signal ? constants.signals[signal] : 9);
        const timedOut = deadline.timedOut || (status === 137 && Boolean(opts.timeoutMs));
        resolve({ code: timedOut ? 137 : status, ...output, ...(timedOut ? { timedOut } : {}) });
      });
      child.stdin.end(opts.stdin);
    });
  }

  /** A local process has no connection to lose: a shell that dies is seen by the protocol itself. */
  onLost(): void {}

  close(): void {
    const sh = this.shellProcess;
    if (sh && sh.exitCode === null && sh.signalCode === null) sh.kill();
  }
}
