/**
 * apt: one deb822 file, `/etc/apt/sources.list.d/<name>.sources`, its `Signed-By` naming the key
 * Cairn keeps beside the others in /etc/apt/keyrings (never the deprecated trusted.gpg.d, which
 * would trust the key for every repository).
 */
import { packageIndexChanged } from '../package-index.ts';
import { uses } from '../os.ts';
import { ApplyError, defineProvider } from '../type.ts';
import { installKey, keyIsArmoured, removeFiles, type RepositoryAttributes } from './key.ts';
import { aptKeyPath, aptSourcesPath } from './paths.ts';
import type { packageRepositoryType } from './type.ts';

/** The first paragraph of a deb822 file as field → value (names folded to lower case; comments and continuation lines joined). */
export function parseDeb822(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  let last: string | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    if (line.trim() === '') {
      if (fields.size) break;
      continue;
    }
    if (/^\s/.test(line) && last !== undefined) {
      fields.set(last, `${fields.get(last)!} ${line.trim()}`);
      continue;
    }
    const m = /^([^:\s]+):\s*(.*)$/.exec(line);
    if (m) {
      last = m[1]!.toLowerCase();
      fields.set(last, m[2]!.trim());
    }
  }
  return fields;
}

const split = (value: string | undefined): string[] => (value ?? '').split(/\s+/).filter(Boolean);

/** The .sources file Cairn writes for `desired`, its key at `keyPath`. */
export function renderSources(desired: RepositoryAttributes, keyPath: string | undefined): string {
  const lines = [
    `# Written by Cairn (package_repository ${desired.name}); changes made here are overwritten.`,
    'Types: deb',
    `URIs: ${String(desired.uri)}`,
    `Suites: ${(desired.suites ?? []).join(' ')}`,
  ];
  if (desired.components.length) lines.push(`Components: ${desired.components.join(' ')}`);
  if (desired.architectures.length) lines.push(`Architectures: ${desired.architectures.join(' ')}`);
  if (keyPath !== undefined) lines.push(`Signed-By: ${keyPath}`);
  if (!desired.gpgcheck) lines.push('Trusted: yes');
  if (!desired.enabled) lines.push('Enabled: no');
  return `${lines.join('\n')}\n`;
}

function keyPathOf(os: Record<string, unknown>, desired: RepositoryAttributes): string | undefined {
  return desired.key === undefined ? undefined : aptKeyPath(os, desired.name, keyIsArmoured(desired));
}

export const aptRepository = defineProvider<typeof packageRepositoryType>({
  type: 'package_repository',
  name: 'apt',
  suitable: uses('package_manager', 'apt'),

  async read(ctx, desired) {
    if (desired.ensure !== 'absent' && desired.suites === undefined) {
      throw new ApplyError('an apt repository needs suites (bookworm, or ./ for a flat repository)');
    }
    const text = (await ctx.exec.readFile(aptSourcesPath(ctx.os, desired.name)))?.toString('utf8');
    const keys = [aptKeyPath(ctx.os, desired.name, true), aptKeyPath(ctx.os, desired.name, false)];
    if (text === undefined) {
      // A key left without its file still belongs to the repository: absent removes it, present rewrites both.
      const stray = await Promise.all(keys.map((k) => ctx.exec.stat(k)));
      return stray.some(Boolean) ? { name: desired.name, ensure: 'present' } : undefined;
    }
    const fields = parseDeb822(text);
    const keyPath = keyPathOf(ctx.os, desired);
    const signedBy = fields.get('signed-by');
    const current: Record<string, unknown> = {
      name: desired.name,
      ensure: 'present',
      uri: split(fields.get('uris'))[0],
      suites: split(fields.get('suites')),
      components: split(fields.get('components')),
      architectures: split(fields.get('architectures')),
      enabled: fields.get('enabled')?.toLowerCase() !== 'no',
      gpgcheck: fields.get('trusted')?.toLowerCase() !== 'yes',
      // The name a dnf repository shows; apt has none to compare.
      description: desired.description,
    };
    if (keyPath !== undefined && signedBy === keyPath) current.key_sha256 = await ctx.exec.sha256(keyPath);
    return current;
  },

  async apply(ctx, action, desired) {
    const sources = aptSourcesPath(ctx.os, desired.name);
    const keys = [aptKeyPath(ctx.os, desired.name, true), aptKeyPath(ctx.os, desired.name, false)];
    if (action === 'destroy') {
      await removeFiles(ctx, [sources, ...keys]);
      packageIndexChanged(ctx.exec);
      return;
    }
    const keyPath = keyPathOf(ctx.os, desired);
    // The key first: a .sources naming a key that is not there yet would break every apt-get update.
    if (keyPath !== undefined) await installKey(ctx, desired, keyPath, keyIsArmoured(desired));
    const content = renderSources(desired, keyPath);
    const before = (await ctx.exec.readFile(sources))?.toString('utf8');
    if (before !== content) await ctx.exec.writeFile(sources, content, { mode: 0o644 });
    await removeFiles(ctx, keys.filter((k) => k !== keyPath));
    packageIndexChanged(ctx.exec);
  },
});
