/**
 * TypeScript state files: bundled by esbuild (imported lazily, only for sites that have .ts files),
 * with `import … from 'cairn'` bound to this running Cairn's API so parts carry positions.
 */
import type * as Esbuild from 'esbuild';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as api from '../api/index.ts';
import { Diagnostics, type SourcePos } from '../lib/errors.ts';
import { dynamicImport } from '../lib/dynamic-import.ts';
import { posOf, setPos } from '../lib/positions.ts';
import type { StateDef } from './states.ts';

const API_GLOBAL = Symbol.for('cairn.api');

export async function typescriptStateFile(absPath: string, root: string, d: Diagnostics, component?: string): Promise<StateDef[]> {
  const file = relative(root, absPath);
  const mod = await importTypeScript(absPath, root, d);
  if (!mod) return [];

  const defs: StateDef[] = [];
  const exported = mod.default && typeof mod.default === 'object' && !isState(mod.default)
    ? Object.entries(mod.default as Record<string, unknown>)
    : Object.entries(mod).filter(([k]) => k !== 'default');
  for (const [name, value] of exported) {
    if (!isState(value)) continue;
    const pos = relativePos(value.pos, root) ?? { file, line: 1, col: 1 };
    defs.push({
      name, file, component, pos,
      params: Object.fromEntries(Object.entries(value.params ?? {}).map(([p, def]) => [p,
        def === null || def === undefined ? { required: true, pos } : { required: false, default: def, pos }])),
      lazy: value.lazy ?? false,
      defer: value.defer ?? false,
      include: (value.include ?? []).map((n) => ({ name: n, pos })),
      tags: value.tags ?? [],
      parts(it) {
        let parts: unknown;
        try {
          parts = value.parts(it);
        } catch (err) {
          const site = /\((\/[^():]+\.m?ts):(\d+):(\d+)\)/.exec((err as Error).stack ?? '');
          const at = site ? { file: relative(root, site[1]!), line: Number(site[2]), col: Number(site[3]) } : pos;
          const diag = new Diagnostics();
          diag.add(`state '${name}' failed: ${(err as Error).message}`, at);
          diag.throwIfAny();
        }
        if (!Array.isArray(parts)) {
          const diag = new Diagnostics();
          diag.add(`state '${name}': parts() must return a list of parts`, pos);
          diag.throwIfAny();
        }
        for (const p of parts as unknown[]) fixPositions(p, root);
        return parts as unknown[];
      },
    });
  }
  return defs;
}


/**
 * Bundles and imports a site's TypeScript file (a state file, a builder script), with `import …
 * from 'cairn'` bound to this running Cairn's API; undefined, with the problems collected at
 * their positions, when it does not build or load.
 */
export async function importTypeScript(absPath: string, root: string, d: Diagnostics): Promise<Record<string, unknown> | undefined> {
  const file = relative(root, absPath);
  const esbuild = await dynamicImport<typeof Esbuild>('esbuild');
  (globalThis as Record<symbol, unknown>)[API_GLOBAL] = api;
  // The bundle's source map must be relative to where the bundle is written, so stack traces
  // (and so part positions) name the original .ts file.
  const dir = mkdtempSync(join(tmpdir(), 'cairn-ts-'));
  const bundled = join(dir, 'states.mjs');
  let code: string;
  try {
    const result = await esbuild.build({
      entryPoints: [absPath],
      outfile: bundled,
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'node',
      sourcemap: 'inline',
      logLevel: 'silent',
      plugins: [{
        name: 'cairn-api',
        setup(build) {
          build.onResolve({ filter: /^cairn$/ }, () => ({ path: 'cairn', namespace: 'cairn-api' }));
          build.onLoad({ filter: /.*/, namespace: 'cairn-api' }, () => ({
            contents: `const api = globalThis[Symbol.for('cairn.api')];\n` +
              Object.keys(api).map((k) => `export const ${k} = api.${k};`).join('\n'),
            loader: 'js',
          }));
        },
      }],
    });
    code = result.outputFiles[0]!.text;
  } catch (err) {
    const errors = (err as { errors?: { text: string; location?: { file: string; line: number; column: number } }[] }).errors ?? [];
    for (const e of errors) {
      d.add(`TypeScript: ${e.text}`, e.location
        ? { file: relative(root, e.location.file) || file, line: e.location.line, col: e.location.column + 1 }
        : { file, line: 1, col: 1 });
    }
    if (errors.length === 0) d.add(`TypeScript: ${(err as Error).message}`, { file, line: 1, col: 1 });
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }

  process.setSourceMapsEnabled(true);
  let mod: Record<string, unknown>;
  try {
    writeFileSync(bundled, code);
    mod = await dynamicImport<Record<string, unknown>>(pathToFileURL(bundled).href);
  } catch (err) {
    d.add(`TypeScript file failed to load: ${(err as Error).message}`, { file, line: 1, col: 1 });
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return mod;
}

function isState(v: unknown): v is api.StateSpec {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'cairn-state';
}

function relativePos(pos: SourcePos | undefined, root: string): SourcePos | undefined {
  return pos ? { ...pos, file: relative(root, pos.file) } : undefined;
}

/** Builder call sites are absolute paths; errors name files relative to the site. */
function fixPositions(part: unknown, root: string): void {
  const self = posOf(part);
  if (!self || !self.file.startsWith('/') || typeof part !== 'object' || part === null) return;
  const rel = relativePos(self, root)!;
  setPos(part, rel, Object.fromEntries(Object.keys(part).map((k) => [k, rel])));
}
