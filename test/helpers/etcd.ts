/**
 * A real etcd cluster for tests: three members (Debian's etcd-server 3.4) on loopback ports,
 * each with its own data folder under one temp folder. Ports are picked free per test process, so
 * several test files can run clusters at once. See ../../../shared/lab.md §5.
 *
 * Members are stopped with SIGKILL: the data is thrown away, and a member that has lost quorum
 * takes about 7 s to stop on SIGTERM (lab.md pitfall 17).
 *
 * With `tls` (files from makeCertificates), members serve their client URLs over https and demand
 * a client certificate signed by the CA (`--client-cert-auth`); peers still talk plain http.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
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

/** PEM files of a throwaway CA, a server certificate for 127.0.0.1 and a client certificate. */
export interface EtcdTlsFiles {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export interface EtcdClusterOptions {
  /** Serve clients over TLS with these files and require client certificates. */
  tls?: EtcdTlsFiles;
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

/** Why makeCertificates cannot run here, or undefined. */
export function opensslUnavailable(): string | undefined {
  const r = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  return r.error || r.status !== 0 ? 'openssl is not installed (Debian: apt-get install openssl)' : undefined;
}

/**
 * Makes a CA and, signed by it, a server certificate for 127.0.0.1 (subjectAltName IP:127.0.0.1;
 * usable as a client certificate too, as etcd's own gateway needs) and a client certificate
 * (CN `cn`), in `dir`. EC P-256 keys: quick to make. Valid for two days.
 */
export function makeCertificates(dir: string, cn = 'cairn'): EtcdTlsFiles {
  const f = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.error || r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.error?.message ?? r.stderr}`);
  };
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...newKey, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=cairn-test-ca');
  const sign = (name: string, subject: string, extensions: string) => {
    writeFileSync(f(`${name}.ext`), extensions);
    openssl('req', ...newKey, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', subject);
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
      '-out', f(`${name}.pem`), '-days', '2', '-extfile', f(`${name}.ext`));
  };
  sign('server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  sign('client', `/CN=${cn}`, 'extendedKeyUsage=clientAuth\n');
  return { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}

export async function startEtcdCluster(size = 3, options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  const { tls } = options;
  const scheme = tls ? 'https' : 'http';
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
      '--listen-client-urls', `${scheme}://${m.endpoint}`, '--advertise-client-urls', `${scheme}://${m.endpoint}`,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', peers.join(','), '--initial-cluster-token', token, '--initial-cluster-state', 'new',
      ...(tls ? ['--cert-file', tls.serverCert, '--key-file', tls.serverKey, '--trusted-ca-file', tls.ca, '--client-cert-auth'] : []),
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
        const status = await memberStatus(m.endpoint, tls).catch(() => undefined);
        if (status && status.leader === status.header.member_id) return members.indexOf(m);
      }
      throw new Error('no etcd member says it is the leader');
    },
    kill,
    async restart(i) {
      await kill(i);
      launch(i);
      await waitHealthy([members[i]!], dir, tls);
    },
    etcdctl(...args) {
      const endpoints = cluster.endpoints.map((e) => `${scheme}://${e}`).join(',');
      const credentials = tls ? [`--cacert=${tls.ca}`, `--cert=${tls.clientCert}`, `--key=${tls.clientKey}`] : [];
      const r = spawnSync('etcdctl', [`--endpoints=${endpoints}`, ...credentials, ...args], { encoding: 'utf8', timeout: 10_000 });
      return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    },
    async stop() {
      await Promise.all(members.map((_, i) => kill(i)));
      rmSync(dir, { recursive: true, force: true });
    },
  };

  members.forEach((_, i) => launch(i));
  try {
    await waitHealthy(members, dir, tls);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

interface MemberStatus { header: { member_id: string }; leader: string }

/** Asks one member for its status through etcd's JSON gateway (no etcdctl process per call). */
async function memberStatus(endpoint: string, tls?: EtcdTlsFiles): Promise<MemberStatus> {
  return (await getJson(endpoint, '/v3/maintenance/status', tls, '{}')) as MemberStatus;
}

/** GET (or, with a body, POST) of a member's HTTP endpoint; over https with the client certificate when `tls`. */
async function getJson(endpoint: string, path: string, tls: EtcdTlsFiles | undefined, body?: string): Promise<unknown> {
  if (!tls) {
    const res = await fetch(`http://${endpoint}${path}`, { ...(body !== undefined && { method: 'POST', body }), signal: AbortSignal.timeout(1000) });
    if (!res.ok) throw new Error(`${path} of ${endpoint}: HTTP ${res.status}`);
    return res.json();
  }
  // fetch cannot be given a CA or a client certificate.
  return new Promise((resolve, reject) => {
    const req = request(`https://${endpoint}${path}`, {
      method: body === undefined ? 'GET' : 'POST', timeout: 1000,
      ca: readFileSync(tls.ca), cert: readFileSync(tls.clientCert), key: readFileSync(tls.clientKey),
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`${path} of ${endpoint}: HTTP ${res.statusCode}`));
        else resolve(JSON.parse(text));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${path} of ${endpoint}: no answer`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Waits until each member answers /health with a leader (about 1.5 s for a new cluster). */
async function waitHealthy(members: EtcdMember[], dir: string, tls?: EtcdTlsFiles): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (const m of members) {
    for (;;) {
      if (m.process && (m.process.exitCode !== null || m.process.signalCode !== null)) {
        throw new Error(`etcd member ${m.name} exited; see ${join(dir, `${m.name}.log`)}`);
      }
      const health = await (getJson(m.endpoint, '/health', tls) as Promise<{ health?: string }>).catch(() => undefined);
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
