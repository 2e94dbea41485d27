/**
 * The catalog (DESIGN §1): targets, groups, roles, components, states and variable sources of a
 * site, validated and cross-checked, independent of any one target.
 */
import { didYouMean } from '../lib/did-you-mean.ts';
import { Diagnostics, InputError, type SourcePos } from '../lib/errors.ts';
import { keyPosOf, posOf } from '../lib/positions.ts';
import type { SiteDoc, SiteDocs } from '../site/load.ts';
import type { StateDef } from '../site/states.ts';
import { validate } from '../site/validate.ts';
import {
  componentSchema, configSchema, inventorySchema, roleSchema, type TargetSettings,
} from './schema.ts';

export interface RunEntry {
  state: string;
  params: Record<string, unknown>;
  pos?: SourcePos;
  /** Where the entry comes from, for `show`: "role base", "target web1", … */
  via: string;
}

export interface Target {
  name: string;
  pos?: SourcePos;
  settings: TargetSettings & { executor: 'local' | 'ssh' | 'agent' | 'chroot' | 'container' | 'jail' };
  /** Where `via:` is written, for errors about it. */
  viaPos?: SourcePos;
  vars: Record<string, unknown>;
  roles: { name: string; pos?: SourcePos }[];
  groups: { name: string; pos?: SourcePos }[];
  run: RunEntry[];
}

export interface Group {
  name: string;
  pos?: SourcePos;
  targets?: { name: string; pos?: SourcePos }[];
  match?: string;
  roles: { name: string; pos?: SourcePos }[];
  vars: Record<string, unknown>;
  varsFile?: SiteDoc;
  run: RunEntry[];
}

export interface Role {
  name: string;
  pos?: SourcePos;
  vars: Record<string, unknown>;
  run: RunEntry[];
}

export interface Component {
  name: string;
  dir: string;
  defaults: Record<string, unknown>;
}

export interface Catalog {
  root: string;
  sources: Map<string, string>;
  name?: string;
  targets: Map<string, Target>;
  groups: Map<string, Group>;
  roles: Map<string, Role>;
  states: Map<string, StateDef>;
  components: Map<string, Component>;
  allVars: Record<string, unknown>[];
  targetVarsFiles: Map<string, SiteDoc>;
  os: SiteDoc[];
  incomplete: SiteDocs['incomplete'];
  /** Seconds one template render may take (`timeout` in cairn.yaml); the sandbox's default when unset. */
  templateTimeout?: number;
}

function asRecord(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function runEntries(list: unknown, container: unknown, via: string): RunEntry[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((entry, i): RunEntry[] => {
    const pos = posOf(list, i) ?? posOf(container, 'run');
    if (typeof entry === 'string') return [{ state: entry, params: {}, pos, via }];
    // Anything else malformed has been reported by the schema; leave it out of the run.
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) return [];
    const first = Object.entries(entry as Record<string, unknown>)[0];
    if (!first) return [];
    const [state, params] = first;
    return [{ state, params: asRecord(params), pos: keyPosOf(entry, state) ?? pos, via }];
  });
}

function nameRefs(list: unknown): { name: string; pos?: SourcePos }[] {
  return Array.isArray(list) ? list.map((name, i) => ({ name: String(name), pos: posOf(list, i) })) : [];
}

/** Turns a glob (`web-*`, `db?`, `[ab]x`) or `/regex/` into a matcher over target names. */
export function nameMatcher(pattern: string): (name: string) => boolean {
  if (pattern.length > 1 && pattern.startsWith('/') && pattern.endsWith('/')) {
    const re = new RegExp(pattern.slice(1, -1));
    return (name) => re.test(name);
  }
  const source = pattern.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  const re = new RegExp(`^${source}$`);
  return (name) => re.test(name);
}

