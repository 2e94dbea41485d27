/**
 * Commands over SSH run in the executor's long-lived shell (shell-command.ts), against a real
 * sshd: their own stdout and stderr, whole and byte for byte, their exit status, stdin (their own
 * or none, never the protocol's), a timeout that kills them and leaves the shell working, several
 * at once, a daemon left holding their output, and the folder of their files gone with the shell.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SshExecutor } from '../src/executors/ssh/executor.ts';
import { sshUnavailable, startSshd, type Sshd } from './helpers/sshd.ts';

const missing = sshUnavailable();
if (missing) process.stderr.write(`\n*** SKIPPED: SSH command tests: ${missing} ***\n\n`);

/** Whether a process of this machine (the sshd is local) still runs: absent, or a zombie, is not. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

describe('ssh commands in the shell', { skip: missing }, () => {
  let sshd: Sshd;
  let exec: SshExecutor;
  before(async () => {
    sshd = await startSshd({ port: 22415 });
    exec = await SshExecutor.open('h', { host: sshd.host, port: sshd.port, user: 'root', identity_file: sshd.identityFile, known_hosts: sshd.knownHosts });
  });
  after(async () => {
    await exec?.close();
    sshd?.stop();
  });

  test('a command runs in the long-lived shell, not on a channel of its own: one round trip, its parent is that shell', async () => {
    const before = exec.roundTrips;
    const r = await exec.run(['/bin/sh', '-c', 'tr "\\0" " " </proc/$PPID/cmdline']);
    assert.equal(r.code, 0);
    // On a channel of its own, sshd's session process would be its parent.
    assert.doesNotMatch(r.stdout, /sshd/);
    assert.match(r.stdout, /sh/);
    assert.equal(exec.roundTrips, before + 1);
  });

  test('stdout and stderr apart, the exit status, env and cwd, the login\'s locale rather than the protocol\'s', async () => {
    assert.deepEqual(await exec.run(['/bin/sh', '-c', 'echo out; echo err >&2; echo more; exit 3']), { code: 3, stdout: 'out\nmore\n', stderr: 'err\n' });
    assert.deepEqual(await exec.run(['true']), { code: 0, stdout: '', stderr: '' });
    assert.equal((await exec.run(['/bin/sh', '-c', 'echo "$A $(pwd)"'], { env: { A: "it's" }, cwd: '/tmp' })).stdout, "it's /tmp\n");
    assert.equal((await exec.run(['/bin/sh', '-c', 'echo "${LC_ALL-unset}"'])).stdout, 'unset\n');
    const missingProgram = await exec.run(['no-such-program-here']);
    assert.equal(missingProgram.code, 127);
    assert.match(missingProgram.stderr, /no-such-program-here/);
    // Killed by a signal: 128 + its number, as a shell says.
    assert.equal((await exec.run(['/bin/sh', '-c', 'kill -TERM $$'])).code, 143);
  });

  test('output is byte for byte what the command printed (every byte value, NULs, no newline at the end), and whole', async () => {
    const bytes = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
    const octal = [...bytes].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
    const r = await exec.run(['/bin/sh', '-c', `printf '${octal}'; printf '${octal}' >&2`]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, bytes.toString());
    assert.equal(r.stderr, bytes.toString());
    // Larger than any one read of the reply.
    const large = await exec.run(['/bin/sh', '-c', 'i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i + 1)); done']);
    const lines = large.stdout.split('\n');
    assert.equal(lines.length, 20001);
    assert.equal(lines[19999], 'line 19999');
  });

  test('stdin: none is EOF (never the requests after it); given, it is the bytes given', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-ssh-cmd-'));
    // Requests sent behind the command in the same breath: a command that read the shell's
    // stdin would eat them and hang the session.
    const [cat, stat, head] = await Promise.all([
      exec.run(['cat']),
      exec.stat(dir),
      exec.run(['/bin/sh', '-c', 'head -c 100; echo "[$?]"']),
    ]);
    assert.deepEqual(cat, { code: 0, stdout: '', stderr: '' });
    assert.equal(stat?.type, 'directory');
    assert.equal(head.stdout, '[0]\n');
    const input = Buffer.concat([Buffer.from('-----BEGIN 100% \\n \' "\n'), Buffer.from([0, 1, 255, 10]), Buffer.alloc(150_000, 'x')]);
    const echoed = await exec.run(['/bin/sh', '-c', 'od -An -v -tx1 | tr -d " \\n"'], { stdin: input });
    assert.equal(echoed.stdout, input.toString('hex'));
    assert.deepEqual(await exec.run(['cat'], { stdin: '' }), { code: 0, stdout: '', stderr: '' });
  });

  test('a command past its timeout is killed with what it started, and the shell goes on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-ssh-cmd-'));
    const pids = join(dir, 'pids');
    const slow = await exec.run(['/bin/sh', '-c', `sleep 60 & echo $$ $! > ${pids}; wait`], { timeoutMs: 1000 });
    assert.equal(slow.timedOut, true);
    assert.equal(slow.code, 137);
    for (const pid of readFileSync(pids, 'utf8').trim().split(' ').map(Number)) assert.equal(running(pid), false, `pid ${pid} still runs`);
    assert.deepEqual(await exec.run(['echo', 'after']), { code: 0, stdout: 'after\n', stderr: '' });
    await exec.writeFile(join(dir, 'f'), 'still writing\n');
    assert.equal((await exec.readFile(join(dir, 'f')))?.toString(), 'still writing\n');
  });

  test('a daemon left holding the output does not hold up the result', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-ssh-cmd-'));
    const pid = join(dir, 'pid');
    // On a channel, sshd waits for every holder of the command's stdout to close it.
    const r = await exec.run(['/bin/sh', '-c', `sleep 60 & echo $! > ${pid}; echo started`]);
    assert.deepEqual(r, { code: 0, stdout: 'started\n', stderr: '' });
    process.kill(Number(readFileSync(pid, 'utf8')), 'SIGKILL');
  });

  test('commands sent together each get their own status and output, in order with file operations', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-ssh-cmd-'));
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 3 === 0
      ? exec.writeFile(join(dir, `f${i}`), `${i}\n`).then(() => exec.run(['cat', join(dir, `f${i}`)]))
      : exec.run(['/bin/sh', '-c', `echo ${i}; echo e${i} >&2; exit ${i % 4}`]))));
    results.forEach((r, i) => assert.deepEqual(r, i % 3 === 0 ? { code: 0, stdout: `${i}\n`, stderr: '' } : { code: i % 4, stdout: `${i}\n`, stderr: `e${i}\n` }, `command ${i}`));
  });

  test('a shell that cannot make a command\'s files runs it, and those after it, on channels of their own', async () => {
    const own = await SshExecutor.open('h', { host: sshd.host, port: sshd.port, user: 'root', identity_file: sshd.identityFile, known_hosts: sshd.knownHosts });
    try {
      const parent = ['/bin/sh', '-c', 'tr "\\0" " " </proc/$PPID/cmdline'];
      assert.doesNotMatch((await own.run(parent)).stdout, /sshd/);
      // The command removes the folder its own output goes to.
      assert.equal((await own.run(['/bin/sh', '-c', 'rm -rf -- "$(dirname "$(readlink /proc/$$/fd/1)")"'])).code, 0);
      assert.deepEqual(await own.run(['/bin/sh', '-c', 'echo out; echo err >&2; exit 4']), { code: 4, stdout: 'out\n', stderr: 'err\n' });
      assert.match((await own.run(parent)).stdout, /sshd/);
    } finally {
      await own.close();
    }
  });

  test('a command\'s request reads the announced paths from the last one asked about on: the next node\'s read takes no round trip and sees what the command did', async () => {
    const own = await SshExecutor.open('h', { host: sshd.host, port: sshd.port, user: 'root', identity_file: sshd.identityFile, known_hosts: sshd.knownHosts });
    try {
      const dir = mkdtempSync(join(tmpdir(), 'cairn-ssh-cmd-'));
      const [a, b, c] = ['a', 'b', 'c'].map((n) => join(dir, n)) as [string, string, string];
      own.prefetch([a, b, c].map((path) => ({ path, content: false })));
      assert.equal(await own.stat(a), undefined);
      await own.run(['touch', b]);
      const afterCommand = own.roundTrips;
      assert.equal((await own.stat(b))?.type, 'file');
      assert.equal(await own.stat(c), undefined);
      assert.equal(own.roundTrips, afterCommand);
      // What it read ahead has no digests: a file's bytes are fetched when asked for.
      await own.run(['/bin/sh', '-c', `printf hi > ${c}`]);
      assert.equal((await own.readFile(c))?.toString(), 'hi');
      assert.equal(own.roundTrips, afterCommand + 2);
    } finally {
      await own.close();
    }
  });

  test('a command that did not start in the shell runs apart, and what was read ahead before it is not kept', async () => {
    const own = await SshExecutor.open('h', { host: sshd.host, port: sshd.port, user: 'root', identity_file: sshd.identityFile, known_hosts: sshd.knownHosts });
    try {
      const file = join(mkdtempSync(join(tmpdir(), 'cairn-ssh-cmd-')), 'made');
      own.prefetch([{ path: file, content: false }]);
      assert.equal(await own.stat(file), undefined);
      // Removes the folder the next command's files would go to; its request reads `file` (absent) after it.
      assert.equal((await own.run(['/bin/sh', '-c', 'rm -rf -- "$(dirname "$(readlink /proc/$$/fd/1)")"'])).code, 0);
      assert.deepEqual(await own.run(['/bin/sh', '-c', `touch ${file}; echo made`]), { code: 0, stdout: 'made\n', stderr: '' });
      assert.equal((await own.stat(file))?.type, 'file');
    } finally {
      await own.close();
    }
  });

  test('the folder of the command files goes when the shell exits', async () => {
    const own = await SshExecutor.open('h', { host: sshd.host, port: sshd.port, user: 'root', identity_file: sshd.identityFile, known_hosts: sshd.knownHosts });
    let folder: string;
    try {
      // The run lock is what the executor waits on at close: the shell's exit (and its EXIT trap) then comes first.
      assert.equal((await own.tryLock(join(mkdtempSync(join(tmpdir(), 'cairn-ssh-cmd-')), 'state'), { started: new Date().toISOString(), by: 'test' })).state, 'taken');
      const r = await own.run(['/bin/sh', '-c', 'readlink /proc/$$/fd/1']);
      folder = dirname(r.stdout.trim());
      assert.match(folder, /\/\.commands\.cairn-tmp\.\d+\.[0-9a-f]+\.[0-9a-f]{12}$/);
      assert.ok(existsSync(folder));
    } finally {
      await own.close();
    }
    assert.equal(existsSync(folder), false);
  });
});
