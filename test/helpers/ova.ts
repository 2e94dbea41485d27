/**
 * OVAs made the way VMware's tools make them, for the import tests: a descriptor (OVF 1 or 2), a
 * SHA256 manifest and streamOptimized VMDKs converted from raw images by qemu-img, packed by tar
 * (ustar, descriptor first).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface OvaSpec {
  version: 1 | 2;
  name: string;
  cpus: number;
  /** Memory in MiB, written as `byte * 2^20` units. */
  memoryMiB: number;
  /** Raw images to carry, each with the capacity to declare and the unit to declare it in. */
  disks: { raw: string; capacity: number; units?: string }[];
  nics: { network: string; subtype?: string; mac?: string }[];
}

/** Makes `<dir>/<name>.ova` from `spec`; returns its path. */
export function makeOva(dir: string, spec: OvaSpec): string {
  const files: string[] = [];
  for (const [i, d] of spec.disks.entries()) {
    const vmdk = `${spec.name}-disk${i + 1}.vmdk`;
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', d.raw, join(dir, vmdk)]);
    files.push(vmdk);
  }
  const ns = `http://schemas.dmtf.org/ovf/envelope/${spec.version}`;
  const cim = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/';
  const diskItem = (i: number, instance: number) => spec.version === 1
    ? `<Item><rasd:AddressOnParent>${i}</rasd:AddressOnParent><rasd:ElementName>disk${i + 1}</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk${i + 1}</rasd:HostResource><rasd:InstanceID>${instance}</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>`
    : `<StorageItem><sasd:AddressOnParent>${i}</sasd:AddressOnParent><sasd:ElementName>disk${i + 1}</sasd:ElementName><sasd:HostResource>ovf:/disk/vmdisk${i + 1}</sasd:HostResource><sasd:InstanceID>${instance}</sasd:InstanceID><sasd:Parent>3</sasd:Parent><sasd:ResourceType>17</sasd:ResourceType></StorageItem>`;
  const nicItem = (n: OvaSpec['nics'][number], instance: number) => spec.version === 1
    ? `<Item>${n.mac ? `<rasd:Address>${n.mac}</rasd:Address>` : ''}<rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Connection>${n.network}</rasd:Connection><rasd:ElementName>ethernet</rasd:ElementName><rasd:InstanceID>${instance}</rasd:InstanceID>${n.subtype ? `<rasd:ResourceSubType>${n.subtype}</rasd:ResourceSubType>` : ''}<rasd:ResourceType>10</rasd:ResourceType></Item>`
    : `<EthernetPortItem>${n.mac ? `<epasd:Address>${n.mac}</epasd:Address>` : ''}<epasd:Connection>${n.network}</epasd:Connection><epasd:ElementName>ethernet</epasd:ElementName><epasd:InstanceID>${instance}</epasd:InstanceID>${n.subtype ? `<epasd:ResourceSubType>${n.subtype}</epasd:ResourceSubType>` : ''}<epasd:ResourceType>10</epasd:ResourceType></EthernetPortItem>`;
  const networks = [...new Set(spec.nics.map((n) => n.network))];
  const ovf = `<?xml version="1.0" encoding="UTF-8"?>
<!-- made by the Cairn tests -->
<Envelope ovf:version="${spec.version}.0" xml:lang="en-US"
  xmlns="${ns}" xmlns:ovf="${ns}"
  xmlns:rasd="${cim}CIM_ResourceAllocationSettingData"
  xmlns:sasd="${cim}CIM_StorageAllocationSettingData"
  xmlns:epasd="${cim}CIM_EthernetPortAllocationSettingData"
  xmlns:vssd="${cim}CIM_VirtualSystemSettingData">
  <References>
${files.map((f, i) => `    <File ovf:id="file${i + 1}" ovf:href="${f}" ovf:size="${statSync(join(dir, f)).size}"/>`).join('\n')}
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
${spec.disks.map((d, i) => `    <Disk ovf:diskId="vmdisk${i + 1}" ovf:fileRef="file${i + 1}" ovf:capacity="${d.capacity}"${d.units ? ` ovf:capacityAllocationUnits="${d.units}"` : ''} ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>`).join('\n')}
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
${networks.map((n) => `    <Network ovf:name="${n}"><Description>The ${n} network</Description></Network>`).join('\n')}
  </NetworkSection>
  <VirtualSystem ovf:id="${spec.name}">
    <Info>A virtual machine</Info>
    <Name>${spec.name}</Name>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-07</vssd:VirtualSystemType></System>
      <Item><rasd:ElementName>${spec.cpus} virtual CPU</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>${spec.cpus}</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>${spec.memoryMiB} MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>${spec.memoryMiB}</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>scsiController0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
${spec.disks.map((_, i) => `      ${diskItem(i, 10 + i)}`).join('\n')}
${spec.nics.map((n, i) => `      ${nicItem(n, 20 + i)}`).join('\n')}
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`;
  writeFileSync(join(dir, `${spec.name}.ovf`), ovf);
  const members = [`${spec.name}.ovf`, `${spec.name}.mf`, ...files];
  writeFileSync(join(dir, `${spec.name}.mf`), [`${spec.name}.ovf`, ...files]
    .map((f) => `SHA256(${f})= ${createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')}\n`).join(''));
  const ova = join(dir, `${spec.name}.ova`);
  execFileSync('tar', ['-C', dir, '--format=ustar', '-cf', ova, ...members]);
  return ova;
}

/** A raw image of `size` bytes with seeded, recognisable data at a few places (sparse elsewhere). */
export function makeRaw(path: string, size: number, seed: number): void {
  execFileSync('truncate', ['-s', String(size), path]);
  let x = seed >>> 0;
  const chunk = Buffer.alloc(65536);
  for (let i = 0; i < chunk.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    chunk[i] = x >>> 24;
  }
  // three patches: the start, the middle and the last 64 KiB
  for (const at of [0, Math.floor(size / 2 / 65536) * 65536, size - 65536]) {
    execFileSync('dd', [`of=${path}`, 'bs=65536', `seek=${at / 65536}`, 'conv=notrunc', 'status=none'], { input: chunk });
  }
}
