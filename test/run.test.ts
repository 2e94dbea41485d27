/** `cairn run -t SEL -- CMD…` (DESIGN §12): an ad-hoc command on every selected target, through the CLI. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { CAIRN, makeSite, runCli, tempDir } from './helpers/cli.ts';
import { sshUnavailable, startSshd, type Sshd } from './helpers/sshd.ts';

interface Report {
  version: number;
  targets: { name: string; status: string; exit_code: number | null; stdout: string; stderr: string; error?: string }[];
}

/** Local targets `names`, each with a state folder of its own. */
function localSite(names: string[]): string {
  const state = tempDir('cairn-run-');
  return makeSite({ 'cairn.yaml': `targets:\n${names.map((n) => `  ${n}: { executor: local, state_dir: ${state}/${n} }\n`).join('')}` });
}

test('a command on every selected local target: each output a block, in selection order', async () => {
  const site = localSite(['a', 'b', 'c']);
  // b finishes first; its block still comes after a's.
  const r = await runCli(['run', '--site', site, '-t', '!c', '--', 'sh', '-c', 'test "$0" = x || sleep 0.3; echo "one $0"; echo two', 'x']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'a: ok (exit 0)\none x\ntwo\nb: ok (exit 0)\none x\ntwo\n');
});

test('--json: one report, status and exit code per target; a failed command is exit 1', async () => {
  const site = localSite(['a', 'b']);
  const r = await runCli(['run', '--site', site, '--json', '--', 'sh', '-c', 'echo out; echo err >&2; exit 4']);
  assert.equal(r.status, 1, r.stderr);
  const report = JSON.parse(r.stdout) as Report;
  assert.deepEqual(report, {
    version: 1,
    targets: ['a', 'b'].map((name) => ({ name, status: 'failed', exit_code: 4, stdout: 'out\n', stderr: 'err\n' })),
  });
  const text = await runCli(['run', '--site', site, '-t', 'a', '--', 'sh', '-c', 'echo out; echo err >&2; exit 4']);
  assert.equal(text.status, 1);
  assert.equal(text.stdout, 'a: FAILED (exit 4)\nout\na: stderr:\nerr\n');
});

test('several words are argv, no shell; one word with shell syntax goes to sh -c', async () => {
  const site = localSite(['a']);
  const argv = await runCli(['run', '--site', site, '--json', '--', 'echo', 'a|b', '$HOME', '*']);
  assert.equal((JSON.parse(argv.stdout) as Report).targets[0]!.stdout, 'a|b $HOME *\n');
  const shell = await runCli(['run', '--site', site, '--json', '--', 'echo $((1 + 2)) | tr 3 x']);
  assert.equal((JSON.parse(shell.stdout) as Report).targets[0]!.stdout, 'x\n');
  const missing = await runCli(['run', '--site', site, '--json', '--', 'no-such-program-cairn']);
  assert.equal(missing.status, 1);
  assert.equal((JSON.parse(missing.stdout) as Report).targets[0]!.exit_code, 127);
});

test('--become runs as root locally (Cairn is root here: no sudo needed)', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
  const r = await runCli(['run', '--site', localSite(['a']), '--become', '--json', '--', 'id', '-u']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as Report).targets[0]!.stdout, '0\n');
});

test('no command, or an unknown target, is exit 2 and runs nothing', async () => {
  const site = localSite(['a']);
  const none = await runCli(['run', '--site', site, '-t', 'a']);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /missing required argument 'command'/);
  const flag = tempDir('cairn-run-flag-');
  const unknown = await runCli(['run', '--site', site, '-t', 'b', '--', 'touch', `${flag}/ran`]);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /no target, group or glob matches 'b'/);
  assert.equal(spawnSync('test', ['-e', `${flag}/ran`]).status, 1);
});

