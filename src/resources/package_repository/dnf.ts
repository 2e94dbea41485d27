/**
 * dnf and yum: one `/etc/yum.repos.d/<name>.repo`, section `[<name>]`, its gpgkey a file Cairn
 * keeps in /etc/pki/rpm-gpg. dnf loads a new repository's metadata by itself (its cache is per
 * repository and URL), so nothing is refreshed here; rpm imports the key at the first install.
 */
import { packageIndexChanged } from '../package-index.ts';
import { uses } from '../os.ts';
import { defineProvider } from '../type.ts';
import { aptOnlyAsDesired, refuseAptOnly } from './common.ts';
import { installKey, removeFiles, type RepositoryAttributes } from './key.ts';
import { rpmKeyPath, yumRepoPath } from './paths.ts';
import type { packageRepositoryType } from './type.ts';

/** The `key=value` lines of one `[section]` of an INI file such as a .repo. */
export function parseIniSection(text: string, section: string): Map<string, string> | undefined {
  let inside = false;
  let found: Map<string, string> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[(.*)\]$/.exec(line);
    if (head) {
      inside = head[1]!.trim() === section;
      if (inside) found ??= new Map();
      continue;
    }
    const m = /^([^=]+?)\s*=\s*(.*)$/.exec(line);
    if (inside && m) found!.set(m[1]!.toLowerCase(), m[2]!);
  }
  return found;
}

export function renderRepo(desired: RepositoryAttributes, keyPath: string | undefined): string {
  return [
    `# Written by Cairn (package_repository ${desired.name}); changes made here are overwritten.`,
    `[${desired.name}]`,
    `name=${desired.description ?? desired.name}`,
    `baseurl=${String(desired.uri)}`,
    `enabled=${desired.enabled ? 1 : 0}`,
    `gpgcheck=${desired.gpgcheck ? 1 : 0}`,
    ...(keyPath !== undefined ? [`gpgkey=file://${keyPath}`] : []),
    '',
  ].join('\n');
}

const truthy = (v: string | undefined, fallback: boolean) => (v === undefined ? fallback : /^(1|yes|true|on)$/i.test(v.trim()));

export const yumRepository = defineProvider<typeof packageRepositoryType>({
  type: 'package_repository',
  name: 'dnf',
  suitable: uses('package_manager', 'dnf', 'yum'),

  async read(ctx, desired) {
    if (desired.ensure !== 'absent') refuseAptOnly(desired, String(ctx.os.package_manager ?? 'dnf'));
    const path = yumRepoPath(ctx.os, desired.name);
    const keyPath = rpmKeyPath(ctx.os, desired.name);
    const text = (await ctx.exec.readFile(path))?.toString('utf8');
    const section = text === undefined ? undefined : parseIniSection(text, desired.name);
    if (!section) return text !== undefined || (await ctx.exec.stat(keyPath)) ? { name: desired.name, ensure: 'present' } : undefined;
    const current: Record<string, unknown> = {
      name: desired.name,
      ensure: 'present',
      uri: section.get('baseurl')?.split(/\s+/)[0],
      ...aptOnlyAsDesired(desired),
      description: desired.description === undefined ? undefined : section.get('name'),
      // dnf's defaults: enabled, and gpgcheck as dnf.conf says (on, as distributions ship it).
      enabled: truthy(section.get('enabled'), true),
      gpgcheck: truthy(section.get('gpgcheck'), true),
    };
    if (desired.key !== undefined && section.get('gpgkey')?.trim() === `file://${keyPath}`) current.key_sha256 = await ctx.exec.sha256(keyPath);
    return current;
  },

  async apply(ctx, action, desired) {
    const path = yumRepoPath(ctx.os, desired.name);
    const keyPath = rpmKeyPath(ctx.os, desired.name);
    if (action === 'destroy') {
      await removeFiles(ctx, [path, keyPath]);
      packageIndexChanged(ctx.exec);
      return;
    }
    if (desired.key !== undefined) await installKey(ctx, desired, keyPath);
    const content = renderRepo(desired, desired.key !== undefined ? keyPath : undefined);
    if ((await ctx.exec.readFile(path))?.toString('utf8') !== content) await ctx.exec.writeFile(path, content, { mode: 0o644 });
    if (desired.key === undefined) await removeFiles(ctx, [keyPath]);
    packageIndexChanged(ctx.exec);
  },
});
