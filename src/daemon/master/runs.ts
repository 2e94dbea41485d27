/**
 * Runs requested of a master (DESIGN §9): a plan, apply, facts or ad-hoc command over some
 * agent targets. A run is a record in the store (queued → running → finished, with the §12
 * report once done) and a sequence of events numbered from 1 (`seq`), each written to the store
 * as it happens and handed to whoever follows the run: the API's server-sent events, which resume
 * after a dropped connection from the last seq the client saw (Last-Event-ID), so a follower
 * sees every event once, in order, however often it reconnects.
 *
 * A plan or apply ships each target's compiled run (graph/codec.ts's text: data, never code) to
 * its agent as one op; the agent streams node results back and ends with its TargetReport. An
 * agent not connected makes its target unreachable, naming it. Cancelling a run cancels the ops
 * in flight (each agent stops its engine and reports what ran) and skips the targets not begun.
 *
 * Several masters (owners.ts): a run whose agents are all connected to one other live master is
 * handed to that master whole, by a run-request key it watches; it runs there under the same id,
 * writing its record and events to the store, where this master reads and follows them. So the
 * run goes on if the master it was asked of dies, and every master's API reports it. Cancelling
 * such a run writes a cancel key every master watches.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { NodeResult, TargetReport } from '../../engine/engine.ts';
import { summarize } from '../../engine/engine.ts';
import type { Op, Store } from '../../store/types.ts';
import { AGENT_NAME, AgentNotConnectedError, RUN_KEYS, type AgentHub } from './agents.ts';
import { opOptionsSchema, type CommandReport, type OpOptions } from '../protocol.ts';
import { OWNER_KEYS, type AgentOwners } from './owners.ts';

export type RunMode = 'plan' | 'apply' | 'facts' | 'run';
export type RunState = 'queued' | 'running' | 'finished';

/** A target's outcome in a facts run. */
export interface FactsOutcome {
  name: string;
  status: 'ok' | 'failed' | 'unreachable' | 'skipped';
  facts?: Record<string, unknown>;
  error?: string;
}

/** A target's outcome in an ad-hoc command run (as `cairn run --json` reports one). */
export interface CommandOutcome {
  name: string;
  status: 'ok' | 'failed' | 'unreachable' | 'skipped';
  exit_code: number | null;
  stdout: string;
  stderr: string;
  error?: string;
}

export type TargetOutcome = TargetReport | FactsOutcome | CommandOutcome;

export interface RunRecord {
  id: string;
  mode: RunMode;
  targets: string[];
  state: RunState;
  cancelled?: boolean;
  requested_by?: string;
  /** The pushed revision the runs were compiled from, when the master compiled them. */
  revision?: string;
  created: string;
  /** Several masters: the id of the master that runs it, when it was asked of another one. */
  runs_on?: string;
  started?: string;
  finished?: string;
  /** Once finished: the §12 report (`targets` one per requested target, in order). */
  report?: { version: 1; mode: RunMode; started: string; finished: string; targets: TargetOutcome[] };
}

/** One event of a run, as the API streams it. */
export type RunEvent =
  | { seq: number; type: 'run'; state: RunState; cancelled?: boolean; report?: RunRecord['report'] }
  | { seq: number; type: 'target'; target: string; phase: 'started' }
  | { seq: number; type: 'target'; target: string; phase: 'finished'; outcome: TargetOutcome }
  | { seq: number; type: 'node'; target: string; node: NodeResult }
  | { seq: number; type: 'log'; target: string; stream: 'stdout' | 'stderr' | 'log' | 'notice'; data: string; ref?: string };

type Unsequenced<E> = E extends unknown ? Omit<E, 'seq'> : never;

export interface RunRequest {
  mode: RunMode;
  targets: string[];
  /** plan/apply: each target's compiled run, as graph/codec.ts writes it. */
  compiled?: Map<string, string>;
  options: OpOptions;
  argv?: string[];
  revision?: string;
  requestedBy?: string;
}

/** r, the time to the millisecond, a counter (runs of one millisecond in order), random hex (several masters). */
export const RUN_ID = /^r[0-9]{17}-[0-9]{4}[0-9a-f]{6}$/;

let runCounter = 0;

