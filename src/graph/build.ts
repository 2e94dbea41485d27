/**
 * StateRun → nodes and typed edges (DESIGN §5): identical declarations merged, differing ones turned
 * into stages, references resolved (same invocation first, then the run), cycles reported as a path,
 * and a deterministic run order (declaration order among nodes free to run).
 */
import { posix } from 'node:path';
import { canonicalJson } from '../lib/canonical-json.ts';
import type { PartInvocation, RequisiteKind, StateRun } from '../catalog/staterun.ts';
import { nearest } from '../lib/did-you-mean.ts';
import { Diagnostics, formatPos, type SourcePos } from '../lib/errors.ts';
import { pushTo } from '../lib/multimap.ts';
import { resourceType } from '../resources/index.ts';
import { behaviourOf, type Reads, type TypeBehaviour } from '../resources/type.ts';

export type EdgeKind = 'require' | 'notify' | 'onchanges' | 'onfail' | 'transition' | 'stage';

export interface Edge {
  from: string;
  to: string;
  kind: EdgeKind;
  /**
   * The requisite word as written (`before` makes a `require` edge the other way), or the
   * attribute that holds the reference (ResourceType.references).
   */
  declared?: RequisiteKind | (string & {});
  pos?: SourcePos;
}

export interface Declaration {
  invocation: number;
  part: number;
  pos?: SourcePos;
}

export interface GraphNode {
  /** Unique in the graph: the ref, or `ref@k` for the k-th stage of a node declared several times. */
  id: string;
  ref: string;
  type: string;
  state: string;
  invocation: number;
  part: number;
  lazy: boolean;
  defer: boolean;
  attributes: Record<string, unknown>;
  meta: PartInvocation['meta'];
  /** For a node declared differently by several invocations: which stage this is. */
  stage?: { index: number; of: number; end: string };
  declarations: Declaration[];
  pos?: SourcePos;
  /** What reading this node depends on (its type's `reads`), for plans and batched remote reads. */
  reads?: Reads;
}

export interface Graph {
  /** Every node: those that always run, in run order, then lazy (handler) nodes in their order. */
  nodes: GraphNode[];
  edges: Edge[];
  /** Ids of nodes that always run, in run order. */
  order: string[];
  /**
   * Ids of lazy nodes, which run only when notified, in the order they run when they do: their
   * states' declaration order in the site (DESIGN §5.3), then invocation and part.
   */
  handlers: string[];
  /** What the engine needs of each type in the graph: a run then loads no schema. */
  types: Record<string, TypeBehaviour>;
  /**
   * Implicit requisites (DESIGN §6) left out because they would have closed a cycle: `to` would
   * have required `from`. `cairn show` says so.
   */
  dropped?: { from: string; to: string }[];
}

const ORDERING: readonly EdgeKind[] = ['require', 'onchanges', 'onfail', 'transition', 'stage', 'notify'];

interface Decl {
  part: PartInvocation;
  invocation: number;
  lazy: boolean;
  defer: boolean;
  state: string;
}

/** Tags do not make declarations differ: a node declared by two states carries the tags of both. */
const untagged = ({ tags: _tags, ...meta }: PartInvocation['meta']) => meta;
const sameDeclaration = (a: PartInvocation, b: PartInvocation) =>
  canonicalJson(a.attributes) === canonicalJson(b.attributes) && canonicalJson(untagged(a.meta)) === canonicalJson(untagged(b.meta));

