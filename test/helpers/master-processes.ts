/**
 * A real master and real agents for end-to-end tests, each a `cairn` process of its own (the
 * built command, dist/cairn.cjs): `cairn master` on a SQLite store in a temp folder, agents
 * enrolled with `cairn agent enrol` and run with `cairn agent --master`, and an HTTPS client
 * for the master's API (checked against the master's CA, with a bearer token).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { CAIRN, cairnBin } from './cli.ts';
import { waitUntil } from './wait.ts';

/** A `cairn` process kept running, its output collected. */
export class CairnProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [CAIRN, ...args], { env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = once(this.child, 'exit').then(([code]) => code as number | null);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async waitFor(pattern: RegExp, what: string): Promise<RegExpMatchArray> {
    await waitUntil(() => pattern.test(this.stdout) || !this.running, () => `${what}; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
    const m = pattern.exec(this.stdout);
    assert.ok(m, `${what}: the process ended first (${this.child.exitCode}); stdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
    return m;
  }

  /** SIGTERM, and its exit code once it has gone. */
  async stop(): Promise<number | null> {
    if (this.running) this.child.kill('SIGTERM');
    return this.exited;
  }
}

export interface RunningMaster {
  process: CairnProcess;
  store: string;
  stateDir: string;
  caHash: string;
  caFile: string;
  agentUrl: string;
  apiUrl: string;
}

/** Where a master keeps its data, when not `dir`'s SQLite store and state folder. */
export interface MasterPlace {
  /** A store URL (e.g. an etcd cluster's, for several masters). */
  store?: string;
  stateDir?: string;
  /** More arguments for `cairn master` (e.g. `--stale-after 2h`). */
  extraArgs?: string[];
}

/** A master on `dir`'s store and state folder (or `place`'s); `ports` to start it again where it was. */
export async function startMaster(dir: string, ports: { api: number; agent: number } = { api: 0, agent: 0 }, agentHost = '127.0.0.1', place: MasterPlace = {}): Promise<RunningMaster> {
  const store = place.store ?? `sqlite:${join(dir, 'store.db')}`;
  const stateDir = place.stateDir ?? join(dir, 'master');
  const master = new CairnProcess(['master', '--store', store, '--state', stateDir, '--listen', `127.0.0.1:${ports.api}`, '--agent-listen', `${agentHost}:${ports.agent}`, '--name', 'localhost', ...(place.extraArgs ?? [])]);
  const api = await master.waitFor(/^API: (https:\/\/\S+)$/m, 'the master to listen');
  const caHash = /^CA (sha256:[0-9a-f]{64})/m.exec(master.stdout)![1]!;
  const agentUrl = /^agents: (https:\/\/\S+)$/m.exec(master.stdout)![1]!;
  return { process: master, store, stateDir, caHash, caFile: join(stateDir, 'ca.pem'), agentUrl, apiUrl: api[1]! };
}

/** `cairn master <args> --store S --json`'s JSON. */
export function masterJson<T>(m: RunningMaster, args: string[]): T {
  const r = cairnBin(['master', ...args, '--store', m.store, '--json']);
  assert.equal(r.status, 0, `cairn master ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Enrols agent `name` into `tlsDir` with a fresh one-time token. */
export function enrolAgent(m: RunningMaster, name: string, tlsDir: string): void {
  const { token } = masterJson<{ token: string }>(m, ['token', 'create', '--name', name]);
  const r = cairnBin(['agent', 'enrol', '--master', m.agentUrl, '--token', token, '--ca-hash', m.caHash, '--name', name, '--dir', tlsDir]);
  assert.equal(r.status, 0, `enrol ${name}: ${r.stderr}`);
}

/** A running `cairn agent --master`, once the master welcomed it. */
export async function startAgent(m: RunningMaster, tlsDir: string, workDir: string): Promise<CairnProcess> {
  const agent = new CairnProcess(['agent', '--master', m.agentUrl, '--dir', tlsDir, '--work-dir', workDir]);
  await agent.waitFor(/connected to \S+ as /, 'the agent to connect');
  return agent;
}

export interface ApiAnswer {
  status: number;
  json: unknown;
}

/** One call of the master's API with a bearer token. */
export function api(m: RunningMaster, token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiAnswer> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, m.apiUrl), {
      method, ca: readFileSync(m.caFile),
      headers: { authorization: `Bearer ${token}`, ...headers, ...(text !== undefined ? { 'content-type': 'application/json' } : {}) },
    }, (res) => {
      let data = '';
      res.setEncoding('utf8').on('data', (d: string) => (data += d)).on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(data);
        } catch {
          json = data;
        }
        resolve({ status: res.statusCode!, json });
      });
    });
    req.on('error', reject);
    req.end(text);
  });
}

export interface SseEvent {
  id: number;
  event: string;
  data: Record<string, unknown>;
}

/**
 * Reads a run's server-sent events, from after `lastEventId`, until `stop` says so (the
 * connection is then dropped, as a client that goes away) or the stream ends.
 */
export async function readEvents(m: RunningMaster, token: string, runId: string, lastEventId: number | undefined, stop: (e: SseEvent, all: SseEvent[]) => boolean,
  query = ''): Promise<SseEvent[]> {
  const { status, events } = await sseRequest(m, token, 'GET', `/api/v1/runs/${runId}/events${query}`, lastEventId !== undefined ? { 'last-event-id': String(lastEventId) } : {}, undefined, stop);
  if (status !== 200) throw new Error(`events of ${runId}: ${status}`);
  return events;
}

/**
 * `POST /api/v1/runs` accepting text/event-stream: the answer's status and Location, and its
 * events until `stop` says so or the stream ends (none when the answer is not a stream).
 */
export function startRunFollowing(m: RunningMaster, token: string, body: unknown, stop: (e: SseEvent, all: SseEvent[]) => boolean): Promise<{ status: number; location?: string; events: SseEvent[] }> {
  return sseRequest(m, token, 'POST', '/api/v1/runs', { 'content-type': 'application/json' }, JSON.stringify(body), stop);
}

function sseRequest(m: RunningMaster, token: string, method: string, path: string, headers: Record<string, string>, body: string | undefined,
  stop: (e: SseEvent, all: SseEvent[]) => boolean): Promise<{ status: number; location?: string; events: SseEvent[] }> {
  return new Promise((resolve, reject) => {
    const events: SseEvent[] = [];
    const req = request(new URL(path, m.apiUrl), {
      method,
      ca: readFileSync(m.caFile),
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...headers },
    }, (res) => {
      const answer = { status: res.statusCode!, ...(res.headers.location ? { location: res.headers.location } : {}), events };
      if (!res.headers['content-type']?.startsWith('text/event-stream')) {
        res.resume();
        resolve(answer);
        return;
      }
      let buffer = '';
      let done = false;
      res.setEncoding('utf8').on('data', (d: string) => {
        if (done) return;
        buffer += d;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const field = (name: string) => block.split('\n').find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
          const data = field('data');
          if (data === undefined) continue;
          const event = { id: Number(field('id')), event: field('event')!, data: JSON.parse(data) as Record<string, unknown> };
          events.push(event);
          if (stop(event, events)) {
            done = true;
            req.destroy();
            resolve(answer);
            return;
          }
        }
      });
      res.on('end', () => {
        if (!done) resolve(answer);
      });
    });
    req.on('error', (err) => {
      if (!req.destroyed || events.length === 0) reject(err);
    });
    req.end(body);
  });
}

/** Why tests of real master processes cannot run here (the built command is missing), said loudly; false when they can. */
export function builtCommandMissing(): string | false {
  const why = existsSync(CAIRN) ? false : `LOUD SKIP: ${CAIRN} is missing (npm run build makes it)`;
  if (why) process.stderr.write(`\n*** ${why} ***\n\n`);
  return why;
}

/**
 * A master on `dir` (its `place` as startMaster takes it), an operator's API token, and one agent
 * `name` enrolled and connected (its TLS folder `tls-NAME`, its work folder `work-NAME` in `dir`).
 */
export async function masterWithAgent(dir: string, place: MasterPlace = {}, name = 'web1'): Promise<{ master: RunningMaster; token: string; agent: CairnProcess }> {
  const master = await startMaster(dir, undefined, undefined, place);
  const token = masterJson<{ token: string }>(master, ['api-token', 'create', '--name', 'ops', '--role', 'operator']).token;
  enrolAgent(master, name, join(dir, `tls-${name}`));
  const agent = await startAgent(master, join(dir, `tls-${name}`), join(dir, `work-${name}`));
  return { master, token, agent };
}
