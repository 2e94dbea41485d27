/**
 * libvirt domain XML for a built guest: CPUs, memory, disks and cdroms, network adapters, a
 * serial console, and a direct kernel boot when the build made the kernel and initrd itself.
 * Every value written into the document goes through xmlEscape.
 */
import { xmlEscape as e } from './xml.ts';

export type DiskBus = 'virtio' | 'scsi' | 'sata' | 'ide';

export interface DomainDisk {
  path: string;
  format: 'raw' | 'qcow2';
  device?: 'disk' | 'cdrom';
  bus?: DiskBus;
  readonly?: boolean;
}

export interface DomainNic {
  /** `bridge`: a host bridge by name; `network`: a libvirt network by name. */
  type: 'bridge' | 'network';
  source: string;
  mac?: string;
  /** libvirt's NIC model (virtio, e1000, vmxnet3, …); virtio when not given. */
  model?: string;
}

export interface DomainSpec {
  name: string;
  uuid: string;
  cpus: number;
  /** Memory in MiB. */
  memory: number;
  /** `qemu` (TCG) where the host has no KVM, else `kvm`. */
  virtType: 'kvm' | 'qemu';
  disks: DomainDisk[];
  nics: DomainNic[];
  /** A serial port (libvirt makes it the console too): its output to a file, or a pty (`virsh console`). */
  serial?: { type: 'pty' } | { type: 'file'; path: string };
  /** Direct kernel boot: the kernel and initrd on the host, and the kernel's command line. */
  kernel?: { kernel: string; initrd?: string; cmdline?: string };
  /** Boot order when booting from a device (no kernel): e.g. cdrom then hd for an installer. */
  boot?: ('hd' | 'cdrom' | 'network')[];
}

/** The target device name for the n-th disk on a bus: vda, vdb… for virtio; sda… for the others; hda… for ide. */
function targetDev(bus: DiskBus, index: number): string {
  const prefix = bus === 'virtio' ? 'vd' : bus === 'ide' ? 'hd' : 'sd';
  let suffix = '';
  let n = index;
  do {
    suffix = String.fromCharCode(97 + (n % 26)) + suffix;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return prefix + suffix;
}

export function domainXml(spec: DomainSpec): string {
  if (!Number.isInteger(spec.cpus) || spec.cpus < 1) throw new Error(`domainXml: cpus ${spec.cpus}`);
  if (!Number.isInteger(spec.memory) || spec.memory < 1) throw new Error(`domainXml: memory ${spec.memory}`);
  const lines: string[] = [];
  lines.push(`<domain type='${spec.virtType}'>`);
  lines.push(`  <name>${e(spec.name)}</name>`);
  lines.push(`  <uuid>${e(spec.uuid)}</uuid>`);
  lines.push(`  <memory unit='MiB'>${spec.memory}</memory>`);
  lines.push(`  <vcpu>${spec.cpus}</vcpu>`);
  lines.push('  <os>');
  lines.push("    <type arch='x86_64' machine='pc'>hvm</type>");
  if (spec.kernel) {
    lines.push(`    <kernel>${e(spec.kernel.kernel)}</kernel>`);
    if (spec.kernel.initrd) lines.push(`    <initrd>${e(spec.kernel.initrd)}</initrd>`);
    if (spec.kernel.cmdline) lines.push(`    <cmdline>${e(spec.kernel.cmdline)}</cmdline>`);
  } else {
    for (const dev of spec.boot ?? ['hd']) lines.push(`    <boot dev='${dev}'/>`);
  }
  lines.push('  </os>');
  lines.push('  <features><acpi/><apic/></features>');
  lines.push('  <on_poweroff>destroy</on_poweroff>');
  lines.push('  <on_reboot>restart</on_reboot>');
  lines.push('  <on_crash>destroy</on_crash>');
  lines.push('  <devices>');
  const used = new Map<DiskBus, number>();
  let scsi = false;
  for (const disk of spec.disks) {
    const device = disk.device ?? 'disk';
    // A cdrom cannot be virtio; sata keeps it off the IDE controller a q35 machine lacks.
    const bus = disk.bus ?? (device === 'cdrom' ? 'sata' : 'virtio');
    if (device === 'cdrom' && bus === 'virtio') throw new Error('domainXml: a cdrom cannot be on the virtio bus');
    if (bus === 'scsi') scsi = true;
    // sd* names are shared by the scsi and sata buses.
    const family: DiskBus = bus === 'sata' ? 'scsi' : bus;
    const index = used.get(family) ?? 0;
    used.set(family, index + 1);
    lines.push(`    <disk type='file' device='${device}'>`);
    lines.push(`      <driver name='qemu' type='${disk.format}'/>`);
    lines.push(`      <source file='${e(disk.path)}'/>`);
    lines.push(`      <target dev='${targetDev(bus, index)}' bus='${bus}'/>`);
    if (disk.readonly || device === 'cdrom') lines.push('      <readonly/>');
    lines.push('    </disk>');
  }
  if (scsi) lines.push("    <controller type='scsi' model='virtio-scsi'/>");
  for (const nic of spec.nics) {
    lines.push(`    <interface type='${nic.type}'>`);
    lines.push(`      <source ${nic.type === 'bridge' ? 'bridge' : 'network'}='${e(nic.source)}'/>`);
    if (nic.mac) lines.push(`      <mac address='${e(nic.mac)}'/>`);
    lines.push(`      <model type='${e(nic.model ?? 'virtio')}'/>`);
    lines.push('    </interface>');
  }
  if (spec.serial) {
    if (spec.serial.type === 'file') {
      lines.push("    <serial type='file'>");
      lines.push(`      <source path='${e(spec.serial.path)}'/>`);
    } else {
      lines.push("    <serial type='pty'>");
    }
    lines.push("      <target port='0'/>");
    lines.push('    </serial>');
  }
  lines.push("    <memballoon model='none'/>");
  lines.push('  </devices>');
  lines.push('</domain>');
  return `${lines.join('\n')}\n`;
}
