#!/usr/bin/env node
// The benchmark harness: the standard workload (../shared/bench, 742 resources) converged by Cairn,
// by the hand-written shell script and by CFEngine 3's cf-agent (its policy in bench/peers/cfengine)
// in the same run, alternating, for three scenarios, then a scale series (Cairn and cf-agent), the
// one-resource fixed cost (Cairn, cf-agent, `node -e 0`). Prints a table and writes bench/RESULTS.md.
//
//   npm run bench [-- --runs N] [-- --quick] [-- --peers] [-- --ssh-only | --no-ssh]   (needs `npm run build` first)
// --startup-only: just the one-resource fixed cost (Cairn, `node -e 0`, cf-agent), printed.
// --scale-only [--sizes 10000,100000]: just the scale series (Cairn and cf-agent at each size,
// default 1,000 / 10,000 / 50,000 / 100,000), printed, no RESULTS.md.
//   npm run bench -- --master [--agents N]: only the master's section (bench/master.mjs), which a
//   full run also runs at its end (2,000 agents; 500 with --quick).
// --export-only: just the standard workload's three scenarios for Cairn, the hand-written shell
// script and the script `cairn export --format sh` writes (no scale series, no SSH, no RESULTS.md).
// --peers also runs Puppet and Ansible (bench/install-peers.sh installs them); an Ansible run
// takes minutes, so it gets one run per scenario and Puppet three. CFEngine (Debian's cfengine3,
// also installed by bench/install-peers.sh) runs in every full run, as fast as the others.
//
// Every figure is a whole process timed from outside (start-up included), like the peers'
// RESULTS.md: wall time from a monotonic clock, CPU (user+sys) and peak RSS from GNU time.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { snapshot } from './snapshot.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..');
const peers = resolve(repo, '../shared/bench/peers');
const cairnBin = join(repo, 'dist/cairn.cjs');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const runs = Number(args[args.indexOf('--runs') + 1]) || (quick ? 3 : 5);
// --scale-only: just the scale series (Cairn and cf-agent), printed; --sizes 10000,100000 picks the sizes.
const scaleOnly = args.includes('--scale-only');
const scaleSizes = args.includes('--sizes') ? args[args.indexOf('--sizes') + 1].split(',').map(Number) : quick ? [1000] : [1000, 10000, 50000, 100000];
if (scaleSizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--sizes: a comma-separated list of resource counts, as 10000,100000');
// Compile-only scale (issue #27): a site with N variables, and one with N invocations of a state.
const varSizes = quick ? [10000] : [40000, 100000];
const invocationSizes = quick ? [1000] : [5000, 10000];
const withPeers = args.includes('--peers');
const sshOnly = args.includes('--ssh-only');
const exportOnly = args.includes('--export-only');
const withSsh = !args.includes('--no-ssh') && !exportOnly;
// The master's section (bench/master.mjs): alone with --master, else at the end of a full run;
// its figures are printed, not written to RESULTS.md. --agents N: how many agents (default 2,000).
const masterAgents = args.includes('--agents') ? Number(args[args.indexOf('--agents') + 1]) : quick ? 500 : 2000;
if (args.includes('--master')) {
  if (!existsSync(cairnBin)) throw new Error('dist/cairn.cjs is missing: run `npm run build` first');
  const { masterBench } = await import('./master.mjs');
  await masterBench({ agents: masterAgents });
  process.exit();
}

if (!existsSync(cairnBin)) throw new Error('dist/cairn.cjs is missing: run `npm run build` first');
if (!existsSync(join(peers, 'shell/converge.sh'))) throw new Error(`the peer workload is missing: ${peers}`);
if (!existsSync('/usr/bin/time')) throw new Error('GNU time is missing: apt-get install time');
const withCfengine = !sshOnly && !exportOnly && !args.includes('--no-cfengine');
if (withCfengine && spawnSync('sh', ['-c', 'command -v cf-agent && command -v cf-promises']).status !== 0) {
  throw new Error('CFEngine is missing (cf-agent, cf-promises): run bench/install-peers.sh (Debian\'s cfengine3) first');
}

const work = mkdtempSync(join(tmpdir(), 'cairn-bench-'));
const roots = { cairn: join(work, 'cairn'), shell: join(work, 'shell'), exported: join(work, 'exported'), atomic: join(work, 'shell-atomic'), cfengine: join(work, 'cfengine') };
const stateDir = '/tmp/cmbench/cairn-state'; // bench/site/cairn.yaml's state_dir

/**
 * Clears a tree before a first run by renaming it aside; `emptyAside` deletes those trees between
 * scenarios. Deleting a tree right before a timed run slows the run's own file creates: ext4 skips
 * recently freed inodes when it allocates (find_inode_bit → recently_deleted, a check per freed
 * inode for up to a minute, five while their inode table is dirty), and on this kind of VM that
 * made every tool's first run 2–3× slower and far noisier than a first run on a fresh machine.
 */
const asideDir = join(work, 'aside');
let asideCount = 0;
function setAside(path) {
  if (!existsSync(path)) return;
  mkdirSync(asideDir, { recursive: true });
  try {
    renameSync(path, join(asideDir, String(asideCount++)));
  } catch {
    rmSync(path, { recursive: true, force: true }); // another file system
  }
}
function emptyAside() {
  rmSync(asideDir, { recursive: true, force: true });
}

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

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);
const stat = (samples, key, fmt) => `${fmt(median(samples.map((s) => s[key])))} (${fmt(Math.min(...samples.map((s) => s[key])))}–${fmt(Math.max(...samples.map((s) => s[key])))})`;

