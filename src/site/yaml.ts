/**
 * YAML (and JSON, which the same parser reads) into plain data, with the source position of every
 * map key and value kept aside in a WeakMap so later steps can point at exactly what is wrong.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { inputError, InputError, type Diagnostic, type SourcePos } from '../lib/errors.ts';

/**
 * A position as recorded while converting a parsed document: its range in the parsed text,
 * packed into one number, turned into a SourcePos only when something asks (an error, a part's
 * own position). A large state has a position for every key and value; most are never read.
 */
type Recorded = SourcePos | number;

interface PosInfo {
  self?: Recorded;
  keys: Map<string | number, Recorded>;
  values: Map<string | number, Recorded>;
  /** Turns this document's packed ranges into positions. */
  resolve?: (packed: number) => SourcePos;
}

const positions = new WeakMap<object, PosInfo>();

/** Packing: start × 2^21 + (1 if the text starts inside quotes) × 2^20 + length (capped). */
const LENGTH_BITS = 2 ** 20;
const pack = (start: number, length: number, quoted: boolean) => start * 2 * LENGTH_BITS + (quoted ? LENGTH_BITS : 0) + Math.min(length, LENGTH_BITS - 1);

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

/** `toPos(offset, length)` maps an offset in `text` to a source position. */
export type OffsetMapper = (offset: number, length: number) => SourcePos;

export function parseYaml(text: string, toPos: OffsetMapper, label = 'YAML'): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  const problems = [...doc.errors];
  if (problems.length > 0) {
    const diagnostics: Diagnostic[] = problems.map((e) => {
      // The parser points some indentation errors at the start of the line; the user wants the
      // misplaced key itself.
      let at = e.pos[0];
      if (at === 0 || text[at - 1] === '\n') while (text[at] === ' ') at++;
      return { message: `${label}: ${firstLine(e.message)}`, pos: toPos(at, Math.max(1, e.pos[1] - at)) };
    });
    throw new InputError(diagnostics);
  }
  /** A node's range, packed (see Recorded). */
  const where = (node: YamlNode | null | undefined): number | undefined => {
    const range = node?.range;
    return range ? pack(range[0], Math.max(1, range[1] - range[0]), false) : undefined;
  };

  /** Where a value's text starts: inside the quotes, or on the first content line of a block. */
  const valuePos = (node: YamlNode | null | undefined): Recorded | undefined => {
    if (!isScalar(node) || !node.range) return where(node);
    const range = node.range;
    if (node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE') return pack(range[0], Math.max(1, range[1] - range[0]), true);
    if (node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED') {
      // Rare, and needs the text: worked out now.
      const lineEnd = text.indexOf('\n', range[0]);
      if (lineEnd < 0) return where(node);
      let start = lineEnd + 1;
      while (text[start] === '\n') start++;
      let indent = 0;
      while (text[start + indent] === ' ') indent++;
      return { ...toPos(start + indent, 1), indent };
    }
    return where(node);
  };
  const resolve = packedResolver(toPos);

  const seen = new Set<YamlNode>();
  const convert = (node: unknown): unknown => {
    if (node === null || node === undefined) return null;
    if (isAlias(node)) {
      const target = node.resolve(doc);
      if (!target || seen.has(target)) throw inputError('YAML: recursive alias', resolve(where(node) ?? 0));
      seen.add(target);
      const value = convert(target);
      seen.delete(target);
      return value;
    }
    if (isScalar(node)) return node.value;
    if (isMap(node)) {
      const obj: Record<string, unknown> = {};
      const info: PosInfo = { keys: new Map(), values: new Map(), resolve };
      const self = where(node as YamlNode);
      if (self) info.self = self;
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const keyNode = pair.key as YamlNode | null;
        const key = isScalar(keyNode) ? String(keyNode.value) : String(convert(keyNode));
        const keyPos = where(keyNode);
        if (keyPos) info.keys.set(key, keyPos);
        const vPos = valuePos(pair.value as YamlNode | null) ?? keyPos;
        if (vPos) info.values.set(key, vPos);
        obj[key] = convert(pair.value);
      }
      positions.set(obj, info);
      return obj;
    }
    if (isSeq(node)) {
      const arr: unknown[] = [];
      const info: PosInfo = { keys: new Map(), values: new Map(), resolve };
      const self = where(node as YamlNode);
      if (self) info.self = self;
      node.items.forEach((item, i) => {
        const p = valuePos(item as YamlNode);
        if (p) info.values.set(i, p);
        arr.push(convert(item));
      });
      positions.set(arr, info);
      return arr;
    }
    return (node as { toJSON?: () => unknown }).toJSON?.() ?? null;
  };
  return convert(doc.contents);
}

/**
 * Turns packed ranges into positions. Made outside parseYaml on purpose: every converted map
 * keeps this function, and a closure made there would keep parseYaml's whole scope alive with
 * it, the parsed Document included (tens of megabytes for a large state).
 */
function packedResolver(toPos: OffsetMapper): (packed: number) => SourcePos {
  return (packed) => {
    const start = Math.floor(packed / (2 * LENGTH_BITS));
    const rest = packed - start * 2 * LENGTH_BITS;
    const quoted = rest >= LENGTH_BITS;
    const at = toPos(start, quoted ? rest - LENGTH_BITS : rest);
    return quoted ? { ...at, col: at.col + 1 } : at;
  };
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}
