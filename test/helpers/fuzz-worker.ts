/**
 * Runs fuzz cases for test/fuzz-sites.test.ts in a process of its own, so the test can kill it
 * when a case hangs (a read blocked on a FIFO, an endless loop: nothing in-process could stop
 * them). Cases FUZZ_FROM..FUZZ_TO of seed FUZZ_SEED; for each, it tells the parent (IPC) that
 * the case starts, then what `show` and `plan` or `apply` did. The parent judges.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runCli } from './cli.ts';
import { baseSite, kindMutation, mutate, Prng, type FileKind } from './fuzz-sites.ts';

export interface CaseStart {
  kind: 'start';
  index: number;
  mutations: { file: string; what: string }[];
}

export interface CaseDone {
  kind: 'done';
  index: number;
  show: { status: number | null; stderr: string };
  /** The converging command, when one ran: not when the compiled site would reach outside the case's folder. */
  run?: { command: 'plan' | 'apply'; status: number | null; stderr: string; changed: string[]; failed?: string };
}

/** Every entry under `dir` but `skip`: type, mode, size, mtime and a content hash (or link target). */
function snapshot(dir: string, skip: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (at: string) => {
    for (const name of readdirSync(at)) {
      const abs = join(at, name);
      if (abs === skip) continue;
      const s = lstatSync(abs);
      const kind = s.isDirectory() ? 'dir' : s.isSymbolicLink() ? `link→${readlinkSync(abs)}` : s.isFile() ? 'file' : 'other';
      const content = s.isFile() ? createHash('sha256').update(readFileSync(abs)).digest('hex') : '';
      out.set(abs, `${kind} ${s.mode.toString(8)} ${s.size} ${s.mtimeMs} ${content}`);
      if (s.isDirectory()) walk(abs);
    }
  };
  walk(dir);
  return out;
}

function differences(before: Map<string, string>, after: Map<string, string>): string[] {
  const paths = new Set([...before.keys(), ...after.keys()]);
  return [...paths].filter((p) => before.get(p) !== after.get(p)).map((p) => `${p}: ${before.get(p) ?? '(absent)'} → ${after.get(p) ?? '(absent)'}`);
}

/** Whether every node of a compiled run (show --json) and its state_dir lie inside `caseDir`. */
function staysInside(shown: string, caseDir: string): boolean {
  const inside = (p: unknown) => typeof p === 'string' && p.startsWith(`${caseDir}/`) && !p.split('/').includes('..');
  try {
    const { run, graph } = JSON.parse(shown) as { run: { target: { state_dir?: unknown } }; graph: { nodes: { type: string; attributes: Record<string, unknown> }[] } };
    if (!inside(run.target.state_dir)) return false;
    return graph.nodes.every((n) => (n.type === 'file' || n.type === 'directory') && inside(n.attributes.path));
  } catch {
    return false;
  }
}

/** Writes `path` as `kind` instead of a plain file holding `content`. */
function writeOdd(path: string, content: string, kind: FileKind, caseDir: string): void {
  switch (kind) {
    case 'fifo': {
      const r = spawnSync('mkfifo', [path]);
      if (r.status !== 0) throw new Error(`mkfifo ${path}: ${r.stderr}`);
      return;
    }
    case 'folder':
      mkdirSync(path);
      return;
    case 'link-out': {
      const outside = join(caseDir, 'outside.txt');
      writeFileSync(outside, content);
      symlinkSync(outside, path);
      return;
    }
    case 'link-in': {
      writeFileSync(`${path}.real`, content);
      symlinkSync(`${path.split('/').pop()!}.real`, path);
      return;
    }
    case 'link-dangling':
      symlinkSync('nowhere', path);
      return;
    case 'cr-only':
      writeFileSync(path, content.replaceAll('\n', '\r'));
      return;
    case 'crlf':
      writeFileSync(path, content.replaceAll('\n', '\r\n'));
      return;
    case 'bom':
      writeFileSync(path, `\ufeff${content}`);
      return;
    case 'empty':
      writeFileSync(path, '');
  }
}

async function runCase(base: string, seed: number, index: number): Promise<void> {
  const rng = new Prng((seed * 1_000_003 + index) >>> 0);
  const caseDir = mkdtempSync(join(base, `case-${index}-`));
  const root = join(caseDir, 'root');
  const site = join(caseDir, 'site');
  // A tree the run would change, to see that an exit-2 run leaves it alone.
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc/motd'), 'old\n');
  const files = baseSite(caseDir);
  const mutations = mutate(files, rng);
  const odd = kindMutation(files, rng);
  if (odd) mutations.push({ file: odd.file, what: `make it: ${odd.kind}` });
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(site, path)), { recursive: true });
    if (odd?.file === path) writeOdd(join(site, path), content, odd.kind, caseDir);
    else writeFileSync(join(site, path), content);
  }
  process.send!({ kind: 'start', index, mutations } satisfies CaseStart);
  const vars = ['--var', `root=${root}`];
  const show = await runCli(['show', '--site', site, '--json', ...vars]);
  const result: CaseDone = { kind: 'done', index, show: { status: show.status, stderr: show.stderr } };
  // A compile that fails fails the same way in plan and apply: nothing of it can be applied.
  if (show.status === 2 || (show.status === 0 && staysInside(show.stdout, caseDir))) {
    const command = rng.next() < 0.5 ? 'plan' : 'apply';
    const before = snapshot(caseDir, site);
    const r = await runCli([command, '--site', site, ...vars]);
    result.run = { command, status: r.status, stderr: r.stderr, changed: differences(before, snapshot(caseDir, site)) };
    if (r.status === 1) result.run.failed = r.stdout.split('\n').filter((l) => /fail|error/i.test(l)).slice(0, 3).join(' | ');
  }
  rmSync(caseDir, { recursive: true, force: true });
  process.send!(result);
}

const seed = Number(process.env.FUZZ_SEED);
const from = Number(process.env.FUZZ_FROM);
const to = Number(process.env.FUZZ_TO);
const base = mkdtempSync(join(tmpdir(), 'cairn-fuzz-'));
try {
  for (let i = from; i < to; i++) await runCase(base, seed, i);
} finally {
  rmSync(base, { recursive: true, force: true });
}
process.disconnect();
