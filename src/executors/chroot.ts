/**
 * The `chroot` executor (DESIGN §7): converges a root file system that is not running (an image
 * being built, a container's root, a rescue mount) with the shell protocol the `ssh` executor
 * speaks, over a local process: `chroot ROOT /bin/sh`.
 *
 * The shell runs in a mount (and UTS) namespace of its own, made private, where `/proc`, `/sys`
 * and `/dev` are bound into the root: the commands join that namespace (nsenter), so they have
 * them while the session lasts, and the host never sees those mounts at all. The kernel drops
 * them when the last process of the namespace ends, however Cairn ends (even killed outright),
 * so nothing is ever left mounted under the root.
 *
 * No service is started or stopped: while the session lasts, the root's `/usr/sbin/policy-rc.d`
 * answers 101 (invoke-rc.d and deb-systemd-invoke then start nothing as packages install); it is
 * removed as the shell exits, and one the root had already is left as it was. Users and groups
 * resolve inside the root (its own /etc/passwd and /etc/group), and the facts are the root's.
 */
import { statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { shellQuote } from '../lib/shell.ts';
import { ProcessTransport } from './shell/process-transport.ts';
import { ShellExecutor } from './shell/executor.ts';
import { ShellGone } from './shell/remote-shell.ts';
import { TransportLost } from './shell/transport.ts';
import { UnreachableError, type ExecutorCapability } from './types.ts';

/** What the chroot executor offers: files and commands, neither a running system nor Cairn inside. */
export const CHROOT_CAPABILITIES: readonly ExecutorCapability[] = [];

/** The policy-rc.d Cairn puts in place, told apart from the root's own by this line. */
const POLICY_MARK = '# cairn chroot executor: nothing starts in an offline root';
const POLICY_RC_D = '/usr/sbin/policy-rc.d';

/**
 * Inside the root: puts policy-rc.d in place unless the root has one (a link counts), runs the
 * protocol's shell on the same stdin, and removes Cairn's policy-rc.d (only if still Cairn's) as
 * it exits: at the end of the stdin (Cairn closed it, or was killed) or on a signal.
 */
const INNER = [
  `p=${POLICY_RC_D}; m=${shellQuote(POLICY_MARK)}; ours=`,
  `if [ ! -e "$p" ] && [ ! -L "$p" ] && [ -d "\${p%/*}" ]; then`,
  `  { printf '#!/bin/sh\\n%s\\nexit 101\\n' "$m" >"$p" && chmod 0755 "$p"; } 2>/dev/null && ours=1`,
  'fi',
  `trap '[ -n "$ours" ] && grep -qxF -- "$m" "$p" 2>/dev/null && rm -f "$p"' EXIT`,
  "trap 'exit 143' HUP INT TERM",
  '/bin/sh',
].join('\n');

/** Binds what commands in a root need into it (`$1`); a folder the root lacks is not bound. */
const MOUNTS = [
  'set -e',
  '[ ! -d "$1/proc" ] || mount -t proc proc "$1/proc"',
  '[ ! -d "$1/sys" ] || mount --rbind /sys "$1/sys"',
  '[ ! -d "$1/dev" ] || mount --rbind /dev "$1/dev"',
];

/**
 * On the host, in the new namespace: binds what commands in a root need, then becomes the shell
 * inside it. `$1` is the root.
 */
export const CHROOT_SHELL_SETUP = [...MOUNTS, `exec chroot "$1" /bin/sh -c ${shellQuote(INNER)}`].join('\n');

/**
 * The same for one command (`$2`) in a namespace of its own: how a nested chroot (executors/
 * nested.ts) runs commands, where the shell's namespace cannot be joined by pid.
 */
export const CHROOT_COMMAND_SETUP = [...MOUNTS, 'exec chroot "$1" /bin/sh -c "$2"'].join('\n');

const SETUP = CHROOT_SHELL_SETUP;

/** Why `root` cannot be converged by the chroot executor, or undefined when it can be tried. */
export function rootProblem(root: string): string | undefined {
  let isDir: boolean;
  try {
    isDir = statSync(root).isDirectory();
  } catch {
    return `the root ${root} does not exist`;
  }
  if (!isDir) return `the root ${root} is not a directory`;
  try {
    // Followed on this machine: a link relative to the root resolves the same inside it.
    statSync(join(root, 'bin/sh'));
  } catch {
    return `the root ${root} has no /bin/sh`;
  }
  if (process.getuid?.() !== 0) return `converging the root ${root} needs root privileges (chroot and mount namespaces)`;
  return undefined;
}

/** The shell's transport: a process in a private mount namespace, chrooted into `root`. */
export function chrootTransport(root: string): ProcessTransport {
  return new ProcessTransport({
    name: 'chroot',
    endpoint: root,
    shell: ['unshare', '--mount', '--uts', '--propagation', 'private', '--', '/bin/sh', '-c', SETUP, 'cairn-chroot', root],
    // Each command joins the shell's namespaces (its mounts) and the root.
    command: (command, shellPid) => {
      if (shellPid === undefined) throw new TransportLost('the chroot shell is not running');
      return ['nsenter', '-t', String(shellPid), '--mount', '--uts', '--', 'chroot', root, '/bin/sh', '-c', command];
    },
    // The root's own tools and user database: runuser where util-linux is, else su (BusyBox).
    asUser: (command, user) => `if command -v runuser >/dev/null 2>&1; then exec runuser -u ${shellQuote(user)} -- /bin/sh -c ${shellQuote(command)}; ` +
      `else exec su -s /bin/sh -c ${shellQuote(command)} ${shellQuote(user)}; fi`,
  });
}

/** Opens a chroot session on `root` (an absolute path, or relative to the working directory). */
export async function openChroot(target: string, root: string): Promise<ShellExecutor> {
  const path = isAbsolute(root) ? root : resolve(root);
  const problem = rootProblem(path);
  if (problem !== undefined) throw new UnreachableError(target, problem);
  try {
    return await ShellExecutor.start(target, chrootTransport(path), { offline: true, capabilities: CHROOT_CAPABILITIES });
  } catch (err) {
    if (err instanceof ShellGone) throw new UnreachableError(target, `cannot open a shell in the root ${path}: ${err.message}`);
    throw err;
  }
}
