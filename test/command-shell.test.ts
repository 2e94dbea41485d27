/**
 * The local executor's command shell (src/executors/command-shell.ts): a long-lived /bin/sh that
 * starts commands. Each case runs the same command through the shell and through a spawn (a
 * timeout sends a run to a spawn) and expects the same result; the rest checks what only the
 * shell does: output kept per command, no wait on daemons, no hold on Cairn's exit, its folder
 * removed, and a spawn where it cannot help.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CommandShell } from '../src/executors/command-shell.ts';
import { LocalExecutor } from '../src/executors/local.ts';
import type { RunOptions } from '../src/executors/types.ts';
import { tempDir } from './helpers/cli.ts';
import { waitUntil } from './helpers/wait.ts';

/** Long enough never to fire: it only makes the run a spawn. */
const SPAWNED: RunOptions = { timeoutMs: 600_000 };

/** The pid of the process that started the command. */
async function parentOf(exec: LocalExecutor, opts: RunOptions = {}): Promise<number> {
  return Number((await exec.run(['/bin/sh', '-c', 'echo $PPID'], opts)).stdout);
}

test('the shell starts commands, and each gives what a spawn gives', async (t) => {
  const exec = new LocalExecutor();
  t.after(() => exec.close());
  const dir = tempDir('cairn-command-shell-');
  const script = join(dir, 'not-executable');
  writeFileSync(script, 'echo hi\n');
  chmodSync(script, 0o644);

  // Started by the shell, not by Node; with a timeout, by Node.
  assert.notEqual(await parentOf(exec), process.pid);
  assert.equal(await parentOf(exec, SPAWNED), process.pid);

  const cases: [string[], RunOptions][] = [
    [['echo', 'hi there', "it's", '$HOME', '*'], {}],
    [['/bin/sh', '-c', 'echo out; echo err >&2; exit 3'], {}],
    [['printf', '%s', 'no newline at the end'], {}],
    [['/bin/sh', '-c', 'printf "line\\n\\n\\n"'], {}],
    [['/bin/sh', '-c', 'echo "[$A] [$B] [$LANG_X]"'], { env: { A: "it's", B: 'two\nlines', LANG_X: '' } }],
    [['pwd'], { cwd: dir }],
    [['pwd'], { cwd: join(dir, 'missing') }],
    [['cat'], {}],
    [['/bin/sh', '-c', 'kill -TERM $$'], {}],
    [['/bin/sh', '-c', 'exit 127'], {}],
    [['no-such-program-cairn'], {}],
    [['/no/such/path'], {}],
    [[script], {}],
    [[dir], {}],
    [['/bin/sh', '-c', 'ls -d . >/dev/null; echo "$PWD"'], { cwd: dir }],
  ];
  for (const [argv, opts] of cases) {
    const viaShell = await exec.run(argv, opts);
    const spawned = await exec.run(argv, { ...opts, ...SPAWNED });
    assert.deepEqual(viaShell, spawned, `${JSON.stringify(argv)} ${JSON.stringify(opts)}`);
  }
  // cd in the shell sets OLDPWD; the command still gets Cairn's, or none.
  const savedOldpwd = process.env.OLDPWD;
  t.after(() => {
    if (savedOldpwd === undefined) delete process.env.OLDPWD;
    else process.env.OLDPWD = savedOldpwd;
  });
  for (const oldpwd of [undefined, '/somewhere else']) {
    if (oldpwd === undefined) delete process.env.OLDPWD;
    else process.env.OLDPWD = oldpwd;
    const argv = ['/bin/sh', '-c', 'echo "[${OLDPWD-none}]"'];
    const viaShell = await exec.run(argv, { cwd: dir });
    assert.deepEqual(viaShell, await exec.run(argv, { cwd: dir, ...SPAWNED }));
    assert.equal(viaShell.stdout, `[${oldpwd ?? 'none'}]\n`);
  }
  assert.deepEqual(await exec.run(['no-such-program-cairn']), { code: 127, stdout: '', stderr: 'no-such-program-cairn: not found' });
  assert.deepEqual(await exec.run([dir]), { code: 126, stdout: '', stderr: `${dir}: permission denied` });
  assert.equal((await exec.run(['/bin/sh', '-c', 'kill -TERM $$'])).code, 128 + 15);
});

