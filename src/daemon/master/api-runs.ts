/**
 * The HTTP API's targets, runs, revisions and agents (DESIGN §9, `/api/v1` on the API port),
 * as routes of the master's fixed table (routes.ts): the router has checked the caller's role
 * and parsed the body against the schema given here before a handler runs.
 *
 * `POST /runs` takes either the compiled runs themselves (`compiled: {target: codec text}`: what
 * `cairn apply -t T` sends for a target with `executor: agent`, compiled on the operator's
 * machine) or nothing but the targets, which the master then compiles from the pushed head
 * revision with each agent's last facts (`vars` apply then). `GET /runs/:id/events` streams the
 * run's events as server-sent events whose ids are the events' seq: a client that reconnects
 * with Last-Event-ID gets every event after it, none twice. A POST that accepts
 * `text/event-stream` is answered with that stream from the first event (the run's id in
 * Location), so starting and following a run is one request.
 */
import type { ServerResponse } from 'node:http';
import { createTwoFilesPatch } from 'diff';
import { z } from 'zod';
import { KEYS, readBlob, readManifest, type Manifest } from '../../store/documents.ts';
import type { Store } from '../../store/types.ts';
import { MAX_FRAME_BYTES, opOptionsSchema } from '../protocol.ts';
import { AGENT_NAME, type AgentHub } from './agents.ts';
import { certificateRecord, MASTER_KEYS, readRecord } from './records.ts';
import { HttpError, type Route, type RouteRequest } from './routes.ts';
import { eventText, RUN_ID, type RunEvent, type RunManager, type RunRecord } from './runs.ts';

/**
 * Compiles targets of the pushed head revision with the facts given (the CLI's compiler, handed
 * in by whoever starts the master). Throws HttpError(422) for a site that does not compile,
 * HttpError(409) when nothing was pushed.
 */
export type CompileHead = (targets: { name: string; facts: Record<string, unknown> }[], vars: Record<string, unknown>) =>
  Promise<{ revision: string; compiled: Map<string, string> }>;

/**
 * Each target's groups in the pushed head revision (its catalog), or undefined when nothing was
 * pushed. Throws HttpError(422) for a revision whose site does not load.
 */
export type HeadGroups = () => Promise<{ revision: string; groups: Map<string, string[]> } | undefined>;

export interface ApiRunDeps {
  store: Store;
  agents: AgentHub;
  runs: RunManager;
  compileHead?: CompileHead;
  headGroups?: HeadGroups;
  /** The UI shows a target whose last run is older than this as stale (default 24 h). */
  staleAfterSeconds?: number;
}

const targetName = z.string().regex(AGENT_NAME, 'a target name');

export const runRequestSchema = z.strictObject({
  mode: z.enum(['plan', 'apply', 'facts', 'run']),
  targets: z.array(targetName).min(1).max(10_000),
  /** As `--var k=v` (dotted keys set nested values). */
  vars: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*$/, 'a variable name'), z.unknown()).optional(),
  diff: z.boolean().optional(),
  argv: z.array(z.string()).min(1).optional(),
  /** Target → its compiled run (graph/codec.ts's text), compiled by the caller. */
  compiled: z.record(targetName, z.string()).optional(),
  /** The rest of the engine's options (fail_fast, tags, lock_wait_s, become). */
  options: opOptionsSchema.omit({ diff: true }).optional(),
}).refine((r) => (r.mode === 'run') === (r.argv !== undefined), { message: 'argv is given exactly when mode is run', path: ['argv'] })
  .refine((r) => r.compiled === undefined || r.vars === undefined, { message: 'vars are compiled into the runs sent: give either compiled or vars', path: ['vars'] })
  .refine((r) => r.compiled === undefined || r.mode === 'plan' || r.mode === 'apply', { message: 'only a plan or apply carries compiled runs', path: ['compiled'] })
  .refine((r) => r.compiled === undefined || r.targets.every((t) => Object.hasOwn(r.compiled!, t)), { message: 'a compiled run for every target', path: ['compiled'] });

/** The certificate that holds agent `name` (the newest issued to it), and whether it is valid now. */
async function certificateOf(store: Store, name: string) {
  const holder = await store.get(MASTER_KEYS.holder(name));
  const serial = holder?.value.toString('utf8');
  const cert = serial ? readRecord(certificateRecord, await store.get(MASTER_KEYS.certificate(serial))) : undefined;
  if (!cert) return null;
  const revoked = (await store.get(MASTER_KEYS.revocation(cert.serial))) !== undefined;
  const status = revoked ? 'revoked' : Date.parse(cert.not_after) <= Date.now() ? 'expired' : 'valid';
  return { serial: cert.serial, not_before: cert.not_before, not_after: cert.not_after, issued: cert.issued, via: cert.via, status };
}