/** The SSH variant (bench/ssh.mjs): alone with --ssh-only, else after the local figures. */
async function sshSection() {
  const { runSsh } = await import('./ssh.mjs');
  return runSsh({ timed, setAside, emptyAside, runs: quick ? 3 : runs, work, cairnBin, repo, peers, withPeers, median, stat, fmtMs });
}
if (sshOnly) {
  const { checks, lines } = await sshSection();
  process.stdout.write(`${['## Checks', '', ...checks.map((c) => `- ${c}`), ...lines].join('\n')}\n`);
  rmSync(work, { recursive: true, force: true });
  process.exit();
}

/**
 * A cf-agent work directory with `policy` (a file of bench/peers/cfengine) installed as its
 * inputs/promises.cf, beside the workload's bundle and template: the way CFEngine runs in
 * production, cf-agent validating the policy (cf-promises, which must be in WORKDIR/bin) only when
 * it changed. `-K` on every run: without it cf-agent skips a promise kept less than a minute ago.
 */
const cfPolicy = join(repo, 'bench/peers/cfengine');
function cfWorkdir(name, policy) {
  const w = join(work, `cf-${name}`);
  mkdirSync(join(w, 'bin'), { recursive: true });
  mkdirSync(join(w, 'inputs/templates'), { recursive: true });
  execFileSync('ln', ['-sfn', execFileSync('sh', ['-c', 'command -v cf-promises'], { encoding: 'utf8' }).trim(), join(w, 'bin/cf-promises')]);
  writeFileSync(join(w, 'inputs/promises.cf'), readFileSync(join(cfPolicy, policy)));
  writeFileSync(join(w, 'inputs/cmbench.cf'), readFileSync(join(cfPolicy, 'cmbench.cf')));
  writeFileSync(join(w, 'inputs/templates/service.conf.mustache'), readFileSync(join(cfPolicy, 'templates/service.conf.mustache')));
  return w;
}
const cfWorkload = withCfengine ? cfWorkdir('workload', 'workload.cf') : undefined;
const cfengine = (v) => timed(['cf-agent', '-K', '-w', cfWorkload], { ROOT: roots.cfengine, APP_VERSION: String(v) });
/** What cf-agent changed, from its inform output (bench/peers/cfengine/count-changes.sh). */
function cfCounts(v) {
  const r = timed(['sh', '-c', 'cf-agent -K -I -w "$W" | sh "$COUNT"'], { W: cfWorkload, COUNT: join(cfPolicy, 'count-changes.sh'), ROOT: roots.cfengine, APP_VERSION: String(v) });
  return shellCounts(r.stdout);
}

