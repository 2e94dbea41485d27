/**
 * State definitions from the three kinds of state file (DESIGN §4): YAML rendered as an Eta template
 * per invocation, plain JSON, and states written inline in cairn.yaml or component.yaml (each string
 * value rendered on its own). TypeScript state files produce the same StateDef in site/typescript.ts.
 */
import { didYouMean } from '../lib/did-you-mean.ts';
import { Diagnostics, inputError, InputError, type SourcePos } from '../lib/errors.ts';
import { keyPosOf, LineIndex, mapStrings, posOf } from '../lib/positions.ts';
import { TAG_NAME } from '../lib/tag-name.ts';
import { sandboxOf, type JobResult, type RenderJob } from './sandbox.ts';
import { cutItems } from './segments.ts';
import { compileTemplate, type CompiledTemplate, type RenderResult } from './template.ts';
import { parseYaml, type OffsetMapper } from './yaml.ts';

/** The `it` that templates see. */
export interface TemplateScope {
  vars: Record<string, unknown>;
  params: Record<string, unknown>;
  facts: Record<string, unknown>;
  os: Record<string, unknown>;
  target: Record<string, unknown>;
  /** Every target of the site (DESIGN §4a); `facts` only when known. */
  targets: SiteTarget[];
  /** Group name → the names of its targets. */
  groups: Record<string, string[]>;
}

/** Renders gathered ahead of `parts(it)`, and where their results go. */
export interface PreparedRender {
  jobs: RenderJob[];
  accept(results: JobResult[], timeout: number): void;
}

/** What a template sees of each target of the site. */
export interface SiteTarget {
  name: string;
  vars: Record<string, unknown>;
  groups: string[];
  roles: string[];
  facts?: Record<string, unknown>;
}

export interface ParamDecl {
  required: boolean;
  default?: unknown;
  pos?: SourcePos;
}

export interface StateDef {
  name: string;
  pos?: SourcePos;
  /** Site-relative file that declares it. */
  file: string;
  /** The component it belongs to; its templates and files resolve there first. */
  component?: string;
  params: Record<string, ParamDecl>;
  lazy: boolean;
  defer: boolean;
  include: { name: string; pos?: SourcePos }[];
  /** `tags:` of the state: every part of its invocations carries them, and so do the parts of states it includes. */
  tags: string[];
  /** The raw part maps for one invocation (positions attached); throws InputError. */
  parts(it: TemplateScope): unknown[];
  /**
   * The renders `parts(it)` will need, to run with other invocations' in one call into the
   * sandbox before it is asked (a call per render would cost a watchdog thread each). Undefined
   * when there is nothing to render, or when `parts(it)` will report an error anyway.
   */
  prepare?(it: TemplateScope): PreparedRender | undefined;
  /**
   * The parts of one invocation as texts, each parsed only when asked (a YAML state file's): see
   * SegmentedParts. Undefined when the rendered text cannot be cut into its parts safely, holds
   * more than `maxParts`, or was parsed whole already: `parts(it)` then gives them. Throws what `parts(it)` would throw for a
   * failed render.
   */
  segments?(it: TemplateScope, maxParts: number): SegmentedParts | undefined;
  /** Declared, but its header is invalid (already reported): known by name, never compiled. */
  broken?: true;
}

/**
 * A rendered parts list cut into its parts' texts (site/segments.ts). Two parts with the same key
 * parse to the same value, positions included, if their state file is the same: the key is the
 * part's rendered text and how that text maps to the template's source.
 */
export interface SegmentedParts {
  /** One per part, in order. */
  keys: string[];
  /**
   * The raw part maps of the parts at `which` (indices into keys, increasing), parsed together,
   * positions as `parts(it)` would give them; undefined when they cannot be parsed apart from
   * the rest of the text (an anchor or alias, a YAML error, an item that is not a map): then
   * `parts(it)` parses the whole text, and reports what is wrong as it always does.
   */
  parse(which: number[]): Record<string, unknown>[] | undefined;
}

/** Stands for the parts list when checking that the text around it reads as a state holding that list. */
const STUB = 'cairn-segment-stub-5e1f';

function brokenState(name: string, file: string, pos: SourcePos | undefined, component: string | undefined): StateDef {
  return {
    name, file, component, pos, params: {}, lazy: false, defer: false, include: [], tags: [], broken: true,
    parts: () => {
      throw new Error(`state '${name}' is invalid and cannot be compiled`);
    },
  };
}

const STATE_KEYS = ['params', 'parts', 'lazy', 'defer', 'include', 'tags'];

interface Header {
  params: Record<string, ParamDecl>;
  lazy: boolean;
  defer: boolean;
  include: { name: string; pos?: SourcePos }[];
  tags: string[];
}