function lastRun(outcome: NonNullable<RunRecord['report']>['targets'][number] | undefined) {
  if (!outcome) return {};
  const counts = 'counts' in outcome ? outcome.counts : undefined;
  return { status: outcome.status, ...(counts ? { changed: counts.changed, failed: counts.failed } : {}) };
}

/** The SSE text of one event: its seq as the id, its type as the event name. */
function sseText(event: RunEvent, nodesOnce: boolean): string {
  return `id: ${event.seq}\nevent: ${event.type}\ndata: ${nodesOnce ? leanText(event) : eventText(event)}\n\n`;
}

const withoutNodes = <T extends object>(outcome: T): T => {
  if (!('nodes' in outcome)) return outcome;
  const { nodes: _nodes, ...rest } = outcome;
  return rest as T;
};

/**
 * An event's text for a follower that asked for `?nodes=once`: a target's outcome and the run's
 * report without the node results, which that follower has from the `node` events already (a
 * 742-node run's finished events carried them twice more, most of its stream).
 */
function leanText(event: RunEvent): string {
  if (event.type === 'target' && event.phase === 'finished') return JSON.stringify({ ...event, outcome: withoutNodes(event.outcome) });
  if (event.type === 'run' && event.report) return JSON.stringify({ ...event, report: { ...event.report, targets: event.report.targets.map(withoutNodes) } });
  return eventText(event);
}

/** `?nodes=once`: the node results only in the `node` events (leanText). */
function nodesOnce(req: RouteRequest): boolean {
  const value = req.query.get('nodes');
  if (value === null) return false;
  if (value !== 'once') throw new HttpError(400, '?nodes= takes only once');
  return true;
}

/** Where a follower resumes: after Last-Event-ID (a reconnecting EventSource), or `?after=N`. */
function resumeAfter(req: RouteRequest): number {
  const header = req.headers['last-event-id'];
  const value = (Array.isArray(header) ? header[0] : header) ?? req.query.get('after') ?? '0';
  if (!/^\d{1,10}$/.test(value.trim())) throw new HttpError(400, 'Last-Event-ID (or ?after=) must be an event number');
  return Number(value.trim());
}

async function followEvents(runs: RunManager, req: RouteRequest, res: ServerResponse): Promise<undefined> {
  const id = req.params.id!;
  const after = resumeAfter(req);
  const lean = nodesOnce(req);
  if (!RUN_ID.test(id) || !(await runs.get(id))) throw new HttpError(404, `no run ${id}`);
  return streamEvents(runs, id, after, lean, req, res, 200, {});
}

/** A POST /runs that accepts text/event-stream is answered with the run's events (its id in Location): one request, not two. */
function wantsEvents(req: RouteRequest): boolean {
  const accept = req.headers.accept;
  return typeof accept === 'string' && accept.split(',').some((type) => type.trim().split(';')[0] === 'text/event-stream');
}

