/**
 * Where things came from in the user's files. Parsers (site/yaml.ts) and code that builds data
 * (TypeScript states, the API) record positions here, beside the data in a WeakMap, and every
 * later step (catalog, graph, api) reads them to point an error at exactly what is wrong. It
 * lives in lib/ so those steps need not import the parsers to find a position.
 */
import type { SourcePos } from './errors.ts';

/**
 * A position as recorded: a SourcePos, or a parser's range in its text packed into one number
 * (site/yaml.ts), turned into a SourcePos only when something asks (an error, a part's own
 * position). A large state has a position for every key and value; most are never read.
 */
export type Recorded = SourcePos | number;

export interface PosInfo {
  self?: Recorded;
  keys: Map<string | number, Recorded>;
  values: Map<string | number, Recorded>;
  /** Turns the packed ranges of the document this came from into positions. */
  resolve?: (packed: number) => SourcePos;
}

/**
 * Where each object's PosInfo is kept: on the object itself, under a symbol that is neither
 * enumerable nor copied (Object.keys, spreads, JSON and structuredClone never see it), so a copy
 * has no positions unless given them, as with a side table. Not a WeakMap: with one entry per
 * parsed map and list (hundreds of thousands in a large run), its ephemeron table made a large
 * share of the garbage collector's work. Objects that cannot take a property (frozen ones) use
 * the WeakMap still.
 */
const POSITIONS = Symbol('cairn.positions');
const frozen = new WeakMap<object, PosInfo>();

const positions = {
  get(obj: object): PosInfo | undefined {
    return Object.hasOwn(obj, POSITIONS) ? (obj as { [POSITIONS]: PosInfo })[POSITIONS] : frozen.get(obj);
  },
  has(obj: object): boolean {
    return Object.hasOwn(obj, POSITIONS) || frozen.has(obj);
  },
  set(obj: object, info: PosInfo): void {
    if (Object.hasOwn(obj, POSITIONS)) (obj as { [POSITIONS]: PosInfo })[POSITIONS] = info;
    else if (Object.isExtensible(obj)) Object.defineProperty(obj, POSITIONS, { value: info, writable: true, configurable: true, enumerable: false });
    else frozen.set(obj, info);
  },
};

/** Records what a parser found for `obj`, replacing anything recorded before. */
export function recordPositions(obj: object, info: PosInfo): void {
  positions.set(obj, info);
}

function resolved(info: PosInfo, p: Recorded | undefined): SourcePos | undefined {
  return typeof p === 'number' ? info.resolve!(p) : p;
}

/** Position of `obj` itself, or of its member `key`'s value. */
export function posOf(obj: unknown, key?: string | number): SourcePos | undefined {
  if (obj === null || typeof obj !== 'object') return undefined;
  const info = positions.get(obj);
  if (!info) return undefined;
  if (key === undefined) return resolved(info, info.self);
  return resolved(info, info.values.get(key) ?? info.keys.get(key) ?? info.self);
}

/** Position of the key `key` in map `obj` (falls back to the map itself). */
export function keyPosOf(obj: unknown, key: string): SourcePos | undefined {
  if (obj === null || typeof obj !== 'object') return undefined;
  const info = positions.get(obj);
  return info && resolved(info, info.keys.get(key) ?? info.self);
}

/** Records positions for data built in code (TypeScript states, defaults). */
export function setPos(obj: object, self: SourcePos | undefined, members?: Record<string, SourcePos>): void {
  const info: PosInfo = positions.get(obj) ?? { keys: new Map(), values: new Map() };
  if (self) info.self = self;
  for (const [k, p] of Object.entries(members ?? {})) {
    info.keys.set(k, p);
    info.values.set(k, p);
  }
  positions.set(obj, info);
}

/** Gives every object reachable from `value` that has no position of its own the position `pos`. */
export function setPosDeep(value: unknown, pos: SourcePos | undefined): void {
  if (!pos || value === null || typeof value !== 'object') return;
  if (!positions.has(value)) setPos(value, pos);
  for (const v of Object.values(value)) setPosDeep(v, pos);
}

/** Rebuilds `value` with every string replaced by `fn(string, itsPosition)`, keeping positions. */
export function mapStrings(value: unknown, fn: (s: string, pos: SourcePos | undefined) => unknown, pos?: SourcePos): unknown {
  if (typeof value === 'string') return fn(value, pos);
  if (value === null || typeof value !== 'object') return value;
  const info = positions.get(value);
  if (Array.isArray(value)) {
    const out = value.map((v, i) => mapStrings(v, fn, (info && resolved(info, info.values.get(i))) ?? pos));
    if (info) positions.set(out, info);
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = mapStrings(v, fn, (info && resolved(info, info.values.get(k))) ?? pos);
  if (info) positions.set(out, info);
  return out;
}

/** Offsets to 1-based line and column, and back to the text of a line. */
export class LineIndex {
  private readonly starts: number[] = [0];
  constructor(readonly text: string) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.starts.push(i + 1);
  }

  lineCol(offset: number): { line: number; col: number } {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - this.starts[lo]! + 1 };
  }

  /** Offset of the first character of `line` (1-based); the text's length past the end. */
  lineStart(line: number): number {
    return this.starts[line - 1] ?? this.text.length;
  }

  lineText(line: number): string {
    const start = this.starts[line - 1];
    if (start === undefined) return '';
    const end = this.starts[line] ?? this.text.length + 1;
    return this.text.slice(start, end - 1).replace(/\r$/, '');
  }
}
