/**
 * The shell protocol (src/executors/shell/) over a transport that is not SSH: a local `/bin/sh`
 * child process through ProcessTransport, the way `chroot` and `nsenter` executors will run it.
 * No chroot here: the shell runs on this machine, on temp folders.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { localFacts } from '../src/executors/local-facts.ts';
import { ShellExecutor } from '../src/executors/shell/executor.ts';
import { ProcessTransport } from '../src/executors/shell/process-transport.ts';
import type { ShellStream } from '../src/executors/shell/stream.ts';
import { UnreachableError } from '../src/executors/types.ts';
import { tempDir } from './helpers/cli.ts';

const FACT_KEYS = ['kernel', 'kernel_release', 'os_family', 'distribution', 'release', 'architecture', 'init_system', 'package_manager', 'hostname', 'addresses', 'cpus', 'memory_mb'];

function localSh(shell = ['/bin/sh']): ProcessTransport {
  return new ProcessTransport({ name: 'local-sh', endpoint: 'a local /bin/sh', shell });
}

describe('the shell protocol over a local /bin/sh process', () => {
  let exec: ShellExecutor;
  before(async () => {
    exec = await ShellExecutor.start('t', localSh());
  });
  after(() => exec?.close());

  test('facts come with the set-up (one round trip), as this machine; a later call reads them again', async () => {
    // An executor of its own: the round trips counted are this test's, whatever ran before.
    const fresh = await ShellExecutor.start('t', localSh());
    try {
      assert.equal(fresh.name, 'local-sh');
      assert.equal(fresh.roundTrips, 1);
      const facts = await fresh.facts();
      assert.equal(fresh.roundTrips, 1);
      assert.deepEqual(Object.keys(facts), FACT_KEYS);
      const local = localFacts();
      for (const key of ['kernel', 'kernel_release', 'os_family', 'distribution', 'release', 'architecture', 'hostname', 'package_manager']) {
        assert.deepEqual(facts[key], local[key], key);
      }
      assert.deepEqual(await fresh.facts(), facts);
      assert.equal(fresh.roundTrips, 2);
    } finally {
      await fresh.close();
    }
  });

  test('writeFile is atomic and keeps or sets the mode; readFile, sha256 and stat read it back', async () => {
    const dir = tempDir('cairn-sh-write-');
    const path = join(dir, 'f');
    await exec.writeFile(path, 'one\n', { mode: 0o600 });
    assert.equal(readFileSync(path, 'utf8'), 'one\n');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    // Bytes printf has to escape, and more than one printf chunk (64 KiB).
    const bytes = Buffer.alloc(200 * 1024);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) % 256;
    await exec.writeFile(path, bytes);
    assert.ok(readFileSync(path).equals(bytes));
    assert.equal(statSync(path).mode & 0o777, 0o600, 'the mode of the file it replaced is kept');
    assert.deepEqual(readdirSync(dir), ['f'], 'no temp file is left behind');
    assert.ok((await exec.readFile(path))?.equals(bytes));
    assert.equal(await exec.sha256(path), (await import('node:crypto')).createHash('sha256').update(bytes).digest('hex'));
    assert.deepEqual(await exec.stat(path), { type: 'file', mode: 0o600, uid: process.getuid!(), gid: process.getgid!(), size: bytes.length });
    await exec.writeFile(join(dir, 'empty'), '');
    assert.equal(readFileSync(join(dir, 'empty'), 'utf8'), '');
    assert.equal(statSync(join(dir, 'empty')).mode & 0o777, 0o644, 'a new file takes its mode from the shell\'s umask');
    await assert.rejects(exec.writeFile(join(dir, 'missing', 'f'), 'x'), { code: 'ENOENT' });
    assert.equal(await exec.readFile(join(dir, 'absent')), undefined);
    await assert.rejects(exec.readFile(dir), { code: 'EISDIR' });
  });

  test('mkdir, symlink, chmod, chown and remove', async () => {
    const dir = tempDir('cairn-sh-ops-');
    await assert.rejects(exec.mkdir(join(dir, 'no', 'such')), { code: 'ENOENT' });
    await exec.mkdir(join(dir, 'a', 'b', 'c'), { parents: true, mode: 0o750 });
    assert.equal(statSync(join(dir, 'a', 'b', 'c')).mode & 0o777, 0o750);
    await exec.mkdir(join(dir, 'd'), { mode: 0o700 });
    assert.equal((await exec.stat(join(dir, 'd')))?.type, 'directory');
    assert.equal((await exec.stat(join(dir, 'd')))?.mode, 0o700);

    writeFileSync(join(dir, 'was-a-file'), 'x');
    await exec.symlink('a/b', join(dir, 'was-a-file'));
    assert.equal(readlinkSync(join(dir, 'was-a-file')), 'a/b', 'the link replaced the file');
    await exec.symlink('elsewhere', join(dir, 'was-a-file'));
    assert.equal(await exec.readLink(join(dir, 'was-a-file')), 'elsewhere');
    assert.equal((await exec.stat(join(dir, 'was-a-file')))?.type, 'symlink');
    assert.deepEqual(readdirSync(dir).sort(), ['a', 'd', 'was-a-file']);

    writeFileSync(join(dir, 'm'), 'x');
    await exec.chmod(join(dir, 'm'), 0o640);
    assert.equal(statSync(join(dir, 'm')).mode & 0o777, 0o640);
    const me = String(process.getuid!());
    await exec.chown(join(dir, 'm'), me, String(process.getgid!()));
    assert.equal(statSync(join(dir, 'm')).uid, process.getuid!());
    assert.equal(await exec.userId('root'), 0);
    assert.equal(await exec.groupId('no-such-group-here'), undefined);

    await exec.remove(join(dir, 'a'));
    await exec.remove(join(dir, 'absent'));
    assert.equal(await exec.stat(join(dir, 'a')), undefined);
    assert.throws(() => lstatSync(join(dir, 'a')), { code: 'ENOENT' });
  });

  test('announced paths are read in one round trip; a command drops what was read', async () => {
    const dir = tempDir('cairn-sh-batch-');
    const paths = ['x', 'y', 'z'].map((n) => join(dir, n));
    for (const p of paths) writeFileSync(p, p);
    exec.prefetch([...paths.map((path) => ({ path })), { path: join(dir, 'gone') }]);
    const before = exec.roundTrips;
    for (const p of paths) assert.equal((await exec.stat(p))?.size, p.length);
    assert.equal(await exec.stat(join(dir, 'gone')), undefined);
    assert.equal(exec.roundTrips, before + 1);
    await exec.run(['/bin/sh', '-c', `echo more >> ${paths[0]}`]);
    assert.equal((await exec.stat(paths[0]!))?.size, paths[0]!.length + 5, 'read again after the command');
    assert.equal(exec.roundTrips, before + 3);
  });

  test('run: each command in a process of its own, with exit status, stdin, env, cwd and timeout', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => exec.run(['/bin/sh', '-c', `echo ${i}; echo err >&2; exit ${i % 3}`])));
    assert.deepEqual(results.map((r) => [r.code, r.stdout, r.stderr]), Array.from({ length: 20 }, (_, i) => [i % 3, `${i}\n`, 'err\n']));
    assert.deepEqual(await exec.run(['cat'], { stdin: 'in\n' }), { code: 0, stdout: 'in\n', stderr: '' });
    const dir = tempDir('cairn-sh-cwd-');
    mkdirSync(join(dir, "it's"));
    assert.equal((await exec.run(['/bin/sh', '-c', 'echo "$A $(pwd)"'], { env: { A: "it's" }, cwd: join(dir, "it's") })).stdout, `it's ${dir}/it's\n`);
    const slow = await exec.run(['sleep', '5'], { timeoutMs: 200 });
    assert.equal(slow.timedOut, true);
    assert.equal(slow.code, 137);
    await assert.rejects(exec.run(['true'], { user: 'nobody' }), /cannot run a command as nobody: the local-sh executor cannot change users/);
    // The long-lived shell went on answering through all of it.
    assert.equal((await exec.stat(dir))?.type, 'directory');
  });
});

test('facts read from a root folder: its os-release, this machine\'s kernel, at the set-up and again later', async () => {
  const root = tempDir('cairn-sh-root-');
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc', 'os-release'), 'ID=alpine\nVERSION_ID=3.20.1\n');
  const exec = await ShellExecutor.start('t', localSh(), { factsRoot: root });
  try {
    const here = localFacts();
    for (const facts of [await exec.facts(), await exec.facts()]) {
      assert.deepEqual([facts.os_family, facts.distribution, facts.release], ['alpine', 'alpine', '3.20.1']);
      assert.equal(facts.package_manager, 'unknown', 'no package tool in the root, whatever this machine has');
      assert.deepEqual([facts.kernel, facts.architecture, facts.hostname], [here.kernel, here.architecture, here.hostname]);
    }
    assert.equal(exec.roundTrips, 2);
  } finally {
    await exec.close();
  }
});

test('a shell that cannot start or exits at once fails the start; one that goes later makes the target unreachable', async () => {
  await assert.rejects(ShellExecutor.start('t', localSh(['/no/such/sh'])), /ENOENT/);
  await assert.rejects(ShellExecutor.start('t', localSh(['/bin/sh', '-c', 'echo broken >&2; exit 3'])), /broken/);
  // A shell gone after its set-up: the next operation says the target is lost.
  const exec = await ShellExecutor.start('t', localSh());
  await exec.close();
  await assert.rejects(exec.stat('/'), (err: unknown) => err instanceof UnreachableError && /lost the connection to a local \/bin\/sh/.test(err.message));
});

/**
 * A local /bin/sh whose replies can be held back: after `holdReplies(n)`, the shell's output is
 * kept until the replies of n requests are in, then delivered as one chunk, as a loaded machine or
 * a slow link delivers them.
 */
