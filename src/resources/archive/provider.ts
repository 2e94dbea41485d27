import { basename, dirname } from 'node:path';
import { tempPathFor } from '../../executors/temp-names.ts';
import { outputTail, toolError } from '../commands.ts';
import { readPath } from '../posix.ts';
import { defineProvider, ApplyError, type Current, type Desired, type ProviderContext } from '../type.ts';
import { isDownload, unpackCommand, type ArchiveFormat } from './formats.ts';
import type { archiveType } from './type.ts';

type ArchiveAttributes = Desired<typeof archiveType>;

/** The file inside the folder that says which archive it holds (its sha256, how it was unpacked). */
export const MARKER = '.cairn-archive';

interface Marker {
  sha256: string;
  strip_components: number;
  format?: string;
}

/** How many times one run tries a download (each try resumes what the last one got). */
const DOWNLOAD_TRIES = 3;

/**
 * The download in progress, beside the folder. Its name carries the checksum, not the run: a
 * download cut short (a lost connection, a killed run) is resumed by the next try or run.
 */
export function partialPath(path: string, sha256: string): string {
  return `${dirname(path)}/.${basename(path)}.cairn-download.${sha256.slice(0, 16)}`;
}

function toolList(os: Record<string, unknown>, name: string, fallback: string[]): string[] {
  const tools = os.tools;
  const listed = tools && typeof tools === 'object' ? (tools as Record<string, unknown>)[name] : undefined;
  return Array.isArray(listed) && listed.length > 0 && listed.every((t) => typeof t === 'string') ? (listed as string[]) : fallback;
}

/** The OS tables' download tools, the first the target has; once per run. */
function downloader(ctx: ProviderContext): Promise<string> {
  const wanted = toolList(ctx.os, 'download', ['curl', 'wget']);
  return ctx.batch(`archive:downloader:${wanted.join(',')}`, async () => {
    const r = await ctx.exec.run(['sh', '-c', 'for t do command -v "$t" >/dev/null 2>&1 && { echo "$t"; exit 0; }; done; exit 1', 'sh', ...wanted]);
    const found = r.stdout.trim();
    if (r.code !== 0 || found === '') throw new ApplyError(`no download tool on the target: none of ${wanted.join(', ')} is installed`);
    return found;
  });
}

/** The command that downloads `url` into `file`, carrying on from what `file` already holds. */
export function downloadCommand(tool: string, url: string, file: string): string[] {
  switch (basename(tool)) {
    case 'curl': return ['curl', '-fsSL', '-C', '-', '-o', file, url];
    case 'wget': return ['wget', '-q', '-c', '-O', file, url];
    case 'fetch': return ['fetch', '-q', '-r', '-o', file, url];
    default: throw new ApplyError(`the OS tables name '${tool}' as a download tool; Cairn knows curl, wget and fetch`);
  }
}

/** The sha256 of a file on the target, by the OS tables' command (sha256sum, or FreeBSD's sha256 -q). */
async function checksum(ctx: ProviderContext, file: string): Promise<string> {
  const command = toolList(ctx.os, 'sha256', ['sha256sum']);
  const r = await ctx.exec.run([...command, file]);
  if (r.code !== 0) throw toolError(command.join(' '), r);
  const hash = r.stdout.trim().split(/\s+/)[0] ?? '';
  if (!/^[0-9a-f]{64}$/i.test(hash)) throw new ApplyError(`${command.join(' ')} ${file} printed no sha256: ${outputTail(r.stdout)}`);
  return hash.toLowerCase();
}

/**
 * Downloads `url` to `file` on the target and checks it. A download that fails is tried again,
 * resuming; one that is complete but not the archive expected is removed, and the node fails.
 */
