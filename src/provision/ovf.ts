/**
 * OVF descriptors (DMTF DSP0243, versions 1.x and 2.x) read into a plain description of one
 * virtual machine: its CPUs, memory, disks (with their capacity in bytes and the file each comes
 * from) and network adapters. OVF 1 lists every device as a `rasd:` Item; OVF 2 moves disks to
 * `StorageItem` (`sasd:`) and network adapters to `EthernetPortItem` (`epasd:`), and accepts the
 * OVF 1 forms too. Anything the import cannot honour (a disk whose capacity is a property, two
 * virtual systems) is an input error at its line and column.
 */
import { inputError, type SourcePos } from '../lib/errors.ts';
import { attributeOf, childOf, childrenOf, parseXml, type XmlElement } from './xml.ts';

const OVF1 = 'http://schemas.dmtf.org/ovf/envelope/1';
const OVF2 = 'http://schemas.dmtf.org/ovf/envelope/2';
const CIM = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/';
const RASD = `${CIM}CIM_ResourceAllocationSettingData`;
const SASD = `${CIM}CIM_StorageAllocationSettingData`;
const EPASD = `${CIM}CIM_EthernetPortAllocationSettingData`;

/** CIM ResourceType values (DSP1041) the import reads. */
const ResourceType = { processor: 3, memory: 4, ide: 5, scsi: 6, ethernet: 10, cdrom: 15, disk: 17, sata: 20 } as const;

export interface OvfDisk {
  /** The DiskSection's `diskId`. */
  id: string;
  /** The member of the OVA (References/File href) holding the disk's contents. */
  file: string;
  /** Its size in bytes as the manifest lists it, when given. */
  fileSize?: number;
  /** The virtual size in bytes (capacity × capacityAllocationUnits). */
  capacity: number;
  /** The image format of the file: `vmdk`, `qcow2` or `raw`. */
  format: 'vmdk' | 'qcow2' | 'raw';
  /** The controller kind it hangs off, when the descriptor says. */
  bus?: 'ide' | 'scsi' | 'sata';
  pos: SourcePos;
}

export interface OvfNic {
  /** The OVF network it connects to (`Connection`). */
  network: string;
  /** A libvirt NIC model from the ResourceSubType (e1000, vmxnet3, virtio, …), when known. */
  model?: string;
  mac?: string;
}

export interface OvfDescription {
  version: 1 | 2;
  name: string;
  cpus: number;
  /** Memory in bytes. */
  memory: number;
  /** In the order the hardware section lists them; disks no item names come last. */
  disks: OvfDisk[];
  nics: OvfNic[];
  /** The descriptor's networks (NetworkSection), in order. */
  networks: string[];
}

/**
 * Bytes per unit of a DMTF programmatic unit (DSP0004 Annex C) as OVF writes them: `byte`,
 * `byte * 2^30`, `byte * 10^9`, `byte * 1024`, and the older `KB`/`MB`/`GB` and `KiB`… forms.
 * Undefined when the unit is not a byte multiple.
 */
