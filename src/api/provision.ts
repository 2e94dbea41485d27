/**
 * The builder of guest, container and jail images (DESIGN §10), as a builder script sees it:
 *
 *   import { Builder } from 'cairn';
 *   export default class Mine extends Builder {
 *     static arguments = { release: { default: 'bookworm' }, mirror: { required: true } };
 *     async setup()   { … }   // check tools and arguments
 *     async create()  { return '<domain>…</domain>'; }   // the definition
 *     async prepare() { … }   // volumes, partitions, file systems, mounts
 *     async install() { … }   // put the OS in place
 *     async cleanup() { … }   // what is left to tidy
 *   }
 *
 * A build runs in a child process whose `/` is read-only: only `ctx.workDir`, a fresh `/tmp`, and
 * the volumes and root folders the build asks for are writable. Everything needing privileges
 * (mount, loop, volume, rootfs, outputFile) is a request to the parent process (`BuildHost`), which carries it
 * out and pushes it on the build's undo stack: a failed or interrupted build leaves nothing behind.
 * This class lives in api/ so that site builder scripts import it from 'cairn'; the machinery
 * behind `BuildHost` is in provision/.
 */

/** The resolved `system:` of the profile. */
export interface BuildSystem {
  cpus: number;
  /** MiB. */
  memory: number;
  /** A serial console (libvirt `<serial>`). */
  serial: boolean;
  /** A graphical console (VNC). */
  console: boolean;
}

/** One entry of the profile's `networks:`, in order. */
export interface BuildNetwork {
  /** The host bridge the interface joins. */
  bridge?: string;
  /** A libvirt network name, instead of a bridge. */
  network?: string;
  mac?: string;
  /** NIC model (virtio, e1000, …). */
  model?: string;
}

/** One entry of the profile's `storage:`, in disk order. */
export interface BuildVolume {
  /** Disk name in order: vda, vdb, … */
  disk: string;
  /** Bytes. */
  size: number;
  format: 'raw' | 'qcow2';
  /** A file system to make on it (ext4, xfs, vfat, swap), if any. */
  filesystem?: string;
  /** Where the file system goes in the guest (`/`, `/boot`). */
  mountpoint?: string;
  /** An image (path or URL) the disk starts as a copy of, instead of empty. */
  source?: string;
}

/** `this.ctx`: everything a build knows about what it builds. */
export interface BuildContext {
  /** The guest's or container's name. */
  name: string;
  /** The number at the end of the name (`web3` → 3), 0 when there is none. */
  id: number;
  /** New for every build. */
  uuid: string;
  /** The profile's name (`profiles/<profile>.yaml`). */
  profile: string;
  kind: 'guest' | 'container';
  system: BuildSystem;
  networks: BuildNetwork[];
  storage: BuildVolume[];
  user_data?: string;
  /** The profile's `args:`, overridden by `--arg k=v`, with the script's declared defaults. */
  args: Record<string, string>;
  /** This build's scratch folder (writable; removed after the build). */
  workDir: string;
  /** Where the build's results go (volumes, root folder, definition). */
  outputDir: string;
  /** The site folder, absolute. */
  siteDir: string;
}

/** An argument a builder script declares (`static arguments = { name: {…} }`). */
export interface ArgumentSpec {
  required?: boolean;
  default?: string;
  description?: string;
}

export interface RunOptions {
  cwd?: string;
  /** Added to the environment. */
  env?: Record<string, string>;
  /** Written to the command's standard input. */
  input?: string;
}

export interface RunOutput {
  stdout: string;
  stderr: string;
}

export interface MountOptions {
  /** File system type (`-t`): proc, sysfs, tmpfs, ext4, … */
  type?: string;
  /** `-o` options. */
  options?: string[];
  /** A bind mount of `source` (a folder or file); with `recursive`, its submounts too. */
  bind?: boolean;
  recursive?: boolean;
}

export interface LoopDevice {
  /** /dev/loopN */
  device: string;
  /** Its partitions in table order (/dev/loopNp1, …), added with partx: empty for an unpartitioned image. */
  partitions: string[];
}

export interface VolumeSpec {
  /** Bytes. */
  size: number;
  format: 'raw' | 'qcow2';
  /** File name in the output folder; default `<name>-<disk>.<format>`. */
  file?: string;
  /** Disk name for the default file name; default vda, vdb, … in call order. */
  disk?: string;
}

/** The parent's side as a builder sees it: privileged requests and reporting. */
export interface BuildHost {
  run(argv: string[], options?: RunOptions): Promise<RunOutput>;
  mount(source: string, target: string, options?: MountOptions): Promise<void>;
  unmount(target: string): Promise<void>;
  loop(image: string): Promise<LoopDevice>;
  detach(device: string): Promise<void>;
  volume(spec: VolumeSpec): Promise<string>;
  rootfs(): Promise<string>;
  outputFile(file: string): Promise<string>;
  keepInCache(from: string, cache: string, entry: string): Promise<string>;
  /**
   * The script `cairn export --format sh` writes for the site's target `target` (DESIGN §11),
   * compiled with `facts` instead of facts gathered from the target. Absent where the build was
   * started without a site exporter (export/ ranks above provision/: the CLI hands it in).
   */
  exportScript?(target: string, facts: Record<string, unknown>): Promise<string>;
  log(message: string): void;
  progress(done: number, total: number | undefined, what?: string): void;
  signal: AbortSignal;
}

