/**
 * Loading a site once and compiling it per target, for the commands that converge: which targets
 * a selection names (with their settings), then each target's run from its own facts. Every step
 * goes through the compile cache; a compile error in any target stops the command before any
 * target is touched.
 */
import type { Catalog, Target } from '../catalog/catalog.ts';
import type { InvocationRecords } from '../catalog/compile.ts';
import type { FactsFile } from '../catalog/facts-input.ts';
import type { TargetSettings } from '../catalog/schema.ts';
import { Diagnostics, InputError } from '../lib/errors.ts';
import { COMPILED_CODEC, type Compiled } from '../graph/codec.ts';
import { CompileCache } from './compile-cache.ts';
import { releaseGarbage } from '../lib/memory.ts';
import { shortRun } from '../lib/tiering.ts';

export interface SelectedTarget {
  name: string;
  settings: TargetSettings & { executor: string };
  /** A nested target's outer target (`via:`), resolved along the chain. */
  via?: SelectedTarget;
}

export interface SiteOptions {
  site: string;
  var?: string[];
  facts?: string;
}

export class SiteCompiler {
  /** Compiled runs that hold a secret's plaintext: never written to the cache. */
  private readonly withSecrets = new WeakSet<Compiled>();
  private loaded?: Promise<{ catalog: Catalog; cliVars: Record<string, unknown> }>;
  readonly cache: CompileCache;

  constructor(private readonly options: SiteOptions, private readonly sources: Map<string, string>) {
    this.cache = new CompileCache({ site: options.site, vars: options.var ?? [] });
  }

  private load() {
    this.loaded ??= (async () => {
      const { loadSite } = await import('../site/load.ts');
      const { buildCatalog } = await import('../catalog/catalog.ts');
      const { parseCliVars } = await import('../catalog/vars.ts');
      const d = new Diagnostics();
      const site = await loadSite(this.options.site, d, this.sources);
      const catalog = buildCatalog(site, d);
      d.throwIfAny();
      const { unlockSecrets } = await import('../catalog/secrets.ts');
      await unlockSecrets(catalog);
      return { catalog, cliVars: parseCliVars(this.options.var ?? [], process.cwd()) };
    })();
    return this.loaded;
  }

  private async targets(selectors: string[]): Promise<Target[]> {
    const { selectTargets } = await import('../catalog/catalog.ts');
    const { catalog } = await this.load();
    return selectTargets(catalog, selectors.length ? selectors : ['*']);
  }

  /** The targets `selectors` name (all when none), in the site's order. */
  async select(selectors: string[]): Promise<SelectedTarget[]> {
    return this.cache.get('targets', selectors, async () => {
      const { catalog } = await this.load();
      // The catalog checked that every via names a target and that no chain of them is a cycle.
      const resolve = (t: Target): SelectedTarget => {
        const outer = t.settings.via !== undefined ? catalog.targets.get(t.settings.via) : undefined;
        return { name: t.name, settings: t.settings, ...(outer ? { via: resolve(outer) } : {}) };
      };
      return (await this.targets(selectors)).map(resolve);
    });
  }

  /** Every target of the site, in its order; none is an answer here, not an error (a push of a site being started). */
  async allTargetNames(): Promise<string[]> {
    const { catalog } = await this.load();
    return [...catalog.targets.keys()];
  }

  /** Each target's groups (catalog.groupsOf: declared, listed or matched), in the site's order. */
  async targetGroups(): Promise<Map<string, string[]>> {
    const { groupsOf } = await import('../catalog/catalog.ts');
    const { catalog } = await this.load();
    return new Map([...catalog.targets.values()].map((t) => [t.name, groupsOf(catalog, t).map((g) => g.name)]));
  }

  /**
   * The facts assumed for target `name` when none are known (catalog/facts-input.ts), and a line
   * that says what they are. Call it before compile(), which lets the loaded site go.
   */
  async assumedFacts(name: string): Promise<{ facts: Record<string, unknown>; description: string }> {
    const { assumedFacts, describeAssumed } = await import('../catalog/facts-input.ts');
    const { catalog } = await this.load();
    const facts = assumedFacts(catalog, catalog.targets.get(name)!);
    return { facts, description: describeAssumed(facts) };
  }

