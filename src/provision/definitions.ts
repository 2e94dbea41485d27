/**
 * Definitions a build returns from create(): libvirt domain XML for a guest, `.nspawn` settings
 * for a container. Shared by the built-in scripts; a site's script may write its own.
 */
import type { BuildContext, BuildNetwork } from './builder.ts';

/** A disk or cdrom of a domain, in target order. */
export interface DomainDisk {
  file: string;
  format: 'raw' | 'qcow2';
  device?: 'disk' | 'cdrom';
  /** vda, sda, hdc, …; default: vda, vdb, … for disks and sda, sdb, … for cdroms. */
  target?: string;
  /** The bus: virtio for disks and sata for cdroms unless given (an imported guest may lack virtio drivers). */
  bus?: 'virtio' | 'scsi' | 'sata' | 'ide';
  readonly?: boolean;
}

export interface DomainOptions {
  disks?: DomainDisk[];
  /** Direct kernel boot. */
  kernel?: { kernel: string; initrd?: string; cmdline?: string };
  /** Boot order, first first. */
  boot?: ('hd' | 'cdrom' | 'network')[];
  /** Where the serial console's output goes (a file), instead of a pty. */
  consoleLog?: string;
  /** A file the serial console's output is copied to, the console itself staying a pty (`virsh console`). */
  serialLog?: string;
  /** The network adapters, instead of one per `ctx.networks` entry. */
  nics?: BuildNetwork[];
}

const XML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };
export function xmlEscape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => XML_ESCAPES[c]!);
}

/** A libvirt domain (type qemu: TCG here, KVM where the host has it) for `ctx`. */
export function domainXml(ctx: BuildContext, options: DomainOptions = {}): string {
  const e = xmlEscape;
  const lines = [
    `<domain type='qemu'>`,
    `  <name>${e(ctx.name)}</name>`,
    `  <uuid>${e(ctx.uuid)}</uuid>`,
    `  <memory unit='MiB'>${ctx.system.memory}</memory>`,
    `  <vcpu>${ctx.system.cpus}</vcpu>`,
    `  <os>`,
    `    <type arch='x86_64' machine='pc'>hvm</type>`,
  ];
  if (options.kernel) {
    lines.push(`    <kernel>${e(options.kernel.kernel)}</kernel>`);
    if (options.kernel.initrd) lines.push(`    <initrd>${e(options.kernel.initrd)}</initrd>`);
    if (options.kernel.cmdline) lines.push(`    <cmdline>${e(options.kernel.cmdline)}</cmdline>`);
  }
  for (const dev of options.boot ?? (options.kernel ? [] : ['hd'])) lines.push(`    <boot dev='${dev}'/>`);
  lines.push(`  </os>`, `  <features><acpi/><apic/></features>`, `  <devices>`);
  const used = new Set<string>();
  const next = (prefix: string) => {
    for (let i = 0; ; i++) {
      const name = `${prefix}${String.fromCharCode(97 + i)}`;
      if (!used.has(name)) return name;
    }
  };
  let scsi = false;
  for (const disk of options.disks ?? []) {
    const cdrom = disk.device === 'cdrom';
    const bus = disk.bus ?? (cdrom ? 'sata' : 'virtio');
    if (bus === 'scsi') scsi = true;
    const target = disk.target ?? next(bus === 'virtio' ? 'vd' : bus === 'ide' ? 'hd' : 'sd');
    used.add(target);
    lines.push(
      `    <disk type='file' device='${cdrom ? 'cdrom' : 'disk'}'>`,
      `      <driver name='qemu' type='${disk.format}'/>`,
      `      <source file='${e(disk.file)}'/>`,
      `      <target dev='${target}' bus='${bus}'/>`,
      ...(cdrom || disk.readonly ? ['      <readonly/>'] : []),
      `    </disk>`,
    );
  }
  if (scsi) lines.push(`    <controller type='scsi' model='virtio-scsi'/>`);
  for (const net of options.nics ?? ctx.networks) {
    const source = net.bridge ? `<source bridge='${e(net.bridge)}'/>` : `<source network='${e(net.network ?? 'default')}'/>`;
    lines.push(
      `    <interface type='${net.bridge ? 'bridge' : 'network'}'>`,
      `      ${source}`,
      ...(net.mac ? [`      <mac address='${e(net.mac)}'/>`] : []),
      `      <model type='${e(net.model ?? 'virtio')}'/>`,
      `    </interface>`,
    );
  }
  if (ctx.system.serial) {
    lines.push(options.consoleLog
      ? `    <serial type='file'><source path='${e(options.consoleLog)}'/><target port='0'/></serial>`
      : options.serialLog
        ? `    <serial type='pty'><log file='${e(options.serialLog)}' append='on'/><target port='0'/></serial>`
        : `    <serial type='pty'><target port='0'/></serial>`);
    lines.push(`    <console type='pty'><target type='serial' port='0'/></console>`);
  }
  if (ctx.system.console) lines.push(`    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>`);
  lines.push(`  </devices>`, `</domain>`, '');
  return lines.join('\n');
}

/** `.nspawn` settings for a container built as a root folder (systemd.nspawn(5)). */
export function nspawnSettings(ctx: BuildContext): string {
  const lines = ['[Exec]', 'Boot=yes', 'PrivateUsers=no', '', '[Network]'];
  const bridge = ctx.networks.find((n) => n.bridge)?.bridge;
  lines.push(bridge ? `Bridge=${bridge}` : 'VirtualEthernet=no', '');
  return lines.join('\n');
}
