/**
 * The `noop` built-in (DESIGN §10: a definition only) through `cairn provision`: a guest's libvirt
 * domain that libvirt itself accepts (the test driver validates it, no daemon needed) with the
 * profile's CPUs, memory, serial console and NICs; a container's `.nspawn` settings. And the
 * provisioner as `cairn apply` hands it to the lifecycle types (ProviderContext.images): a build
 * through a profile returns the definition and disks; a failed one is the node's ApplyError with
 * nothing left behind.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { localImageBuilder } from '../src/cli/provision.ts';
import { ApplyError } from '../src/resources/type.ts';
import { CAIRN, cairnBin, makeSite, runCli, tempDir } from './helpers/cli.ts';

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'a build child needs root (mount namespaces)';
  const missing = ['unshare', 'nsenter', 'setpriv', 'virsh', 'qemu-img'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  return missing.length ? `missing tools: ${missing.join(', ')}` : undefined;
}
const why = unavailable();
if (why) process.stderr.write(`PROVISION NOOP TESTS SKIPPED: ${why}\n`);

const PROFILE = `script: noop
system: { cpus: 3, memory: 768, serial: true }
networks:
  - bridge: br-test
    mac: 52:54:00:aa:bb:cc
  - network: default
    model: e1000
`;

test('noop builds only a definition: a libvirt domain the test driver accepts, with the profile\'s CPUs, memory, console and NICs', { skip: why }, async () => {
  const site = makeSite({ 'cairn.yaml': 'targets: {}\n', 'profiles/vm.yaml': PROFILE });
  const base = tempDir('cairn-provision-noop-');
  const out = join(base, 'out');
  const r = await runCli(['provision', '--site', site, '--profile', 'vm', 'guest7', '--output', out, '--builds', join(base, 'builds'), '--json']);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const uuid = events.find((e) => e.event === 'start')!.uuid as string;
  assert.deepEqual(readdirSync(out), ['guest7.xml']);
  const xml = readFileSync(join(out, 'guest7.xml'), 'utf8');
  assert.match(xml, new RegExp(`<uuid>${uuid}</uuid>`));
  const dumped = execFileSync('virsh', ['-c', 'test:///default', `define ${join(out, 'guest7.xml')}; dumpxml guest7; dominfo guest7`], { encoding: 'utf8' });
  assert.match(dumped, /<vcpu placement='static'>3<\/vcpu>/);
  assert.match(dumped, /<memory unit='KiB'>786432<\/memory>/);
  assert.match(dumped, /<source bridge='br-test'\/>/);
  assert.match(dumped, /<mac address='52:54:00:aa:bb:cc'\/>/);
  assert.match(dumped, /<source network='default'\/>[\s\S]*<model type='e1000'\/>/);
  assert.match(dumped, /<serial type='pty'>/);
  assert.match(dumped, new RegExp(`UUID: +${uuid}`));
  // A second build of the name gets a new uuid, and will not overwrite the first's definition.
  const again = await runCli(['provision', '--site', site, '--profile', 'vm', 'guest7', '--output', out, '--builds', join(base, 'builds')]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /guest7\.xml exists already/);
  assert.equal(readFileSync(join(out, 'guest7.xml'), 'utf8'), xml);
});

test('noop for a container writes .nspawn settings joining the profile\'s bridge', { skip: why }, async () => {
  const site = makeSite({ 'cairn.yaml': 'targets: {}\n', 'profiles/ct.yaml': 'script: noop\nkind: container\nnetworks:\n  - bridge: br-ct\n' });
  const base = tempDir('cairn-provision-noop-');
  const r = await runCli(['provision', '--site', site, '--profile', 'ct', 'box1', '--output', join(base, 'out'), '--builds', join(base, 'builds')]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.equal(readFileSync(join(base, 'out', 'box1.nspawn'), 'utf8'), '[Exec]\nBoot=yes\nPrivateUsers=no\n\n[Network]\nBridge=br-ct\n');
});

test('the provisioner handed to the lifecycle types builds through a profile, and a failed build is the node\'s ApplyError with nothing left', { skip: why }, async () => {
  const site = makeSite({
    'cairn.yaml': 'targets: {}\n',
    'profiles/vm.yaml': PROFILE,
    'profiles/disk.yaml': 'script: disk\nstorage:\n  - size: 8M\n',
    'builders/disk.ts': `import { Builder } from 'cairn';
export default class Disk extends Builder {
  static arguments = { fail: { default: 'no' } };
  async create() { return '<domain/>'; }
  async prepare() {
    this.progress(0, 1, 'making the disk');
    await this.volume({ size: this.ctx.storage[0].size, format: 'qcow2' });
    this.log('disk made');
    if (this.ctx.args.fail === 'yes') this.fail('no room at the inn');
  }
}
`,
  });
  const base = tempDir('cairn-provision-images-');
  const images = localImageBuilder(site, join(base, 'builds'));
  const logs: string[] = [];
  const progress: string[] = [];
  const request = (name: string, profile: string, args?: Record<string, string>) => ({
    profile, name, kind: 'guest' as const, outputDir: join(base, name), ...(args ? { args } : {}),
    signal: new AbortController().signal,
    log: (m: string) => logs.push(m),
    progress: (u: { done: number; total?: number; step?: string }) => progress.push(u.step ?? ''),
  });

  const built = await images.build(request('vm1', 'vm'));
  assert.equal(built.definition, readFileSync(join(base, 'vm1', 'vm1.xml'), 'utf8'));
  assert.deepEqual(built.disks, []);

  const withDisk = await images.build(request('vm2', 'disk'));
  assert.deepEqual(withDisk.disks, [join(base, 'vm2', 'vm2-vda.qcow2')]);
  assert.match(execFileSync('qemu-img', ['info', withDisk.disks[0]!], { encoding: 'utf8' }), /file format: qcow2[\s\S]*virtual size: 8 MiB/);
  assert.ok(logs.includes('disk made'));
  assert.ok(progress.includes('making the disk') && progress.includes('install()'));

  await assert.rejects(images.build(request('vm3', 'disk', { fail: 'yes' })), (err: Error) => {
    assert.ok(err instanceof ApplyError);
    assert.match(err.message, /build of vm3 \(profile disk\) failed: prepare: no room at the inn/);
    return true;
  });
  assert.ok(!existsSync(join(base, 'vm3')), 'the failed build left its output folder');
  assert.deepEqual(readdirSync(join(base, 'builds')), []);

  await assert.rejects(images.build(request('vm4', 'nosuch')), (err: Error) => err instanceof ApplyError && /no profile 'nosuch'/.test(err.message));
});

test('the built command runs its build child as `cairn __build-child`', { skip: why ?? (existsSync(CAIRN) ? undefined : `${CAIRN} is not built (npm run build)`) }, () => {
  const site = makeSite({ 'cairn.yaml': 'targets: {}\n', 'profiles/vm.yaml': PROFILE });
  const base = tempDir('cairn-provision-bin-');
  const r = cairnBin(['provision', '--site', site, '--profile', 'vm', 'binguest', '--output', join(base, 'out'), '--builds', join(base, 'builds')]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /binguest: building with noop/);
  assert.match(readFileSync(join(base, 'out', 'binguest.xml'), 'utf8'), /<name>binguest<\/name>/);
});
