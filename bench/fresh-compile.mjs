#!/usr/bin/env node
// The fresh-compile cost alone, without the rest of `npm run bench`: a converged no-op `apply`
// with CAIRN_NO_CACHE=1 (so every run compiles), on the standard workload (742 resources) and
// the scale series' generated sites, CPU time (user+sys, from GNU time) of the whole process.
// Given two builds it alternates them, to compare a change against its base:
//
//   node bench/fresh-compile.mjs [--runs N] <dist/cairn.cjs> [<other/dist/cairn.cjs>]
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const runsAt = args.indexOf('--runs');
const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 5;
const builds = args.filter((a, i) => a !== '--runs' && i !== runsAt + 1).map((b) => resolve(b));
if (builds.length === 0) builds.push(resolve(here, '../dist/cairn.cjs'));
for (const b of builds) if (!existsSync(b)) throw new Error(`${b} is missing: run \`npm run build\` first`);
if (!existsSync('/usr/bin/time')) throw new Error('GNU time is missing: apt-get install time');

const work = mkdtempSync(join(tmpdir(), 'cairn-fresh-compile-'));

/** The scale series' site of about n resources (bench/run.mjs): directories of 10 files. */
function scaleSite(n) {
  const dir = join(work, `site-${n}`);
  mkdirSync(join(dir, 'states'), { recursive: true });
  writeFileSync(join(dir, 'cairn.yaml'), `targets:\n  local:\n    executor: local\n    state_dir: ${join(work, `state-${n}`)}\n    run: [scale]\n`);
  const dirs = Math.ceil(n / 11);
  writeFileSync(join(dir, 'states/scale.yaml'), ['scale:', `<% for (let d = 0; d < ${dirs}; d++) { %>`,
    '  - directory: <%= it.vars.root %>/d<%= d %>', '<% for (let f = 0; f < 10; f++) { %>',
    '  - file: <%= it.vars.root %>/d<%= d %>/f<%= f %>', '    content: "<%= d %>/<%= f %>\\n"', '<% } %>', '<% } %>', ''].join('\n'));
  return dir;
}

const workload = join(work, 'workload');
cpSync(join(here, 'site'), workload, { recursive: true });
const config = join(workload, 'cairn.yaml');
writeFileSync(config, readFileSync(config, 'utf8').replace('/tmp/cmbench/cairn-state', join(work, 'state-workload')));

function cpuMs(bin, site, root) {
  const out = join(work, 'time.out');
  const r = spawnSync('/usr/bin/time', ['-o', out, '-f', '%U %S', process.execPath, bin, 'apply', '--site', site, '--var', `root=${root}`],
    { env: { ...process.env, CAIRN_NO_CACHE: '1' }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${bin} apply --site ${site} exited ${r.status}:\n${r.stderr}`);
  const [user, sys] = readFileSync(out, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  return (user + sys) * 1000;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
try {
  for (const [name, site] of [['workload (742 resources)', workload], ['scale 1000', scaleSite(1000)], ['scale 10000', scaleSite(10000)]]) {
    const root = join(work, `root-${name.replace(/\W/g, '')}`);
    cpuMs(builds[0], site, root); // the first run converges; the timed ones change nothing
    const samples = builds.map(() => []);
    for (let i = 0; i < runs; i++) builds.forEach((b, k) => samples[k].push(cpuMs(b, site, root)));
    const cells = builds.map((b, k) => `${Math.round(median(samples[k]))} ms (${samples[k].map(Math.round).join(', ')}) ${b}`);
    console.log(`${name}, fresh compile, CPU median:\n  ${cells.join('\n  ')}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