async function download(ctx: ProviderContext, url: string, file: string, sha256: string): Promise<void> {
  // What an earlier run left may be the whole archive already.
  if (await ctx.exec.stat(file) && await checksum(ctx, file) === sha256) return;
  const tool = await downloader(ctx);
  let failure: ApplyError | undefined;
  for (let attempt = 1; attempt <= DOWNLOAD_TRIES; attempt++) {
    if (ctx.signal.aborted) throw new ApplyError('run cancelled during the download');
    ctx.progress({ done: attempt - 1, total: DOWNLOAD_TRIES, step: attempt === 1 ? `downloading ${url}` : `resuming ${url} (try ${attempt})` });
    const r = await ctx.exec.run(downloadCommand(tool, url, file), { signal: ctx.signal });
    if (r.code === 0 && !r.timedOut) {
      failure = undefined;
      break;
    }
    failure = toolError(`downloading ${url} (${tool})`, r);
    ctx.log(`download try ${attempt} of ${DOWNLOAD_TRIES} failed: ${outputTail(r.stderr || r.stdout, 1)}`);
    // What was got cannot be carried on from: the server cannot resume (curl 33), or the range is
    // past its end (416: the file is as long as the archive, or longer, and not it). Start afresh.
    if ((tool.endsWith('curl') && r.code === 33) || /\b416\b/.test(r.stderr)) await ctx.exec.remove(file);
  }
  if (failure) {
    // What was got so far stays for the next run to resume; an empty file is nothing got.
    if ((await ctx.exec.stat(file))?.size === 0) await ctx.exec.remove(file);
    throw failure;
  }
  const actual = await checksum(ctx, file);
  if (actual !== sha256) {
    await ctx.exec.remove(file);
    throw new ApplyError(`${url} has sha256 ${actual}, not the ${sha256} expected; nothing was unpacked (the download was removed)`);
  }
}

/** Moves `from` to `to` on the target (one rename: both are in the same folder). */
async function rename(ctx: ProviderContext, from: string, to: string): Promise<void> {
  const r = await ctx.exec.run(['mv', from, to]);
  if (r.code !== 0) throw toolError(`mv ${from} ${to}`, r);
}

/**
 * Unpacks into `into` dropping `strip` leading folders. unzip cannot strip: it unpacks beside,
 * then the one folder at each level to drop is stepped into.
 */
async function unpack(ctx: ProviderContext, format: ArchiveFormat, file: string, into: string, strip: number): Promise<void> {
  if (format !== 'zip' || strip === 0) {
    const argv = unpackCommand(format, file, into, strip);
    const r = await ctx.exec.run(argv);
    if (r.code !== 0) throw toolError(`unpacking (${argv[0]!})`, r);
    return;
  }
  const staging = `${into}.zip`;
  await ctx.exec.mkdir(staging);
  try {
    const r = await ctx.exec.run(unpackCommand(format, file, staging, 0));
    if (r.code !== 0) throw toolError('unpacking (unzip)', r);
    let top = staging;
    for (let level = 0; level < strip; level++) {
      const listed = await ctx.exec.run(['ls', '-A', top]);
      const names = listed.stdout.split('\n').filter((n) => n !== '');
      const only = names.length === 1 ? `${top}/${names[0]!}` : undefined;
      if (listed.code !== 0 || !only || (await ctx.exec.stat(only))?.type !== 'directory') {
        throw new ApplyError(`strip_components: ${strip}: the zip archive has not one folder at level ${level + 1} (found ${names.length} entries): a zip is stripped only folder by folder`);
      }
      top = only;
    }
    await ctx.exec.remove(into);
    await rename(ctx, top, into);
  } finally {
    await ctx.exec.remove(staging);
  }
}

async function chownTree(ctx: ProviderContext, path: string, owner: string | undefined, group: string | undefined): Promise<void> {
  if (owner === undefined && group === undefined) return;
  const spec = owner !== undefined ? `${owner}${group !== undefined ? `:${group}` : ''}` : `:${group!}`;
  const r = await ctx.exec.run(['chown', '-R', spec, path]);
  if (r.code !== 0) throw toolError(`chown -R ${spec} ${path}`, r);
}

function readMarker(data: Buffer | undefined): Marker | undefined {
  if (!data) return undefined;
  try {
    const parsed = JSON.parse(data.toString('utf8')) as Partial<Marker>;
    if (typeof parsed.sha256 === 'string' && typeof parsed.strip_components === 'number') return parsed as Marker;
  } catch {
    // Not Cairn's marker (or a damaged one): the folder holds an archive Cairn cannot vouch for.
  }
  return undefined;
}

/** Whether the folder holds the archive the node asks for, unpacked the way it asks. */
function sameArchive(desired: ArchiveAttributes, current: Current<typeof archiveType>): boolean {
  return current !== undefined && current.sha256 === desired.sha256 && current.strip_components === desired.strip_components &&
    current.format === desired.format;
}

