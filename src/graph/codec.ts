/**
 * The compiled unit's wire format: a StateRun and its graph, as the compile cache keeps them (and
 * as a master ships a run to an agent or a store keeps one). Every field of the graph's records
 * goes through a table typed over all the record's keys, so a field added to GraphNode, Edge,
 * Graph, TypeBehaviour or StateRun without saying how it travels is a TypeScript error rather
 * than a field the far side silently never sees; at run time, a field the table does not know is
 * refused on both sides.
 *
 * Two JSON lines: the graph (its nodes compacted) with the run's header, then the run's
 * invocations, which the engine never reads (the graph has every node): they are parsed only when
 * asked for (`cairn show`), so a converged run parses and holds a little more than half.
 */
import type { StateRun } from '../catalog/staterun.ts';
import type { SourcePos } from '../lib/errors.ts';
import type { TypeBehaviour } from '../resources/type.ts';
import type { Declaration, Edge, EdgeKind, Graph, GraphNode } from './build.ts';

/** What compiling one target yields, and what runs it. */
export interface Compiled {
  run: StateRun;
  graph: Graph;
}

/** Input that is not a compiled run this version of Cairn wrote. */
export class CodecError extends Error {
  constructor(private where: string, private readonly problem: string) {
    super(`malformed compiled run: ${where}: ${problem}`);
    this.name = 'CodecError';
  }

  /**
   * Puts the path of the enclosing record in front: records pass their fields only the field's
   * own name, so that decoding a large graph builds no path until something is wrong.
   */
  within(parent: string): this {
    this.where = `${parent}${this.where.startsWith('[') ? '' : '.'}${this.where}`;
    this.message = `malformed compiled run: ${this.where}: ${this.problem}`;
    return this;
  }
}

type Wire = Record<string, unknown>;
type Check<V> = (value: unknown, where: string) => V;

/** How one field travels: its wire value (undefined: left out) and back. */
interface Field<V, T> {
  encode(value: V, whole: T, where: string): unknown;
  /** `wire` is undefined when the field was left out. */
  decode(wire: unknown, whole: Wire, where: string): V;
}

/** A field for every key of T, optional ones included: a key left out does not type-check. */
type Fields<T> = { [K in keyof Required<T>]: Field<T[K], T> };

function describe(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
}

const str: Check<string> = (v, where) => {
  if (typeof v !== 'string') throw new CodecError(where, `expected a string, found ${describe(v)}`);
  return v;
};
const int: Check<number> = (v, where) => {
  if (!Number.isInteger(v)) throw new CodecError(where, `expected an integer, found ${describe(v)}`);
  return v as number;
};
const bool: Check<boolean> = (v, where) => {
  if (typeof v !== 'boolean') throw new CodecError(where, `expected true or false, found ${describe(v)}`);
  return v;
};
const record: Check<Wire> = (v, where) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CodecError(where, `expected an object, found ${describe(v)}`);
  return v as Wire;
};
function list<V>(item: Check<V>): Check<V[]> {
  return (v, where) => {
    if (!Array.isArray(v)) throw new CodecError(where, `expected an array, found ${describe(v)}`);
    return v.map((x, i) => item(x, `${where}[${i}]`));
  };
}
function oneOf<V extends string>(values: readonly V[]): Check<V> {
  return (v, where) => {
    if (!values.includes(v as V)) throw new CodecError(where, `expected one of ${values.join(', ')}, found ${JSON.stringify(v) ?? 'nothing'}`);
    return v as V;
  };
}
/** A record whose own fields are checked no further: it travels whole, as JSON keeps it. */
function opaque<V>(): Check<V> {
  return (v, where) => record(v, where) as V;
}
const strings = list(str);

/**
 * While a graph is decoded (decodeLines): one object for each distinct source position. The
 * nodes a template's loop makes all point at the loop's few lines, and a position each, with its
 * file name, was a tenth of what a 100,000-resource run holds. Positions are read, never changed.
 */
