/**
 * The shell protocol (src/executors/shell/) over a transport that is not SSH: a local `/bin/sh`
 * child process through ProcessTransport, the way `chroot` and `nsenter` executors will run it.
 * No chroot here: the shell runs on this machine, on temp folders.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
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

/**
 * Writes sent together (write-batch.ts): the files and links written in one turn go as one
 * request, through a stage folder per folder, one `mv` each. A wrapper `mv` first on the shell's
 * PATH logs every call (and, with `busybox`, says it is not GNU's), so the tests count processes.
 */
describe('writes of one turn, sent together', () => {
  function wrappedSh(flavour: 'gnu' | 'busybox'): { transport: ProcessTransport; calls: () => string[]; mkdirs: () => string[] } {
    const bin = tempDir('cairn-sh-wrap-');
    const log = join(bin, 'mv.log');
    writeFileSync(join(bin, 'mv'), `#!/bin/sh\n${flavour === 'busybox' ? 'case $1 in --version) echo "BusyBox v1.36"; exit 0 ;; esac\n' : ''}` +
      `[ "$1" = --version ] || printf '%s\\n' "$*" >> ${log}\nexec /usr/bin/mv "$@"\n`, { mode: 0o755 });
    writeFileSync(join(bin, 'mkdir'), `#!/bin/sh\nprintf '%s\\n' "$*" >> ${log}.mkdir\nexec /usr/bin/mkdir "$@"\n`, { mode: 0o755 });
    const transport = new ProcessTransport({ name: 'local-sh', endpoint: 'a local /bin/sh', shell: ['/usr/bin/env', `PATH=${bin}:${process.env.PATH}`, '/bin/sh'] });
    const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
    return { transport, calls: () => lines(log), mkdirs: () => lines(`${log}.mkdir`) };
  }

  function leftovers(dir: string): string[] {
    return readdirSync(dir, { recursive: true }).map(String).filter((name) => name.includes('cairn-tmp'));
  }

  for (const flavour of ['gnu', 'busybox'] as const) {
    test(`${flavour} mv: 30 files and 2 links in one folder, 1 file in another, written in one turn: each in place with its mode, ${flavour === 'gnu' ? 'one mv for the folder' : 'one mv each'}, no stage left`, async () => {
      const { transport, calls } = wrappedSh(flavour);
      const exec = await ShellExecutor.start('t', transport);
      try {
        const dir = tempDir('cairn-sh-batch-');
        const other = tempDir('cairn-sh-batch-');
        // As the engine does: the paths announced, the first read fetches them all.
        const paths = [...Array.from({ length: 30 }, (_, i) => join(dir, `f${i}`)), join(dir, 'link0'), join(dir, 'link1'), join(other, 'only')];
        exec.prefetch(paths.map((path) => ({ path })));
        assert.equal(await exec.stat(paths[0]!), undefined);
        const writes = Array.from({ length: 30 }, (_, i) => exec.writeFile(paths[i]!, `file ${i}\n`, i === 0 ? { mode: 0o600 } : {}));
        writes.push(exec.symlink('f0', join(dir, 'link0')), exec.symlink(join(dir, 'f1'), join(dir, 'link1')), exec.writeFile(join(other, 'only'), 'alone\n'));
        await Promise.all(writes);
        for (let i = 0; i < 30; i++) assert.equal(readFileSync(join(dir, `f${i}`), 'utf8'), `file ${i}\n`);
        assert.equal(statSync(join(dir, 'f0')).mode & 0o777, 0o600);
        assert.equal(readlinkSync(join(dir, 'link0')), 'f0');
        assert.equal(readlinkSync(join(dir, 'link1')), join(dir, 'f1'));
        assert.equal(readFileSync(join(other, 'only'), 'utf8'), 'alone\n');
        assert.deepEqual([...leftovers(dir), ...leftovers(other)], []);
        // GNU: one mv for the folder's 32 entries and one for the lone file; else one per entry.
        assert.equal(calls().length, flavour === "gnu" ? 2 : 33, calls().join("\n"));
        assert.equal(exec.roundTrips, 3, 'the set-up, the read, then the batch');
      } finally {
        await exec.close();
      }
    });
  }

  test('in one batch, a write whose rename fails (a folder in its place) fails alone, naming it; one in a missing folder fails with ENOENT; the rest land, nothing is left', async () => {
    const { transport } = wrappedSh('gnu');
    const exec = await ShellExecutor.start('t', transport);
    try {
      const dir = tempDir('cairn-sh-batch-');
      mkdirSync(join(dir, 'occupied'));
      writeFileSync(join(dir, 'occupied', 'kept'), 'kept\n');
      const results = await Promise.allSettled([
        exec.writeFile(join(dir, 'a'), 'a\n'),
        exec.writeFile(join(dir, 'occupied'), 'not a folder\n'),
        exec.writeFile(join(dir, 'missing', 'x'), 'x\n'),
        exec.writeFile(join(dir, 'b'), 'b\n'),
      ]);
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled']);
      const [, occupied, missing] = results as PromiseRejectedResult[];
      assert.match(String(occupied!.reason), new RegExp(`${join(dir, 'occupied')}`));
      assert.equal((missing!.reason as { code?: string }).code, 'ENOENT');
      assert.match(String(missing!.reason), /no such directory/);
      assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'a\n');
      assert.equal(readFileSync(join(dir, 'b'), 'utf8'), 'b\n');
      assert.ok(statSync(join(dir, 'occupied')).isDirectory());
      assert.equal(readFileSync(join(dir, 'occupied', 'kept'), 'utf8'), 'kept\n');
      assert.deepEqual(leftovers(dir), []);
    } finally {
      await exec.close();
    }
  });

  test('folders made in one turn share one mkdir; one where a file stands fails alone, with mkdir\'s message', async () => {
    const { transport, mkdirs } = wrappedSh('gnu');
    const exec = await ShellExecutor.start('t', transport);
    try {
      const dir = tempDir('cairn-sh-batch-');
      writeFileSync(join(dir, 'c'), 'a file\n');
      const names = ['a', 'b/deep', 'c', 'd'];
      const results = await Promise.allSettled(names.map((n) => exec.mkdir(join(dir, n), { parents: true })));
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
      assert.match(String((results[2] as PromiseRejectedResult).reason), /File exists/);
      for (const n of ['a', 'b/deep', 'd']) assert.ok(statSync(join(dir, n)).isDirectory(), n);
      assert.equal(readFileSync(join(dir, 'c'), 'utf8'), 'a file\n');
      assert.equal(mkdirs().length, 1, mkdirs().join('\n'));
    } finally {
      await exec.close();
    }
  });

  test('writes queued behind the mkdir of their folder, in one batch, land in it (the stage is made once the folder is there)', async () => {
    const exec = await ShellExecutor.start('t', localSh());
    try {
      const dir = tempDir('cairn-sh-batch-');
      const sub = join(dir, 'new');
      const paths = [join(sub, 'a'), join(sub, 'b')];
      exec.prefetch(paths.map((path) => ({ path })));
      assert.equal(await exec.stat(paths[0]!), undefined);
      const done = [exec.mkdir(sub, { parents: true })];
      // Microtasks only (the batch goes at the end of the turn): the writes join the mkdir's batch.
      for (let i = 0; i < 20; i++) await Promise.resolve();
      done.push(exec.writeFile(paths[0]!, 'a\n'), exec.writeFile(paths[1]!, 'b\n'));
      await Promise.all(done);
      assert.equal(readFileSync(paths[0]!, 'utf8'), 'a\n');
      assert.equal(readFileSync(paths[1]!, 'utf8'), 'b\n');
      assert.deepEqual(leftovers(dir), []);
      assert.equal(exec.roundTrips, 3, 'the set-up, the read, then one batch');
    } finally {
      await exec.close();
    }
  });

  test('an operation queued behind a write to its path sends the batch first: a file removed right after it was written stays removed', async () => {
    const exec = await ShellExecutor.start('t', localSh());
    try {
      const dir = tempDir('cairn-sh-batch-');
      const sub = join(dir, 'sub');
      await exec.mkdir(sub);
      exec.prefetch([join(sub, 'a'), join(sub, 'b'), join(dir, 'c')].map((path) => ({ path })));
      assert.equal(await exec.stat(join(sub, 'a')), undefined);
      const done = [exec.writeFile(join(sub, 'a'), 'a\n'), exec.writeFile(join(sub, 'b'), 'b\n')];
      // Microtasks only (the batch goes at the end of the turn): both writes are queued, not sent.
      for (let i = 0; i < 20; i++) await Promise.resolve();
      done.push(exec.remove(join(sub, 'b')), exec.writeFile(join(dir, 'c'), 'c\n'));
      await Promise.all(done);
      assert.equal(readFileSync(join(sub, 'a'), 'utf8'), 'a\n');
      assert.ok(!existsSync(join(sub, 'b')), 'the file removed after it was written, not put in place after its removal');
      assert.deepEqual((await exec.readFile(join(dir, 'c')))?.toString(), 'c\n');
      assert.deepEqual(leftovers(dir), []);
    } finally {
      await exec.close();
    }
  });
});

