/**
 * The `agent` executor's client side (DESIGN §7, §9): a target with `executor: agent` is run by
 * its agent, reached through a master's HTTP API. The CLI compiles the target here, as for any
 * target, with the facts the agent last reported; sends the compiled run (data) in one
 * `POST /api/v1/runs`, answered with the run's server-sent events; and hands each node result to
 * the same callbacks a local or SSH run feeds, so output and the JSON report are the same. A
 * dropped event stream is resumed with Last-Event-ID: no event is lost or seen twice.
 *
 * Where the master is: `--master URL`, else `$CAIRN_MASTER`, else `master:` in cairn.yaml. The API
 * token: `$CAIRN_TOKEN`, else the file `--token-file` (or `$CAIRN_TOKEN_FILE`) names (a token
 * is a secret: never a command-line argument, never in the site). The API port's certificate is
 * checked against `--master-ca FILE` (or `$CAIRN_MASTER_CA`), else the system's CAs.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import type { Agent } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import type { NodeResult, TargetReport } from '../engine/engine.ts';
import { summarize } from '../engine/engine.ts';
import type { RunTargetOptions } from '../engine/run-target.ts';
import { encodeForEngine, type Compiled } from '../graph/codec.ts';
import { inputError } from '../lib/errors.ts';
import { abortSignalOf } from '../lib/run-signal.ts';
import type { RunResult } from '../executors/types.ts';

export interface MasterFlags {
  site?: string;
  master?: string;
  masterCa?: string;
  tokenFile?: string;
}

/** A master's answer other than the one expected: its status and error. */
export class MasterError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'MasterError';
  }
}

/** The master could not be reached at all (connection refused, TLS refused, DNS). */
export class MasterUnreachable extends Error {
  constructor(url: string, cause: string) {
    super(`master ${url} could not be reached: ${cause}`);
    this.name = 'MasterUnreachable';
  }
}