let sharedPositions: Map<string, SourcePos> | undefined;

const pos: Check<SourcePos> = (v, where) => {
  const r = record(v, where);
  str(r.file, `${where}.file`);
  int(r.line, `${where}.line`);
  int(r.col, `${where}.col`);
  const p = r as unknown as SourcePos;
  if (!sharedPositions) return p;
  // Only a position of SourcePos's own fields is shared: the key covers no others.
  let fields = 0;
  for (const _ in r) fields++;
  if (fields !== 3 + Number(r.length !== undefined) + Number(r.indent !== undefined)) return p;
  const key = `${p.line}:${p.col}:${p.length}:${p.indent}:${p.file}`;
  const known = sharedPositions.get(key);
  if (known) return known;
  sharedPositions.set(key, p);
  return p;
};

/** Kept as is; must be present. */
function required<V>(check: Check<V>): Field<V, unknown> {
  return {
    encode: (value) => value,
    decode(wire, _whole, where) {
      if (wire === undefined) throw new CodecError(where, 'missing');
      return check(wire, where);
    },
  };
}

/** Kept as is when present. */
function optional<V>(check: Check<V>): Field<V | undefined, unknown> {
  return {
    encode: (value) => value,
    decode: (wire, _whole, where) => (wire === undefined ? undefined : check(wire, where)),
  };
}

/** A value of a kind that cannot be written as JSON: refused if present, never dropped. */
function never<V>(why: string): Field<V | undefined, unknown> {
  return {
    encode(value, _whole, where) {
      if (value !== undefined) throw new CodecError(where, why);
      return undefined;
    },
    decode: (wire, _whole, where) => {
      if (wire !== undefined) throw new CodecError(where, why);
      return undefined;
    },
  };
}

function refuseUnknown(value: object, fields: object, where: string): void {
  for (const key in value) {
    if (!Object.hasOwn(fields, key)) throw new CodecError(where, `unknown field '${key}'`);
  }
}

/** Each table's keys, listed once rather than per record (a graph may have tens of thousands of nodes). */
const KEYS = new WeakMap<object, string[]>();
function keysOf(fields: object): string[] {
  let keys = KEYS.get(fields);
  if (!keys) KEYS.set(fields, keys = Object.keys(fields));
  return keys;
}

function encodeWith<T extends object>(fields: Fields<T>, value: T, where: string): Wire {
  refuseUnknown(value, fields, where);
  const out: Wire = {};
  for (const key of keysOf(fields) as (keyof T & string)[]) {
    const wire = (fields[key] as Field<unknown, T>).encode(value[key], value, `${where}.${key}`);
    if (wire !== undefined) out[key] = wire;
  }
  return out;
}

/** Built in the table's order, which is the order the graph builder writes keys in (so `show --json` is the same either way). */
function decodeWith<T extends object>(fields: Fields<T>, wire: unknown, where: string): T {
  const w = record(wire, where);
  refuseUnknown(w, fields, where);
  const out: Wire = {};
  try {
    for (const key of keysOf(fields) as (keyof T & string)[]) {
      const value = (fields[key] as Field<unknown, T>).decode(w[key], w, key);
      if (value !== undefined) out[key] = value;
    }
  } catch (err) {
    if (err instanceof CodecError) err.within(where);
    throw err;
  }
  return out as T;
}

/** The meta most parts have: a node whose meta is this leaves it out. */
const USUAL_META = JSON.stringify({ noop: false, allow_reload: true, allow_rebuild: true, tags: [] });

const SHARED_META = Object.freeze({ ...JSON.parse(USUAL_META) as GraphNode['meta'], tags: Object.freeze([]) as unknown as string[] });

/** A node declared once keeps only that declaration, which repeats the node's own invocation, part and pos. */
function declaredOnceAsItself(n: GraphNode): boolean {
  if (n.declarations.length !== 1) return false;
  const [only] = n.declarations;
  return only!.invocation === n.invocation && only!.part === n.part && JSON.stringify(only!.pos) === JSON.stringify(n.pos);
}

