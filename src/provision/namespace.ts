/**
 * Starts a build's child process in its own mount namespace (lab-guests.md B2, variants A and C):
 * every mount of the host is remounted read-only there but /proc, /sys and /dev; the build's work
 * folder stays writable; /tmp is a fresh tmpfs; and the child runs without CAP_SYS_ADMIN, so it
 * cannot remount anything writable again (nor mount at all: it asks the parent).
 *
 * Folders the build needs that lie under the host's /tmp (a work or output folder, the site) are
 * carried into the fresh /tmp at the same paths: read-only but for the work folder.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

declare const __CAIRN_BUILD__: string | undefined;

const SETUP = String.raw`set -eu
W=$1; shift
CARRY=""
while [ "$1" != "--" ]; do CARRY="$CARRY $1"; shift; done
shift
mount --bind "$W" "$W"
exec 9</tmp
mount -o remount,bind,ro /
findmnt -rn -o TARGET | sed 's/\\x20/ /g' | sort -u | while IFS= read -r m; do
  case $m in /|"$W"|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue;; esac
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
for p in $CARRY; do
  rel=$(printf %s "$p" | sed "s|^/tmp/||")
  [ -d "/proc/self/fd/9/$rel" ] || continue
  mkdir -p "/tmp/$rel"
  mount --no-canonicalize --bind "/proc/self/fd/9/$rel" "/tmp/$rel"
  if [ "$p" = "$W" ]; then mount -o remount,bind,rw "/tmp/$rel"; fi
done
exec 9<&-
exec setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin --pdeathsig KILL -- "$@"
`;

/** The command that runs a build child: the built `cairn __build-child`, or child-main.ts from source. */
function childCommand(): string[] {
  if (typeof __CAIRN_BUILD__ === 'string') return [process.execPath, process.argv[1]!, '__build-child'];
  return [process.execPath, '--import', import.meta.resolve('tsx'), fileURLToPath(new URL('./child-main.ts', import.meta.url))];
}

const underTmp = (p: string) => p.startsWith('/tmp/');

/**
 * The folder Cairn's own code runs from (the package: dist/ and node_modules/, or the checkout
 * run from source): the child loads it, so it is carried into the fresh /tmp when it lies under
 * the host's /tmp (a checkout or CI clone there).
 */
function codeRoot(): string {
  if (typeof __CAIRN_BUILD__ === 'string') return dirname(dirname(realpathSync(process.argv[1]!)));
  return fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
}

/**
 * Starts the child: its stdout and stderr are pipes, fd 3 the IPC channel. It leads a process
 * group of its own (so the terminal's Ctrl-C reaches only the parent, which stops the build).
 */
export function startChild(workDir: string, carry: string[]): ChildProcess {
  const carried = [...new Set([...carry, codeRoot()].filter(underTmp))].sort();
  if (underTmp(workDir) && !carried.includes(workDir)) carried.push(workDir);
  return spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', SETUP, 'sh', workDir, ...carried, '--', ...childCommand()], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    detached: true,
    env: { ...process.env, TMPDIR: '/tmp' },
  });
}

/** Mounts the parent makes in the child's namespace; a bind made there is read-only until remounted. */
export function inNamespace(pid: number, argv: string[]): string[] {
  return ['nsenter', '--target', String(pid), '--mount', '--', ...argv];
}
