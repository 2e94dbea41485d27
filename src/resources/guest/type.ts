import { z } from 'zod';
import { absolutePath, ensurePresence } from '../attributes.ts';
import { defineType, internal, rebuild, reload, update, writeOnly } from '../define.ts';

/** Binary multiples, as libvirt, qemu-img and provisioning profiles count them (1G = 1024M). */
const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
/** `20G`, `512M`, `1.5G`, `512MiB`, `512MB` (binary, as profiles read them), or bytes. */
const SIZE = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i;
const SIZE_HELP = 'a size is a number with a unit K, M, G or T (binary: 1G = 1024M), e.g. 512M or 20G';

/** Bytes of a size as a site writes it (`20G`, `512M`), or undefined when it is not one. */
export function sizeBytes(text: string): number | undefined {
  const m = SIZE.exec(text);
  if (!m) return undefined;
  const bytes = Number(m[1]) * UNITS[m[2]!.toUpperCase()]!;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** A size in bytes: a number is bytes already, a string carries its unit. */
const size = z
  .union([z.number().int().positive(), z.string().refine((v) => (sizeBytes(v) ?? 0) > 0, SIZE_HELP)])
  .transform((v) => (typeof v === 'number' ? v : sizeBytes(v)!));

/** Memory in MiB: a number is MiB already, a string carries its unit. */
const memory = z
  .union([z.number().int().positive(), z.string().refine((v) => (sizeBytes(v) ?? 0) > 0, SIZE_HELP)])
  .transform((v) => (typeof v === 'number' ? v * 1024 ** 2 : sizeBytes(v)!))
  .refine((bytes) => bytes % 1024 ** 2 === 0, 'memory must be a whole number of MiB')
  .transform((bytes) => bytes / 1024 ** 2);

/** `60s`, `2m`, `1h`, or a number of seconds. */
const duration = z
  .union([z.number().int().nonnegative(), z.string().regex(/^\d+\s*(s|m|h)$/, 'a duration such as 60s, 2m or 1h (or a number of seconds)')])
  .transform((v) => (typeof v === 'number' ? v : Number(/^\d+/.exec(v)![0]) * ({ s: 1, m: 60, h: 3600 }[v.trim().slice(-1) as 's' | 'm' | 'h'])));

/** Drivers libvirt connects to by URI (libvirt.org/uri.html), with an optional transport. */
const DRIVERS = ['qemu', 'test', 'lxc', 'xen', 'libxl', 'bhyve', 'vz', 'ch', 'vbox', 'openvz', 'esx', 'hyperv'];
const URI = new RegExp(`^(${DRIVERS.join('|')})(\\+(unix|ssh|libssh|libssh2|tcp|tls|ext))?://[^\\s]*$`);

/** A network interface: a libvirt network by name (`default`, `network:default`) or a host bridge (`bridge:br0`). */
const network = z
  .string()
  .regex(/^((network|bridge):)?[A-Za-z0-9._-]+$/, 'a network is a libvirt network name (network:NAME, or just NAME) or bridge:BRIDGE')
  .transform((v) => (v.includes(':') ? v : `network:${v}`));

export const guestType = defineType({
  name: 'guest',
  key: 'name',
  description:
    'A virtual machine managed through libvirt (`virsh` against `uri`). It is built through a provisioning profile ' +
    'when created or rebuilt (DESIGN §10); cpus, memory, networks and cdroms are changed in its definition and take ' +
    'effect by a restart (reload); a disk that grows is resized in place; a changed profile, disk count, smaller ' +
    'disk or user_data replaces it (rebuild, only with allow_rebuild: true).',
  schema: z.strictObject({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a guest name is letters, digits, dots, dashes and underscores')
      .describe('the libvirt domain name'),
    uri: z.string().regex(URI, `a libvirt URI: DRIVER[+TRANSPORT]://[HOST]/PATH, with a driver libvirt knows (${DRIVERS.join(', ')})`)
      .default('qemu:///system').describe('the libvirt connection (default qemu:///system)'),
    ensure: rebuild(ensurePresence),
    state: update(z.enum(['running', 'stopped']).default('running').describe('running (default) or stopped')),
    boot: update(z.boolean().default(false).describe('start with the host (libvirt autostart); default false')),
    profile: rebuild(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a profile name (profiles/<name>.yaml)').optional()
      .describe('the provisioning profile that builds it (profiles/<name>.yaml)')),
    args: z.record(z.string(), z.string()).optional().describe("overrides of the profile's arguments for its build"),
    cpus: reload(z.number().int().positive().optional().describe('virtual CPUs; default: what the profile says')),
    memory: reload(memory.optional().describe('memory, e.g. 2G or 512M (a number is MiB); default: what the profile says')),
    networks: reload(z.array(network).optional()
      .describe('network interfaces in order: a libvirt network (NAME or network:NAME) or bridge:BRIDGE')),
    cdroms: reload(z.array(absolutePath).optional().describe('ISO images attached as cdroms, in order')),
    disks: rebuild(z.array(size).optional()
      .describe("disk sizes in order (20G): the profile's disks grown to them, further ones added empty; a disk that grows is resized in place")),
    // Filled by resolve(): the sizes again, compared as an update, so a disk that only grows is
    // resized in place while `disks` (a rebuild) differs only for a count or a shrink.
    disk_sizes: internal(update(z.array(z.number()).optional().describe('internal: the disk sizes, for growth in place'))),
    user_data: rebuild(writeOnly(z.string().optional()
      .describe('cloud-init user data, on a NoCloud seed ISO attached at create; compared by hash'))),
    storage: absolutePath.default('/var/lib/libvirt/images')
      .describe("where Cairn keeps each guest's files, in a folder named after it (default /var/lib/libvirt/images)"),
    shutdown_timeout: duration.default(60).describe('how long an ACPI shutdown may take before the guest is destroyed (default 60s)'),
  }),
  stateful: true,
  refresh: 'restarts the guest when it is running',
  needs: ['running-system'],
  reads: () => ({ paths: [], commands: true }),
  resolve(attributes) {
    return attributes.disks === undefined ? attributes : { ...attributes, disk_sizes: attributes.disks };
  },
});

export default guestType;
