/**
 * A repository's signing key, put in place on the target: a site file's bytes (checked against
 * their sha256 when the site was compiled), or a download the target makes over its own network
 * with curl (or wget), checked against the pinned key_sha256 before anything is put in place.
 */
import { dirname } from 'node:path';
import type { Executor } from '../../executors/types.ts';
import { outputTail, toolError } from '../commands.ts';
import { ApplyError, type Desired, type ProviderContext } from '../type.ts';
import type { packageRepositoryType } from './type.ts';

export type RepositoryAttributes = Desired<typeof packageRepositoryType>;

/** What an ASCII-armoured OpenPGP key starts with (apt wants such keys named `.asc`). */
const ARMOUR = '-----BEGIN PGP PUBLIC KEY BLOCK-----';

export function isArmoured(bytes: Buffer): boolean {
  return bytes.subarray(0, 200).toString('latin1').trimStart().startsWith(ARMOUR);
}

/**
 * Whether the key will be ASCII-armoured, known before it is fetched: a site key from its bytes,
 * a URL from its name (`.gpg` and `.pgp` are binary keyrings; the check after the download holds
 * the key to it).
 */
export function keyIsArmoured(desired: RepositoryAttributes): boolean {
  if (typeof desired.key_base64 === 'string') return isArmoured(Buffer.from(desired.key_base64, 'base64'));
  return !/\.(gpg|pgp)$/i.test(new URL(String(desired.key)).pathname);
}

/** Downloads `url` into `path` on the target, with curl where there is one, else wget. */
async function download(exec: Executor, url: string, path: string, signal: AbortSignal): Promise<void> {
  const curl = await exec.run(['curl', '-fsSL', '--proto', '=http,https', '--retry', '2', '-o', path, url], { signal });
  if (curl.code === 0 && !curl.timedOut) return;
  if (curl.code !== 127) throw toolError(`curl ${url}`, curl);
  const wget = await exec.run(['wget', '-q', '-O', path, url], { signal });
  if (wget.code === 0 && !wget.timedOut) return;
  if (wget.code === 127) throw new ApplyError(`downloading the key ${url} needs curl or wget on the target, and it has neither`);
  throw toolError(`wget ${url}`, wget);
}

/** The key's bytes: the site's, or downloaded by the target and checked against key_sha256. */
async function keyBytes(ctx: ProviderContext, desired: RepositoryAttributes): Promise<Buffer> {
  if (typeof desired.key_base64 === 'string') return Buffer.from(desired.key_base64, 'base64');
  const url = String(desired.key);
  const made = await ctx.exec.run(['mktemp', '-d']);
  const dir = made.stdout.trim();
  if (made.code !== 0 || !dir.startsWith('/')) throw new ApplyError(`mktemp -d failed on the target: ${outputTail(made.stderr || made.stdout)}`);
  try {
    const temp = `${dir}/key`;
    ctx.log(`downloading ${url}`);
    await download(ctx.exec, url, temp, ctx.signal);
    const got = await ctx.exec.sha256(temp);
    if (got !== desired.key_sha256) {
      throw new ApplyError(`the key downloaded from ${url} has sha256 ${got ?? '(nothing)'}, not the key_sha256 ${String(desired.key_sha256)}: nothing was put in place`);
    }
    const bytes = await ctx.exec.readFile(temp);
    if (!bytes) throw new ApplyError(`the key downloaded from ${url} could not be read back from ${temp}`);
    return bytes;
  } finally {
    await ctx.exec.remove(dir);
  }
}

/**
 * Puts the key at `path` (atomically, 0644: the package manager may read it as another user)
 * unless it is there already. `armoured`: whether the file's name says ASCII armour.
 */
export async function installKey(ctx: ProviderContext, desired: RepositoryAttributes, path: string, armoured?: boolean): Promise<void> {
  if ((await ctx.exec.sha256(path)) === desired.key_sha256) return;
  const bytes = await keyBytes(ctx, desired);
  if (armoured !== undefined && isArmoured(bytes) !== armoured) {
    throw new ApplyError(`the key ${String(desired.key)} is ${isArmoured(bytes) ? 'ASCII-armoured' : 'binary'}, but its name says ${armoured ? 'armoured (.asc)' : 'binary (.gpg)'}: ` +
      `a binary key's URL ends in .gpg, an armoured key's does not; nothing was put in place`);
  }
  if (!(await ctx.exec.stat(dirname(path)))) await ctx.exec.mkdir(dirname(path), { parents: true, mode: 0o755 });
  await ctx.exec.writeFile(path, bytes, { mode: 0o644 });
}

/** Removes what is at `paths` (keys of a repository that goes), saying which went. */
export async function removeFiles(ctx: ProviderContext, paths: string[]): Promise<void> {
  for (const path of paths) {
    if (await ctx.exec.stat(path)) await ctx.exec.remove(path);
  }
}
