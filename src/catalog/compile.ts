/**
 * compile(catalog, target, facts) → StateRun (DESIGN §2): the run list in order, every invocation's
 * parts rendered and validated, identical invocations once, notified handlers added. Pure apart
 * from reading site files (templates, sources) that the catalog points at.
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { canonicalJson } from '../lib/canonical-json.ts';
import { didYouMean } from '../lib/did-you-mean.ts';
import { sha256Hex } from '../lib/digest.ts';
import { Diagnostics, inputError, type SourcePos } from '../lib/errors.ts';
import { pushTo } from '../lib/multimap.ts';
import { keyPosOf, posOf } from '../lib/positions.ts';
import type { ResolveContext } from '../resources/type.ts';
import { SiteFiles } from '../site/site-files.ts';
import type { SiteTarget, StateDef, TemplateScope } from '../site/states.ts';
import { SANDBOX, TemplateSandbox } from '../site/sandbox.ts';
import { compileTemplate, type CompiledTemplate } from '../site/template.ts';
import { builtinOsTables } from './builtin-os.ts';
import { groupsOf, type Catalog, type RunEntry, type Target } from './catalog.ts';
import { parsePart } from './part.ts';
import { revealSecrets } from './secrets.ts';
import { SecretValue } from '../lib/secret-value.ts';
import { DEFAULT_STATE_DIR, type PartInvocation, type StateInvocation, type StateRun } from './staterun.ts';
import { mergeAll } from './vars.ts';

export interface CompileOptions {
  facts?: Record<string, unknown>;
  cliVars?: Record<string, unknown>;
  /** Called after each state's parts are rendered and parsed, when that text's parse is garbage (the CLI frees memory there). */
  afterState?: () => void;
  /**
   * Receives the plaintext of every `!secret` the target's vars use (catalog/secrets.ts must have
   * opened them): a caller that keeps compiled runs must not keep one that used any.
   */
  secrets?: Set<string>;
  /**
   * The facts known of the site's targets (`it.targets[].facts`): gathered by the caller, so
   * compiling stays a function of its inputs. A target missing here has no facts in templates.
   */
  targetFacts?: Record<string, Record<string, unknown>>;
  /** Called when a template first reads `it.targets` or `it.groups`: the compile then depends on targetFacts. */
  onSiteTargetsRead?: () => void;
  /**
   * Records of an earlier compile of this target (InvocationRecord): an invocation whose state
   * file, site files and every input it read are unchanged takes its parts from there instead of
   * being rendered and parsed again. Ignored when the target's vars hold a secret.
   */
  previous?: InvocationRecords;
  /**
   * Filled with this compile's records, by invocation identity. Left empty when a render read
   * `it.targets`/`it.groups` or a secret was used: such a compile is never reused.
   */
  records?: InvocationRecords;
  /** Counts the invocations compiled afresh and those reused from `previous`. */
  stats?: { compiled: number; reused: number };
  /** Of the parts of invocations compiled afresh: those parsed, and those reused from `previous` (InvocationRecord.segments). */
  partStats?: { parsed: number; reused: number };
}

/**
 * One invocation's parts and what they were made from, for the incremental compile: the next
 * compile of the target reuses the parts when all of it is the same.
 */
export interface InvocationRecord {
  /** Stamp of the file declaring the state: size, inode, modification and change times. */
  file: string;
  /** For `vars`, `facts`, `os` and `target`: each name read → its value (exactJson); WHOLE → the whole input's. */
  reads: Record<string, Record<string, string>>;
  /** Site files the parts were made from (templates, sources): path → stamp (as `file`), '' for a candidate that did not exist. */
  files: Record<string, string>;
  /** The parts as parsed (JSON), before tags are inherited. */
  parts: string;
  /**
   * The key of each part (SegmentedParts.keys; '' for one that must be made again each time: it
   * read a `source`, or holds a `!secret`) and the state file they are positions in: the next
   * compile of the invocation, whatever else changed, takes from `parts` each part whose key it
   * renders again, when the state file is the same. A part rendered from a template file
   * (`template:`) has its `deps` by its index: it is taken only while they hold.
   */
  segments?: { file: string; keys: string[]; deps?: Record<string, PartDeps> };
}

