/**
 * The test lab: throwaway Debian bookworm hosts with a real systemd as PID 1, booted with
 * systemd-nspawn on an overlay of one cached golden root, each in a network namespace of its own
 * with sshd on port 22. test/lab/lab.sh does the work (and documents it); this is its API for the
 * tests. Hosts are removed by `stop()`, by an exit handler if a test process ends without it, and
 * by the next `startLab` (in any process) if their owner died without running either.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import type { NodeResult } from '../../src/engine/engine.ts';
import { makeSite, runCli } from './cli.ts';
import type { Report } from './converge.ts';

export const LAB_SH = resolve(import.meta.dirname, '../lab/lab.sh');

export interface LabHost {
  name: string;
  /** IPv4 of the host; its sshd listens on port 22. */
  address: string;
  /** Settings for a site's target: executor ssh, host, port, user root, identity_file, known_hosts (this host's key recorded). */
  target: { executor: 'ssh'; host: string; port: number; user: string; identity_file: string; known_hosts: string };
  /** Runs a shell command as root on the host (for assertions), not through Cairn. */
  sh(command: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** As `sh`, for a command that must succeed (the test fails with its output otherwise): its stdout. */
  must(command: string): Promise<string>;
}

export interface Lab {
  hosts: LabHost[];
  /** Names of the .deb packages in the local apt repo the hosts use (at least hello and tree). */
  packages: string[];
  stop(): Promise<void>;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(argv: string[]): Promise<RunResult> {
  return new Promise((done) => {
    execFile(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (!err) return done({ code: 0, stdout, stderr });
      // a number: the exit code; a string: it could not start (ENOENT…); null: killed by a signal
      if (typeof err.code === 'number') return done({ code: err.code, stdout, stderr });
      if (err.signal) return done({ code: 128 + (constants.signals[err.signal] ?? 0), stdout, stderr });
      done({ code: 127, stdout, stderr: stderr || err.message });
    });
  });
}

async function labSh(...args: string[]): Promise<string> {
  const r = await run(['sh', LAB_SH, ...args]);
  if (r.code !== 0) throw new Error(`lab.sh ${args.join(' ')} failed (exit ${r.code}):\n${r.stderr.trim()}`);
  return r.stdout.trim();
}

