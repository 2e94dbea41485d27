/** Runs the built `cairn` command (dist/cairn.cjs, made by `npm run build`) on a site. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export const CAIRN = resolve(import.meta.dirname, '../../dist/cairn.cjs');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function cairn(args: string[], cwd = process.cwd()): CliResult {
  const r = spawnSync(process.execPath, [CAIRN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const temps: string[] = [];
process.on('exit', () => {
  // CAIRN_KEEP_TEMP=1 keeps them, to look at after a failure.
  if (process.env.CAIRN_KEEP_TEMP) return;
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temp folder, removed when the test process exits. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

/** Writes `files` (site-relative path → content) into a fresh temp folder and returns its path. */
export function makeSite(files: Record<string, string>): string {
  const dir = tempDir('cairn-site-');
  for (const [path, content] of Object.entries(files)) {
    const abs = join(dir, path);
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, content);
  }
  return dir;
}