/** A build stopped by its script: `fail(msg)`. The build fails (exit 1) and is undone. */
export class BuildFailure extends Error {
  override name = 'BuildFailure';
}

/**
 * Input the script refuses (`invalid(msg, path)`): exit 2, pointing at `path` in the profile
 * (`['storage', 0, 'size']`), or at the profile itself.
 */
export class BuildInputError extends Error {
  override name = 'BuildInputError';
  constructor(message: string, readonly path: (string | number)[] = []) {
    super(message);
  }
}

/**
 * A builder script's base class. Every step is optional and runs in this order: setup, create,
 * prepare, install, cleanup. `create()` returns the definition (libvirt domain XML for a guest,
 * `.nspawn` settings for a container), which the build writes to the output folder.
 */
export abstract class Builder {
  /** The arguments the script takes; `--arg` and the profile's `args:` are checked against them. */
  static arguments?: Record<string, ArgumentSpec>;

  readonly ctx: BuildContext;
  readonly #host: BuildHost;
  readonly #chrootReady = new Set<string>();

  constructor(ctx: BuildContext, host: BuildHost) {
    this.ctx = ctx;
    this.#host = host;
  }

  setup?(): Promise<void>;
  create?(): Promise<string | undefined>;
  prepare?(): Promise<void>;
  install?(): Promise<void>;
  cleanup?(): Promise<void>;

  /** Aborted when the build is being stopped (a signal, another step failing). */
  get signal(): AbortSignal {
    return this.#host.signal;
  }

  /** Runs a command (argument array, no shell) in the build's namespace; throws on a non-zero exit. */
  run(argv: string[], options?: RunOptions): Promise<RunOutput> {
    return this.#host.run(argv, options);
  }

  /**
   * Runs a command chrooted into `dir` (a root file system the build made), with /proc, /sys and
   * /dev mounted in it first (once; unmounted by the undo stack).
   */
  async chroot(dir: string, argv: string[], options?: RunOptions): Promise<RunOutput> {
    if (!this.#chrootReady.has(dir)) {
      await this.mount('proc', `${dir}/proc`, { type: 'proc' });
      await this.mount('sysfs', `${dir}/sys`, { type: 'sysfs' });
      await this.mount('/dev', `${dir}/dev`, { bind: true, recursive: true });
      this.#chrootReady.add(dir);
    }
    return this.run(['chroot', dir, ...argv], options);
  }

  /** Mounts `source` on `target` (made if missing) in the build's namespace; undone in reverse. */
  mount(source: string, target: string, options?: MountOptions): Promise<void> {
    return this.#host.mount(source, target, options);
  }

  /** Unmounts `target` (and what is mounted below it) now, before the undo stack would. */
  async unmount(target: string): Promise<void> {
    for (const dir of this.#chrootReady) if (dir === target || dir.startsWith(`${target}/`)) this.#chrootReady.delete(dir);
    await this.#host.unmount(target);
  }

  /** Attaches `image` to a loop device and adds its partitions (partx); detached by the undo stack. */
  loop(image: string): Promise<LoopDevice> {
    return this.#host.loop(image);
  }

  /** Detaches a loop device `loop()` gave, before the undo stack would. */
  detach(device: string): Promise<void> {
    return this.#host.detach(device);
  }

  /**
   * Makes a disk image in the output folder (`qemu-img create`), writable by the build; its path.
   * Kept when the build succeeds, deleted when it fails.
   */
  volume(spec: VolumeSpec): Promise<string> {
    return this.#host.volume(spec);
  }

  /** A container's root folder in the output folder, writable by the build; kept on success. */
  rootfs(): Promise<string> {
    return this.#host.rootfs();
  }

  /**
   * An empty file `file` in the output folder, writable by the build (a seed ISO, a kernel for
   * direct boot); its path. Kept when the build succeeds, deleted when it fails.
   */
  outputFile(file: string): Promise<string> {
    return this.#host.outputFile(file);
  }

  /**
   * Copies the folder `from` (in the work folder) into the cache folder `cache` as `entry`, for
   * later builds of the same recipe (a kernel and its initrd): written aside and renamed, so a
   * reader sees a whole entry or none, and kept whatever becomes of this build. An entry that is
   * there already (another build stored it first) is left as it is. Its path.
   */
  keepInCache(from: string, cache: string, entry: string): Promise<string> {
    return this.#host.keepInCache(from, cache, entry);
  }

  /**
   * The exported script (DESIGN §11) of the site's target `target`, compiled with `facts` (an
   * image's own, as `localFacts(root)` reads them): what a first-boot unit runs.
   */
  async exportScript(target: string, facts: Record<string, unknown>): Promise<string> {
    if (!this.#host.exportScript) this.fail(`cannot export target ${target}'s script: this build was started without the site's exporter`);
    return this.#host.exportScript(target, facts);
  }

  log(message: string): void {
    this.#host.log(message);
  }

  progress(done: number, total?: number, what?: string): void {
    this.#host.progress(done, total, what);
  }

  /** Stops the build with `message`: it fails and everything it made is undone. */
  fail(message: string): never {
    throw new BuildFailure(message);
  }

  /** Refuses the build's input (exit 2), pointing at `path` in the profile. */
  invalid(message: string, path: (string | number)[] = []): never {
    throw new BuildInputError(message, path);
  }
}
