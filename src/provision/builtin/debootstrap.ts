/**
 * `debootstrap`: a Debian system on partitioned disk images. Each `storage:` volume with a file
 * system gets an MBR with one partition holding it, mounted at its `mountpoint` (one must be
 * `/`); the root is debootstrapped from the mirror (or copied from a cached root of the same
 * recipe), then given its fstab (by UUID), hostname, apt source, DHCP on every Ethernet link
 * (systemd-networkd), a machine-id and SSH host keys of its own (made on first boot and here),
 * and, when the profile names a site target, a first-boot unit that converges it once with the
 * target's exported script (DESIGN §11). A qcow2 volume is built raw in the work folder (this
 * machine kind cannot mount qcow2) and converted at the end.
 *
 * The image boots as a container (`systemd-nspawn -i`, or loop-mounted with `-D`), so the profile
 * must say `kind: container`: a bootable VM (a kernel and boot loader in the image) is not built.
 *
 * Arguments: `suite` (bookworm), `mirror` (the host's configured Debian mirror), `variant`
 * (minbase), `include` (packages added to the variant's, comma-separated), `target` (a site target
 * whose exported script runs on first boot), `cache` (a folder of debootstrapped roots kept by
 * recipe, laid out as the test lab keeps its golden root: `root-<key>/fs`, the key made from the
 * suite, variant and the whole include list; when this recipe's root is there it is copied
 * instead of running debootstrap).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { localFacts } from '../../executors/local-facts.ts';
import { Builder, type BuildVolume } from '../builder.ts';
import { nspawnSettings } from '../definitions.ts';

/** The packages every image gets besides the variant's: an init, and the pieces it boots with. */
const BASE_INCLUDE = ['systemd', 'systemd-sysv', 'dbus'];

/** What each file system's partition is, in sfdisk's MBR type codes. */
const PARTITION_TYPE: Record<string, string> = { swap: '82', vfat: 'c' };

const FIRSTBOOT_DIR = '/var/lib/cairn';

interface Disk {
  volume: BuildVolume;
  /** The image built on (raw): the volume itself, or a raw stand-in in the work folder for qcow2. */
  raw: string;
  /** The volume in the output folder. */
  file: string;
  partition?: string;
  uuid?: string;
}

/** The host's Debian mirror: the first `URIs:` of debian.sources, or the first `deb` line. */
export function hostMirror(): string | undefined {
  const sources = existsSync('/etc/apt/sources.list.d/debian.sources') ? readFileSync('/etc/apt/sources.list.d/debian.sources', 'utf8') : '';
  const uri = /^URIs:\s*(\S+)/m.exec(sources)?.[1];
  if (uri) return uri;
  const list = existsSync('/etc/apt/sources.list') ? readFileSync('/etc/apt/sources.list', 'utf8') : '';
  return /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/m.exec(list)?.[1];
}

/** The cache key of a debootstrap recipe: the test lab's (test/lab/lab.sh ROOT_KEY) formula. */
export function recipeKey(suite: string, variant: string, include: string): string {
  return createHash('sha256').update(`root-v1 ${suite} ${variant} ${include}`).digest('hex').slice(0, 12);
}

export default class Debootstrap extends Builder {
  static override arguments = {
    suite: { default: 'bookworm', description: 'the Debian release' },
    mirror: { default: '', description: "the Debian mirror (default: the host's configured one)" },
    variant: { default: 'minbase', description: "debootstrap's --variant" },
    include: { default: '', description: 'more packages, comma-separated' },
    target: { default: '', description: 'a site target whose exported script runs on first boot' },
    cache: { default: '', description: 'a folder of debootstrapped roots by recipe (root-<key>/fs)' },
  };

  #disks: Disk[] = [];
  #mirror = '';
  #include = '';
  #cached?: string;
  #target = '';