/** The master's URL from the flags, the environment or cairn.yaml; undefined when none says. */
export function masterUrl(flags: MasterFlags): string | undefined {
  if (flags.master) return flags.master;
  if (process.env.CAIRN_MASTER) return process.env.CAIRN_MASTER;
  if (flags.site && existsSync(join(flags.site, 'cairn.yaml'))) {
    // A top-level `master: URL` seen in the text, as store-named.ts sees `store:`: no YAML parser
    // is loaded for it (a compile-cached run loads none). The site's schema checks it is a URL.
    const m = /^master:[ \t]*(['"]?)([^'"\s#]+)\1[ \t]*(?:#.*)?$/m.exec(readFileSync(join(flags.site, 'cairn.yaml'), 'utf8'));
    if (m) return m[2];
  }
  return undefined;
}

/** The master client for a command, or an input error saying what to set (exit 2, nothing run). */
export function masterClient(flags: MasterFlags, forTarget: string): MasterClient {
  const url = masterUrl(flags);
  if (!url) {
    throw inputError(`target ${forTarget} has executor: agent, but no master is given`, undefined,
      'pass --master https://HOST:8640, set $CAIRN_MASTER, or put master: https://HOST:8640 in cairn.yaml');
  }
  const tokenFile = flags.tokenFile ?? process.env.CAIRN_TOKEN_FILE;
  let token = process.env.CAIRN_TOKEN;
  if (!token && tokenFile) {
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      throw inputError(`--token-file ${tokenFile}: ${(err as Error).message}`);
    }
  }
  if (!token) {
    throw inputError(`target ${forTarget} goes through master ${url}, which needs an API token`, undefined,
      'set $CAIRN_TOKEN, or pass --token-file FILE (cairn master api-token create --role operator makes one)');
  }
  const caFile = flags.masterCa ?? process.env.CAIRN_MASTER_CA;
  let ca: Buffer | undefined;
  if (caFile) {
    try {
      ca = readFileSync(caFile);
    } catch (err) {
      throw inputError(`--master-ca ${caFile}: ${(err as Error).message}`);
    }
  }
  return new MasterClient(url, token, ca);
}

/** One master client per command, made when the first agent target asks (sessions.ts's `master`). */
export function masterFor(flags: MasterFlags): (target: string) => MasterClient {
  let client: MasterClient | undefined;
  return (target) => (client ??= masterClient(flags, target));
}

/** What `GET /api/v1/targets/:name/facts` says. */
export interface TargetInfo {
  name: string;
  connected: boolean;
  facts: Record<string, unknown>;
}

type RunEvent =
  | { seq: number; type: 'run'; state: string; cancelled?: boolean; report?: { targets: ({ name: string } & Record<string, unknown>)[] } }
  | { seq: number; type: 'target'; target: string; phase: 'started' }
  | { seq: number; type: 'target'; target: string; phase: 'finished'; outcome: Record<string, unknown> }
  | { seq: number; type: 'node'; target: string; node: NodeResult }
  | { seq: number; type: 'log'; target: string; stream: 'stdout' | 'stderr' | 'log' | 'notice'; data: string; ref?: string };

/**
 * A run's node results come once, in its `node` events: the finished target's outcome and the
 * run's report leave them out (api-runs.ts), and withNodes puts back those this client was
 * handed. A master that does not know the option sends them anyway, and they are used as sent.
 */
const NODES_ONCE = '?nodes=once';

function withNodes(outcome: Record<string, unknown>, nodes: NodeResult[]): TargetReport {
  return ('nodes' in outcome ? outcome : { ...outcome, nodes }) as unknown as TargetReport;
}

/** How often a dropped event stream is resumed before the run is given up as unreachable. */
const RESUME_ATTEMPTS = 5;
const RESUME_DELAY_MS = 1000;

export class MasterClient {
  private readonly base: URL;
  /**
   * Connections kept open between requests: a run's facts, its POST and any resumed stream share
   * one TLS handshake. An idle one does not keep the process alive (Node unrefs it).
   */
  private connections?: Agent;

  constructor(readonly url: string, private readonly token: string, private readonly ca?: Buffer) {
    this.base = new URL(url);
  }

  private open(method: string, path: string, headers: Record<string, string>, body?: string): Promise<IncomingMessage> {
    const target = new URL(path, this.base);
    // Loaded here, not at the top: node:https (with tls, net and streams) costs a local run, which
    // never reaches a master, about a tenth of its start-up.
    const http = target.protocol === 'http:' ? process.getBuiltinModule('node:http') : process.getBuiltinModule('node:https');
    this.connections ??= new http.Agent({ keepAlive: true });
    const options: RequestOptions = {
      method, agent: this.connections,
      headers: { authorization: `Bearer ${this.token}`, accept: 'application/json', ...headers, ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}) },
      ...(this.ca ? { ca: this.ca } : {}),
    };
    const send = http.request;
    return new Promise((resolve, reject) => {
      const req = send(target, options, resolve);
      req.on('error', (err) => reject(new MasterUnreachable(this.url, err.message)));
      req.end(body);
    });
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.answer<T>(await this.open(method, path, {}, body === undefined ? undefined : JSON.stringify(body)), method, path);
  }

  /** A JSON answer's value; MasterError for a status of 300 or more. */
  private async answer<T>(res: IncomingMessage, method: string, path: string): Promise<T> {
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    if (res.statusCode! >= 300) {
      const error = (value as { error?: string } | undefined)?.error ?? text.slice(0, 200);
      throw new MasterError(res.statusCode!, `master ${this.url}: ${method} ${path}: ${res.statusCode} ${error}`);
    }
    return value as T;
  }

  /** The agent's facts and whether it is connected; undefined when no agent of that name ever connected. */
  async target(name: string): Promise<TargetInfo | undefined> {
    try {
      return await this.json<TargetInfo>('GET', `/api/v1/targets/${encodeURIComponent(name)}/facts`);
    } catch (err) {
      if (err instanceof MasterError && err.status === 404) return undefined;
      throw err;
    }
  }

  async startRun(body: Record<string, unknown>): Promise<string> {
    return (await this.json<{ id: string }>('POST', '/api/v1/runs', body)).id;
  }

  /**
   * Starts a run and takes its events from the same answer (one request, not a POST and then a
   * GET); a master that answers with the id alone is followed with a GET.
   */
  private async startFollowing(body: Record<string, unknown>): Promise<{ id: string; events?: IncomingMessage }> {
    const res = await this.open('POST', `/api/v1/runs${NODES_ONCE}`, { accept: 'text/event-stream' }, JSON.stringify(body));
    const location = res.headers.location;
    if (res.statusCode === 202 && res.headers['content-type']?.startsWith('text/event-stream') && location) {
      return { id: decodeURIComponent(location.slice(location.lastIndexOf('/') + 1)), events: res };
    }
    return { id: (await this.answer<{ id: string }>(res, 'POST', '/api/v1/runs')).id };
  }

  async cancel(id: string): Promise<void> {
    await this.json('POST', `/api/v1/runs/${encodeURIComponent(id)}/cancel`).catch(() => undefined);
  }

  /**
   * Hands every event of run `id` to `onEvent`, once each and in order, until the run's last;
   * a stream that drops is resumed after the last event seen (Last-Event-ID). `started`: the
   * stream the run's POST answered with (startFollowing), read first.
   */
  async follow(id: string, onEvent: (event: RunEvent) => void, started?: IncomingMessage, query = ''): Promise<void> {
    let last = 0;
    let finished = false;
    let failures = 0;
    while (!finished) {
      try {
        const res = started ?? await this.open('GET', `/api/v1/runs/${encodeURIComponent(id)}/events${query}`, { accept: 'text/event-stream', 'last-event-id': String(last) });
        started = undefined;
        if (res.statusCode !== 200 && res.statusCode !== 202) {
          res.resume();
          throw new MasterError(res.statusCode!, `master ${this.url}: the events of run ${id}: ${res.statusCode}`);
        }
        let buffer = '';
        res.setEncoding('utf8');
        for await (const chunk of res) {
          buffer += chunk as string;
          // A chunk holds many events: cut them out by index, the rest kept once per chunk.
          let start = 0;
          let end: number;
          while ((end = buffer.indexOf('\n\n', start)) >= 0) {
            const block = buffer.slice(start, end);
            start = end + 2;
            const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
            if (!data) continue;
            const event = JSON.parse(data) as RunEvent;
            // Seq is the resumption point: anything at or before it was handed over already.
            if (event.seq <= last) continue;
            last = event.seq;
            failures = 0;
            onEvent(event);
            if (event.type === 'run' && event.state === 'finished') finished = true;
          }
          buffer = buffer.slice(start);
        }
        if (!finished) throw new MasterUnreachable(this.url, 'the event stream ended before the run did');
      } catch (err) {
        if (err instanceof MasterError || ++failures > RESUME_ATTEMPTS) throw err;
        // As an EventSource would (the stream's `retry:`): a master restarting gets a moment.
        await new Promise((resolve) => setTimeout(resolve, RESUME_DELAY_MS));
      }
    }
  }

  /**
   * Plans or applies `compiled` on its agent through the master: one run, its node results handed
   * to `options.onResult` as they come. A master or agent that cannot be reached makes the
   * target unreachable, as a lost SSH connection does.
   */
  async converge(compiled: Compiled, options: RunTargetOptions): Promise<TargetReport> {
    const name = compiled.run.target.name;
    // Interrupted before the run was asked for: nothing is started.
    const signal = options.signal && abortSignalOf(options.signal);
    if (signal?.aborted) return { ...summarize(name, []), status: 'skipped', reason: 'run cancelled' };
    let runId: string | undefined;
    let cancelSent = false;
    // Ctrl-C: the master cancels the run; the agent finishes the node under way and starts no
    // other, and the events that follow say what ran.
    const cancel = () => {
      if (runId === undefined || cancelSent) return;
      cancelSent = true;
      options.onNotice?.(`${name}: cancelling run ${runId} on master ${this.url}: the agent finishes the node under way and starts no other`);
      void this.cancel(runId);
    };
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      const started = await this.startFollowing({
        mode: options.mode, targets: [name], compiled: { [name]: encodeForEngine(compiled) },
        diff: options.diff ?? false,
        options: {
          ...(options.failFast ? { fail_fast: true } : {}),
          ...(options.tags ? { tags: options.tags } : {}),
          ...(options.lockWaitMs ? { lock_wait_s: options.lockWaitMs / 1000 } : {}),
        },
      });
      runId = started.id;
      // Interrupted while the run was being asked for.
      if (signal?.aborted) cancel();
      let report: TargetReport | undefined;
      const nodes: NodeResult[] = [];
      await this.follow(runId, (event) => {
        if (event.type === 'node' && event.target === name) {
          nodes.push(event.node);
          options.onResult?.(event.node);
        } else if (event.type === 'log' && event.target === name) {
          if (event.stream === 'notice') options.onNotice?.(event.data);
          else options.onLog?.(event.ref ?? name, event.data);
        } else if (event.type === 'target' && event.phase === 'finished' && event.target === name) {
          report = withNodes(event.outcome, nodes);
        } else if (event.type === 'run' && event.state === 'finished') {
          // A run recorded interrupted (the master running it died) has this target's outcome only in its report.
          const outcome = event.report?.targets.find((t) => t.name === name);
          report ??= outcome && withNodes(outcome, nodes);
        }
      }, started.events, NODES_ONCE);
      return report ?? summarize(name, nodes, `master ${this.url} finished run ${runId} without a report for ${name}`);
    } catch (err) {
      if (err instanceof MasterUnreachable || err instanceof MasterError) return summarize(name, [], err.message);
      throw err;
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
  }

  /**
   * Runs one command on the agent through the master (`cairn run`), its output streamed to
   * `onOutput`. Aborting `cancel` cancels the run on the master (the agent stops the command);
   * `onCancel` is told the run's id when that is asked.
   */
  async command(name: string, argv: string[], become: boolean, onOutput?: (stream: 'stdout' | 'stderr', text: string) => void,
    cancel?: { signal: AbortSignal; onCancel(runId: string): void }): Promise<RunResult & { error?: string }> {
    const id = await this.startRun({ mode: 'run', targets: [name], argv, ...(become ? { options: { become: true } } : {}) });
    const stop = () => {
      cancel!.onCancel(id);
      void this.cancel(id);
    };
    if (cancel?.signal.aborted) stop();
    else cancel?.signal.addEventListener('abort', stop, { once: true });
    let outcome: { status?: string; exit_code?: number | null; stdout?: string; stderr?: string; error?: string } | undefined;
    try {
      await this.follow(id, (event) => {
        if (event.type === 'log' && event.target === name && (event.stream === 'stdout' || event.stream === 'stderr')) onOutput?.(event.stream, event.data);
        else if (event.type === 'target' && event.phase === 'finished' && event.target === name) outcome = event.outcome;
        else if (event.type === 'run' && event.state === 'finished') outcome ??= event.report?.targets.find((t) => t.name === name) as typeof outcome;
      });
    } finally {
      cancel?.signal.removeEventListener('abort', stop);
    }
    if (!outcome || outcome.status === 'unreachable') throw new MasterUnreachable(this.url, outcome?.error ?? 'no outcome');
    return { code: outcome.exit_code ?? -1, stdout: outcome.stdout ?? '', stderr: outcome.stderr ?? '', ...(outcome.error ? { error: outcome.error } : {}) };
  }
}
