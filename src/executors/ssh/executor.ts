/**
 * The `ssh` executor (DESIGN §7): one connection per target, and the shell protocol
 * (shell/executor.ts) over it. What is SSH's own (host keys, authentication, channels, sudo) is
 * in connect.ts and transport.ts.
 */
import { openShell, ShellExecutor } from '../shell/executor.ts';
import { UnreachableError } from '../types.ts';
import { connect, type ConnectOptions, type SshSettings } from './connect.ts';
import { SshTransport } from './transport.ts';

export class SshExecutor extends ShellExecutor {
  /** Connects, verifies the host key and starts the remote shell (through sudo for `become`). */
  static async open(target: string, settings: SshSettings, options: ConnectOptions = {}): Promise<SshExecutor> {
    const { client, resolved } = await connect(target, settings, options);
    const runAs = settings.become ? settings.become_user ?? 'root' : undefined;
    const transport = new SshTransport(client, resolved, runAs);
    try {
      return new SshExecutor(target, transport, await openShell(transport));
    } catch (err) {
      transport.close();
      const message = (err as Error).message;
      if (runAs && /password is required|a terminal is required/.test(message)) {
        throw new UnreachableError(target, `become: sudo on ${resolved.endpoint} wants a password to run as ${runAs}. ` +
          `Cairn runs sudo non-interactively (sudo -n): allow ${resolved.user} to run commands as ${runAs} without a password (NOPASSWD in sudoers)`);
      }
      throw new UnreachableError(target, `${runAs ? `become: sudo -n -u ${runAs} failed` : 'cannot start /bin/sh'} on ${resolved.endpoint}: ${message}`);
    }
  }
}