export function buildCatalog(site: SiteDocs, d: Diagnostics): Catalog {
  const config = validate(configSchema, site.config.doc ?? {}, d, {
    what: 'key', fallback: { file: site.config.file, line: 1, col: 1 },
  });
  const configDoc = asRecord(site.config.doc);
  const inventoryDoc = asRecord(site.inventory?.doc);
  if (site.inventory) {
    validate(inventorySchema, site.inventory.doc ?? {}, d, {
      what: 'key', fallback: { file: site.inventory.file, line: 1, col: 1 },
    });
  }
  const defaults = asRecord(config?.defaults);

  // Targets and groups may be declared in cairn.yaml or the inventory, not both.
  const targets = new Map<string, Target>();
  const groups = new Map<string, Group>();
  for (const source of [configDoc, inventoryDoc]) {
    const targetMap = asRecord(source.targets);
    for (const [name, raw] of Object.entries(targetMap)) {
      const pos = keyPosOf(targetMap, name);
      if (targets.has(name)) {
        d.add(`target '${name}' is declared twice`, pos, { related: [{ message: 'first declared here', pos: targets.get(name)!.pos }] });
        continue;
      }
      const doc = asRecord(raw);
      const { vars, roles, groups: groupNames, run, ...settings } = doc;
      const merged = { ...defaults, ...settings } as TargetSettings;
      const executor = merged.executor ?? (merged.host ? 'ssh' : 'local');
      targets.set(name, {
        name, pos,
        ...(merged.via !== undefined ? { viaPos: posOf(doc, 'via') ?? posOf(defaults, 'via') ?? pos } : {}),
        settings: { ...merged, executor },
        vars: asRecord(vars),
        roles: nameRefs(roles),
        groups: nameRefs(groupNames),
        run: runEntries(run, doc, `target ${name}`),
      });
    }
    const groupMap = asRecord(source.groups);
    for (const [name, raw] of Object.entries(groupMap)) {
      const pos = keyPosOf(groupMap, name);
      if (groups.has(name)) {
        d.add(`group '${name}' is declared twice`, pos, { related: [{ message: 'first declared here', pos: groups.get(name)!.pos }] });
        continue;
      }
      const doc = asRecord(raw);
      if (doc.targets !== undefined && doc.match !== undefined) {
        d.add(`group '${name}': give either targets or match, not both`, keyPosOf(doc, 'match'));
      }
      if (typeof doc.match === 'string' && doc.match.startsWith('/') && doc.match.endsWith('/')) {
        try {
          new RegExp(doc.match.slice(1, -1));
        } catch (err) {
          d.add(`group '${name}': match is not a valid regular expression: ${(err as Error).message}`, posOf(doc, 'match'));
          delete doc.match;
        }
      }
      groups.set(name, {
        name, pos,
        ...(Array.isArray(doc.targets) ? { targets: nameRefs(doc.targets) } : {}),
        ...(typeof doc.match === 'string' ? { match: doc.match } : {}),
        roles: nameRefs(doc.roles),
        vars: asRecord(doc.vars),
        run: runEntries(doc.run, doc, `group ${name}`),
      });
    }
  }

  const roles = new Map<string, Role>();
  const addRoles = (map: Record<string, unknown>, file: string, validated: boolean) => {
    for (const [name, raw] of Object.entries(map)) {
      const pos = keyPosOf(map, name);
      if (roles.has(name)) {
        d.add(`role '${name}' is declared twice`, pos, { related: [{ message: 'first declared here', pos: roles.get(name)!.pos }] });
        continue;
      }
      if (!validated) validate(roleSchema, raw ?? {}, d, { prefix: `role '${name}': `, fallback: pos ?? { file, line: 1, col: 1 } });
      const doc = asRecord(raw);
      roles.set(name, { name, pos, vars: asRecord(doc.vars), run: runEntries(doc.run, doc, `role ${name}`) });
    }
  };
  addRoles(asRecord(configDoc.roles), site.config.file, true);
  for (const roleFile of site.roles) {
    if (roleFile.doc !== null && (typeof roleFile.doc !== 'object' || Array.isArray(roleFile.doc))) {
      d.add('a role file maps role names to { vars, run }', posOf(roleFile.doc) ?? { file: roleFile.file, line: 1, col: 1 });
      continue;
    }
    addRoles(asRecord(roleFile.doc), roleFile.file, false);
  }

  const states = new Map<string, StateDef>();
  for (const def of site.states) {
    const existing = states.get(def.name);
    if (existing) {
      d.add(`state '${def.name}' is declared twice`, def.pos, { related: [{ message: 'first declared here', pos: existing.pos }] });
      continue;
    }
    states.set(def.name, def);
  }

  const components = new Map<string, Component>();
  for (const c of site.components) {
    if (c.manifest) validate(componentSchema, c.manifest.doc ?? {}, d, { fallback: { file: c.manifest.file, line: 1, col: 1 } });
    components.set(c.name, { name: c.name, dir: c.dir, defaults: asRecord(asRecord(c.manifest?.doc).vars) });
  }

  for (const [name, doc] of site.vars.groups) {
    const g = groups.get(name);
    if (g) g.varsFile = doc;
    else if (!site.incomplete.has('groups')) d.add(`vars file for unknown group '${name}'${didYouMean(name, [...groups.keys()])}`, { file: doc.file, line: 1, col: 1 });
  }
  for (const [name, doc] of site.vars.targets) {
    if (!targets.has(name) && !site.incomplete.has('targets')) d.add(`vars file for unknown target '${name}'${didYouMean(name, [...targets.keys()])}`, { file: doc.file, line: 1, col: 1 });
  }

  const catalog: Catalog = {
    root: site.root,
    sources: site.sources,
    ...(config?.name ? { name: config.name } : {}),
    ...(config?.timeout !== undefined ? { templateTimeout: config.timeout } : {}),
    targets, groups, roles, states, components,
    allVars: [asRecord(configDoc.vars), ...site.vars.all.map((v) => asRecord(v.doc))],
    targetVarsFiles: site.vars.targets,
    os: site.os,
    incomplete: site.incomplete,
  };
  checkReferences(catalog, d);
  return catalog;
}

