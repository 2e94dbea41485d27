/**
 * Plan and apply (DESIGN §5): walks the graph in its run order, reads each node through its
 * provider, diffs, applies, and carries out requisites, notifications, handlers, stages,
 * transitions, change classes, noop and fail-fast. It knows resource types only as data.
 */
import { posix } from 'node:path';
import { canonicalJson } from '../lib/canonical-json.ts';
import { formatPos } from '../lib/errors.ts';
import { nowMs } from '../lib/clock.ts';
import { killPoint } from '../lib/test-kill.ts';
import { releaseGarbage } from '../lib/memory.ts';
import { abortSignalOf, type RunSignal } from '../lib/run-signal.ts';
import { sha256Hex } from '../lib/digest.ts';
import { hiddenContentDiff } from '../lib/hidden-diff.ts';
import type { StateRun } from '../catalog/staterun.ts';
import { observeExecutor } from '../executors/observe.ts';
import { isTargetFailure, type Executor, type ExecutorCapability, type PrefetchEntry } from '../executors/types.ts';
import type { Edge, Graph, GraphNode } from '../graph/build.ts';
import { sensitiveMask, sensitiveValues } from '../graph/sensitive.ts';
import { tagFiltered, type TagFilter } from '../graph/tags.ts';
import { selectProvider } from '../resources/providers.ts';
import { ApplyError, SkipNode, type Action, type ApplyOutcome, type Current, type EngineServices, type FileEdits, type GuardedCommands, type ImageBuilder, type ProgressUpdate, type Provider, type ProviderContext, type Reads, type TypeBehaviour } from '../resources/type.ts';
import { diffNode } from './diff.ts';
import { gatherEdits } from './gathered-edits.ts';
import { FootprintIndex, footprintOf, InFlight, StartOrder, type Footprint } from './overlap.ts';
import { stateDirStorage, TargetState, type StateStorage } from './target-state.ts';
import { pushTo } from '../lib/multimap.ts';

export type NodeStatus = 'unchanged' | 'changed' | 'failed' | 'skipped' | 'would-change' | 'unknown';

export interface NodeResult {
  ref: string;
  /** The graph node id (differs from ref for stages). */
  id: string;
  state: string;
  invocation: number;
  status: NodeStatus;
  action: Action;
  reason?: string;
  changes?: string[];
  /** What the change is item by item, when the node stands for many things (Provider.items). */
  items?: string[];
  diff?: string;
  error?: string;
  ms: number;
}

/** Whether a result has no field but `status` and `action` (not even one set to undefined). */
function statusAndActionOnly(result: object): boolean {
  let fields = 0;
  for (const key in result) {
    if (key !== 'status' && key !== 'action') return false;
    fields++;
  }
  return fields === 2;
}

/**
 * Where the engine finds types and providers: by default the types' behaviour the compiled graph
 * carries and the built-in providers, unless a test gives its own.
 */
export interface Registry {
  type(name: string): TypeBehaviour | undefined;
  /** Throws ApplyError when no provider fits (the node fails saying why). */
  provider(type: string, facts: Record<string, unknown>, os: Record<string, unknown>, wanted?: string): Provider;
}

function inputHash(type: TypeBehaviour, desired: Record<string, unknown>): string | undefined {
  if (!type.writeOnly?.length) return undefined;
  const picked = Object.fromEntries(type.writeOnly.filter((a) => desired[a] !== undefined).map((a) => [a, desired[a]]));
  return sha256Hex(canonicalJson(picked));
}

export interface EngineOptions {
  registry?: Registry;
  mode: 'plan' | 'apply';
  failFast?: boolean;
  diff?: boolean;
  facts?: Record<string, unknown>;
  /** Called as each node finishes. */
  onResult?: (result: NodeResult) => void;
  /** A provider's log line (ProviderContext.log), with the node it came from. */
  onLog?: (ref: string, message: string) => void;
  /** A provider's progress on a long operation (ProviderContext.progress). */
  onProgress?: (ref: string, update: ProgressUpdate) => void;
  /** A node's turn begins (its result follows through onResult). */
  onStart?: (ref: string) => void;
  /** Each command run on the target as it finishes (onLog's lines too: sensitive values masked). */
  onCommand?: (command: CommandEvent) => void;
  /** Cancels the run: providers see it as ctx.signal, and no node starts after it fired. */
  signal?: RunSignal;
  /** Where pending notifications and input hashes are kept; default: the target's state_dir. */
  stateStorage?: StateStorage;
  /**
   * Whether this run alone writes the target's state_dir now (it holds the target's run lock):
   * a change to its pending notifications then starts from the run's own copy instead of a
   * fresh read (TargetState). Not asked of a `stateStorage`, which another process may write.
   */
  stateExclusive?: () => boolean;
  /** `--tags` / `--skip-tags`: the nodes left out are reported `skipped (tags)`. */
  tags?: TagFilter;
  /** The provisioner, for the lifecycle types' builds (ProviderContext.images). */
  images?: ImageBuilder;
}

/** A command run on the target (`-v`), with every sensitive value in it shown as `(sensitive)`. */
export interface CommandEvent {
  argv: string[];
  /** Absent when the command did not finish: `error` says why. */
  code?: number;
  timedOut?: boolean;
  error?: string;
  stdout: string;
  stderr: string;
  ms: number;
}

export { sensitiveMask } from '../graph/sensitive.ts';

/** What an executor that does not say offers (ssh, and executors in tests). */
const DEFAULT_CAPABILITIES: readonly ExecutorCapability[] = ['running-system'];
const CAPABILITY_WORDS: Record<ExecutorCapability, string> = {
  'running-system': 'a running system',
  cairn: 'Cairn on the machine (the local or agent executor)',
};

/** When a triggered lazy node runs, besides "at the end of invocation k" (k ≥ 0). */
const AT_END_OF_RUN = -1; // deferred handlers
const AT_FIRST_CHANCE = -2; // pending from an earlier run: at the first invocation end (or the run's, if deferred)

/**
 * How many nodes that may overlap can wait for their turn (startOverlapped) before the run stops
 * looking further ahead: enough for a first run's files to wait on their folders while the next
 * folders are made, few enough that what waits costs no memory to speak of. At least 32 (the
 * local executor: its writes cost no round trip), else half of what the executor may have in
 * flight: over SSH (256 in flight) the standard workload's tree takes 5 batches instead of 17,
 * and its first run 37 round trips instead of 49, at the same peak memory (1 and 4 hosts, measured).
 */
const MIN_LOOKAHEAD = 32;
/**
 * A run lets the event loop turn at least this often. A converged node's turn is a few stat
 * calls with nothing to wait on, so a no-op run would otherwise hold the loop from its first
 * node to its last: what the run's results feed could not leave as they came (an agent's
 * frames to its master went out only at the end, since TLS writes one record at a time and
 * hears the last one done only when the loop turns), nor a signal be heard.
 */
const LOOP_TURN_MS = 4;

/**
 * Runs of at least this many nodes collect what their set-up left at a loop turn (releaseGarbage).
 * Below it the collection costs more than the memory it gives back: several targets converged
 * in one process passed the collector's 40 MiB threshold together, and a 4-host SSH no-op of the
 * 742-resource workload took some 30 ms longer.
 */
const COLLECT_FROM_NODES = 20_000;
/**
 * Requisite edges whose failure skips the node that depends on them. Not onchanges: a watched
 * node that failed did not change, so the watcher is `skipped (no changes)`, and what requires
 * the watcher still runs (DESIGN §5.4).
 */
const BLOCKING: ReadonlySet<string> = new Set(['require', 'transition']);

/** What a change reports besides its status and action (Engine.changeReport). */
type ChangeReport = Pick<NodeResult, 'changes' | 'items' | 'diff'>;