/** Reads the parts-independent header of a state body: list form, or map form with STATE_KEYS. */
function readHeader(name: string, body: unknown, parent: unknown, d: Diagnostics): Header | undefined {
  const header: Header = { params: {}, lazy: false, defer: false, include: [], tags: [] };
  if (Array.isArray(body) || body === null) return header;
  if (typeof body !== 'object') {
    d.add(`state '${name}' must be a list of parts or a map with ${STATE_KEYS.join('/')}`, posOf(parent, name));
    return undefined;
  }
  const map = body as Record<string, unknown>;
  let ok = true;
  for (const key of Object.keys(map)) {
    if (!STATE_KEYS.includes(key)) {
      d.add(`state '${name}': unknown key '${key}'${didYouMean(key, STATE_KEYS)}`, keyPosOf(map, key), {
        hint: `a state is a list of parts, or a map with ${STATE_KEYS.join(', ')}`,
      });
      ok = false;
    }
  }
  for (const flag of ['lazy', 'defer'] as const) {
    if (map[flag] === undefined) continue;
    if (typeof map[flag] !== 'boolean') {
      d.add(`state '${name}': ${flag} must be true or false`, posOf(map, flag));
      ok = false;
    } else header[flag] = map[flag];
  }
  if (header.defer && !header.lazy) {
    d.add(`state '${name}': defer applies to lazy states (handlers); add lazy: true`, posOf(map, 'defer'));
    ok = false;
  }
  const params = map.params;
  if (params !== undefined && params !== null) {
    if (typeof params !== 'object' || Array.isArray(params)) {
      d.add(`state '${name}': params must be a map of name to default (~ for required)`, posOf(map, 'params'));
      ok = false;
    } else {
      for (const [p, def] of Object.entries(params)) {
        header.params[p] = def === null
          ? { required: true, pos: keyPosOf(params, p) }
          : { required: false, default: def, pos: keyPosOf(params, p) };
      }
    }
  }
  const include = map.include;
  if (include !== undefined && include !== null) {
    const list = Array.isArray(include) ? include : [include];
    list.forEach((entry, i) => {
      if (typeof entry !== 'string') {
        d.add(`state '${name}': include lists state names`, Array.isArray(include) ? posOf(include, i) : posOf(map, 'include'));
        ok = false;
      } else header.include.push({ name: entry, pos: Array.isArray(include) ? posOf(include, i) : posOf(map, 'include') });
    });
  }
  const tags = map.tags;
  if (tags !== undefined && tags !== null) {
    const list = Array.isArray(tags) ? tags : [tags];
    list.forEach((entry, i) => {
      if (typeof entry !== 'string' || !TAG_NAME.test(entry)) {
        d.add(`state '${name}': tags lists tag names (letters, digits, '_', '-', '.')`, Array.isArray(tags) ? posOf(tags, i) : posOf(map, 'tags'));
        ok = false;
      } else header.tags.push(entry);
    });
  }
  if (map.parts !== undefined && map.parts !== null && !Array.isArray(map.parts)) {
    d.add(`state '${name}': parts must be a list`, posOf(map, 'parts'));
    ok = false;
  }
  return ok ? header : undefined;
}

function partsOf(body: unknown): unknown[] {
  if (Array.isArray(body)) return body;
  if (body && typeof body === 'object') {
    const parts = (body as Record<string, unknown>).parts;
    return Array.isArray(parts) ? parts : [];
  }
  return [];
}

function asStateMap(doc: unknown, file: string, d: Diagnostics): Record<string, unknown> | undefined {
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    d.add('a state file maps state names to states', posOf(doc) ?? { file, line: 1, col: 1 });
    return undefined;
  }
  return doc as Record<string, unknown>;
}

/**
 * A YAML state file: an Eta template rendered once per invocation. Each state is rendered from its
 * own stretch of the file (plus the text before the first state, where shared template code
 * lives), so one state's parameters never break the rendering of another state in the same file.
 * The other stretches are blanked, not cut, so every offset stays that of the real file.
 */
