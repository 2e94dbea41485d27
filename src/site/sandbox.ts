/**
 * Where templates run: a V8 context of their own (DESIGN §4; issue 27), so that a template is a
 * pure, bounded function of its inputs and cannot reach the machine Cairn runs on.
 *
 * Why each piece:
 * - A separate realm with string code generation and wasm off: `Function`, `eval` and every
 *   constructor reachable from template code are the context's own, and refuse to compile strings.
 * - Only strings cross between the realms. Inputs are serialised here and parsed inside the
 *   context (then frozen: templates read their inputs, never change them); results come back as
 *   one JSON string. An object of Cairn's realm inside the context would hand out Cairn's own
 *   `Function` (through `.constructor`), which can compile anything. Nor is any function of
 *   Cairn's passed in: `it.targets` is provided by rendering again when a template asks for it.
 * - A time limit on every call into the context (vm's `timeout`), and nothing that runs after a
 *   call returns: no `Promise` (and `async` refused when the template compiles), no timers, no
 *   `WeakRef`/`FinalizationRegistry` callbacks, no `Atomics`; microtasks, should any exist, run
 *   inside the call.
 * - No clock, randomness, time zone or machine locale: `Date` and `Intl` are absent (reading
 *   them is an error that says why), `Math.random` is an error, and the locale-sensitive methods
 *   (`toLocaleString`, `localeCompare`, …) use `en-US` unless given a locale. Output then depends on
 *   the inputs alone, which is what lets the compile cache reuse it.
 * - `Error.stackTraceLimit` 0: a stack would show Cairn's install path, and positions come from
 *   the template's own bookkeeping, not from stacks.
 * - Each render says which names of `it.vars`, `it.facts`, `it.os` and `it.target` it read (or
 *   that it looked at all of one, by listing its keys): those come to the template as proxies of
 *   the frozen copies, whose handlers live where template code cannot reach them. The incremental
 *   compile (catalog/compile.ts) reuses an invocation none of whose reads changed.
 *
 * One sandbox serves one compile (one target): inputs shared by its renders are copied once.
 */
import vm from 'node:vm';
import { types } from 'node:util';
import { inputError } from '../lib/errors.ts';

/** Seconds a template render may take unless cairn.yaml's `timeout` says otherwise. */
export const DEFAULT_TEMPLATE_TIMEOUT = 5;

