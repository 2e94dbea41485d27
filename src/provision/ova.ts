/**
 * An OVA is a tar (ustar, possibly with pax or GNU long-name headers) whose first member is the
 * OVF descriptor. It is read in place: the members' offsets are found from the headers, the
 * descriptor and manifest are read from there, and each disk is handed to `qemu-img` as a byte
 * range of the OVA (its `raw` driver with `offset` and `size`), so nothing is extracted to disk
 * but the converted image itself.
 */
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, readSync, fstatSync } from 'node:fs';
import { basename } from 'node:path';
import { inputError } from '../lib/errors.ts';
import { parseOvf, type OvfDescription, type OvfDisk } from './ovf.ts';

export interface TarMember {
  name: string;
  /** Where the member's data starts in the archive. */
  offset: number;
  size: number;
}

const BLOCK = 512;

function octal(field: Buffer, what: string, archive: string, at: number): number {
  // Base-256 (GNU, star) for sizes past 8 GiB: the high bit of the first byte is set.
  if (field[0]! & 0x80) {
    let n = field[0]! & 0x7f;
    for (let k = 1; k < field.length; k++) n = n * 256 + field[k]!;
    return n;
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]*$/.test(text)) throw inputError(`${archive}: the tar header at byte ${at} has a malformed ${what} field ${JSON.stringify(text)}: not an OVA (a tar archive)`);
  return text === '' ? 0 : parseInt(text, 8);
}

function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString('utf8');
}

/** Pax extended header records ("len key=value\n"), as far as a member's path and size go. */
function paxRecords(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    const space = data.indexOf(0x20, i);
    if (space < 0) break;
    const len = Number(data.subarray(i, space).toString('latin1'));
    if (!Number.isInteger(len) || len <= 0) break;
    const record = data.subarray(space + 1, i + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    i += len;
  }
  return out;
}

/** The regular files of a tar archive, in archive order, with their data offsets. */
export function tarMembers(archive: string): TarMember[] {
  const fd = openSync(archive, 'r');
  try {
    const total = fstatSync(fd).size;
    const header = Buffer.alloc(BLOCK);
    const members: TarMember[] = [];
    let at = 0;
    let longName: string | undefined;
    let pax = new Map<string, string>();
    while (at + BLOCK <= total) {
      if (readSync(fd, header, 0, BLOCK, at) !== BLOCK) break;
      if (header.every((b) => b === 0)) break; // the end-of-archive blocks
      const sum = octal(header.subarray(148, 156), 'checksum', archive, at);
      let computed = 0;
      for (let k = 0; k < BLOCK; k++) computed += k >= 148 && k < 156 ? 0x20 : header[k]!;
      if (sum !== computed) throw inputError(`${archive}: the tar header at byte ${at} has a bad checksum: not an OVA (a tar archive), or a damaged one`);
      const type = String.fromCharCode(header[156]!);
      let size = octal(header.subarray(124, 136), 'size', archive, at);
      const dataAt = at + BLOCK;
      if (dataAt + size > total) throw inputError(`${archive}: the member at byte ${at} runs past the end of the file (truncated OVA)`);
      const readData = () => {
        const data = Buffer.alloc(size);
        readSync(fd, data, 0, size, dataAt);
        return data;
      };
      if (type === 'x') {
        pax = paxRecords(readData());
      } else if (type === 'L') {
        longName = cString(readData());
      } else if (type === 'g') {
        // global pax header: nothing in it matters here
      } else {
        const magic = header.subarray(257, 263).toString('latin1');
        const prefix = magic.startsWith('ustar') ? cString(header.subarray(345, 500)) : '';
        let name = pax.get('path') ?? longName ?? (prefix ? `${prefix}/${cString(header.subarray(0, 100))}` : cString(header.subarray(0, 100)));
        if (pax.has('size')) size = Number(pax.get('size'));
        name = name.replace(/^\.\//, '');
        if (type === '0' || type === '\0' || type === '7') members.push({ name, offset: dataAt, size });
        longName = undefined;
        pax = new Map();
      }
      at = dataAt + Math.ceil(size / BLOCK) * BLOCK;
    }
    return members;
  } finally {
    closeSync(fd);
  }
}

export function readMember(archive: string, member: TarMember): Buffer {
  const fd = openSync(archive, 'r');
  try {
    const data = Buffer.alloc(member.size);
    readSync(fd, data, 0, member.size, member.offset);
    return data;
  } finally {
    closeSync(fd);
  }
}

async function digestOf(archive: string, member: TarMember, algorithm: string): Promise<string> {
  const hash = createHash(algorithm);
  if (member.size === 0) return hash.digest('hex');
  for await (const chunk of createReadStream(archive, { start: member.offset, end: member.offset + member.size - 1 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * A `qemu-img` source (a `json:` pseudo-file name) that reads `member` straight out of the OVA:
 * the raw protocol driver limited to the member's byte range, under the disk's format driver.
 */
export function qemuSource(archive: string, member: TarMember, format: OvfDisk['format']): string {
  return `json:${JSON.stringify({ driver: format, file: { driver: 'raw', offset: member.offset, size: member.size, file: { driver: 'file', filename: archive } } })}`;
}

export interface OvaContents {
  descriptor: OvfDescription;
  /** The OVA member each disk's data is in, by disk id. */
  members: Map<string, TarMember>;
}

/**
 * Reads an OVA's descriptor and checks its manifest (`.mf`, SHA1 or SHA256 lines) when it has
 * one, against the members' contents read in place.
 */
export async function readOva(archive: string): Promise<OvaContents> {
  const all = tarMembers(archive);
  const name = basename(archive);
  const ovf = all.find((m) => m.name.endsWith('.ovf'));
  if (!ovf) throw inputError(`${archive}: no .ovf descriptor in the archive (members: ${all.map((m) => m.name).join(', ') || 'none'})`);
  const descriptor = parseOvf(readMember(archive, ovf).toString('utf8'), `${name}:${ovf.name}`);
  const byName = new Map(all.map((m) => [m.name, m]));
  const members = new Map<string, TarMember>();
  for (const disk of descriptor.disks) {
    const m = byName.get(disk.file);
    if (!m) throw inputError(`disk ${disk.id}'s file ${disk.file} is not in the OVA`, disk.pos);
    if (disk.fileSize !== undefined && disk.fileSize !== m.size) {
      throw inputError(`disk ${disk.id}'s file ${disk.file} is ${m.size} bytes in the OVA, the descriptor says ${disk.fileSize}`, disk.pos);
    }
    members.set(disk.id, m);
  }
  const manifest = all.find((m) => m.name.endsWith('.mf'));
  if (manifest) {
    const lines = readMember(archive, manifest).toString('utf8').split(/\r?\n/);
    for (const [index, line] of lines.entries()) {
      if (line.trim() === '') continue;
      const pos = { file: `${name}:${manifest.name}`, line: index + 1, col: 1 };
      const m = /^(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)\s*$/.exec(line);
      if (!m) throw inputError(`not a manifest line (ALGORITHM(file)= digest): ${JSON.stringify(line)}`, pos);
      const member = byName.get(m[2]!);
      if (!member) throw inputError(`${m[2]} is not in the OVA`, pos);
      const actual = await digestOf(archive, member, m[1]!.toLowerCase());
      if (actual !== m[3]!.toLowerCase()) throw inputError(`the ${m[1]} digest of ${m[2]} does not match (the OVA is damaged or was changed)`, pos);
    }
  }
  return { descriptor, members };
}