export function unitBytes(unit: string): number | undefined {
  const u = unit.trim().replace(/\s+/g, ' ');
  const legacy: Record<string, number> = {
    b: 1, byte: 1, bytes: 1,
    kb: 2 ** 10, kib: 2 ** 10, kilobyte: 2 ** 10, kilobytes: 2 ** 10,
    mb: 2 ** 20, mib: 2 ** 20, megabyte: 2 ** 20, megabytes: 2 ** 20,
    gb: 2 ** 30, gib: 2 ** 30, gigabyte: 2 ** 30, gigabytes: 2 ** 30,
    tb: 2 ** 40, tib: 2 ** 40, terabyte: 2 ** 40, terabytes: 2 ** 40,
  };
  const known = legacy[u.toLowerCase()];
  if (known !== undefined) return known;
  const m = /^byte(?: ?\* ?(\d+)(?: ?\^ ?(\d+))?)*$/i.exec(u);
  if (!m) return undefined;
  // Several factors may be chained: "byte * 2^10 * 1024".
  let bytes = 1;
  for (const f of u.slice(4).split('*').map((s) => s.trim()).filter(Boolean)) {
    const [base, exp] = f.split('^').map((s) => Number(s.trim()));
    bytes *= exp === undefined ? base! : base! ** exp;
  }
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

const NIC_MODELS: Record<string, string> = {
  e1000: 'e1000', e1000e: 'e1000e', vmxnet3: 'vmxnet3', vmxnet: 'vmxnet3', 'virtio': 'virtio', 'virtio-net': 'virtio',
  pcnet32: 'pcnet', pcnet: 'pcnet', rtl8139: 'rtl8139', ne2k_pci: 'ne2k_pci',
};

/** Reads an OVF descriptor; `file` names it in errors (`appliance.ova:appliance.ovf`). */
export function parseOvf(text: string, file: string): OvfDescription {
  const root = parseXml(text, file);
  const fail = (message: string, pos: SourcePos): never => {
    throw inputError(message, pos);
  };
  if (root.local !== 'Envelope' || (root.ns !== OVF1 && root.ns !== OVF2)) {
    fail(`not an OVF descriptor: the root element is <${root.qname}> in ${root.ns ? `namespace ${root.ns}` : 'no namespace'} (expected Envelope in ${OVF1} or ${OVF2})`, root.pos);
  }
  const O = root.ns;
  const version: 1 | 2 = O === OVF2 ? 2 : 1;
  const ovfAttr = (el: XmlElement, name: string) => attributeOf(el, O, name);
  const required = (el: XmlElement, name: string): { value: string; pos: SourcePos } =>
    ovfAttr(el, name) ?? fail(`<${el.qname}> has no ovf:${name}`, el.pos);

  const files = new Map<string, { href: string; size?: number }>();
  for (const f of childrenOf(childOf(root, O, 'References') ?? root, O, 'File')) {
    const id = required(f, 'id').value;
    const size = ovfAttr(f, 'size');
    if (size && !/^\d+$/.test(size.value)) fail(`File ${id}: ovf:size ${JSON.stringify(size.value)} is not a number of bytes`, size.pos);
    const href = required(f, 'href');
    if (/^[a-z][a-z0-9+.-]*:/i.test(href.value) || href.value.includes('..') || href.value.startsWith('/')) {
      fail(`File ${id}: ovf:href ${JSON.stringify(href.value)} is not a file inside the OVA`, href.pos);
    }
    files.set(id, { href: href.value, ...(size ? { size: Number(size.value) } : {}) });
  }

  const disks = new Map<string, OvfDisk>();
  for (const d of childrenOf(childOf(root, O, 'DiskSection') ?? root, O, 'Disk')) {
    const id = required(d, 'diskId').value;
    const capacity = required(d, 'capacity');
    if (!/^\d+$/.test(capacity.value)) {
      fail(`Disk ${id}: ovf:capacity ${JSON.stringify(capacity.value)} is not a whole number${capacity.value.startsWith('${') ? ' (a property reference cannot be imported)' : ''}`, capacity.pos);
    }
    const units = ovfAttr(d, 'capacityAllocationUnits');
    const per = units ? unitBytes(units.value) : 1;
    if (per === undefined) fail(`Disk ${id}: capacityAllocationUnits ${JSON.stringify(units!.value)} is not a byte unit (as "byte * 2^30")`, units!.pos);
    const bytes = Number(capacity.value) * per!;
    if (!Number.isSafeInteger(bytes) || bytes <= 0) fail(`Disk ${id}: capacity ${capacity.value}${units ? ` × ${units.value}` : ''} is not a usable size`, capacity.pos);
    const fileRef = ovfAttr(d, 'fileRef');
    if (!fileRef) fail(`Disk ${id} has no ovf:fileRef: an empty disk cannot be imported from the OVA`, d.pos);
    const f = files.get(fileRef!.value) ?? fail(`Disk ${id}: ovf:fileRef ${JSON.stringify(fileRef!.value)} names no File in References`, fileRef!.pos);
    const formatUri = ovfAttr(d, 'format')?.value ?? '';
    const format = /vmdk/i.test(formatUri) || /\.vmdk$/i.test(f.href) ? 'vmdk'
      : /qcow/i.test(formatUri) || /\.qcow2?$/i.test(f.href) ? 'qcow2'
        : /\.(img|raw)$/i.test(f.href) ? 'raw'
          : fail(`Disk ${id}: format ${JSON.stringify(formatUri || f.href)} is none of vmdk, qcow2, raw`, d.pos);
    disks.set(id, { id, file: f.href, ...(f.size !== undefined ? { fileSize: f.size } : {}), capacity: bytes, format, pos: d.pos });
  }

  const networks = childrenOf(childOf(root, O, 'NetworkSection') ?? root, O, 'Network').map((n) => required(n, 'name').value);

  const systems = childrenOf(root, O, 'VirtualSystem');
  const collection = childOf(root, O, 'VirtualSystemCollection');
  if (collection) fail('a VirtualSystemCollection (several machines in one OVA) cannot be imported as one guest', collection.pos);
  if (systems.length !== 1) fail(`the descriptor has ${systems.length} VirtualSystem elements: expected one`, root.pos);
  const system = systems[0]!;
  const name = childOf(system, O, 'Name')?.text.trim() || required(system, 'id').value;
  const hardware = childrenOf(system, O, 'VirtualHardwareSection');
  if (hardware.length === 0) fail(`VirtualSystem ${name} has no VirtualHardwareSection`, system.pos);

  let cpus: number | undefined;
  let memory: number | undefined;
  const nics: OvfNic[] = [];
  const controllers = new Map<string, OvfDisk['bus']>();
  const diskOrder: { disk: OvfDisk; parent?: string }[] = [];
  // The first section is the default configuration; more sections are alternatives (vmx-07, …)
  // that carry the same machine for other hypervisors.
  const items = hardware[0]!.children.filter((c) => c.ns === O && ['Item', 'StorageItem', 'EthernetPortItem'].includes(c.local));
  for (const item of items) {
    // OVF 2 settings elements live in their own CIM namespaces; OVF 1 has only rasd.
    const nsOf = item.local === 'StorageItem' ? SASD : item.local === 'EthernetPortItem' ? EPASD : RASD;
    const field = (local: string) => childOf(item, nsOf, local);
    const value = (local: string) => field(local)?.text.trim();
    const typeText = value('ResourceType');
    if (typeText === undefined) fail(`<${item.qname}> has no ResourceType`, item.pos);
    const type = Number(typeText);
    const quantity = (what: string) => {
      const q = field('VirtualQuantity');
      if (!q || !/^\d+$/.test(q.text.trim())) fail(`the ${what} item has no whole VirtualQuantity`, (q ?? item).pos);
      return Number(q!.text.trim());
    };
    if (type === ResourceType.processor) {
      cpus = quantity('CPU');
      if (cpus < 1) fail('the CPU item asks for 0 CPUs', item.pos);
    } else if (type === ResourceType.memory) {
      const units = field('AllocationUnits');
      // DSP0243 leaves the default open; every producer writes it, and MB is what they mean.
      const per = units ? unitBytes(units.text) : 2 ** 20;
      if (per === undefined) fail(`the memory item's AllocationUnits ${JSON.stringify(units!.text.trim())} is not a byte unit (as "byte * 2^20")`, units!.pos);
      memory = quantity('memory') * per!;
      if (memory === 0) fail('the memory item asks for no memory', item.pos);
    } else if (type === ResourceType.ide || type === ResourceType.scsi || type === ResourceType.sata) {
      const id = value('InstanceID');
      if (id) controllers.set(id, type === ResourceType.ide ? 'ide' : type === ResourceType.scsi ? 'scsi' : 'sata');
    } else if (type === ResourceType.ethernet) {
      const network = value('Connection') ?? fail('the network adapter item has no Connection', item.pos);
      const subtype = value('ResourceSubType')?.toLowerCase();
      const mac = value('Address');
      nics.push({
        network: network!,
        ...(subtype && NIC_MODELS[subtype] ? { model: NIC_MODELS[subtype] } : {}),
        ...(mac && /^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i.test(mac) ? { mac: mac.toLowerCase().replace(/-/g, ':') } : {}),
      });
    } else if (type === ResourceType.disk) {
      const host = field('HostResource') ?? fail('the disk item has no HostResource', item.pos);
      const ref = host!.text.trim();
      const m = /^(?:ovf:)?\/disk\/(.+)$/.exec(ref);
      if (!m) fail(`disk HostResource ${JSON.stringify(ref)}: only ovf:/disk/<id> can be imported`, host!.pos);
      const disk = disks.get(m![1]!) ?? fail(`disk HostResource ${JSON.stringify(ref)} names no Disk in DiskSection`, host!.pos);
      const parent = value('Parent');
      diskOrder.push({ disk: disk!, ...(parent ? { parent } : {}) });
    }
  }
  if (cpus === undefined) fail(`VirtualSystem ${name} has no CPU item (ResourceType 3)`, hardware[0]!.pos);
  if (memory === undefined) fail(`VirtualSystem ${name} has no memory item (ResourceType 4)`, hardware[0]!.pos);
  const ordered = diskOrder.map(({ disk, parent }) => {
    const bus = parent ? controllers.get(parent) : undefined;
    return bus ? { ...disk, bus } : disk;
  });
  const named = new Set(ordered.map((d) => d.id));
  for (const d of disks.values()) if (!named.has(d.id)) ordered.push(d);
  return { version, name, cpus: cpus!, memory: memory!, disks: ordered, nics, networks };
}