/** Runs once in each new context, before any template code, and leaves `__cairn` behind. */
const BOOTSTRAP = String.raw`(function () {
'use strict';
const G = globalThis;
const { defineProperty, freeze, keys, hasOwn } = Object;
const isArray = Array.isArray;
const apply = Reflect.apply;
const parse = JSON.parse;
const stringify = JSON.stringify;
const ErrorCtor = Error;
const StringCtor = String;
const split = String.prototype.split;
const slice = String.prototype.slice;
const ProxyCtor = Proxy;
const reflectGet = Reflect.get;
const ownKeys = Reflect.ownKeys;
const descriptorOf = Reflect.getOwnPropertyDescriptor;
// The real clock, for the batch's own bookkeeping only (templates get none): taken before Date goes.
const clock = Date.now;

// ECMAScript's own globals, less those that outlive a call (Promise, WeakRef, FinalizationRegistry,
// Atomics, SharedArrayBuffer), compile (WebAssembly) or talk to the host (console). Anything
// else goes too: V8 flags add globals to new contexts (lib/memory.ts turns on gc()).
const KEPT = new Set(['Object', 'Function', 'Array', 'Number', 'parseFloat', 'parseInt', 'Infinity', 'NaN', 'undefined',
  'Boolean', 'String', 'Symbol', 'RegExp', 'Error', 'AggregateError', 'EvalError', 'RangeError', 'ReferenceError',
  'SyntaxError', 'TypeError', 'URIError', 'globalThis', 'JSON', 'Math', 'ArrayBuffer', 'Uint8Array', 'Int8Array',
  'Uint16Array', 'Int16Array', 'Uint32Array', 'Int32Array', 'Float32Array', 'Float64Array', 'Uint8ClampedArray',
  'BigUint64Array', 'BigInt64Array', 'DataView', 'Map', 'BigInt', 'Set', 'WeakMap', 'WeakSet', 'Proxy', 'Reflect',
  'decodeURI', 'decodeURIComponent', 'encodeURI', 'encodeURIComponent', 'escape', 'unescape', 'eval', 'isFinite',
  'isNaN', 'Iterator']);
for (const name of Object.getOwnPropertyNames(G)) {
  if (KEPT.has(name) || Reflect.deleteProperty(G, name)) continue;
  // One V8 made undeletable (gc): emptied instead.
  defineProperty(G, name, { value: undefined, writable: false });
}
const refuse = (name, why) => defineProperty(G, name, {
  get() { throw new ErrorCtor(name + ' is not available in templates: ' + why); },
  configurable: false,
});
refuse('Date', 'a template has no clock, so that it renders the same on every run and every machine (pass a date in a variable)');
refuse('Intl', 'it depends on the machine\'s time zone and locale');
defineProperty(Math, 'random', {
  value: function random() {
    throw new ErrorCtor('Math.random is not available in templates: a template renders the same on every run (derive a value from a variable, e.g. the target\'s name)');
  },
  writable: false, configurable: false,
});
const pinLocale = (proto, name, localesAt) => {
  const original = proto[name];
  defineProperty(proto, name, {
    value: { [name](...args) {
      if (args[localesAt] === undefined) args[localesAt] = 'en-US';
      return apply(original, this, args);
    } }[name],
    writable: true, configurable: true,
  });
};
pinLocale(Number.prototype, 'toLocaleString', 0);
pinLocale(BigInt.prototype, 'toLocaleString', 0);
pinLocale(String.prototype, 'localeCompare', 1);
pinLocale(String.prototype, 'toLocaleUpperCase', 0);
pinLocale(String.prototype, 'toLocaleLowerCase', 0);
defineProperty(ErrorCtor, 'stackTraceLimit', { value: 0, writable: false, configurable: false });
defineProperty(ErrorCtor, 'prepareStackTrace', { value: undefined, writable: false, configurable: false });
defineProperty(G, '__cairnIn', { value: '', writable: true, configurable: false });
defineProperty(G, '__cairnFn', { value: undefined, writable: true, configurable: false });

const templates = [];
const values = [];
// A value tag that renders undefined: reported by Cairn with its hint.
const undefinedAt = new WeakMap();
// Thrown by it.targets / it.groups when Cairn did not supply them: Cairn renders again with them.
const needSiteTargets = freeze({});
let siteTargetsWanted = false;
let current = { job: -1, at: { piece: -1 } };

const special = (v) => {
  const tag = v['\u0000'];
  if (tag === 'undefined') return undefined;
  if (tag === 'bigint') return BigInt(v.v);
  if (tag === '-0') return -0;
  return +tag;
};
// Parsed in place, frozen bottom-up; with marks, the encoding of what JSON cannot hold undone.
const revive = (v, marked) => {
  if (typeof v !== 'object' || v === null) return v;
  if (isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = revive(v[i], marked);
    return freeze(v);
  }
  if (marked) {
    if (hasOwn(v, '\u0000')) return special(v);
    const names = keys(v);
    let escaped = false;
    for (const k of names) if (k[0] === '\u0000') escaped = true;
    if (escaped) {
      const o = {};
      for (const k of names) {
        defineProperty(o, k[0] === '\u0000' ? apply(slice, k, [1]) : k, { value: revive(v[k], marked), enumerable: true });
      }
      return freeze(o);
    }
  }
  for (const k of keys(v)) v[k] = revive(v[k], marked);
  return freeze(v);
};

const str = (value, piece) => {
  if (value === undefined) {
    const marker = freeze({});
    undefinedAt.set(marker, piece);
    throw marker;
  }
  if (value === null) return '';
  if (typeof value === 'object') return stringify(value);
  return StringCtor(value);
};

const describe = (e) => {
  try {
    if (e instanceof ErrorCtor) {
      const message = e.message;
      return typeof message === 'string' ? message : 'an error without a message';
    }
    if (typeof e === 'string') return 'threw ' + stringify(e) + ', not an Error';
    if (e === null || (typeof e !== 'object' && typeof e !== 'function')) return 'threw ' + StringCtor(e) + ', not an Error';
    return 'threw a value that is not an Error';
  } catch {
    return 'threw a value that cannot be shown';
  }
};

// What a render read of the tracked inputs: a set of names each, or '*' when it listed the keys.
const TRACKED = { vars: 1, facts: 1, os: 1, target: 1 };
const note = (reads, name, key) => {
  if (reads[name] === '*' || typeof key !== 'string') return;
  if (!reads[name]) reads[name] = {};
  reads[name][key] = 1;
};
const watched = (value, name, reads) => {
  if (typeof value !== 'object' || value === null) return value;
  return new ProxyCtor(value, freeze({
    get(t, k, r) { note(reads, name, k); return apply(reflectGet, undefined, [t, k, r]); },
    has(t, k) { note(reads, name, k); return k in t; },
    getOwnPropertyDescriptor(t, k) { note(reads, name, k); return apply(descriptorOf, undefined, [t, k]); },
    ownKeys(t) { reads[name] = '*'; return apply(ownKeys, undefined, [t]); },
  }));
};
const readsOut = (reads) => {
  const out = {};
  for (const name of keys(reads)) out[name] = reads[name] === '*' ? '*' : keys(reads[name]);
  return out;
};

const scopeOf = (job, reads) => {
  const it = {};
  for (const k of keys(job.it)) it[k] = hasOwn(TRACKED, k) ? watched(values[job.it[k]], k, reads) : values[job.it[k]];
  for (const k of ['targets', 'groups']) {
    if (job.site) it[k] = values[job.site[k]];
    else if (job.lazy) defineProperty(it, k, { get() { siteTargetsWanted = true; throw needSiteTargets; }, enumerable: false });
  }
  return freeze(it);
};

const renderOne = (job, index) => {
  const out = { text: '', marks: [] };
  const at = { piece: -1 };
  current = { job: index, at };
  siteTargetsWanted = false;
  const reads = {};
  try {
    templates[job.t](scopeOf(job, reads), out, at, str);
  } catch (e) {
    if (siteTargetsWanted) return { need: 'site' };
    if (undefinedAt.has(e)) return { undefined: undefinedAt.get(e) };
    return { error: describe(e), piece: at.piece };
  }
  if (siteTargetsWanted) return { need: 'site' };
  return { text: out.text, marks: out.marks, reads: readsOut(reads) };
};

const api = freeze({
  define() {
    const fn = G.__cairnFn;
    G.__cairnFn = undefined;
    if (typeof fn !== 'function') return -1;
    templates[templates.length] = fn;
    return templates.length - 1;
  },
  run() {
    const pieces = apply(split, G.__cairnIn, ['\u0000']);
    const message = parse(pieces[0]);
    for (let i = 0; i < message.add.length; i++) {
      const [id, marked] = message.add[i];
      values[id] = revive(parse(pieces[i + 1]), marked);
    }
    const results = [];
    // A job starts only while the call is within its batch budget, so that each has the whole
    // time limit to itself; the rest, and output past the size budget, go in the next call.
    const started = clock();
    let size = 0;
    for (let i = 0; i < message.jobs.length; i++) {
      if (i > 0 && (clock() - started > message.budgetMs || size > message.budgetBytes)) break;
      const r = renderOne(message.jobs[i], i);
      results[i] = r;
      if (r.need) break;
      if (typeof r.text === 'string') size += r.text.length;
    }
    return stringify(results);
  },
  where() {
    return stringify([current.job, current.at.piece]);
  },
});
defineProperty(G, '__cairn', { value: api, writable: false, configurable: false });
})();`;