const declaration: Check<Declaration> = (v, where) => {
  const r = record(v, where);
  int(r.invocation, `${where}.invocation`);
  int(r.part, `${where}.part`);
  if (r.pos !== undefined) pos(r.pos, `${where}.pos`);
  return r as unknown as Declaration;
};

/** A flag that is almost always false travels only when true. */
function rarelyTrue(): Field<boolean, unknown> {
  return { encode: (value) => (value ? true : undefined), decode: (wire, _whole, where) => (wire === undefined ? false : bool(wire, where)) };
}

/**
 * A node without what most nodes repeat (a ref equal to the id, false lazy and defer, the usual
 * meta, a single declaration that is the node itself): about two fifths of the cached graph,
 * which a converged run parses on every start.
 */
const NODE_FIELDS = {
  id: required(str),
  ref: {
    encode: (ref, n) => (ref === n.id ? undefined : ref),
    decode: (wire, whole, where) => (wire === undefined ? str(whole.id, where) : str(wire, where)),
  },
  type: required(str),
  state: required(str),
  invocation: required(int),
  part: required(int),
  lazy: rarelyTrue(),
  defer: rarelyTrue(),
  attributes: required(opaque<GraphNode['attributes']>()),
  meta: {
    encode: (meta) => (JSON.stringify(meta) === USUAL_META ? undefined : meta),
    // One frozen object for all the nodes that have it: a large graph would hold one per node.
    decode: (wire, _whole, where) => (wire === undefined ? SHARED_META : opaque<GraphNode['meta']>()(wire, where)),
  },
  stage: optional((v, where) => {
    const r = record(v, where);
    int(r.index, `${where}.index`);
    int(r.of, `${where}.of`);
    str(r.end, `${where}.end`);
    return r as unknown as NonNullable<GraphNode['stage']>;
  }),
  declarations: {
    encode: (declarations, n) => (declaredOnceAsItself(n) ? undefined : declarations),
    decode(wire, whole, where) {
      if (wire !== undefined) return list(declaration)(wire, where);
      // The node's own pos, shared as the builder shares it (checked here: `pos` comes after).
      return [{ invocation: whole.invocation as number, part: whole.part as number, ...(whole.pos ? { pos: pos(whole.pos, 'pos') } : {}) }];
    },
  },
  pos: optional(pos),
  reads: {
    encode: (reads, n) => (reads && readsFirstAttribute(reads, n.attributes) ? true : reads),
    decode(wire, whole, where) {
      if (wire === undefined) return undefined;
      // `true`: the node reads the path its first attribute names (and travels only there).
      if (wire === true) return { paths: [str(firstAttribute(record(whole.attributes, 'attributes')), where)] };
      const r = record(wire, where);
      strings(r.paths, `${where}.paths`);
      if (r.commands !== undefined) bool(r.commands, `${where}.commands`);
      if (r.content !== undefined) bool(r.content, `${where}.content`);
      return r as unknown as NonNullable<GraphNode['reads']>;
    },
  },
} satisfies Fields<GraphNode>;

function firstAttribute(attributes: Record<string, unknown>): unknown {
  for (const key in attributes) return attributes[key];
  return undefined;
}

/** Whether a node reads just the path its first attribute holds, and nothing else (most file-like nodes). */
function readsFirstAttribute(reads: NonNullable<GraphNode['reads']>, attributes: Record<string, unknown>): boolean {
  for (const key in reads) if (key !== 'paths') return false;
  const first = firstAttribute(attributes);
  return reads.paths.length === 1 && typeof first === 'string' && reads.paths[0] === first;
}

const EDGE_KINDS = ['require', 'notify', 'onchanges', 'onfail', 'transition', 'stage'] as const satisfies readonly EdgeKind[];

const EDGE_FIELDS = {
  from: required(str),
  to: required(str),
  kind: required(oneOf(EDGE_KINDS)),
  // A requisite word, or the name of a type's reference attribute (a transition's prior_to).
  declared: optional(str),
  pos: optional(pos),
} satisfies Fields<Edge>;

