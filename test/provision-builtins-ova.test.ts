/**
 * The `ova` built-in, on OVAs made here with qemu-img and tar: OVF 1 and 2 descriptors, capacity
 * units, the manifest, each disk converted by qemu-img straight out of the OVA to an image
 * identical to its source (`qemu-img compare`), and `cairn provision` with the `ova` script making
 * the volumes and a definition (valid for libvirt's schema) with the OVA's CPUs, memory and NICs.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { InputError } from '../src/lib/errors.ts';
import { parseOvf, unitBytes } from '../src/provision/ovf.ts';
import { qemuSource, readOva, tarMembers } from '../src/provision/ova.ts';
import { runCli } from './helpers/cli.ts';
import { makeOva, makeRaw } from './helpers/ova.ts';

const noQemuImg = spawnSync('qemu-img', ['--version']).status === 0 ? undefined : 'qemu-img is not installed (scripts/install.sh installs qemu-utils)';
if (noQemuImg) console.error(`SKIP provision-builtins-ova: ${noQemuImg}`);
// A build's child runs in a mount namespace of its own, and volumes are made with loop-free
// qemu-img: root is what it takes.
const noBuild = noQemuImg ?? (process.getuid?.() === 0 ? undefined : 'cairn provision needs root (mount namespaces)');
if (noBuild && !noQemuImg) console.error(`SKIP provision-builtins-ova (builds): ${noBuild}`);
// libvirt's test driver (virsh -c test:///default, no daemon) parses a definition as libvirtd would.
const noVirsh = spawnSync('virsh', ['--version']).error ? 'virsh is not installed (libvirt-clients)' : undefined;

const MiB = 2 ** 20;

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-ova-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('capacity units: byte, byte * 2^N, byte * 10^N, chained factors and the older KB/MB/GB names', () => {
  assert.equal(unitBytes('byte'), 1);
  assert.equal(unitBytes('byte * 2^30'), 2 ** 30);
  assert.equal(unitBytes('byte*2^20'), 2 ** 20);
  assert.equal(unitBytes('byte * 10^9'), 1e9);
  assert.equal(unitBytes('byte * 1024'), 1024);
  assert.equal(unitBytes('byte * 2^10 * 1024'), 2 ** 20);
  assert.equal(unitBytes('MB'), 2 ** 20);
  assert.equal(unitBytes('GiB'), 2 ** 30);
  assert.equal(unitBytes('hertz * 10^6'), undefined);
  assert.equal(unitBytes('byte * 2^'), undefined);
});

for (const version of [1, 2] as const) {
  test(`OVF ${version}: an OVA made here imports: CPUs, memory, NICs, capacities, and disks identical to their sources`, { skip: noQemuImg }, async (t) => {
    const dir = tempDir(t);
    makeRaw(join(dir, 'a.raw'), 64 * MiB, 11);
    makeRaw(join(dir, 'b.raw'), 32 * MiB, 12);
    const ova = makeOva(dir, {
      version, name: `appliance${version}`, cpus: 3, memoryMiB: 1536,
      // the same size in two units: 64 MiB as byte * 2^20, 32 MiB in bytes with no unit
      disks: [{ raw: join(dir, 'a.raw'), capacity: 64, units: 'byte * 2^20' }, { raw: join(dir, 'b.raw'), capacity: 32 * MiB }],
      nics: [{ network: 'lan', subtype: 'E1000', mac: '00:50:56:AA:BB:01' }, { network: 'dmz', subtype: 'VmxNet3' }],
    });
    const { descriptor, members } = await readOva(ova);
    assert.equal(descriptor.version, version);
    assert.equal(descriptor.name, `appliance${version}`);
    assert.equal(descriptor.cpus, 3);
    assert.equal(descriptor.memory, 1536 * MiB);
    assert.deepEqual(descriptor.networks, ['lan', 'dmz']);
    assert.deepEqual(descriptor.nics, [
      { network: 'lan', model: 'e1000', mac: '00:50:56:aa:bb:01' },
      { network: 'dmz', model: 'vmxnet3' },
    ]);
    assert.deepEqual(descriptor.disks.map((d) => [d.id, d.file, d.capacity, d.format, d.bus]), [
      ['vmdisk1', `appliance${version}-disk1.vmdk`, 64 * MiB, 'vmdk', 'scsi'],
      ['vmdisk2', `appliance${version}-disk2.vmdk`, 32 * MiB, 'vmdk', 'scsi'],
    ]);
    // Read in place: the members' data offsets are block-aligned positions in the OVA itself.
    assert.deepEqual(tarMembers(ova).map((m) => m.name), [`appliance${version}.ovf`, `appliance${version}.mf`, `appliance${version}-disk1.vmdk`, `appliance${version}-disk2.vmdk`]);
    for (const [i, disk] of descriptor.disks.entries()) {
      const member = members.get(disk.id)!;
      assert.equal(member.offset % 512, 0);
      const out = join(dir, `out${i}.raw`);
      execFileSync('qemu-img', ['convert', '-O', 'raw', qemuSource(ova, member, disk.format), out]);
      const compare = spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', join(dir, i === 0 ? 'a.raw' : 'b.raw'), out], { encoding: 'utf8' });
      assert.equal(compare.status, 0, compare.stdout + compare.stderr);
    }
  });
}

test('a damaged disk in the OVA fails the manifest check, naming the manifest line', { skip: noQemuImg }, async (t) => {
  const dir = tempDir(t);
  makeRaw(join(dir, 'a.raw'), 8 * MiB, 3);
  const ova = makeOva(dir, { version: 1, name: 'broken', cpus: 1, memoryMiB: 256, disks: [{ raw: join(dir, 'a.raw'), capacity: 8, units: 'byte * 2^20' }], nics: [] });
  const member = tarMembers(ova).find((m) => m.name.endsWith('.vmdk'))!;
  const bytes = readFileSync(ova);
  bytes[member.offset + member.size - 1]! ^= 0xff;
  writeFileSync(ova, bytes);
  await assert.rejects(readOva(ova), (err: unknown) => {
    assert.ok(err instanceof InputError);
    assert.match(err.message, /SHA256 digest of broken-disk1\.vmdk does not match/);
    assert.deepEqual(err.diagnostics[0]!.pos, { file: 'broken.ova:broken.mf', line: 2, col: 1 });
    return true;
  });
});

test('bad descriptors are input errors at their line and column', () => {
  const head = '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">';
  // Each case: the text, the message, and the text the error must point at (its first occurrence).
  const cases: [string, string, RegExp, string][] = [
    ['unclosed', `${head}\n  <References>\n</Envelope>`, /<\/Envelope> closes <References>/, '</Envelope>'],
    ['doctype', '<!DOCTYPE x [<!ENTITY a "b">]>\n<Envelope/>', /DOCTYPE is not accepted/, '<!DOCTYPE'],
    ['not ovf', '<html/>', /not an OVF descriptor/, '<html'],
    ['unknown units', `${head}\n<References><File ovf:id="f" ovf:href="d.vmdk"/></References>\n<DiskSection><Disk ovf:diskId="d" ovf:fileRef="f" ovf:capacity="1" ovf:capacityAllocationUnits="parsecs"/></DiskSection></Envelope>`, /capacityAllocationUnits "parsecs" is not a byte unit/, 'ovf:capacityAllocationUnits'],
    ['property capacity', `${head}\n<References><File ovf:id="f" ovf:href="d.vmdk"/></References>\n<DiskSection><Disk ovf:diskId="d" ovf:fileRef="f" ovf:capacity="\${size}"/></DiskSection></Envelope>`, /a property reference cannot be imported/, 'ovf:capacity='],
    ['href outside', `${head}\n<References><File ovf:id="f" ovf:href="../etc/passwd"/></References></Envelope>`, /is not a file inside the OVA/, 'ovf:href'],
    ['no hardware', `${head}\n<VirtualSystem ovf:id="x"><Name>x</Name></VirtualSystem></Envelope>`, /has no VirtualHardwareSection/, '<VirtualSystem'],
    ['no memory', `${head}\n<VirtualSystem ovf:id="x"><VirtualHardwareSection>\n<Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item></VirtualHardwareSection></VirtualSystem></Envelope>`, /has no memory item/, '<VirtualHardwareSection'],
    ['undeclared prefix', `${head}\n<foo:Bar/></Envelope>`, /namespace prefix "foo" is not declared/, 'foo:Bar'],
  ];
  for (const [what, text, message, at] of cases) {
    const before = text.slice(0, text.indexOf(at)).split('\n');
    const line = before.length;
    const col = before.at(-1)!.length + 1;
    assert.throws(() => parseOvf(text, 'x.ova:x.ovf'), (err: unknown) => {
      assert.ok(err instanceof InputError, what);
      assert.match(err.message, message, what);
      assert.deepEqual(err.diagnostics[0]!.pos, { file: 'x.ova:x.ovf', line, col }, what);
      return true;
    }, what);
  }
});

/** A site with one profile, an OVA beside it, and the folders a build writes. */
function ovaSite(dir: string, profile: string): { site: string; out: string; builds: string } {
  const site = join(dir, 'site');
  mkdirSync(join(site, 'profiles'), { recursive: true });
  writeFileSync(join(site, 'cairn.yaml'), 'targets: {}\n');
  writeFileSync(join(site, 'profiles/imported.yaml'), profile);
  return { site, out: join(dir, 'out'), builds: join(dir, 'builds') };
}