/**
 * A batch of renders goes on starting jobs for this long (ms), and so its call may last the time
 * limit plus this: every job starts with the whole limit ahead of it. One call per render would
 * cost a watchdog thread each (about 0.15 ms), which 10,000 invocations would feel.
 */
const BATCH_MS = 200;
/** …and while the text rendered so far is under this many characters (a batch's output is held at once). */
const BATCH_BYTES = 8 * 1024 * 1024;

const RUN = new vm.Script('__cairn.run()', { filename: 'cairn-sandbox' });
const DEFINE = new vm.Script('__cairn.define()', { filename: 'cairn-sandbox' });
const WHERE = new vm.Script('__cairn.where()', { filename: 'cairn-sandbox' });

/** One render asked of the sandbox. */
export interface RenderJob {
  /** The template's `(function (it, out, at, __str) { … })` script. */
  script: vm.Script;
  it: unknown;
}

/** Which names of each tracked input (`vars`, `facts`, `os`, `target`) a render read; '*': all of them. */
export type InputReads = Record<string, string[] | '*'>;

export type JobResult =
  | { text: string; marks: number[]; reads?: InputReads }
  | { undefined: number }
  | { error: string; piece: number }
  | { timeout: true; piece: number };

/** Encodes a value as JSON; what JSON cannot hold (NaN, ±Infinity, -0, undefined, bigint) becomes a marked object. */
function encode(value: unknown): { text: string; marked: boolean } {
  let marked = false;
  const text = JSON.stringify(value, function replace(this: unknown, _key: string, v: unknown): unknown {
    switch (typeof v) {
      case 'number':
        if (Number.isFinite(v) && !Object.is(v, -0)) return v;
        marked = true;
        return { '\u0000': Object.is(v, -0) ? '-0' : String(v) };
      case 'bigint':
        marked = true;
        return { '\u0000': 'bigint', v: String(v) };
      case 'undefined':
      case 'function':
      case 'symbol':
        marked = true;
        return { '\u0000': 'undefined' };
      case 'object':
        if (v !== null && !Array.isArray(v)) {
          for (const k in v) {
            if (k.startsWith('\u0000')) {
              marked = true;
              return Object.fromEntries(Object.entries(v).map(([key, inner]) => [key.startsWith('\u0000') ? `\u0000${key}` : key, inner]));
            }
          }
        }
        return v;
      default:
        return v;
    }
  });
  return { text, marked };
}