/** Names used across the catalog must exist: roles, groups, targets, states in run lists. */
function checkReferences(c: Catalog, d: Diagnostics): void {
  const roleNames = [...c.roles.keys()];
  const stateNames = [...c.states.keys()];
  const checkRun = (run: RunEntry[]) => {
    for (const entry of run) {
      if (!c.states.has(entry.state) && !c.incomplete.has('states')) {
        d.add(`unknown state '${entry.state}'${didYouMean(entry.state, stateNames)}`, entry.pos);
      }
    }
  };
  for (const t of c.targets.values()) {
    for (const r of t.roles) if (!c.roles.has(r.name) && !c.incomplete.has('roles')) d.add(`target '${t.name}': unknown role '${r.name}'${didYouMean(r.name, roleNames)}`, r.pos);
    for (const g of t.groups) {
      if (!c.groups.has(g.name) && !c.incomplete.has('groups')) d.add(`target '${t.name}': unknown group '${g.name}'${didYouMean(g.name, [...c.groups.keys()])}`, g.pos ?? t.pos);
    }
    checkRun(t.run);
  }
  for (const g of c.groups.values()) {
    for (const r of g.roles) if (!c.roles.has(r.name) && !c.incomplete.has('roles')) d.add(`group '${g.name}': unknown role '${r.name}'${didYouMean(r.name, roleNames)}`, r.pos);
    for (const t of g.targets ?? []) {
      if (!c.targets.has(t.name) && !c.incomplete.has('targets')) d.add(`group '${g.name}': unknown target '${t.name}'${didYouMean(t.name, [...c.targets.keys()])}`, t.pos ?? g.pos);
    }
    checkRun(g.run);
  }
  for (const r of c.roles.values()) checkRun(r.run);
  if (!c.incomplete.has('targets')) checkVia(c, d);
  for (const s of c.states.values()) {
    for (const inc of s.include) {
      if (!c.states.has(inc.name) && !c.incomplete.has('states')) d.add(`state '${s.name}': include of unknown state '${inc.name}'${didYouMean(inc.name, stateNames)}`, inc.pos);
    }
  }
}

/**
 * Nested targets (DESIGN §6): `via` names a target of the site, a chain of them never comes back
 * to where it started, and a nested executor has what it needs (`machine`, `jail`, `root`).
 */
