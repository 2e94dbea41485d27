/**
 * Nested targets (`via:`, DESIGN §6) through a local outer target. FreeBSD jails cannot run here:
 * the jail executor is checked against its command contract with a stand-in `jexec` that runs
 * the shell it is given on this machine (`jexec NAME CMD...` → `CMD...`), so what is tested is
 * Cairn's side: the argv it starts through the outer executor, the shell protocol over that
 * process's stdio, the order of targets and the skip when the outer target failed. The real
 * nested executor (a container) is tested on lab hosts in lab-container.test.ts.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';
import type { Report } from './helpers/converge.ts';

/** A stand-in jexec: records its arguments, and whether the outer target's file was there yet, then runs the command. */
function fakeJexec(dir: string, log: string, hostFile: string): string {
  const bin = join(dir, 'bin');
  const script = join(bin, 'jexec');
  mkdirSync(bin, { recursive: true });
  writeFileSync(script, `#!/bin/sh\n{ printf '%s' "$*" | head -c 60; if [ -e '${hostFile}' ]; then echo ' (host done)'; else echo ' (host not done)'; fi; } >> '${log}'\nshift\nexec "$@"\n`);
  chmodSync(script, 0o755);
  return bin;
}

function site(dir: string, hostPart: string): string {
  return makeSite({
    'cairn.yaml': `targets:\n  inner:\n    via: host1\n    executor: jail\n    jail: j1\n    state_dir: ${dir}/state-inner\n    run: [i]\n` +
      `  host1:\n    executor: local\n    state_dir: ${dir}/state-host\n    run: [h]\n`,
    'states/h.yaml': `h:\n${hostPart}`,
    'states/i.yaml': `i:\n  - file: ${dir}/inside.txt\n    content: "from inside\\n"\n    mode: "0640"\n`,
  });
}

test('command contract: jexec — a jail target via a local host runs after it, through `jexec NAME /bin/sh`, and a re-run changes nothing', async () => {
  const dir = tempDir('cairn-nested-');
  const log = join(dir, 'jexec.log');
  const bin = fakeJexec(dir, log, join(dir, 'host.txt'));
  const s = site(dir, `  - file: ${dir}/host.txt\n    content: "from the host\\n"\n`);
  const env = { PATH: `${bin}${delimiter}${process.env.PATH ?? ''}` };
  const r = await runCli(['apply', '--site', s, '--json'], { env });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const report = JSON.parse(r.stdout) as Report;
  // Declared first, run second: the outer target goes first.
  assert.deepEqual(report.targets.map((t) => [t.name, t.counts.changed]), [['host1', 1], ['inner', 1]]);
  assert.equal(readFileSync(join(dir, 'inside.txt'), 'utf8'), 'from inside\n');
  const calls = readFileSync(log, 'utf8').trim().split('\n');
  assert.equal(calls[0], 'j1 /bin/sh (host done)', 'the nested shell is started once the outer target is done');
  assert.ok(calls.every((c) => c.startsWith('j1 /bin/sh')), calls.join('\n'));

  const again = await runCli(['apply', '--site', s, '--json'], { env });
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual((JSON.parse(again.stdout) as Report).targets.map((t) => [t.name, t.counts.changed, t.counts.unchanged]), [['host1', 0, 1], ['inner', 0, 1]]);

  // Selecting the nested target alone opens its outer target itself.
  const alone = await runCli(['apply', '--site', s, '--target', 'inner', '--json'], { env });
  assert.equal(alone.status, 0, alone.stderr);
  assert.deepEqual((JSON.parse(alone.stdout) as Report).targets.map((t) => [t.name, t.counts.unchanged]), [['inner', 1]]);
});

test('command contract: jexec — a nested target whose outer target failed is skipped, saying why, and never entered', async () => {
  const dir = tempDir('cairn-nested-');
  const log = join(dir, 'jexec.log');
  const bin = fakeJexec(dir, log, join(dir, 'host.txt'));
  const s = site(dir, '  - exec: "exit 3"\n');
  const r = await runCli(['apply', '--site', s], { env: { PATH: `${bin}${delimiter}${process.env.PATH ?? ''}` } });
  assert.equal(r.status, 1, r.stderr + r.stdout);
  assert.match(r.stdout, /^inner: skipped \(via host1: host1 failed \(1 failed\)\)$/m);
  assert.equal(existsSync(log), false, 'jexec was never run');
  assert.equal(existsSync(join(dir, 'inside.txt')), false);
});