const cairn = (root, extra = []) => ['node', cairnBin, 'apply', '--site', join(repo, 'bench/site'), '--var', `root=${root}`, ...extra];
const shell = () => ['sh', join(peers, 'shell/converge.sh')];
/**
 * The hand-written script with its writes made atomic as Cairn's and the exported script's are
 * (DESIGN §11: a temp file, then `mv`): what the atomic-write rule itself costs a shell script,
 * beside the exported script's figures.
 */
const atomicScript = join(work, 'converge-atomic.sh');
{
  const text = readFileSync(join(peers, 'shell/converge.sh'), 'utf8');
  const atomic = text.replace(`  printf '%s' "$2" > "$1"\n`, `  printf '%s' "$2" > "$1.tmp$$" && mv -f "$1.tmp$$" "$1"\n`);
  if (atomic === text) throw new Error('the shell script has no ensure_file write to make atomic');
  writeFileSync(atomicScript, atomic);
}
const shellAtomic = () => ['sh', atomicScript];

function resetCairn() {
  setAside(roots.cairn);
  setAside(stateDir);
}
function resetShell() {
  setAside(roots.shell);
}
function resetExported() {
  setAside(roots.exported);
}
function resetAtomic() {
  setAside(roots.atomic);
}

/**
 * The script `cairn export --format sh` writes for the workload at app_version `v` (the version
 * is compiled in): exported once per version, outside the timed runs, and run with dash.
 */
const exportedScripts = new Map();
function exportedScript(v) {
  let file = exportedScripts.get(v);
  if (!file) {
    file = join(work, `exported-${v}.sh`);
    execFileSync('node', [cairnBin, 'export', '--site', join(repo, 'bench/site'), '-t', 'local', '--var', `root=${roots.exported}`, '--var', `app_version=${v}`, '-o', file]);
    exportedScripts.set(v, file);
  }
  return file;
}
const exported = (v) => ['dash', exportedScript(v)];
/** The exported script's report lines: changed nodes, the handler's among them. */
function exportedCounts(stdout) {
  const changed = stdout.split('\n').filter((l) => l.startsWith('changed '));
  const handler = changed.filter((l) => l.includes('app.reloads')).length;
  return { changed: changed.length - handler, handler };
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

/** app.reloads counts handler runs, which differ with each tool's history. */
function strip(snap) {
  return snap.split('\n').filter((l) => !l.includes('app.reloads')).join('\n');
}

/** Puppet and Ansible running the same workload (../shared/bench/peers/README.md). */
function peerTools() {
  for (const cmd of ['puppet', 'ansible-playbook']) {
    if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0) {
      throw new Error(`--peers: ${cmd} is not installed; run bench/install-peers.sh (Debian packages) first`);
    }
  }
  const conf = '/tmp/cmbench/puppet/conf';
  mkdirSync(conf, { recursive: true });
  writeFileSync(join(conf, 'puppet.conf'), readFileSync(join(peers, 'puppet/puppet.conf')));
  mkdirSync('/tmp/cmbench/ansible', { recursive: true });
  const puppetRoot = join(work, 'puppet');
  const ansibleRoot = join(work, 'ansible');
  return [
    {
      name: 'puppet', root: puppetRoot, runs: Math.min(runs, 3),
      reset: () => setAside(puppetRoot),
      run: (v) => timed(['puppet', 'apply', '--confdir', conf, '--modulepath', `${join(peers, 'puppet/modules')}:/usr/share/puppet/modules`, join(peers, 'puppet/site.pp')],
        { FACTER_cmbench_root: puppetRoot, FACTER_cmbench_app_version: String(v) }),
    },
    {
      name: 'ansible', root: ansibleRoot, runs: 1,
      reset: () => setAside(ansibleRoot),
      run: (v) => timed(['ansible-playbook', '-i', join(peers, 'ansible/inventory-local.ini'), '-e', `root=${ansibleRoot}`, '-e', `app_version=${v}`, join(peers, 'ansible/site.yml')],
        { ANSIBLE_CONFIG: join(peers, 'ansible/ansible.cfg') }),
    },
  ];
}


