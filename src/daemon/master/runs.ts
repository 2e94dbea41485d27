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
 * such a run writes a cancel key every master watches. A run whose agents are connected to
 * different masters is split: this master runs its own agents' targets and hands each other
 * master a part (a run of its own, `part_of` this one) whose events and outcomes it follows from
 * the store into this run's.
 *
 * A run not finished is named, with the master running it, under OWNER_KEYS.running: when that
 * master dies, another (or it, started again) records the run interrupted. Finished runs beyond
 * the retention are removed (prune).
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { NodeResult, TargetReport } from '../../engine/engine.ts';
import { summarize } from '../../engine/engine.ts';
import type { Compare, Op, Store } from '../../store/types.ts';
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

/** A part of a run, run by another master (the one holding these targets' agents) under an id of its own. */
export interface RunPart {
  id: string;
  runs_on: string;
  targets: string[];
}

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
  /**
   * Finished without its master: the master running it stopped (killed, cut off from the store)
   * before the run ended, and another master (or it, started again) recorded it so.
   */
  interrupted?: string;
  /** Several masters: this run is the part of run `part_of` whose agents another master holds (not listed on its own). */
  part_of?: string;
  /** Several masters: the parts of this run other masters run, each over the targets whose agents it holds. */
  parts?: RunPart[];
  started?: string;
  finished?: string;
  /** Once finished: the §12 report (`targets` one per requested target, in order). */
  report?: { version: 1; mode: RunMode; started: string; finished: string; targets: TargetOutcome[] };
}

/** One event of a run, as the API streams it. */
export type RunEvent =
  | { seq: number; type: 'run'; state: RunState; cancelled?: boolean; interrupted?: string; report?: RunRecord['report'] }
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

/** A target whose run ended without its agent's answer (gone, or its master stopped): unreachable, with the nodes it reported. */
function unreachableOutcome(mode: RunMode, name: string, nodes: NodeResult[], error: string): TargetOutcome {
  return mode === 'plan' || mode === 'apply'
    ? summarize(name, nodes, error)
    : mode === 'facts' ? { name, status: 'unreachable', error } : { name, status: 'unreachable', exit_code: null, stdout: '', stderr: '', error };
}

/** Each event's JSON as stored, for the event streams to send without writing it again. */
const eventTexts = new WeakMap<RunEvent, string>();

/** An event's JSON text (the one stored, when this master made or read it). */
export function eventText(event: RunEvent): string {
  return eventTexts.get(event) ?? JSON.stringify(event);
}

/**
 * The events one store key holds, in seq order: a group of events written together (a JSON
 * array, keyed by its first event's seq), or one event (the interrupted-run sweep writes one).
 */
function storedEvents(value: Buffer): RunEvent[] {
  const text = value.toString('utf8');
  const parsed = JSON.parse(text) as RunEvent | RunEvent[];
  if (Array.isArray(parsed)) return parsed;
  eventTexts.set(parsed, text);
  return [parsed];
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
  /** The run this is a part of (a run split over several masters). */
  part_of: z.string().regex(RUN_ID).optional(),
});

/** A run this master is running or ran lately: its events in memory, for followers. */
class LiveRun {
  readonly events: RunEvent[] = [];
  readonly listeners = new Set<Listener>();
  readonly controller = new AbortController();
  /** Store writes of this run, one batch after another (events in seq order). */
  writes: Promise<void> = Promise.resolve();
  /**
   * Record snapshots and groups of events not yet written, for the next batch, in the order
   * queued: key → a record's text, or the texts of the events stored under that one key.
   */
  pending = new Map<string, string | string[]>();
  /** The group of events in `pending` the next event joins: the last entry queued, while not full. */
  openGroup?: { texts: string[]; bytes: number };
  /** The batch that will take `pending`, once scheduled. */
  nextBatch?: Promise<void>;
  /** Settles when the run has finished and its record is written. */
  done: Promise<void> = Promise.resolve();
  constructor(public record: RunRecord) {}
}

/** The most keys, and about the most bytes, one store transaction of a run's events carries. */
const WRITE_BATCH_OPS = 100;
const WRITE_BATCH_BYTES = 1024 * 1024;
/**
 * The most events, and about the most bytes, one store key holds: a run's events written in one
 * batch are stored as a few groups, not a key each (a 742-node no-op wrote 742 keys and their
 * watch-history rows, the master's largest cost after the agent's own run).
 */