/** Streams run `id`'s events after seq `after` as server-sent events, until its last or the client goes. */
async function streamEvents(runs: RunManager, id: string, after: number, lean: boolean, req: RouteRequest, res: ServerResponse, status: number, headers: Record<string, string>): Promise<undefined> {
  res.writeHead(status, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no', ...headers });
  res.write('retry: 1000\n\n');
  await new Promise<void>((resolve) => {
    let stop: (() => void) | undefined;
    // A comment now and then keeps proxies from closing a quiet stream.
    const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    // The events handed over in one go (the frames of one read from an agent, a replay) leave in
    // one write, not one each, and before the store's batch of them is written.
    let unsent = '';
    const flush = () => {
      if (unsent && !res.writableEnded) res.write(unsent);
      unsent = '';
    };
    const send = (event: RunEvent) => {
      if (!unsent) queueMicrotask(flush);
      unsent += sseText(event, lean);
    };
    const end = () => {
      clearInterval(keepAlive);
      stop?.();
      flush();
      res.end();
      resolve();
    };
    req.signal.addEventListener('abort', end, { once: true });
    res.on('close', end);
    void runs.follow(id, after, send, end).then((unfollow) => {
      stop = unfollow;
      if (res.writableEnded) unfollow?.();
    });
  });
  return undefined;
}

async function revisionList(store: Store): Promise<Omit<Manifest, 'files'>[]> {
  const prefix = KEYS.revision('');
  const out: (Omit<Manifest, 'files'> & { files: number })[] = [];
  for (const kv of await store.list(prefix)) {
    try {
      const m = JSON.parse(kv.value.toString('utf8')) as Manifest;
      out.push({ version: m.version, id: m.id, parent: m.parent, created: m.created, files: Object.keys(m.files).length });
    } catch {
      continue;
    }
  }
  const head = (await store.get(KEYS.head))?.value.toString('utf8').trim();
  return out.sort((a, b) => b.created.localeCompare(a.created)).map((m) => ({ ...m, head: m.id === head }));
}

const REVISION_ID = /^[0-9a-f]{8,128}$/;

/** What changed from revision `against` (default: `id`'s parent) to revision `id`. */
async function revisionDiff(store: Store, id: string, against?: string) {
  for (const r of [id, ...(against !== undefined ? [against] : [])]) {
    if (!REVISION_ID.test(r) || !(await store.get(KEYS.revision(r)))) throw new HttpError(404, `no revision ${r}`);
  }
  const after = await readManifest(store, id);
  const base = against ?? after.parent;
  const before = base ? await readManifest(store, base) : undefined;
  const paths = [...new Set([...Object.keys(before?.files ?? {}), ...Object.keys(after.files)])].sort();
  const files: { path: string; change: 'added' | 'removed' | 'modified'; patch?: string }[] = [];
  for (const path of paths) {
    const a = before?.files[path];
    const b = after.files[path];
    if (a === b) continue;
    const text = async (sha: string | undefined) => {
      if (!sha) return '';
      const bytes = await readBlob(store, sha, path);
      return bytes.includes(0) ? undefined : bytes.toString('utf8');
    };
    const [ta, tb] = [await text(a), await text(b)];
    const change = a === undefined ? 'added' : b === undefined ? 'removed' : 'modified';
    files.push({ path, change, ...(ta !== undefined && tb !== undefined ? { patch: createTwoFilesPatch(`a/${path}`, `b/${path}`, ta, tb) } : {}) });
  }
  return { id, parent: after.parent, against: base ?? null, created: after.created, files };
}

export function apiRunRoutes(deps: ApiRunDeps): Route[] {
  const { store, agents, runs } = deps;

  const recentRuns = async (name: string) => (await runs.list(200)).filter((r) => r.targets.includes(name)).slice(0, 20);

  return [
    {
      method: 'GET', path: '/api/v1/targets', listener: 'api', auth: 'viewer',
      async handle() {
        const list = await agents.list();
        const last = new Map<string, { id: string; mode: string; status?: string; finished?: string }>();
        for (const run of await runs.list(200)) {
          for (const t of run.targets) {
            if (last.has(t)) continue;
            const full = run.state === 'finished' ? await runs.get(run.id) : undefined;
            last.set(t, { id: run.id, mode: run.mode, ...(run.finished ? { finished: run.finished } : {}), ...(run.revision ? { revision: run.revision } : {}), ...lastRun(full?.report?.targets.find((o) => o.name === t)) });
          }
        }
        // The newest pushed revision: a target whose last run came from another one is behind it.
        const head = (await store.get(KEYS.head))?.value.toString('utf8').trim() || null;
        // Groups come from the newest pushed revision's catalog; a site that does not load there
        // leaves them out and says why, rather than hiding the fleet.
        let groups = new Map<string, string[]>();
        let groupsProblem: string | undefined;
        try {
          groups = (await deps.headGroups?.())?.groups ?? groups;
        } catch (err) {
          if (!(err instanceof HttpError)) throw err;
          groupsProblem = err.message;
        }
        return {
          status: 200,
          json: {
            head, stale_after_s: deps.staleAfterSeconds ?? 86_400, ...(groupsProblem ? { groups_problem: groupsProblem } : {}),
            targets: list.map((a) => ({ name: a.name, connected: a.connected, agent_version: a.agent_version, groups: groups.get(a.name) ?? [], last_run: last.get(a.name) ?? null })),
          },
        };
      },
    },
    {
      method: 'GET', path: '/api/v1/targets/:name', listener: 'api', auth: 'viewer',
      async handle(req) {
        const name = req.params.name!;
        const info = AGENT_NAME.test(name) ? await agents.readInfo(name) : undefined;
        if (!info) throw new HttpError(404, `no agent named ${name} ever connected to a master of this store`);
        return {
          status: 200,
          json: { name, connected: await agents.connectedToAny(name), agent_version: info.agent_version, boot_id: info.boot_id, connected_at: info.connected_at, ...(info.disconnected_at ? { disconnected_at: info.disconnected_at } : {}), facts: info.facts, last_runs: await recentRuns(name), certificate: await certificateOf(store, name) },
        };
      },
    },
    {
      // What `cairn apply -t T` needs before it compiles T (its agent's facts), without the run
      // history and certificate GET /targets/:name reads from the store.
      method: 'GET', path: '/api/v1/targets/:name/facts', listener: 'api', auth: 'viewer',
      async handle(req) {
        const name = req.params.name!;
        const info = AGENT_NAME.test(name) ? await agents.readInfo(name) : undefined;
        if (!info) throw new HttpError(404, `no agent named ${name} ever connected to a master of this store`);
        return { status: 200, json: { name, connected: await agents.connectedToAny(name), facts: info.facts } };
      },
    },
    {
      method: 'POST', path: '/api/v1/runs', listener: 'api', auth: 'operator', body: runRequestSchema, maxBodyBytes: MAX_FRAME_BYTES,
      async handle(req, res) {
        const body = req.body as z.infer<typeof runRequestSchema>;
        // Checked before the run starts: a bad query changes nothing.
        const lean = nodesOnce(req);
        const options = { ...body.options, ...(body.diff !== undefined ? { diff: body.diff } : {}) };
        let compiled = body.compiled ? new Map(Object.entries(body.compiled)) : undefined;
        let revision: string | undefined;
        if ((body.mode === 'plan' || body.mode === 'apply') && !compiled) {
          if (!deps.compileHead) throw new HttpError(422, 'this master compiles no site: send the compiled runs (cairn apply -t TARGET does)');
          // Targets whose agent never connected have no facts: they end unreachable, uncompiled.
          const known = [];
          for (const name of body.targets) {
            const info = await agents.readInfo(name);
            if (info) known.push({ name, facts: info.facts });
          }
          ({ revision, compiled } = await deps.compileHead(known, body.vars ?? {}));
        }
        const id = await runs.start({
          mode: body.mode, targets: body.targets, options,
          ...(compiled ? { compiled } : {}),
          ...(body.argv ? { argv: body.argv } : {}),
          ...(revision ? { revision } : {}),
          ...(req.user ? { requestedBy: req.user.name } : {}),
        });
        if (wantsEvents(req)) return streamEvents(runs, id, 0, lean, req, res, 202, { location: `/api/v1/runs/${id}` });
        return { status: 202, json: { id }, headers: { location: `/api/v1/runs/${id}` } };
      },
    },
    {
      method: 'GET', path: '/api/v1/runs', listener: 'api', auth: 'viewer',
      async handle(req) {
        const limit = Math.min(1000, Math.max(1, Number(req.query.get('limit') ?? 100) || 100));
        return { status: 200, json: { runs: await runs.list(limit) } };
      },
    },
    {
      method: 'GET', path: '/api/v1/runs/:id', listener: 'api', auth: 'viewer',
      async handle(req) {
        const run = await runs.get(req.params.id!);
        if (!run) throw new HttpError(404, `no run ${req.params.id}`);
        return { status: 200, json: run };
      },
    },
    {
      method: 'GET', path: '/api/v1/runs/:id/events', listener: 'api', auth: 'viewer',
      handle: (req, res) => followEvents(runs, req, res),
    },
    {
      method: 'POST', path: '/api/v1/runs/:id/cancel', listener: 'api', auth: 'operator',
      async handle(req) {
        const outcome = await runs.cancel(req.params.id!);
        if (outcome === 'unknown') throw new HttpError(404, `no run ${req.params.id}`);
        if (outcome === 'finished') throw new HttpError(409, `run ${req.params.id} has finished already`);
        return { status: 202, json: { id: req.params.id, cancelled: true } };
      },
    },
    {
      method: 'GET', path: '/api/v1/revisions', listener: 'api', auth: 'viewer',
      async handle() {
        return { status: 200, json: { revisions: await revisionList(store) } };
      },
    },
    {
      method: 'GET', path: '/api/v1/revisions/:id/diff', listener: 'api', auth: 'viewer',
      async handle(req) {
        const against = req.query.get('against') ?? undefined;
        return { status: 200, json: await revisionDiff(store, req.params.id!, against) };
      },
    },
    {
      method: 'GET', path: '/api/v1/agents', listener: 'api', auth: 'viewer',
      async handle() {
        return { status: 200, json: { agents: await agents.list() } };
      },
    },
  ];
}
