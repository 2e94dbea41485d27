/**
 * The built-in OS tables (src/catalog/os/*.yaml): Debian, Ubuntu, RHEL-like, Alpine, Arch and
 * FreeBSD. The build parses them into the bundle (`__CAIRN_OS_TABLES__`, their JSON text), so a run
 * reads no file for them; from source (tests) they are read and parsed here.
 *
 * JSON text rather than an object literal: esbuild sets up an object `define` in a module that
 * every module of the bundle initialises first, so every run, a converged one included, built
 * the tables (some 200 KB of young objects, enough to cost it a scavenge) though only a compile
 * reads them. A string constant costs nothing until it is parsed here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

declare const __CAIRN_OS_TABLES__: string | undefined;

let tables: { file: string; doc: unknown }[] | undefined;

export function builtinOsTables(): { file: string; doc: unknown }[] {
  if (tables) return tables;
  if (typeof __CAIRN_OS_TABLES__ === 'string') {
    tables = Object.entries(JSON.parse(__CAIRN_OS_TABLES__) as Record<string, unknown>).map(([file, doc]) => ({ file, doc }));
  } else {
    const dir = join(import.meta.dirname, 'os');
    tables = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()
      .map((f) => ({ file: `(built in) os/${f}`, doc: parse(readFileSync(join(dir, f), 'utf8')) as unknown }));
  }
  return tables;
}