export function buildGraph(run: StateRun): Graph {
  const d = new Diagnostics();
  const nodes: GraphNode[] = [];
  const byId = new Map<string, GraphNode>();
  /** For each (invocation, part index): the node id it became. */
  const nodeOf = new Map<string, string>();
  const declKey = (inv: number, part: number) => `${inv}/${part}`;

  // 1. Group declarations by ref, rejecting conflicts inside one invocation.
  const declsByRef = new Map<string, Decl[]>();
  for (const inv of run.invocations) {
    const seenHere = new Map<string, PartInvocation>();
    const ids = new Map<string, PartInvocation>();
    for (const part of inv.parts) {
      const sameId = part.meta.id ? ids.get(part.meta.id) : undefined;
      if (sameId && sameId.ref !== part.ref) {
        d.add(`part id '${part.meta.id}' is used twice in '${inv.state}'`, part.pos, {
          related: [{ message: `also the id of ${sameId.ref}`, pos: sameId.pos }],
        });
      } else if (part.meta.id) ids.set(part.meta.id, part);
      const earlier = seenHere.get(part.ref);
      if (earlier) {
        if (!sameDeclaration(earlier, part)) {
          d.add(`conflicting declarations of ${part.ref} in one invocation of '${inv.state}'`, part.pos, {
            related: [{ message: 'first declared here', pos: earlier.pos }],
            hint: 'declare it once, or invoke the state twice to make stages',
          });
        } else {
          nodeOf.set(declKey(inv.index, part.index), `\u0000dup:${inv.index}/${earlier.index}`);
        }
        continue;
      }
      seenHere.set(part.ref, part);
      const list = declsByRef.get(part.ref) ?? [];
      list.push({ part, invocation: inv.index, lazy: inv.lazy, defer: inv.defer, state: inv.state });
      declsByRef.set(part.ref, list);
    }
  }

  // 2. One node per ref when all declarations agree; otherwise stages and an end state.
  const mkNode = (decl: Decl, id: string, declarations: Decl[], stage?: GraphNode['stage']): GraphNode => {
    const reads = resourceType(decl.part.type)?.reads?.(decl.part.attributes, run.os ?? {});
    const node: GraphNode = {
      id, ref: decl.part.ref, type: decl.part.type, state: decl.state,
      invocation: decl.invocation, part: decl.part.index, lazy: decl.lazy, defer: decl.defer,
      attributes: decl.part.attributes,
      meta: declarations.length > 1 ? { ...decl.part.meta, tags: [...new Set(declarations.flatMap((x) => x.part.meta.tags))].sort() } : decl.part.meta,
      ...(stage ? { stage } : {}),
      declarations: declarations.map((x) => ({ invocation: x.invocation, part: x.part.index, ...(x.part.pos ? { pos: x.part.pos } : {}) })),
      ...(decl.part.pos ? { pos: decl.part.pos } : {}),
      ...(reads ? { reads } : {}),
    };
    nodes.push(node);
    byId.set(id, node);
    for (const x of declarations) nodeOf.set(declKey(x.invocation, x.part.index), id);
    return node;
  };
  for (const [ref, decls] of declsByRef) {
    if (decls.length === 1 || decls.every((x) => sameDeclaration(x.part, decls[0]!.part))) {
      mkNode(decls[0]!, ref, decls);
      continue;
    }
    decls.forEach((decl, i) => {
      const last = i === decls.length - 1;
      mkNode(decl, last ? ref : `${ref}@${i + 1}`, [decl], { index: i + 1, of: decls.length, end: ref });
    });
  }
  for (const [k, v] of nodeOf) {
    if (v.startsWith('\u0000dup:')) nodeOf.set(k, nodeOf.get(v.slice(5))!);
  }

  // 3. References and edges.
  const edges: Edge[] = [];
  const edgeSeen = new Set<string>();
  const addEdge = (e: Edge) => {
    const key = `${e.from}\u0000${e.to}\u0000${e.kind}`;
    if (edgeSeen.has(key)) return;
    edgeSeen.add(key);
    edges.push(e);
  };
  const resolver = makeResolver(run, nodeOf, byId);
  for (const inv of run.invocations) {
    for (const part of inv.parts) {
      const self = nodeOf.get(declKey(inv.index, part.index));
      if (!self) continue;
      const resolve = (ref: string, pos: SourcePos | undefined, word: string): string[] => {
        const r = resolver(ref, inv.index);
        if (r.kind === 'found') return r.ids;
        if (r.kind === 'ambiguous') {
          d.add(`${part.ref}: ${word} '${ref}' is ambiguous: it names ${r.candidates.length} nodes`, pos, {
            hint: `use one of: ${r.candidates.slice(0, 6).join(', ')}, or give the part an id`,
          });
        } else {
          d.add(`${part.ref}: ${word} '${ref}' matches no node${r.suggestion ? ` (did you mean '${r.suggestion}'?)` : ''}`, pos, {
            hint: 'a reference is type:key (file:/etc/motd), a part id, or a state name',
          });
        }
        return [];
      };
      for (const req of part.requisites) {
        for (const other of resolve(req.ref, req.pos, req.kind)) {
          const base = { declared: req.kind, ...(req.pos ? { pos: req.pos } : {}) };
          switch (req.kind) {
            case 'require': addEdge({ from: other, to: self, kind: 'require', ...base }); break;
            case 'before': addEdge({ from: self, to: other, kind: 'require', ...base }); break;
            case 'notify': addEdge({ from: self, to: other, kind: 'notify', ...base }); break;
            case 'listen': addEdge({ from: other, to: self, kind: 'notify', ...base }); break;
            case 'onchanges': addEdge({ from: other, to: self, kind: 'onchanges', ...base }); break;
            case 'onfail': addEdge({ from: other, to: self, kind: 'onfail', ...base }); break;
          }
        }
      }
      for (const [attribute, { kind }] of Object.entries(resourceType(part.type)?.references ?? {})) {
        const value = part.attributes[attribute];
        const refs = value === undefined ? [] : Array.isArray(value) ? value : [value];
        for (const ref of refs as string[]) {
          for (const other of resolve(ref, part.pos, attribute)) {
            addEdge({ from: self, to: other, kind, declared: attribute, ...(part.pos ? { pos: part.pos } : {}) });
          }
        }
      }
    }
  }
  for (const node of nodes) {
    if (node.stage && node.stage.index < node.stage.of) {
      const next = node.stage.index + 1 === node.stage.of ? node.stage.end : `${node.stage.end}@${node.stage.index + 1}`;
      addEdge({ from: node.id, to: next, kind: 'stage' });
    }
  }
  d.throwIfAny();
  const dropped = addAutoRequires(nodes, edges, addEdge);

  // 4. Order: nodes that always run, then handlers, each a deterministic topological order.
  const always = nodes.filter((n) => !n.lazy);
  const lazy = nodes.filter((n) => n.lazy);
  const orderEdges = (set: GraphNode[]) => {
    const ids = new Set(set.map((n) => n.id));
    return edges.filter((e) => ORDERING.includes(e.kind) && ids.has(e.from) && ids.has(e.to));
  };
  const order = topoOrder(always, orderEdges(always), d);
  const declared = (n: GraphNode) => run.invocations[n.invocation]?.declared ?? n.invocation;
  const handlers = topoOrder(lazy, orderEdges(lazy), d, (a, b) => declared(a) - declared(b));
  d.throwIfAny();
  const rank = new Map([...order, ...handlers].map((id, i) => [id, i]));
  nodes.sort((a, b) => rank.get(a.id)! - rank.get(b.id)!);
  const types: Record<string, TypeBehaviour> = {};
  for (const n of nodes) {
    const type = types[n.type] ? undefined : resourceType(n.type);
    if (type) types[n.type] = behaviourOf(type);
  }
  return { nodes, edges, order, handlers, types, ...(dropped.length ? { dropped } : {}) };
}