/**
 * The one-resource fixed cost: Cairn's converged one-resource run, Node.js's own start-up
 * (`node -e 0`) and cf-agent's one-resource run (bench/peers/cfengine/floor.cf, a converged
 * folder), alternating in the same turns, so the ratios can be read against them.
 */
function fixedCost() {
  const oneSite = scaleSite(1);
  const startup = [];
  const bareNode = [];
  const cfFloor = [];
  const cfFloorDir = withCfengine ? cfWorkdir('floor', 'floor.cf') : undefined;
  for (let i = 0; i < runs; i++) {
    startup.push(timed(['node', cairnBin, 'apply', '--site', oneSite.dir, '--var', `root=${join(work, 'root-1')}`]));
    bareNode.push(timed(['node', '-e', '0']));
    if (cfFloorDir) cfFloor.push(timed(['cf-agent', '-K', '-w', cfFloorDir], { ROOT: join(work, 'cf-root-1') }));
  }
  return { startup, bareNode, cfFloor };
}
function fixedCostLines({ startup, bareNode, cfFloor }) {
  const ratio = (a, b) => (a === b ? '1×' : `${(a / b).toFixed(2)}×`);
  const startupWall = median(startup.map((s) => s.wall));
  return [
    `Start-up cost (a one-resource no-op run): ${stat(startup, 'wall', fmtMs)}, peak RSS ${Math.round(median(startup.map((s) => s.rss)))} MiB. ` +
    `Node.js itself (\`node -e 0\`, alternating with it): ${stat(bareNode, 'wall', fmtMs)}, peak RSS ${Math.round(median(bareNode.map((s) => s.rss)))} MiB.` +
    (cfFloor.length ? ` cf-agent's one-resource run (bench/peers/cfengine/floor.cf, in the same turns): ${stat(cfFloor, 'wall', fmtMs)}, peak RSS ${Math.round(median(cfFloor.map((s) => s.rss)))} MiB.` : ''), '',
    `Cairn's one-resource run / \`node -e 0\`: ${ratio(startupWall, median(bareNode.map((s) => s.wall)))}${cfFloor.length ? `; / cf-agent's: ${ratio(startupWall, median(cfFloor.map((s) => s.wall)))}` : ''}` +
    ` (CPU, user+sys, medians: ${median(startup.map((s) => s.cpu)).toFixed(2)} s against ${median(bareNode.map((s) => s.cpu)).toFixed(2)} s).`, '',
  ];
}
// --startup-only: just the fixed cost (a first run outside the timed ones makes the compile cache
// and the code cache), printed, no RESULTS.md.
if (args.includes('--startup-only')) {
  const first = scaleSite(1);
  execFileSync('node', [cairnBin, 'apply', '--site', first.dir, '--var', `root=${join(work, 'root-1')}`]);
  process.stdout.write(`${fixedCostLines(fixedCost()).join('\n')}\n`);
  rmSync(work, { recursive: true, force: true });
  process.exit();
}

/**
 * The scale series: for each size, Cairn's first run, its no-op (compile cached) and a no-op with
 * a fresh compile, and cf-agent's first run and no-op on the same generated tree
 * (bench/peers/cfengine/scale.cf: DIRS directories of 10 files); the trees are compared at the
 * smallest size (snapshot.sh starts processes per file).
 */