export function yamlStateFile(text: string, file: string, d: Diagnostics, component?: string): StateDef[] {
  let whole: CompiledTemplate;
  try {
    whole = compileTemplate(text, file);
  } catch (err) {
    if (err instanceof InputError) d.addAll(err.diagnostics);
    else throw err;
    return [];
  }
  /** Positions in a render of `template` (offsets in its output) as positions in the source. */
  const mapperOf = (template: CompiledTemplate, rendered: { sourceOffset(o: number): number }): OffsetMapper => (offset, length) => {
    const start = rendered.sourceOffset(offset);
    const end = rendered.sourceOffset(offset + length);
    return { ...template.pos(start), length: Math.max(1, end - start) };
  };
  const parseRendered = (template: CompiledTemplate, rendered: { text: string; sourceOffset(o: number): number }) =>
    parseYaml(rendered.text, mapperOf(template, rendered));

  const skeleton = d.collect(() => parseRendered(whole, whole.skeleton()));
  const map = asStateMap(skeleton, file, d);
  if (!map) return [];

  const names = Object.keys(map);
  const starts = names.map((name) => whole.lines.lineStart(keyPosOf(map, name)?.line ?? 1));
  const preambleEnd = starts[0] ?? text.length;
  const stretchOf = (i: number): CompiledTemplate => {
    const from = starts[i]!;
    const to = starts[i + 1] ?? text.length;
    const blanked = text.replace(/[^\n]/g, (ch, offset: number) => (offset < preambleEnd || (offset >= from && offset < to) ? ch : ' '));
    return compileTemplate(blanked, file);
  };

  const defs: StateDef[] = [];
  names.forEach((name, i) => {
    const body = map[name];
    const header = readHeader(name, body, map, d);
    const pos = keyPosOf(map, name);
    if (!header) {
      defs.push(brokenState(name, file, pos, component));
      return;
    }
    let template: CompiledTemplate | undefined;
    const renders = new WeakMap<TemplateScope, unknown[]>();
    // A render done (ahead, by prepare, or by segments) and not parsed yet.
    const rendered = new WeakMap<TemplateScope, { t: CompiledTemplate; r: RenderResult }>();
    // A render done ahead (prepare) that failed: reported when its parts are asked for.
    const failures = new WeakMap<TemplateScope, InputError>();
    const renderOf = (it: TemplateScope): { t: CompiledTemplate; r: RenderResult } => {
      const failed = failures.get(it);
      if (failed) throw failed;
      let done = rendered.get(it);
      if (!done) {
        const t = template ??= stretchOf(i);
        done = { t, r: t.render(it) };
        rendered.set(it, done);
      }
      return done;
    };
    const partsFrom = (t: CompiledTemplate, rendered: { text: string; sourceOffset(o: number): number }): unknown[] => {
      const doc = parseRendered(t, rendered) as Record<string, unknown> | null;
      if (!doc || typeof doc !== 'object' || !(name in doc)) {
        throw inputError(`state '${name}' is not in ${file} once rendered with these parameters`, pos,
          'a template condition removed it');
      }
      return partsOf(doc[name]);
    };
    defs.push({
      name, file, component, pos, ...header,
      parts(it) {
        let parts = renders.get(it);
        if (!parts) {
          const { t, r } = renderOf(it);
          parts = partsFrom(t, r);
          renders.set(it, parts);
          rendered.delete(it);
        }
        return parts;
      },
      segments(it, maxParts) {
        if (renders.has(it)) return undefined;
        const { t, r } = renderOf(it);
        return segmentsOf(name, r, mapperOf(t, r), maxParts);
      },
      prepare(it) {
        if (renders.has(it) || rendered.has(it) || failures.has(it)) return undefined;
        let job: RenderJob;
        let t: CompiledTemplate;
        try {
          t = template ??= stretchOf(i);
          if (t.isStatic) return undefined;
          job = t.job(it);
        } catch (err) {
          if (err instanceof InputError) return undefined;
          throw err;
        }
        return {
          jobs: [job],
          accept([result], timeout) {
            try {
              rendered.set(it, { t, r: t.finish(result!, timeout) });
            } catch (err) {
              if (err instanceof InputError) failures.set(it, err);
              else throw err;
            }
          },
        };
      },
    });
  });
  return defs;
}

/**
 * The parts of state `name` in a render, cut apart (site/segments.ts) when the text around the
 * cut list, with one stand-in item for it, reads as a state holding exactly that item: then the
 * list is the state's parts, and what precedes and follows it is the same whatever the items.
 */
