/**
 * The test helper that runs the CLI's main() in the test's own process (helpers/cli.ts, runCli):
 * each run gets its own output, exit code, working folder and variables, and leaves the
 * process's as it found them, so the runs of one file cannot leak into each other.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';

test('a run leaves process.exitCode, the working folder and the environment as they were', async () => {
  const cwd = process.cwd();
  const exitCode = process.exitCode;
  const site = makeSite({ 'cairn.yaml': 'targets:\n  t1: { executor: local, run: [nope] }\n' });
  process.env.CAIRN_IN_PROCESS_PROBE = 'kept';
  try {
    const bad = await runCli(['show', '--site', '.'], { cwd: site, env: { CAIRN_IN_PROCESS_PROBE: undefined, CAIRN_NO_CACHE: '1' } });
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /nope/);
    assert.equal(bad.stdout, '');
    assert.equal(process.exitCode, exitCode);
    assert.equal(process.cwd(), cwd);
    assert.equal(process.env.CAIRN_IN_PROCESS_PROBE, 'kept');
    assert.equal(process.env.CAIRN_NO_CACHE, undefined);
  } finally {
    delete process.env.CAIRN_IN_PROCESS_PROBE;
  }
  // The failure before does not carry over.
  const ok = await runCli(['schema']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.ok(ok.stdout.startsWith('{'));
});

test("commander's own output (--version, usage errors) is captured too", async () => {
  const version = await runCli(['--version']);
  assert.equal(version.status, 0);
  assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
  const unknown = await runCli(['no-such-command']);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown command 'no-such-command'/);
});

test('runs started together run one after another, each with its own output', async () => {
  const dirs = [tempDir('cairn-in-process-'), tempDir('cairn-in-process-')];
  const [a, b] = await Promise.all(dirs.map((dir) => runCli(['facts', '--json'], { cwd: dir })));
  for (const r of [a!, b!]) {
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { targets: unknown[] }).targets.length, 1);
  }
});