function scaleSeries(sizes) {
  const entries = [];
  const cfScale = withCfengine ? cfWorkdir('scale', 'scale.cf') : undefined;
  for (const n of sizes) {
    const { dir, count } = scaleSite(n);
    const root = join(work, `root-${n}`);
    const cmd = ['node', cairnBin, 'apply', '--site', dir, '--var', `root=${root}`];
    const first = timed(cmd);
    // The first no-op after a first run reads every file and records it in the content index; the
    // next one (the steady state) trusts the index for files whose stat did not change.
    const noop = timed(cmd);
    const steady = timed(cmd);
    // Same tree, a fresh compile: with the cache off (a new --var nobody reads would now be an
    // incremental compile that reuses every invocation).
    const cold = timed(cmd, { CAIRN_NO_CACHE: '1' });
    const entry = { resources: count, first, noop, steady, cold };
    if (cfScale) {
      const cfRoot = join(work, `cf-root-${n}`);
      const cf = () => timed(['cf-agent', '-K', '-w', cfScale], { ROOT: cfRoot, DIRS: String(count / 11) });
      entry.cfFirst = cf();
      entry.cfNoop = cf();
      // snapshot.sh starts processes per file: trees are compared at the first size up to 10,000.
      if (n === sizes[0] && count <= 10010) {
        const sameScale = snapshot(root) === snapshot(cfRoot);
        checks.push(`${sameScale ? 'ok' : 'WRONG'}: at ${count} resources cf-agent leaves the same tree as Cairn (tools/snapshot.sh)`);
        if (!sameScale) process.exitCode = 1;
      }
      setAside(cfRoot);
    }
    entries.push(entry);
    setAside(root);
    emptyAside();
  }
  return entries;
}
function scaleLines(scale) {
  const lines = ['## Scale series (generated sites: directories of 10 files)', ''];
  lines.push(`| resources | first run | no-op (compile cached) | peak RSS MiB (no-op) | next no-op | peak RSS MiB (next no-op) | no-op, fresh compile | peak RSS MiB (fresh compile) |${withCfengine ? ' cf-agent first run | cf-agent no-op | peak RSS MiB (cf-agent no-op) | first run / cf-agent | no-op / cf-agent |' : ''}`,
    `| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |${withCfengine ? ' ---: | ---: | ---: | ---: | ---: |' : ''}`);
  const ratio = (a, b) => `${(a / b).toFixed(2)}×`;
  for (const s of scale) {
    const cf = s.cfFirst ? ` ${fmtMs(s.cfFirst.wall)} | ${fmtMs(s.cfNoop.wall)} | ${Math.round(s.cfNoop.rss)} | ${ratio(s.first.wall, s.cfFirst.wall)} | ${ratio(s.noop.wall, s.cfNoop.wall)} |` : '';
    lines.push(`| ${s.resources} | ${fmtMs(s.first.wall)} | ${fmtMs(s.noop.wall)} | ${Math.round(s.noop.rss)} | ${fmtMs(s.steady.wall)} | ${Math.round(s.steady.rss)} | ${fmtMs(s.cold.wall)} | ${Math.round(s.cold.rss)} |${cf}`);
  }
  return lines;
}