function onPath(cmd: string): boolean {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin']);
  return dirs.some((d) => {
    try {
      accessSync(join(d, cmd), fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

let unavailable: string | undefined | null = null;

/** Why the lab cannot run here, or undefined when it can. */
export function labUnavailable(): string | undefined {
  if (unavailable === null) unavailable = probe();
  return unavailable;
}

function probe(): string | undefined {
  if (process.platform !== 'linux') return 'the lab needs Linux (systemd-nspawn)';
  if (process.getuid?.() !== 0) return 'the lab boots containers and network namespaces: run as root';
  const tools: Record<string, string> = {
    'systemd-nspawn': 'systemd-container', debootstrap: 'debootstrap', ip: 'iproute2', nsenter: 'util-linux',
    flock: 'util-linux', ssh: 'openssh-client', 'ssh-keygen': 'openssh-client', 'dpkg-scanpackages': 'dpkg-dev',
    'dpkg-deb': 'dpkg', 'apt-get': 'apt', mountpoint: 'util-linux',
  };
  const missing = Object.entries(tools).filter(([cmd]) => !onPath(cmd)).map(([cmd, pkg]) => `${cmd} (${pkg})`);
  if (missing.length) return `missing tools: ${missing.join(', ')} (scripts/install.sh installs them)`;
  if (!existsSync('/etc/apt/sources.list.d/debian.sources') && !existsSync('/etc/apt/sources.list')) {
    return 'no Debian mirror configured (debootstrap builds the hosts from it)';
  }
  if (!readFileSync('/proc/filesystems', 'utf8').includes('\toverlay')) {
    // the module may not be loaded yet: a mount attempt loads it
    spawnSync('modprobe', ['overlay'], { stdio: 'ignore' });
    if (!readFileSync('/proc/filesystems', 'utf8').includes('\toverlay')) return 'the kernel has no overlayfs';
  }
  if (!existsSync('/sys/fs/cgroup/systemd') && !existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    return 'no systemd-compatible cgroup hierarchy (/sys/fs/cgroup/systemd or cgroup2 at /sys/fs/cgroup)';
  }
  const probeNs = `cairnlabprobe${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', probeNs], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'del', probeNs], { stdio: 'pipe' });
  } catch (err) {
    return `network namespaces are not available: ${(err as Error).message.split('\n')[0]}`;
  }
  return undefined;
}

/** Hosts of this process not removed yet, and boots under way (for the exit handler). */
const live = new Set<string>();
let booting = 0;
let handlersInstalled = false;

/** Kills every host this process owns, booting ones included; synchronous, for exit handlers. */
function removeAllSync(): void {
  if (live.size === 0 && booting === 0) return;
  spawnSync('sh', [LAB_SH, 'rmowner', String(process.pid)], { stdio: 'ignore', timeout: 60_000 });
  live.clear();
}

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', removeAllSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      removeAllSync();
      process.kill(process.pid, signal);
    });
  }
}

/** Fresh hosts, systemd running, sshd up. `repo: true` gives them the local apt repository. */
export interface LabOptions {
  /** Serve the local apt repository (hello, tree, …) into the hosts; their only apt source. */
  repo?: boolean;
  /** Folders or files of this machine to mount into every host (`readOnly`: --bind-ro). */
  binds?: { source: string; target: string; readOnly?: boolean }[];
}

/** Binds that let a host run this checkout's Cairn: this machine's node, the repository at /opt/cairn. */
export function cairnBinds(): NonNullable<LabOptions['binds']> {
  return [
    { source: realpathSync(process.execPath), target: '/usr/local/bin/node', readOnly: true },
    { source: resolve(import.meta.dirname, '../..'), target: '/opt/cairn', readOnly: true },
  ];
}

export async function startLab(count: number, options: LabOptions = {}): Promise<Lab> {
  const why = labUnavailable();
  if (why) throw new Error(`the lab cannot run here: ${why}`);
  installExitHandlers();
  const rootDir = await labSh('root');
  const repoDir = options.repo ? await labSh('repo') : undefined;
  await labSh('gc');
  const packages = repoDir
    ? [...new Set(readdirSync(repoDir).filter((f) => f.endsWith('.deb')).map((f) => f.split('_')[0]!))].sort()
    : [];

  const dir = mkdtempSync(join(tmpdir(), 'cairn-lab-'));
  const knownHosts = join(dir, 'known_hosts');
  const identityFile = join(rootDir, 'id_ed25519');
  const started: Booted[] = [];
  const remove = async (mode: 'poweroff' | 'kill') => {
    await Promise.all(started.map(async (h) => {
      await labSh('rm', h.slot, ...(mode === 'kill' ? ['kill'] : []));
      live.delete(h.slot);
    }));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Parallel boots; one failure fails the lab, after the others are up (then removed).
    const boots = await Promise.allSettled(Array.from({ length: count }, async () => {
      booting++;
      try {
        const out = await labSh('new', String(process.pid), ...(options.repo ? ['--repo'] : []),
          ...(options.binds ?? []).map((b) => `--bind${b.readOnly ? '-ro' : ''}=${b.source}:${b.target}`));
        const [slot, name, address, fs] = out.split('\n').pop()!.split(' ') as [string, string, string, string];
        const host = { slot, name, address, fs };
        started.push(host);
        live.add(slot);
        return host;
      } finally {
        booting--;
      }
    }));
    const failed = boots.find((b): b is PromiseRejectedResult => b.status === 'rejected');
    if (failed) throw failed.reason;
    // The order of `count` boots, not of their completion.
    const booted = boots.map((b) => (b as PromiseFulfilledResult<Booted>).value);

    // Cairn always verifies host keys: record each host's key (its only one, ed25519) as ssh would.
    writeFileSync(knownHosts, booted.map((h) => `${h.address} ${readFileSync(join(h.fs, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8').trim()}\n`).join(''));

    // systemd-nspawn mounts /proc/sys read-only; with --private-network it makes /proc/sys/net
    // writable again (those keys belong to the guest's own network namespace), but a guest that
    // joins a namespace with --network-namespace-path does not get that: do what nspawn would, so
    // a lab host's net.* sysctls are as writable as a real machine's.
    await Promise.all(booted.map(async (h) => {
      const r = await guestSh(h.slot, 'mount --bind /proc/sys/net /proc/sys/net && mount -o remount,bind,rw /proc/sys/net');
      if (r.code !== 0) throw new Error(`${h.name}: cannot make /proc/sys/net writable:\n${r.stdout}${r.stderr}`);
    }));

    if (repoDir) {
      // Like a real host, whose package lists are there before anyone installs something.
      await Promise.all(booted.map(async (h) => {
        const r = await guestSh(h.slot, 'apt-get -q update');
        if (r.code !== 0) throw new Error(`${h.name}: apt-get update failed:\n${r.stdout}${r.stderr}`);
      }));
    }

    const hosts: LabHost[] = booted.map((h) => ({
      name: h.name,
      address: h.address,
      target: { executor: 'ssh', host: h.address, port: 22, user: 'root', identity_file: identityFile, known_hosts: knownHosts },
      sh: (command: string) => guestSh(h.slot, command),
      must: async (command: string) => {
        const r = await guestSh(h.slot, command);
        assert.equal(r.code, 0, `${command}: exit ${r.code}\n${r.stdout}${r.stderr}`);
        return r.stdout;
      },
    }));
    let stopping: Promise<void> | undefined;
    return { hosts, packages, stop: () => (stopping ??= remove('poweroff')) };
  } catch (err) {
    await remove('kill').catch(() => undefined);
    throw err;
  }
}

interface Booted {
  slot: string;
  name: string;
  address: string;
  /** The host's root file system, as seen from here. */
  fs: string;
}

/** A root shell inside the guest's namespaces (no SSH needed), with a clean environment. */
async function guestSh(slot: string, command: string): Promise<RunResult> {
  const pid = await labSh('pid', slot);
  if (!pid) return { code: 255, stdout: '', stderr: `lab host in slot ${slot} is not running` };
  return run([
    'nsenter', '-t', pid, '-a', '-r', '-w', 'env', '-i', '-C', '/root', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'HOME=/root', 'LANG=C.UTF-8', 'DEBIAN_FRONTEND=noninteractive', 'sh', '-c', command,
  ]);
}

/** `cairn apply --json` of a site whose one target is `host`, running `parts` (YAML list items): its nodes' results. */
export async function applyParts(host: LabHost, parts: string[], expectStatus = 0): Promise<NodeResult[]> {
  const site = makeSite({
    'cairn.yaml': `${targetYaml(host)}    run: [s]\n`,
    'states/s.yaml': `s:\n${parts.map((p) => `${p}\n`).join('')}`,
  });
  const r = await runCli(['apply', '--site', site, '--json']);
  assert.equal(r.status, expectStatus, `cairn apply exit code; stderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
  return (JSON.parse(r.stdout) as Report).targets[0]!.nodes;
}

/** The `targets:` block of a site whose one target is `host` over SSH (named `name`); the caller adds its `run:` line. */
export function targetYaml(host: LabHost, name = host.name): string {
  const settings = Object.entries(host.target).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`).join('');
  return `targets:\n  ${name}:\n${settings}`;
}