const LAZY_KEYS = ['targets', 'groups'] as const;

export class TemplateSandbox {
  private context?: vm.Context;
  private readonly timeoutMs: number;
  private templateIds = new WeakMap<vm.Script, number>();
  private valueIds = new WeakMap<object, number>();
  private siteIds = new WeakMap<object, Record<(typeof LAZY_KEYS)[number], number>>();
  private nextValue = 0;
  /** What the renders with each scope read, merged (readsOf). */
  private readonly reads = new WeakMap<object, Map<string, Set<string> | '*'>>();

  /**
   * What the renders made with `scope` (a job's `it`) have read so far of each tracked input:
   * the names, or '*' for all. Undefined when none was rendered with it.
   */
  readsOf(scope: object): ReadonlyMap<string, ReadonlySet<string> | '*'> | undefined {
    return this.reads.get(scope);
  }

  private noteReads(scope: unknown, reads: InputReads | undefined): void {
    if (!reads || typeof scope !== 'object' || scope === null) return;
    let seen = this.reads.get(scope);
    if (!seen) this.reads.set(scope, (seen = new Map()));
    for (const [name, keys] of Object.entries(reads)) {
      const have = seen.get(name);
      if (have === '*') continue;
      if (keys === '*') seen.set(name, '*');
      else if (have) for (const k of keys) have.add(k);
      else seen.set(name, new Set(keys));
    }
  }

  /** `timeout` in seconds. */
  constructor(readonly timeout = DEFAULT_TEMPLATE_TIMEOUT) {
    this.timeoutMs = Math.max(1, Math.round(timeout * 1000));
  }

  private ctx(): vm.Context {
    if (!this.context) {
      // The contextified object must have no prototype: Node looks global names up along its
      // chain, which would hand templates Cairn's own Object.prototype (`globalThis.constructor`
      // is then Cairn's Object, whose constructor compiles strings).
      this.context = vm.createContext(Object.create(null) as object, {
        name: 'cairn-templates',
        codeGeneration: { strings: false, wasm: false },
        microtaskMode: 'afterEvaluate',
      });
      vm.runInContext(BOOTSTRAP, this.context, { filename: 'cairn-sandbox' });
    }
    return this.context;
  }