const EVENTS_PER_KEY = 1000;
const EVENT_KEY_BYTES = 256 * 1024;

/** Finished runs kept in memory for followers; older ones are read back from the store. */
const KEEP_FINISHED = 32;

/**
 * How many finished runs the store keeps (`cairn master --keep-runs N --keep-days D`): a run
 * goes once it is older than `keepDays` days, or once each of its targets has `keepRuns` newer
 * finished runs. A run not finished is never removed.
 */
export interface Retention {
  keepRuns: number;
  keepDays?: number;
}

export const DEFAULT_KEEP_RUNS = 100;

/** Keys deleted per transaction when a run goes (etcd refuses a txn of more than 128 operations). */
const DELETES_PER_TXN = 100;
/** How often retention reads every run record again (other masters' runs). */
const FULL_READ_MS = 3_600_000;

/** What retention needs to know of a run. */
interface RunBrief {
  targets: string[];
  /** When it finished (ms); undefined while it has not. */
  finished?: number;
  part_of?: string;
}

function brief(record: RunRecord): RunBrief {
  return {
    targets: record.targets,
    ...(record.state === 'finished' ? { finished: Date.parse(record.finished ?? record.created) } : {}),
    ...(record.part_of ? { part_of: record.part_of } : {}),
  };
}

export class RunManager {
  private readonly live = new Map<string, LiveRun>();
  private readonly log: (line: string) => void;

  /** Ends the store watches (run requests, cancels, followers of other masters' runs). */
  private readonly stopping = new AbortController();

  constructor(private readonly store: Store, private readonly agents: AgentHub, log?: (line: string) => void, private readonly owners?: AgentOwners,
    private readonly retention: Retention = { keepRuns: DEFAULT_KEEP_RUNS }) {
    this.log = log ?? (() => undefined);
  }

  /**
   * Records the run and starts it, here or (several masters) on the one master its agents are
   * connected to; resolves with its id once the record is in the store. A run whose agents are
   * connected to different masters is split: this master runs it, its own agents' targets
   * itself and each other master's as a part handed to that master, and reports it as one.
   */
  async start(request: RunRequest): Promise<string> {
    const now = new Date();
    const record: RunRecord = {
      id: newRunId(now), mode: request.mode, targets: request.targets, state: 'queued', created: now.toISOString(),
      ...(request.requestedBy ? { requested_by: request.requestedBy } : {}),
      ...(request.revision ? { revision: request.revision } : {}),
    };
    const where = await this.placement(request.targets);
    const [only] = where.keys();
    if (where.size === 1 && only !== this.owners!.id) {
      await this.handOver(only!, record, request);
      return record.id;
    }
    const parts = [...where].filter(([master]) => master !== this.owners!.id).map(([master, targets]): RunPart => ({ id: newRunId(now), runs_on: master, targets }));
    if (parts.length > 0) record.parts = parts;
    await this.begin(record, request);
    return record.id;
  }

  /** The live masters holding the run's targets' agents (this one's id included), each with its targets. */
  private async placement(targets: string[]): Promise<Map<string, string[]>> {
    const where = new Map<string, string[]>();
    if (!this.owners) return where;
    for (const name of targets) {
      const owner = this.agents.isConnected(name) ? this.owners.id : await this.owners.ownerOf(name);
      // Connected nowhere: it ends unreachable wherever the run goes.
      if (owner === undefined) continue;
      where.set(owner, [...(where.get(owner) ?? []), name]);
    }
    return where;
  }