/** Run ids sort as the runs were made (the store lists keys in order: the newest last). */
function newRunId(now: Date): string {
  const stamp = now.toISOString().replace(/[-:T.Z]/g, '');
  runCounter = (runCounter + 1) % 10_000;
  return `r${stamp}-${String(runCounter).padStart(4, '0')}${randomBytes(3).toString('hex')}`;
}

type Listener = (event: RunEvent) => void;

/** Each event's JSON as stored, for the event streams to send without writing it again. */
const eventTexts = new WeakMap<RunEvent, string>();

/** An event's JSON text (the one stored, when this master made or read it). */
export function eventText(event: RunEvent): string {
  return eventTexts.get(event) ?? JSON.stringify(event);
}

/** An event as read from the store, its text kept for eventText. */
function storedEvent(value: Buffer): RunEvent {
  const text = value.toString('utf8');
  const event = JSON.parse(text) as RunEvent;
  eventTexts.set(event, text);
  return event;
}

/** A run handed to another master, as its run-request key carries it. */
const runHandOver = z.strictObject({
  id: z.string().regex(RUN_ID),
  created: z.string(),
  requested_by: z.string().optional(),
  mode: z.enum(['plan', 'apply', 'facts', 'run']),
  targets: z.array(z.string().regex(AGENT_NAME)).min(1),
  compiled: z.record(z.string().regex(AGENT_NAME), z.string()).optional(),
  options: opOptionsSchema,
  argv: z.array(z.string()).min(1).optional(),
  revision: z.string().optional(),
});

/** The agents of a run are connected to more than one master: it cannot go to one of them. */
export class SplitFleetError extends Error {
  constructor(readonly where: Map<string, string[]>) {
    super(`the targets are connected to different masters (${[...where].map(([m, t]) => `${t.join(', ')} on ${m}`).join('; ')}): request a run of each master's targets on its own`);
    this.name = 'SplitFleetError';
  }
}

/** A run this master is running or ran lately: its events in memory, for followers. */
class LiveRun {
  readonly events: RunEvent[] = [];
  readonly listeners = new Set<Listener>();
  readonly controller = new AbortController();
  /** Store writes of this run, one batch after another (events in seq order). */
  writes: Promise<void> = Promise.resolve();
  /** Events and record snapshots not yet written (key → value), for the next batch. */
  pending = new Map<string, string>();
  /** The batch that will take `pending`, once scheduled. */
  nextBatch?: Promise<void>;
  /** Settles when the run has finished and its record is written. */
  done: Promise<void> = Promise.resolve();
  constructor(public record: RunRecord) {}
}

/** The most keys, and about the most bytes, one store transaction of a run's events carries. */
const WRITE_BATCH_OPS = 100;
const WRITE_BATCH_BYTES = 1024 * 1024;

/** Finished runs kept in memory for followers; older ones are read back from the store. */
const KEEP_FINISHED = 32;

export class RunManager {
  private readonly live = new Map<string, LiveRun>();
  private readonly log: (line: string) => void;

  /** Ends the store watches (run requests, cancels, followers of other masters' runs). */
  private readonly stopping = new AbortController();

  constructor(private readonly store: Store, private readonly agents: AgentHub, log?: (line: string) => void, private readonly owners?: AgentOwners) {
    this.log = log ?? (() => undefined);
  }

  /**
   * Records the run and starts it, here or (several masters) on the one master its agents are
   * connected to; resolves with its id once the record is in the store. Throws SplitFleetError
   * when its agents are connected to different masters.
   */
  async start(request: RunRequest): Promise<string> {
    const now = new Date();
    const record: RunRecord = {
      id: newRunId(now), mode: request.mode, targets: request.targets, state: 'queued', created: now.toISOString(),
      ...(request.requestedBy ? { requested_by: request.requestedBy } : {}),
      ...(request.revision ? { revision: request.revision } : {}),
    };
    const elsewhere = await this.placement(request.targets);
    if (elsewhere) {
      await this.handOver(elsewhere, record, request);
      return record.id;
    }
    await this.begin(record, request);
    return record.id;
  }

