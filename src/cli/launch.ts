/**
 * The `cairn` command's first few lines (built to dist/cairn.cjs): it runs the bundled CLI
 * (dist/cairn-main.cjs) from V8's code cache, so a run does not parse and compile Cairn's code
 * again, and it sizes libuv's thread pool before anything starts it. Both are start-up costs
 * that a converged run pays on every invocation (DESIGN §11, bench/RESULTS.md).
 *
 * The compiler's large libraries (zod, yaml: two thirds of the code) are a file of their own,
 * dist/cairn-vendor.cjs, run the same way when a command first needs them, so a run that finds
 * its compiled site in the compile cache neither reads them nor loads their part of the cache;
 * so are the master's and the agents' (X.509, WebSocket: dist/cairn-vendor-pki.cjs).
 *
 * CommonJS on purpose: an ES module entry is read through the thread pool before its first line
 * runs, too late to size it, and Node 20 has no module compile cache of its own.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { POOL_SIZE_BY_LAUNCHER } from '../lib/command-env.ts';
import { LENT_IMPORT, LENT_LOAD } from '../lib/dynamic-import.ts';
import { defaultFlags, tieringByLauncher, underDefaultFlags } from '../lib/tiering.ts';

declare const __dirname: string;
// This file's own require: the bundles lie beside it, so it resolves for them as their own would,
// without loading node:module for createRequire().
declare const require: NodeJS.Require;

// Writes wait on fsync in the pool, side by side (Executor.overlap); the default 4 threads
// would let only 4 of them reach the disk together. The pool reads the variable when it starts,
// at a run's first write, so a converged run neither starts nor stops 16 threads. Commands Cairn
// runs do not get it (lib/command-env.ts); a value the user set is left alone.
if (process.env.UV_THREADPOOL_SIZE === undefined) {
  process.env.UV_THREADPOOL_SIZE = '16';
  (globalThis as { [POOL_SIZE_BY_LAUNCHER]?: boolean })[POOL_SIZE_BY_LAUNCHER] = true;
}

// One cache per command and file: each holds the functions its command ran, not just the top level.
const command = /^[a-z][a-z-]*$/.test(process.argv[2] ?? '') ? process.argv[2]! : 'other';

// Most runs are short: the CLI may turn V8's optimizing compiler off and keep its young
// generation small, until a run proves long (lib/tiering.ts). Not in the daemons (agent, master):
// they live on, and their code is worth optimizing.
if (['apply', 'plan', 'show', 'export'].includes(command)) tieringByLauncher();

/**
 * The bundle's cache when a compile made it: `.cairn-main.apply.compile.v8-cache` beside the
 * plain one. A cache holds every function its run compiled, and a compile runs a third of the
 * bundle that a converged run never calls (the site compiler, the catalog, the templates):
 * deserialized by every converged run after it, they cost each about 1.5 ms. Yet a project's
 * first run is a compile. So the cache a compile made serves until a run that compiles nothing
 * uses it, which removes it; the next run starts without a cache and makes the plain one, which
 * every run prefers from then on (a compile with it lazily compiles what it lacks, a small part
 * of a compile's time, and leaves it as it is).
 */
const MAIN = 'cairn-main.cjs';
const COMPILED = '.compile';
/** The compiler's libraries (scripts/build.mjs): a run that loads them compiles. */
const COMPILER = 'cairn-vendor.cjs';

function cacheFileOf(file: string, kind = ''): string {
  return join(__dirname, `.${file.replace(/\.cjs$/, '')}.${command}${kind}.v8-cache`);
}

/** Caches to write at exit: those missing or rejected (made at exit, they hold every function the run compiled). */
const toCache: { script: Script; file: string }[] = [];
/** The compile's cache of the bundle, when this run used it. */
let usedCompiledCache: string | undefined;

/** Runs one of the built CommonJS files beside this one from its code cache; returns its exports. */
function runCached(file: string): unknown {
  const path = join(__dirname, file);
  let cacheFile: string | undefined;
  let cachedData: Buffer | undefined;
  for (const candidate of file === MAIN ? [cacheFileOf(file), cacheFileOf(file, COMPILED)] : [cacheFileOf(file)]) {
    try {
      cachedData = readFileSync(candidate);
      cacheFile = candidate;
      break;
    } catch {
      // No cache yet: this run makes it.
    }
  }
  // The build wrote the file as the function to call (CommonJS's wrapper included), so it is
  // compiled as read, with no copy. esbuild writes ASCII (it escapes everything else), so latin1
  // reads it without a UTF-8 decode; a large file becomes one external string.
  const wrapper = readFileSync(path, 'latin1');
  // Checked against the flags its cache was made under: V8's defaults (lib/tiering.ts).
  const script = underDefaultFlags(() => new Script(wrapper, { filename: path, ...(cachedData ? { cachedData } : {}) }));
  if (!cachedData || script.cachedDataRejected) {
    toCache.push({ script, file });
    // A rejected cache (another Node, other flags) goes, so that it is not preferred to the new one.
    if (cacheFile) removeQuietly(cacheFile);
  } else if (cacheFile === cacheFileOf(MAIN, COMPILED)) {
    usedCompiledCache = cacheFile;
  }
  const module = { exports: {} };
  (script.runInThisContext() as (...args: unknown[]) => void)(module.exports, require, module, path, __dirname);
  return module.exports;
}

/** Best effort: a read-only installation simply keeps what it has. */
function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {
    // Left as it is.
  }
}

process.once('exit', () => {
  const compiled = loaded.has(COMPILER);
  // Its first converged run is over: the next run makes the cache of a converged run.
  if (usedCompiledCache && !compiled) removeQuietly(usedCompiledCache);
  // A cache made under other flags than a run starts with would be rejected by every run.
  if (toCache.length > 0) defaultFlags();
  for (const { script, file } of toCache) {
    const cacheFile = cacheFileOf(file, file === MAIN && compiled ? COMPILED : '');
    // Atomic, and best effort: a read-only installation simply runs without a cache.
    const temp = `${cacheFile}.${process.pid}`;
    try {
      writeFileSync(temp, script.createCachedData());
      renameSync(temp, cacheFile);
    } catch {
      removeQuietly(temp);
    }
  }
});

// import() works here, in a module Node loaded itself (see lib/dynamic-import.ts).
const lent = globalThis as { [LENT_IMPORT]?: (specifier: string) => Promise<unknown>; [LENT_LOAD]?: (file: string) => unknown };
lent[LENT_IMPORT] = (specifier) => import(specifier);
const loaded = new Map<string, unknown>();
lent[LENT_LOAD] = (file) => {
  if (!loaded.has(file)) loaded.set(file, runCached(file));
  return loaded.get(file);
};

runCached('cairn-main.cjs');