/** The result of a node found in sync: unchanged, or what its type says instead (TypeBehaviour.inSync). */
function inSyncResult(type: TypeBehaviour): Pick<NodeResult, 'status' | 'action' | 'reason'> {
  return type.inSync ? { ...type.inSync, action: 'none' } : { status: 'unchanged', action: 'none' };
}

interface Reading {
  type: TypeBehaviour;
  provider: Provider;
  desired: Record<string, unknown>;
  current: Current;
  action: Action;
  changes: string[];
  /** The provider's reason not to apply it this time (SkipNode). */
  skipped?: string;
}

interface PlannedPath {
  id: string;
  length: number;
  /** Insertion order, so ties go to the earliest change as they always have. */
  seq: number;
}

/**
 * The paths that earlier planned changes touch, indexed so that finding the closest one at or
 * above a path costs its depth, not the number of changes (plans of fresh large sites).
 */
class ChangedPaths {
  private readonly ids = new Set<string>();
  private readonly exact = new Map<string, PlannedPath[]>();
  /** Keyed by the path with a trailing slash: it covers everything below it. */
  private readonly under = new Map<string, PlannedPath[]>();
  private seq = 0;

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string, paths: string[]): void {
    // A node planned twice (a handler notified again) changes the same paths.
    if (this.ids.has(id)) return;
    this.ids.add(id);
    for (const p of paths) {
      const entry = { id, length: p.length, seq: this.seq++ };
      for (const [map, key] of [[this.exact, p], [this.under, p.endsWith('/') ? p : `${p}/`]] as const) {
        const list = map.get(key) ?? [];
        list.push(entry);
        map.set(key, list);
      }
    }
  }

  /** The longest changed path equal to `path` or above it (the earliest on a tie), not `except`'s. */
  closest(path: string, except: string): PlannedPath | undefined {
    const candidates = [...(this.exact.get(path) ?? [])];
    for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
      candidates.push(...(this.under.get(path.slice(0, i + 1)) ?? []));
    }
    let best: PlannedPath | undefined;
    for (const c of candidates) {
      if (c.id === except) continue;
      if (!best || c.length > best.length || (c.length === best.length && c.seq < best.seq)) best = c;
    }
    return best;
  }
}

export class Engine {
  private readonly byId: Map<string, GraphNode>;
  private readonly incoming = new Map<string, Edge[]>();
  private readonly outgoing = new Map<string, Edge[]>();
  private readonly latest = new Map<string, NodeResult>();
  readonly results: NodeResult[] = [];
  /** Lazy nodes triggered, with the invocations whose end they run at (or AT_END_OF_RUN / AT_FIRST_CHANCE). */
  private readonly triggered = new Map<string, Set<number>>();
  /** Non-lazy nodes that must be refreshed at their turn, with who notified them. */
  private readonly refreshFor = new Map<string, string>();
  /** Who last notified each node, for reports. */
  private readonly notifiedBy = new Map<string, string>();
  /**
   * The turn (start number) of each node's latest notifier: nodes the engine overlaps may finish
   * out of order, and the notifier named in reports must be the last in run order, as ever.
   */
  private readonly notifierTurn = new Map<string, number>();
  /**
   * Handlers whose pending entry only a write-ahead made (notifyAhead), with the nodes that wrote
   * or share it, until one of them changes (the entry stands) or all take it back.
   */
  private readonly aheadOnly = new Map<string, Set<string>>();
  private turns = 0;
  /** While handlers run: the flush their own notifications join (DESIGN §5.1: before the next invocation). */
  private flushing?: number;
  private readonly targetState: TargetState;
  private readonly facts: Record<string, unknown>;
  private readonly os: Record<string, unknown>;
  /** Readings shared by many nodes (ProviderContext.batch), forgotten whenever the target changes. */
  private readonly batches = new Map<string, Promise<unknown>>();
  private readonly peersByType = new Map<string, Record<string, unknown>[]>();
  private readonly providerChoice = new Map<string, Provider | ApplyError>();
  /** ctx.signal when the run was given none: made when a provider first asks for it. */
  private ownSignal?: AbortSignal;
  private stopped?: string;
  /** Plan only: the nodes that would change, and the paths they would change. */
  private readonly planned = new ChangedPaths();
  /** Nodes applied side by side (Executor.overlap), and their results, held back to keep run order. */
  private readonly inFlight = new InFlight();
  private readonly startOrder = new StartOrder<NodeResult>();
  /** Nodes that may overlap, in run order, not yet free to start (startOverlapped), with the turn each took. */
  /**
   * Nodes started ahead of their turn's end, each with its footprint once asked (waitingFootprint):
   * only a node found blocked, or one that goes on to apply, needs it, and a converged run has none.
   */
  private readonly waiting: { node: GraphNode; where: { paths: string[]; parents: boolean }; footprint?: Footprint; turn: number }[] = [];
  /**
   * The first `count` waiting nodes, found blocked, with their footprints and ids: a node after
   * them must not touch them or require them.
   */
  private blocked = { count: 0, footprints: new FootprintIndex(), ids: new Set<string>() };
  private overlapFailure?: { error: unknown };
  private readonly filtered: Set<string>;
  /** Per type name: whether it needs anything (as a whole or for some attribute) the executor does not offer. */
  private readonly refusableTypes = new Map<string, boolean>();
  /** Handler nodes whose turn is under way because their lazy state was triggered (ProviderContext.triggered). */
  private readonly triggeredTurns = new Set<string>();

  private readonly exec: Executor;
  /** Hides sensitive values from commands, log lines, refs and results (DESIGN §5.13). */
  private readonly mask: (text: string) => string;
  /** The same mask, undefined when there is nothing to hide (results are then left as they are). */
  private readonly reportMask: ((text: string) => string) | undefined;

  constructor(private readonly run: StateRun, private readonly graph: Graph, exec: Executor, private readonly options: EngineOptions) {
    // Every node's sensitive values, not only the running node's: a command cannot always be
    // told apart by node (nodes overlap), and hiding more is the safe way.
    this.reportMask = sensitiveMask(sensitiveValues(graph, (name) => this.typeOf(name)));
    this.mask = this.reportMask ?? ((text) => text);
    const onCommand = options.onCommand;
    this.exec = !onCommand ? exec : observeExecutor(exec, (c) => onCommand({
      argv: c.argv.map(this.mask),
      ...(c.result ? { code: c.result.code } : {}),
      ...(c.result?.timedOut ? { timedOut: true } : {}),
      ...(c.error !== undefined ? { error: this.mask(c.error instanceof Error ? c.error.message : String(c.error)) } : {}),
      stdout: this.mask(c.result?.stdout ?? ''),
      stderr: this.mask(c.result?.stderr ?? ''),
      ms: c.ms,
    }));
    this.byId = new Map(graph.nodes.map((n) => [n.id, n]));
    for (const e of graph.edges) {
      pushTo(this.incoming, e.to, e);
      pushTo(this.outgoing, e.from, e);
    }
    this.targetState = options.stateStorage ? new TargetState(options.stateStorage) : new TargetState(stateDirStorage(exec, run.target.state_dir), options.stateExclusive);
    this.facts = options.facts ?? run.facts;
    this.os = run.os ?? {};
    this.filtered = tagFiltered(graph, options.tags);
  }

  /** Whether the run was cancelled: asked without making the signal (lib/run-signal.ts). */
  private get cancelled(): boolean {
    return this.options.signal?.aborted ?? false;
  }

  /** ctx.signal; an AbortSignal is made only for a provider that reads it. */
  private abortSignal(): AbortSignal {
    return this.options.signal ? abortSignalOf(this.options.signal) : (this.ownSignal ??= new AbortController().signal);
  }

  private get planning(): boolean {
    return this.options.mode === 'plan';
  }