  /** The other master to hand the run to, or undefined to run it here. */
  private async placement(targets: string[]): Promise<string | undefined> {
    if (!this.owners) return undefined;
    const where = new Map<string, string[]>();
    for (const name of targets) {
      const owner = this.agents.isConnected(name) ? this.owners.id : await this.owners.ownerOf(name);
      // Connected nowhere: it ends unreachable wherever the run goes.
      if (owner === undefined) continue;
      where.set(owner, [...(where.get(owner) ?? []), name]);
    }
    if (where.size > 1) throw new SplitFleetError(where);
    const [only] = where.keys();
    return only !== undefined && only !== this.owners.id ? only : undefined;
  }

  private async handOver(master: string, record: RunRecord, request: RunRequest): Promise<void> {
    const queued: RunRecord = { ...record, runs_on: master };
    await this.store.put(RUN_KEYS.run(record.id), JSON.stringify(queued));
    const handOver: z.infer<typeof runHandOver> = {
      id: record.id, created: record.created, mode: request.mode, targets: request.targets, options: request.options,
      ...(record.requested_by ? { requested_by: record.requested_by } : {}),
      ...(request.compiled ? { compiled: Object.fromEntries(request.compiled) } : {}),
      ...(request.argv ? { argv: request.argv } : {}),
      ...(request.revision ? { revision: request.revision } : {}),
    };
    await this.store.put(OWNER_KEYS.request(master, record.id), JSON.stringify(handOver));
    this.log(`run ${record.id}: handed to master ${master}, which holds its agents`);
  }

  /**
   * Several masters: runs the runs other masters hand to this one, and cancels the runs any
   * master is asked to cancel, until stop(). Resolves once both watches are in place.
   */
  async serve(): Promise<void> {
    const owners = this.owners;
    if (!owners) return;
    const from = (await this.store.revision()) + 1;
    const signal = this.stopping.signal;
    const take = async (key: string, value: Buffer) => {
      // Taken once, even if the key is seen twice (a listing and the watch).
      const { succeeded } = await this.store.txn([{ key, target: 'exists', op: '=', value: true }], [{ delete: key }]);
      if (!succeeded) return;
      let handOver: z.infer<typeof runHandOver>;
      try {
        handOver = runHandOver.parse(JSON.parse(value.toString('utf8')));
      } catch (err) {
        this.log(`a run request in ${key} is not one: ${(err as Error).message}`);
        return;
      }
      this.log(`run ${handOver.id}: handed over by another master`);
      const record: RunRecord = {
        id: handOver.id, mode: handOver.mode, targets: handOver.targets, state: 'queued', created: handOver.created, runs_on: owners.id,
        ...(handOver.requested_by ? { requested_by: handOver.requested_by } : {}),
        ...(handOver.revision ? { revision: handOver.revision } : {}),
      };
      await this.begin(record, {
        mode: handOver.mode, targets: handOver.targets, options: handOver.options as OpOptions,
        ...(handOver.compiled ? { compiled: new Map(Object.entries(handOver.compiled)) } : {}),
        ...(handOver.argv ? { argv: handOver.argv } : {}),
        ...(handOver.revision ? { revision: handOver.revision } : {}),
      });
    };
    const cancelled = async (key: string) => {
      const run = this.live.get(key.slice(OWNER_KEYS.cancels.length));
      if (!run || run.record.state === 'finished') return;
      run.controller.abort();
      await this.store.delete(key);
    };
    const watchPrefix = (prefix: string, onPut: (key: string, value: Buffer) => Promise<void>) => {
      void (async () => {
        for await (const change of this.store.watch(prefix, { signal, fromRevision: from })) {
          if (change.type === 'put' && change.value) await onPut(change.key, change.value).catch((err: unknown) => this.log(`${change.key}: ${(err as Error).stack ?? String(err)}`));
        }
      })().catch((err: unknown) => {
        if (!signal.aborted) this.log(`watching ${prefix} failed: ${(err as Error).message}`);
      });
    };
    watchPrefix(OWNER_KEYS.requests(owners.id), take);
    watchPrefix(OWNER_KEYS.cancels, cancelled);
    // Requests written before this master watched (it restarted under a new id: none for it).
    for (const kv of await this.store.list(OWNER_KEYS.requests(owners.id))) await take(kv.key, kv.value);
  }

  /** Ends the store watches. */
  stop(): void {
    this.stopping.abort();
  }