export const archiveProvider = defineProvider<typeof archiveType>({
  type: 'archive',
  name: 'unpack',
  suitable: () => true,

  async read(ctx, desired) {
    if (typeof desired.creates === 'string' && await ctx.exec.stat(desired.creates)) {
      // Nothing is to be done while it exists: in sync, whatever the folder holds.
      return { ...desired };
    }
    const { current } = await readPath(ctx, desired, 'directory');
    if (!current || current.kind !== undefined) return current;
    const marker = readMarker(await ctx.exec.readFile(`${desired.path}/${MARKER}`));
    return {
      ...current,
      sha256: marker?.sha256 ?? 'none (no archive unpacked by Cairn)',
      strip_components: marker?.strip_components ?? 0,
      format: marker?.format,
    };
  },

  async apply(ctx, action, desired, current) {
    const path = desired.path;
    if (current?.kind !== undefined) throw new ApplyError(`${path} is a ${String(current.kind)}, not a folder; remove it first`);
    if (action === 'destroy') {
      await ctx.exec.remove(path);
      // A download left unfinished for this archive goes too.
      if (desired.sha256 !== undefined) await ctx.exec.remove(partialPath(path, desired.sha256));
      return;
    }
    if (current && sameArchive(desired, current)) {
      // Only ownership or the folder's mode differ: nothing to unpack again.
      if (current.owner !== desired.owner || current.group !== desired.group) await chownTree(ctx, path, desired.owner, desired.group);
      if (desired.mode !== undefined && current.mode !== desired.mode) await ctx.exec.chmod(path, parseInt(desired.mode, 8));
      return;
    }
    const parent = dirname(path);
    if ((await ctx.exec.stat(parent))?.type !== 'directory') {
      throw new ApplyError(`the directory ${parent} does not exist (declare it with a directory part and require it)`);
    }
    const sha256 = desired.sha256!;
    const source = desired.source!;
    const format = desired.format!;
    const file = partialPath(path, sha256);
    if (isDownload(source)) await download(ctx, source, file, sha256);
    else {
      await ctx.exec.writeFile(file, Buffer.from(desired.source_base64 ?? '', 'base64'), { mode: 0o600 });
      const actual = await checksum(ctx, file);
      if (actual !== sha256) {
        await ctx.exec.remove(file);
        throw new ApplyError(`the copy of ${source} on the target has sha256 ${actual}, not ${sha256}; nothing was unpacked`);
      }
    }

    // Unpacked beside the folder, then swapped in: a failure leaves the old folder (or none) as it was.
    const fresh = tempPathFor(path);
    try {
      ctx.progress({ done: 0, step: `unpacking into ${path}` });
      await ctx.exec.mkdir(fresh, desired.mode !== undefined ? { mode: parseInt(desired.mode, 8) } : {});
      await unpack(ctx, format, file, fresh, desired.strip_components);
      const marker: Marker = { sha256, strip_components: desired.strip_components, format };
      await ctx.exec.writeFile(`${fresh}/${MARKER}`, `${JSON.stringify(marker)}\n`, { mode: 0o644 });
      await chownTree(ctx, fresh, desired.owner, desired.group);
      if (desired.mode !== undefined) await ctx.exec.chmod(fresh, parseInt(desired.mode, 8));
      if (current) {
        const old = tempPathFor(path);
        await rename(ctx, path, old);
        await rename(ctx, fresh, path);
        await ctx.exec.remove(old);
      } else {
        await rename(ctx, fresh, path);
      }
    } finally {
      await ctx.exec.remove(fresh);
    }
    await ctx.exec.remove(file);
  },

  /** What a plan with --diff says the node would fetch and unpack. */
  diff(desired, current) {
    if (desired.ensure === 'absent') return `remove ${desired.path}\n`;
    if (current && sameArchive(desired, current)) return undefined;
    const source = desired.source ?? '';
    const get = isDownload(source) ? `download ${source} (sha256 ${desired.sha256!})` : `send site file ${source} (sha256 ${desired.sha256!})`;
    const strip = desired.strip_components > 0 ? `, dropping ${desired.strip_components} leading folder(s)` : '';
    const was = current?.sha256 !== undefined ? `, replacing the archive with sha256 ${String(current.sha256)}` : '';
    return `${get}\nunpack it (${desired.format!}) into ${desired.path}${strip}${was}\n`;
  },
});