  private async handOver(master: string, record: RunRecord, request: RunRequest): Promise<void> {
    const queued: RunRecord = { ...record, runs_on: master };
    await this.store.put(RUN_KEYS.run(record.id), JSON.stringify(queued));
    // Should that master die before it ends the run, a master that sees it gone records the run interrupted.
    await this.store.put(OWNER_KEYS.runningRun(record.id), master);
    const handOver: z.infer<typeof runHandOver> = {
      id: record.id, created: record.created, mode: request.mode, targets: request.targets, options: request.options,
      ...(record.requested_by ? { requested_by: record.requested_by } : {}),
      ...(record.part_of ? { part_of: record.part_of } : {}),
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
    this.prune();
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
        ...(handOver.part_of ? { part_of: handOver.part_of } : {}),
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
    await this.sweep();
    this.sweeper = setInterval(() => void this.sweep(), owners.checkEveryMs);
    this.sweeper.unref();
  }

  private sweeper: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;

  /**
   * Records as interrupted the runs whose master is no longer alive (killed, cut off from the
   * store, or this master's previous process): they would otherwise say `running` for ever. Their
   * agents are not touched: an agent that lost its master stopped the op itself, and one another
   * master now holds goes on with that master's runs.
   */
  sweep(): Promise<void> {
    const owners = this.owners;
    if (!owners) return Promise.resolve();
    this.sweeping ??= (async () => {
      for (const kv of await this.store.list(OWNER_KEYS.running)) {
        const master = kv.value.toString('utf8');
        if (master === owners.id || (await owners.alive(master))) continue;
        await this.interrupted(kv.key.slice(OWNER_KEYS.running.length), master);
      }
    })().catch((err: unknown) => {
      if (!this.stopping.signal.aborted) this.log(`looking for runs of masters that stopped failed: ${(err as Error).message}`);
    }).finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  /** Finishes run `id`, which master `master` ran until it stopped: one transaction, unless that master (or another sweep) wrote it meanwhile. */
  private async interrupted(id: string, master: string): Promise<void> {
    const runningKey = OWNER_KEYS.runningRun(id);
    const kv = RUN_ID.test(id) ? await this.store.get(RUN_KEYS.run(id)) : undefined;
    let record: RunRecord | undefined;
    try {
      record = kv ? JSON.parse(kv.value.toString('utf8')) as RunRecord : undefined;
    } catch {
      record = undefined;
    }
    if (!kv || !record || record.state === 'finished') {
      await this.store.txn([{ key: runningKey, target: 'value', op: '=', value: master }], [{ delete: runningKey }]);
      return;
    }
    const events: RunEvent[] = [];
    for (const e of await this.store.list(RUN_KEYS.events(id))) {
      try {
        events.push(...storedEvents(e.value));
      } catch {
        continue;
      }
    }
    const reason = `the master running it (${master}) stopped before the run finished`;
    const nodes = new Map<string, NodeResult[]>();
    const outcomes = new Map<string, TargetOutcome>();
    for (const e of events) {
      if (e.type === 'node') nodes.set(e.target, [...(nodes.get(e.target) ?? []), e.node]);
      else if (e.type === 'target' && e.phase === 'finished') outcomes.set(e.target, e.outcome);
    }
    const now = new Date().toISOString();
    const report = {
      version: 1 as const, mode: record.mode, started: record.started ?? record.created, finished: now,
      targets: record.targets.map((name) => outcomes.get(name) ?? unreachableOutcome(record.mode, name, nodes.get(name) ?? [], reason)),
    };
    const finished: RunRecord = { ...record, state: 'finished', finished: now, interrupted: reason, report };
    const seq = events.reduce((max, e) => Math.max(max, e.seq), 0) + 1;
    const last: RunEvent = { seq, type: 'run', state: 'finished', interrupted: reason, report };
    const { succeeded } = await this.store.txn([
      { key: runningKey, target: 'value', op: '=', value: master },
      { key: kv.key, target: 'modRevision', op: '=', value: kv.modRevision },
    ], [{ put: kv.key, value: JSON.stringify(finished) }, { put: RUN_KEYS.event(id, seq), value: JSON.stringify(last) }, { delete: runningKey }]);
    if (succeeded) {
      this.briefs.set(id, brief(finished));
      this.log(`run ${id}: ${reason}: recorded as interrupted`);
    }
  }

  private pruning: Promise<void> | undefined;
  private pruneAgain = false;
  /** Every run this master knows, in brief: read whole from the store at start and every FULL_READ_MS, then kept up by its own runs. */
  private readonly briefs = new Map<string, RunBrief>();
  private lastFullRead = 0;

  /**
   * Removes, in the background, the finished runs beyond the retention (their records and
   * events, in store transactions); at start and after each run ends. One pass at a time: a call
   * during a pass makes one more pass after it. A pass decides from the briefs in memory (no run
   * is read for it), except at start and once an hour, when every record is read again (runs other
   * masters made meanwhile: until then they only make this master keep more, never fewer).
   */
  prune(): void {
    if (this.pruning) {
      this.pruneAgain = true;
      return;
    }
    this.pruning = (async () => {
      do {
        this.pruneAgain = false;
        await this.prunePass();
      } while (this.pruneAgain && !this.stopping.signal.aborted);
    })().catch((err: unknown) => {
      if (!this.stopping.signal.aborted) this.log(`removing old runs failed: ${(err as Error).message}`);
    }).finally(() => (this.pruning = undefined));
  }

  private async prunePass(): Promise<void> {
    const { keepRuns, keepDays } = this.retention;
    const full = Date.now() - this.lastFullRead >= FULL_READ_MS;
    if (full) {
      this.lastFullRead = Date.now();
      const read = new Map<string, RunBrief>();
      for (const kv of await this.store.list(RUN_KEYS.runs)) {
        try {
          const record = JSON.parse(kv.value.toString('utf8')) as RunRecord;
          read.set(record.id, brief(record));
        } catch {
          continue;
        }
      }
      // Runs of this master begun during the read are kept as they are.
      for (const [id, b] of this.briefs) if (!read.has(id) && this.live.has(id)) read.set(id, b);
      this.briefs.clear();
      for (const [id, b] of read) this.briefs.set(id, b);
    }
    const oldest = keepDays !== undefined ? Date.now() - keepDays * 86_400_000 : undefined;
    // Newest first (ids sort as the runs were made): each target's newest finished runs are kept.
    const ids = [...this.briefs.keys()].sort().reverse();
    const doomed = new Set<string>();
    const seen = new Map<string, number>();
    for (const id of ids) {
      const b = this.briefs.get(id)!;
      if (b.finished === undefined || b.part_of) continue;
      const newest = b.targets.some((t) => (seen.get(t) ?? 0) < keepRuns);
      for (const t of b.targets) seen.set(t, (seen.get(t) ?? 0) + 1);
      if (!newest || (oldest !== undefined && b.finished < oldest)) doomed.add(id);
    }
    let removed = 0;
    for (const id of ids.reverse()) {
      // Gone already when it was a part of a run removed before it.
      const b = this.briefs.get(id);
      if (b?.finished === undefined || this.stopping.signal.aborted) continue;
      // A part goes with the run it is part of, or (seen on a full read) once that run has gone.
      const goes = b.part_of ? doomed.has(b.part_of) || (full && !this.briefs.has(b.part_of)) : doomed.has(id);
      if (goes && (await this.remove(id))) removed++;
    }
    if (removed > 0) this.log(`removed ${removed} old run${removed === 1 ? '' : 's'} (keeping the newest ${keepRuns} of each target${keepDays !== undefined ? `, none older than ${keepDays} days` : ''})`);
  }

  /**
   * Deletes a finished run's events, then its record, each transaction only while the record is
   * the one read (another master may be removing it too): a removal cut short leaves the record,
   * and the next pass finishes it.
   */
  private async remove(id: string): Promise<boolean> {
    const kv = await this.store.get(RUN_KEYS.run(id));
    if (!kv) {
      this.briefs.delete(id);
      return false;
    }
    let parts: RunPart[] = [];
    try {
      const record = JSON.parse(kv.value.toString('utf8')) as RunRecord;
      if (record.state !== 'finished') return false;
      parts = record.parts ?? [];
    } catch {
      // Not a record this code wrote: it goes like a finished one.
    }
    const unchanged: Compare = { key: kv.key, target: 'modRevision', op: '=', value: kv.modRevision };
    const events = (await this.store.list(RUN_KEYS.events(id))).map((e) => e.key);
    for (let i = 0; i < events.length; i += DELETES_PER_TXN) {
      const { succeeded } = await this.store.txn([unchanged], events.slice(i, i + DELETES_PER_TXN).map((key) => ({ delete: key })));
      if (!succeeded) return false;
    }
    const { succeeded } = await this.store.txn([unchanged], [{ delete: kv.key }]);
    if (!succeeded) return false;
    this.briefs.delete(id);
    if (this.live.get(id)?.record.state === 'finished') this.live.delete(id);
    // Its parts (other masters ran them) go with it.
    for (const part of parts) if (RUN_ID.test(part.id)) await this.remove(part.id);
    return true;
  }

  /** Ends the store watches. */
  stop(): void {
    clearInterval(this.sweeper);
    this.stopping.abort();
  }

  private async begin(record: RunRecord, request: RunRequest): Promise<void> {
    const run = new LiveRun(record);
    this.live.set(record.id, run);
    this.briefs.set(record.id, brief(record));
    this.emit(run, { type: 'run', state: 'queued' });
    const owners = this.owners;
    // In the record's own transaction: a master that dies between them leaves no run without its key.
    if (owners) void this.storeInBatch(run, OWNER_KEYS.runningRun(record.id), owners.id);
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
    const parts = new Map((run.record.parts ?? []).map((part) => [part, this.runPart(run, request, part, signal)] as const));
    const partOf = (name: string) => [...parts].find(([part]) => part.targets.includes(name));
    const outcomes = await Promise.all(request.targets.map(async (name): Promise<TargetOutcome> => {
      const part = partOf(name);
      const outcome = part ? (await part[1]).get(name)! : await this.runTarget(run, request, name, signal);
      this.emit(run, { type: 'target', target: name, phase: 'finished', outcome });
      return outcome;
    }));
    this.finish(run, outcomes, started);
    await run.writes;
  }

  /**
   * Hands `part` of `run` to the master holding its agents, and follows it from the store: its
   * events become this run's (renumbered), its outcomes this run's for those targets. Cancelling
   * `run` cancels the part on its master; a master that dies mid-part leaves it interrupted
   * (sweep), which ends it here too.
   */
  private async runPart(run: LiveRun, request: RunRequest, part: RunPart, signal: AbortSignal): Promise<Map<string, TargetOutcome>> {
    const { record } = run;
    const compiled = request.compiled ? new Map([...request.compiled].filter(([name]) => part.targets.includes(name))) : undefined;
    await this.handOver(part.runs_on, {
      id: part.id, mode: record.mode, targets: part.targets, state: 'queued', created: record.created, part_of: record.id,
      ...(record.requested_by ? { requested_by: record.requested_by } : {}),
      ...(record.revision ? { revision: record.revision } : {}),
    }, { ...request, targets: part.targets, ...(compiled ? { compiled } : {}) });
    const cancel = () => void this.store.put(OWNER_KEYS.cancel(part.id), new Date().toISOString())
      .catch((err: unknown) => this.log(`run ${record.id}: cannot cancel its part ${part.id}: ${(err as Error).message}`));
    if (signal.aborted) cancel();
    else signal.addEventListener('abort', cancel, { once: true });
    const outcomes = new Map<string, TargetOutcome>();
    const nodes = new Map<string, NodeResult[]>();
    let ended = `master ${part.runs_on} ended its part of the run (${part.id}) without an outcome for this target`;
    await new Promise<void>((resolve) => {
      // This master stopping ends the following (close() cancelled the run first: the part was told).
      const stopped = () => {
        ended = `this master stopped before its part of the run on master ${part.runs_on} (${part.id}) ended`;
        resolve();
      };
      this.stopping.signal.addEventListener('abort', stopped, { once: true });
      this.followStored(part.id, 0, (e) => {
        if (e.type === 'run') {
          // A part recorded interrupted (its master died) has outcomes only in its report.
          for (const outcome of e.report?.targets ?? []) if (!outcomes.has(outcome.name)) outcomes.set(outcome.name, outcome);
          return;
        }
        if (e.type === 'target' && e.phase === 'finished') {
          outcomes.set(e.target, e.outcome);
          return;
        }
        if (e.type === 'node') nodes.set(e.target, [...(nodes.get(e.target) ?? []), e.node]);
        const { seq: _seq, ...event } = e;
        this.emit(run, event);
      }, () => {
        this.stopping.signal.removeEventListener('abort', stopped);
        resolve();
      }).catch((err: unknown) => {
        ended = `following its part of the run on master ${part.runs_on} (${part.id}) failed: ${(err as Error).message}`;
        resolve();
      });
    });
    signal.removeEventListener('abort', cancel);
    // The part has ended: a cancel for it has been acted on, or is too late.
    if (signal.aborted) await this.store.delete(OWNER_KEYS.cancel(part.id)).catch(() => undefined);
    for (const name of part.targets) if (!outcomes.has(name)) outcomes.set(name, unreachableOutcome(record.mode, name, nodes.get(name) ?? [], ended));
    return outcomes;
  }

  private async runTarget(run: LiveRun, request: RunRequest, name: string, signal: AbortSignal): Promise<TargetOutcome> {
    const skipped = (reason: string): TargetOutcome => (request.mode === 'plan' || request.mode === 'apply'
      ? { ...summarize(name, []), status: 'skipped', reason }
      : request.mode === 'facts' ? { name, status: 'skipped', error: reason } : { name, status: 'skipped', exit_code: null, stdout: '', stderr: '', error: reason });
    // The nodes the agent reported before it went away stay in the report.
    const nodes: NodeResult[] = [];
    const unreachable = (error: string): TargetOutcome => unreachableOutcome(request.mode, name, nodes, error);
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
        if (!result.ok || !result.report || !('counts' in result.report)) return unreachable(result.error ?? 'the agent sent no report');
        // Without its nodes when they all came as events (protocol.ts): those are its nodes.
        const report = (result.report.nodes ? result.report : { ...result.report, nodes }) as TargetReport;
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
    if (this.owners) this.queueWrite(run, 'its master', () => this.store.delete(OWNER_KEYS.runningRun(run.record.id)));
    this.briefs.set(run.record.id, brief(run.record));
    void run.writes.then(() => this.prune());
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
    void this.storeEventInBatch(run, sequenced.seq, text);
    for (const listener of run.listeners) listener(sequenced);
  }

  /** A store write of run `run`, after those before it; a failure is logged (`what` says what was not stored). */
  private queueWrite(run: LiveRun, what: string, write: () => Promise<unknown>): Promise<void> {
    run.writes = run.writes.then(write).then(() => undefined, (err: unknown) => this.log(`run ${run.record.id}: ${what} not stored: ${(err as Error).message}`));
    return run.writes;
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
    // Events after it start a group of their own: the order of writes is the order queued.
    run.openGroup = undefined;
    // A newer snapshot of a key queued already takes its place after what was queued since.
    run.pending.delete(key);
    run.pending.set(key, value);
    return this.scheduleBatch(run);
  }

  /**
   * Queues an event for the run's next batch: it joins the group of events queued just before
   * it (one key, named after the group's first seq, holds them all), else begins one.
   */
  private storeEventInBatch(run: LiveRun, seq: number, text: string): Promise<void> {
    const group = run.openGroup;
    if (group && group.texts.length < EVENTS_PER_KEY && group.bytes + text.length <= EVENT_KEY_BYTES) {
      group.texts.push(text);
      group.bytes += text.length + 1;
    } else {
      run.openGroup = { texts: [text], bytes: text.length + 2 };
      run.pending.set(RUN_KEYS.event(run.record.id, seq), run.openGroup.texts);
    }
    return this.scheduleBatch(run);
  }

  private scheduleBatch(run: LiveRun): Promise<void> {
    if (!run.nextBatch) {
      run.nextBatch = run.writes.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(() => {
        const batch = run.pending;
        run.pending = new Map();
        run.openGroup = undefined;
        run.nextBatch = undefined;
        return this.writeBatch(run.record.id, batch);
      });
      run.writes = run.nextBatch;
    }
    return run.nextBatch;
  }

  private async writeBatch(id: string, batch: Map<string, string | string[]>): Promise<void> {
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
    for (const [key, queued] of batch) {
      const value = typeof queued === 'string' ? queued : `[${queued.join(',')}]`;
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
    // A part of a run is not a run of its own to the user: the run it is part of is listed.
    const records = kvs.map((kv) => this.live.get(kv.key.slice(RUN_KEYS.runs.length))?.record ?? JSON.parse(kv.value.toString('utf8')) as RunRecord)
      .filter((r) => !r.part_of);
    return records.slice(-limit).reverse().map((record) => {
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
      if (storedEvents(kv.value).some(deliver)) {
        onEnd();
        return () => undefined;
      }
    }
    const stop = new AbortController();
    const signal = AbortSignal.any([stop.signal, this.stopping.signal]);
    void (async () => {
      for await (const change of this.store.watch(RUN_KEYS.events(id), { signal, fromRevision: from })) {
        if (change.type !== 'put' || !change.value) continue;
        if (storedEvents(change.value).some(deliver)) {
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
    await this.pruning;
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
