/** Runs the built `cairn` command (dist/cairn.mjs, made by `npm run build`) on a site. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export const CAIRN = resolve(import.meta.dirname, '../../dist/cairn.mjs');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function cairn(args: string[], cwd = process.cwd()): CliResult {
  const r = spawnSync(process.execPath, [CAIRN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Writes `files` (site-relative path → content) into a fresh temp folder and returns its path. */
export function makeSite(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-site-'));
  for (const [path, content] of Object.entries(files)) {
    const abs = join(dir, path);
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, content);
  }
  return dir;
}
