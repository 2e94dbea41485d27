/**
 * `ova`: a guest imported from an OVA (OVF 1 or 2). The descriptor gives the definition (its CPUs,
 * memory, network adapters, and disks on the bus it names); each disk is converted by `qemu-img`
 * read straight out of the OVA into a volume of the output folder, as large as the profile's
 * `storage:` entry for it says (never smaller than the disk's capacity) or as its capacity.
 *
 * Arguments: `ova` (required): the OVA file, relative to the site folder; `format`: the volumes'
 * format when the profile's `storage:` does not give one per disk (qcow2 or raw; default qcow2).
 */
import { isAbsolute, join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { InputError } from '../../lib/errors.ts';
import { Builder, type BuildNetwork } from '../builder.ts';
import { domainXml } from '../definitions.ts';
import { qemuSource, readOva, type OvaContents } from '../ova.ts';

interface ImportedDisk {
  disk: string;
  file: string;
  format: 'raw' | 'qcow2';
  size: number;
  /** The OVF disk it is converted from, or none for a profile volume past the OVA's disks. */
  from?: number;
  bus?: 'scsi' | 'sata' | 'ide';
}

export default class Ova extends Builder {
  static override arguments = {
    ova: { required: true, description: 'the OVA file, relative to the site folder' },
    format: { default: 'qcow2', description: 'the volumes\' format (qcow2 or raw) where storage: gives none' },
  };

  #ova = '';
  #contents!: OvaContents;
  #disks: ImportedDisk[] = [];

  override async setup(): Promise<void> {
    const { args, siteDir, storage } = this.ctx;
    if (this.ctx.kind !== 'guest') this.invalid(`an OVA makes a VM: the profile's kind must be guest`, ['kind']);
    this.#ova = isAbsolute(args.ova!) ? args.ova! : resolve(siteDir, args.ova!);
    if (!existsSync(this.#ova)) this.invalid(`ova: ${this.#ova} does not exist`, ['args', 'ova']);
    if (args.format !== 'qcow2' && args.format !== 'raw') this.invalid(`format: ${JSON.stringify(args.format)} is neither qcow2 nor raw`, ['args', 'format']);
    await this.run(['qemu-img', '--version']).catch(() => this.fail('qemu-img is not installed here (qemu-utils)'));
    try {
      this.#contents = await readOva(this.#ova);
    } catch (err) {
      // The OVA's own position (member:line:col) says where; the profile's argument is what named it.
      if (err instanceof InputError) {
        const d = err.diagnostics[0]!;
        this.invalid(`${d.pos ? `${d.pos.file}:${d.pos.line}:${d.pos.col}: ` : ''}${d.message}`, ['args', 'ova']);
      }
      throw err;
    }
    const ovfDisks = this.#contents.descriptor.disks;
    const count = Math.max(ovfDisks.length, storage.length);
    for (let i = 0; i < count; i++) {
      const ovf = ovfDisks[i];
      const volume = storage[i];
      const disk = volume?.disk ?? `vd${String.fromCharCode(97 + i)}`;
      if (ovf && volume && volume.size < ovf.capacity) {
        this.invalid(`disk ${disk}: ${volume.size} bytes is smaller than the image it receives (${ovf.file} in the OVA, ${ovf.capacity} bytes)`, ['storage', i, 'size']);
      }
      const format = volume ? volume.format : (args.format as 'raw' | 'qcow2');
      this.#disks.push({
        disk, format, size: volume?.size ?? ovf!.capacity,
        file: join(this.ctx.outputDir, `${this.ctx.name}-${disk}.${format}`),
        ...(ovf ? { from: i, ...(ovf.bus ? { bus: ovf.bus } : {}) } : {}),
      });
    }
  }

  override async create(): Promise<string> {
    const { descriptor } = this.#contents;
    // The OVA's adapters, each joined to the profile's network of the same place when it gives
    // one, else to the libvirt network named as the OVF's.
    const nics: BuildNetwork[] = descriptor.nics.map((nic, i) => {
      const chosen = this.ctx.networks[i];
      return {
        ...(chosen?.bridge ? { bridge: chosen.bridge } : { network: chosen?.network ?? nic.network }),
        ...(chosen?.mac ?? nic.mac ? { mac: chosen?.mac ?? nic.mac } : {}),
        ...(chosen?.model ?? nic.model ? { model: chosen?.model ?? nic.model } : {}),
      };
    });
    const system = { ...this.ctx.system, cpus: descriptor.cpus, memory: Math.ceil(descriptor.memory / 2 ** 20) };
    return domainXml({ ...this.ctx, system }, {
      disks: this.#disks.map((d) => ({ file: d.file, format: d.format, ...(d.bus ? { bus: d.bus } : {}) })),
      nics,
    });
  }

  override async prepare(): Promise<void> {
    for (const d of this.#disks) {
      const path = await this.volume({ size: d.size, format: d.format, disk: d.disk, file: d.file.slice(this.ctx.outputDir.length + 1) });
      if (path !== d.file) this.fail(`the volume for ${d.disk} is ${path}, not ${d.file} as the definition says`);
    }
  }

  override async install(): Promise<void> {
    const { descriptor, members } = this.#contents;
    const total = this.#disks.filter((d) => d.from !== undefined).length;
    let done = 0;
    for (const d of this.#disks) {
      if (d.from === undefined) continue;
      const ovf = descriptor.disks[d.from]!;
      this.progress(done, total, `converting ${ovf.file}`);
      // -n: into the volume made above (its size may exceed the capacity); the source is a byte
      // range of the OVA, so nothing is extracted.
      await this.run(['qemu-img', 'convert', '-n', '-O', d.format, qemuSource(this.#ova, members.get(ovf.id)!, ovf.format), d.file]);
      done++;
    }
    this.progress(done, total, 'converted');
  }
}
