/**
 * Real OpenSSH servers for the tests: each with its own host key, config and authorized key, on
 * a loopback port or inside a network namespace of its own (a veth pair, so traffic crosses an
 * interface). Everything lives in a temp folder; `stop()` kills the server by PID.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SSHD = '/usr/sbin/sshd';

export interface Sshd {
  host: string;
  port: number;
  /** A client key the server accepts for root. */
  identityFile: string;
  /** A known_hosts file that lists this server's key. */
  knownHosts: string;
  /** The server's public host key line (`type base64`). */
  hostKey: string;
  dir: string;
  stop(): void;
  /** Kills every connection's server processes (the listener stays): clients see the link drop. */
  dropConnections(): void;
}

function childrenOf(pid: number): number[] {
  const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  return r.stdout.split('\n').map((l) => Number(l.trim())).filter((n) => n > 0);
}

/** Why SSH tests cannot run here, or undefined when they can. */
export function sshUnavailable(): string | undefined {
  if (!existsSync(SSHD)) return `${SSHD} is missing (install openssh-server: scripts/install.sh does)`;
  if (process.getuid?.() !== 0) return 'the SSH tests start sshd and log in as root: run them as root';
  return undefined;
}

export function netnsUnavailable(): string | undefined {
  try {
    execFileSync('ip', ['netns', 'add', 'cairn-probe'], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'del', 'cairn-probe'], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `network namespaces are not available here: ${(err as Error).message.split('\n')[0]}`;
  }
}

let sharedClientKey: string | undefined;

/** One client key pair for all servers of this process. */
export function clientKey(): string {
  if (!sharedClientKey) {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-sshkey-'));
    sharedClientKey = join(dir, 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'cairn-test', '-f', sharedClientKey]);
  }
  return sharedClientKey;
}

async function waitForPort(host: string, port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}:\n${log()}`);
    // A namespace's server is reached through its veth pair, from here like any other host.
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sshd did not listen on ${host}:${port}:\n${log()}`);
}

async function waitForListener(netns: string, port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}:\n${log()}`);
    const r = spawnSync('ip', ['netns', 'exec', netns, 'ss', '-Hltn', `sport = :${port}`], { encoding: 'utf8' });
    if (r.stdout.trim()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sshd did not listen on port ${port} in ${netns}:\n${log()}`);
}

export interface SshdOptions {
  /** Listen address; default 127.0.0.1. */
  host?: string;
  port: number;
  /** Run inside this network namespace (made by `netnsHost`). */
  netns?: string;
  /** Extra sshd_config lines. */
  config?: string;
  /** Keys allowed to log in (default: the shared client key); written to root's authorized_keys for this server. */
  authorizedKeys?: string[];
  /**
   * The server is in a namespace this machine has no route to (reached only through a jump
   * host): wait for it to listen by asking its namespace, not by connecting.
   */
  unroutable?: boolean;
}

export async function startSshd(options: SshdOptions): Promise<Sshd> {
  const host = options.host ?? '127.0.0.1';
  const dir = mkdtempSync(join(tmpdir(), 'cairn-sshd-'));
  const hostKeyFile = join(dir, 'ssh_host_ed25519_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'cairn-test-host', '-f', hostKeyFile]);
  const identityFile = clientKey();
  const keys = options.authorizedKeys ?? [readFileSync(`${identityFile}.pub`, 'utf8').trim()];
  // sshd reads authorized_keys as the user logging in: the folder and file must be readable.
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'authorized_keys'), `${keys.join('\n')}\n`, { mode: 0o644 });
  mkdirSync('/run/sshd', { recursive: true });
  writeFileSync(join(dir, 'sshd_config'), [
    `Port ${options.port}`, `ListenAddress ${host}`, `HostKey ${hostKeyFile}`, `PidFile ${dir}/sshd.pid`,
    `AuthorizedKeysFile ${dir}/authorized_keys .ssh/authorized_keys`, 'PubkeyAuthentication yes', 'PasswordAuthentication no',
    'KbdInteractiveAuthentication no', 'PermitRootLogin prohibit-password', 'UsePAM no', 'StrictModes no', 'PrintMotd no',
    'UseDNS no', 'MaxSessions 50', 'MaxStartups 50:30:100', 'LogLevel ERROR',
    // Debian's bash reads ~/.bashrc for commands sshd runs unless SHLVL is set (as in ../shared/bench).
    'SetEnv SHLVL=1', options.config ?? '',
  ].join('\n'));
  const argv = [SSHD, '-D', '-e', '-f', join(dir, 'sshd_config')];
  const child = options.netns ? spawn('ip', ['netns', 'exec', options.netns, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => {
    log += d.toString();
  });
  child.unref();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  if (options.unroutable && options.netns) await waitForListener(options.netns, options.port, child, () => log);
  else await waitForPort(host, options.port, child, () => log);
  const hostKey = readFileSync(`${hostKeyFile}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `${options.port === 22 ? host : `[${host}]:${options.port}`} ${hostKey}\n`);
  return {
    host, port: options.port, identityFile, knownHosts, hostKey, dir,
    stop: () => {
      try {
        child.kill('SIGTERM');
      } catch {
        // Already gone.
      }
    },
    dropConnections: () => {
      const listener = options.netns ? childrenOf(child.pid!)[0] : child.pid;
      for (const pid of listener ? childrenOf(listener) : []) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
    },
  };
}

/**
 * A network namespace `name` joined to this machine by a veth pair: this side 10.201.N.1/30, the
 * namespace's side 10.201.N.2/30 (the address returned). Removing the namespace removes the pair.
 */
export function netnsHost(name: string, n: number): { address: string; remove(): void } {
  const run = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
  const remove = () => {
    try {
      run('netns', 'del', name);
    } catch {
      // Not there.
    }
    try {
      run('link', 'del', `ve-${name}`);
    } catch {
      // Gone with the namespace.
    }
  };
  remove();
  run('netns', 'add', name);
  run('link', 'add', `ve-${name}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name);
  run('addr', 'add', `10.201.${n}.1/30`, 'dev', `ve-${name}`);
  run('link', 'set', `ve-${name}`, 'up');
  run('netns', 'exec', name, 'ip', 'addr', 'add', `10.201.${n}.2/30`, 'dev', 'eth0');
  run('netns', 'exec', name, 'ip', 'link', 'set', 'eth0', 'up');
  run('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  return { address: `10.201.${n}.2`, remove };
}