// 1. Correctness first: both converge the same tree, with the right counts.
const checks = [];
// --scale-only: just the scale series (--sizes N,M,...: which sizes), printed, no RESULTS.md.
if (scaleOnly) {
  const scale = scaleSeries(scaleSizes);
  process.stdout.write(`${['## Checks', '', ...checks.map((c) => `- ${c}`), '', ...scaleLines(scale)].join('\n')}\n`);
  rmSync(work, { recursive: true, force: true });
  process.exit();
}
let version = 1;
resetCairn();
resetShell();
const expectCounts = (what, got, want) => {
  const ok = got.changed === want.changed && got.handler === want.handler;
  checks.push(`${ok ? 'ok' : 'WRONG'}: ${what}: changed=${got.changed} handler=${got.handler} (expected ${want.changed} + ${want.handler})`);
  if (!ok) process.exitCode = 1;
};
expectCounts('cairn first run', cairnCounts(timed(cairn(roots.cairn, ['--json', '--var', `app_version=${version}`])).stdout), { changed: 742, handler: 1 });
expectCounts('shell first run', shellCounts(timed(shell(), { ROOT: roots.shell, APP_VERSION: String(version) }).stdout), { changed: 742, handler: 1 });
expectCounts('exported script first run', exportedCounts(timed(exported(version)).stdout), { changed: 742, handler: 1 });
expectCounts('shell (atomic writes) first run', shellCounts(timed(shellAtomic(), { ROOT: roots.atomic, APP_VERSION: String(version) }).stdout), { changed: 742, handler: 1 });
if (withCfengine) expectCounts('cf-agent first run', cfCounts(version), { changed: 742, handler: 1 });
expectCounts('cairn no-op', cairnCounts(timed(cairn(roots.cairn, ['--json', '--var', `app_version=${version}`])).stdout), { changed: 0, handler: 0 });
expectCounts('shell no-op', shellCounts(timed(shell(), { ROOT: roots.shell, APP_VERSION: String(version) }).stdout), { changed: 0, handler: 0 });
expectCounts('exported script no-op', exportedCounts(timed(exported(version)).stdout), { changed: 0, handler: 0 });
if (withCfengine) expectCounts('cf-agent no-op', cfCounts(version), { changed: 0, handler: 0 });
version++;
expectCounts('cairn change', cairnCounts(timed(cairn(roots.cairn, ['--json', '--var', `app_version=${version}`])).stdout), { changed: 1, handler: 1 });
expectCounts('shell change', shellCounts(timed(shell(), { ROOT: roots.shell, APP_VERSION: String(version) }).stdout), { changed: 1, handler: 1 });
expectCounts('exported script change', exportedCounts(timed(exported(version)).stdout), { changed: 1, handler: 1 });
if (withCfengine) expectCounts('cf-agent change', cfCounts(version), { changed: 1, handler: 1 });
const same = snapshot(roots.cairn) === snapshot(roots.shell);
checks.push(`${same ? 'ok' : 'WRONG'}: the trees are identical (tools/snapshot.sh)`);
if (!same) process.exitCode = 1;
const sameExported = snapshot(roots.exported) === snapshot(roots.shell);
checks.push(`${sameExported ? 'ok' : 'WRONG'}: the exported script leaves the same tree as the shell script (tools/snapshot.sh)`);
if (!sameExported) process.exitCode = 1;
if (withCfengine) {
  const sameCf = snapshot(roots.cfengine) === snapshot(roots.shell);
  checks.push(`${sameCf ? 'ok' : 'WRONG'}: cf-agent leaves the same tree as the shell script (tools/snapshot.sh)`);
  if (!sameCf) process.exitCode = 1;
}

// 2. Timings, alternating the tools run by run (peers, being slow, get fewer runs).
const tools = [
  { name: 'cairn', runs, reset: resetCairn, run: (v) => timed(cairn(roots.cairn, ['--var', `app_version=${v}`])) },
  { name: 'shell', runs, reset: resetShell, run: (v) => timed(shell(), { ROOT: roots.shell, APP_VERSION: String(v) }) },
  { name: 'exported', runs, reset: resetExported, run: (v) => timed(exported(v)) },
  { name: 'atomic', label: 'shell (atomic writes)', root: roots.atomic, runs, reset: resetAtomic, run: (v) => timed(shellAtomic(), { ROOT: roots.atomic, APP_VERSION: String(v) }) },
  ...(withCfengine ? [{ name: 'cfengine', label: 'cf-agent', root: roots.cfengine, runs, reset: () => setAside(roots.cfengine), run: cfengine }] : []),
  ...(withPeers ? peerTools() : []),
];
/** The tools that take well under a second a run, alternated run by run; the rest (Puppet, Ansible) go after them. */
const fast = withCfengine ? 5 : 4;
const scenarios = [
  { name: 'first run (742 changes + handler)', reset: true, fixedVersion: true },
  { name: 'no-op re-run (0 changes)', reset: false, fixedVersion: true },
  { name: 'one changed input (1 file + handler)', reset: false, fixedVersion: false },
];
const results = [];
// Cairn and the shell script alternate run by run; the peers, whose runs take seconds to minutes,
// go after them in each scenario, in the same session. Interleaved, a peer's minutes-long run
// left Node's and Cairn's files cold, and this kind of VM pages cold files out (DAMON): the
// Cairn run after it measured a cold start (a cold no-op is 0.3 to 0.7 s against 0.13 s warm;
// the shell script's few pages barely notice).
const groups = [tools.slice(0, fast), ...(withPeers ? [tools.slice(fast)] : [])];
for (const sc of scenarios) {
  const samples = Object.fromEntries(tools.map((t) => [t.name, []]));
  // No warm-up run: each scenario starts where the previous one left every tool (converged at
  // `version`), and the first resets before each run anyway. In "one changed input", run i of
  // every tool converges version base + i + 1.
  const base = version;
  for (const group of groups) {
    for (let i = 0; i < runs; i++) {
      const v = sc.fixedVersion ? base : base + i + 1;
      // The exported script has the version compiled in: export it before the timed run.
      if (group.some((t) => t.name === 'exported')) exportedScript(v);
      for (const t of group) {
        if (i >= t.runs) continue;
        if (sc.reset) t.reset();
        samples[t.name].push(t.run(v));
      }
    }
  }
  if (!sc.fixedVersion) version = base + runs;
  results.push({ scenario: sc.name, samples });
  emptyAside();
  // After the first runs every tool has converged the same version from scratch: compare trees.
  if (sc.reset && tools.length > 3) {
    const expected = strip(snapshot(roots.shell));
    for (const t of tools.slice(3)) {
      const same = strip(snapshot(t.root)) === expected;
      checks.push(`${same ? 'ok' : 'WRONG'}: ${t.label ?? t.name} leaves the same tree as the shell script after its first runs (app.reloads aside)`);
      if (!same) process.exitCode = 1;
    }
  }
}