/**
 * Implicit ordering (DESIGN §6, Puppet's autorequire), from what each type declares it names
 * (ResourceType.autoRequires): a `require` edge declared `auto` from each node named to the node
 * naming it, or the other way when the node named is removed (`ensure: absent`). Only between nodes that are both handlers or both not (handlers have an order of
 * their own), never when an explicit edge already links the two (either way: explicit
 * requisites win), and never one that would close a cycle: that one is returned, not added.
 */
function addAutoRequires(nodes: GraphNode[], edges: Edge[], addEdge: (e: Edge) => void): { from: string; to: string }[] {
  const linked = new Set(edges.flatMap((e) => [`${e.from}\u0000${e.to}`, `${e.to}\u0000${e.from}`]));
  const after = new Map<string, string[]>();
  const link = (from: string, to: string) => {
    const list = after.get(from);
    if (list) list.push(to);
    else after.set(from, [to]);
  };
  for (const e of edges) if (ORDERING.includes(e.kind)) link(e.from, e.to);
  const reaches = (start: string, goal: string): boolean => {
    const seen = new Set<string>([start]);
    const stack = [start];
    while (stack.length > 0) {
      const id = stack.pop()!;
      if (id === goal) return true;
      for (const next of after.get(id) ?? []) {
        if (!seen.has(next)) {
          seen.add(next);
          stack.push(next);
        }
      }
    }
    return false;
  };
  // Nodes another may name: each node's end state (a stage's later declarations are the same thing), by type and key.
  const named = new Map<string, Map<string, GraphNode>>();
  const ofType = new Map<string, GraphNode[]>();
  for (const n of nodes) {
    if (n.stage && n.stage.index < n.stage.of) continue;
    const key = resourceType(n.type)?.key;
    if (key === undefined) continue;
    const byKey = named.get(n.type) ?? new Map<string, GraphNode>();
    byKey.set(String(n.attributes[key]), n);
    named.set(n.type, byKey);
    const same = ofType.get(n.type);
    if (same) same.push(n);
    else ofType.set(n.type, [n]);
  }
  const closestAbove = (type: string, path: string): GraphNode | undefined => {
    const byKey = named.get(type);
    if (!byKey || !path.startsWith('/')) return undefined;
    for (let p = posix.dirname(posix.normalize(path)); ; p = posix.dirname(p)) {
      const found = byKey.get(p);
      if (found) return found;
      if (p === '/') return undefined;
    }
  };
  const dropped: { from: string; to: string }[] = [];
  for (const node of nodes) {
    const wanted: GraphNode[] = [];
    for (const auto of resourceType(node.type)?.autoRequires ?? []) {
      if ('every' in auto) {
        wanted.push(...(ofType.get(auto.type) ?? []));
        continue;
      }
      const value = node.attributes[auto.attribute];
      for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) {
        if (typeof v !== 'string' && typeof v !== 'number') continue;
        const found = auto.parent ? closestAbove(auto.type, String(v)) : named.get(auto.type)?.get(String(v));
        if (found) wanted.push(found);
      }
    }
    for (const other of wanted) {
      if (other.id === node.id || other.lazy !== node.lazy || linked.has(`${other.id}\u0000${node.id}`)) continue;
      linked.add(`${other.id}\u0000${node.id}`);
      linked.add(`${node.id}\u0000${other.id}`);
      // What a node names must exist before it, and is removed after it: a user being removed
      // goes after its keys, a folder after its files, a package after its service.
      const [first, then] = other.attributes.ensure === 'absent' ? [node, other] : [other, node];
      if (reaches(then.id, first.id)) {
        dropped.push({ from: first.id, to: then.id });
        continue;
      }
      addEdge({ from: first.id, to: then.id, kind: 'require', declared: 'auto' });
      link(first.id, then.id);
    }
  }
  return dropped;
}