/**
 * What a part made from a template file read besides its own text: the template file (and the
 * candidates before it that did not exist), as stamps, and what its render read of the inputs.
 */
export interface PartDeps {
  files: Record<string, string>;
  reads: Record<string, Record<string, string>>;
}

/** Invocation identity (state and parameters) → its record. */
export type InvocationRecords = Record<string, InvocationRecord>;

/**
 * An invocation of more parts than this keeps no record: its copy as JSON would weigh on every
 * compile's memory (a generated state of 100,000 files), for a reuse that the whole-run compile
 * cache gives it anyway when nothing changed.
 */
const RECORD_MAX_PARTS = 5000;

/** Whether a parsed value holds a `!secret` anywhere. */
function holdsSecret(value: unknown): boolean {
  if (value instanceof SecretValue) return true;
  if (value === null || typeof value !== 'object') return false;
  return Object.values(value).some(holdsSecret);
}

/** The key of a record's reads that stands for all of an input (its keys were listed). */
const WHOLE = '\u0000*';

/** What bySegments made of an invocation: each part's key, and the deps of those made from a template file, by index. */
interface Segmented {
  keys: string[];
  deps: Record<string, PartDeps>;
}

/** A part of an earlier compile that may stand in for one rendered with the same key. */
interface EarlierPart {
  part: PartInvocation;
  deps?: PartDeps;
}

/** Told by a resolve of the site files it reads (with their stamps) and of the scopes it renders templates with. */
interface ResolveNotes {
  file(abs: string, stamp: string): void;
  scope(scope: TemplateScope): void;
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return isPlainRecord(value) && Object.values(value).every((v) => typeof v === 'string');
}

/** A record's deps as written (a damaged cache may hold anything). */
function isPartDeps(value: unknown): value is PartDeps {
  return isPlainRecord(value) && isStringRecord(value.files) && isPlainRecord(value.reads) && Object.values(value.reads).every(isStringRecord);
}

/** JSON that tells apart what canonicalJson does not (undefined, NaN, ±Infinity, -0, bigint): two inputs are the same exactly when theirs are. */
function exactJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'number' && (!Number.isFinite(v) || Object.is(v, -0))) return { '\u0000n': Object.is(v, -0) ? '-0' : String(v) };
    if (typeof v === 'bigint') return { '\u0000b': String(v) };
    if (v === undefined) return { '\u0000u': 1 };
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

/** Roles in order: those of the target's groups (in group order), then the target's own. */
function rolesOf(c: Catalog, target: Target) {
  const seen = new Set<string>();
  const out = [];
  for (const ref of [...groupsOf(c, target).flatMap((g) => g.roles), ...target.roles]) {
    const role = c.roles.get(ref.name);
    if (role && !seen.has(role.name)) {
      seen.add(role.name);
      out.push(role);
    }
  }
  return out;
}

export function runListOf(c: Catalog, target: Target): RunEntry[] {
  return [
    ...rolesOf(c, target).flatMap((r) => r.run),
    ...groupsOf(c, target).flatMap((g) => g.run),
    ...target.run,
  ];
}

/** Components whose states the run reaches (through the run list and includes). */
function componentsUsed(c: Catalog, run: RunEntry[]): string[] {
  const used = new Set<string>();
  const visit = (name: string, seen: Set<string>) => {
    const def = c.states.get(name);
    if (!def || seen.has(name)) return;
    seen.add(name);
    if (def.component) used.add(def.component);
    for (const inc of def.include) visit(inc.name, seen);
  };
  for (const entry of run) visit(entry.state, new Set());
  return [...c.components.keys()].filter((k) => used.has(k));
}

