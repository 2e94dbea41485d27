/**
 * The SSH side of the `ssh` executor: the shell on a channel of the connection, a command the
 * shell cannot run (executor.ts, run) on a channel of its own, and `become` through `sudo -n`.
 */
import type { Client as SshClient, ClientChannel } from 'ssh2';
import { shellQuote } from '../../lib/shell.ts';
import type { ShellStream } from '../shell/stream.ts';
import { commandDeadline, NoExitStatus, TransportLost, type CommandOptions, type ShellTransport } from '../shell/transport.ts';
import { collectOutput } from '../types.ts';
import type { RunResult } from '../types.ts';
import type { Resolved } from './connect.ts';

/** An ssh2 channel as the shell protocol's stream. */
export function channelStream(channel: ClientChannel): ShellStream {
  return {
    stdout: channel,
    stderr: channel.stderr,
    stdin: channel,
    onClose(listener) {
      channel.on('close', () => listener());
    },
  };
}

export class SshTransport implements ShellTransport {
  readonly name = 'ssh';
  /** sshd starts the shell as it starts a command (the login shell's `-c`), and `become` starts it as `runAs`. */
  readonly commandsInShell = true;

  constructor(private readonly client: SshClient, readonly resolved: Resolved, readonly runAs: string | undefined) {}

  get endpoint(): string {
    return this.resolved.endpoint;
  }

  onLost(listener: (why: string) => void): void {
    this.client.on('close', () => listener('the connection closed'));
    this.client.on('error', (err: Error) => listener(err.message));
  }

  async openShell(): Promise<ShellStream> {
    const command = this.runAs ? `sudo -n -u ${shellQuote(this.runAs)} -- /bin/sh` : '/bin/sh';
    const channel = await new Promise<ClientChannel>((resolve, reject) => {
      this.client.exec(command, (err, ch) => (err ? reject(err) : resolve(ch)));
    });
    return channelStream(channel);
  }

  async openProcess(command: string): Promise<ShellStream> {
    const channel = await new Promise<ClientChannel>((resolve, reject) => {
      this.client.exec(command, (err, ch) => (err ? reject(new TransportLost(err.message)) : resolve(ch)));
    });
    return channelStream(channel);
  }

  asUser(command: string, user: string): string {
    return `sudo -n -u ${shellQuote(user)} -- /bin/sh -c ${shellQuote(command)}`;
  }

  runCommand(command: string, opts: CommandOptions): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      this.client.exec(command, (err, channel) => {
        if (err) {
          reject(new TransportLost(err.message));
          return;
        }
        // Listen before yielding: a quick command's output, exit status and close can arrive
        // with the reply to the exec request, and are emitted in the same tick.
        collect(channel, opts, resolve, reject);
      });
    });
  }

  close(): void {
    this.client.end();
  }
}

function collect(channel: ClientChannel, opts: CommandOptions, resolve: (r: RunResult) => void, reject: (e: Error) => void): void {
  const output = collectOutput(channel, channel.stderr, opts.onOutput);
  let code: number | undefined;
  channel.on('exit', (c: number | null, signal?: string) => {
    code = c ?? (signal ? 128 + 9 : 1);
  });
  const deadline = commandDeadline(opts, () => {
    channel.signal('KILL');
    channel.close();
  }, () => resolve({ code: 137, ...output, timedOut: true }));
  channel.on('close', () => {
    deadline.done();
    let timedOut = deadline.timedOut;
    // A channel closed without an exit status: the connection went (seen once the socket closes).
    if (code === undefined && !timedOut) {
      setTimeout(() => reject(new NoExitStatus(output.stdout, output.stderr)), 50);
      return;
    }
    if (code === 137 && opts.timeoutMs) timedOut = true;
    resolve({ code: timedOut ? 137 : code!, ...output, ...(timedOut ? { timedOut } : {}) });
  });
  channel.end(opts.stdin);
}