/**
 * A shell that exits in the middle of a write removes what the write had made as it releases the
 * run lock (lock.ts, `__cairn_t`): the temp file of a write sent alone, the stage folder of a
 * batch. The write's own check (`validate`) ends the shell: TERM to the lock's holder (the shell
 * itself, whose pid the holder file starts with), as a lost connection's HUP would.
 */
describe('a shell that exits mid-write', () => {
  const killShell = (dir: string) => `kill -TERM $(cut -d" " -f1 ${join(dir, 'state', 'lock.d', 'holder')})`;

  /** A locked executor, and a folder whose name has a space and a star for its writes. */
  async function lockedExec(): Promise<{ dir: string; folder: string; exec: ShellExecutor }> {
    const dir = tempDir('cairn-sh-exit-');
    const folder = join(dir, 'a b*');
    mkdirSync(folder);
    const exec = await ShellExecutor.start('t', localSh());
    assert.equal((await exec.tryLock(join(dir, 'state'), { started: new Date().toISOString(), by: 'test' })).state, 'taken');
    return { dir, folder, exec };
  }

  test('removes the temp file of a write sent alone, in a folder whose name has a space and a star', async () => {
    const { dir, folder, exec } = await lockedExec();
    try {
      const path = join(folder, 'f');
      // Announced twice (two nodes read it): the write goes alone, with its read-back.
      exec.prefetch([{ path, content: true }, { path, content: true }]);
      assert.equal(await exec.stat(path), undefined);
      await assert.rejects(exec.writeFile(path, 'x\n', { validate: killShell(dir) }));
      await exec.close();
      assert.deepEqual(readdirSync(folder), []);
      assert.ok(!existsSync(join(dir, 'state', 'lock.d')), 'the lock released');
    } finally {
      await exec.close();
    }
  });

  test('removes the stage folder of a batch, with what it held', async () => {
    const { dir, folder, exec } = await lockedExec();
    try {
      const paths = ['f1', 'f2', 'f3'].map((n) => join(folder, n));
      exec.prefetch(paths.map((path) => ({ path })));
      assert.equal(await exec.stat(paths[0]!), undefined);
      const results = await Promise.allSettled([exec.writeFile(paths[0]!, '1\n'), exec.writeFile(paths[1]!, '2\n', { validate: killShell(dir) }), exec.writeFile(paths[2]!, '3\n')]);
      assert.ok(results.every((r) => r.status === 'rejected'));
      await exec.close();
      assert.deepEqual(readdirSync(folder), []);
    } finally {
      await exec.close();
    }
  });
});
