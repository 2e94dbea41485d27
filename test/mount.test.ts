/**
 * The mount type: the fstab and mount-table parsing, the schema, and a CONTRACT TEST of the
 * provider on FreeBSD (`mount -p`, `mount -u`), which cannot run here: a scripted executor checks
 * the exact commands issued and answers as FreeBSD's mount does. The provider runs for real on a
 * Debian lab host in test/lab-mount.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NodeResult } from '../src/engine/engine.ts';
import { escapeField, findEntry, liveAt, parseFstabLine, parseMountinfo, parseMountP, withEntry } from '../src/resources/mount/fstab.ts';
import { mountType } from '../src/resources/mount/type.ts';
import { FACTS, ScriptedExecutor, runScripted } from './helpers/scripted-executor.ts';

const FSTAB = '# Device\tMountpoint\tFStype\tOptions\tDump\tPass#\n/dev/ada0p2\t/\t\tufs\trw\t1\t1\n/dev/ada0p3\tnone\t\tswap\tsw\t0\t0\n';

describe('fstab and mount tables', () => {
  test('fstab lines: fields, octal escapes, defaults for the optional fields, comments are no entries', () => {
    assert.deepEqual(parseFstabLine('UUID=ab\\040cd /mnt/my\\040disk ext4 noatime 0 2'),
      { device: 'UUID=ab cd', path: '/mnt/my disk', fstype: 'ext4', options: 'noatime', dump: 0, pass: 2 });
    assert.deepEqual(parseFstabLine('  server:/export   /srv/nfs  nfs'), { device: 'server:/export', path: '/srv/nfs', fstype: 'nfs', options: 'defaults', dump: 0, pass: 0 });
    assert.equal(parseFstabLine('# tmpfs /tmp tmpfs defaults 0 0'), undefined);
    assert.equal(parseFstabLine('   '), undefined);
    assert.equal(escapeField('/mnt/a b\\c'), '/mnt/a\\040b\\134c');
  });

  test('withEntry replaces the first entry of the path in place, drops later duplicates, appends when missing, keeps every other line', () => {
    const text = '# comment\nproc /proc proc defaults 0 0\n\ntmpfs /mnt/x/ tmpfs size=1m 0 0\n# between\ntmpfs /mnt/x tmpfs size=9m 0 0\n';
    const entry = { device: 'tmpfs', path: '/mnt/x', fstype: 'tmpfs', options: 'size=2m', dump: 0, pass: 0 };
    assert.deepEqual(findEntry(text, '/mnt/x'), { entry: { ...entry, path: '/mnt/x/', options: 'size=1m' }, count: 2 });
    assert.equal(withEntry(text, '/mnt/x', entry), '# comment\nproc /proc proc defaults 0 0\n\ntmpfs /mnt/x tmpfs size=2m 0 0\n# between\n');
    assert.equal(withEntry(text, '/mnt/x', undefined), '# comment\nproc /proc proc defaults 0 0\n\n# between\n');
    assert.equal(withEntry('# only a comment', '/mnt/y', { ...entry, path: '/mnt/y' }), '# only a comment\ntmpfs /mnt/y tmpfs size=2m 0 0\n');
    assert.equal(withEntry('', '/mnt/y', undefined), '');
  });

  test('mountinfo: the top mount of a path, its source, type and both kinds of options; escapes in mount points', () => {
    const info = [
      '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro',
      '40 22 0:35 / /mnt/a\\040b rw,nosuid shared:20 master:3 - tmpfs first rw,size=1024k',
      '41 40 0:36 / /mnt/a\\040b ro,relatime - tmpfs second rw,size=2048k',
    ].join('\n');
    const mounts = parseMountinfo(info);
    assert.deepEqual(liveAt(mounts, '/mnt/a b'), { device: 'second', fstype: 'tmpfs', options: 'ro,relatime,rw,size=2048k' });
    assert.equal(liveAt(mounts, '/mnt/a b/')?.device, 'second');
    assert.equal(liveAt(mounts, '/mnt'), undefined);
  });

  test('mount -p (FreeBSD): fstab lines of what is mounted', () => {
    const mounts = parseMountP('/dev/ada0p2\t\t/\t\tufs\trw\t1 1\ndevfs\t\t\t/dev\t\tdevfs\trw,multilabel\t0 0\n');
    assert.deepEqual(liveAt(mounts, '/dev'), { device: 'devfs', fstype: 'devfs', options: 'rw,multilabel' });
  });

  test('schema: device and fstype are required for mounted and present only; fields are one word', () => {
    const issues = (v: unknown) => mountType.schema.safeParse(v).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];
    assert.deepEqual(issues({ path: '/mnt/x' }), ['device: device is required for ensure mounted or present', 'fstype: fstype is required for ensure mounted or present']);
    assert.deepEqual(issues({ path: '/mnt/x', ensure: 'unmounted' }), []);
    assert.deepEqual(issues({ path: '/mnt/x', ensure: 'absent' }), []);
    assert.deepEqual(issues({ path: '/mnt/x', device: 'tmpfs', fstype: 'tmpfs', options: 'size=1m, mode=0755' }),
      ['options: options is one word with no blanks (fstab separates fields by blanks)']);
    assert.deepEqual(issues({ path: 'mnt/x', ensure: 'absent' }), ['path: must be an absolute path']);
    assert.deepEqual(mountType.schema.parse({ path: '/mnt/x', device: 'tmpfs', fstype: 'tmpfs' }),
      { path: '/mnt/x', device: 'tmpfs', fstype: 'tmpfs', options: 'defaults', dump: 0, pass: 0, ensure: 'mounted' });
  });
});

describe('mount provider', () => {
  const site = (parts: string) => ({
    'cairn.yaml': 'targets:\n  t1:\n    state_dir: /var/lib/cairn\n    run: [s]\n',
    'states/s.yaml': `s:\n${parts}`,
  });
  const statuses = (results: NodeResult[]) => results.map((r) => `${r.status} ${r.ref}${r.error ? `: ${r.error}` : ''}`);
  /** A FreeBSD machine whose `mount -p` prints `live` and whose fstab holds `fstab`. */
  const freebsd = (live: string, fstab: string, more: ConstructorParameters<typeof ScriptedExecutor>[0] = []) => {
    const exec = new ScriptedExecutor([...more, { when: 'mount -p', stdout: live }]);
    exec.files.set('/etc/fstab', { data: Buffer.from(fstab), mode: 0o644, uid: 0, gid: 0 });
    return exec;
  };
  const ROOT_LIVE = '/dev/ada0p2\t\t/\t\tufs\trw\t1 1\ndevfs\t\t\t/dev\t\tdevfs\trw,multilabel\t0 0\n';
  const data = (options: string, ensure = 'mounted') =>
    site(`  - mount: /mnt/data\n    device: /dev/ada1p1\n    fstype: ufs\n    options: ${options}\n    pass: 2\n    ensure: ${ensure}\n`);

  test('command contract: FreeBSD mount — mount -p to read, the fstab entry written, then mount PATH (mount point made)', async () => {
    const exec = freebsd(ROOT_LIVE, FSTAB, [{ when: 'mount /mnt/data' }]);
    assert.deepEqual(statuses(await runScripted(data('rw'), FACTS.freebsd!, exec)), ['changed mount:/mnt/data']);
    assert.deepEqual(exec.lines, ['mount -p', 'mount /mnt/data']);
    assert.equal(exec.files.get('/etc/fstab')!.data.toString(), `${FSTAB}/dev/ada1p1 /mnt/data ufs rw 0 2\n`);
    assert.ok(exec.dirs.has('/mnt/data'));
  });

  test('command contract: FreeBSD mount — in sync reads only; an options change is mount -u -o OPTIONS PATH', async () => {
    const live = `${ROOT_LIVE}/dev/ada1p1\t\t/mnt/data\tufs\trw\t0 2\n`;
    const fstab = `${FSTAB}/dev/ada1p1\t/mnt/data\tufs\trw\t0\t2\n`;
    const inSync = freebsd(live, fstab);
    inSync.dirs.add('/mnt/data');
    assert.deepEqual(statuses(await runScripted(data('rw'), FACTS.freebsd!, inSync)), ['unchanged mount:/mnt/data']);
    assert.deepEqual(inSync.lines, ['mount -p']);

    const exec = freebsd(live, fstab, [{ when: 'mount -u -o ro,noatime /mnt/data' }]);
    exec.dirs.add('/mnt/data');
    assert.deepEqual(statuses(await runScripted(data('ro,noatime'), FACTS.freebsd!, exec)), ['changed mount:/mnt/data']);
    assert.deepEqual(exec.lines, ['mount -p', 'mount -u -o ro,noatime /mnt/data']);
    assert.equal(exec.files.get('/etc/fstab')!.data.toString(), `${FSTAB}/dev/ada1p1 /mnt/data ufs ro,noatime 0 2\n`);
  });

  test('command contract: FreeBSD mount — absent is umount, the entry removed, rmdir of the mount point', async () => {
    const live = `${ROOT_LIVE}/dev/ada1p1\t\t/mnt/data\tufs\trw\t0 2\n`;
    const exec = freebsd(live, `${FSTAB}/dev/ada1p1\t/mnt/data\tufs\trw\t0\t2\n`, [{ when: 'umount /mnt/data' }, { when: 'rmdir /mnt/data' }]);
    exec.dirs.add('/mnt/data');
    assert.deepEqual(statuses(await runScripted(site('  - mount: /mnt/data\n    ensure: absent\n'), FACTS.freebsd!, exec)), ['changed mount:/mnt/data']);
    assert.deepEqual(exec.lines, ['mount -p', 'umount /mnt/data', 'rmdir /mnt/data']);
    assert.equal(exec.files.get('/etc/fstab')!.data.toString(), FSTAB);
  });

  test("command contract: FreeBSD mount — a failing mount fails the node in mount's words", async () => {
    const exec = freebsd(ROOT_LIVE, FSTAB, [{ when: 'mount /mnt/data', code: 1, stderr: 'mount: /dev/ada1p1: No such file or directory\n' }]);
    assert.deepEqual(statuses(await runScripted(data('rw'), FACTS.freebsd!, exec)),
      ['failed mount:/mnt/data: mount /mnt/data exited with 1: mount: /dev/ada1p1: No such file or directory']);
  });
});