  private async begin(record: RunRecord, request: RunRequest): Promise<void> {
    const run = new LiveRun(record);
    this.live.set(record.id, run);
    this.emit(run, { type: 'run', state: 'queued' });
    await this.saveRecord(run);
    run.done = this.execute(run, request).catch((err: unknown) => {
      // A bug, not a target's failure: logged with its stack, and the run still ends.
      this.log(`run ${record.id}: ${(err as Error).stack ?? String(err)}`);
      if (run.record.state !== 'finished') this.finish(run, request.targets.map((name) => ({ name, status: 'failed', error: `internal error: ${(err as Error).message}` }) as FactsOutcome), new Date());
    });
  }

  private async execute(run: LiveRun, request: RunRequest): Promise<void> {
    const started = new Date();
    run.record.state = 'running';
    run.record.started = started.toISOString();
    this.emit(run, { type: 'run', state: 'running' });
    // Stored with the first events (writes keep their order): the ops need not wait for it.
    void this.saveRecord(run);
    const signal = run.controller.signal;
    const outcomes = await Promise.all(request.targets.map(async (name): Promise<TargetOutcome> => {
      const outcome = await this.runTarget(run, request, name, signal);
      this.emit(run, { type: 'target', target: name, phase: 'finished', outcome });
      return outcome;
    }));
    this.finish(run, outcomes, started);
    await run.writes;
  }

  private async runTarget(run: LiveRun, request: RunRequest, name: string, signal: AbortSignal): Promise<TargetOutcome> {
    const skipped = (reason: string): TargetOutcome => (request.mode === 'plan' || request.mode === 'apply'
      ? { ...summarize(name, []), status: 'skipped', reason }
      : request.mode === 'facts' ? { name, status: 'skipped', error: reason } : { name, status: 'skipped', exit_code: null, stdout: '', stderr: '', error: reason });
    // The nodes the agent reported before it went away stay in the report.
    const nodes: NodeResult[] = [];
    const unreachable = (error: string): TargetOutcome => (request.mode === 'plan' || request.mode === 'apply'
      ? summarize(name, nodes, error)
      : request.mode === 'facts' ? { name, status: 'unreachable', error } : { name, status: 'unreachable', exit_code: null, stdout: '', stderr: '', error });
    if (signal.aborted) return skipped('the run was cancelled before this target began');
    this.emit(run, { type: 'target', target: name, phase: 'started' });
    if (!this.agents.isConnected(name)) return unreachable(new AgentNotConnectedError(name).message);
    const compiled = request.compiled?.get(name);
    if ((request.mode === 'plan' || request.mode === 'apply') && compiled === undefined) throw new Error(`no compiled run for target ${name}`);
    try {
      const result = await this.agents.request(name, {
        op: request.mode, options: request.options,
        ...(compiled !== undefined ? { run: compiled } : {}),
        ...(request.argv ? { argv: request.argv } : {}),
        ...(request.revision ? { revision: request.revision } : {}),
      }, {
        onEvent: (node) => {
          nodes.push(node);
          this.emit(run, { type: 'node', target: name, node });
        },
        onLog: (stream, data, ref) => this.emit(run, { type: 'log', target: name, stream, data, ...(ref !== undefined ? { ref } : {}) }),
      }, signal);
      if (request.mode === 'plan' || request.mode === 'apply') {
        if (!result.ok || !result.report || !('nodes' in result.report)) return unreachable(result.error ?? 'the agent sent no report');
        const report = result.report as TargetReport;
        if (request.mode === 'apply') await this.store.put(RUN_KEYS.report(name), JSON.stringify({ version: 1, mode: 'apply', run: run.record.id, ...(run.record.revision ? { revision: run.record.revision } : {}), started: run.record.started, finished: new Date().toISOString(), targets: [report] }));
        return report;
      }
      if (request.mode === 'facts') return result.ok && result.facts ? { name, status: 'ok', facts: result.facts } : { name, status: 'failed', error: result.error ?? 'no facts' };
      const command = result.report && 'exit_code' in result.report ? result.report as CommandReport : undefined;
      if (!result.ok || !command) return { name, status: 'failed', exit_code: null, stdout: '', stderr: '', error: result.error ?? 'the agent sent no result' };
      return { name, status: command.exit_code === 0 ? 'ok' : 'failed', exit_code: command.exit_code, stdout: command.stdout, stderr: command.stderr, ...(command.timed_out ? { error: 'timed out' } : {}) };
    } catch (err) {
      if (err instanceof AgentNotConnectedError) return unreachable(err.message);
      throw err;
    }
  }