function heldBackSh(): { transport: ProcessTransport; holdReplies(n: number): void } {
  const transport = localSh();
  let want = 0;
  let held: Buffer[] = [];
  const open = transport.openShell.bind(transport);
  transport.openShell = async (): Promise<ShellStream> => {
    const inner = await open();
    const stdout = new EventEmitter();
    inner.stdout.on('data', (chunk: Buffer) => {
      if (want === 0) return void stdout.emit('data', chunk);
      held.push(chunk);
      const text = Buffer.concat(held).toString('latin1');
      if ((text.match(/\ncairn-[0-9a-f]{24} \d+\n/g) ?? []).length < want) return;
      want = 0;
      const all = Buffer.concat(held);
      held = [];
      stdout.emit('data', all);
    });
    return { ...inner, stdout };
  };
  return { transport, holdReplies: (n) => (want = n) };
}

test('two reads of one file answered in one chunk: the read that asked for the content gets it, and it stays cached', async () => {
  const { transport, holdReplies } = heldBackSh();
  const exec = await ShellExecutor.start('t', transport);
  try {
    const path = join(tempDir('cairn-sh-chunk-'), 'keys');
    writeFileSync(path, 'ssh-ed25519 AAAA one\n# a line someone else wrote\n');
    holdReplies(2);
    const [content, stat] = await Promise.all([exec.readFile(path), exec.stat(path)]);
    assert.equal(content?.toString(), 'ssh-ed25519 AAAA one\n# a line someone else wrote\n');
    assert.equal(stat?.size, content?.length);
    const trips = exec.roundTrips;
    assert.equal((await exec.readFile(path))?.toString(), content?.toString());
    assert.equal(exec.roundTrips, trips, 'the content stayed cached beside the later reading');
  } finally {
    await exec.close();
  }
});

test('a read answered while a command runs is not kept past the command: the next read sees what the command changed', async () => {
  const exec = await ShellExecutor.start('t', localSh());
  try {
    const dir = tempDir('cairn-sh-during-');
    const path = join(dir, 'f');
    const go = join(dir, 'go');
    writeFileSync(path, 'before\n');
    execFileSync('mkfifo', [go]);
    // The command waits for the test's word, so the read below is answered while it runs.
    const command = exec.run(['/bin/sh', '-c', `read _ < ${go}; echo after-the-command > ${path}`]);
    assert.equal((await exec.readFile(path))?.toString(), 'before\n');
    await writeFile(go, 'go\n');
    assert.equal((await command).code, 0);
    assert.equal((await exec.readFile(path))?.toString(), 'after-the-command\n');
  } finally {
    await exec.close();
  }
});
