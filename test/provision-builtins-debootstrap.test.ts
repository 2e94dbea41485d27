/**
 * The `debootstrap` built-in through `cairn provision`: a partitioned disk image that boots. The
 * root comes from the test lab's cached golden root (the same debootstrap recipe, kept by
 * test/lab/lab.sh: the builder's `cache` reads that layout), so no test debootstraps again. The
 * image is booted as a container (its partition loop-mounted, `systemd-nspawn -D -b`) to
 * `running`, where the first-boot unit has converged the site's target with its exported script
 * once: a second boot does not run it again. (A guest, booted as a VM by libvirt, is provision-vm-boot.test.ts.)
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { runCli } from './helpers/cli.ts';
import { FIRST_BOOT_CONTENT, FIRST_BOOT_WEB_STATE } from './helpers/first-boot.ts';
import { LAB_SH, labUnavailable } from './helpers/lab.ts';
import { bootImage, nspawnUnavailable } from './helpers/nspawn-boot.ts';

const missing = ['qemu-img', 'sfdisk', 'partx', 'mkfs.ext4'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
const skip = labUnavailable() ?? nspawnUnavailable() ?? (missing.length ? `missing ${missing.join(', ')} (scripts/install.sh installs them)` : undefined);
if (skip) console.error(`SKIP provision-builtins-debootstrap: ${skip}`);

/** The lab's golden root recipe: its folder (built once if missing) and its package list. */
function labRoot(): { cache: string; include: string } {
  const root = execFileSync('sh', [LAB_SH, 'root'], { encoding: 'utf8' }).trim();
  const include = /^INCLUDE=(\S+)$/m.exec(readFileSync(LAB_SH, 'utf8'))![1]!;
  return { cache: dirname(root), include };
}

function site(t: { after(fn: () => void): void }, profile: string) {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-debootstrap-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const s = join(dir, 'site');
  mkdirSync(join(s, 'profiles'), { recursive: true });
  mkdirSync(join(s, 'states'));
  // The guest's own target: what its first boot converges, with the exported script.
  writeFileSync(join(s, 'cairn.yaml'), 'targets:\n  web1:\n    executor: local\n    run: [web]\n');
  writeFileSync(join(s, 'states/web.yaml'), FIRST_BOOT_WEB_STATE);
  writeFileSync(join(s, 'profiles/deb.yaml'), profile);
  return { site: s, out: join(dir, 'out'), builds: join(dir, 'builds'), dir };
}

function profile(cache: string, include: string, storage: string[], extraArgs: string[] = []): string {
  return ['script: debootstrap', 'kind: container', 'args:', `  cache: ${cache}`, `  include: ${include}`, ...extraArgs.map((a) => `  ${a}`), 'storage:', ...storage, ''].join('\n');
}

