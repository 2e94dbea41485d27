#!/usr/bin/env node
// The benchmark harness: the standard workload (../shared/bench, 742 resources) converged by Cairn
// and by the hand-written shell script in the same run, alternating, for three scenarios, then a
// scale series. Prints a table and writes bench/RESULTS.md.
//
//   npm run bench [-- --runs N] [-- --quick]        (needs `npm run build` first)
//
// Every figure is a whole process timed from outside (start-up included), like the peers'
// RESULTS.md: wall time from a monotonic clock, CPU (user+sys) and peak RSS from GNU time.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..');
const peers = resolve(repo, '../shared/bench/peers');
const cairnBin = join(repo, 'dist/cairn.mjs');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const runs = Number(args[args.indexOf('--runs') + 1]) || (quick ? 3 : 5);
const scaleSizes = quick ? [1000] : [1000, 10000, 50000];

if (!existsSync(cairnBin)) throw new Error('dist/cairn.mjs is missing: run `npm run build` first');
if (!existsSync(join(peers, 'shell/converge.sh'))) throw new Error(`the peer workload is missing: ${peers}`);
if (!existsSync('/usr/bin/time')) throw new Error('GNU time is missing: apt-get install time');

const work = mkdtempSync(join(tmpdir(), 'cairn-bench-'));
const roots = { cairn: join(work, 'cairn'), shell: join(work, 'shell') };
const stateDir = '/tmp/cmbench/cairn-state'; // bench/site/cairn.yaml's state_dir