function checkVia(c: Catalog, d: Diagnostics): void {
  const names = [...c.targets.keys()];
  const reported = new Set<string>();
  for (const t of c.targets.values()) {
    const { via, executor } = t.settings;
    const nestedExecutor = executor === 'container' || executor === 'jail';
    if (via === undefined) {
      if (nestedExecutor) d.add(`target '${t.name}': the ${executor} executor needs via: (the target the ${executor} is on)`, t.pos);
      continue;
    }
    if (!c.targets.has(via)) {
      d.add(`target '${t.name}': via names an unknown target '${via}'${didYouMean(via, names)}`, t.viaPos);
      continue;
    }
    if (!nestedExecutor && executor !== 'chroot') {
      d.add(`target '${t.name}': via needs executor container (machine:), jail (jail:) or chroot (root:), not ${executor}`, t.viaPos);
    }
    if (executor === 'container' && !t.settings.machine) d.add(`target '${t.name}': the container executor needs machine: (the container's name on ${via})`, t.viaPos);
    if (executor === 'jail' && !t.settings.jail) d.add(`target '${t.name}': the jail executor needs jail: (the jail's name on ${via})`, t.viaPos);
    // A chain of vias that comes back to a target is a cycle: reported once, from where it closes.
    const path = [t.name];
    let next: string | undefined = via;
    while (next !== undefined && c.targets.has(next)) {
      if (next === t.name) {
        const key = [...path].sort().join('\u0000');
        if (!reported.has(key)) {
          reported.add(key);
          d.add(`targets reach each other through via: ${[...path, t.name].join(' -> ')}`, t.viaPos, {
            related: path.slice(1).map((n) => ({ message: `${n}'s via`, pos: c.targets.get(n)!.viaPos })),
          });
        }
        break;
      }
      if (path.includes(next)) break;
      path.push(next);
      next = c.targets.get(next)!.settings.via;
    }
  }
}

/** The groups a target belongs to, in declaration order. */
export function groupsOf(c: Catalog, target: Target): Group[] {
  return [...c.groups.values()].filter((g) =>
    target.groups.some((ref) => ref.name === g.name) ||
    (g.targets?.some((t) => t.name === target.name) ?? false) ||
    (g.match !== undefined && nameMatcher(g.match)(target.name)));
}

/**
 * Resolves `--target` values (a name, group or glob) to targets, in declaration order. A value
 * that starts with `!` excludes what the rest names from the union of the others (Ansible's
 * `--limit`), whatever their order; exclusions alone exclude from every target. An exclusion
 * that names nothing is an error like a positive one: a typo would otherwise run on the very
 * target meant to be left out.
 */
export function selectTargets(c: Catalog, selectors: string[]): Target[] {
  const chosen = new Set<string>();
  const excluded = new Set<string>();
  const d = new Diagnostics();
  const positive = selectors.filter((s) => !s.startsWith('!'));
  for (const raw of positive.length ? selectors : ['*', ...selectors]) {
    const exclude = raw.startsWith('!');
    const sel = exclude ? raw.slice(1) : raw;
    const names = new Set<string>();
    if (c.targets.has(sel)) names.add(sel);
    else if (c.groups.has(sel)) {
      for (const t of c.targets.values()) if (groupsOf(c, t).some((g) => g.name === sel)) names.add(t.name);
    } else {
      const m = nameMatcher(sel);
      for (const name of c.targets.keys()) if (m(name)) names.add(name);
    }
    if (names.size === 0 && !c.groups.has(sel)) {
      d.add(`no target, group or glob matches '${sel}'${exclude ? ` (in the exclusion '${raw}')` : ''}${didYouMean(sel, [...c.targets.keys(), ...c.groups.keys()])}`, undefined,
        { hint: `targets: ${[...c.targets.keys()].join(', ') || '(none)'}` });
    }
    for (const name of names) (exclude ? excluded : chosen).add(name);
  }
  d.throwIfAny();
  const selected = [...c.targets.values()].filter((t) => chosen.has(t.name) && !excluded.has(t.name));
  if (selected.length === 0 && excluded.size > 0) {
    throw new InputError([{ message: `the selection ${selectors.map((s) => `'${s}'`).join(' ')} leaves no target: its exclusions remove every one it names` }]);
  }
  return selected;
}
