/**
 * The built-in OS tables (src/catalog/os/*.yaml): Debian, Ubuntu, RHEL-like, Alpine, Arch and
 * FreeBSD. The build parses them into the bundle (`__CAIRN_OS_TABLES__`), so a run reads no file
 * for them; from source (tests) they are read and parsed here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

declare const __CAIRN_OS_TABLES__: Record<string, unknown> | undefined;

let tables: { file: string; doc: unknown }[] | undefined;

export function builtinOsTables(): { file: string; doc: unknown }[] {
  if (tables) return tables;
  if (typeof __CAIRN_OS_TABLES__ === 'object' && __CAIRN_OS_TABLES__) {
    tables = Object.entries(__CAIRN_OS_TABLES__).map(([file, doc]) => ({ file, doc }));
  } else {
    const dir = join(import.meta.dirname, 'os');
    tables = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()
      .map((f) => ({ file: `(built in) os/${f}`, doc: parse(readFileSync(join(dir, f), 'utf8')) as unknown }));
  }
  return tables;
}