  private finish(run: LiveRun, outcomes: TargetOutcome[], started: Date): void {
    const finished = new Date();
    run.record.state = 'finished';
    run.record.finished = finished.toISOString();
    if (run.controller.signal.aborted) run.record.cancelled = true;
    run.record.report = { version: 1, mode: run.record.mode, started: started.toISOString(), finished: finished.toISOString(), targets: outcomes };
    // The record first: a master that follows this run from the store and sees its last event
    // then reads the finished record.
    void this.saveRecord(run);
    this.emit(run, { type: 'run', state: 'finished', ...(run.record.cancelled ? { cancelled: true } : {}), report: run.record.report });
    // Finished runs beyond the newest few are followed from the store.
    const done = [...this.live.values()].filter((r) => r.record.state === 'finished');
    for (const old of done.slice(0, Math.max(0, done.length - KEEP_FINISHED))) {
      void old.writes.then(() => this.live.delete(old.record.id));
    }
  }

  private emit(run: LiveRun, event: Unsequenced<RunEvent>): void {
    const sequenced = { seq: run.events.length + 1, ...event } as RunEvent;
    run.events.push(sequenced);
    const text = JSON.stringify(sequenced);
    eventTexts.set(sequenced, text);
    void this.storeInBatch(run, RUN_KEYS.event(run.record.id, sequenced.seq), text);
    for (const listener of run.listeners) listener(sequenced);
  }

  /** Resolves once this snapshot of the record is in the store (or its failure logged). */
  private saveRecord(run: LiveRun): Promise<void> {
    return this.storeInBatch(run, RUN_KEYS.run(run.record.id), JSON.stringify(run.record));
  }

  /**
   * Queues one key for the run's next batch: whatever the run emits until the event loop next
   * turns (an agent's frames arrive many to a read) is written together, in one transaction per
   * WRITE_BATCH_OPS keys rather than one per event, after the batch before it. A 742-node
   * no-op wrote 742 transactions before, which took the master longer than the agent's run.
   */
  private storeInBatch(run: LiveRun, key: string, value: string): Promise<void> {
    run.pending.set(key, value);
    if (!run.nextBatch) {
      run.nextBatch = run.writes.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(() => {
        const batch = run.pending;
        run.pending = new Map();
        run.nextBatch = undefined;
        return this.writeBatch(run.record.id, batch);
      });
      run.writes = run.nextBatch;
    }
    return run.nextBatch;
  }

  private async writeBatch(id: string, batch: Map<string, string>): Promise<void> {
    let ops: Op[] = [];
    let bytes = 0;
    const write = async () => {
      if (ops.length === 0) return;
      const taken = ops;
      ops = [];
      bytes = 0;
      try {
        await this.store.txn([], taken);
      } catch (err) {
        const keys = taken.map((op) => ('put' in op ? op.put : op.delete));
        this.log(`run ${id}: ${keys.length === 1 ? keys[0] : `${keys[0]} … ${keys.at(-1)} (${keys.length} keys)`} not stored: ${(err as Error).message}`);
      }
    };
    for (const [key, value] of batch) {
      // etcd takes at most 128 operations and 1.5 MiB in one request (its defaults).
      if (ops.length >= WRITE_BATCH_OPS || (bytes > 0 && bytes + value.length > WRITE_BATCH_BYTES)) await write();
      ops.push({ put: key, value });
      bytes += key.length + value.length;
    }
    await write();
  }

  async get(id: string): Promise<RunRecord | undefined> {
    if (!RUN_ID.test(id)) return undefined;
    const live = this.live.get(id);
    if (live) return live.record;
    const kv = await this.store.get(RUN_KEYS.run(id));
    return kv ? JSON.parse(kv.value.toString('utf8')) as RunRecord : undefined;
  }

  /** The newest runs first, without their reports' nodes (a list, not every run's detail). */
  async list(limit = 100): Promise<(Omit<RunRecord, 'report'> & { summary?: RunSummary })[]> {
    const kvs = await this.store.list(RUN_KEYS.runs);
    return kvs.slice(-limit).reverse().map((kv) => {
      const record = this.live.get(kv.key.slice(RUN_KEYS.runs.length))?.record ?? JSON.parse(kv.value.toString('utf8')) as RunRecord;
      const { report, ...rest } = record;
      return report ? { ...rest, summary: runSummary(report) } : rest;
    });
  }