if (exportOnly) {
  const out = ['## Checks', '', ...checks.map((c) => `- ${c}`), '', '| scenario | tool | wall, median (min–max) | cpu s, median | / shell |', '| --- | --- | --- | --- | ---: |'];
  for (const r of results) {
    const shellMedian = median(r.samples.shell.map((s) => s.wall));
    for (const t of tools) {
      const s = r.samples[t.name];
      out.push(`| ${r.scenario} | ${t.name} | ${stat(s, 'wall', fmtMs)} | ${median(s.map((x) => x.cpu)).toFixed(2)} | ${(median(s.map((x) => x.wall)) / shellMedian).toFixed(2)}× |`);
    }
  }
  process.stdout.write(`${out.join('\n')}\n`);
  rmSync(work, { recursive: true, force: true });
  process.exit();
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
const scale = scaleSeries(scaleSizes);
emptyAside();

// Compile at scale: `cairn show` (compiles, touches nothing) with the compile cache off.
function varsSite(n) {
  const dir = join(work, `vars-${n}`);
  mkdirSync(join(dir, 'states'), { recursive: true });
  mkdirSync(join(dir, 'vars'), { recursive: true });
  writeFileSync(join(dir, 'cairn.yaml'), 'targets:\n  local:\n    executor: local\n    run: [vars]\n');
  writeFileSync(join(dir, 'vars/all.yaml'), Array.from({ length: n }, (_, i) => `v${i}: value ${i}\n`).join(''));
  writeFileSync(join(dir, 'states/vars.yaml'), `vars:\n  - file: /tmp/cairn-bench-never/out\n    content: "<%= it.vars.v${n - 1} %>\\n"\n`);
  return dir;
}
function invocationsSite(n) {
  const dir = join(work, `invocations-${n}`);
  mkdirSync(join(dir, 'states'), { recursive: true });
  const run = Array.from({ length: n }, (_, i) => `      - one: { i: ${i} }\n`).join('');
  writeFileSync(join(dir, 'cairn.yaml'), `targets:\n  local:\n    executor: local\n    run:\n${run}`);
  writeFileSync(join(dir, 'states/one.yaml'), 'one:\n  params: { i: ~ }\n  parts:\n    - file: /tmp/cairn-bench-never/f<%= it.params.i %>\n      content: "<%= it.params.i %>\\n"\n');
  return dir;
}
const compileScale = [];
for (const [what, sizes, make] of [['variables', varSizes, varsSite], ['invocations of one state', invocationSizes, invocationsSite]]) {
  for (const n of sizes) {
    const dir = make(n);
    const samples = [];
    for (let i = 0; i < (quick ? 1 : 3); i++) samples.push(timed(['node', cairnBin, 'show', '--site', dir], { CAIRN_NO_CACHE: '1' }));
    compileScale.push({ site: `${n} ${what}`, samples });
  }
}

const { startup, bareNode, cfFloor } = fixedCost();

// 4. The SSH variant.
const ssh = withSsh ? await sshSection() : { checks: ['SSH variant not run (--no-ssh)'], lines: [] };
checks.push(...ssh.checks);

// 5. Report.
const version_ = (cmd) => {
  try {
    return execFileSync(cmd[0], cmd.slice(1), { encoding: 'utf8' }).trim().split('\n')[0];
  } catch {
    return '?';
  }
};
const lines = [];
lines.push('# Benchmark results', '');
lines.push(`Written by \`npm run bench\` on ${new Date().toISOString()}; ${runs} runs per figure, Cairn, the shell script, the exported script${withCfengine ? ' and cf-agent' : ''} alternating.`, '');
lines.push('| machine | value |', '| --- | --- |');
lines.push(`| CPU | ${cpus().length} × ${cpus()[0]?.model ?? '?'} |`, `| memory | ${(totalmem() / 2 ** 30).toFixed(1)} GiB |`);
lines.push(`| OS | ${version_(['sh', '-c', '. /etc/os-release; echo $PRETTY_NAME'])}, Linux ${version_(['uname', '-r'])} |`);
lines.push(`| Node.js | ${process.version} |`, `| Cairn | ${JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).version} (${version_(['git', '-C', repo, 'rev-parse', '--short', 'HEAD'])}) |`);
lines.push(`| shell | ${version_(['sh', '-c', 'dpkg-query -W -f "dash \\${Version}" dash'])} |`);
if (withCfengine) lines.push(`| CFEngine | ${version_(['cf-agent', '--version'])} (policy installed as inputs/promises.cf, \`cf-agent -K -w DIR\`) |`);
lines.push('');
lines.push('## Checks', '', ...checks.map((c) => `- ${c}`), '');
lines.push(`## The standard workload (742 resources), Cairn against the shell script${withCfengine ? ' and cf-agent' : ''}`, '');
lines.push(`| scenario | tool | wall, median (min–max) | cpu s, median | peak RSS MiB | tool / shell |${withCfengine ? ' tool / cf-agent |' : ''}`, `| --- | --- | --- | --- | ---: | ---: |${withCfengine ? ' ---: |' : ''}`);
const ratio = (a, b) => (a === b ? '1×' : `${(a / b).toFixed(2)}×`);
for (const r of results) {
  const wallOf = (name) => median(r.samples[name].map((s) => s.wall));
  for (const t of tools) {
    const s = r.samples[t.name];
    if (!s.length) continue;
    const wall = median(s.map((x) => x.wall));
    lines.push(`| ${r.scenario} | ${t.label ?? t.name}${s.length < runs ? ` (${s.length} run${s.length === 1 ? '' : 's'})` : ''} | ${stat(s, 'wall', fmtMs)} | ${median(s.map((x) => x.cpu)).toFixed(2)} | ${Math.round(median(s.map((x) => x.rss)))} | ${ratio(wall, wallOf('shell'))} |${withCfengine ? ` ${ratio(wall, wallOf('cfengine'))} |` : ''}`);
  }
}
lines.push('', ...scaleLines(scale));
lines.push('', '## Compile at scale (`cairn show`, compile cache off; one target)', '');
lines.push('| site | wall, median (min–max) | cpu s, median | peak RSS MiB |', '| --- | ---: | ---: | ---: |');
for (const c of compileScale) lines.push(`| ${c.site} | ${stat(c.samples, 'wall', fmtMs)} | ${median(c.samples.map((x) => x.cpu)).toFixed(2)} | ${Math.round(median(c.samples.map((x) => x.rss)))} |`);
lines.push('', ...fixedCostLines({ startup, bareNode, cfFloor }));
if (!withPeers) lines.push('Peers not run: `npm run bench -- --peers` adds Puppet and Ansible (installed by `bench/install-peers.sh`).');
lines.push(...ssh.lines, '');
const text = lines.join('\n');
process.stdout.write(`${text}\n`);
if (!quick) writeFileSync(join(here, 'RESULTS.md'), text);
rmSync(work, { recursive: true, force: true });
const { masterBench } = await import('./master.mjs');
await masterBench({ agents: masterAgents });