test('debootstrap: a raw disk image that boots with nspawn to running; the first-boot unit converges the target once', { skip }, async (t) => {
  const { cache, include } = labRoot();
  const { site: s, out, builds } = site(t, profile(cache, include, ['  - size: 1G', '    filesystem: ext4', '    mountpoint: /'], ['target: web1']));
  const r = await runCli(['provision', '--site', s, '--profile', 'deb', 'web1', '--output', out, '--builds', builds]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.deepEqual(readdirSync(out).sort(), ['web1-vda.raw', 'web1.nspawn']);
  const image = join(out, 'web1-vda.raw');
  assert.match(execFileSync('sfdisk', ['-d', image], { encoding: 'utf8' }), /start=\s*2048, size=\s*\d+, type=83/);

  const first = await bootImage(image, `cairnprov${process.pid}`);
  try {
    assert.equal(first.state, 'running', (await first.sh('systemctl --failed --no-legend')).stdout);
    assert.equal((await first.sh('cat /srv/www/index.html')).stdout, FIRST_BOOT_CONTENT);
    assert.equal((await first.sh('stat -c %a /srv/www/index.html')).stdout.trim(), '640');
    assert.equal((await first.sh('systemctl show cairn-firstboot -p Result -p ConditionResult')).stdout, 'Result=success\nConditionResult=yes\n');
    assert.equal((await first.sh('hostname')).stdout.trim(), 'web1');
    // fstab by UUID, the UUID of the root it booted from.
    const fstab = (await first.sh('cat /etc/fstab')).stdout;
    assert.match(fstab, /^UUID=[0-9a-f-]{36} \/ ext4 errors=remount-ro 0 1$/m);
    assert.match((await first.sh('cat /etc/machine-id')).stdout, /^[0-9a-f]{32}\n$/);
    // What the second boot must not make again.
    await first.sh('rm /srv/www/index.html');
  } finally {
    await first.stop();
  }

  const second = await bootImage(image, `cairnprov${process.pid}`);
  try {
    assert.equal(second.state, 'running', (await second.sh('systemctl --failed --no-legend')).stdout);
    assert.equal((await second.sh('systemctl show cairn-firstboot -p ConditionResult -p ActiveState')).stdout, 'ActiveState=inactive\nConditionResult=no\n');
    assert.equal((await second.sh('test -e /srv/www/index.html')).code, 1);
  } finally {
    await second.stop();
  }
});

test('debootstrap: qcow2 volumes, a second file system at its mount point, both in fstab', { skip }, async (t) => {
  const { cache, include } = labRoot();
  const { site: s, out, builds, dir } = site(t, profile(cache, include, [
    '  - size: 1G', '    format: qcow2', '    filesystem: ext4', '    mountpoint: /',
    '  - size: 64M', '    format: qcow2', '    filesystem: ext4', '    mountpoint: /srv',
  ]));
  const r = await runCli(['provision', '--site', s, '--profile', 'deb', 'db1', '--output', out, '--builds', builds]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.deepEqual(readdirSync(out).sort(), ['db1-vda.qcow2', 'db1-vdb.qcow2', 'db1.nspawn']);
  for (const disk of ['vda', 'vdb']) {
    assert.equal(JSON.parse(execFileSync('qemu-img', ['info', '--output=json', join(out, `db1-${disk}.qcow2`)], { encoding: 'utf8' })).format, 'qcow2');
  }
  // Read back: the qcow2 converted to raw, its partition mounted in a namespace of its own.
  const raw = join(dir, 'root.raw');
  execFileSync('qemu-img', ['convert', '-O', 'raw', join(out, 'db1-vda.qcow2'), raw]);
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  const fstab = execFileSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount -o ro,loop,offset=1048576 "$1" "$2" && cat "$2/etc/fstab" "$2/etc/hostname" && test -d "$2/srv"', 'sh', raw, mnt], { encoding: 'utf8' });
  const uuids = [...fstab.matchAll(/^UUID=(\S+) (\S+) ext4 /gm)].map((m) => m[2]);
  assert.deepEqual(uuids, ['/', '/srv']);
  assert.match(fstab, /\ndb1\n$/);
});

test('bad input: a root volume smaller than the image it receives is exit 2 at its storage: size, and nothing is created', { skip }, async (t) => {
  const { cache, include } = labRoot();
  const { site: s, out, builds } = site(t, profile(cache, include, ['  - size: 100M', '    filesystem: ext4', '    mountpoint: /']));
  const r = await runCli(['provision', '--site', s, '--profile', 'deb', 'small1', '--output', out, '--builds', builds]);
  assert.equal(r.status, 2, r.stderr + r.stdout);
  assert.match(r.stderr, /volume vda: 104857600 bytes is smaller than the image it receives \(the root is \d+ bytes; give it at least \d+\)/);
  assert.match(r.stderr, /profiles\/deb\.yaml:7:11/);
  assert.deepEqual(existsSync(out) ? readdirSync(out) : [], []);
  assert.deepEqual(existsSync(builds) ? readdirSync(builds) : [], []);
});

test('bad input: a guest whose kernel is no package name is exit 2 at args.kernel, and nothing is created', { skip }, async (t) => {
  const { cache, include } = labRoot();
  const { site: s, out, builds } = site(t, profile(cache, include, ['  - size: 1G', '    filesystem: ext4', '    mountpoint: /'], ['kernel: Linux Image']).replace('kind: container', 'kind: guest'));
  const r = await runCli(['provision', '--site', s, '--profile', 'deb', 'vm1', '--output', out, '--builds', builds]);
  assert.equal(r.status, 2, r.stderr + r.stdout);
  assert.match(r.stderr, /kernel: "Linux Image" is not a package name/);
  assert.match(r.stderr, /profiles\/deb\.yaml:6:11/);
  assert.deepEqual(existsSync(out) ? readdirSync(out) : [], []);
  assert.deepEqual(existsSync(builds) ? readdirSync(builds) : [], []);
});