type Resolution =
  | { kind: 'found'; ids: string[] }
  | { kind: 'ambiguous'; candidates: string[] }
  | { kind: 'missing'; suggestion?: string };

function makeResolver(run: StateRun, nodeOf: Map<string, string>, byId: Map<string, GraphNode>) {
  const uniq = (ids: (string | undefined)[]) => [...new Set(ids.filter((x): x is string => x !== undefined))];
  // Indexes, so resolving stays linear in the number of references on large runs.
  const local = new Map<number, Map<string, string[]>>();
  const byPartId = new Map<string, string[]>();
  const invocationsOf = new Map<string, number[]>();
  for (const inv of run.invocations) {
    const names = new Map<string, string[]>();
    for (const p of inv.parts) {
      const id = nodeOf.get(`${inv.index}/${p.index}`);
      if (!id) continue;
      for (const name of p.meta.id ? [p.ref, p.meta.id] : [p.ref]) pushTo(names, name, id);
      if (p.meta.id) pushTo(byPartId, p.meta.id, id);
    }
    local.set(inv.index, names);
    pushTo(invocationsOf, inv.state, inv.index);
  }
  const statesIncluding = (name: string, seen = new Set<string>()): string[] => {
    if (seen.has(name)) return [];
    seen.add(name);
    const includes = (invocationsOf.get(name) ?? []).flatMap((i) => run.invocations[i]!.includes);
    return [name, ...includes.flatMap((inc) => statesIncluding(inc, seen))];
  };
  /** A state's nodes, worked out once: a state invoked thousands of times is often required as often. */
  const stateNodes = new Map<string, string[]>();
  const everyName = () => [...byId.values()].flatMap((n) => [n.ref, ...(n.meta.id ? [n.meta.id] : []), n.state]);

  return (ref: string, fromInvocation: number): Resolution => {
    const here = uniq(local.get(fromInvocation)?.get(ref) ?? []);
    if (here.length > 0) return { kind: 'found', ids: here };

    const withId = uniq(byPartId.get(ref) ?? []);
    if (withId.length === 1) return { kind: 'found', ids: withId };
    if (withId.length > 1) {
      // The same part id in several invocations is fine when they are one node's stages.
      const ends = uniq(withId.map((id) => byId.get(id)?.stage?.end ?? id));
      if (ends.length === 1) return { kind: 'found', ids: ends };
      return { kind: 'ambiguous', candidates: withId };
    }
    if (byId.has(ref)) return { kind: 'found', ids: [ref] };

    if (invocationsOf.has(ref)) {
      let ids = stateNodes.get(ref);
      if (!ids) {
        ids = uniq(statesIncluding(ref).flatMap((state) => (invocationsOf.get(state) ?? [])
          .flatMap((i) => run.invocations[i]!.parts.map((p) => nodeOf.get(`${i}/${p.index}`)))));
        stateNodes.set(ref, ids);
      }
      if (ids.length > 0) return { kind: 'found', ids };
    }
    const suggestion = nearest(ref, everyName());
    return suggestion ? { kind: 'missing', suggestion } : { kind: 'missing' };
  };
}

/**
 * Kahn's algorithm, always taking the ready node that comes first by `first`, then invocation,
 * then part; reports a cycle as a path.
 */
