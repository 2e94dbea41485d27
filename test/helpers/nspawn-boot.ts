/**
 * Boots a built disk image as a container, the way ../../shared/lab-guests.md B4c found works on
 * this machine kind (no udevd, no systemd as PID 1): its root partition loop-mounted in a private
 * mount namespace (the mount and its autoclear loop device go with it), `systemd-nspawn -D -b` in
 * a cgroup of its own, and the guest's own `systemctl is-system-running --wait` as the sign it
 * is up. `sh` runs commands in the guest; `stop` powers it off (SIGTERM to nspawn) and removes
 * the cgroup.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitUntil } from './wait.ts';

export interface BootedImage {
  /** `systemctl is-system-running` as the boot ended: running, degraded, … */
  state: string;
  sh(command: string): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

/** Why an image cannot be booted here, or undefined. */
export function nspawnUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'booting an image needs root';
  if (spawnSync('systemd-nspawn', ['--version']).status !== 0) return 'systemd-nspawn is not installed (systemd-container)';
  return undefined;
}

function cgroupRoots(): string[] {
  const roots = ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified'].filter((c) => existsSync(c));
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) roots.push('/sys/fs/cgroup');
  return roots;
}

function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number));
  } catch {
    return [];
  }
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Boots partition 1 (at `offset` bytes) of the raw `image`, machine name `name`. */
export async function bootImage(image: string, name: string, offset = 1048576): Promise<BootedImage> {
  const mnt = mkdtempSync(join(tmpdir(), 'cairn-boot-'));
  const log: string[] = [];
  const script = [
    'set -e',
    'for c in $CGS; do mkdir -p "$c/cairn-prov/$N" && echo $$ > "$c/cairn-prov/$N/cgroup.procs"; done',
    'mount -o "loop,offset=$OFFSET" "$IMG" "$MNT"',
    'exec systemd-nspawn --register=no --keep-unit --private-network --console=read-only -q -M "$N" -D "$MNT" -b',
  ].join('\n');
  const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], {
    env: { ...process.env, CGS: cgroupRoots().join(' '), N: name, OFFSET: String(offset), IMG: image, MNT: mnt },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (d) => log.push(String(d)));
  child.stderr.on('data', (d) => log.push(String(d)));
  let exited = false;
  const gone = new Promise<void>((done) => child.on('exit', () => { exited = true; done(); }));
  const removeCgroup = () => {
    for (const c of cgroupRoots()) {
      const dir = join(c, 'cairn-prov', name);
      if (existsSync(dir)) spawnSync('find', [dir, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';'], { stdio: 'ignore' });
      // The common parent goes too unless another boot (another test process) still uses it.
      spawnSync('rmdir', [join(c, 'cairn-prov')], { stdio: 'ignore' });
    }
    rmSync(`/run/systemd/nspawn/propagate/${name}`, { recursive: true, force: true });
  };
  const stop = async () => {
    if (!exited) child.kill('SIGTERM');
    await gone;
    removeCgroup();
    rmSync(mnt, { recursive: true, force: true });
  };
  try {
    let init: number | undefined;
    await waitUntil(() => {
      if (exited) throw new Error(`nspawn ended before the guest booted:\n${log.join('')}`);
      init = childrenOf(child.pid!).find((p) => comm(p) === 'systemd');
      return init !== undefined;
    }, `${name}'s systemd to start`);
    const sh = (command: string) => new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
      execFile('nsenter', ['-t', String(init), '-a', 'sh', '-c', command], { encoding: 'utf8' }, (err, stdout, stderr) => {
        done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      });
    });
    // --wait answers once the boot is over; before the guest's bus is up it fails at once.
    let state = '';
    await waitUntil(async () => {
      if (exited) throw new Error(`nspawn ended during the boot:\n${log.join('')}`);
      state = (await sh('systemctl is-system-running --wait')).stdout.trim();
      return state === 'running' || state === 'degraded' || state === 'maintenance';
    }, () => `${name} to finish booting (last state: ${state || 'no answer'})`, 120_000);
    return { state, sh, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
