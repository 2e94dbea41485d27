/**
 * What a master compiles when the API asks for a plan or apply without compiled runs
 * (`POST /api/v1/runs {mode, targets}`): the targets of the pushed head revision, each with the
 * facts its agent last reported, through the same compiler (and cache) as the CLI. Site code and
 * templates run here, on the master; agents receive only the compiled runs.
 */
import { join } from 'node:path';
import { HttpError } from '../daemon/master/routes.ts';
import type { CompileHead, HeadGroups } from '../daemon/master/api-runs.ts';
import { encodeForEngine } from '../graph/codec.ts';
import { InputError } from '../lib/errors.ts';
import { headManifest, materialize } from '../store/documents.ts';
import type { Store } from '../store/types.ts';
import { formatDiagnostics } from './diagnostics.ts';
import { SiteCompiler } from './site-compiler.ts';

/** Compiles from `store`'s head revision, unpacking revisions under `workDir`. */
export function compileHeadFrom(store: Store, workDir: string): CompileHead {
  return async (targets, vars) => {
    const head = await headManifest(store);
    if (!head) throw new HttpError(409, 'nothing was pushed to this store yet: cairn push first, or send compiled runs');
    const dir = await materialize(store, head.manifest, join(workDir, 'revisions'));
    return refusedAs422(head.manifest.id, 'does not compile', async (sources) => {
      // Variables as `--var k=v` would give them: each value a YAML scalar written as JSON.
      const compiler = new SiteCompiler({ site: dir, var: Object.entries(vars).map(([k, v]) => `${k}=${JSON.stringify(v)}`) }, sources);
      const known = new Set(await compiler.allTargetNames());
      const missing = targets.filter((t) => !known.has(t.name)).map((t) => t.name);
      if (missing.length) throw new HttpError(422, `revision ${head.manifest.id} has no target named ${missing.join(', ')}`);
      const compiled = await compiler.compile(targets);
      return { revision: head.manifest.id, compiled: new Map(compiled.map((c) => [c.run.target.name, encodeForEngine(c)])) };
    });
  };
}

/** Runs `load` over a revision's site; its input errors become a 422 naming the revision and positions. */
async function refusedAs422<T>(revision: string, what: string, load: (sources: Map<string, string>) => Promise<T>): Promise<T> {
  const sources = new Map<string, string>();
  try {
    return await load(sources);
  } catch (err) {
    if (err instanceof InputError) throw new HttpError(422, `revision ${revision} ${what}:\n${formatDiagnostics(err.diagnostics, sources).trimEnd()}`);
    throw err;
  }
}

/**
 * Each target's groups in `store`'s head revision, read from its catalog (no target compiled);
 * remembered per revision, since every Targets screen asks.
 */
export function headGroupsFrom(store: Store, workDir: string): HeadGroups {
  let known: { revision: string; groups: Promise<Map<string, string[]>> } | undefined;
  return async () => {
    const head = await headManifest(store);
    if (!head) return undefined;
    if (known?.revision !== head.manifest.id) {
      const groups = (async () => {
        const dir = await materialize(store, head.manifest, join(workDir, 'revisions'));
        return refusedAs422(head.manifest.id, 'does not load', (sources) => new SiteCompiler({ site: dir }, sources).targetGroups());
      })();
      known = { revision: head.manifest.id, groups };
      // A failure is not remembered: the next request tries again.
      groups.catch(() => {
        if (known?.groups === groups) known = undefined;
      });
    }
    return { revision: head.manifest.id, groups: await known.groups };
  };
}
