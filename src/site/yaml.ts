/**
 * YAML (and JSON, which the same parser reads) into plain data, with the source position of every
 * map key and value kept aside (lib/positions.ts) so later steps can point at exactly what is wrong.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, parseDocument, Schema, visit, type Alias, type Node as YamlNode } from 'yaml';
import { inputError, InputError, type Diagnostic, type SourcePos } from '../lib/errors.ts';
import { recordPositions, type PosInfo, type Recorded } from '../lib/positions.ts';
import { SecretValue } from '../lib/secret-value.ts';
import { parsingYaml } from '../lib/tiering.ts';

/** `!secret` (DESIGN §4a): the scalar stays text here; convert() wraps it with its position. */
const SECRET_TAG = { tag: '!secret', resolve: (text: string) => text };

/**
 * YAML 1.2's core schema with `!secret`, made once: parseDocument would build a schema for every
 * document, a large share of parsing the small documents a state renders per invocation.
 */
const SCHEMA = new Schema({ schema: 'core', resolveKnownTags: true, customTags: [SECRET_TAG] });

/** Packing: start × 2^21 + (1 if the text starts inside quotes) × 2^20 + length (capped). */
const LENGTH_BITS = 2 ** 20;
const pack = (start: number, length: number, quoted: boolean) => start * 2 * LENGTH_BITS + (quoted ? LENGTH_BITS : 0) + Math.min(length, LENGTH_BITS - 1);

/**
 * The most values that aliases may expand to in one document, all aliases together. An anchored
 * block reused a few dozen times stays far below it; a "billion laughs" document (each level's
 * anchor aliasing the one before ten times) would otherwise expand to billions of values from a
 * few hundred bytes. The yaml library's own `maxAliasCount` guards only its toJS(), which Cairn
 * does not use (it converts nodes itself, to keep positions), so the cap is counted here.
 */
export const MAX_ALIAS_EXPANSION = 100_000;

/** `toPos(offset, length)` maps an offset in `text` to a source position. */
export type OffsetMapper = (offset: number, length: number) => SourcePos;

/**
 * `found.anchors` is set when the document has an anchor or an alias: a value that may depend on
 * text outside its own lines (site/states.ts parses a state's parts apart only without them).
 */
export function parseYaml(text: string, toPos: OffsetMapper, label = 'YAML', found?: { anchors: boolean }): unknown {
  parsingYaml(text.length);
  // Duplicate keys are found in convert(): the library's check compares each key with every
  // earlier one of its map, quadratic in a map's size (40,000 variables took 20 s).
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: false, strict: true, schema: SCHEMA });
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
  /** A node's range, packed (see Recorded in lib/positions.ts). */
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

  // What each alias names: the last node before it with that anchor. Alias.resolve() without a
  // context walks the whole document for every alias, so it is worked out in one walk here.
  const aliasTargets = new Map<Alias, YamlNode>();
  if (text.includes('*')) {
    const anchored = new Map<string, YamlNode>();
    visit(doc, {
      Node: (_key, node) => {
        if (isAlias(node)) {
          const target = anchored.get(node.source);
          if (target) aliasTargets.set(node, target);
        } else if (node.anchor) anchored.set(node.anchor, node);
      },
    });
  }

  const seen = new Set<YamlNode>();
  /** Values still allowed to come out of aliases; `expanding` is the outermost alias being expanded. */
  let aliasBudget = MAX_ALIAS_EXPANSION;
  let expanding: Alias | undefined;
  const convert = (node: unknown): unknown => {
    if (node === null || node === undefined) return null;
    if (found && (isAlias(node) || (node as { anchor?: string }).anchor)) found.anchors = true;
    if (expanding && --aliasBudget < 0) {
      throw inputError(`YAML: aliases expand to more than ${MAX_ALIAS_EXPANSION.toLocaleString('en')} values in this document`, resolve(where(expanding) ?? 0),
        'an anchor aliased at many levels multiplies (an "alias bomb"): write the values out, or reuse them through variables');
    }
    if (isAlias(node)) {
      const target = aliasTargets.get(node);
      if (!target) throw inputError(`YAML: unknown alias *${node.source} (the anchor must come before it)`, resolve(where(node) ?? 0));
      if (seen.has(target)) throw inputError('YAML: recursive alias', resolve(where(node) ?? 0));
      seen.add(target);
      const outermost = !expanding;
      if (outermost) expanding = node;
      try {
        return convert(target);
      } finally {
        seen.delete(target);
        if (outermost) expanding = undefined;
      }
    }
    if (isScalar(node)) {
      if (node.tag === '!secret') {
        const at = valuePos(node as YamlNode);
        const p = typeof at === 'number' ? resolve(at) : at;
        if (typeof node.value !== 'string' || node.value.trim() === '') {
          throw inputError('!secret: expected the age ciphertext as text', p, 'make one with `cairn secret encrypt --for TARGET`');
        }
        return new SecretValue(node.value, p);
      }
      return node.value;
    }
    if ((isMap(node) || isSeq(node)) && (node as { tag?: string }).tag === '!secret') {
      throw inputError('!secret: expected the age ciphertext as text, found a collection', resolve(where(node as YamlNode) ?? 0));
    }
    if (isMap(node)) {
      const obj: Record<string, unknown> = {};
      const info: PosInfo = { keys: new Map(), values: new Map(), resolve };
      const self = where(node as YamlNode);
      if (self) info.self = self;
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const keyNode = pair.key as YamlNode | null;
        if (found && (keyNode as { anchor?: string } | null)?.anchor) found.anchors = true;
        const key = isScalar(keyNode) ? String(keyNode.value) : String(convert(keyNode));
        const keyPos = where(keyNode);
        if (Object.hasOwn(obj, key)) throw inputError(`${label}: Map keys must be unique`, resolve(keyPos ?? self ?? 0));
        if (keyPos) info.keys.set(key, keyPos);
        const vPos = valuePos(pair.value as YamlNode | null) ?? keyPos;
        if (vPos) info.values.set(key, vPos);
        obj[key] = convert(pair.value);
      }
      recordPositions(obj, info);
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
      recordPositions(arr, info);
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