function topoOrder(nodes: GraphNode[], edges: Edge[], d: Diagnostics, first: (a: GraphNode, b: GraphNode) => number = () => 0): string[] {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const priority = new Map(nodes.map((n) => [n.id, n.invocation * 1e6 + n.part]));
  const indegree = new Map(nodes.map((n) => [n.id, 0]));
  const out = new Map<string, Edge[]>();
  for (const e of edges) {
    indegree.set(e.to, indegree.get(e.to)! + 1);
    const list = out.get(e.from) ?? [];
    list.push(e);
    out.set(e.from, list);
  }
  const heap = new MinHeap<string>((a, b) => first(byId.get(a)!, byId.get(b)!) || priority.get(a)! - priority.get(b)! || (a < b ? -1 : a > b ? 1 : 0));
  for (const n of nodes) if (indegree.get(n.id) === 0) heap.push(n.id);
  const order: string[] = [];
  while (heap.size > 0) {
    const id = heap.pop()!;
    order.push(id);
    for (const e of out.get(id) ?? []) {
      const left = indegree.get(e.to)! - 1;
      indegree.set(e.to, left);
      if (left === 0) heap.push(e.to);
    }
  }
  if (order.length < nodes.length) reportCycle(nodes, edges, new Set(order), d);
  return order;
}

/** How the user wrote the requisite behind an edge, in their words. */
function phrase(e: Edge, ref: (id: string) => string, typeOf: (id: string) => string | undefined): string {
  const from = ref(e.from);
  const to = ref(e.to);
  const references = resourceType(typeOf(e.from) ?? '')?.references;
  if (references && e.declared !== undefined && Object.hasOwn(references, e.declared)) return references[e.declared]!.says(from, to);
  switch (e.declared ?? e.kind) {
    case 'require': return `${to} requires ${from}`;
    case 'before': return `${from} is before ${to}`;
    case 'onchanges': return `${to} has onchanges ${from}`;
    case 'onfail': return `${to} has onfail ${from}`;
    case 'listen': return `${to} listens to ${from}`;
    case 'notify': return `${from} notifies ${to}`;
    case 'auto': return `${to} requires ${from} (implicitly: it names it)`;
    default: return `${from} is an earlier stage of ${to}`;
  }
}

function reportCycle(nodes: GraphNode[], edges: Edge[], done: Set<string>, d: Diagnostics): void {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const rank = new Map(nodes.map((n) => [n.id, n.invocation * 1e6 + n.part]));
  const incoming = new Map<string, Edge[]>();
  for (const e of edges) {
    if (done.has(e.from) || done.has(e.to)) continue;
    pushTo(incoming, e.to, e);
  }
  // Every node left over has a left-over predecessor, so walking backwards must close a loop;
  // the earliest stuck node itself may only be downstream of the cycle.
  const start = nodes.find((n) => !done.has(n.id))!.id;
  const walked: Edge[] = [];
  const seenAt = new Map<string, number>();
  let cur = start;
  while (!seenAt.has(cur)) {
    seenAt.set(cur, walked.length);
    const prev = (incoming.get(cur) ?? [])[0]!;
    walked.push(prev);
    cur = prev.from;
  }
  let cycle = walked.slice(seenAt.get(cur)).reverse();
  // Start the printed cycle at its earliest-declared node, so the message is stable.
  const first = cycle.reduce((best, e, i) => (rank.get(e.from)! < rank.get(cycle[best]!.from)! ? i : best), 0);
  cycle = [...cycle.slice(first), ...cycle.slice(0, first)];
  const ref = (id: string) => byId.get(id)?.ref ?? id;
  const describe = (id: string) => `${ref(id)} (${formatPos(byId.get(id)?.pos)})`;
  const text = [...cycle.map((e) => describe(e.from)), ref(cycle[0]!.from)].join(' → ');
  d.add(`dependency cycle: ${text}`, cycle[0]!.pos ?? byId.get(cycle[0]!.to)?.pos, {
    related: cycle.map((e) => ({ message: phrase(e, ref, (id) => byId.get(id)?.type), pos: e.pos ?? byId.get(e.from)?.pos })),
    hint: 'each arrow means "must run before"; remove one of these requisites',
  });
}

class MinHeap<T> {
  private readonly items: T[] = [];
  constructor(private readonly less: (a: T, b: T) => number) {}
  get size(): number {
    return this.items.length;
  }
  push(item: T): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.less(a[i]!, a[p]!) >= 0) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): T | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l]!, a[m]!) < 0) m = l;
        if (r < a.length && this.less(a[r]!, a[m]!) < 0) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}
