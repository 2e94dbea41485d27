/**
 * A real etcd cluster for tests: three members (Debian's etcd-server 3.4) on loopback ports,
 * each with its own data folder under one temp folder. Ports are picked free per test process, so
 * several test files can run clusters at once. See ../../../shared/lab.md §5.
 *
 * Members are stopped with SIGKILL: the data is thrown away, and a member that has lost quorum
 * takes about 7 s to stop on SIGTERM (lab.md pitfall 17).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EtcdMember {
  name: string;
  /** host:port of its client URL. */
  endpoint: string;
  dataDir: string;
  /** Its process while it runs. */
  process: ChildProcess | undefined;
}

export interface EtcdCluster {
  /** `etcd:` store URL naming every member. */
  url: string;
  /** host:port of each member's client URL, in member order. */
  endpoints: string[];
  members: EtcdMember[];
  /** Index of the member that is the leader now (asks the members). */
  leader(): Promise<number>;
  /** SIGKILLs one member and waits until its process is gone. */
  kill(member: number): Promise<void>;
  /** Starts a killed member again from its data folder and waits until it is healthy. */
  restart(member: number): Promise<void>;
  /** Runs etcdctl against the cluster (e.g. `compact 12`). */
  etcdctl(...args: string[]): { code: number; stdout: string; stderr: string };
  /** SIGKILLs every member and removes the data. */
  stop(): Promise<void>;
}

/** Why a cluster cannot run here, or undefined. Tests then skip loudly. */
export function etcdUnavailable(): string | undefined {
  for (const tool of ['etcd', 'etcdctl']) {
    const r = spawnSync(tool, [tool === 'etcd' ? '--version' : 'version'], { encoding: 'utf8' });
    if (r.error || r.status !== 0) {
      return `${tool} is not installed (Debian: apt-get install etcd-server etcd-client)`;
    }
  }
  return undefined;
}

const running = new Set<ChildProcess>();
// If a test process dies without calling stop(), its members must not outlive it.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export async function startEtcdCluster(size = 3): Promise<EtcdCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-etcd-'));
  const ports = await freePorts(size * 2);
  const members: EtcdMember[] = [];
  const peers: string[] = [];
  for (let i = 0; i < size; i++) {
    const name = `m${i + 1}`;
    members.push({ name, endpoint: `127.0.0.1:${ports[2 * i]}`, dataDir: join(dir, name), process: undefined });
    peers.push(`${name}=http://127.0.0.1:${ports[2 * i + 1]}`);
  }
  const token = `cairn-${process.pid}-${Date.now()}`;

  const launch = (i: number) => {
    const m = members[i]!;
    const peer = peers[i]!.slice(m.name.length + 1);
    const log = openSync(join(dir, `${m.name}.log`), 'a');
    const child = spawn('etcd', [
      '--name', m.name, '--data-dir', m.dataDir, '--logger=zap', '--log-level=warn',
      '--listen-client-urls', `http://${m.endpoint}`, '--advertise-client-urls', `http://${m.endpoint}`,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', peers.join(','), '--initial-cluster-token', token, '--initial-cluster-state', 'new',
    ], { stdio: ['ignore', log, log] });
    closeSync(log);
    running.add(child);
    child.on('exit', () => running.delete(child));
    m.process = child;
  };

  const kill = async (i: number) => {
    const child = members[i]!.process;
    members[i]!.process = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await gone;
  };

  const cluster: EtcdCluster = {
    url: `etcd:${members.map((m) => m.endpoint).join(',')}`,
    endpoints: members.map((m) => m.endpoint),
    members,
    async leader() {
      for (const m of members) {
        if (!m.process) continue;
        const status = await memberStatus(m.endpoint).catch(() => undefined);
        if (status && status.leader === status.header.member_id) return members.indexOf(m);
      }
      throw new Error('no etcd member says it is the leader');
    },
    kill,
    async restart(i) {
      await kill(i);
      launch(i);
      await waitHealthy([members[i]!], dir);
    },
    etcdctl(...args) {
      const r = spawnSync('etcdctl', [`--endpoints=${cluster.endpoints.join(',')}`, ...args], { encoding: 'utf8', timeout: 10_000 });
      return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    },
    async stop() {
      await Promise.all(members.map((_, i) => kill(i)));
      rmSync(dir, { recursive: true, force: true });
    },
  };

  members.forEach((_, i) => launch(i));
  try {
    await waitHealthy(members, dir);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

interface MemberStatus { header: { member_id: string }; leader: string }

/** Asks one member for its status through etcd's JSON gateway (no etcdctl process per call). */
async function memberStatus(endpoint: string): Promise<MemberStatus> {
  const res = await fetch(`http://${endpoint}/v3/maintenance/status`, {
    method: 'POST', body: '{}', signal: AbortSignal.timeout(1000),
  });
  if (!res.ok) throw new Error(`status of ${endpoint}: HTTP ${res.status}`);
  return (await res.json()) as MemberStatus;
}

/** Waits until each member answers /health with a leader (about 1.5 s for a new cluster). */
async function waitHealthy(members: EtcdMember[], dir: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (const m of members) {
    for (;;) {
      if (m.process && (m.process.exitCode !== null || m.process.signalCode !== null)) {
        throw new Error(`etcd member ${m.name} exited; see ${join(dir, `${m.name}.log`)}`);
      }
      const health = await fetch(`http://${m.endpoint}/health`, { signal: AbortSignal.timeout(1000) })
        .then((r) => r.json() as Promise<{ health?: string }>).catch(() => undefined);
      if (health?.health === 'true') break;
      if (Date.now() > deadline) throw new Error(`etcd member ${m.name} not healthy after 20 s; see ${join(dir, `${m.name}.log`)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Ports nothing listens on now (the kernel picks them; a race with another process is unlikely). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  })));
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}
