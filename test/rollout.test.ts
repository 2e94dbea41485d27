/**
 * Rollouts (`--serial`, `--max-fail`) through the CLI, on local targets: each converges a root and
 * keeps state of its own, and logs its name to one shared file, so the log shows the batches'
 * order. Target t2 fails, always: its exec is `test t2 != t2`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Report } from './helpers/converge.ts';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';

const NAMES = ['t1', 't2', 't3', 't4', 't5'];

function rolloutSite(names = NAMES) {
  const log = join(tempDir('cairn-rollout-'), 'log');
  const roots = Object.fromEntries(names.map((n) => [n, tempDir(`cairn-root-${n}-`)]));
  // t1 is slow: without batches, t3 would log before it.
  const targets = names.map((n) => `  ${n}:\n    executor: local\n    state_dir: ${join(tempDir('cairn-state-'), 'state')}\n    run: [s]\n` +
    `    vars: { root: ${roots[n]}, delay: ${n === 't1' ? 0.3 : 0} }\n`).join('');
  const site = makeSite({
    'cairn.yaml': `targets:\n${targets}`,
    'states/s.yaml': 's:\n' +
      `  - exec: sleep <%= it.vars.delay %>; echo <%= it.target.name %> >> ${log}\n` +
      '  - exec: test <%= it.target.name %> != t2\n' +
      '  - file: <%= it.vars.root %>/done\n    content: "done\\n"\n',
  });
  const logged = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);
  return { site, roots, logged };
}

async function apply(site: string, args: string[], json = true) {
  const r = await runCli(['apply', '--site', site, ...(json ? ['--json'] : []), ...args]);
  return { ...r, report: json ? (JSON.parse(r.stdout) as Report) : undefined };
}

const statuses = (report: Report) => report.targets.map((t) => `${t.name} ${t.status}${t.status === 'skipped' ? ` (${(t as { reason?: string }).reason})` : ''}`);

test('--serial 2 converges the targets two at a time, in order; without --max-fail a failure stops nothing', async () => {
  const s = rolloutSite();
  const r = await apply(s.site, ['--serial', '2']);
  assert.equal(r.status, 1, r.stderr);
  assert.deepEqual(statuses(r.report!), ['t1 ok', 't2 failed', 't3 ok', 't4 ok', 't5 ok']);
  const log = s.logged();
  assert.deepEqual(log.slice(0, 2).sort(), ['t1', 't2'], log.join(' '));
  assert.deepEqual(log.slice(2, 4).sort(), ['t3', 't4'], log.join(' '));
  assert.equal(log[4], 't5');
});

test('--serial 40% of 5 targets is batches of 2 (rounded up)', async () => {
  const s = rolloutSite();
  const r = await apply(s.site, ['--serial', '40%', '--max-fail', '0']);
  assert.equal(r.status, 1, r.stderr);
  assert.deepEqual(statuses(r.report!), ['t1 ok', 't2 failed', 't3 skipped (rollout stopped)', 't4 skipped (rollout stopped)', 't5 skipped (rollout stopped)']);
});

test('--serial 1 --max-fail 0: the failure on t2 stops the rollout; t3 on are skipped and untouched', async () => {
  const s = rolloutSite();
  const r = await apply(s.site, ['--serial', '1', '--max-fail', '0']);
  assert.equal(r.status, 1, r.stderr);
  const report = r.report!;
  assert.deepEqual(statuses(report), ['t1 ok', 't2 failed', 't3 skipped (rollout stopped)', 't4 skipped (rollout stopped)', 't5 skipped (rollout stopped)']);
  for (const t of report.targets.slice(2)) {
    assert.deepEqual(t.counts, { changed: 0, unchanged: 0, failed: 0, skipped: 0 });
    assert.deepEqual(t.nodes, []);
  }
  assert.deepEqual(s.logged(), ['t1', 't2']);
  assert.ok(existsSync(join(s.roots.t1!, 'done')));
  for (const n of ['t3', 't4', 't5']) assert.ok(!existsSync(join(s.roots[n]!, 'done')), `${n} was not touched`);
});

test('the text report says the rollout stopped, and why, and names each skipped target', async () => {
  const s = rolloutSite();
  const r = await apply(s.site, ['--serial', '1', '--max-fail', '0', '--forks', '1'], false);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stdout, /^rollout stopped: 1 of 1 targets failed in batch 2, more than --max-fail 0$/m);
  for (const n of ['t3', 't4', 't5']) assert.match(r.stdout, new RegExp(`^${n}: skipped \\(rollout stopped\\)$`, 'm'));
  assert.doesNotMatch(r.stdout, /^t3: \d+ changed/m);
});

test('--max-fail counts per batch and stops only when failures exceed it (strictly more)', async () => {
  // Batch (t1, t2): 1 of 2 failed is 50%, not more than 50%: the rollout goes on.
  let s = rolloutSite();
  let r = await apply(s.site, ['--serial', '2', '--max-fail', '50%']);
  assert.equal(r.status, 1, r.stderr);
  assert.deepEqual(statuses(r.report!), ['t1 ok', 't2 failed', 't3 ok', 't4 ok', 't5 ok']);
  // 1 failure is not more than 1.
  s = rolloutSite();
  r = await apply(s.site, ['--serial', '2', '--max-fail', '1']);
  assert.deepEqual(statuses(r.report!), ['t1 ok', 't2 failed', 't3 ok', 't4 ok', 't5 ok']);
  // 1 of 2 is more than 49%.
  s = rolloutSite();
  r = await apply(s.site, ['--serial', '2', '--max-fail', '49%']);
  assert.deepEqual(statuses(r.report!), ['t1 ok', 't2 failed', 't3 skipped (rollout stopped)', 't4 skipped (rollout stopped)', 't5 skipped (rollout stopped)']);
});

test('a failure in the last batch leaves nothing to skip', async () => {
  const s = rolloutSite(['t1', 't2']);
  const r = await apply(s.site, ['--serial', '1', '--max-fail', '0']);
  assert.equal(r.status, 1, r.stderr);
  assert.deepEqual(statuses(r.report!), ['t1 ok', 't2 failed']);
});

test('an unreachable target counts as a failure of its batch, and the exit code says unreachable (3)', async () => {
  const root = tempDir('cairn-root-');
  // A real key (a missing one is a site error, exit 2), for a port nothing listens on.
  const key = join(tempDir('cairn-key-'), 'id');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  const site = makeSite({
    'cairn.yaml': 'targets:\n' +
      `  a1: { executor: ssh, host: 127.0.0.1, port: 1, user: root, identity_file: ${key}, run: [s] }\n` +
      `  a2: { executor: local, state_dir: ${join(tempDir('cairn-state-'), 'state')}, run: [s] }\n`,
    'states/s.yaml': `s:\n  - file: ${root}/done\n    content: "done\\n"\n`,
  });
  const r = await apply(site, ['--serial', '1', '--max-fail', '0']);
  assert.equal(r.status, 3, r.stderr);
  assert.deepEqual(statuses(r.report!), ['a1 unreachable', 'a2 skipped (rollout stopped)']);
  assert.ok(!existsSync(join(root, 'done')));
});

for (const [args, option] of [
  [['--serial', '0'], '--serial'], [['--serial', '-1'], '--serial'], [['--serial', 'abc'], '--serial'], [['--serial', '150%'], '--serial'],
  [['--serial', '0%'], '--serial'], [['--serial', '1.5'], '--serial'],
  [['--serial', '1', '--max-fail', '-1'], '--max-fail'], [['--serial', '1', '--max-fail', 'abc'], '--max-fail'],
  [['--serial', '1', '--max-fail', '150%'], '--max-fail'],
] as const) {
  test(`bad input: ${args.join(' ')} exits 2 naming ${option}, and runs nothing`, async () => {
    const s = rolloutSite(['t1']);
    const r = await apply(s.site, [...args], false);
    assert.equal(r.status, 2, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${option} `));
    assert.deepEqual(s.logged(), []);
  });
}

test('bad input: --max-fail without --serial exits 2 (there is no later batch to hold back)', async () => {
  const s = rolloutSite(['t1']);
  const r = await apply(s.site, ['--max-fail', '0'], false);
  assert.equal(r.status, 2, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /--max-fail needs --serial/);
  assert.deepEqual(s.logged(), []);
});

test('a store keeps no report for a target the rollout held back: its last run still stands', async () => {
  const s = rolloutSite(['t1', 't2', 't3']);
  const store = `sqlite:${join(tempDir('cairn-store-'), 'store.db')}`;
  const r = await apply(s.site, ['--serial', '1', '--max-fail', '0', '--store', store]);
  assert.equal(r.status, 1, r.stderr);
  const st = await runCli(['status', '--site', s.site, '--store', store, '--json']);
  assert.equal(st.status, 0, st.stderr);
  const rows = (JSON.parse(st.stdout) as { targets: { target: string; status?: string }[] }).targets;
  assert.deepEqual(rows.map((t) => `${t.target} ${t.status}`), ['t1 ok', 't2 failed']);
});

test('plan takes --serial too', async () => {
  const s = rolloutSite(['t1', 't2', 't3']);
  const r = await runCli(['plan', '--site', s.site, '--json', '--serial', '1', '--max-fail', '0']);
  const report = JSON.parse(r.stdout) as Report;
  assert.deepEqual(report.targets.map((t) => t.status), ['ok', 'ok', 'ok'], r.stderr);
  assert.equal(r.status, 0);
});
