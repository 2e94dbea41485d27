/**
 * The commands that work with a store (DESIGN §8): `cairn push`, `cairn status` and
 * `cairn agent`, and finding which store to use: `--store URL`, else `CAIRN_STORE`, else the
 * `url:` of a store config file (`--store-config FILE`, else /etc/cairn/store.yaml when it
 * exists), else the site's `store:` in cairn.yaml, else `sqlite:<site>/.cairn/store.db`.
 * Credentials (etcd TLS files, user and password) come from the same config file or the
 * environment (see src/store/index.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createTwoFilesPatch } from 'diff';
import { parse } from 'yaml';
import { ExitCode, inputError, type InputError } from '../lib/errors.ts';
import type { StoreOptions } from '../store/types.ts';
import { openStore, StoreRefusedError, StoreUnreachableError } from '../store/index.ts';
import type { Store } from '../store/types.ts';
import type { RunReport } from '../engine/run-target.ts';
import type { SiteCompiler } from './site-compiler.ts';
import { SYSTEM_STORE_CONFIG } from './store-named.ts';
import { writeErr, writeOut } from './output.ts';

export interface StoreFlags {
  store?: string;
  storeConfig?: string;
  site?: string;
}

/** The store URL and options the flags, environment and config files name. */
export function resolveStore(flags: StoreFlags): { url: string; options: StoreOptions } {
  const found = configuredStore(flags);
  if (found) return found;
  if (!flags.site) throw inputError('no store given', undefined, 'use --store sqlite:<path> or etcd:<host:port,…>, or set CAIRN_STORE');
  return { url: `sqlite:${join(resolve(flags.site), '.cairn', 'store.db')}`, options: {} };
}

/** A store named by a flag, the environment, a config file or the site; undefined when none is. */
export function configuredStore(flags: StoreFlags): { url: string; options: StoreOptions } | undefined {
  const configPath = flags.storeConfig ?? (existsSync(SYSTEM_STORE_CONFIG) ? SYSTEM_STORE_CONFIG : undefined);
  let config: Record<string, unknown> = {};
  if (configPath) {
    try {
      const doc = parse(readFileSync(configPath, 'utf8')) as unknown;
      if (doc && typeof doc === 'object' && !Array.isArray(doc)) config = doc as Record<string, unknown>;
      else throw new Error('expected a map');
    } catch (err) {
      throw inputError(`cannot read the store config ${configPath}: ${(err as Error).message}`, undefined,
        'it holds url: and, for etcd, ca:, cert:, key:, user:, password:');
    }
  }
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  let siteStore: string | undefined;
  const site = flags.site ? resolve(flags.site) : undefined;
  if (site && existsSync(join(site, 'cairn.yaml'))) {
    try {
      siteStore = str((parse(readFileSync(join(site, 'cairn.yaml'), 'utf8')) as Record<string, unknown> | null)?.store);
    } catch {
      // A malformed cairn.yaml is reported by whatever loads the site.
    }
  }
  let url = flags.store ?? str(process.env.CAIRN_STORE) ?? str(config.url) ?? siteStore;
  if (!url) return undefined;
  // A relative SQLite path in a site's cairn.yaml is relative to the site.
  if (url === siteStore && url.startsWith('sqlite:') && !url.slice(7).startsWith('/') && site) url = `sqlite:${join(site, url.slice(7))}`;
  const options: StoreOptions = {
    ...(str(config.ca) ? { ca: str(config.ca)! } : {}),
    ...(str(config.cert) ? { cert: str(config.cert)! } : {}),
    ...(str(config.key) ? { key: str(config.key)! } : {}),
    ...(str(config.user) ? { user: str(config.user)! } : {}),
    ...(str(config.password) ? { password: str(config.password)! } : {}),
  };
  return { url, options };
}

/**
 * Opens the store at `at` for `fn`. An unreachable store is exit code 3 with its URL, like an
 * unreachable target; a refused request is exit code 2; both are said on stderr after `what`.
 */
async function withStoreAt<T>(at: { url: string; options: StoreOptions }, fn: (store: Store) => Promise<T>, what = ''): Promise<T | number> {
  let store: Store | undefined;
  try {
    store = await openStore(at.url, at.options);
    return await fn(store);
  } catch (err) {
    if (err instanceof StoreUnreachableError || err instanceof StoreRefusedError) {
      writeErr(`cairn: ${what}${err.message}\n`);
      return err.exitCode;
    }
    // A document that is not what Cairn wrote: the store's fault, like a damaged file (exit 3).
    const { CorruptDocument } = await import('../store/documents.ts');
    if (err instanceof CorruptDocument) {
      writeErr(`cairn: ${what}store ${at.url}: ${err.message}\n`);
      return ExitCode.unreachable;
    }
    throw err;
  } finally {
    await store?.close();
  }
}

export function withStore<T>(flags: StoreFlags, fn: (store: Store) => Promise<T>): Promise<T | number> {
  return withStoreAt(resolveStore(flags), fn);
}

/**
 * Keeps an apply's report in the store, per target, with the id the site would have as a
 * revision (so `cairn status` shows whether a target runs what was pushed). A store that cannot
 * be reached or refuses is said on stderr; the run itself stands (that exit code if it had
 * succeeded).
 */