  override async setup(): Promise<void> {
    const { args, storage } = this.ctx;
    if (this.ctx.kind !== 'container') {
      this.invalid('debootstrap builds images that boot as containers (no kernel or boot loader is installed, so a VM could not boot them): set kind: container', ['kind']);
    }
    const rootIndex = storage.findIndex((v) => v.mountpoint === '/');
    if (rootIndex < 0) this.invalid('debootstrap needs a storage: volume with mountpoint: / (and a filesystem) for the root', ['storage']);
    for (const [i, v] of storage.entries()) {
      if (v.mountpoint && !v.filesystem) this.invalid(`volume ${v.disk} has a mountpoint but no filesystem`, ['storage', i]);
      if (v.mountpoint && !v.mountpoint.startsWith('/')) this.invalid(`volume ${v.disk}: mountpoint ${v.mountpoint} is not absolute`, ['storage', i, 'mountpoint']);
      if (v.filesystem && !/^[a-z0-9]+$/.test(v.filesystem)) this.invalid(`volume ${v.disk}: ${JSON.stringify(v.filesystem)} is not a file system type (ext4, xfs, vfat, swap, …)`, ['storage', i, 'filesystem']);
      if (v.source) this.invalid(`volume ${v.disk}: debootstrap makes its disks itself and takes no source image`, ['storage', i, 'source']);
      if (v.filesystem && v.filesystem !== 'swap') await this.run(['sh', '-c', `command -v mkfs.${v.filesystem}`]).catch(() => this.fail(`mkfs.${v.filesystem} is not installed here (volume ${v.disk})`));
    }
    this.#mirror = args.mirror || hostMirror() || this.invalid('no mirror given and none configured on this host (/etc/apt/sources.list.d/debian.sources)', ['args', 'mirror']);
    if (!/^(https?|file):\/\//.test(this.#mirror)) this.invalid(`mirror ${JSON.stringify(this.#mirror)} is not an http(s):// or file:// URL`, ['args', 'mirror']);
    if (!/^[a-z0-9][a-z0-9.-]*$/.test(args.suite!)) this.invalid(`suite ${JSON.stringify(args.suite)} is not a Debian release name`, ['args', 'suite']);
    if (!/^[a-z][a-z-]*$/.test(args.variant!)) this.invalid(`variant ${JSON.stringify(args.variant)} is not a debootstrap variant (minbase, buildd, …)`, ['args', 'variant']);
    const extra = args.include ? args.include.split(',').map((p) => p.trim()).filter(Boolean) : [];
    const bad = extra.find((p) => !/^[a-z0-9][a-z0-9+.-]*$/.test(p));
    if (bad) this.invalid(`include: ${JSON.stringify(bad)} is not a package name`, ['args', 'include']);
    this.#include = [...new Set([...BASE_INCLUDE, ...extra])].join(',');
    this.#target = args.target ?? '';

    if (args.cache) {
      const cache = isAbsolute(args.cache) ? args.cache : resolve(this.ctx.siteDir, args.cache);
      const root = join(cache, `root-${recipeKey(args.suite!, args.variant!, this.#include)}`, 'fs');
      if (existsSync(join(root, 'etc/os-release'))) this.#cached = root;
      else this.log(`no cached root for this recipe at ${root}: debootstrap runs`);
    }
    if (!this.#cached) await this.run(['sh', '-c', 'command -v debootstrap']).catch(() => this.fail('debootstrap is not installed here'));

    const rootVolume = storage[rootIndex]!;
    if (this.#cached) {
      // The copy must fit, with room for the files the build adds and a file system's overhead.
      const used = Number((await this.run(['du', '-sxb', this.#cached])).stdout.split(/\s/)[0]);
      const needed = Math.ceil(used * 1.1) + 64 * 2 ** 20;
      if (rootVolume.size < needed) {
        this.invalid(`volume ${rootVolume.disk}: ${rootVolume.size} bytes is smaller than the image it receives (the root is ${used} bytes; give it at least ${needed})`, ['storage', rootIndex, 'size']);
      }
    }
    this.#disks = storage.map((volume) => {
      const file = join(this.ctx.outputDir, `${this.ctx.name}-${volume.disk}.${volume.format}`);
      return { volume, file, raw: volume.format === 'raw' ? file : join(this.ctx.workDir, `${volume.disk}.raw`) };
    });
  }

  override async create(): Promise<string> {
    return nspawnSettings(this.ctx);
  }

  override async prepare(): Promise<void> {
    for (const d of this.#disks) {
      const made = await this.volume({ size: d.volume.size, format: d.volume.format, disk: d.volume.disk, file: d.file.slice(this.ctx.outputDir.length + 1) });
      if (made !== d.file) this.fail(`the volume for ${d.volume.disk} is ${made}, not ${d.file}`);
      if (d.raw !== d.file) await this.run(['truncate', '-s', String(d.volume.size), d.raw]);
      if (!d.volume.filesystem) continue;
      const fs = d.volume.filesystem;
      await this.run(['sfdisk', '-q', d.raw], { input: `label: dos\nstart=2048, type=${PARTITION_TYPE[fs] ?? '83'}\n` });
      const loop = await this.loop(d.raw);
      d.partition = loop.partitions[0] ?? this.fail(`no partition appeared on ${loop.device} for ${d.raw}`);
      if (fs === 'swap') await this.run(['mkswap', '-q', d.partition]);
      else if (fs === 'vfat') await this.run(['mkfs.vfat', d.partition]);
      else await this.run([`mkfs.${fs}`, ...(fs.startsWith('ext') ? ['-q', '-F'] : ['-f']), ...(d.volume.mountpoint === '/' ? ['-L', 'root'] : []), d.partition]);
      d.uuid = (await this.run(['blkid', '-s', 'UUID', '-o', 'value', d.partition])).stdout.trim();
    }
    // Parents before children: / first, then /boot before /boot/efi.
    const mounted = this.#disks.filter((d) => d.volume.mountpoint && d.volume.filesystem !== 'swap')
      .sort((a, b) => a.volume.mountpoint!.split('/').filter(Boolean).length - b.volume.mountpoint!.split('/').filter(Boolean).length);
    for (const d of mounted) await this.mount(d.partition!, join(this.#root, d.volume.mountpoint!));
  }

  get #root(): string {
    return join(this.ctx.workDir, 'target');
  }

  override async install(): Promise<void> {
    const root = this.#root;
    const { args } = this.ctx;
    if (this.#cached) {
      this.progress(0, 3, `copying the cached root ${this.#cached}`);
      await this.run(['cp', '-a', `${this.#cached}/.`, `${root}/`]);
    } else {
      this.progress(0, 3, `debootstrap ${args.suite} from ${this.#mirror}`);
      await this.run(['debootstrap', `--variant=${args.variant}`, `--include=${this.#include}`, args.suite!, root, this.#mirror]);
    }
    this.progress(1, 3, 'configuring');
    await this.#configure(root);
    if (this.#target) {
      this.progress(2, 3, `first boot: exporting target ${this.#target}`);
      await this.#firstBoot(root);
    }
    // Unmount now (deepest first) so the file systems are clean before a qcow2 is made of them.
    const mounted = this.#disks.filter((d) => d.volume.mountpoint && d.volume.filesystem !== 'swap')
      .sort((a, b) => b.volume.mountpoint!.length - a.volume.mountpoint!.length);
    for (const d of mounted) await this.unmount(join(root, d.volume.mountpoint!));
    for (const d of this.#disks) {
      if (d.raw === d.file) continue;
      this.progress(2, 3, `converting ${d.volume.disk} to qcow2`);
      await this.run(['qemu-img', 'convert', '-n', '-f', 'raw', '-O', 'qcow2', d.raw, d.file]);
    }
    this.progress(3, 3, 'done');
  }

  /** Writes a file of the image: a link already there is replaced, never followed out of the root. */
  async #write(root: string, path: string, text: string, mode = '0644'): Promise<void> {
    await this.run(['sh', '-c', 'mkdir -p "${1%/*}" && rm -f "$1" && cat > "$1" && chmod "$2" "$1"', 'sh', join(root, path), mode], { input: text });
  }

  /** `systemctl enable` for a unit wanted by multi-user.target, done as the link it makes. */
  async #enable(root: string, unit: string): Promise<void> {
    const wants = join(root, 'etc/systemd/system/multi-user.target.wants');
    await this.run(['mkdir', '-p', wants]);
    await this.run(['ln', '-sfn', unit, join(wants, unit.slice(unit.lastIndexOf('/') + 1))]);
  }

  async #configure(root: string): Promise<void> {
    const { name, args } = this.ctx;
    const fstab = this.#disks.filter((d) => d.uuid).map((d) => d.volume.filesystem === 'swap'
      ? `UUID=${d.uuid} none swap sw 0 0`
      : d.volume.mountpoint
        ? `UUID=${d.uuid} ${d.volume.mountpoint} ${d.volume.filesystem} ${d.volume.mountpoint === '/' ? 'errors=remount-ro' : 'defaults'} 0 ${d.volume.mountpoint === '/' ? 1 : 2}`
        : undefined).filter(Boolean);
    await this.#write(root, 'etc/fstab', `# made by cairn's debootstrap builder\n${fstab.join('\n')}\n`);
    // In a container the root is already mounted as nspawn set it up: remounting it per fstab fails.
    await this.#write(root, 'etc/systemd/system/systemd-remount-fs.service.d/cairn-container.conf', '[Unit]\nConditionVirtualization=!container\n');
    await this.#write(root, 'etc/hostname', `${name}\n`);
    await this.#write(root, 'etc/hosts', `127.0.0.1\tlocalhost\n127.0.1.1\t${name}\n::1\tlocalhost ip6-localhost ip6-loopback\n`);
    await this.#write(root, 'etc/apt/sources.list', `deb ${this.#mirror} ${args.suite} main\n`);
    await this.run(['rm', '-f', join(root, 'etc/apt/sources.list.d/debian.sources')]);
    await this.#write(root, 'etc/systemd/network/80-cairn-dhcp.network', '[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n');
    await this.#enable(root, '/lib/systemd/system/systemd-networkd.service');
    // Identity of its own: an empty machine-id is filled on first boot; SSH host keys made now.
    await this.#write(root, 'etc/machine-id', '', '0444');
    await this.run(['rm', '-f', join(root, 'var/lib/dbus/machine-id')]);
    if (existsSync(join(root, 'usr/sbin/sshd'))) {
      await this.run(['sh', '-c', 'rm -f "$1"/etc/ssh/ssh_host_*', 'sh', root]);
      await this.run(['ssh-keygen', '-A', '-f', root]);
    }
    await this.run(['sh', '-c', 'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin', 'sh', root]);
  }

  async #firstBoot(root: string): Promise<void> {
    const { name, system } = this.ctx;
    // The target's facts are the image's own: its release and tools from its files, and the
    // machine it will be (name, CPUs, memory) from the profile.
    const facts = { ...localFacts(root), hostname: name, cpus: system.cpus, memory_mb: system.memory, addresses: { ipv4: [], ipv6: [] } };
    const script = await this.exportScript(this.#target, facts).catch((err: Error) => this.fail(`first boot: exporting target ${this.#target}: ${err.message}`));
    await this.#write(root, `${FIRSTBOOT_DIR.slice(1)}/firstboot.sh`, script, '0700');
    await this.#write(root, 'etc/systemd/system/cairn-firstboot.service', [
      '[Unit]',
      `Description=Cairn first boot: converge target ${this.#target} with its exported script`,
      'After=network-online.target',
      `ConditionPathExists=!${FIRSTBOOT_DIR}/firstboot.done`,
      '',
      '[Service]',
      'Type=oneshot',
      'RemainAfterExit=yes',
      `ExecStart=/bin/sh ${FIRSTBOOT_DIR}/firstboot.sh`,
      // Only after a run that converged: one that failed runs again on the next boot.
      `ExecStartPost=/bin/touch ${FIRSTBOOT_DIR}/firstboot.done`,
      '',
      '[Install]',
      'WantedBy=multi-user.target',
      '',
    ].join('\n'));
    await this.#enable(root, '/etc/systemd/system/cairn-firstboot.service');
  }
}