  /** After a render ran out of time the context may hold half a copy: the next render starts afresh. */
  private reset(): void {
    this.context = undefined;
    this.templateIds = new WeakMap();
    this.valueIds = new WeakMap();
    this.siteIds = new WeakMap();
    this.nextValue = 0;
  }

  private templateId(script: vm.Script): number {
    let id = this.templateIds.get(script);
    if (id === undefined) {
      // Evaluating runs no template code (it makes the function, which Cairn hands back to the
      // context untouched): the limits are only guards.
      const ctx = this.ctx();
      (ctx as Record<string, unknown>).__cairnFn = script.runInContext(ctx, { timeout: this.timeoutMs });
      const result: unknown = DEFINE.runInContext(ctx, { timeout: this.timeoutMs });
      if (typeof result !== 'number' || result < 0) throw new Error('the template sandbox did not register a template');
      id = result;
      this.templateIds.set(script, id);
    }
    return id;
  }

  private valueId(value: unknown, add: [number, boolean][], texts: string[]): number {
    const cacheable = typeof value === 'object' && value !== null;
    const known = cacheable ? this.valueIds.get(value) : undefined;
    if (known !== undefined) return known;
    let encoded;
    try {
      encoded = encode(value);
    } catch (err) {
      // A YAML alias that contains itself; anything else would be Cairn's own value and a bug.
      if (err instanceof TypeError && /circular/i.test(err.message)) throw inputError('a template input refers to itself (a YAML alias inside its own anchor)');
      throw err;
    }
    const id = this.nextValue++;
    add.push([id, encoded.marked]);
    texts.push(encoded.text);
    if (cacheable) this.valueIds.set(value, id);
    return id;
  }

  /**
   * Renders every job in one call into the context, within one time limit (the strings of an
   * inline state render together, as a state file's state is one render). A job whose template read `it.targets` or
   * `it.groups` before they were supplied is rendered again with them (reading them on the host
   * side is what tells the compile cache that the run depends on other targets' data).
   */
  render(jobs: RenderJob[]): JobResult[] {
    const results: JobResult[] = new Array<JobResult>(jobs.length);
    let pending = jobs.map((_, i) => i);
    let add: [number, boolean][] = [];
    let texts: string[] = [];
    while (pending.length) {
      const message = pending.map((i) => {
        const scope = jobs[i]!.it as Record<string, unknown>;
        const own: Record<string, number> = {};
        for (const k of Object.keys(scope)) own[k] = this.valueId(scope[k], add, texts);
        const lazy = LAZY_KEYS.some((k) => k in scope && !Object.prototype.propertyIsEnumerable.call(scope, k));
        const site = lazy ? this.siteIds.get(Object.getPrototypeOf(scope) as object) : undefined;
        return { t: this.templateId(jobs[i]!.script), it: own, lazy, ...(site ? { site } : {}) };
      });
      const batch = { jobs: message, add, budgetMs: BATCH_MS, budgetBytes: BATCH_BYTES };
      const raw = this.call([JSON.stringify(batch), ...texts].join('\u0000'), pending.length > 1 ? this.timeoutMs + BATCH_MS : this.timeoutMs);
      add = [];
      texts = [];
      if (raw === undefined) {
        const [job, piece] = this.where();
        this.reset();
        const culprit = pending[job];
        if (culprit === undefined) {
          for (const i of pending) results[i] = { timeout: true, piece: -1 };
          break;
        }
        results[culprit] = { timeout: true, piece };
        // The call stopped inside one job: the others of the batch are rendered on their own.
        for (const i of pending) if (i !== culprit) results[i] = this.render([jobs[i]!])[0]!;
        break;
      }
      const done = raw as unknown[];
      // Jobs past the batch's budget did not start: they go in the next call. A job that asked
      // for it.targets ended the batch; it starts the next call, so jobs always run in order.
      let next = done.length;
      pending.slice(0, done.length).forEach((i, k) => {
        const r = done[k] as { need?: string } | undefined;
        if (r?.need !== 'site') {
          const result = checked(r);
          if ('text' in result) this.noteReads(jobs[i]!.it, result.reads);
          results[i] = result;
          return;
        }
        const scope = jobs[i]!.it as Record<string, unknown>;
        const holder = Object.getPrototypeOf(scope) as object;
        if (!this.siteIds.has(holder)) {
          const ids = { targets: -1, groups: -1 };
          // The copies go with the next call.
          for (const key of LAZY_KEYS) ids[key] = this.valueId(scope[key], add, texts);
          this.siteIds.set(holder, ids);
        }
        next = k;
      });
      pending = pending.slice(next);
    }
    return results;
  }