export async function keepReports(flags: StoreFlags & { site: string }, report: RunReport): Promise<number | undefined> {
  const found = configuredStore(flags);
  if (!found || report.mode !== 'apply') return undefined;
  const { KEYS, siteRevision } = await import('../store/documents.ts');
  const { id: revision } = siteRevision(resolve(flags.site));
  return withStoreAt(found, async (store) => {
    for (const target of report.targets) {
      // A target a rollout held back was not run: its last run, and that run's revision, still stand.
      if (target.status === 'skipped') continue;
      await store.put(KEYS.report(target.name), JSON.stringify({ ...report, revision, targets: [target] }));
    }
    return undefined;
  }, "the run's reports were not stored: ");
}

export interface PushOptions extends StoreFlags {
  site: string;
  diff?: boolean;
  json?: boolean;
}

function isText(data: Buffer): boolean {
  return !data.subarray(0, 8000).includes(0);
}

/**
 * The facts each target of the site last reported through its agent's registration; a target
 * with none gets the facts assumed for it (catalog/facts-input.ts), which is said on stderr.
 */
async function lastKnownFacts(store: Store, compiler: SiteCompiler, names: string[]): Promise<{ name: string; facts: Record<string, unknown> }[]> {
  const { KEYS } = await import('../store/documents.ts');
  const out = [];
  const assumed: string[] = [];
  let description = '';
  for (const name of names) {
    let facts = await agentFacts(store, KEYS.agent(name));
    if (!facts) {
      ({ facts, description } = await compiler.assumedFacts(name));
      assumed.push(name);
    }
    out.push({ name, facts });
  }
  if (assumed.length) writeErr(`cairn: no agent has reported facts for ${assumed.join(', ')}: compiled as ${description}\n`);
  return out;
}

async function agentFacts(store: Store, key: string): Promise<Record<string, unknown> | undefined> {
  const kv = await store.get(key);
  try {
    const record = kv && (JSON.parse(kv.value.toString('utf8')) as { facts?: unknown });
    if (record && record.facts && typeof record.facts === 'object' && !Array.isArray(record.facts)) return record.facts as Record<string, unknown>;
  } catch {
    // A registration that is not JSON has no facts to offer; the agent rewrites it on start.
  }
  return undefined;
}

/**
 * For plan and apply: the facts each of `names` last reported through its agent's registration,
 * for templates' `it.targets` (DESIGN §4a). Without a configured store, or one that cannot be
 * reached (said on stderr), none are known: a template must do without, not stop the run.
 */
export async function knownFacts(flags: StoreFlags, names: string[]): Promise<Record<string, Record<string, unknown>>> {
  const found = configuredStore(flags);
  if (!found) return {};
  const { KEYS } = await import('../store/documents.ts');
  const out: Record<string, Record<string, unknown>> = {};
  const r = await withStoreAt(found, async (store) => {
    for (const name of names) {
      const facts = await agentFacts(store, KEYS.agent(name));
      if (facts) out[name] = facts;
    }
  }, "other targets' facts were not read: ");
  return typeof r === 'number' ? {} : out;
}

/**
 * `cairn push`: compiles every target of the site with its last known facts, then uploads the
 * site as one revision and prints its id. A site that does not compile is never pushed: every
 * agent would reject it, and a revision can't be taken back.
 */
export async function push(options: PushOptions, sources: Map<string, string>): Promise<number> {
  const { SiteCompiler } = await import('./site-compiler.ts');
  const compiler = new SiteCompiler({ site: options.site }, sources);
  // A site that does not even load fails here, before the store is opened.
  const names = await compiler.allTargetNames();
  const { pushSite, readBlob } = await import('../store/documents.ts');
  const result = await withStore(options, async (store) => {
    await compiler.compile(await lastKnownFacts(store, compiler, names));
    const r = await pushSite(store, resolve(options.site), { dryRun: options.diff === true });
    const { added, removed, modified } = r.diff;
    if (options.json) {
      writeOut(`${JSON.stringify({ revision: r.id, parent: r.parent, created: r.created, added, removed, modified, repaired: r.repaired }, null, 2)}\n`);
      return ExitCode.ok;
    }
    if (options.diff) {
      if (r.parent === r.id) writeOut(`no changes since revision ${r.id}\n`);
      for (const path of added) writeOut(`added     ${path}\n`);
      for (const path of removed) writeOut(`removed   ${path}\n`);
      for (const path of modified) {
        writeOut(`modified  ${path}\n`);
        const before = await readBlob(store, r.previous!.files[path]!, path);
        const after = r.files.get(path)!;
        if (isText(before) && isText(after)) {
          // Without the patch's "====" banner line: the file is named just above.
          writeOut(createTwoFilesPatch(`a/${path}`, `b/${path}`, before.toString('utf8'), after.toString('utf8'), undefined, undefined, { context: 3 }).replace(/^=+\n/, ''));
        }
      }
      return ExitCode.ok;
    }
    const what = `${added.length} added, ${modified.length} modified, ${removed.length} removed`;
    const repaired = r.repaired ? `; ${r.repaired} stored file${r.repaired === 1 ? '' : 's'} that did not match ${r.repaired === 1 ? 'its' : 'their'} hash written again` : '';
    writeOut(r.created ? `revision ${r.id} (${what}${r.parent ? ` since ${r.parent}` : ''}${repaired})\n` : `revision ${r.id} (unchanged${repaired})\n`);
    return ExitCode.ok;
  });
  return result;
}

