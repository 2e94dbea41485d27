/**
 * `cairn agent` in pull mode (DESIGN §7, §8): watches the store's head revision and, when it
 * moves, converges this machine as target `name` of the newest revision, compiled against this
 * machine's own facts and OS tables (the documents stay OS-agnostic), then writes its report
 * back. Bursts of pushes are debounced into one run of the newest revision. The last revision run
 * is kept in the store, so a restarted agent runs a revision that landed while it was down, once,
 * and never runs one twice; a watch that fails is resumed from the last revision it saw.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LockHeldError } from '../engine/run-lock.ts';
import { runExitCode, runTarget, type RunReport } from '../engine/run-target.ts';
import type { StateFile, StateStorage } from '../engine/target-state.ts';
import { LocalExecutor } from '../executors/local.ts';
import { localFacts } from '../executors/local-facts.ts';
import { ExitCode, InputError } from '../lib/errors.ts';
import { CAIRN_VERSION } from '../lib/version.ts';
import { CorruptDocument, headManifest, KEYS, materialize, type Manifest } from '../store/documents.ts';
import type { Compiled } from '../graph/codec.ts';
import { StoreCompactedError } from '../store/errors.ts';
import type { Store } from '../store/types.ts';

export interface AgentOptions {
  store: Store;
  /** The target this machine is in the site. */
  name: string;
  /** Converge the newest revision once, then return. */
  once?: boolean;
  /** Where revisions are unpacked (default /var/lib/cairn/agent). */
  workDir: string;
  /** Quiet time after a change before running (a burst of pushes is one run). */
  debounceMs?: number;
  signal: AbortSignal;
  log: (line: string) => void;
  /**
   * Compiles target `name` of the site in `dir` with `facts` (the CLI's compiler, with its cache);
   * input errors are thrown as InputError, their files' text left in `sources`.
   */
  compile: (dir: string, name: string, facts: Record<string, unknown>, sources: Map<string, string>) => Promise<Compiled>;
  /** Renders input errors for the log and the agent's record (positions and source lines). */
  formatErrors: (err: InputError, sources: Map<string, string>) => string;
  /** How long the agent's lease on its name lasts after it stops renewing it (default 15 s). */
  leaseTtlSeconds?: number;
  /** How long to wait for another agent's lease on the name to run out before giving up (default 0). */
  leaseWaitSeconds?: number;
}

export const DEFAULT_LEASE_TTL_S = 15;

/** Who holds an agent's lease: what its value says. */
interface LeaseHolder {
  host: string;
  pid: number;
  started: string;
  ttl: number;
}

/**
 * Another agent of the same name holds its lease in the store (exit 3): two would converge every
 * revision twice, running handlers twice.
 */
export class AgentRunningError extends Error {
  readonly exitCode = ExitCode.unreachable;
  constructor(name: string, url: string, holderValue: Buffer, waited: boolean) {
    let holder: LeaseHolder | undefined;
    try {
      holder = JSON.parse(holderValue.toString('utf8')) as LeaseHolder;
    } catch {
      holder = undefined;
    }
    const who = holder ? `pid ${holder.pid} on host ${holder.host} (since ${holder.started})` : 'an agent that did not say who it is';
    super(`another agent named ${name} is running against ${url}: ${who}; two would converge every revision twice. ` +
      (waited ? 'Its lease did not run out while this one waited.' : `Stop it first; if it is gone, its lease runs out within ${holder?.ttl ?? DEFAULT_LEASE_TTL_S} s (--lease-wait SECONDS to wait for that).`));
    this.name = 'AgentRunningError';
  }
}

/** What the agent records in the store after each run: the revision it ran and how it went. */
export interface AgentRecord {
  name: string;
  host: string;
  version: string;
  facts: Record<string, unknown>;
  /** The last revision run to the end (its nodes may have failed); a revision never runs twice. */
  revision?: string;
  /** The newest revision that could not be compiled, and why; the agent stays on `revision`. */
  rejected?: { revision: string; error: string };
  updated: string;
}

/** The run report the store keeps per target: what `--json` prints, with the revision. */
export interface StoredReport extends RunReport {
  mode: 'apply';
  revision: string;
}

