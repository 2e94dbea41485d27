/**
 * Guarded commands sent together (Executor.runGuarded; shell-command.ts, guardedRequest), against
 * a real sshd: `exec`s that follow one another cost one round trip, each guard asked on the
 * target right after the commands before it ran; those the cache already answers cost none; a
 * cancel (Ctrl-C) lets the command under way finish and starts none after it. engine.suite.ts
 * checks, over SSH and locally, that each node reports what it would run alone in turn.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SshExecutor } from '../src/executors/ssh/executor.ts';
import type { GuardedCommand, GuardedOutcome } from '../src/executors/types.ts';
import { makeSite, tempDir } from './helpers/cli.ts';
import { sshUnavailable, startSshd, type Sshd } from './helpers/sshd.ts';
import { HANG_MS, waitUntil } from './helpers/wait.ts';

const missing = sshUnavailable();
if (missing) process.stderr.write(`\n*** SKIPPED: guarded commands over SSH: ${missing} ***\n\n`);

const sh = (line: string): GuardedCommand['argv'] => ['/bin/sh', '-c', line];
/** Runs `commands` together: what the executor heard of each, in order, and how many it decided. */
async function runGuarded(exec: SshExecutor, commands: GuardedCommand[]): Promise<GuardedOutcome[]> {
  const outcomes: GuardedOutcome[] = [];
  const decided = await exec.runGuarded(commands, (i, outcome) => {
    assert.equal(i, outcomes.length, 'outcomes come in order');
    outcomes.push(outcome);
  });
  assert.equal(decided, outcomes.length);
  return outcomes;
}
/** The stop files of cancelled requests (shell-command.ts): none may stay behind. */
const stopFiles = () => readdirSync('/tmp').filter((f) => f.startsWith('.guarded.cairn-tmp.'));