export interface StatusOptions extends StoreFlags {
  json?: boolean;
}

/** `cairn status`: every target with an agent or a stored report: its last run, revision and counts. */
export async function status(options: StatusOptions): Promise<number> {
  const { KEYS, headManifest } = await import('../store/documents.ts');
  return withStore(options, async (store) => {
    // A head that names no readable revision is an error to show, not "nothing pushed".
    const head = await headManifest(store);
    const parse = (v: Buffer) => {
      try {
        return JSON.parse(v.toString('utf8')) as Record<string, unknown>;
      } catch {
        return undefined;
      }
    };
    const rows = new Map<string, { target: string; report?: Record<string, unknown>; agent?: Record<string, unknown> }>();
    for (const kv of await store.list(KEYS.reports)) {
      const target = kv.key.slice(KEYS.reports.length);
      rows.set(target, { target, report: parse(kv.value) });
    }
    for (const kv of await store.list(KEYS.agents)) {
      const target = kv.key.slice(KEYS.agents.length);
      rows.set(target, { ...(rows.get(target) ?? { target }), agent: parse(kv.value) });
    }
    const list = [...rows.values()].sort((a, b) => (a.target < b.target ? -1 : 1)).map(({ target, report, agent }) => {
      const t = (report?.targets as { status: string; counts: Record<string, number> }[] | undefined)?.[0];
      return {
        target,
        revision: report?.revision as string | undefined,
        finished: report?.finished as string | undefined,
        status: t?.status,
        counts: t?.counts,
        ...(agent ? { agent: { host: agent.host, updated: agent.updated, revision: agent.revision, ...(agent.rejected ? { rejected: agent.rejected } : {}) } } : {}),
      };
    });
    if (options.json) {
      writeOut(`${JSON.stringify({ version: 1, head: head?.manifest.id ?? null, targets: list }, null, 2)}\n`);
      return ExitCode.ok;
    }
    writeOut(`head revision: ${head?.manifest.id ?? '(nothing pushed)'}\n`);
    for (const row of list) {
      const c = row.counts;
      const counts = c ? `${c.changed} changed, ${c.unchanged} unchanged, ${c.failed} failed, ${c.skipped} skipped` : 'no run yet';
      const behind = head && row.revision && row.revision !== head.manifest.id ? ' (behind)' : '';
      writeOut(`${row.target.padEnd(20)} ${row.status ?? '-'}  revision ${row.revision ?? '-'}${behind}  ${row.finished ?? ''}  ${counts}\n`);
      const rejected = row.agent?.rejected as { revision: string; error: string } | undefined;
      if (rejected) writeOut(`${' '.repeat(21)}rejected revision ${rejected.revision}: ${rejected.error.split('\n')[0]}\n`);
    }
    return ExitCode.ok;
  });
}

export interface AgentCliOptions extends StoreFlags {
  name: string;
  once?: boolean;
  workDir: string;
  debounce: string;
  leaseTtl?: number;
  leaseWait?: number;
}

/** `cairn agent`: see daemon/agent.ts. Stops cleanly on SIGINT and SIGTERM. */
export async function agent(options: AgentCliOptions): Promise<number> {
  const { Agent, AgentRunningError } = await import('../daemon/agent.ts');
  const { formatDiagnostics } = await import('./diagnostics.ts');
  const { SiteCompiler } = await import('./site-compiler.ts');
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    return await withStore(options, (store) => new Agent({
      store,
      name: options.name,
      ...(options.once ? { once: true } : {}),
      workDir: options.workDir,
      debounceMs: Number(options.debounce) || 0,
      ...(options.leaseTtl !== undefined ? { leaseTtlSeconds: Math.max(1, options.leaseTtl) } : {}),
      ...(options.leaseWait !== undefined ? { leaseWaitSeconds: options.leaseWait } : {}),
      signal: controller.signal,
      log: (line) => writeOut(`${new Date().toISOString()} ${line}\n`),
      formatErrors: (err: InputError, files) => formatDiagnostics(err.diagnostics, files).trimEnd(),
      compile: async (dir, name, facts, files) => {
        const compiler = new SiteCompiler({ site: dir }, files);
        const selected = await compiler.select([name]);
        if (!selected.some((t) => t.name === name)) throw inputError(`the site has no target named ${name}`, undefined, 'give the agent the name of a target of the site (--name)');
        const [compiled] = await compiler.compile([{ name, facts }]);
        return compiled!;
      },
    }).run().catch((err: unknown) => {
      if (!(err instanceof AgentRunningError)) throw err;
      writeErr(`cairn: ${err.message}\n`);
      return err.exitCode;
    }));
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