/** Pending notifications and input hashes in the store (DESIGN §8), not only on the machine. */
export function storeStateStorage(store: Store, target: string): StateStorage {
  return {
    paths: () => [],
    read: async (file: StateFile) => (await store.get(KEYS.state(target, file)))?.value,
    write: async (file: StateFile, data: string) => {
      await store.put(KEYS.state(target, file), data);
    },
  };
}

export async function readAgentRecord(store: Store, name: string): Promise<AgentRecord | undefined> {
  const kv = await store.get(KEYS.agent(name));
  if (!kv) return undefined;
  try {
    return JSON.parse(kv.value.toString('utf8')) as AgentRecord;
  } catch {
    return undefined;
  }
}

export class Agent {
  private record: AgentRecord;
  /** Read again before each run: a run may change them (a hostname, a package manager). */
  private facts = localFacts();
  /** The caller's signal, or the loss of the agent's lease. */
  private signal: AbortSignal;

  constructor(private readonly options: AgentOptions) {
    this.record = { name: options.name, host: hostname(), version: CAIRN_VERSION, facts: this.facts, updated: new Date().toISOString() };
    this.signal = options.signal;
  }

  private async saveRecord(): Promise<void> {
    this.record.updated = new Date().toISOString();
    await this.options.store.put(KEYS.agent(this.options.name), JSON.stringify(this.record));
  }

  /**
   * Runs until the signal aborts (or once); returns the exit code of the last run. Holds the
   * store's lease on its name meanwhile: throws AgentRunningError if another agent holds it,
   * and stops (exit 3) if it loses it.
   */
  async run(): Promise<number> {
    const { store, name, log } = this.options;
    const ttl = this.options.leaseTtlSeconds ?? DEFAULT_LEASE_TTL_S;
    const waitMs = (this.options.leaseWaitSeconds ?? 0) * 1000;
    const holder: LeaseHolder = { host: hostname(), pid: process.pid, started: new Date().toISOString(), ttl };
    if (waitMs > 0) log(`taking the lease on the name ${name} (waiting up to ${waitMs / 1000} s for another agent's to run out)`);
    const attempt = await store.lease(KEYS.agentLease(name), JSON.stringify(holder), ttl, waitMs);
    if ('holder' in attempt) throw new AgentRunningError(name, store.url, attempt.holder, waitMs > 0);
    const lease = attempt.held;
    // Either ends the agent (AbortSignal.any is newer than the Node 20.0 Cairn supports).
    const stopping = new AbortController();
    for (const s of [this.options.signal, lease.lost]) {
      if (s.aborted) stopping.abort();
      else s.addEventListener('abort', () => stopping.abort(), { once: true });
    }
    this.signal = stopping.signal;
    try {
      const code = await this.runHeld();
      if (lease.lost.aborted) {
        log(`stopping: ${(lease.lost.reason as Error).message}; another agent named ${name} may be running`);
        return ExitCode.unreachable;
      }
      return code;
    } finally {
      await lease.release();
    }
  }