  /**
   * Compiles each target with its facts; all errors of all targets are thrown together. `known`:
   * facts of other targets of the site (a store's last records), which templates see in
   * `it.targets`; the targets compiled here are seen with the facts they are compiled with.
   */
  async compile(targets: { name: string; facts: Record<string, unknown> }[], known: Record<string, Record<string, unknown>> = {}): Promise<Compiled[]> {
    const errors = new Diagnostics();
    const results: Compiled[] = [];
    const targetFacts = { ...known, ...Object.fromEntries(targets.map((t) => [t.name, t.facts])) };
    for (const { name, facts } of targets) {
      try {
        results.push(await this.compileCached(name, facts, targetFacts));
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        errors.addAll(err.diagnostics);
      }
    }
    // The loaded site is not needed once every target is compiled: let it go before the run. A
    // run whose every target came from the compile cache loaded none, and leaves node:v8 unloaded.
    if (this.loaded) {
      this.loaded = undefined;
      releaseGarbage();
    }
    errors.throwIfAny();
    return results;
  }

  /**
   * A run depends on other targets' facts only when a template reads `it.targets`, and whether
   * one does depends only on the inputs read before (the site, the vars, its own facts): a small
   * entry keyed by those says so, and only then are the others' facts in the run's key. A
   * changed backend so recompiles its load balancer, and nothing that never looked.
   */
  private async compileCached(name: string, facts: Record<string, unknown>, targetFacts: Record<string, Record<string, unknown>>): Promise<Compiled> {
    const own = { name, facts: CompileCache.factsKey(this.options.facts, facts) };
    let fresh: { compiled: Compiled; readsTargets: boolean } | undefined;
    const compileNow = async () => (fresh = await this.compileOne(name, facts, targetFacts));
    const readsTargets = await this.cache.get('reads-targets', own, async () => (await compileNow()).readsTargets);
    const others = Object.fromEntries(Object.entries(targetFacts).filter(([n]) => n !== name));
    const key = readsTargets ? { ...own, others } : own;
    // A run that used a secret is never written to the cache: its plaintext would be on disk.
    return this.cache.get('compiled', key, async () => (fresh ?? (await compileNow())).compiled, COMPILED_CODEC, (c) => !this.withSecrets.has(c));
  }

  private async compileOne(name: string, facts: Record<string, unknown>, targetFacts: Record<string, Record<string, unknown>>): Promise<{ compiled: Compiled; readsTargets: boolean }> {
    shortRun();
    const { compile } = await import('../catalog/compile.ts');
    const { buildGraph } = await import('../graph/build.ts');
    const { catalog, cliVars } = await this.load();
    const target = catalog.targets.get(name)!;
    const d = new Diagnostics();
    const secrets = new Set<string>();
    let readsTargets = false;
    // The incremental compile: the last compile's records of this target, and this one's.
    const previous = this.cache.latest<InvocationRecords>('invocations', { name });
    const records: InvocationRecords = {};
    const stats = { compiled: 0, reused: 0 };
    const partStats = { parsed: 0, reused: 0 };
    const run = d.collect(() => compile(catalog, target, {
      facts, cliVars, afterState: releaseGarbage, secrets, targetFacts, onSiteTargetsRead: () => (readsTargets = true),
      records, stats, partStats, ...(previous ? { previous } : {}),
    }));
    if (process.env.CAIRN_COMPILE_STATS) {
      process.stderr.write(`compile ${name}: ${stats.compiled} invocations compiled, ${stats.reused} reused\n`);
      process.stderr.write(`compile ${name}: of their parts ${partStats.parsed} parsed, ${partStats.reused} reused\n`);
    }
    releaseGarbage();
    const graph = run && d.collect(() => buildGraph(run));
    releaseGarbage();
    d.throwIfAny();
    if (Object.keys(records).length > 0) this.cache.storeLatest('invocations', { name }, records);
    const compiled = { run: run!, graph: graph! };
    if (secrets.size > 0) this.withSecrets.add(compiled);
    return { compiled, readsTargets };
  }
}

/** `--facts FILE`: one target's facts for all, or `cairn facts --json`'s per target (catalog/facts-input.ts). */
export async function readFactsFile(path: string, sources: Map<string, string>): Promise<FactsFile> {
  const { readFactsFile: read } = await import('../catalog/facts-input.ts');
  return read(path, sources);
}
