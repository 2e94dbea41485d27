/**
 * The `ova` built-in's reading side, on OVAs made here with qemu-img and tar: OVF 1 and 2
 * descriptors, capacity units, the manifest, and each disk converted by qemu-img straight out of
 * the OVA to an image identical to its source (`qemu-img compare`).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { InputError } from '../src/lib/errors.ts';
import { parseOvf, unitBytes } from '../src/provision/ovf.ts';
import { qemuSource, readOva, tarMembers } from '../src/provision/ova.ts';
import { makeOva, makeRaw } from './helpers/ova.ts';

const noQemuImg = spawnSync('qemu-img', ['--version']).status === 0 ? undefined : 'qemu-img is not installed (scripts/install.sh installs qemu-utils)';
if (noQemuImg) console.error(`SKIP provision-builtins-ova: ${noQemuImg}`);

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