const TYPE_FIELDS = {
  name: required(str),
  changes: required(opaque<TypeBehaviour['changes']>()),
  createAction: optional(oneOf(['create', 'run'] as const)),
  writeOnly: optional(strings),
  sensitive: optional(strings),
  inSync: optional(opaque<NonNullable<TypeBehaviour['inSync']>>()),
  needs: optional(list(oneOf(['running-system', 'cairn'] as const))),
  attributeNeeds: optional(opaque<NonNullable<TypeBehaviour['attributeNeeds']>>()),
  overlap: optional(oneOf(['paths', 'paths-and-parents'] as const)),
  shows: optional(opaque<Record<string, string>>()),
  // Code: the graph builder keeps each node's readings on the node instead.
  reads: never('a type\'s reads() is code and cannot be part of a compiled run'),
} satisfies Fields<TypeBehaviour>;

function mapRecord<A, B>(value: Record<string, A>, fn: (item: A, key: string) => B): Record<string, B> {
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fn(v, k)]));
}

/** A list of records, each through its table. */
function records<V extends object>(fields: Fields<V>): Field<V[], unknown> {
  return {
    encode: (items, _whole, where) => items.map((item, i) => encodeWith(fields, item, `${where}[${i}]`)),
    decode(wire, _whole, where) {
      if (wire === undefined) throw new CodecError(where, 'missing');
      return list((item, at) => decodeWith(fields, item, at))(wire, where);
    },
  };
}

/**
 * Node ids in edges and the run order travel as the node's index in `nodes` (an id that is no
 * node's travels as itself): a large graph's file is that much smaller, and the decoded edges and
 * order share the nodes' id strings instead of holding copies of their own.
 */
const NODE_INDEX = new WeakMap<Graph, Map<string, number>>();
function nodeIndex(graph: Graph): Map<string, number> {
  let index = NODE_INDEX.get(graph);
  if (!index) NODE_INDEX.set(graph, index = new Map(graph.nodes.map((n, i) => [n.id, i])));
  return index;
}
function idRef(graph: Graph, id: string): string | number {
  return nodeIndex(graph).get(id) ?? id;
}
/** An id as idRef wrote it, the node's index resolved against the graph's (already decoded) wire nodes. */
function resolveId(v: unknown, whole: Wire, where: string): string {
  if (typeof v !== 'number') return str(v, where);
  const node = Array.isArray(whole.nodes) && Number.isInteger(v) ? (whole.nodes as unknown[])[v] : undefined;
  if (node === undefined) throw new CodecError(where, `no node ${v}`);
  return str(record(node, where).id, where);
}

const GRAPH_FIELDS = {
  nodes: records(NODE_FIELDS),
  edges: {
    encode: (edges, graph, where) => edges.map((e, i) => {
      const wire = encodeWith(EDGE_FIELDS, e, `${where}[${i}]`);
      return { ...wire, from: idRef(graph, e.from), to: idRef(graph, e.to) };
    }),
    decode(wire, whole, where) {
      if (wire === undefined) throw new CodecError(where, 'missing');
      return list((item, at) => {
        const e = record(item, at);
        // The parsed wire is this decoder's own: the ids go in place before the edge's table checks it.
        e.from = resolveId(e.from, whole, `${at}.from`);
        e.to = resolveId(e.to, whole, `${at}.to`);
        return decodeWith(EDGE_FIELDS, e, at);
      })(wire, where);
    },
  },
  order: {
    encode: (order, graph) => order.map((id) => idRef(graph, id)),
    decode(wire, whole, where) {
      if (wire === undefined) throw new CodecError(where, 'missing');
      return list((v, at) => resolveId(v, whole, at))(wire, where);
    },
  },
  handlers: required(strings),
  types: {
    encode: (types, _whole, where) => mapRecord(types, (t, name) => encodeWith(TYPE_FIELDS, t, `${where}.${name}`)),
    decode(wire, _whole, where) {
      if (wire === undefined) throw new CodecError(where, 'missing');
      return mapRecord(record(wire, where), (t, name) => decodeWith(TYPE_FIELDS, t, `${where}.${name}`));
    },
  },
  dropped: optional(list((v, where) => {
    const r = record(v, where);
    return { from: str(r.from, `${where}.from`), to: str(r.to, `${where}.to`) };
  })),
} satisfies Fields<Graph>;