  /**
   * Hands `listener` every event of run `id` after seq `after`, in order, then each new one as
   * it happens; `onEnd` once the run's last event was handed over. The events already recorded
   * are replayed and the listener registered in one step (no event can fall between).
   * Returns undefined for an unknown run, else a function that stops following.
   */
  async follow(id: string, after: number, listener: Listener, onEnd: () => void): Promise<(() => void) | undefined> {
    if (!RUN_ID.test(id)) return undefined;
    let live = this.live.get(id);
    if (!live) {
      const record = await this.get(id);
      if (!record) return undefined;
      live = this.live.get(id);
      if (!live) return this.followStored(id, after, listener, onEnd);
    }
    const run = live;
    for (const e of run.events) if (e.seq > after) listener(e);
    if (run.record.state === 'finished') {
      onEnd();
      return () => undefined;
    }
    const wrapped: Listener = (e) => {
      listener(e);
      if (e.type === 'run' && e.state === 'finished') {
        run.listeners.delete(wrapped);
        onEnd();
      }
    };
    run.listeners.add(wrapped);
    return () => run.listeners.delete(wrapped);
  }

  /**
   * A run another master runs (or ran, or this one before it restarted): its events from the
   * store, then (while it runs) each one as that master writes it, until its last.
   */
  private async followStored(id: string, after: number, listener: Listener, onEnd: () => void): Promise<() => void> {
    let last = after;
    // True once the run's last event was handed over.
    const deliver = (e: RunEvent): boolean => {
      if (e.seq <= last) return false;
      last = e.seq;
      listener(e);
      return e.type === 'run' && e.state === 'finished';
    };
    const from = (await this.store.revision()) + 1;
    for (const kv of await this.store.list(RUN_KEYS.events(id))) {
      if (deliver(storedEvent(kv.value))) {
        onEnd();
        return () => undefined;
      }
    }
    const stop = new AbortController();
    const signal = AbortSignal.any([stop.signal, this.stopping.signal]);
    void (async () => {
      for await (const change of this.store.watch(RUN_KEYS.events(id), { signal, fromRevision: from })) {
        if (change.type !== 'put' || !change.value) continue;
        if (deliver(storedEvent(change.value))) {
          stop.abort();
          onEnd();
          return;
        }
      }
    })().catch((err: unknown) => {
      if (!signal.aborted) this.log(`run ${id}: following its events in the store failed: ${(err as Error).message}`);
    });
    return () => stop.abort();
  }

  /** Cancels a run: 'cancelled', 'finished' (too late) or 'unknown'. */
  async cancel(id: string): Promise<'cancelled' | 'finished' | 'unknown'> {
    const live = this.live.get(id);
    if (!live) {
      const record = await this.get(id);
      if (!record) return 'unknown';
      if (record.state === 'finished' || !this.owners) return 'finished';
      // Another master runs it: whichever does cancels it.
      await this.store.put(OWNER_KEYS.cancel(id), new Date().toISOString());
      return 'cancelled';
    }
    if (live.record.state === 'finished') return 'finished';
    live.controller.abort();
    return 'cancelled';
  }

  /** Cancels every run in flight (the master is shutting down). */
  cancelAll(): void {
    for (const run of this.live.values()) if (run.record.state !== 'finished') run.controller.abort();
  }

  /** Waits for every run to finish and its record and events to be written. */
  async settled(): Promise<void> {
    await Promise.all([...this.live.values()].map((r) => r.done.then(() => r.writes)));
  }
}

/** A finished run at a glance (for lists): each target's status, and the nodes changed and failed. */
export interface RunSummary {
  statuses: Record<string, string>;
  changed: number;
  failed: number;
}

function runSummary(report: NonNullable<RunRecord['report']>): RunSummary {
  const summary: RunSummary = { statuses: {}, changed: 0, failed: 0 };
  for (const t of report.targets) {
    summary.statuses[t.name] = t.status;
    if ('counts' in t) {
      summary.changed += t.counts.changed;
      summary.failed += t.counts.failed;
    }
  }
  return summary;
}
