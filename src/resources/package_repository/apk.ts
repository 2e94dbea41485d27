/**
 * apk: a line in /etc/apk/repositories under a marker comment that names the node (and the key
 * file it installed, so removing the repository removes its key), the key in /etc/apk/keys under
 * the file name its source has: apk finds a repository's key by the name its signature carries.
 * Every other line of the list is left as it is.
 */
import { packageIndexChanged } from '../package-index.ts';
import { uses } from '../os.ts';
import { ApplyError, defineProvider } from '../type.ts';
import { aptOnlyAsDesired, refuseAptOnly } from './common.ts';
import { installKey, removeFiles } from './key.ts';
import { apkKeyPath, apkRepositoriesPath, keyFileName } from './paths.ts';
import type { packageRepositoryType } from './type.ts';

const MARKER = /^# cairn package_repository (\S+)(?: key=(\S+))?$/;

export interface ApkEntry {
  uri: string;
  enabled: boolean;
  /** The key file the marker records. */
  key?: string;
}

/** The entry a marker names in the repositories list, with the line after it. */
export function findApkEntry(text: string, name: string): ApkEntry | undefined {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = MARKER.exec(lines[i]!.trim());
    if (!m || m[1] !== name) continue;
    const next = (lines[i + 1] ?? '').trim();
    const enabled = !next.startsWith('#');
    return { uri: next.replace(/^#\s*/, ''), enabled, ...(m[2] ? { key: m[2] } : {}) };
  }
  return undefined;
}

/**
 * The list with `name`'s entry replaced by `entry` (appended when new), or removed when `entry`
 * is undefined; an unmarked line with the same URI is the same repository: it is taken over.
 */
export function withApkEntry(text: string, name: string, entry: ApkEntry | undefined): string {
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = MARKER.exec(lines[i]!.trim());
    if (m && m[1] === name) {
      i++; // its repository line goes with it
      continue;
    }
    if (entry && lines[i]!.trim() === entry.uri) continue;
    out.push(lines[i]!);
  }
  if (entry) out.push(`# cairn package_repository ${name}${entry.key ? ` key=${entry.key}` : ''}`, `${entry.enabled ? '' : '#'}${entry.uri}`);
  return out.length ? `${out.join('\n')}\n` : '';
}

export const apkRepository = defineProvider<typeof packageRepositoryType>({
  type: 'package_repository',
  name: 'apk',
  suitable: uses('package_manager', 'apk'),

  async read(ctx, desired) {
    if (desired.ensure !== 'absent') {
      refuseAptOnly(desired, 'apk');
      if (!desired.gpgcheck) throw new ApplyError('apk checks the signature of every repository it reads: gpgcheck: false cannot be written for apk');
    }
    const text = (await ctx.exec.readFile(apkRepositoriesPath(ctx.os)))?.toString('utf8') ?? '';
    const entry = findApkEntry(text, desired.name);
    if (!entry) return undefined;
    const current: Record<string, unknown> = {
      name: desired.name,
      ensure: 'present',
      uri: entry.uri,
      enabled: entry.enabled,
      gpgcheck: true,
      description: desired.description,
      ...aptOnlyAsDesired(desired),
    };
    if (desired.key !== undefined && entry.key === keyFileName(desired.key)) current.key_sha256 = await ctx.exec.sha256(apkKeyPath(ctx.os, entry.key));
    return current;
  },

  async apply(ctx, action, desired) {
    const list = apkRepositoriesPath(ctx.os);
    const before = (await ctx.exec.readFile(list))?.toString('utf8') ?? '';
    const old = findApkEntry(before, desired.name);
    const keyName = action === 'destroy' || desired.key === undefined ? undefined : keyFileName(desired.key);
    if (keyName !== undefined) await installKey(ctx, desired, apkKeyPath(ctx.os, keyName));
    const after = withApkEntry(before, desired.name, action === 'destroy' ? undefined : {
      uri: String(desired.uri), enabled: desired.enabled, ...(keyName !== undefined ? { key: keyName } : {}),
    });
    if (after !== before) await ctx.exec.writeFile(list, after);
    // A key this repository had and no longer names, unless another repository of the list names it (one signer, many repositories).
    const stillNamed = [...after.matchAll(/^# cairn package_repository \S+ key=(\S+)$/gm)].some((m) => m[1] === old?.key);
    if (old?.key !== undefined && old.key !== keyName && !stillNamed) await removeFiles(ctx, [apkKeyPath(ctx.os, old.key)]);
    packageIndexChanged(ctx.exec);
  },
});