  /** Tells the executor every path this run will read, in order, so a remote one can batch them. */
  private announceReads(): void {
    if (this.exec.prefetch) this.exec.prefetch(this.plannedReads());
  }

  private plannedReads(): PrefetchEntry[] {
    const entries: PrefetchEntry[] = this.targetState.files().map((path) => ({ path, content: true }));
    for (const id of [...this.graph.order, ...this.graph.handlers]) {
      const node = this.byId.get(id)!;
      const reads = this.readsOf(node, node.attributes);
      for (const path of reads?.paths ?? []) entries.push({ path, content: reads?.content ?? false });
    }
    return entries;
  }

  /**
   * The folders this run may write files into: those of the paths it reads (a file is written
   * where it is read), state files' among them.
   */
  writeFolders(): string[] {
    return [...new Set(this.plannedReads().filter((e) => e.path.startsWith('/')).map((e) => posix.dirname(e.path)))];
  }

  /**
   * What a node needs of the executor that it does not offer (ResourceType.needs, and
   * attributeNeeds for the attributes it sets), said as the failure: the type, the attributes,
   * the executor. Undefined when it has all it needs.
   */
  private refusal(typeName: string, attributes: Record<string, unknown>): string | undefined {
    const type = this.typeOf(typeName);
    if (!type) return undefined;
    const offered = this.exec.capabilities ?? DEFAULT_CAPABILITIES;
    // Asked twice per node: a type that needs nothing the executor lacks answers at once.
    let refusable = this.refusableTypes.get(typeName);
    if (refusable === undefined) {
      refusable = [...(type.needs ?? []), ...Object.values(type.attributeNeeds ?? {}).flat()].some((c) => !offered.includes(c));
      this.refusableTypes.set(typeName, refusable);
    }
    if (!refusable) return undefined;
    const whole = (type.needs ?? []).filter((c) => !offered.includes(c));
    const byAttribute = Object.entries(type.attributeNeeds ?? {})
      .filter(([attr, needs]) => attributes[attr] !== undefined && needs.some((c) => !offered.includes(c)));
    const missing = [...new Set([...whole, ...byAttribute.flatMap(([, needs]) => needs.filter((c) => !offered.includes(c)))])];
    if (missing.length === 0) return undefined;
    const what = whole.length > 0 ? `the ${typeName} type` : `${byAttribute.map(([attr]) => `\`${attr}\``).join(' and ')} of the ${typeName} type`;
    return `${what} needs ${missing.map((c) => CAPABILITY_WORDS[c]).join(' and ')}, which the ${this.exec.name} executor does not offer`;
  }

  /**
   * Before anything runs: the nodes whose executor lacks what they need fail, saying so, and no
   * other node runs (DESIGN §7: such a part fails at plan time, and nothing is applied).
   */
  private refuseUnsupported(): NodeResult[] | undefined {
    const refused = new Map<string, string>();
    for (const node of this.graph.nodes) {
      // A node `--tags` leaves out does not run: it asks for nothing.
      if (this.filtered.has(node.id)) continue;
      const why = this.refusal(node.type, node.attributes);
      if (why !== undefined) refused.set(node.id, `${node.ref}${node.pos ? ` (${formatPos(node.pos)})` : ''}: ${why}`);
    }
    if (refused.size === 0) return undefined;
    const refs = [...refused.keys()].map((id) => this.byId.get(id)!.ref);
    const reason = `not run: ${refs.length === 1 ? `${refs[0]} needs` : `${refs.length} parts need`} what the ${this.exec.name} executor does not offer (${refs.join(', ')})`;
    for (const id of [...this.graph.order, ...this.graph.handlers.filter((h) => refused.has(h))]) {
      const node = this.byId.get(id)!;
      const error = refused.get(id);
      this.finish(node, nowMs(), error !== undefined ? { status: 'failed', action: 'none', error } : { status: 'skipped', action: 'none', reason });
    }
    return this.results;
  }

  async execute(): Promise<NodeResult[]> {
    const refused = this.refuseUnsupported();
    if (refused) return refused;
    this.announceReads();
    for (const p of await this.targetState.load()) {
      const node = this.byId.get(p.node);
      if (!node) {
        // The node is gone from the site: nothing to deliver to any more.
        if (!this.planning) await this.targetState.remove(p.node);
        continue;
      }
      if (node.lazy) this.trigger(node.id, node.defer ? AT_END_OF_RUN : AT_FIRST_CHANCE);
      else this.refreshFor.set(node.id, `${p.from} (pending from an earlier run)`);
    }

    const remaining = new Map<number, number>();
    for (const id of this.graph.order) {
      const inv = this.byId.get(id)!.invocation;
      remaining.set(inv, (remaining.get(inv) ?? 0) + 1);
    }
    let turned = nowMs();
    const order = this.graph.order;
    const large = order.length >= COLLECT_FROM_NODES;
    for (let i = 0; i < order.length; i++) {
      if (nowMs() - turned >= LOOP_TURN_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        // What setting a large run up left in the old generation (the content index's text, the
        // maps' outgrown tables), which V8 would keep to the run's end: collected once the heap
        // has doubled since the last collection (lib/memory.ts), so the run's peak stays near
        // what it holds (100,000 resources: about 30 MiB less). Below 40 MiB it is a no-op.
        if (large) releaseGarbage();
        turned = nowMs();
      }
      const node = this.byId.get(order[i]!)!;
      let edits = this.editsFrom(i);
      // Asked again once the nodes before them are done: what those did (a notification) may keep them apart.
      if (edits) {
        await this.settle();
        edits = this.editsFrom(i);
      }
      const commands = edits ? undefined : this.commandsFrom(i);
      let taken = 1;
      if (edits) {
        await this.runEdits(edits);
        taken = edits.nodes.length;
        i += taken - 1;
      } else if (commands) {
        await this.settle();
        await this.runCommands(commands);
        taken = commands.nodes.length;
        i += taken - 1;
      } else {
        const where = this.overlapPaths(node);
        if (where) await this.startOverlapped(node, where);
        else {
          await this.settle();
          await this.runNode(node);
        }
      }
      const left = remaining.get(node.invocation)! - taken;
      remaining.set(node.invocation, left);
      if (left === 0) {
        await this.settle();
        await this.runHandlers(node.invocation);
      }
    }
    await this.settle();
    // Handlers triggered from invocations with no nodes of their own, then deferred ones.
    await this.runHandlers(undefined);
    await this.runHandlers(AT_END_OF_RUN);
    return this.results;
  }

  /**
   * What a node acts on, when it may overlap others (its type allows it, the executor has room,
   * this is an apply without --fail-fast, which must not let any node after a failure start,
   * and nothing about its turn depends on another node's reading): otherwise undefined, and it
   * runs alone.
   */
  private overlapPaths(node: GraphNode): { paths: string[]; parents: boolean } | undefined {
    if (this.planning || this.options.failFast || (this.exec.overlap ?? 1) <= 1 || node.stage) return undefined;
    const overlap = this.typeOf(node.type)?.overlap;
    const reads = overlap ? this.readsOf(node, node.attributes) : undefined;
    if (!reads || reads.commands || reads.paths.length === 0) return undefined;
    return { paths: reads.paths, parents: overlap === 'paths-and-parents' };
  }

  /**
   * Runs a node that may overlap others, as soon as it is free to: there is room, none of its
   * requisites or notifiers is unfinished, and nothing in flight or waiting before it touches its
   * paths. Until then it waits, and the run goes on to the nodes after it (DESIGN §5.1: among the
   * nodes free to run, declaration order decides): a file waiting for its folder's mkdir lets the
   * next folders' mkdirs go out in the same round trip. Its turn and its place among the results
   * are taken now, in run order. A node reads and decides alone; only when it goes on to apply
   * does it join the nodes in flight and let another start, and a converged node never enters
   * the bookkeeping at all.
   */
  private async startOverlapped(node: GraphNode, where: { paths: string[]; parents: boolean }): Promise<void> {
    const limit = this.exec.overlap ?? 1;
    // No room: nothing is started ahead of its turn either, the nodes waiting go first.
    while (this.inFlight.size >= limit) await this.progress();
    // Its result waits for the nodes started or waiting before it, and (once held) holds back those after it.
    if (this.inFlight.size > 0 || this.waiting.length > 0) this.startOrder.hold(node.id);
    this.waiting.push({ node, where, turn: this.turns++ });
    await this.startWaiting();
    while (this.waiting.length >= Math.max(MIN_LOOKAHEAD, limit / 2)) await this.progress();
  }

  /** A waiting node's footprint, as declared (the folders above its paths included if its type may create them). */
  private waitingFootprint(entry: { where: { paths: string[]; parents: boolean }; footprint?: Footprint }): Footprint {
    return (entry.footprint ??= footprintOf(entry.where.paths, entry.where.parents));
  }

  /** Waits for a node in flight to finish, then starts the waiting nodes it freed. */
  private async progress(): Promise<void> {
    await this.inFlight.any();
    this.rethrowOverlapFailure();
    await this.startWaiting();
  }

  /**
   * Starts the waiting nodes now free to run, in run order, one at a time. A node stays waiting
   * while one of its requisites or notifiers is in flight or waiting, or its paths touch those of
   * a node in flight or of one waiting before it (what acts on one path keeps run order). What
   * was found blocked stays so until a node in flight finishes: only the nodes added since are
   * looked at until then.
   */
  private async startWaiting(): Promise<void> {
    const limit = this.exec.overlap ?? 1;
    let k = this.blockedCount();
    while (k < this.waiting.length && this.inFlight.size < limit) {
      const entry = this.waiting[k]!;
      const { node, turn } = entry;
      const blocked = this.blocked;
      const incoming = this.incoming.get(node.id) ?? [];
      const free = !incoming.some((e) => this.inFlight.has(e.from) || blocked.ids.has(e.from));
      // Its requisites are done: what it may create above its paths is known now.
      const ownFolders = free && entry.where.parents && this.foldersThere(entry.where.paths, incoming);
      // Made when first needed: with nothing in flight or blocked, a node that reads and finds
      // nothing to do (every node of a converged run) never needs it.
      let chosen: Footprint | undefined;
      const footprint = (): Footprint => (chosen ??= ownFolders ? footprintOf(entry.where.paths, false) : this.waitingFootprint(entry));
      if (!free || (this.inFlight.size > 0 && this.inFlight.blocks(footprint())) || (blocked.count > 0 && blocked.footprints.blocks(footprint()))) {
        blocked.footprints.add(this.waitingFootprint(entry));
        blocked.ids.add(node.id);
        blocked.count = ++k;
        continue;
      }
      this.waiting.splice(k, 1);
      let enteredApply!: () => void;
      const applying = new Promise<void>((resolve) => (enteredApply = resolve));
      const done: Promise<void> = this.runNode(node, undefined, undefined, () => {
        if (!this.startOrder.isHeld(node.id)) this.startOrder.hold(node.id);
        this.inFlight.add(node.id, footprint(), done);
        enteredApply();
      }, turn).then(() => undefined, (error: unknown) => {
        this.overlapFailure ??= { error };
      });
      await Promise.race([done, applying]);
      this.rethrowOverlapFailure();
      k = this.blockedCount();
    }
  }

  /**
   * Whether the folder each path is in was left in place by a requisite that succeeded: a node
   * that makes a folder (overlap `paths-and-parents`), present, at that folder. A node that may
   * create the folders above its paths creates none then, and nothing in flight can remove that
   * folder meanwhile (it would act on a path above this node's). Sibling folders so go out
   * together instead of one after the other.
   */
  private foldersThere(paths: string[], incoming: Edge[]): boolean {
    const made = new Set<string>();
    for (const e of incoming) {
      if (!BLOCKING.has(e.kind)) continue;
      const status = this.latest.get(e.from)?.status;
      const from = this.byId.get(e.from)!;
      if ((status !== 'changed' && status !== 'unchanged') || from.attributes.ensure === 'absent' || this.typeOf(from.type)?.overlap !== 'paths-and-parents') continue;
      for (const p of this.readsOf(from, from.attributes)?.paths.slice(0, 1) ?? []) made.add(posix.normalize(p).replace(/(.)\/+$/, '$1'));
    }
    return made.size > 0 && paths.every((p) => made.has(posix.dirname(posix.normalize(p))));
  }

  /**
   * How many waiting nodes are known blocked: all found so, unless a node finished since that
   * one of them requires or whose paths touch theirs (then none: they are looked at again).
   */
  private blockedCount(): number {
    const blocked = this.blocked;
    const freeing = this.inFlight.takeFinished().some(({ id, footprint }) => blocked.count > 0 &&
      ((this.outgoing.get(id) ?? []).some((e) => blocked.ids.has(e.to)) || blocked.footprints.blocks(footprint)));
    if (freeing) this.blocked = { count: 0, footprints: new FootprintIndex(), ids: new Set() };
    return this.blocked.count;
  }


  /** Waits for every node waiting or in flight (before a node that runs alone, handlers, the run's end). */
  private async settle(): Promise<void> {
    for (;;) {
      await this.startWaiting();
      if (this.inFlight.size === 0) {
        if (this.waiting.length === 0) break;
        // Nodes may have finished while startWaiting returned: look again. Otherwise, with
        // nothing in flight, the first node waiting is free and always starts.
        if (this.inFlight.finishedSinceAsked) continue;
        throw new Error(`${this.waiting[0]!.node.ref} waits with nothing in flight`);
      }
      await this.inFlight.any();
      this.rethrowOverlapFailure();
    }
    this.rethrowOverlapFailure();
  }

  private rethrowOverlapFailure(): void {
    if (this.overlapFailure) throw this.overlapFailure.error;
  }

  private trigger(handler: string, invocation: number): void {
    const set = this.triggered.get(handler) ?? new Set<number>();
    set.add(invocation);
    this.triggered.set(handler, set);
  }

  /**
   * Runs the lazy nodes due at the end of `invocation` (AT_END_OF_RUN: deferred ones; undefined:
   * any left over), and the ones those trigger, transitively, before the run goes on (DESIGN
   * §5.1). Of the handlers due, the first in graph.handlers goes next: their states' declaration
   * order, not the order they were notified in (§5.3). Each runs at most once per flush, so
   * handlers that notify each other in a loop cannot run forever; a notification that comes
   * after its handler ran waits for the next flush.
   */
  private async runHandlers(invocation: number | undefined): Promise<void> {
    const done = new Set<string>();
    this.flushing = invocation !== undefined && invocation >= 0 ? invocation : AT_FIRST_CHANCE;
    try {
      for (;;) {
        const id = this.graph.handlers.find((h) => !done.has(h) && this.takeDue(h, invocation));
        if (id === undefined) return;
        done.add(id);
        const node = this.byId.get(id)!;
        this.triggeredTurns.add(id);
        let r: NodeResult;
        try {
          r = await this.runNode(node, undefined, 'notified');
        } finally {
          this.triggeredTurns.delete(id);
        }
        killPoint('after-handler', node.ref);
        // Delivered only once it ran (DESIGN §5.3): one failed or skipped (a failed requisite,
        // --fail-fast, a cancelled run) stays pending for the next run.
        if (!this.planning && !this.triggered.get(id)?.size && this.ran(node, r)) await this.targetState.remove(id);
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** Whether handler `id` is due in this flush; if it is, its trigger is used up. */
  private takeDue(id: string, invocation: number | undefined): boolean {
    const set = this.triggered.get(id);
    if (!set || set.size === 0) return false;
    if (invocation === undefined || invocation === AT_END_OF_RUN) {
      const due = invocation === undefined ? [...set].some((i) => i !== AT_END_OF_RUN) : set.has(AT_END_OF_RUN) || set.has(AT_FIRST_CHANCE);
      if (due) set.clear();
      return due;
    }
    const due = set.has(invocation) || (set.has(AT_FIRST_CHANCE) && !this.byId.get(id)!.defer);
    if (due) {
      set.delete(invocation);
      set.delete(AT_FIRST_CHANCE);
    }
    return due;
  }

  /** Whether a node got its turn and did its work: changed, or found nothing to do. */
  private ran(node: GraphNode, r: NodeResult): boolean {
    if (r.status === 'changed' || r.status === 'unchanged') return true;
    const inSync = this.typeOf(node.type)?.inSync;
    return inSync !== undefined && r.status === inSync.status && r.reason === inSync.reason;
  }

  private finish(node: GraphNode, start: number, result: Omit<NodeResult, 'ref' | 'id' | 'state' | 'invocation' | 'ms'>): NodeResult {
    const ms = Math.round((nowMs() - start) * 10) / 10;
    // Most results are a status and an action alone: written out, their fields stay inside the
    // object, where spreading them into it added a second array a result (a 100,000-node no-op
    // keeps 100,000 results: about 4 MB).
    const full: NodeResult = statusAndActionOnly(result)
      ? { ref: node.ref, id: node.id, state: node.state, invocation: node.invocation, status: result.status, action: result.action, ms }
      : { ref: node.ref, id: node.id, state: node.state, invocation: node.invocation, ...result, ms };
    if (this.reportMask) {
      // An exec's ref is its command: one rendered from a secret must not reach a report either.
      full.ref = this.mask(full.ref);
      full.id = this.mask(full.id);
      for (const key of ['reason', 'error', 'diff'] as const) if (full[key] !== undefined) full[key] = this.mask(full[key]);
      if (full.items) full.items = full.items.map((item) => this.mask(item));
    }
    this.latest.set(node.id, full);
    // Overlapped nodes are reported once every node started before them is: output keeps run order.
    for (const due of this.startOrder.release(node.id, full)) {
      this.results.push(due);
      this.options.onResult?.(due);
    }
    return full;
  }

  private failedUpstream(r: NodeResult | undefined): boolean {
    return r !== undefined && (r.status === 'failed' || (r.status === 'skipped' && (r.reason?.startsWith('dependency failed') ?? false)));
  }

  /** What an onchanges reference counts as a change (in a plan: one that would, or may, happen). */
  private changed(r: NodeResult | undefined): boolean {
    return r?.status === 'changed' || (this.planning && (r?.status === 'would-change' || r?.status === 'unknown'));
  }

  /**
   * Whether `node` will get its turn, as far as the results so far tell (EngineServices.willRun);
   * `asker` (the node asking, before its own result) is not counted against it.
   */
  private willRun(node: GraphNode, asker: string): boolean {
    if (node.meta.noop || this.stopped || this.cancelled || this.filtered.has(node.id)) return false;
    const incoming = (this.incoming.get(node.id) ?? []).filter((e) => e.from !== asker);
    const doomed = new Map<string, boolean>();
    // Skipped for a failure: a blocking requisite failed, or will be skipped for one itself.
    const failsUpstream = (id: string): boolean => {
      let known = doomed.get(id);
      if (known === undefined) {
        known = (this.incoming.get(id) ?? []).some((e) => e.from !== asker && BLOCKING.has(e.kind) &&
          (this.latest.has(e.from) ? this.failedUpstream(this.latest.get(e.from)) : failsUpstream(e.from)));
        doomed.set(id, known);
      }
      return known;
    };
    if (failsUpstream(node.id)) return false;
    // onchanges and onfail whose references have all had their turn are decided already.
    const decided = (kind: string) => {
      const edges = incoming.filter((e) => e.kind === kind);
      return edges.length > 0 && edges.every((e) => this.latest.has(e.from)) ? edges : undefined;
    };
    const watched = decided('onchanges');
    if (watched && !watched.some((e) => this.changed(this.latest.get(e.from)))) return false;
    const guards = decided('onfail');
    return !(guards && !guards.some((e) => this.latest.get(e.from)?.status === 'failed'));
  }

  private context(node: GraphNode): ProviderContext {
    // The engine's services are made when a provider first asks for them (a transition, a
    // related part): the providers of most nodes never do.
    let services: EngineServices | undefined;
    const engine = (): EngineServices => (services ??= this.services(node));
    const signal = () => this.abortSignal();
    return {
      exec: this.exec, facts: this.facts, os: this.os,
      get engine() {
        return engine();
      },
      get signal() {
        return signal();
      },
      ...(this.options.images ? { images: this.options.images } : {}),
      ...(this.triggeredTurns.has(node.id) ? { triggered: true } : {}),
      // A ref can carry a sensitive value too (an exec's ref is its command).
      log: (message) => this.options.onLog?.(this.mask(node.ref), this.mask(message)),
      progress: (update) => this.options.onProgress?.(this.mask(node.ref), update),
      batch: <T>(key: string, load: () => Promise<T>): Promise<T> => {
        let pending = this.batches.get(key) as Promise<T> | undefined;
        if (!pending) {
          pending = load();
          this.batches.set(key, pending);
          // A failed reading is not kept: the next node tries again.
          pending.catch(() => this.batches.get(key) === pending && this.batches.delete(key));
        }
        return pending;
      },
      peers: () => {
        let list = this.peersByType.get(node.type);
        if (!list) {
          list = this.graph.nodes.filter((n) => n.type === node.type).map((n) => n.attributes);
          this.peersByType.set(node.type, list);
        }
        return list;
      },
    };
  }

  /** What the engine offers the provider of `node` (ProviderContext.engine). */
  private services(node: GraphNode): EngineServices {
    return {
      related: (word) => (this.outgoing.get(node.id) ?? []).filter((e) => e.declared === word).map((e) => e.to),
      wouldChange: async (id) => {
        const other = this.byId.get(id)!;
        const reading = await this.read(other, other.attributes);
        return reading.action !== 'none' && reading.skipped === undefined;
      },
      willRun: (id) => this.willRun(this.byId.get(id)!, node.id),
      refOf: (id) => this.byId.get(id)!.ref,
      applyWith: async (id, attributes) => {
        const other = this.byId.get(id)!;
        const r = await this.runNode(other, { ...other.attributes, ...attributes }, 'transition');
        return { changed: r.status === 'changed', ...(r.status === 'failed' ? { failed: r.error ?? 'failed' } : {}) };
      },
    };
  }

  /** A node's type: from the compiled graph, or the registry a test gave. */
  private typeOf(name: string): TypeBehaviour | undefined {
    return this.options.registry ? this.options.registry.type(name) : this.graph.types[name];
  }

  /**
   * What reading a node depends on: computed when the graph was built (from its declared
   * attributes; an overlay of a transition keeps its paths), or by a type a test gave.
   */
  private readsOf(node: GraphNode, desired: Record<string, unknown>): Reads | undefined {
    return node.reads ?? this.typeOf(node.type)?.reads?.(desired, this.os);
  }

  /** Reads a node through its provider; a node that cannot be read (no provider fits) throws ApplyError. */
  private async read(node: GraphNode, desired: Record<string, unknown>): Promise<Reading> {
    const type = this.typeOf(node.type);
    if (!type) throw new ApplyError(`unknown resource type ${node.type}`);
    // A transition's overlay may set what the node as declared did not (refuseUnsupported saw those).
    const refusal = this.refusal(node.type, desired);
    if (refusal !== undefined) throw new ApplyError(refusal);
    const provider = this.providerOf(node);
    if (provider instanceof ApplyError) throw provider;
    let current: Current;
    try {
      current = await provider.read(this.context(node), desired);
    } catch (err) {
      if (!(err instanceof SkipNode)) throw err;
      return { type, provider, desired, current: undefined, action: 'none', changes: [], skipped: err.reason };
    }
    const hash = inputHash(type, desired);
    if (current && hash !== undefined) {
      // Write-only inputs are in sync exactly when their hash is the one stored after the last apply.
      const same = this.targetState.inputHash(node.ref) === hash;
      current = { ...current };
      for (const attr of type.writeOnly ?? []) current[attr] = same ? desired[attr] : { changed: 'input hash differs' };
    }
    const { action, changes } = diffNode(type, desired, current);
    return { type, provider, desired, current, action, changes };
  }

  /** A node's provider, or why none fits. The choice depends only on the type, the target and `provider:`: made once per run. */
  private providerOf(node: GraphNode): Provider | ApplyError {
    const choiceKey = `${node.type}\u0000${node.meta.provider ?? ''}`;
    let provider = this.providerChoice.get(choiceKey);
    if (provider === undefined) {
      try {
        provider = (this.options.registry?.provider ?? selectProvider)(node.type, this.facts, this.os, node.meta.provider);
      } catch (err) {
        if (!(err instanceof ApplyError)) throw err;
        provider = err;
      }
      this.providerChoice.set(choiceKey, provider);
    }
    return provider;
  }

  /**
   * The nodes from the `i`th of the run's order on that edit one file and may be gathered
   * (FileEdits): two or more that follow one another, of one type, provider and invocation, none
   * requiring or watching another of them, each an apply of the node as declared in its own turn
   * (no stage, noop, pending refresh, write-only input or notification: what those do around an
   * apply stays runNode's). Undefined otherwise: the node runs as any other.
   */
  private editsFrom(i: number): { nodes: GraphNode[]; provider: Provider; type: TypeBehaviour; edits: FileEdits } | undefined {
    const run = this.alikeFrom(i, (p) => p.edits !== undefined);
    const edits = run?.provider.edits;
    if (!run || !edits) return undefined;
    const path = edits.path(run.nodes[0]!.attributes);
    const other = run.nodes.findIndex((n) => edits.path(n.attributes) !== path);
    const nodes = other < 0 ? run.nodes : run.nodes.slice(0, other);
    return nodes.length >= 2 ? { ...run, nodes, edits } : undefined;
  }

  /**
   * The nodes from the ith on that may go to a provider's trait together (editsFrom,
   * commandsFrom): those that follow one another, of one type, provider (one that `offers`) and
   * invocation, none a stage, lazy, noop, refused, notifying or notified, with no requisite among
   * them; not in a plan or under --fail-fast. Undefined when there are not two.
   */
  private alikeFrom(i: number, offers: (provider: Provider) => boolean): { nodes: GraphNode[]; provider: Provider; type: TypeBehaviour } | undefined {
    const order = this.graph.order;
    const first = this.byId.get(order[i]!)!;
    // Most nodes are not followed by one of their type: asked first, it costs a converged run nothing else.
    if (this.planning || this.options.failFast || this.byId.get(order[i + 1] ?? '')?.type !== first.type) return undefined;
    const type = this.typeOf(first.type);
    const provider = this.providerOf(first);
    if (!type || provider instanceof ApplyError || !offers(provider) || type.writeOnly?.length) return undefined;
    const nodes: GraphNode[] = [];
    const ids = new Set<string>();
    for (let j = i; j < order.length; j++) {
      const node = this.byId.get(order[j]!)!;
      if (node.type !== first.type || node.invocation !== first.invocation || node.stage || node.lazy || node.meta.noop ||
        this.providerOf(node) !== provider || this.refreshFor.has(node.id) || this.refusal(node.type, node.attributes) !== undefined ||
        (this.outgoing.get(node.id) ?? []).some((e) => e.kind === 'notify') ||
        (this.incoming.get(node.id) ?? []).some((e) => ids.has(e.from))) break;
      nodes.push(node);
      ids.add(node.id);
    }
    return nodes.length >= 2 ? { nodes, provider, type } : undefined;
  }


  /**
   * Runs nodes that edit one file (editsFrom), with nothing else in flight: each is checked as
   * runNode checks it first (fail-fast, tags, requisites, onchanges, onfail), the file is read
   * once, each node decides and makes its edit on the text the ones before it left
   * (gatherEdits), and the file is written once. Each reports what it would have, applied alone
   * in turn; a write that fails fails every node that changed the text.
   */
  private async runEdits({ nodes, provider, type, edits }: { nodes: GraphNode[]; provider: Provider; type: TypeBehaviour; edits: FileEdits }): Promise<void> {
    const active: { node: GraphNode; start: number }[] = [];
    for (const node of nodes) {
      const start = nowMs();
      this.turns++;
      this.options.onStart?.(this.mask(node.ref));
      // Results are reported in run order, though the changed ones are known only after the write.
      this.startOrder.hold(node.id);
      if (!this.preflight(node, start)) active.push({ node, start });
    }
    if (active.length === 0) return;
    const path = edits.path(active[0]!.node.attributes);
    let text: string | undefined;
    try {
      text = (await this.exec.readFile(path))?.toString('utf8');
    } catch (err) {
      for (const { node, start } of active) this.fail(node, start, 'none', err);
      return;
    }
    const gathered = gatherEdits(text, active.map((a) => a.node.attributes), edits, type);
    const changed: { node: GraphNode; start: number; action: Action; report: ChangeReport }[] = [];
    gathered.steps.forEach((step, k) => {
      const { node, start } = active[k]!;
      if (step.error) this.fail(node, start, step.action, step.error);
      else if (step.action === 'none') this.finish(node, start, inSyncResult(type));
      else changed.push({ node, start, action: step.action, report: this.changeReport(node, provider, type, node.attributes, step.current, step.changes) });
    });
    if (changed.length === 0) return;
    try {
      await this.exec.writeFile(path, gathered.text ?? '');
    } catch (err) {
      for (const c of changed) this.fail(c.node, c.start, c.action, err);
      return;
    } finally {
      this.batches.clear();
    }
    for (const c of changed) {
      killPoint('after-change', c.node.ref);
      this.finish(c.node, c.start, { ...c.report, status: 'changed', action: c.action });
    }
  }

  /**
   * Nodes from the ith on whose apply is one guarded command (GuardedCommands) and which the
   * executor may run together (Executor.runGuarded), as alikeFrom finds them.
   */
  private commandsFrom(i: number): { nodes: GraphNode[]; provider: Provider; type: TypeBehaviour; commands: GuardedCommands } | undefined {
    if (!this.exec.runGuarded) return undefined;
    const run = this.alikeFrom(i, (p) => p.commands !== undefined);
    return run?.provider.commands ? { ...run, commands: run.provider.commands } : undefined;
  }


  /**
   * Runs nodes whose apply is one guarded command (commandsFrom), with nothing else in flight:
   * each is checked as runNode checks it first, then the executor runs those left one after the
   * other, each unless its guards (asked right before it, on the target) say it is not needed.
   * Each reports what it would have, run alone in turn. Those the executor did not run (it could
   * not run them together, or the run was cancelled) take their turn one at a time.
   */
  private async runCommands({ nodes, provider, type, commands }: { nodes: GraphNode[]; provider: Provider; type: TypeBehaviour; commands: GuardedCommands }): Promise<void> {
    const active: { node: GraphNode; start: number; turn: number }[] = [];
    for (const node of nodes) {
      const start = nowMs();
      const turn = this.turns++;
      this.options.onStart?.(this.mask(node.ref));
      // Results are reported in run order, each as its command ends.
      this.startOrder.hold(node.id);
      if (!this.preflight(node, start)) active.push({ node, start, turn });
    }
    if (active.length === 0) return;
    const decided = await this.exec.runGuarded!(active.map((a) => commands.command(a.node.attributes)), (k, outcome) => {
      const { node, start } = active[k]!;
      this.batches.clear();
      const desired = node.attributes;
      if ('failed' in outcome) {
        this.fail(node, start, 'none', outcome.failed);
        return;
      }
      // What read() would have found: the guard's answer when one said no, else nothing.
      const current = 'notNeeded' in outcome ? commands.notNeeded(desired, outcome.notNeeded) : undefined;
      const { action, changes } = diffNode(type, desired, current);
      if ('notNeeded' in outcome) {
        if (action !== 'none') throw new Error(`the ${type.name} type's guarded command is in sync when a guard says no, not ${action}`);
        this.finish(node, start, inSyncResult(type));
        return;
      }
      if (action !== (type.createAction ?? 'create')) throw new Error(`the ${type.name} type's guarded command runs by its create action, not ${action}`);
      const report = this.changeReport(node, provider, type, desired, current, changes);
      try {
        commands.judge(desired, outcome.ran);
      } catch (err) {
        this.fail(node, start, action, err);
        return;
      }
      killPoint('after-change', node.ref);
      this.finish(node, start, { ...report, status: 'changed', action });
    }, this.abortSignal());
    // Checked again: the run may have been cancelled meanwhile.
    for (const { node, start, turn } of active.slice(decided)) {
      if (!this.preflight(node, start)) await this.readAndApply(node, start, turn);
    }
  }

  /** What a change reports besides its status: the attributes that differ, its items, its diff (`--diff`; hidden where sensitive, DESIGN §5.13). */
  private changeReport(node: GraphNode, provider: Provider, type: TypeBehaviour, desired: Record<string, unknown>, current: Current, changes: string[]): ChangeReport {
    // A change to a sensitive attribute shows no diff: its values never reach output (DESIGN §5.13).
    // A node rendered from a secret (node.meta.sensitive, DESIGN §4a) hides its diff whatever
    // changed: a diff's context lines could show the secret even when it did not change.
    const hidden = (type.sensitive?.some((attr) => changes.includes(attr)) ?? false) || (node.meta.sensitive?.length ?? 0) > 0;
    const diffText = this.options.diff ? (hidden ? hiddenDiff(node, desired, current) : provider.diff?.(desired, current)) : undefined;
    const items = provider.items?.(desired, current);
    return { ...(changes.length ? { changes } : {}), ...(items?.length ? { items } : {}), ...(diffText ? { diff: diffText } : {}) };
  }

  /** Why a plan cannot be sure about this node: an earlier node that would change what it reads. */
  private planDependency(node: GraphNode, desired: Record<string, unknown>): string | undefined {
    const reads = this.readsOf(node, desired);
    for (const e of this.incoming.get(node.id) ?? []) {
      // An implicit requisite (DESIGN §6) names what this node reads (its owner, its package).
      if (e.kind !== 'notify' && this.planned.has(e.from) && (reads?.commands || e.kind !== 'require' || e.declared === 'auto' || !reads)) {
        return this.byId.get(e.from)!.ref;
      }
    }
    // The closest earlier change above (or at) a path this node reads.
    let best: { id: string; length: number } | undefined;
    for (const path of reads?.paths ?? []) {
      const found = this.planned.closest(path, node.id);
      if (found && (!best || found.length > best.length)) best = found;
    }
    return best ? this.byId.get(best.id)!.ref : undefined;
  }

  /**
   * A node's result decided before it is read, if one is: the run stopped (fail-fast) or
   * cancelled, the node left out by tags, a requisite failed, nothing it watches changed
   * (onchanges) or failed (onfail).
   */
  private preflight(node: GraphNode, start: number, why?: 'notified' | 'transition'): NodeResult | undefined {
    if (this.stopped) return this.finish(node, start, { status: 'skipped', action: 'none', reason: `fail-fast: stopped after ${this.stopped} failed` });
    if (this.cancelled) return this.finish(node, start, { status: 'skipped', action: 'none', reason: 'run cancelled' });
    // A notification due to a node left out stays pending for a run that includes it.
    if (!why && this.filtered.has(node.id)) return this.finish(node, start, { status: 'skipped', action: 'none', reason: 'tags' });
    if (why === 'transition') return undefined;
    const incoming = this.incoming.get(node.id) ?? [];
    for (const e of incoming) {
      if (!BLOCKING.has(e.kind)) continue;
      if (this.failedUpstream(this.latest.get(e.from))) {
        return this.finish(node, start, { status: 'skipped', action: 'none', reason: `dependency failed: ${this.byId.get(e.from)!.ref}` });
      }
    }
    // Asked of the edges in place: no arrays made per node for the few that have such edges.
    const has = (kind: string) => incoming.some((e) => e.kind === kind);
    if (has('onchanges') && !incoming.some((e) => e.kind === 'onchanges' && this.changed(this.latest.get(e.from)))) {
      return this.finish(node, start, { status: 'skipped', action: 'none', reason: 'no changes' });
    }
    if (has('onfail') && !incoming.some((e) => e.kind === 'onfail' && this.latest.get(e.from)?.status === 'failed')) {
      return this.finish(node, start, { status: 'skipped', action: 'none', reason: 'onfail: nothing failed' });
    }
    return undefined;
  }

  /** One node's turn. `overlay` replaces its attributes (transitions); `why` says who asked; `applying` is called just before it changes anything. */
  private async runNode(node: GraphNode, overlay?: Record<string, unknown>, why?: 'notified' | 'transition', applying?: () => void, taken?: number): Promise<NodeResult> {
    const start = nowMs();
    const turn = taken ?? this.turns++;
    this.options.onStart?.(this.mask(node.ref));
    const early = this.preflight(node, start, why);
    if (early) return early;
    return this.readAndApply(node, start, turn, overlay, why, applying);
  }

  /** A node's turn past its preflight: read, decide, apply, notify. */
  private async readAndApply(node: GraphNode, start: number, turn: number, overlay?: Record<string, unknown>, why?: 'notified' | 'transition', applying?: () => void): Promise<NodeResult> {
    // A stage applies only when the end state is not already in sync (DESIGN §5.6).
    if (node.stage && node.stage.index < node.stage.of && !overlay) {
      const end = this.byId.get(node.stage.end)!;
      const endReading = await this.read(end, end.attributes).catch((err: unknown) => {
        if (isTargetFailure(err)) return undefined;
        throw err;
      });
      if (endReading?.action === 'none') {
        return this.finish(node, start, { status: 'skipped', action: 'none', reason: `end state in sync (stage ${node.stage.index} of ${node.stage.of})` });
      }
    }

    const desired = overlay ?? node.attributes;
    let reading: Reading;
    try {
      reading = await this.read(node, desired);
    } catch (err) {
      return this.fail(node, start, 'none', err);
    }
    if (reading.skipped !== undefined) return this.finish(node, start, { status: 'skipped', action: 'none', reason: reading.skipped });
    const { type, provider, current, changes } = reading;
    let { action } = reading;
    // A transition's temporary state does not deliver a notification: the node's own turn does.
    const refreshWhy = why === 'transition' ? undefined : this.refreshFor.get(node.id);

    if (action === 'none' && !refreshWhy) {
      if (this.planning) {
        const dep = this.planDependency(node, desired);
        if (dep) return this.finish(node, start, { status: 'unknown', action: 'none', reason: `after ${dep}` });
      }
      return this.finish(node, start, inSyncResult(type));
    }
    // Made past the return above: a node in sync reports none of it (a refresh alone: nothing differs, no diff or items either).
    const base: ChangeReport = action === 'none' ? {} : this.changeReport(node, provider, type, desired, current, changes);

    if (action === 'reload' && !node.meta.allow_reload) {
      return this.finish(node, start, { ...base, status: 'failed', action, error: `changing ${changes.join(', ')} needs a restart; set allow_reload: true to allow it` });
    }
    if (action === 'rebuild' && !node.meta.allow_rebuild) {
      return this.finish(node, start, { ...base, status: 'failed', action, error: `changing ${changes.join(', ')} means destroying and recreating ${node.ref}; set allow_rebuild: true to allow it` });
    }

    const refreshOnly = action === 'none';
    if (refreshOnly) action = 'refresh';
    const reason = why === 'transition' ? 'transition'
      : refreshOnly || why === 'notified' ? `notified by ${refreshWhy ?? this.notifiedBy.get(node.id) ?? 'a pending notification'}` : undefined;
    if (node.meta.noop || this.planning) {
      const dep = this.planning ? this.planDependency(node, desired) : undefined;
      const note = node.meta.noop ? 'noop' : dep ? `after ${dep}` : reason;
      if (this.planning && !node.meta.noop) {
        this.planned.add(node.id, this.readsOf(node, desired)?.paths ?? []);
        await this.notify(node, turn);
      }
      return this.finish(node, start, { ...base, status: 'would-change', action, ...(note ? { reason: note } : {}) });
    }

    applying?.();
    await this.notifyAhead(node);
    let outcome: ApplyOutcome = undefined;
    try {
      const ctx = this.context(node);
      if (action === 'refresh') outcome = await provider.refresh?.(ctx, desired);
      else if (action === 'rebuild') {
        if (provider.rebuild) await provider.rebuild(ctx, desired, current);
        else {
          await provider.apply(ctx, 'destroy', desired, current);
          await provider.apply(ctx, 'create', desired, undefined);
        }
      } else {
        outcome = await provider.apply(ctx, action, desired, current);
        // A reload is an in-place change followed by the type's refresh; a notification due for
        // a node that was just created or run is already satisfied, and so is one the provider
        // says its change took care of.
        // A reload whose apply already restarted the thing (stop, change, start) says so the same way.
        const refreshed = outcome !== undefined && 'refreshed' in outcome;
        if (!refreshed && (action === 'reload' || (refreshWhy && action === 'update'))) await provider.refresh?.(ctx, desired);
      }
    } catch (err) {
      if (isTargetFailure(err)) await this.takeBack(node);
      return this.fail(node, start, action, err);
    } finally {
      // Whatever the apply did (or half did) may change what batched readings saw.
      this.batches.clear();
    }
    killPoint('after-change', node.ref);
    if (refreshWhy) {
      this.refreshFor.delete(node.id);
      await this.targetState.remove(node.id);
    }
    if (outcome && 'changed' in outcome) {
      await this.takeBack(node);
      return this.finish(node, start, { status: 'unchanged', action: 'none', reason: outcome.reason });
    }
    if (type.writeOnly?.length) await this.targetState.setInputHash(node.ref, action === 'destroy' ? undefined : inputHash(type, desired));
    await this.notify(node, turn);
    return this.finish(node, start, { ...base, status: 'changed', action, ...(reason ? { reason } : {}) });
  }

  /**
   * A node's failure: what the target answered (ApplyError, a refused operation). A lost target
   * ends its run (reported unreachable) rather than failing every node after, and anything else
   * is a bug in Cairn or a provider: it stops the run with its stack, never a failed node.
   */
  private fail(node: GraphNode, start: number, action: Action, err: unknown): NodeResult {
    if (!isTargetFailure(err)) throw err;
    const message = (err as Error).message;
    if (this.options.failFast && !this.planning) this.stopped = node.ref;
    return this.finish(node, start, { status: 'failed', action, error: message });
  }

  /**
   * Before a node that notifies others changes anything, its notifications are written to the
   * target's state (DESIGN §5.3: "before anything else happens"): a run killed after the change
   * and before the handler still has them delivered by the next one, which would otherwise find
   * the notifier in sync and never notify again. A kill before the change costs at worst a
   * handler run the next time; takeBack() withdraws them when the node changes nothing or fails.
   */
  private async notifyAhead(node: GraphNode): Promise<void> {
    const entries = (this.outgoing.get(node.id) ?? []).filter((e) => e.kind === 'notify').map((e) => ({ node: e.to, from: node.ref }));
    if (entries.length === 0) return;
    for (const handler of await this.targetState.addAll(entries)) {
      const claims = this.aheadOnly.get(handler) ?? new Set<string>();
      claims.add(node.id);
      this.aheadOnly.set(handler, claims);
    }
    // Handlers already pending, written ahead by another node in flight: this one claims them too.
    for (const { node: handler } of entries) this.aheadOnly.get(handler)?.add(node.id);
  }

  /** The node changed nothing or failed: withdraws what it wrote ahead, unless another still claims it. */
  private async takeBack(node: GraphNode): Promise<void> {
    for (const [handler, claims] of this.aheadOnly) {
      if (!claims.delete(node.id) || claims.size > 0) continue;
      this.aheadOnly.delete(handler);
      await this.targetState.remove(handler);
    }
  }

  /** After a change: trigger notified nodes, persisting each so none is lost if the run dies. */
  private async notify(node: GraphNode, turn: number): Promise<void> {
    if (node.meta.noop) return;
    for (const e of this.outgoing.get(node.id) ?? []) {
      if (e.kind !== 'notify') continue;
      const target = this.byId.get(e.to)!;
      // A real change: what was written ahead for this handler now stands.
      this.aheadOnly.delete(target.id);
      const latest = turn >= (this.notifierTurn.get(target.id) ?? -1);
      if (latest) {
        this.notifierTurn.set(target.id, turn);
        this.notifiedBy.set(target.id, node.ref);
      }
      if (!this.planning) await this.targetState.add(target.id, node.ref);
      if (target.lazy) this.trigger(target.id, target.defer ? AT_END_OF_RUN : this.flushing ?? node.invocation);
      else if (latest) this.refreshFor.set(target.id, node.ref);
    }
  }
}