  /** Calls into the context with the time limit; undefined when the limit ran out. */
  private call(input: string, timeoutMs: number): unknown {
    const ctx = this.ctx();
    (ctx as Record<string, unknown>).__cairnIn = input;
    try {
      const out: unknown = RUN.runInContext(ctx, { timeout: timeoutMs });
      if (typeof out !== 'string') throw new Error('the template sandbox returned something other than a string');
      const parsed: unknown = JSON.parse(out);
      if (!Array.isArray(parsed)) throw new Error('the template sandbox returned something other than a list');
      return parsed;
    } catch (err) {
      if (isTimeout(err)) return undefined;
      throw err;
    } finally {
      (ctx as Record<string, unknown>).__cairnIn = '';
    }
  }

  private where(): [number, number] {
    try {
      const out: unknown = WHERE.runInContext(this.ctx(), { timeout: this.timeoutMs });
      const parsed = typeof out === 'string' ? JSON.parse(out) as unknown : undefined;
      if (Array.isArray(parsed) && parsed.length === 2 && parsed.every((n) => Number.isInteger(n))) return parsed as [number, number];
    } catch (err) {
      if (!isTimeout(err)) throw err;
    }
    return [0, -1];
  }
}

/**
 * The error vm throws when the limit runs out. Node makes it in the context's realm: it is read
 * through its own data property only, which runs none of the context's code.
 */
function isTimeout(err: unknown): boolean {
  if (!types.isNativeError(err) || types.isProxy(err)) return false;
  const code = Object.getOwnPropertyDescriptor(err, 'code');
  return code !== undefined && 'value' in code && code.value === 'ERR_SCRIPT_EXECUTION_TIMEOUT';
}

/** A template's code can reach `out` and `at`: what it left there is checked, not trusted. */
function checked(r: unknown): JobResult {
  const o = (r ?? {}) as Record<string, unknown>;
  if (typeof o.text === 'string' && Array.isArray(o.marks) && o.marks.every((n) => Number.isInteger(n))) {
    // Reads come from the sandbox's own bookkeeping; anything else there means every input was read.
    return { text: o.text, marks: o.marks as number[], reads: checkedReads(o.reads) };
  }
  if (Number.isInteger(o.undefined)) return { undefined: o.undefined as number };
  if (typeof o.error === 'string') return { error: o.error, piece: Number.isInteger(o.piece) ? o.piece as number : -1 };
  return { error: 'the template changed the output Cairn was collecting', piece: -1 };
}

function checkedReads(reads: unknown): InputReads {
  const all: InputReads = { vars: '*', facts: '*', os: '*', target: '*' };
  if (typeof reads !== 'object' || reads === null || Array.isArray(reads)) return all;
  const out: InputReads = {};
  for (const [name, keys] of Object.entries(reads)) {
    if (!(name in all)) continue;
    out[name] = keys === '*' || (Array.isArray(keys) && keys.every((k) => typeof k === 'string')) ? keys as string[] | '*' : '*';
  }
  return out;
}

/** Where a compile keeps its sandbox: on the template scope (`it`), out of templates' sight. */
export const SANDBOX = Symbol('cairn.templateSandbox');

/** The sandbox of a compile's scope; a scope made elsewhere (a direct render) gets one of its own. */
export function sandboxOf(it: unknown): TemplateSandbox {
  const found = it && typeof it === 'object' ? (it as Record<symbol, unknown>)[SANDBOX] : undefined;
  return found instanceof TemplateSandbox ? found : new TemplateSandbox();
}