function segmentsOf(name: string, rendered: RenderResult, toPos: OffsetMapper, maxParts: number): SegmentedParts | undefined {
  const { text } = rendered;
  const cuts = cutItems(text);
  if (!cuts || cuts.starts.length > maxParts || text.includes(STUB)) return undefined;
  const { starts, end } = cuts;
  const indent = ' '.repeat(cuts.indent);
  try {
    const doc = parseYaml(`${text.slice(0, starts[0])}${indent}- ${STUB}\n${text.slice(end)}`, () => ({ file: '', line: 1, col: 1 }));
    if (!doc || typeof doc !== 'object' || !(name in doc)) return undefined;
    const list = partsOf((doc as Record<string, unknown>)[name]);
    if (list.length !== 1 || list[0] !== STUB) return undefined;
  } catch (err) {
    if (err instanceof InputError) return undefined;
    throw err;
  }
  const endOf = (k: number) => starts[k + 1] ?? end;
  const keys = starts.map((from, k) => `${text.slice(from, endOf(k))}\u0000${rendered.signature(from, endOf(k))}`);
  return {
    keys,
    parse(which) {
      // The chosen items' texts one after another: a list like the whole one, read in one go.
      // Each offset of it maps back to the render through the item it falls in.
      let joined = '';
      const at: { joined: number; from: number }[] = [];
      for (const k of which) {
        at.push({ joined: joined.length, from: starts[k]! });
        joined += text.slice(starts[k], endOf(k));
      }
      const mapper: OffsetMapper = (offset, length) => {
        let lo = 0;
        let hi = at.length - 1;
        while (lo < hi) {
          const mid = (lo + hi + 1) >> 1;
          if (at[mid]!.joined <= offset) lo = mid;
          else hi = mid - 1;
        }
        return toPos(at[lo]!.from + offset - at[lo]!.joined, length);
      };
      const seen = { anchors: false };
      let items: unknown;
      try {
        items = parseYaml(joined, mapper, 'YAML', seen);
      } catch (err) {
        if (err instanceof InputError) return undefined;
        throw err;
      }
      if (seen.anchors || !Array.isArray(items) || items.length !== which.length) return undefined;
      if (!items.every((item) => item !== null && typeof item === 'object' && !Array.isArray(item))) return undefined;
      return items as Record<string, unknown>[];
    },
  };
}

/** A JSON state file: plain data, no templating. */
export function jsonStateFile(text: string, file: string, d: Diagnostics, component?: string): StateDef[] {
  const lines = new LineIndex(text);
  const doc = d.collect(() => parseYaml(text, (offset, length) => ({ file, ...lines.lineCol(offset), length }), 'JSON'));
  const map = asStateMap(doc, file, d);
  if (!map) return [];
  return plainStates(map, file, d, component, false);
}

/** States written inline in a YAML document (cairn.yaml, component.yaml): each string is a template. */
export function inlineStates(map: Record<string, unknown>, file: string, d: Diagnostics, component?: string): StateDef[] {
  return plainStates(map, file, d, component, true);
}

function plainStates(map: Record<string, unknown>, file: string, d: Diagnostics, component: string | undefined, templated: boolean): StateDef[] {
  const defs: StateDef[] = [];
  for (const [name, body] of Object.entries(map)) {
    const header = readHeader(name, body, map, d);
    if (!header) {
      defs.push(brokenState(name, file, keyPosOf(map, name), component));
      continue;
    }
    const rawParts = partsOf(body);
    const compiled = new Map<string, CompiledTemplate>();
    // Every string is its own template: report all their errors, not just the first. They render
    // together, in one call into the sandbox: first gather them, then read them back.
    const gather = (it: TemplateScope, errors: Diagnostics) => {
      const jobs: RenderJob[] = [];
      mapStrings(rawParts, (s, pos) => errors.collect(() => {
        const cacheKey = `${pos?.line}:${pos?.col}:${s}`;
        let t = compiled.get(cacheKey);
        if (!t) {
          t = compileTemplate(s, file, pos);
          compiled.set(cacheKey, t);
        }
        if (!t.isStatic) jobs.push(t.job(it));
      }));
      return jobs;
    };
    const assemble = (results: JobResult[], timeout: number): unknown[] => {
      const errors = new Diagnostics();
      let next = 0;
      const parts = mapStrings(rawParts, (s, pos) => errors.collect(() => {
        const t = compiled.get(`${pos?.line}:${pos?.col}:${s}`)!;
        return t.isStatic ? s : t.finish(results[next++]!, timeout).text;
      })) as unknown[];
      errors.throwIfAny();
      return parts;
    };
    const prepared = new WeakMap<TemplateScope, { results: JobResult[]; timeout: number }>();
    defs.push({
      name, file, component, pos: keyPosOf(map, name), ...header,
      parts(it) {
        if (!templated) return rawParts;
        const ahead = prepared.get(it);
        if (ahead) {
          prepared.delete(it);
          return assemble(ahead.results, ahead.timeout);
        }
        const errors = new Diagnostics();
        const jobs = gather(it, errors);
        errors.throwIfAny();
        const box = sandboxOf(it);
        return assemble(jobs.length ? box.render(jobs) : [], box.timeout);
      },
      prepare(it) {
        if (!templated || prepared.has(it)) return undefined;
        const errors = new Diagnostics();
        const jobs = gather(it, errors);
        if (!errors.empty || jobs.length === 0) return undefined;
        return { jobs, accept: (results, timeout) => prepared.set(it, { results, timeout }) };
      },
    });
  }
  return defs;
}