export function targetVars(c: Catalog, target: Target, cliVars: Record<string, unknown> = {}): Record<string, unknown> {
  const groups = groupsOf(c, target);
  const targetFile = c.targetVarsFiles.get(target.name)?.doc;
  return mergeAll([
    ...componentsUsed(c, runListOf(c, target)).map((name) => c.components.get(name)!.defaults),
    ...c.allVars,
    ...rolesOf(c, target).map((r) => r.vars),
    ...groups.flatMap((g) => [g.vars, asRecord(g.varsFile?.doc)]),
    target.vars,
    asRecord(targetFile),
    cliVars,
  ]);
}

function asRecord(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/**
 * OS tables: the built-in ones, then the site's `os/*.yaml`; of each, the `default`, OS family,
 * distribution, `distribution-major` and `distribution-release` sections, merged in that order.
 */
export function osTable(c: Catalog, facts: Record<string, unknown>): Record<string, unknown> {
  const distribution = typeof facts.distribution === 'string' ? facts.distribution : undefined;
  const release = facts.release === undefined ? undefined : String(facts.release);
  const major = release?.split('.')[0];
  const selectors = ['default', facts.os_family, distribution,
    distribution && major && major !== release ? `${distribution}-${major}` : undefined,
    distribution && release ? `${distribution}-${release}` : undefined]
    .filter((s): s is string => typeof s === 'string');
  return mergeAll([...builtinOsTables(), ...c.os].flatMap((doc) => selectors.map((s) => asRecord(asRecord(doc.doc)[s]))));
}

/**
 * A state's tags reach the parts of the states it includes, as an Ansible role's tags reach its
 * tasks: tagging a meta state selects everything it brings in. An included state is invoked
 * once however many states include it, so it carries the tags of all of them. Parts then carry
 * their own tags and their invocation's, and the engine needs nothing but the graph to filter.
 */
function inheritTags(c: Catalog, invocations: StateInvocation[]): void {
  const tags = invocations.map((inv) => new Set(c.states.get(inv.state)?.tags ?? []));
  const byState = new Map<string, number[]>();
  for (const inv of invocations) pushTo(byState, inv.state, inv.index);
  // An includer is invoked after what it includes: walking backwards carries tags down chains.
  for (let i = invocations.length - 1; i >= 0; i--) {
    const inv = invocations[i]!;
    if (tags[i]!.size === 0) continue;
    for (const name of inv.includes) {
      for (const j of byState.get(name) ?? []) {
        if (j < i) for (const t of tags[i]!) tags[j]!.add(t);
      }
    }
  }
  invocations.forEach((inv, i) => {
    if (tags[i]!.size === 0) return;
    inv.tags = [...tags[i]!].sort();
    for (const part of inv.parts) part.meta.tags = [...new Set([...part.meta.tags, ...inv.tags])].sort();
  });
}

/**
 * `it.targets` and `it.groups`, made on first use only: most states never read them, and every
 * target's vars cost a merge each. They live on the scopes' prototype, so a scope copied with
 * other vars keeps them and copying one reads neither.
 */
function siteTargetsScope(c: Catalog, options: CompileOptions, self: { name: string; facts: Record<string, unknown> }, sandbox: TemplateSandbox): object {
  let targets: SiteTarget[] | undefined;
  let groups: Record<string, string[]> | undefined;
  const read = () => {
    if (targets) return;
    options.onSiteTargetsRead?.();
    targets = [...c.targets.values()].map((t) => {
      const facts = t.name === self.name ? self.facts : options.targetFacts?.[t.name];
      return {
        name: t.name,
        vars: targetVars(c, t, options.cliVars),
        groups: groupsOf(c, t).map((g) => g.name),
        roles: rolesOf(c, t).map((r) => r.name),
        ...(facts ? { facts } : {}),
      };
    });
    groups = Object.fromEntries([...c.groups.keys()].map((g) => [g, targets!.filter((t) => t.groups.includes(g)).map((t) => t.name)]));
  };
  return Object.create(Object.prototype, {
    targets: { get: () => (read(), targets), enumerable: false },
    groups: { get: () => (read(), groups), enumerable: false },
    // One sandbox per compile: inputs shared by its renders are copied into it once.
    [SANDBOX]: { value: sandbox, enumerable: false },
  }) as object;
}

export function compile(c: Catalog, target: Target, options: CompileOptions = {}): StateRun {
  const d = new Diagnostics();
  const facts = options.facts ?? {};
  const declaredVars = targetVars(c, target, options.cliVars);
  const secrets = options.secrets ?? new Set<string>();
  const vars = revealSecrets(declaredVars, d, secrets);
  const os = osTable(c, facts);
  const targetInfo = {
    name: target.name,
    ...target.settings,
    state_dir: target.settings.state_dir ?? DEFAULT_STATE_DIR,
  };
  const scopes = new Map<string, TemplateScope>();
  const sandbox = new TemplateSandbox(c.templateTimeout);
  let siteTargetsRead = false;
  const siteTargets = siteTargetsScope(c, { ...options, onSiteTargetsRead: () => {
    siteTargetsRead = true;
    options.onSiteTargetsRead?.();
  } }, { name: target.name, facts }, sandbox);
  const scopeWith = (fields: Omit<TemplateScope, 'targets' | 'groups'>) => Object.assign(Object.create(siteTargets) as TemplateScope, fields);
  // A scope per invocation (state and parameters), not per parameters: what its renders read is
  // that invocation's alone (TemplateSandbox.readsOf).
  const scopeFor = (state: string, params: Record<string, unknown>): TemplateScope => {
    const key = `${state}\u0000${canonicalJson(params)}`;
    let it = scopes.get(key);
    if (!it) {
      it = scopeWith({ vars, params, facts, os, target: targetInfo });
      scopes.set(key, it);
    }
    return it;
  };

  const invocations: StateInvocation[] = [];
  const invoked = new Map<string, StateInvocation>();
  /** The states invoked so far, whatever their parameters. */
  const invokedStates = new Set<string>();
  const templates = new Map<string, CompiledTemplate>();
  const siteFiles = new SiteFiles(c.root, false);

  // The incremental compile: what each invocation read besides its scope's inputs.
  const inputs: Record<string, unknown> = { vars, facts, os, target: targetInfo };
  // A secret's plaintext must not be in a record, and a reused part would not be marked sensitive.
  const incremental = secrets.size === 0;
  const previous = incremental ? options.previous : undefined;
  // A site file in a record stands as its stamp (size, inode, modification and change times), as
  // in the compile cache's key (cli/compile-cache.ts): an edit changes the change time, which
  // nothing can set back. No content is read or hashed, and a compile of state files and
  // templates alone never loads node:crypto (a tenth of a changed input's compile).
  const fileHashes = new Map<string, string>();
  const fileHash = (abs: string): string => {
    let hash = fileHashes.get(abs);
    if (hash === undefined) {
      const s = statSync(abs, { bigint: true, throwIfNoEntry: false });
      hash = s?.isFile() ? `${s.size}:${s.ino}:${s.mtimeNs}:${s.ctimeNs}` : '';
      fileHashes.set(abs, hash);
    }
    return hash;
  };
  /**
   * Per invocation (by its scope): site files read, scopes of its part templates, reads carried
   * over with the template parts taken from a record, and whether it read something no record can hold.
   */
  const extraReads = new Map<TemplateScope, { files: Map<string, string>; scopes: TemplateScope[]; carried: PartDeps['reads'][]; uncacheable: boolean }>();
  const extraOf = (it: TemplateScope) => {
    let e = extraReads.get(it);
    if (!e) extraReads.set(it, (e = { files: new Map(), scopes: [], carried: [], uncacheable: false }));
    return e;
  };
  /** What renders with these scopes read of the inputs, each name with the value it read (exactJson). */
  const readsOfScopes = (scopes: TemplateScope[], reads: Record<string, Record<string, string>> = {}) => {
    for (const scope of scopes) {
      for (const [input, names] of sandbox.readsOf(scope) ?? []) {
        const value = inputs[input] as Record<string, unknown> | undefined;
        const into = (reads[input] ??= {});
        if (names === '*') into[WHOLE] = exactJson(value);
        else for (const name of names) into[name] = exactJson(value?.[name]);
      }
    }
    return reads;
  };
  const recordOf = (def: StateDef, it: TemplateScope, parts: PartInvocation[], segmented: Segmented | undefined): InvocationRecord | undefined => {
    const extra = extraOf(it);
    if (extra.uncacheable || parts.length > RECORD_MAX_PARTS) return undefined;
    const reads = readsOfScopes([it, ...extra.scopes]);
    for (const carried of extra.carried) {
      for (const [input, names] of Object.entries(carried)) Object.assign((reads[input] ??= {}), names);
    }
    const deps = segmented && Object.keys(segmented.deps).length ? { deps: segmented.deps } : {};
    return {
      file: fileHash(join(c.root, def.file)), reads, files: Object.fromEntries(extra.files), parts: JSON.stringify(parts),
      ...(segmented && segmented.keys.length === parts.length ? { segments: { file: def.file, keys: segmented.keys, ...deps } } : {}),
    };
  };
  /**
   * The parts of an earlier compile of the invocation by key (InvocationRecord.segments), when its
   * state file is the same file, unchanged: their positions point into it. A record that does not
   * read as one (a damaged cache) gives none.
   */
  const partsByKey = (def: StateDef, record: InvocationRecord | undefined): Map<string, EarlierPart[]> | undefined => {
    const segments = record?.segments;
    if (!segments || segments.file !== def.file || record.file !== fileHash(join(c.root, def.file))) return undefined;
    let parts: unknown;
    try {
      parts = JSON.parse(record.parts);
    } catch {
      return undefined;
    }
    const { keys } = segments;
    const allDeps: unknown = segments.deps ?? {};
    if (!Array.isArray(parts) || !Array.isArray(keys) || keys.length !== parts.length || !isPlainRecord(allDeps)) return undefined;
    const byKey = new Map<string, EarlierPart[]>();
    keys.forEach((key: unknown, i) => {
      const part = parts[i] as PartInvocation | null;
      if (typeof key !== 'string' || key === '' || !part || typeof part !== 'object') return;
      const deps = allDeps[String(i)];
      if (deps === undefined) pushTo(byKey, key, { part });
      else if (isPartDeps(deps) && depsHold(deps)) pushTo(byKey, key, { part, deps });
    });
    return byKey;
  };
  /** Whether the site files have the same stamps, and the inputs named the same values, as when recorded. */
  const depsHold = ({ files, reads }: PartDeps): boolean => {
    for (const [abs, hash] of Object.entries(files)) if (fileHash(abs) !== hash) return false;
    for (const [input, names] of Object.entries(reads)) {
      const value = inputs[input] as Record<string, unknown> | undefined;
      for (const [name, json] of Object.entries(names)) {
        if (exactJson(name === WHOLE ? value : value?.[name]) !== json) return false;
      }
    }
    return true;
  };
  const unchanged = (def: StateDef, record: InvocationRecord): boolean =>
    record.file === fileHash(join(c.root, def.file)) && depsHold(record);

  /** `notes`: told of each site file a resolve reads (its stamp) and of each template scope it renders with. */
  const resolveContext = (def: StateDef, it: TemplateScope, notes?: ResolveNotes): ResolveContext => {
    const locate = (path: string, attribute: 'source' | 'template', want: 'file' | 'folder' = 'file'): string => {
      const bases = def.component ? [join(c.root, c.components.get(def.component)!.dir), c.root] : [c.root];
      const found = bases.map((b) => resolve(b, path)).find((abs) => siteFiles.exists(abs));
      // Which file a path names depends on the candidates before it being absent.
      for (const abs of bases.map((b) => resolve(b, path))) {
        if (abs === found) break;
        extraOf(it).files.set(abs, '');
        notes?.file(abs, '');
      }
      if (want === 'folder') extraOf(it).uncacheable = true;
      else if (found) {
        extraOf(it).files.set(found, fileHash(found));
        notes?.file(found, fileHash(found));
      }
      if (!found) {
        const where = bases.map((b) => (relative(c.root, b) ? `${relative(c.root, b)}/` : 'the site folder'));
        throw inputError(`no such site file '${path}'`, undefined, `looked in ${where.join(' and ')}`);
      }
      if (want === 'folder') {
        if (!statSync(found).isDirectory()) {
          throw inputError(`${attribute} '${path}' is a file (a directory's ${attribute} is a folder of the site)`, undefined,
            'copy one file with a file part, or name the folder that holds it');
        }
        return found;
      }
      // Reading a folder fails with EISDIR, which is the site's mistake, not Cairn's.
      if (siteFiles.isFolder(found)) {
        throw inputError(`${attribute} '${path}' is a folder (a file's ${attribute} is one file)`, undefined,
          `name one file inside it, e.g. ${attribute}: ${path.replace(/\/+$/, '')}/<name>`);
      }
      return found;
    };
    const read = (abs: string, path: string): Buffer => siteFiles.read(abs, `site file '${path}'`);
    return {
      renderTemplate(path, partVars) {
        const abs = locate(path, 'template');
        let t = templates.get(abs);
        if (!t) {
          const text = read(abs, path).toString('utf8');
          const file = relative(c.root, abs);
          c.sources.set(file, text);
          t = compileTemplate(text, file);
          templates.set(abs, t);
        }
        // A scope of its own, so that what this render read is known apart from the invocation's
        // other renders (a part's deps); its reads count as the invocation's too (of the target's
        // vars: a part's own come from its text).
        const scope = scopeWith({ ...it, vars: partVars ? mergeAll([it.vars, partVars]) : it.vars });
        extraOf(it).scopes.push(scope);
        notes?.scope(scope);
        return t.render(scope).text;
      },
      readSource(path) {
        const data = read(locate(path, 'source'), path);
        return { base64: data.toString('base64'), sha256: sha256Hex(data) };
      },
      readFolder(path) {
        const root = locate(path, 'source', 'folder');
        const entries: { path: string; kind: 'file' | 'directory' }[] = [];
        const walk = (dir: string) => {
          let names: string[];
          try {
            names = readdirSync(dir).sort();
          } catch (err) {
            throw inputError(`cannot read site folder '${join(path, relative(root, dir))}': ${(err as Error).message}`);
          }
          for (const name of names) {
            const abs = join(dir, name);
            const rel = relative(root, abs);
            // A link in the site is copied as what it points to.
            const kind = statSync(abs, { throwIfNoEntry: false });
            if (kind?.isDirectory()) {
              entries.push({ path: rel, kind: 'directory' });
              walk(abs);
            } else if (kind?.isFile()) entries.push({ path: rel, kind: 'file' });
            else throw inputError(`site folder '${path}' holds '${rel}', which is neither a file nor a folder (or a link to nothing)`);
          }
        };
        walk(root);
        return entries;
      },
    };
  };

  const checkParams = (def: StateDef, given: Record<string, unknown>, pos: SourcePos | undefined): Record<string, unknown> | undefined => {
    let ok = true;
    for (const name of Object.keys(given)) {
      if (!(name in def.params)) {
        const declared = Object.keys(def.params);
        d.add(`state '${def.name}' has no parameter '${name}'${didYouMean(name, declared)}`, keyPosOf(given, name) ?? pos, {
          hint: declared.length ? `its parameters: ${declared.join(', ')}` : `'${def.name}' takes no parameters`,
          related: [{ message: `'${def.name}' is declared here`, pos: def.pos }],
        });
        ok = false;
      }
    }
    const params: Record<string, unknown> = {};
    for (const [name, decl] of Object.entries(def.params)) {
      if (name in given) params[name] = given[name];
      else if (decl.required) {
        d.add(`state '${def.name}' needs parameter '${name}'`, pos, {
          hint: `invoke it as \`- ${def.name}: { ${name}: … }\``,
          related: [{ message: `'${name}' is declared required (~) here`, pos: decl.pos }],
        });
        ok = false;
      } else params[name] = decl.default;
    }
    return ok ? params : undefined;
  };

  const declarationRank = new Map([...c.states.keys()].map((name, i) => [name, i]));
  const invoke = (stateName: string, given: Record<string, unknown>, via: string, pos: SourcePos | undefined, chain: string[]): void => {
    const def = c.states.get(stateName);
    if (!def) {
      d.add(`unknown state '${stateName}'${didYouMean(stateName, [...c.states.keys()])}`, pos);
      return;
    }
    if (chain.includes(stateName)) {
      d.add(`include cycle: ${[...chain, stateName].join(' → ')}`, pos);
      return;
    }
    const params = checkParams(def, given, pos);
    if (!params) return;
    const identity = `${stateName}\u0000${canonicalJson(params)}`;
    if (invoked.has(identity)) return;
    for (const inc of def.include) invoke(inc.name, {}, `include by ${stateName}`, inc.pos ?? def.pos, [...chain, stateName]);
    const prior = previous?.[identity];
    const inv: StateInvocation = {
      index: invocations.length,
      state: stateName,
      params,
      lazy: def.lazy,
      defer: def.defer,
      declared: declarationRank.get(stateName)!,
      via,
      ...(pos ? { pos } : {}),
      includes: def.include.map((i) => i.name),
      parts: [],
    };
    invoked.set(identity, inv);
    invokedStates.add(stateName);
    invocations.push(inv);
    if (prior && unchanged(def, prior)) {
      inv.parts = JSON.parse(prior.parts) as PartInvocation[];
      if (options.records) options.records[identity] = prior;
      if (options.stats) options.stats.reused++;
      return;
    }
    if (options.stats) options.stats.compiled++;
    const it = scopeFor(stateName, params);
    const errorsBefore = d.items.length;
    // With records kept, parts are parsed one by one where the text allows, and those whose text
    // is as the last compile rendered it are taken from there.
    const segmented = options.records && incremental ? d.collect(() => bySegments(def, it, prior, inv)) : undefined;
    if (segmented === undefined && d.items.length === errorsBefore) {
      const rawParts = d.collect(() => def.parts(it)) ?? [];
      options.afterState?.();
      const resolveCtx = resolveContext(def, it);
      rawParts.forEach((raw, index) => {
        const part = parsePart(raw, { index, fallback: posOf(rawParts, index) ?? def.pos, resolve: resolveCtx, secrets }, d);
        if (part) inv.parts.push(part);
      });
    }
    if (options.records && incremental && d.items.length === errorsBefore) {
      const record = recordOf(def, it, inv.parts, segmented);
      if (record) options.records[identity] = record;
    }
  };

  /**
   * An invocation's parts from its render cut into each part's text (StateDef.segments): a part
   * whose key is among the earlier compile's takes its part from there, the others are parsed,
   * together, then validated. Returns each part's key ('' for a part that cannot be reused: it
   * read a `source`, which its key does not cover, or holds a secret, or is in error) and the
   * deps of those rendered from a template file; undefined when the render cannot be cut, nothing
   * done. A failed render throws, as `parts` would.
   */
  const bySegments = (def: StateDef, it: TemplateScope, prior: InvocationRecord | undefined, inv: StateInvocation): Segmented | undefined => {
    const cut = def.segments?.(it, RECORD_MAX_PARTS);
    if (!cut) return undefined;
    const pool = partsByKey(def, prior);
    // Each earlier part stands in once: a text rendered twice is parsed the second time.
    const reused = cut.keys.map((key) => pool?.get(key)?.pop());
    const missing: number[] = [];
    reused.forEach((part, index) => {
      if (!part) missing.push(index);
    });
    const raws = missing.length ? cut.parse(missing) : [];
    if (!raws) return undefined;
    options.afterState?.();
    // What the part being parsed read: site files, the scopes of its template renders; and
    // whether it read anything a record cannot stand for (a `source` file or folder).
    let files = new Map<string, string>();
    let scopes: TemplateScope[] = [];
    let opaque = false;
    const resolveCtx = resolveContext(def, it, { file: (abs, stamp) => files.set(abs, stamp), scope: (scope) => scopes.push(scope) });
    const tracked: ResolveContext = {
      ...resolveCtx,
      readSource: (path) => ((opaque = true), resolveCtx.readSource(path)),
      readFolder: (path) => ((opaque = true), resolveCtx.readFolder(path)),
    };
    const keys = [...cut.keys];
    const deps: Record<string, PartDeps> = {};
    const extra = extraOf(it);
    let next = 0;
    reused.forEach((earlier, index) => {
      if (earlier) {
        earlier.part.index = index;
        inv.parts.push(earlier.part);
        if (earlier.deps) {
          // What it read then is what this compile would read: the invocation's record keeps it.
          deps[index] = earlier.deps;
          for (const [abs, stamp] of Object.entries(earlier.deps.files)) extra.files.set(abs, stamp);
          extra.carried.push(earlier.deps.reads);
        }
        if (options.partStats) options.partStats.reused++;
        return;
      }
      const raw = raws[next++]!;
      const before = d.items.length;
      files = new Map();
      scopes = [];
      opaque = false;
      const part = parsePart(raw, { index, fallback: def.pos, resolve: tracked, secrets }, d);
      if (part) inv.parts.push(part);
      if (!part || opaque || d.items.length !== before || holdsSecret(raw)) keys[index] = '';
      else if (files.size || scopes.length) deps[index] = { files: Object.fromEntries(files), reads: readsOfScopes(scopes) };
      if (options.partStats) options.partStats.parsed++;
    });
    return { keys, deps };
  };

  // The run list's renders, in the order `invoke` will ask for them, go into the sandbox
  // together. Whatever is wrong with an invocation is left to `invoke` to report.
  const prefetch = () => {
    const seen = new Set<string>();
    const wanted: { def: StateDef; it: TemplateScope }[] = [];
    const visit = (name: string, given: Record<string, unknown>, chain: string[]): void => {
      const def = c.states.get(name);
      if (!def || def.broken || chain.includes(name)) return;
      if (Object.keys(given).some((p) => !(p in def.params))) return;
      const params: Record<string, unknown> = {};
      for (const [p, decl] of Object.entries(def.params)) {
        if (p in given) params[p] = given[p];
        else if (decl.required) return;
        else params[p] = decl.default;
      }
      const identity = `${name}\u0000${canonicalJson(params)}`;
      if (seen.has(identity)) return;
      seen.add(identity);
      for (const inc of def.include) visit(inc.name, {}, [...chain, name]);
      // One a record will stand for is not rendered.
      const prior = previous?.[identity];
      if (prior && unchanged(def, prior)) return;
      wanted.push({ def, it: scopeFor(name, params) });
    };
    for (const entry of runListOf(c, target)) visit(entry.state, entry.params, []);
    const prepared = wanted.flatMap(({ def, it }) => def.prepare?.(it) ?? []);
    if (prepared.length < 2) return;
    const results = sandbox.render(prepared.flatMap((p) => p.jobs));
    let at = 0;
    for (const p of prepared) {
      p.accept(results.slice(at, at + p.jobs.length), sandbox.timeout);
      at += p.jobs.length;
    }
  };
  prefetch();

  for (const entry of runListOf(c, target)) invoke(entry.state, entry.params, entry.via, entry.pos, []);

  // Handlers: lazy states that are notified but not in the run list are invoked once, at the end.
  for (let i = 0; i < invocations.length; i++) {
    for (const part of invocations[i]!.parts) {
      for (const req of part.requisites) {
        if (req.kind !== 'notify') continue;
        const def = c.states.get(req.ref);
        if (!def?.lazy) continue;
        if (!invokedStates.has(def.name)) invoke(def.name, {}, 'notified', req.pos, []);
      }
    }
  }

  inheritTags(c, invocations);
  d.throwIfAny();
  // Records of a compile that read other targets' data or used a secret would lie next time.
  if (options.records && (siteTargetsRead || secrets.size > 0)) for (const k of Object.keys(options.records)) delete options.records[k];
  // The run keeps the vars as declared: a secret in it prints as '(sensitive)' (its toJSON).
  return { version: 1, target: targetInfo, vars: declaredVars, facts, os, invocations };
}