test('on a terminal, output is streamed as it comes, each line with its target', { skip: spawnSync('script', ['--version']).status !== 0 && 'script(1) is missing' }, () => {
  const site = localSite(['a', 'b']);
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, CAIRN, 'run', '--site', site, '--', 'sh', '-c', 'echo one; sleep 0.2; echo two >&2; exit 3'].map(quote).join(' ');
  const r = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  const lines = r.stdout.replace(/\r/g, '').split('\n').filter(Boolean);
  for (const name of ['a', 'b']) {
    assert.deepEqual(lines.filter((l) => l.startsWith(`${name}: `)), [`${name}: one`, `${name}: two`, `${name}: FAILED: exit 3`]);
  }
  // Both targets said "one" before either said "two": the lines came as they happened.
  assert.ok(lines.indexOf('b: one') < lines.indexOf('a: two'), lines.join('\n'));
});

const missing = sshUnavailable();
if (missing) process.stderr.write(`\n*** SKIPPED: cairn run over SSH: ${missing} ***\n\n`);

describe('cairn run over SSH', { skip: missing }, () => {
  let sshd: Sshd;
  before(async () => {
    sshd = await startSshd({ port: 22490 });
  });
  after(() => sshd?.stop());

  const site = () => {
    const target = (port: number) => `{ host: ${sshd.host}, port: ${port}, user: root, identity_file: ${sshd.identityFile}, known_hosts: ${sshd.knownHosts} }`;
    const state = tempDir('cairn-run-ssh-');
    // Nothing listens on 22491: that target is unreachable.
    return makeSite({ 'cairn.yaml': `targets:\n  far: ${target(sshd.port)}\n  gone: ${target(22491)}\n  here: { executor: local, state_dir: ${state} }\n` });
  };

  test('over SSH and locally in one run; an unreachable target is exit 3, which wins over a failure', async () => {
    const s = site();
    const r = await runCli(['run', '--site', s, '--json', '--', 'sh', '-c', 'echo "$0 $((6 * 7))"; exit 0', 'hi']);
    assert.equal(r.status, 3, r.stderr);
    const [far, gone, here] = (JSON.parse(r.stdout) as Report).targets;
    assert.deepEqual(far, { name: 'far', status: 'ok', exit_code: 0, stdout: 'hi 42\n', stderr: '' });
    assert.deepEqual(here, { name: 'here', status: 'ok', exit_code: 0, stdout: 'hi 42\n', stderr: '' });
    assert.equal(gone!.status, 'unreachable');
    assert.equal(gone!.exit_code, null);
    assert.match(gone!.error!, /127\.0\.0\.1:22491/);

    const failing = await runCli(['run', '--site', s, '--json', '--', 'sh', '-c', 'exit 5']);
    assert.equal(failing.status, 3, 'unreachable wins over failed');
    assert.deepEqual((JSON.parse(failing.stdout) as Report).targets.map((t) => [t.status, t.exit_code]), [['failed', 5], ['unreachable', null], ['failed', 5]]);

    const text = await runCli(['run', '--site', s, '-t', '!here', '--', 'echo', 'x']);
    assert.equal(text.status, 3);
    assert.match(text.stdout, /^far: ok \(exit 0\)\nx\ngone: UNREACHABLE: .*127\.0\.0\.1:22491/);
  });

  test('a failing command over SSH is exit 1, its output kept', async () => {
    const r = await runCli(['run', '--site', site(), '-t', 'far', '--json', '--', 'sh', '-c', 'echo gone wrong >&2; exit 2']);
    assert.equal(r.status, 1, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as Report).targets, [{ name: 'far', status: 'failed', exit_code: 2, stdout: '', stderr: 'gone wrong\n' }]);
  });

  test('--become forces the target to become root through sudo -n', { skip: spawnSync('sudo', ['-n', 'true']).status !== 0 && 'sudo -n is not usable here' }, async () => {
    const r = await runCli(['run', '--site', site(), '-t', 'far', '--become', '--json', '--', 'sh', '-c', 'id -u; echo "$SUDO_USER"']);
    assert.equal(r.status, 0, r.stderr);
    // SUDO_USER is set by sudo only: the command went through it.
    assert.equal((JSON.parse(r.stdout) as Report).targets[0]!.stdout, '0\nroot\n');
  });
});