/** Runs a command under GNU time: wall (ms, monotonic), cpu (s), peak RSS (MiB), and its stdout. */
function timed(argv, env = {}) {
  const tfile = join(work, 'time.out');
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-o', tfile, '-f', '%U %S %M', ...argv], { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 28 });
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}:\n${r.stderr}`);
  const [user, sys, rssKb] = readFileSync(tfile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  return { wall, cpu: user + sys, rss: rssKb / 1024, stdout: r.stdout };
}

const cairn = (root, extra = []) => ['node', cairnBin, 'apply', '--site', join(repo, 'bench/site'), '--var', `root=${root}`, ...extra];
const shell = () => ['sh', join(peers, 'shell/converge.sh')];

function resetCairn() {
  rmSync(roots.cairn, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
}
function resetShell() {
  rmSync(roots.shell, { recursive: true, force: true });
}

/** What each tool changed: Cairn's JSON report, the shell script's last line. */
function cairnCounts(stdout) {
  const report = JSON.parse(stdout);
  const nodes = report.targets[0].nodes;
  const handler = nodes.filter((n) => n.state === 'reload-app' && n.status === 'changed').length;
  return { changed: nodes.filter((n) => n.status === 'changed').length - handler, handler };
}
function shellCounts(stdout) {
  const m = /changed=(\d+) handler=(\d+)/.exec(stdout);
  return { changed: Number(m[1]), handler: Number(m[2]) };
}

function snapshot(root) {
  return execFileSync('sh', [join(peers, 'tools/snapshot.sh'), root], { encoding: 'utf8' }).replaceAll(root, '$ROOT');
}

// 1. Correctness first: both converge the same tree, with the right counts.
let version = 1;
resetCairn();
resetShell();
const checks = [];
const expectCounts = (what, got, want) => {
  const ok = got.changed === want.changed && got.handler === want.handler;
  checks.push(`${ok ? 'ok' : 'WRONG'}: ${what}: changed=${got.changed} handler=${got.handler} (expected ${want.changed} + ${want.handler})`);
  if (!ok) process.exitCode = 1;
};
expectCounts('cairn first run', cairnCounts(timed(cairn(roots.cairn, ['--json', '--var', `app_version=${version}`])).stdout), { changed: 742, handler: 1 });
expectCounts('shell first run', shellCounts(timed(shell(), { ROOT: roots.shell, APP_VERSION: String(version) }).stdout), { changed: 742, handler: 1 });
expectCounts('cairn no-op', cairnCounts(timed(cairn(roots.cairn, ['--json', '--var', `app_version=${version}`])).stdout), { changed: 0, handler: 0 });
expectCounts('shell no-op', shellCounts(timed(shell(), { ROOT: roots.shell, APP_VERSION: String(version) }).stdout), { changed: 0, handler: 0 });
version++;
expectCounts('cairn change', cairnCounts(timed(cairn(roots.cairn, ['--json', '--var', `app_version=${version}`])).stdout), { changed: 1, handler: 1 });
expectCounts('shell change', shellCounts(timed(shell(), { ROOT: roots.shell, APP_VERSION: String(version) }).stdout), { changed: 1, handler: 1 });
const same = snapshot(roots.cairn) === snapshot(roots.shell);
checks.push(`${same ? 'ok' : 'WRONG'}: the trees are identical (tools/snapshot.sh)`);
if (!same) process.exitCode = 1;

// 2. Timings, alternating the two tools run by run.
const scenarios = [
  { name: 'first run (742 changes + handler)', prepare: { cairn: resetCairn, shell: resetShell }, fixedVersion: true },
  { name: 'no-op re-run (0 changes)', prepare: { cairn() {}, shell() {} }, fixedVersion: true },
  { name: 'one changed input (1 file + handler)', prepare: { cairn() {}, shell() {} }, fixedVersion: false },
];
const results = [];
for (const sc of scenarios) {
  const samples = { cairn: [], shell: [] };
  // Converge first so the no-op and change scenarios start from a converged tree.
  timed(cairn(roots.cairn, ['--var', `app_version=${version}`]));
  timed(shell(), { ROOT: roots.shell, APP_VERSION: String(version) });
  for (let i = 0; i < runs; i++) {
    if (!sc.fixedVersion) version++;
    for (const tool of ['cairn', 'shell']) {
      sc.prepare[tool]();
      samples[tool].push(tool === 'cairn'
        ? timed(cairn(roots.cairn, ['--var', `app_version=${version}`]))
        : timed(shell(), { ROOT: roots.shell, APP_VERSION: String(version) }));
    }
  }
  results.push({ scenario: sc.name, samples });
}

// 3. Scale series: generated sites of N resources (directories of 10 files), no-op and first run.
function scaleSite(n) {
  const dir = join(work, `site-${n}`);
  mkdirSync(join(dir, 'states'), { recursive: true });
  writeFileSync(join(dir, 'cairn.yaml'), `targets:\n  local:\n    executor: local\n    state_dir: ${join(work, `state-${n}`)}\n    run: [scale]\n`);
  const dirs = Math.ceil(n / 11);
  writeFileSync(join(dir, 'states/scale.yaml'), [
    'scale:',
    `<% for (let d = 0; d < ${dirs}; d++) { %>`,
    '  - directory: <%= it.vars.root %>/d<%= d %>',
    '<% for (let f = 0; f < 10; f++) { %>',
    '  - file: <%= it.vars.root %>/d<%= d %>/f<%= f %>',
    '    content: "<%= d %>/<%= f %>\\n"',
    '<% } %>',
    '<% } %>',
    '',
  ].join('\n'));
  return { dir, count: dirs * 11 };
}
const scale = [];
for (const n of scaleSizes) {
  const { dir, count } = scaleSite(n);
  const root = join(work, `root-${n}`);
  const cmd = ['node', cairnBin, 'apply', '--site', dir, '--var', `root=${root}`];
  const first = timed(cmd);
  const noop = timed(cmd);
  const cold = timed([...cmd, '--var', 'cache=miss']); // same tree, a fresh compile
  scale.push({ resources: count, first, noop, cold });
  rmSync(root, { recursive: true, force: true });
}
const oneSite = scaleSite(1);
const startup = [];
for (let i = 0; i < runs; i++) startup.push(timed(['node', cairnBin, 'apply', '--site', oneSite.dir, '--var', `root=${join(work, 'root-1')}`]));

// 4. Report.
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);
const stat = (samples, key, fmt) => `${fmt(median(samples.map((s) => s[key])))} (${fmt(Math.min(...samples.map((s) => s[key])))}–${fmt(Math.max(...samples.map((s) => s[key])))})`;
const version_ = (cmd) => {
  try {
    return execFileSync(cmd[0], cmd.slice(1), { encoding: 'utf8' }).trim().split('\n')[0];
  } catch {
    return '?';
  }
};
const lines = [];
lines.push('# Benchmark results', '');
lines.push(`Written by \`npm run bench\` on ${new Date().toISOString()}; ${runs} runs per figure, the two tools alternating.`, '');
lines.push('| machine | value |', '| --- | --- |');
lines.push(`| CPU | ${cpus().length} × ${cpus()[0]?.model ?? '?'} |`, `| memory | ${(totalmem() / 2 ** 30).toFixed(1)} GiB |`);
lines.push(`| OS | ${version_(['sh', '-c', '. /etc/os-release; echo $PRETTY_NAME'])}, Linux ${version_(['uname', '-r'])} |`);
lines.push(`| Node.js | ${process.version} |`, `| Cairn | ${JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).version} (${version_(['git', '-C', repo, 'rev-parse', '--short', 'HEAD'])}) |`);
lines.push(`| shell | ${version_(['sh', '-c', 'dpkg-query -W -f "dash \\${Version}" dash'])} |`, '');
lines.push('## Checks', '', ...checks.map((c) => `- ${c}`), '');
lines.push('## The standard workload (742 resources), Cairn against the shell script', '');
lines.push('| scenario | tool | wall, median (min–max) | cpu s, median | peak RSS MiB | Cairn / shell |', '| --- | --- | --- | --- | ---: | ---: |');
for (const r of results) {
  const ratio = median(r.samples.cairn.map((s) => s.wall)) / median(r.samples.shell.map((s) => s.wall));
  for (const tool of ['cairn', 'shell']) {
    const s = r.samples[tool];
    lines.push(`| ${r.scenario} | ${tool} | ${stat(s, 'wall', fmtMs)} | ${median(s.map((x) => x.cpu)).toFixed(2)} | ${Math.round(median(s.map((x) => x.rss)))} | ${tool === 'cairn' ? `${ratio.toFixed(2)}×` : '1×'} |`);
  }
}
lines.push('', '## Scale series (generated sites: directories of 10 files)', '');
lines.push('| resources | first run | no-op (compile cached) | no-op, fresh compile | peak RSS MiB (fresh compile) |', '| ---: | ---: | ---: | ---: | ---: |');
for (const s of scale) lines.push(`| ${s.resources} | ${fmtMs(s.first.wall)} | ${fmtMs(s.noop.wall)} | ${fmtMs(s.cold.wall)} | ${Math.round(s.cold.rss)} |`);
lines.push('', `Start-up cost (a one-resource no-op run): ${stat(startup, 'wall', fmtMs)}, peak RSS ${Math.round(median(startup.map((s) => s.rss)))} MiB.`, '');
lines.push('Not measured here yet: Ansible and Puppet in the same run (`--peers`), and the SSH variant (needs the SSH executor).', '');
const text = lines.join('\n');
process.stdout.write(`${text}\n`);
if (!quick) writeFileSync(join(here, 'RESULTS.md'), text);
rmSync(work, { recursive: true, force: true });