/** The run's header fields; `invocations` travels on a line of its own. */
const RUN_FIELDS = {
  version: required((v, where) => {
    if (v !== 1) throw new CodecError(where, `expected version 1, found ${JSON.stringify(v) ?? 'nothing'}`);
    return v;
  }),
  target: required((v, where) => {
    const r = record(v, where);
    str(r.name, `${where}.name`);
    str(r.executor, `${where}.executor`);
    str(r.state_dir, `${where}.state_dir`);
    return r as StateRun['target'];
  }),
  vars: required(opaque<StateRun['vars']>()),
  facts: required(opaque<StateRun['facts']>()),
  os: required(opaque<StateRun['os']>()),
  invocations: required(list(opaque<StateRun['invocations'][number]>())),
} satisfies Fields<StateRun>;

/**
 * A decoded run's invocations line while it is still unparsed (never read nor replaced): encoded
 * again (the CLI sending a cached run on to a master), it goes as it came, not parsed and written.
 */
const unparsedInvocations = new WeakMap<StateRun, () => Buffer | undefined>();

/**
 * A decoded run's first line as it came, with the values it decoded to: encoded again with its
 * graph and header fields still those values (the CLI sending a cached run on to a master), the
 * line goes as it came rather than being written anew, which cost the CLI more than the master's
 * whole relay of the run. Decoded runs are read, never changed in place, so identity of the graph
 * and of each header value is what "unchanged" checks. Only for lines up to FIRST_LINE_KEPT_MAX
 * characters: a very large run does not hold its text twice.
 */
const decodedFirstLine = new WeakMap<StateRun, { line: string; graph: Graph; head: [string, unknown][] }>();
const FIRST_LINE_KEPT_MAX = 8 * 1024 * 1024;

function keptFirstLine(run: StateRun, graph: Graph): string | undefined {
  const kept = decodedFirstLine.get(run);
  if (!kept || kept.graph !== graph) return undefined;
  const keys = Object.keys(run).filter((key) => key !== 'invocations');
  if (keys.length !== kept.head.length) return undefined;
  for (let i = 0; i < keys.length; i++) {
    const [key, value] = kept.head[i]!;
    if (keys[i] !== key || run[key as keyof StateRun] !== value) return undefined;
  }
  return kept.line;
}

function firstLine({ run, graph }: Compiled): string {
  refuseUnknown(run, RUN_FIELDS, 'run');
  const kept = keptFirstLine(run, graph);
  if (kept !== undefined) return kept;
  const head: Wire = {};
  for (const key of Object.keys(run) as (keyof StateRun)[]) {
    if (key !== 'invocations') head[key] = RUN_FIELDS[key].encode(run[key] as never, run, `run.${key}`);
  }
  return JSON.stringify({ keys: Object.keys(run), head, graph: encodeWith(GRAPH_FIELDS, graph, 'graph') });
}

/** The compiled run as pieces written one after another: a large run is never joined into one more string. */
export function encodeCompiled(compiled: Compiled): string[] {
  const { run } = compiled;
  return [
    firstLine(compiled),
    '\n',
    unparsedInvocations.get(run)?.()?.toString('utf8') ?? JSON.stringify(run.invocations),
  ];
}

/**
 * The compiled run as an engine runs it, to ship to where it runs (an agent): the graph and the
 * run's header, its invocations empty. Running reads only the graph (it has every node) and the
 * header; the invocations, a little under half of the text, are read by compiling and `cairn
 * show`, which stay where the site is.
 */
