/** Variable precedence (DESIGN §3): maps merge deeply; lists and scalars replace. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYamlScalar } from 'yaml';
import { inputError } from '../lib/errors.ts';

function isPlainMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Lays `over` on `out`, which the caller owns (it is changed): maps merge key by key into fresh
 * copies (the layers' own maps are never changed), anything else in `over` replaces. One output
 * map for all layers: copying a map of 100,000 variables once per layer (object spread is slow
 * on maps that large) made compiling such a site take seconds.
 */
function mergeInto(out: Record<string, unknown>, over: Record<string, unknown>): void {
  for (const k in over) {
    if (!Object.hasOwn(over, k)) continue;
    const v = over[k];
    const b = out[k];
    out[k] = isPlainMap(b) && isPlainMap(v) ? deepMerge(b, v) : v;
  }
}

/** Lays `over` on `base`: maps merge key by key, anything else in `over` replaces. */
export function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  return mergeAll([base, over]);
}

export function mergeAll(layers: readonly Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const layer of layers) mergeInto(out, layer);
  return out;
}

/** Sets `value` at a dotted path (`a.b.c`), creating maps on the way. */
export function setPath(target: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const keys = path.split('.');
  const root: Record<string, unknown> = {};
  let cur = root;
  keys.forEach((k, i) => {
    if (i === keys.length - 1) cur[k] = value;
    else {
      const next: Record<string, unknown> = {};
      cur[k] = next;
      cur = next;
    }
  });
  return deepMerge(target, root);
}

/** A YAML or JSON file given on the command line (`--facts`, `--var k=@file`). */
export function readDataFile(path: string, flag: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw inputError(`${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parseYamlScalar(text);
  } catch (err) {
    throw inputError(`${flag}: ${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
}

/**
 * `--var k=v` values: YAML scalars (`n=3` is a number) or `k=@file.yaml` for a whole document.
 * Dotted keys set nested values (`nginx.port=8080`).
 */
export function parseCliVars(specs: readonly string[], cwd: string): Record<string, unknown> {
  let vars: Record<string, unknown> = {};
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    if (eq <= 0) throw inputError(`--var '${spec}': expected key=value`, undefined, 'e.g. --var motd="hello" or --var users=@users.yaml');
    const key = spec.slice(0, eq);
    const raw = spec.slice(eq + 1);
    let value: unknown;
    if (raw.startsWith('@')) {
      value = readDataFile(resolve(cwd, raw.slice(1)), `--var ${key}`);
    } else {
      try {
        value = raw === '' ? '' : parseYamlScalar(raw);
      } catch {
        value = raw;
      }
    }
    vars = setPath(vars, key, value);
  }
  return vars;
}
