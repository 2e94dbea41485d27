/**
 * Targets nested in another target (DESIGN §6, `via:`): a container, a jail or a root folder on
 * a host Cairn already reaches. The outer target's executor starts the nested shell as a
 * long-lived process (Executor.openProcess) and the shell protocol (shell/executor.ts) runs over
 * its stdio, as over SSH; each command is one more process through the outer executor, entering
 * the same place. Facts come from inside.
 *
 * - `container` (`machine: NAME`): `systemd-run -M NAME --pipe --wait /bin/sh`, a transient
 *   service inside the machine, with the machine's own environment and its exit status;
 * - `jail` (`jail: NAME`): `jexec NAME /bin/sh`;
 * - `chroot` (`root: PATH`): `chroot PATH /bin/sh` in a private mount namespace with `/proc`,
 *   `/sys` and `/dev` bound in, as the chroot executor does, an offline root (no service runs).
 */
import { shellQuote } from '../lib/shell.ts';
import { CHROOT_COMMAND_SETUP, CHROOT_SHELL_SETUP } from './chroot.ts';
import { ShellExecutor } from './shell/executor.ts';
import { ShellGone } from './shell/remote-shell.ts';
import type { ShellStream } from './shell/stream.ts';
import { TransportLost, type CommandOptions, type ShellTransport } from './shell/transport.ts';
import { UnreachableError, type Executor, type ExecutorCapability, type RunResult } from './types.ts';

export type NestedKind = 'container' | 'jail' | 'chroot';

/** Where a nested shell runs: its argv on the outer target, and a command's. */
export interface NestedPlace {
  kind: NestedKind;
  /** The machine, jail or root folder. */
  name: string;
}

/** The argv that runs `/bin/sh` with `args` inside `place`, on the outer target. */
export function nestedArgv(place: NestedPlace, args: string[]): string[] {
  switch (place.kind) {
    case 'container':
      return ['systemd-run', '-M', place.name, '--quiet', '--pipe', '--wait', '--collect', '/bin/sh', ...args];
    case 'jail':
      return ['jexec', place.name, '/bin/sh', ...args];
    case 'chroot': {
      // As the chroot executor does: /proc, /sys and /dev bound into the root in a mount namespace
      // of the process's own, which the outer host never sees and the kernel drops with it.
      const unshare = ['unshare', '--mount', '--uts', '--propagation', 'private', '--', '/bin/sh', '-c'];
      return args.length === 0
        ? [...unshare, CHROOT_SHELL_SETUP, 'cairn-chroot', place.name]
        : [...unshare, CHROOT_COMMAND_SETUP, 'cairn-chroot', place.name, args.at(-1)!];
    }
  }
}

const CAPABILITIES: Record<NestedKind, readonly ExecutorCapability[]> = {
  container: ['running-system'],
  jail: ['running-system'],
  chroot: [],
};

/** The shell protocol's transport through the outer target's executor. */
export class NestedTransport implements ShellTransport {
  readonly name: NestedKind;
  readonly endpoint: string;

  constructor(private readonly outer: Executor, private readonly place: NestedPlace, outerName: string, private readonly ownsOuter: boolean) {
    this.name = place.kind;
    this.endpoint = `${place.kind === 'chroot' ? 'root' : place.kind === 'container' ? 'machine' : 'jail'} ${place.name} on ${outerName}`;
  }

  async openShell(): Promise<ShellStream> {
    if (!this.outer.openProcess) throw new ShellGone(`the ${this.outer.name} executor cannot start a nested shell`);
    try {
      return await this.outer.openProcess(nestedArgv(this.place, []));
    } catch (err) {
      if (err instanceof UnreachableError) throw new ShellGone(err.reason);
      throw err;
    }
  }

  async runCommand(command: string, opts: CommandOptions): Promise<RunResult> {
    try {
      return await this.outer.run(nestedArgv(this.place, ['-c', command]), {
        ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
        ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.onOutput ? { onOutput: opts.onOutput } : {}),
      });
    } catch (err) {
      if (err instanceof UnreachableError) throw new TransportLost(err.reason);
      throw err;
    }
  }

  /** The place's own tools and user database: runuser where util-linux is, else su (BusyBox, FreeBSD). */
  asUser(command: string, user: string): string {
    return `if command -v runuser >/dev/null 2>&1; then exec runuser -u ${shellQuote(user)} -- /bin/sh -c ${shellQuote(command)}; ` +
      `else exec su -m ${shellQuote(user)} -c ${shellQuote(command)}; fi`;
  }

  /** The outer executor's loss closes the nested shell's stream: the protocol sees that itself. */
  onLost(): void {}

  close(): void {
    if (this.ownsOuter) void this.outer.close();
  }
}

/**
 * Opens the shell of `target` inside `place` through `outer` (the executor of the target named
 * by `via:`, opened for this one and closed with it when `ownsOuter`).
 */
export async function openNested(target: string, place: NestedPlace, outer: Executor, outerName: string, ownsOuter = true): Promise<ShellExecutor> {
  const transport = new NestedTransport(outer, place, outerName, ownsOuter);
  try {
    return await ShellExecutor.start(target, transport, {
      capabilities: CAPABILITIES[place.kind],
      ...(place.kind === 'chroot' ? { offline: true } : {}),
    });
  } catch (err) {
    if (err instanceof ShellGone) throw new UnreachableError(target, `cannot open a shell in the ${transport.endpoint}: ${err.message}`);
    throw err;
  }
}
