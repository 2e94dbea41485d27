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
 * With `kind: container` the image boots as a container (`systemd-nspawn -i`, or loop-mounted
 * with `-D`) and the definition is `.nspawn` settings. With `kind: guest` it also gets a kernel
 * (the `kernel` package, default linux-image-amd64, with udev) and an initramfs, and boots as a
 * VM by **direct kernel boot**: the kernel and initrd are copied to the output folder and the
 * libvirt domain names them (`<kernel>`, `<initrd>`, `<cmdline>` with the root partition and
 * `console=ttyS0`); no boot loader is installed (grub-install needs device-mapper or
 * partition-aware loop devices, which this machine kind lacks; lab-guests B1a). The serial console
 * is a pty whose output is also logged to `NAME-console.log` in the output folder.
 *
 * The kernel is installed fast: no daemon starts (policy-rc.d), `update-initramfs` is diverted to
 * a no-op while the packages install (the kernel's postinst and the initramfs-tools trigger would
 * each make one), then the initramfs is made once, with `MODULES=list` (the virtio and file
 * system drivers: `MODULES=dep` would read the build host's devices from inside a chroot). With
 * `cache`, the kernel's packages and the initrd are kept by recipe in `kernel-<key>` (the key: the
 * suite, mirror, package list, initramfs modules and the exact package files apt chose), so a
 * later build of the same recipe installs the same packages without downloading them and copies
 * the initrd instead of making it.
 *
 * Arguments: `suite` (bookworm), `mirror` (the host's configured Debian mirror), `variant`
 * (minbase), `include` (packages added to the variant's, comma-separated), `target` (a site target
 * whose exported script runs on first boot), `cache` (a folder of debootstrapped roots kept by
 * recipe, laid out as the test lab keeps its golden root: `root-<key>/fs`, the key made from the
 * suite, variant and the whole include list; when this recipe's root is there it is copied
 * instead of running debootstrap; guests' kernels are kept there too), and for guests `kernel`,
 * `modules` (the initramfs's) and `cmdline` (added to the kernel command line).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { localFacts } from '../../executors/local-facts.ts';
import { Builder, type BuildVolume } from '../builder.ts';
import { domainXml, nspawnSettings } from '../definitions.ts';

/** The packages every image gets besides the variant's: an init, and the pieces it boots with. */
const BASE_INCLUDE = ['systemd', 'systemd-sysv', 'dbus'];

/** What each file system's partition is, in sfdisk's MBR type codes. */
const PARTITION_TYPE: Record<string, string> = { swap: '82', vfat: 'c' };

const FIRSTBOOT_DIR = '/var/lib/cairn';

/** What a guest gets besides the kernel package: udev, which systemd needs to see devices in a VM. */
const GUEST_PACKAGES = ['udev'];

/** The drivers a guest's initramfs needs to find and mount its root on a virtio disk. */
const GUEST_MODULES = 'virtio_pci,virtio_blk,virtio_scsi,ext4,crc32c_generic';

/** The kernel's cache entry: versioned, so a change of its layout never reads an older one. */
const KERNEL_RECIPE = 'kernel-v1';

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
    cache: { default: '', description: "a folder of debootstrapped roots by recipe (root-<key>/fs), and of guests' kernels (kernel-<key>)" },
    kernel: { default: 'linux-image-amd64', description: 'guests: the kernel package' },
    modules: { default: GUEST_MODULES, description: "guests: the initramfs's drivers, comma-separated (the file systems' are added)" },
    cmdline: { default: '', description: 'guests: more kernel command line (after root= ro console=ttyS0)' },
  };

  #disks: Disk[] = [];
  #mirror = '';
  #include = '';
  #cached?: string;
  #target = '';
  #cache = '';
  #modules: string[] = [];
  #rootDisk = '';

  get #guest(): boolean {
    return this.ctx.kind === 'guest';
  }

  override async setup(): Promise<void> {
    const { args, storage } = this.ctx;
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

    if (this.#guest) {
      if (!/^[a-z0-9][a-z0-9+.-]*$/.test(args.kernel!)) this.invalid(`kernel: ${JSON.stringify(args.kernel)} is not a package name`, ['args', 'kernel']);
      const modules = args.modules!.split(',').map((m) => m.trim()).filter(Boolean);
      const badModule = modules.find((m) => !/^[A-Za-z0-9_-]+$/.test(m));
      if (badModule !== undefined) this.invalid(`modules: ${JSON.stringify(badModule)} is not a kernel module name`, ['args', 'modules']);
      const filesystems = storage.map((v) => v.filesystem).filter((f): f is string => !!f && f !== 'swap');
      this.#modules = [...new Set([...modules, ...filesystems])];
      // apt installs the kernel from inside the image, where a file:// mirror of the host is not.
      if (this.#mirror.startsWith('file://')) this.invalid(`mirror ${JSON.stringify(this.#mirror)}: a guest's kernel is installed by apt inside the image, which cannot see the host's files: give an http(s):// mirror`, ['args', 'mirror']);
      if (/[\n'"<>&]/.test(args.cmdline!)) this.invalid('cmdline: the kernel command line cannot hold quotes, newlines or <>&', ['args', 'cmdline']);
      // Disks are attached in storage order on virtio (vda, vdb, …), the root on its first partition.
      this.#rootDisk = `vd${String.fromCharCode(97 + rootIndex)}`;
      if (storage[rootIndex]!.disk !== this.#rootDisk) this.invalid(`the root volume is disk ${storage[rootIndex]!.disk}, but a guest's disks are attached as vda, vdb, … in order`, ['storage', rootIndex]);
    }

    if (args.cache) {
      const cache = isAbsolute(args.cache) ? args.cache : resolve(this.ctx.siteDir, args.cache);
      this.#cache = cache;
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
    if (!this.#guest) return nspawnSettings(this.ctx);
    const { name, outputDir, args } = this.ctx;
    return domainXml({ ...this.ctx, system: { ...this.ctx.system, serial: true } }, {
      disks: this.#disks.map((d) => ({ file: d.file, format: d.volume.format })),
      kernel: {
        kernel: join(outputDir, `${name}-vmlinuz`),
        initrd: join(outputDir, `${name}-initrd.img`),
        cmdline: [`root=/dev/${this.#rootDisk}1`, 'ro', 'console=ttyS0', ...(args.cmdline ? [args.cmdline] : [])].join(' '),
      },
      serialLog: join(outputDir, `${name}-console.log`),
    });
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
    if (this.#guest) await this.#kernel(root);
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
      // On the console too (a VM's serial console, a container's): what the first boot did.
      'StandardOutput=journal+console',
      'StandardError=journal+console',
      `ExecStart=/bin/sh ${FIRSTBOOT_DIR}/firstboot.sh`,
      // Only after a run that converged: one that failed runs again on the next boot.
      `ExecStartPost=/bin/touch ${FIRSTBOOT_DIR}/firstboot.done`,
      `ExecStartPost=/bin/echo cairn-firstboot: target ${this.#target} converged`,
      '',
      '[Install]',
      'WantedBy=multi-user.target',
      '',
    ].join('\n'));
    await this.#enable(root, '/etc/systemd/system/cairn-firstboot.service');
  }

  /**
   * A guest's kernel and initramfs, installed with the initramfs made once (or copied from the
   * cache), and copied to the output folder for direct kernel boot.
   */
  async #kernel(root: string): Promise<void> {
    const { name, args } = this.ctx;
    const packages = [args.kernel!, ...GUEST_PACKAGES];
    const env = { DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' };
    const apt = ['apt-get', '-q', '-y', '-o', 'Dpkg::Options::=--force-confold', '-o', 'Dpkg::Options::=--force-confdef', '--no-install-recommends'];
    this.progress(1, 3, `installing ${packages.join(', ')}`);

    // No daemon may start in the image while it is built.
    await this.#write(root, 'usr/sbin/policy-rc.d', '#!/bin/sh\nexit 101\n', '0755');
    // apt in the image resolves the mirror with the host's resolver; the image's own file comes back after.
    const resolv = join(root, 'etc/resolv.conf');
    await this.run(['sh', '-c', 'if [ -e "$1" ] || [ -L "$1" ]; then mv "$1" "$1.cairn-saved"; fi; cp /etc/resolv.conf "$1"', 'sh', resolv]);
    // The kernel's postinst and the initramfs-tools trigger would each make an initramfs (minutes
    // each under TCG-less load): update-initramfs is a no-op until the packages are in.
    await this.chroot(root, ['dpkg-divert', '--local', '--rename', '--divert', '/usr/sbin/update-initramfs.cairn', '--add', '/usr/sbin/update-initramfs']);
    await this.#write(root, 'usr/sbin/update-initramfs', '#!/bin/sh\n# cairn: the initramfs is made once, after the install\nexit 0\n', '0755');

    await this.chroot(root, ['apt-get', '-q', 'update'], { env });
    // The exact package files apt would fetch: what the cached entry must have been made from.
    const uris = (await this.chroot(root, [...apt, '--print-uris', 'install', ...packages], { env })).stdout;
    const files = [...uris.matchAll(/^'[^']+' (\S+\.deb) \d+ (\S+)/gm)].map((m) => `${m[1]} ${m[2]}`).sort();
    const recipe = [KERNEL_RECIPE, args.suite, this.#mirror, packages.join(','), this.#modules.join(','), ...files].join('\n');
    const key = createHash('sha256').update(recipe).digest('hex').slice(0, 12);
    const entry = this.#cache ? join(this.#cache, `kernel-${key}`) : undefined;
    const cached = entry && existsSync(join(entry, 'initrd.img')) ? entry : undefined;
    const archives = join(root, 'var/cache/apt/archives');
    if (cached) {
      this.log(`kernel from the cache: ${cached}`);
      await this.run(['sh', '-c', 'cp "$1"/debs/*.deb "$2"/', 'sh', cached, archives]);
    } else if (entry) {
      this.log(`no cached kernel for this recipe at ${entry}: installed from ${this.#mirror}, then kept there`);
    }
    await this.chroot(root, [...apt, 'install', ...packages], { env });

    await this.run(['rm', '-f', join(root, 'usr/sbin/update-initramfs')]);
    await this.chroot(root, ['dpkg-divert', '--local', '--rename', '--remove', '/usr/sbin/update-initramfs']);
    const kernels = readdirSync(join(root, 'boot')).filter((f) => f.startsWith('vmlinuz-'));
    if (kernels.length !== 1) this.fail(`expected one kernel in the image's /boot after installing ${args.kernel}, found ${kernels.join(', ') || 'none'}`);
    const version = kernels[0]!.slice('vmlinuz-'.length);
    // A driver list, not MODULES=dep: in a chroot "dep" would look at the build host's devices.
    await this.#write(root, 'etc/initramfs-tools/conf.d/cairn-guest', '# made by cairn: the drivers are listed in ../modules\nMODULES=list\n');
    const listed = readFileSync(join(root, 'etc/initramfs-tools/modules'), 'utf8');
    await this.#write(root, 'etc/initramfs-tools/modules', `${listed.trimEnd()}\n# added by cairn: a virtio guest's root\n${this.#modules.join('\n')}\n`);
    const initrd = join(root, 'boot', `initrd.img-${version}`);
    if (cached) {
      await this.run(['cp', join(cached, 'initrd.img'), initrd]);
    } else {
      this.progress(1, 3, `making the initramfs for ${version}`);
      await this.chroot(root, ['update-initramfs', '-c', '-k', version], { env });
    }

    const kernelOut = await this.outputFile(`${name}-vmlinuz`);
    const initrdOut = await this.outputFile(`${name}-initrd.img`);
    await this.run(['cp', join(root, 'boot', `vmlinuz-${version}`), kernelOut]);
    await this.run(['cp', initrd, initrdOut]);
    // Made by qemu as the guest runs; an output file now, so a failed build removes it.
    await this.outputFile(`${name}-console.log`);

    if (entry && !cached) {
      const stage = join(this.ctx.workDir, `kernel-${key}`);
      await this.run(['mkdir', '-p', join(stage, 'debs')]);
      await this.run(['sh', '-c', 'cp "$1"/*.deb "$2"/debs/', 'sh', archives, stage]);
      await this.run(['cp', join(root, 'boot', `vmlinuz-${version}`), join(stage, 'vmlinuz')]);
      await this.run(['cp', initrd, join(stage, 'initrd.img')]);
      await this.#write(stage, 'recipe', `${recipe}\n`);
      await this.keepInCache(stage, this.#cache, `kernel-${key}`);
      await this.run(['rm', '-rf', stage]);
    }

    await this.run(['rm', '-f', join(root, 'usr/sbin/policy-rc.d'), resolv]);
    await this.run(['sh', '-c', 'if [ -e "$1.cairn-saved" ] || [ -L "$1.cairn-saved" ]; then mv "$1.cairn-saved" "$1"; fi', 'sh', resolv]);
    await this.run(['sh', '-c', 'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin', 'sh', root]);
  }
}