describe('guarded commands over SSH', { skip: missing }, () => {
  let sshd: Sshd;
  let exec: SshExecutor;
  const open = () => SshExecutor.open('h', { host: sshd.host, port: sshd.port, user: 'root', identity_file: sshd.identityFile, known_hosts: sshd.knownHosts });
  before(async () => {
    sshd = await startSshd({ port: 22650 });
    exec = await open();
  });
  after(async () => {
    await exec?.close();
    sshd?.stop();
  });

  test('commands one after the other in one round trip, each guard asked after the commands before it ran', async () => {
    const dir = tempDir('cairn-guarded-');
    const a = join(dir, 'a');
    const before = exec.roundTrips;
    const outcomes = await runGuarded(exec, [
      { argv: sh(`touch ${a}; echo made`), opts: {}, guards: [{ exists: a }] },
      // The first made it: not needed.
      { argv: sh(`touch ${dir}/never`), opts: {}, guards: [{ exists: a }] },
      { argv: sh('echo out; echo err >&2; exit 3'), opts: {}, guards: [] },
      { argv: sh(`touch ${dir}/never`), opts: {}, guards: [{ exists: join(dir, 'absent') }, { unless: { argv: sh(`test -f ${a}`), opts: {} } }] },
      { argv: sh(`touch ${dir}/never`), opts: {}, guards: [{ onlyif: { argv: sh(`test -f ${dir}/never`), opts: {} } }] },
      { argv: sh('echo "$G $(pwd)"'), opts: { env: { G: 'hi' }, cwd: dir }, guards: [{ onlyif: { argv: sh('test "$G" = hi && test -f a'), opts: { env: { G: 'hi' }, cwd: dir } } }] },
      { argv: ['sleep', '5'], opts: { timeoutMs: 300 }, guards: [] },
    ]);
    assert.equal(exec.roundTrips, before + 1);
    assert.deepEqual(outcomes.slice(0, 6), [
      { ran: { code: 0, stdout: 'made\n', stderr: '' } },
      { notNeeded: 0 },
      { ran: { code: 3, stdout: 'out\n', stderr: 'err\n' } },
      { notNeeded: 1 },
      { notNeeded: 0 },
      { ran: { code: 0, stdout: `hi ${dir}\n`, stderr: '' } },
    ]);
    // Killed at its timeout, as `run` reports it (its stderr is what the far side's shell said).
    const last = outcomes[6];
    assert.ok(last && 'ran' in last && last.ran.code === 137 && last.ran.timedOut === true, JSON.stringify(last));
    assert.equal(existsSync(join(dir, 'never')), false);
  });

  test('each outcome is heard as its command ends, while the commands after it still run', async () => {
    const dir = tempDir('cairn-guarded-');
    const gate = join(dir, 'gate');
    execFileSync('mkfifo', [gate]);
    const heard: string[] = [];
    let opened: Promise<void> | undefined;
    // The second command waits for the first's outcome: heard only at the end, neither would end.
    const run = exec.runGuarded([
      { argv: sh('echo first'), opts: {}, guards: [] },
      { argv: sh(`cat ${gate}`), opts: {}, guards: [] },
    ], (i, outcome) => {
      heard.push(`${i} ${JSON.stringify(outcome)}`);
      if (i === 0) opened = writeFile(gate, 'released\n');
    });
    const decided = await Promise.race([run, delay(HANG_MS, undefined, { ref: false }).then(() => assert.fail('the second command was never released: the first outcome came only at the end'))]);
    await opened;
    assert.equal(decided, 2);
    assert.deepEqual(heard, [
      `0 ${JSON.stringify({ ran: { code: 0, stdout: 'first\n', stderr: '' } })}`,
      `1 ${JSON.stringify({ ran: { code: 0, stdout: 'released\n', stderr: '' } })}`,
    ]);
  });

  test('commands the cache already says are not needed cost no round trip; from the first that needs the target, one', async () => {
    const dir = tempDir('cairn-guarded-');
    for (const f of ['a', 'b']) writeFileSync(join(dir, f), '');
    exec.prefetch(['a', 'b', 'c'].map((f) => ({ path: join(dir, f) })));
    assert.equal((await exec.stat(join(dir, 'a')))?.type, 'file');
    const before = exec.roundTrips;
    const done = [{ argv: sh('exit 9'), opts: {}, guards: [{ exists: join(dir, 'a') }] }, { argv: sh('exit 9'), opts: {}, guards: [{ exists: join(dir, 'b') }] }];
    assert.deepEqual(await runGuarded(exec, done), [{ notNeeded: 0 }, { notNeeded: 0 }]);
    assert.equal(exec.roundTrips, before);
    const outcomes = await runGuarded(exec, [...done, { argv: sh(`touch ${dir}/c`), opts: {}, guards: [{ exists: join(dir, 'c') }] }]);
    assert.deepEqual(outcomes, [{ notNeeded: 0 }, { notNeeded: 0 }, { ran: { code: 0, stdout: '', stderr: '' } }]);
    assert.equal(exec.roundTrips, before + 1);
    assert.ok(existsSync(join(dir, 'c')));
  });

  test('Ctrl-C during commands sent together: the one under way finishes, none starts after it, no stop file stays', async () => {
    const root = tempDir('cairn-guarded-');
    const state = join(tempDir('cairn-guarded-state-'), 'state');
    const site = makeSite({
      'cairn.yaml': `targets:\n  t1:\n    host: ${sshd.host}\n    port: ${sshd.port}\n    user: root\n    identity_file: ${sshd.identityFile}\n` +
        `    known_hosts: ${sshd.knownHosts}\n    state_dir: ${state}\n    run: [s]\n`,
      'states/s.yaml': `s:\n  - exec: sh -c 'touch ${root}/started; while [ ! -e ${root}/release ]; do sleep 0.05; done'\n` +
        `  - exec: touch ${root}/two\n    creates: ${root}/two\n  - exec: touch ${root}/three\n`,
    });
    const stopsBefore = new Set(stopFiles());
    const child = spawn(process.execPath, ['--import', 'tsx', resolve(import.meta.dirname, '../src/cli/bin.ts'), 'apply', '--site', site, '--json'],
      { stdio: ['ignore', 'pipe', 'pipe'], cwd: resolve(import.meta.dirname, '..') });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    try {
      await waitUntil(() => existsSync(join(root, 'started')) || child.exitCode !== null, () => `the first command to start:\n${stderr}`);
      child.kill('SIGINT');
      // The stop file is made from beside the shell: the command under way ends only once it is there.
      await waitUntil(() => stopFiles().some((f) => !stopsBefore.has(f)), () => `the stop file:\n${stderr}`);
      writeFileSync(join(root, 'release'), '');
      assert.equal(await exited, 1, stderr);
    } finally {
      child.kill('SIGKILL');
    }
    const nodes = (JSON.parse(stdout) as { targets: { nodes: { status: string; reason?: string }[] }[] }).targets[0]!.nodes;
    assert.deepEqual(nodes.map((n) => `${n.status}${n.reason ? ` [${n.reason}]` : ''}`), ['changed', 'skipped [run cancelled]', 'skipped [run cancelled]']);
    assert.equal(existsSync(join(root, 'two')), false);
    assert.equal(existsSync(join(root, 'three')), false);
    assert.deepEqual(stopFiles().filter((f) => !stopsBefore.has(f)), []);
  });
});