export function encodeForEngine(compiled: Compiled): string {
  return `${firstLine(compiled)}\n[]`;
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new CodecError(where, `not JSON (${(err as Error).message})`);
  }
}

/**
 * A compiled run from what encodeCompiled wrote; throws CodecError on anything else. The run's
 * invocations are parsed when first read, and malformed ones throw then.
 */
export function decodeCompiled(input: Buffer | string): Compiled {
  const bytes = typeof input === 'string' ? Buffer.from(input) : input;
  const newline = bytes.indexOf(0x0a);
  if (newline < 0) throw new CodecError('the whole input', 'expected two lines (the graph, then the invocations)');
  // A copy, so the input's whole content is not kept alive for the part not yet parsed.
  const rest = Buffer.from(bytes.subarray(newline + 1));
  return decodeLines(bytes.toString('utf8', 0, newline), () => rest);
}

/**
 * The same from the first line alone, `rest()` giving what followed it (the newline and the
 * second line) when the invocations are first read: the compile cache's way (decodeFirst), so a
 * converged run neither reads nor holds them.
 */
export function decodeCompiledFirst(first: string, rest: () => Buffer): Compiled {
  return decodeLines(first, () => {
    const bytes = rest();
    if (bytes[0] !== 0x0a) throw new CodecError('the whole input', 'expected two lines (the graph, then the invocations)');
    return bytes.subarray(1);
  });
}

function decodeLines(line1: string, line2: () => Buffer): Compiled {
  const first = record(parseJson(line1, 'line 1'), 'line 1');
  refuseUnknown(first, { keys: true, head: true, graph: true }, 'line 1');
  const keys = list(oneOf(Object.keys(RUN_FIELDS) as (keyof StateRun)[]))(first.keys, 'keys');
  const head = record(first.head, 'run');
  refuseUnknown(head, RUN_FIELDS, 'run');
  for (const key of Object.keys(RUN_FIELDS) as (keyof StateRun)[]) {
    if (!keys.includes(key)) throw new CodecError(`run.${key}`, 'missing');
  }
  sharedPositions = new Map();
  let graph: Graph;
  try {
    graph = decodeWith(GRAPH_FIELDS, first.graph, 'graph');
  } finally {
    sharedPositions = undefined;
  }
  let rest: (() => Buffer) | undefined = line2;
  const run: Wire = {};
  for (const key of keys) {
    if (key !== 'invocations') {
      run[key] = RUN_FIELDS[key].decode(head[key], head, `run.${key}`);
      continue;
    }
    const settle = (value: unknown) => Object.defineProperty(run, 'invocations', { value, writable: true, enumerable: true, configurable: true });
    Object.defineProperty(run, 'invocations', {
      enumerable: true,
      configurable: true,
      get() {
        const value = RUN_FIELDS.invocations.decode(parseJson(rest!().toString('utf8'), 'line 2'), run, 'run.invocations');
        rest = undefined;
        settle(value);
        return value;
      },
      set(value: unknown) {
        rest = undefined;
        settle(value);
      },
    });
  }
  unparsedInvocations.set(run as unknown as StateRun, () => rest?.());
  if (line1.length <= FIRST_LINE_KEPT_MAX) {
    decodedFirstLine.set(run as unknown as StateRun, { line: line1, graph, head: keys.filter((key) => key !== 'invocations').map((key) => [key, run[key]]) });
  }
  return { run: run as unknown as StateRun, graph };
}

/** The codec the compile cache takes (cli/compile-cache.ts's Codec). */
export const COMPILED_CODEC = { encode: encodeCompiled, decode: decodeCompiled, decodeFirst: decodeCompiledFirst };

/** Every key of a graph node, for tests that must populate them all. */
export const GRAPH_NODE_KEYS = Object.keys(NODE_FIELDS) as (keyof GraphNode)[];
export const EDGE_KEYS = Object.keys(EDGE_FIELDS) as (keyof Edge)[];