  private async runHeld(): Promise<number> {
    const { store, log } = this.options;
    const signal = this.signal;
    const previous = await readAgentRecord(store, this.options.name);
    if (previous?.revision) this.record.revision = previous.revision;
    await this.saveRecord();
    // Where the watch starts: right after the store revision at which the head was read, so a
    // push that lands between the read and the watch is seen.
    const startedAt = await store.revision();
    let code = await this.convergeHead();
    if (this.options.once) return code;
    log(`watching ${store.url} for new revisions`);
    let from = startedAt + 1;
    while (!signal.aborted) {
      try {
        for await (const change of this.debounced(store.watch(KEYS.head, { signal, fromRevision: from }))) {
          from = change + 1;
          code = await this.convergeHead();
        }
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof StoreCompactedError) {
          // The history since the last change seen is gone: what matters is the newest revision.
          log(`the store no longer has the changes since revision ${from}; reading the newest revision`);
          from = (await store.revision()) + 1;
          code = await this.convergeHead();
          continue;
        }
        log(`watch interrupted (${(err as Error).message}); resuming from revision ${from}`);
        await sleep(1000, signal);
      }
    }
    return code;
  }

  /**
   * The store revisions of head changes, a burst delivered as its last: after a change, waits
   * until no other change came for `debounceMs`.
   */
  private async *debounced(changes: AsyncIterable<{ key: string; revision: number }>): AsyncIterable<number> {
    const iterator = changes[Symbol.asyncIterator]();
    const wait = this.options.debounceMs ?? 500;
    let next = iterator.next();
    for (;;) {
      const first = await next;
      if (first.done) return;
      let latest = first.value.revision;
      next = iterator.next();
      for (;;) {
        const timer = new Promise<'quiet'>((resolve) => setTimeout(() => resolve('quiet'), wait));
        const r = await Promise.race([next, timer]);
        if (r === 'quiet') break;
        if (r.done) {
          yield latest;
          return;
        }
        latest = r.value.revision;
        next = iterator.next();
      }
      yield latest;
    }
  }

  /** Converges the head revision unless it is the one run last. Returns an exit code. */
  async convergeHead(): Promise<number> {
    const { store, log } = this.options;
    let head: { manifest: Manifest } | undefined;
    try {
      head = await headManifest(store);
    } catch (err) {
      if (!(err instanceof CorruptDocument)) throw err;
      return this.reject('(unknown)', err.message);
    }
    if (!head) {
      log('nothing pushed yet');
      return 0;
    }
    const { manifest } = head;
    if (manifest.id === this.record.revision) return 0;
    log(`revision ${manifest.id}: converging ${this.options.name}`);
    this.facts = localFacts();
    this.record.facts = this.facts;
    const started = new Date();
    let compiled: Compiled;
    const sources = new Map<string, string>();
    try {
      const dir = await materialize(store, manifest, join(this.options.workDir, 'revisions'));
      compiled = await this.options.compile(dir, this.options.name, this.facts, sources);
    } catch (err) {
      if (err instanceof InputError) return this.reject(manifest.id, this.options.formatErrors(err, sources));
      if (err instanceof CorruptDocument) return this.reject(manifest.id, err.message);
      throw err;
    }
    // The agent's runs share a content index in its work dir (its state is in the store).
    const exec = new LocalExecutor({ contentIndex: { file: join(this.options.workDir, 'content-index.json'), trust: true, save: true } });
    const report = await runTarget(compiled, exec, {
      mode: 'apply', facts: this.facts, stateStorage: storeStateStorage(store, this.options.name), signal: this.signal,
      // A run that dies is not recorded as run: the agent stops, and runs the revision again when restarted.
      errors: 'throw',
      // A daemon has no one to tell to try again: it waits out a run from elsewhere (an SSH
      // apply), as long as it is not stopped.
      lockWaitMs: Infinity,
      onNotice: log,
      onResult: (r) => {
        if (r.status !== 'unchanged') log(`${r.status.padEnd(9)} ${r.ref}${r.reason ? ` — ${r.reason}` : ''}${r.error ? `\n  ${r.error.split('\n').join('\n  ')}` : ''}`);
      },
    }).catch((err: unknown) => {
      if (err instanceof LockHeldError) return undefined;
      throw err;
    }).finally(() => exec.close());
    // Stopped while waiting for another run's lock: nothing ran, and the revision is not recorded.
    if (!report) return 2;
    const stored: StoredReport = { version: 1, mode: 'apply', revision: manifest.id, started: started.toISOString(), finished: new Date().toISOString(), targets: [report] };
    await store.put(KEYS.report(this.options.name), JSON.stringify(stored));
    this.record.revision = manifest.id;
    delete this.record.rejected;
    await this.saveRecord();
    const c = report.counts;
    log(`revision ${manifest.id}: ${c.changed} changed, ${c.unchanged} unchanged, ${c.failed} failed, ${c.skipped} skipped`);
    return runExitCode('apply', [report]);
  }

  /**
   * A revision that cannot be run: recorded with its error in the agent's record (the last run's
   * report stays), and the agent stays on the last good revision.
   */
  private async reject(revision: string, error: string): Promise<number> {
    this.options.log(`revision ${revision} rejected; staying on ${this.record.revision ?? 'no revision'}:\n${error}`);
    if (this.record.rejected?.revision !== revision) {
      this.record.rejected = { revision, error };
      await this.saveRecord();
    }
    return 2;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
