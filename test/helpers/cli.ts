/**
 * Runs the `cairn` command on a site: `runCli` calls the CLI's main() from source in this
 * process, so a test runs the code as it is now, without a build and without starting Node;
 * `cairnBin` starts the built command (dist/cairn.cjs, made by `npm run build`), for what only a
 * separate process shows (the launcher, exit codes of a crash, stdout's descriptor, signals).
 */
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

export interface RunOptions {
  /** The working folder of the run (relative --site, --var k=@file); default: the test's. */
  cwd?: string;
  /** Variables set (or, when undefined, removed) for the run only. */
  env?: Record<string, string | undefined>;
  /** Sees standard output as the command writes it, while the run goes on. */
  onStdout?: (text: string) => void;
}

/** The built command in a process of its own. */
export function cairnBin(args: string[], cwd = process.cwd(), env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, [CAIRN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The run in progress: the working folder, environment and output are the process's, one run at a time. */
let running: Promise<unknown> = Promise.resolve();

/** The command's main() in this process, its output captured; runs one after another. */
export function runCli(args: string[], options: RunOptions = {}): Promise<CliResult> {
  const run = running.then(() => runNow(args, options));
  running = run.catch(() => undefined);
  return run;
}

async function runNow(args: string[], options: RunOptions): Promise<CliResult> {
  const [{ main }, { redirectOutput }] = await Promise.all([import('../../src/cli/main.ts'), import('../../src/cli/output.ts')]);
  const stdout: string[] = [];
  const stderr: string[] = [];
  const cwd = process.cwd();
  const saved = new Map<string, string | undefined>();
  const env = { NO_COLOR: '1', ...options.env };
  for (const [k, v] of Object.entries(env)) {
    saved.set(k, process.env[k]);
    setEnv(k, v);
  }
  const out = (text: string) => {
    stdout.push(text);
    options.onStdout?.(text);
  };
  const previous = redirectOutput({ out, err: (text) => stderr.push(text) });
  try {
    if (options.cwd) process.chdir(options.cwd);
    const status = await main(args);
    return { status, stdout: stdout.join(''), stderr: stderr.join('') };
  } finally {
    redirectOutput(previous);
    process.chdir(cwd);
    for (const [k, v] of saved) setEnv(k, v);
  }
}

function setEnv(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
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