function loopDevicesOf(path: string): string {
  return spawnSync('losetup', ['-j', path], { encoding: 'utf8' }).stdout;
}

test('cairn provision with the ova script: OVF 1 into qcow2 volumes identical to the sources; the definition has the OVA\'s CPUs, memory and NICs', { skip: noBuild }, async (t) => {
  const dir = tempDir(t);
  makeRaw(join(dir, 'a.raw'), 64 * MiB, 21);
  makeRaw(join(dir, 'b.raw'), 16 * MiB, 22);
  const { site, out, builds } = ovaSite(dir, [
    'script: ova',
    'args:',
    '  ova: appliance.ova',
    'networks:',
    '  - bridge: br-lan',
    'storage:',
    '  - size: 128M',
    '    format: qcow2',
    '  - size: 16M',
    '    format: raw',
    '',
  ].join('\n'));
  makeOva(join(site), {
    version: 1, name: 'appliance', cpus: 2, memoryMiB: 768,
    disks: [{ raw: join(dir, 'a.raw'), capacity: 64, units: 'byte * 2^20' }, { raw: join(dir, 'b.raw'), capacity: 16 * 1024, units: 'byte * 2^10' }],
    nics: [{ network: 'lan', subtype: 'E1000', mac: '00:50:56:00:00:01' }, { network: 'dmz', subtype: 'VmxNet3' }],
  });
  const r = await runCli(['provision', '--site', site, '--profile', 'imported', 'vm1', '--output', out, '--builds', builds, '--json']);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const done = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; disks?: string[]; definition?: string }).find((e) => e.event === 'done')!;
  assert.deepEqual(done.disks, [join(out, 'vm1-vda.qcow2'), join(out, 'vm1-vdb.raw')]);
  assert.equal(done.definition, join(out, 'vm1.xml'));
  // The first volume is larger than the disk (128M for 64M): identical where the source has data, zero beyond.
  for (const [volume, source, format] of [['vm1-vda.qcow2', 'a.raw', 'qcow2'], ['vm1-vdb.raw', 'b.raw', 'raw']] as const) {
    const compare = spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', format, join(dir, source), join(out, volume)], { encoding: 'utf8' });
    assert.equal(compare.status, 0, `${volume}: ${compare.stdout}${compare.stderr}`);
  }
  assert.equal(JSON.parse(execFileSync('qemu-img', ['info', '--output=json', join(out, 'vm1-vda.qcow2')], { encoding: 'utf8' }))['virtual-size'], 128 * MiB);
  const xml = readFileSync(join(out, 'vm1.xml'), 'utf8');
  assert.match(xml, /<vcpu>2<\/vcpu>/);
  assert.match(xml, /<memory unit='MiB'>768<\/memory>/);
  // The OVA's disks hang off its SCSI controller; its first NIC joins the profile's bridge, the second the network named in the OVF.
  assert.match(xml, new RegExp(`<source file='${join(out, 'vm1-vda.qcow2')}'/>\\s*<target dev='sda' bus='scsi'/>`));
  assert.match(xml, /<interface type='bridge'>\s*<source bridge='br-lan'\/>\s*<mac address='00:50:56:00:00:01'\/>\s*<model type='e1000'\/>/);
  assert.match(xml, /<interface type='network'>\s*<source network='dmz'\/>\s*<model type='vmxnet3'\/>/);
  if (noVirsh) {
    t.diagnostic(`SKIPPED: the definition is not checked by libvirt: ${noVirsh}`);
    console.error(`SKIP provision-builtins-ova (libvirt check): ${noVirsh}`);
  } else {
    // One virsh process: the test driver's state lives as long as its connection.
    const dumped = execFileSync('virsh', ['-c', 'test:///default', `define ${join(out, 'vm1.xml')}; dumpxml vm1`], { encoding: 'utf8' });
    assert.match(dumped, /<vcpu placement='static'>2<\/vcpu>/);
    assert.match(dumped, /<memory unit='KiB'>786432<\/memory>/);
    assert.match(dumped, /<target dev='sda' bus='scsi'\/>/);
    assert.match(dumped, /<controller type='scsi' index='0' model='virtio-scsi'/);
    assert.match(dumped, /<mac address='00:50:56:00:00:01'\/>\s*<source bridge='br-lan'\/>\s*<target dev='\w+'\/>\s*<model type='e1000'\/>/);
    assert.match(dumped, /<source network='dmz'\/>\s*<target dev='\w+'\/>\s*<model type='vmxnet3'\/>/);
  }
  assert.deepEqual(readdirSync(out).sort(), ['vm1-vda.qcow2', 'vm1-vdb.raw', 'vm1.xml']);
});

