/**
 * The `ssh` executor (DESIGN §7): one connection per target, and the shell protocol
 * (shell/executor.ts) over it. What is SSH's own (host keys, authentication, channels, sudo) is
 * in connect.ts and transport.ts.
 */
import { nowMs, pauseFor } from '../../lib/clock.ts';
import { openShell, ShellExecutor, type OpenedShell } from '../shell/executor.ts';
import { UnreachableError, type ReconnectOptions } from '../types.ts';
import { connect, type ConnectOptions, type SshSettings } from './connect.ts';
import { SshTransport } from './transport.ts';

/** Between two tries to reach a target that is restarting. */
const RETRY_PAUSE_MS = 1000;

export class SshExecutor extends ShellExecutor {
  private constructor(target: string, transport: SshTransport, opened: OpenedShell,
    private readonly settings: SshSettings, private readonly connectOptions: ConnectOptions) {
    super(target, transport, opened);
  }

  /** Connects, verifies the host key and starts the remote shell (through sudo for `become`). */
  static async open(target: string, settings: SshSettings, options: ConnectOptions = {}): Promise<SshExecutor> {
    const { transport, opened } = await SshExecutor.session(target, settings, options);
    return new SshExecutor(target, transport, opened, settings, options);
  }

  private static async session(target: string, settings: SshSettings, options: ConnectOptions): Promise<{ transport: SshTransport; opened: OpenedShell }> {
    const { client, resolved } = await connect(target, settings, options);
    const runAs = settings.become ? settings.become_user ?? 'root' : undefined;
    const transport = new SshTransport(client, resolved, runAs);
    try {
      return { transport, opened: await openShell(transport) };
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

  /**
   * A new connection with the target's own settings and known_hosts (a host that comes back with
   * another key is refused, as on any connection), tried again every second until it answers or
   * the time is up; each try's connect timeout is cut to the time left.
   */
  async reconnect(options: ReconnectOptions): Promise<void> {
    const deadline = nowMs() + options.timeoutMs;
    this.suspend('the target is restarting');
    let why = 'no answer';
    for (;;) {
      if (options.signal?.aborted) throw new UnreachableError(this.target, 'cancelled while waiting for the target to come back');
      const left = deadline - nowMs();
      if (left <= 0) {
        this.suspend(`did not come back within ${Math.round(options.timeoutMs / 1000)} s (last try: ${why})`);
        throw this.unreachable();
      }
      const connectTimeout = Math.max(1, Math.min(this.settings.connect_timeout ?? 15, Math.ceil(left / 1000)));
      try {
        const { transport, opened } = await SshExecutor.session(this.target, { ...this.settings, connect_timeout: connectTimeout }, this.connectOptions);
        await this.resume(transport, opened);
        return;
      } catch (err) {
        if (!(err instanceof UnreachableError)) throw err;
        // The host key refused is an answer, not a host still on its way: no point in waiting.
        if (/HOST KEY CHANGED|host key of .* is (unknown|marked @revoked)|another run took the run lock/.test(err.reason)) {
          this.suspend(err.reason);
          throw err;
        }
        why = err.reason;
        // A session that connected but could not be resumed is let go too.
        this.suspend('the target is restarting');
      }
      await pauseFor(Math.min(RETRY_PAUSE_MS, Math.max(0, deadline - nowMs())), options.signal);
    }
  }
}

