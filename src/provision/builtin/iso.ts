/**
 * `iso`: a guest that boots an installer ISO. The definition attaches the ISO as a cdrom (booted
 * first, then the disks), the profile's volumes as empty disks for the installer to install on,
 * and, when the profile has `user_data`, a cloud-init NoCloud seed ISO (label `cidata`) as a
 * second cdrom, which installers with cloud-init (Debian's and Ubuntu's cloud and live images,
 * autoinstall) read.
 *
 * Arguments: `iso` (required): the installer ISO, relative to the site folder.
 */
import { existsSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { Builder } from '../builder.ts';
import { domainXml, type DomainDisk } from '../definitions.ts';
import { isoTool, seedIsoCommand } from '../seed-iso.ts';

export default class Iso extends Builder {
  static override arguments = {
    iso: { required: true, description: 'the installer ISO, relative to the site folder' },
  };

  #iso = '';
  #volumes: { disk: string; file: string; format: 'raw' | 'qcow2'; size: number }[] = [];

  /** The seed ISO's file name in the output folder, when there is user data to carry. */
  get #seed(): string | undefined {
    return this.ctx.user_data === undefined ? undefined : `${this.ctx.name}-seed.iso`;
  }

  override async setup(): Promise<void> {
    const { args, siteDir, storage } = this.ctx;
    if (this.ctx.kind !== 'guest') this.invalid(`an installer ISO makes a VM: the profile's kind must be guest`, ['kind']);
    this.#iso = isAbsolute(args.iso!) ? args.iso! : resolve(siteDir, args.iso!);
    if (!existsSync(this.#iso)) this.invalid(`iso: ${this.#iso} does not exist`, ['args', 'iso']);
    if (storage.length === 0) this.invalid('an installer needs a disk to install on: give the profile a storage: entry', ['storage']);
    if (this.#seed && !isoTool()) this.fail('the seed ISO of user_data needs genisoimage or xorriso (scripts/install.sh installs them)');
    this.#volumes = storage.map((v) => ({ disk: v.disk, format: v.format, size: v.size, file: join(this.ctx.outputDir, `${this.ctx.name}-${v.disk}.${v.format}`) }));
  }

  override async create(): Promise<string> {
    const disks: DomainDisk[] = this.#volumes.map((v) => ({ file: v.file, format: v.format }));
    disks.push({ file: this.#iso, format: 'raw', device: 'cdrom' });
    if (this.#seed) disks.push({ file: join(this.ctx.outputDir, this.#seed), format: 'raw', device: 'cdrom' });
    return domainXml(this.ctx, { disks, boot: ['cdrom', 'hd'] });
  }

  override async prepare(): Promise<void> {
    for (const v of this.#volumes) {
      const path = await this.volume({ size: v.size, format: v.format, disk: v.disk, file: v.file.slice(this.ctx.outputDir.length + 1) });
      if (path !== v.file) this.fail(`the volume for ${v.disk} is ${path}, not ${v.file} as the definition says`);
    }
  }

  override async install(): Promise<void> {
    if (!this.#seed) return;
    // The output folder is read-only to the script: the seed is an output file of the build
    // (kept on success, removed on failure) that the ISO tool writes.
    const seed = await this.outputFile(this.#seed);
    await this.run(seedIsoCommand({
      userData: this.ctx.user_data!,
      instanceId: this.ctx.uuid,
      hostname: this.ctx.name,
    }, join(this.ctx.workDir, 'seed'), seed));
  }
}