test('cairn provision with the ova script: OVF 2 with no storage: volumes as large as the capacities (byte * 2^30 units)', { skip: noBuild }, async (t) => {
  const dir = tempDir(t);
  // 1 GiB declared in byte * 2^30 units, sparse: only the patches hold data.
  makeRaw(join(dir, 'a.raw'), 2 ** 30, 31);
  const { site, out, builds } = ovaSite(dir, 'script: ova\nargs:\n  ova: v2.ova\n  format: raw\n');
  makeOva(site, { version: 2, name: 'v2', cpus: 4, memoryMiB: 2048, disks: [{ raw: join(dir, 'a.raw'), capacity: 1, units: 'byte * 2^30' }], nics: [{ network: 'lan', subtype: 'virtio' }] });
  const r = await runCli(['provision', '--site', site, '--profile', 'imported', 'vm2', '--output', out, '--builds', builds]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const compare = spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', join(dir, 'a.raw'), join(out, 'vm2-vda.raw')], { encoding: 'utf8' });
  assert.equal(compare.status, 0, compare.stdout + compare.stderr);
  const xml = readFileSync(join(out, 'vm2.xml'), 'utf8');
  assert.match(xml, /<vcpu>4<\/vcpu>/);
  assert.match(xml, /<memory unit='MiB'>2048<\/memory>/);
  assert.match(xml, /<interface type='network'>\s*<source network='lan'\/>\s*<model type='virtio'\/>/);
});

test('bad input: a volume smaller than the OVA disk it receives is exit 2 at its storage: size, and nothing is created', { skip: noBuild }, async (t) => {
  const dir = tempDir(t);
  makeRaw(join(dir, 'a.raw'), 64 * MiB, 41);
  const { site, out, builds } = ovaSite(dir, 'script: ova\nargs:\n  ova: small.ova\nstorage:\n  - size: 32M\n');
  const ova = makeOva(site, { version: 1, name: 'small', cpus: 1, memoryMiB: 256, disks: [{ raw: join(dir, 'a.raw'), capacity: 64, units: 'byte * 2^20' }], nics: [] });
  const r = await runCli(['provision', '--site', site, '--profile', 'imported', 'vm3', '--output', out, '--builds', builds]);
  assert.equal(r.status, 2, r.stderr + r.stdout);
  assert.match(r.stderr, /disk vda: 33554432 bytes is smaller than the image it receives \(small-disk1\.vmdk in the OVA, 67108864 bytes\)/);
  assert.match(r.stderr, /profiles\/imported\.yaml:5:11/);
  assert.deepEqual(existsSync(out) ? readdirSync(out) : [], []);
  assert.deepEqual(existsSync(builds) ? readdirSync(builds) : [], []);
  assert.equal(loopDevicesOf(ova), '');
});