export interface TargetReport {
  name: string;
  /**
   * locked: another run held the target (DESIGN §5.11); skipped: a rollout stopped before its
   * batch (`reason`). Either way nothing was run, and `nodes` is empty.
   */
  status: 'ok' | 'failed' | 'unreachable' | 'locked' | 'skipped';
  counts: { changed: number; unchanged: number; failed: number; skipped: number };
  nodes: NodeResult[];
  error?: string;
  /** Why a skipped target was not run. */
  reason?: string;
  /** Remote targets: round trips the run cost (commands and batched operations). */
  round_trips?: number;
}

export function summarize(name: string, results: NodeResult[], error?: string): TargetReport {
  const counts = { changed: 0, unchanged: 0, failed: 0, skipped: 0 };
  for (const r of results) {
    if (r.status === 'changed' || r.status === 'would-change' || r.status === 'unknown') counts.changed++;
    else counts[r.status]++;
  }
  return { name, status: error ? 'unreachable' : counts.failed > 0 ? 'failed' : 'ok', counts, nodes: results, ...(error ? { error } : {}) };
}

/** What `--diff` shows for a change it must not show (DESIGN §5.13). */
function hiddenDiff(node: GraphNode, desired: Record<string, unknown>, current: Record<string, unknown> | undefined): string {
  if (typeof desired.content !== 'string' || !node.meta.sensitive?.includes('content')) return '(sensitive)';
  return hiddenContentDiff(typeof current?.content === 'string' ? current.content : '', desired.content);
}
