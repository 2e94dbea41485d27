/**
 * The `iso` built-in through `cairn provision`: the definition boots the installer ISO as a cdrom
 * (then the disk), attaches the empty volumes to install on and a NoCloud seed ISO, and the seed
 * ISO, read back with isoinfo (this kernel cannot mount ISO 9660), has the label `cidata` and the
 * profile's user data byte for byte.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from './helpers/cli.ts';

const missing = ['qemu-img', 'genisoimage', 'isoinfo', 'virsh'].filter((tool) => spawnSync(tool, ['--version']).error);
const skip = process.getuid?.() !== 0 ? 'cairn provision needs root (mount namespaces)'
  : missing.length ? `missing ${missing.join(', ')} (scripts/install.sh installs qemu-utils, genisoimage and libvirt-clients)` : undefined;
if (skip) console.error(`SKIP provision-builtins-iso: ${skip}`);

function setup(t: { after(fn: () => void): void }, profile: string) {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-iso-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const site = join(dir, 'site');
  mkdirSync(join(site, 'profiles'), { recursive: true });
  writeFileSync(join(site, 'cairn.yaml'), 'targets: {}\n');
  writeFileSync(join(site, 'profiles/installer.yaml'), profile);
  // A stand-in installer: any ISO 9660 image is attached the same way.
  mkdirSync(join(dir, 'media'));
  writeFileSync(join(dir, 'media/README'), 'installer\n');
  const made = spawnSync('genisoimage', ['-quiet', '-output', join(site, 'installer.iso'), '-volid', 'INSTALLER', '-rock', join(dir, 'media')], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  return { site, out: join(dir, 'out'), builds: join(dir, 'builds') };
}

const USER_DATA = '#cloud-config\nhostname: web1\nruncmd:\n  - [sh, -c, "echo seeded > /run/seeded"]\nwrite_files:\n  - path: /etc/motd\n    content: "it\'s <web1> & co\\n"\n';

test('iso: the definition boots the installer ISO first, with the empty volume and a seed ISO carrying the user data', { skip }, async (t) => {
  const { site, out, builds } = setup(t, [
    'script: iso',
    'args:',
    '  iso: installer.iso',
    'system:',
    '  cpus: 2',
    '  memory: 1G',
    'storage:',
    '  - size: 2G',
    '    format: qcow2',
    'user_data: |',
    ...USER_DATA.trimEnd().split('\n').map((l) => `  ${l}`),
    '',
  ].join('\n'));
  const r = await runCli(['provision', '--site', site, '--profile', 'installer', 'web1', '--output', out, '--builds', builds]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.deepEqual(readdirSync(out).sort(), ['web1-seed.iso', 'web1-vda.qcow2', 'web1.xml']);
  const xml = readFileSync(join(out, 'web1.xml'), 'utf8');
  assert.match(xml, /<boot dev='cdrom'\/>\s*<boot dev='hd'\/>/);
  assert.match(xml, /<vcpu>2<\/vcpu>/);
  assert.match(xml, /<memory unit='MiB'>1024<\/memory>/);
  assert.match(xml, new RegExp(`<disk type='file' device='disk'>\\s*<driver name='qemu' type='qcow2'/>\\s*<source file='${join(out, 'web1-vda.qcow2')}'/>\\s*<target dev='vda' bus='virtio'/>`));
  assert.match(xml, new RegExp(`<disk type='file' device='cdrom'>\\s*<driver name='qemu' type='raw'/>\\s*<source file='${join(site, 'installer.iso')}'/>\\s*<target dev='sda' bus='sata'/>\\s*<readonly/>`));
  assert.match(xml, new RegExp(`<disk type='file' device='cdrom'>\\s*<driver name='qemu' type='raw'/>\\s*<source file='${join(out, 'web1-seed.iso')}'/>\\s*<target dev='sdb' bus='sata'/>`));
  // libvirt's test driver (one virsh process: its state lives as long as the connection) takes it as written.
  const dumped = spawnSync('virsh', ['-c', 'test:///default', `define ${join(out, 'web1.xml')}; dumpxml web1`], { encoding: 'utf8' });
  assert.equal(dumped.status, 0, dumped.stderr);
  assert.match(dumped.stdout, /<boot dev='cdrom'\/>\s*<boot dev='hd'\/>/);
  assert.equal((dumped.stdout.match(/<disk type='file' device='cdrom'>/g) ?? []).length, 2);
  // The empty disk to install on: the profile's size, nothing in it.
  const info = JSON.parse(spawnSync('qemu-img', ['info', '--output=json', join(out, 'web1-vda.qcow2')], { encoding: 'utf8' }).stdout) as { 'virtual-size': number; format: string };
  assert.deepEqual([info.format, info['virtual-size']], ['qcow2', 2 * 2 ** 30]);

  const seed = join(out, 'web1-seed.iso');
  const label = spawnSync('isoinfo', ['-d', '-i', seed], { encoding: 'utf8' }).stdout;
  assert.match(label, /^Volume id: cidata$/m);
  const files = spawnSync('isoinfo', ['-f', '-R', '-i', seed], { encoding: 'utf8' }).stdout.trim().split('\n').sort();
  assert.deepEqual(files, ['/meta-data', '/user-data']);
  const userData = spawnSync('isoinfo', ['-R', '-i', seed, '-x', '/user-data'], { encoding: 'utf8' }).stdout;
  assert.equal(userData, USER_DATA);
  const metaData = spawnSync('isoinfo', ['-R', '-i', seed, '-x', '/meta-data'], { encoding: 'utf8' }).stdout;
  assert.match(metaData, /^instance-id: "[0-9a-f-]{36}"\nlocal-hostname: "web1"\n$/);
});

test('iso: without user data there is no seed ISO; a missing installer ISO is exit 2 at args.iso with nothing created', { skip }, async (t) => {
  const { site, out, builds } = setup(t, 'script: iso\nargs:\n  iso: installer.iso\nstorage:\n  - size: 1G\n');
  const r = await runCli(['provision', '--site', site, '--profile', 'installer', 'plain', '--output', out, '--builds', builds]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.deepEqual(readdirSync(out).sort(), ['plain-vda.raw', 'plain.xml']);
  assert.equal((readFileSync(join(out, 'plain.xml'), 'utf8').match(/device='cdrom'/g) ?? []).length, 1);

  writeFileSync(join(site, 'profiles/installer.yaml'), 'script: iso\nargs:\n  iso: missing.iso\nstorage:\n  - size: 1G\n');
  const out2 = join(out, '..', 'out2');
  const bad = await runCli(['provision', '--site', site, '--profile', 'installer', 'other', '--output', out2, '--builds', builds]);
  assert.equal(bad.status, 2, bad.stderr + bad.stdout);
  assert.match(bad.stderr, /iso: \S+missing\.iso does not exist/);
  assert.match(bad.stderr, /profiles\/installer\.yaml:3:8/);
  assert.deepEqual(existsSync(out2) ? readdirSync(out2) : [], []);
});

test('iso: a container profile is exit 2 at kind: (an installer makes a VM)', { skip }, async (t) => {
  const { site, out, builds } = setup(t, 'script: iso\nkind: container\nargs:\n  iso: installer.iso\nstorage:\n  - size: 1G\n');
  const r = await runCli(['provision', '--site', site, '--profile', 'installer', 'box1', '--output', out, '--builds', builds]);
  assert.equal(r.status, 2, r.stderr + r.stdout);
  assert.match(r.stderr, /an installer ISO makes a VM: the profile's kind must be guest/);
  assert.match(r.stderr, /profiles\/installer\.yaml:2:7/);
  assert.deepEqual(existsSync(out) ? readdirSync(out) : [], []);
});
