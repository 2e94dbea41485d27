/**
 * Provisioning profiles (`profiles/<name>.yaml`, DESIGN §10): which script builds, with what
 * system, networks, storage, user data and arguments. Validated like every site file: an error
 * names the file, line and column, and nothing is built.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { didYouMean } from '../lib/did-you-mean.ts';
import { Diagnostics, inputError, type SourcePos } from '../lib/errors.ts';
import { keyPosOf, LineIndex, posOf } from '../lib/positions.ts';
import { validate } from '../site/validate.ts';
import { parseYaml } from '../site/yaml.ts';
import type { ArgumentSpec, BuildNetwork, BuildSystem, BuildVolume } from './builder.ts';
import { BUILTIN_SCRIPTS } from './builtins.ts';

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** `10G`, `512M`, `1.5T`, `4096K` (binary units) or a number of bytes. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(value);
  if (!m) return undefined;
  const bytes = Math.round(Number(m[1]) * UNITS[m[2]!.toUpperCase()]!);
  return bytes > 0 ? bytes : undefined;
}

const size = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const bytes = parseSize(v);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a size such as 10G, 512M or a number of bytes, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return bytes;
});

/** Memory: MiB as a number, or a size with a unit (`2G`). */
const memory = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v;
  const bytes = parseSize(v);
  if (bytes === undefined || !/[KMGT]/i.test(v) || bytes < 2 ** 20) {
    ctx.addIssue({ code: 'custom', message: `expected MiB as a number, or a size with a unit such as 2G, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return Math.floor(bytes / 2 ** 20);
});

const systemSchema = z.object({
  cpus: z.number().int().min(1).default(1),
  memory: memory.default(512),
  serial: z.boolean().default(true),
  console: z.boolean().default(false),
}).strict();

const networkSchema = z.object({
  bridge: z.string().min(1).optional(),
  network: z.string().min(1).optional(),
  mac: z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i, 'expected a MAC address such as 52:54:00:12:34:56').optional(),
  model: z.string().min(1).optional(),
}).strict();

const volumeSchema = z.object({
  size,
  format: z.enum(['raw', 'qcow2']).default('raw'),
  filesystem: z.string().min(1).optional(),
  mountpoint: z.string().startsWith('/', 'expected an absolute path in the guest').optional(),
  source: z.string().min(1).optional(),
}).strict();

const argValue = z.union([z.string(), z.number(), z.boolean()]).transform(String);

export const profileSchema = z.object({
  script: z.string().min(1),
  kind: z.enum(['guest', 'container']).optional(),
  system: systemSchema.default({ cpus: 1, memory: 512, serial: true, console: false }),
  networks: z.array(networkSchema).default([]),
  storage: z.array(volumeSchema).default([]),
  user_data: z.string().optional(),
  args: z.record(z.string(), argValue).default({}),
}).strict();

export interface Profile {
  name: string;
  /** Site-relative path of the profile file. */
  file: string;
  script: string;
  kind?: 'guest' | 'container';
  system: BuildSystem;
  networks: BuildNetwork[];
  storage: BuildVolume[];
  user_data?: string;
  args: Record<string, string>;
  /** The parsed document, for positions of later errors (`pathPos`). */
  doc: unknown;
}

/** Where the script a profile names comes from. */
export type ScriptSource = { builtin: string } | { file: string };

const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Reads and validates `profiles/<name>.yaml` of the site; the text goes into `sources` for error snippets. */
export function loadProfile(siteDir: string, name: string, sources: Map<string, string>): Profile {
  const dir = join(siteDir, 'profiles');
  const known = existsSync(dir) ? readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => f.replace(/\.ya?ml$/, '')) : [];
  const file = ['yaml', 'yml'].map((ext) => `profiles/${name}.${ext}`).find((f) => existsSync(join(siteDir, f)));
  if (!PROFILE_NAME.test(name) || !file) {
    throw inputError(`no profile '${name}' (profiles/${name}.yaml in ${siteDir})${didYouMean(name, known)}`, undefined,
      known.length ? `profiles of the site: ${known.join(', ')}` : 'a profile is a YAML file in the site\'s profiles/ folder');
  }
  const text = readFileSync(join(siteDir, file), 'utf8');
  sources.set(file, text);
  const lines = new LineIndex(text);
  const doc = parseYaml(text, (offset, length) => ({ file, ...lines.lineCol(offset), length }), 'YAML');
  const d = new Diagnostics();
  const fallback = { file, line: 1, col: 1 };
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    d.add('a profile is a map with script:, system:, networks:, storage:, user_data: and args:', fallback);
    d.throwIfAny();
  }
  const parsed = validate(profileSchema, doc, d, { fallback, what: 'profile key' });
  d.throwIfAny();
  const p = parsed!;
  return {
    name, file, doc,
    script: p.script,
    ...(p.kind ? { kind: p.kind } : {}),
    system: p.system,
    networks: p.networks.map((n) => ({ ...n })),
    storage: p.storage.map((v, i) => ({ disk: `vd${String.fromCharCode(97 + i)}`, ...v })),
    ...(p.user_data !== undefined ? { user_data: p.user_data } : {}),
    args: p.args,
  };
}

/** The position of `path` (keys and list indexes) in the profile: the deepest one recorded. */
export function pathPos(profile: Profile, path: readonly (string | number)[], at: 'value' | 'key' = 'value'): SourcePos {
  let node: unknown = profile.doc;
  let pos: SourcePos = posOf(node) ?? { file: profile.file, line: 1, col: 1 };
  for (const [i, step] of path.entries()) {
    if (node === null || typeof node !== 'object') break;
    const key = at === 'key' && i === path.length - 1 && typeof step === 'string' ? keyPosOf(node, step) : undefined;
    const here = key ?? posOf(node, step) ?? keyPosOf(node, String(step));
    if (!here) break;
    pos = here;
    node = (node as Record<string | number, unknown>)[step];
  }
  return pos;
}

/** A built-in script, or `builders/<script>.ts` of the site; exit 2 at `script:` otherwise. */
export function resolveScript(siteDir: string, profile: Profile): ScriptSource {
  const name = profile.script;
  if (Object.hasOwn(BUILTIN_SCRIPTS, name)) return { builtin: name };
  if (/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    for (const ext of ['ts', 'mts']) {
      const file = join(siteDir, 'builders', `${name}.${ext}`);
      if (existsSync(file)) return { file };
    }
  }
  const dir = join(siteDir, 'builders');
  const own = existsSync(dir) ? readdirSync(dir).filter((f) => /\.m?ts$/.test(f)).map((f) => f.replace(/\.m?ts$/, '')) : [];
  const all = [...Object.keys(BUILTIN_SCRIPTS), ...own];
  throw inputError(`unknown script '${name}'${didYouMean(name, all)}`, pathPos(profile, ['script']),
    `built-in scripts: ${Object.keys(BUILTIN_SCRIPTS).join(', ')}${own.length ? `; the site's builders/: ${own.join(', ')}` : ''}`);
}

/**
 * The build's arguments: the profile's `args:`, overridden by `--arg k=v`, checked against what
 * the script declares (when it declares anything): defaults filled in, a required one missing or
 * an unknown one named is exit 2.
 */
export function resolveArguments(profile: Profile, overrides: Record<string, string>, declared: Record<string, ArgumentSpec> | undefined,
  scriptLabel: string): Record<string, string> {
  const args = { ...profile.args, ...overrides };
  if (!declared) return args;
  const d = new Diagnostics();
  const names = Object.keys(declared);
  for (const key of Object.keys(args)) {
    if (Object.hasOwn(declared, key)) continue;
    const fromCommandLine = Object.hasOwn(overrides, key);
    d.add(`${fromCommandLine ? `--arg ${key}` : `args.${key}`}: script '${scriptLabel}' takes no argument '${key}'${didYouMean(key, names)}`,
      fromCommandLine ? undefined : pathPos(profile, ['args', key], 'key'),
      { hint: names.length ? `its arguments: ${names.join(', ')}` : `script '${scriptLabel}' takes no arguments` });
  }
  for (const [key, spec] of Object.entries(declared)) {
    if (args[key] !== undefined) continue;
    if (spec.default !== undefined) args[key] = spec.default;
    else if (spec.required) {
      d.add(`script '${scriptLabel}' needs argument '${key}'${spec.description ? ` (${spec.description})` : ''}`,
        pathPos(profile, (profile.doc as Record<string, unknown>).args !== undefined ? ['args'] : ['script'], 'key'),
        { hint: `set it in the profile's args: or with --arg ${key}=VALUE` });
    }
  }
  d.throwIfAny();
  return args;
}

/** `--arg k=v` values into a map; a value without `=` is exit 2. */
export function parseArgOverrides(values: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const at = v.indexOf('=');
    if (at <= 0) throw inputError(`--arg ${v}: expected NAME=VALUE`);
    out[v.slice(0, at)] = v.slice(at + 1);
  }
  return out;
}