test('the shell: runs it cannot give as a spawn would are spawned', async (t) => {
  const exec = new LocalExecutor();
  t.after(() => exec.close());
  assert.notEqual(await parentOf(exec), process.pid);
  assert.equal(await parentOf(exec, { env: { PWD: '/' } }), process.pid);
  assert.equal(await parentOf(exec, { env: { 'NOT-A-NAME': '1' } }), process.pid);
  assert.equal(await parentOf(exec, { signal: new AbortController().signal }), process.pid);
  // What a spawn refuses, it still refuses.
  await assert.rejects(exec.run(['true'], { env: { A: 'x\0y' } }), /null bytes/);
  await assert.rejects(exec.run(['echo', 'x\0y']), /null bytes/);
  const stdin = await exec.run(['/bin/sh', '-c', 'cat; echo $PPID'], { stdin: 'in\n' });
  assert.equal(stdin.stdout, `in\n${process.pid}\n`);
  // Side by side: one in the shell, the others spawned, each with its own output.
  const results = await Promise.all(Array.from({ length: 6 }, (_, i) => exec.run(['/bin/sh', '-c', `echo ${i}; echo $PPID; exit ${i % 3}`])));
  const parents = results.map((r, i) => {
    const [own, parent] = r.stdout.split('\n');
    assert.equal(own, String(i));
    assert.equal(r.code, i % 3);
    return Number(parent);
  });
  assert.equal(parents.filter((p) => p !== process.pid).length, 1, 'one command in the shell, five spawned');
});

test('the shell: a daemon a command leaves behind neither stalls the run nor writes into later output', { timeout: 120_000 }, async (t) => {
  const exec = new LocalExecutor();
  t.after(() => exec.close());
  const dir = tempDir('cairn-command-shell-daemon-');
  const go = join(dir, 'go');
  const written = join(dir, 'written');
  for (const fifo of [go, written]) assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  // The daemon keeps the command's stdout and writes to it only when the next command lets it,
  // then says so, and stays (until the test kills it).
  const started = await exec.run(['/bin/sh', '-c', `(read x < ${go}; echo late; echo > ${written}; exec sleep infinity) & echo $!`]);
  const daemon = Number(started.stdout);
  t.after(() => process.kill(daemon, 'SIGKILL'));
  // The run returned while the daemon, which still holds that command's stdout, is alive.
  assert.equal(started.code, 0);
  assert.doesNotThrow(() => process.kill(daemon, 0));
  // The next command runs while the daemon writes "late": it releases it and waits until it wrote.
  assert.deepEqual(await exec.run(['/bin/sh', '-c', `echo > ${go}; read x < ${written}; echo next`]), { code: 0, stdout: 'next\n', stderr: '' });
});

test('the shell: Cairn exits without waiting for it, and its folder goes with it', async () => {
  const tmp = tempDir('cairn-command-shell-tmp-');
  const program = `
    import { LocalExecutor } from ${JSON.stringify(new URL('../src/executors/local.ts', import.meta.url).href)};
    const exec = new LocalExecutor();
    const r = await exec.run(['/bin/sh', '-c', 'echo $PPID']);
    console.log(Number(r.stdout) !== process.pid ? 'shell' : 'spawn');
    // No close(): the process must still end, and the shell with it.
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program], { env: { ...process.env, TMPDIR: tmp }, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'shell');
  // The shell saw its stdin close and removed its folder on the way out.
  const folders = () => readdirSync(tmp).filter((name) => name.startsWith('cairn-commands-'));
  await waitUntil(() => folders().length === 0, () => `the shell's folder is still there: ${folders().join(', ')}`);
});

test('the shell: a command that removes its folder still reports its status, and later commands are spawned', async (t) => {
  const tmp = tempDir('cairn-command-shell-tmp-');
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  const exec = new LocalExecutor();
  t.after(() => {
    process.env.TMPDIR = saved;
    if (saved === undefined) delete process.env.TMPDIR;
    return exec.close();
  });
  assert.notEqual(await parentOf(exec), process.pid);
  const folder = readdirSync(tmp).find((name) => name.startsWith('cairn-commands-'));
  if (!folder) assert.fail(`no command shell folder in ${tmp}`);
  const removed = await exec.run(['/bin/sh', '-c', `rm -rf ${join(tmp, folder)}; exit 4`]);
  assert.equal(removed.code, 4);
  assert.equal(existsSync(join(tmp, folder)), false);
  // Its output files cannot be made: the command is spawned instead, and so is every one after it.
  assert.deepEqual(await exec.run(['/bin/sh', '-c', 'echo again']), { code: 0, stdout: 'again\n', stderr: '' });
  assert.equal(await parentOf(exec), process.pid);
});

test('the shell: where no shell starts, the command is left to a spawn', async () => {
  const commands = new CommandShell((_, args, options) => spawn('/no/such/sh', args, options), () => process.env, 1 << 20);
  assert.equal(commands.accepts(['true'], {}), true);
  assert.equal(await commands.run(['true'], {}), undefined);
  assert.equal(commands.accepts(['true'], {}), false);
  commands.close();
});

test('the shell: where its folder cannot be made, commands are spawned', async (t) => {
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = '/nonexistent/cairn-tmp';
  const exec = new LocalExecutor();
  t.after(() => {
    process.env.TMPDIR = saved;
    if (saved === undefined) delete process.env.TMPDIR;
    return exec.close();
  });
  assert.deepEqual(await exec.run(['/bin/sh', '-c', 'echo $PPID']), { code: 0, stdout: `${process.pid}\n`, stderr: '' });
});
