import { dirname } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { toolError } from '../commands.ts';
import { attributeDiff, convergeAttributes, pathAttributes, readPath, refuseOtherKind } from '../posix.ts';
import { defineProvider, ApplyError, modeAs, type Current, type Desired, type ProviderContext } from '../type.ts';
import type { directoryType, TreeEntry } from './type.ts';
import { attrWords, feed, holds, managesAttrs, quote as q } from '../shell-fragments.ts';

type DirectoryAttributes = Desired<typeof directoryType>;

/**
 * What the directory holds where the source has an entry (only what the part manages: a file's
 * hash, and mode, owner and group when asked), and, with purge, `{ type: 'extra' }` for each
 * topmost entry the source lacks. An entry absent from the directory is absent here.
 */
type Found = Record<string, TreeEntry | { type: 'symlink' | 'other' | 'extra' }>;

function inside(desired: DirectoryAttributes, rel: string): string {
  return `${desired.path.replace(/\/+$/, '')}/${rel}`;
}

function wanted(desired: DirectoryAttributes): Record<string, TreeEntry> {
  return (desired.tree ?? {}) as Record<string, TreeEntry>;
}

async function readTree(ctx: ProviderContext, desired: DirectoryAttributes): Promise<Found> {
  const want = wanted(desired);
  const uid = desired.owner !== undefined ? await ctx.exec.userId(String(desired.owner)) : undefined;
  const gid = desired.group !== undefined ? await ctx.exec.groupId(String(desired.group)) : undefined;
  const found: Found = {};
  for (const [rel, entry] of Object.entries(want)) {
    const path = inside(desired, rel);
    const stat = await ctx.exec.stat(path);
    if (!stat) continue;
    if (stat.type !== entry.type) {
      found[rel] = { type: stat.type } as Found[string];
      continue;
    }
    const seen: TreeEntry = { type: entry.type };
    if (entry.type === 'file') {
      const sha256 = await ctx.exec.sha256(path);
      if (sha256 !== undefined) seen.sha256 = sha256;
    }
    if (entry.mode !== undefined) seen.mode = modeAs(entry.mode, stat.mode);
    if (entry.owner !== undefined) seen.owner = uid === stat.uid ? entry.owner : String(stat.uid);
    if (entry.group !== undefined) seen.group = gid === stat.gid ? entry.group : String(stat.gid);
    found[rel] = seen;
  }
  if (desired.purge === true) {
    // Listed last: a command makes a remote executor forget what its batched read fetched.
    const r = await ctx.exec.run(['find', desired.path, '-mindepth', '1', '-print0']);
    if (r.code !== 0) throw toolError(`find ${desired.path}`, r);
    // A listing cut short (the executor keeps OUTPUT_LIMIT of it) could end in part of a name.
    if (r.stdout !== '' && !r.stdout.endsWith('\0')) throw new ApplyError(`purge: the listing of ${desired.path} was cut short (too many entries to list at once)`);
    const prefix = `${desired.path.replace(/\/+$/, '')}/`;
    const extras = new Set(r.stdout.split('\0').filter((p) => p.startsWith(prefix)).map((p) => p.slice(prefix.length)).filter((rel) => !(rel in want)));
    for (const rel of extras) {
      // What is inside an extra folder goes with it.
      let above = rel;
      let topmost = true;
      for (let i = above.lastIndexOf('/'); i > 0; i = above.lastIndexOf('/')) {
        above = above.slice(0, i);
        if (extras.has(above)) topmost = false;
      }
      if (topmost) found[rel] = { type: 'extra' };
    }
  }
  return found;
}

/** Why an entry differs, in a word or two: what a report line says after the path. */
function why(want: TreeEntry, have: Found[string]): string {
  if (have.type !== want.type) return `${have.type === 'directory' ? 'a folder' : `a ${have.type}`} was in the way`;
  const h = have as TreeEntry;
  return (['sha256', 'mode', 'owner', 'group'] as const).filter((k) => want[k] !== undefined && want[k] !== h[k])
    .map((k) => (k === 'sha256' ? 'content' : k)).join(', ');
}

export const posixDirectory = defineProvider<typeof directoryType>({
  type: 'directory',
  name: 'posix',
  suitable: () => true,

  async read(ctx, desired) {
    const { current } = await readPath(ctx, desired, 'directory');
    if (!current || current.kind !== undefined || desired.tree === undefined) return current;
    return { ...current, tree: await readTree(ctx, desired) } as Current<typeof directoryType>;
  },

  async apply(ctx, action, desired, current) {
    const path = desired.path;
    refuseOtherKind(current, path, 'directory', action);
    if (action === 'destroy') {
      await ctx.exec.remove(path);
      return;
    }
    const { mode } = pathAttributes(desired);
    if (!current) {
      try {
        await ctx.exec.mkdir(path, { parents: desired.parents !== false, ...(mode !== undefined ? { mode } : {}) });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ApplyError(`the parent of ${path} does not exist (parents: false)`);
        throw err;
      }
    }
    await convergeAttributes(ctx, path, desired, current);
    if (desired.tree !== undefined) await copyTree(ctx, desired, (current?.tree ?? {}) as Found);
  },

  items(desired, current) {
    if (desired.tree === undefined || current?.kind !== undefined) return [];
    const want = wanted(desired);
    const have = (current?.tree ?? {}) as Found;
    const out: string[] = [];
    for (const rel of [...new Set([...Object.keys(want), ...Object.keys(have)])].sort()) {
      const w = want[rel];
      const h = have[rel];
      const shown = `${inside(desired, rel)}${(w ?? h)?.type === 'directory' ? '/' : ''}`;
      if (w && !h) out.push(`created ${shown}`);
      else if (w && h && !isDeepStrictEqual(w, h)) out.push(`changed ${shown} (${why(w, h)})`);
      else if (!w && h) out.push(`removed ${shown}`);
    }
    return out;
  },

  diff(desired, current) {
    return attributeDiff(desired, current);
  },

  shell: {
    check(desired) {
      const p = q(desired.path);
      if (desired.ensure === 'absent') return `[ ! -e ${p} ] && [ ! -L ${p} ]`;
      const parts = [`[ -d ${p} ]`, `[ ! -L ${p} ]`];
      if (managesAttrs(desired)) parts.push(`cairn_attrs_ok ${p} ${attrWords(desired)}`);
      for (const [rel, entry, bytes] of shellTree(desired)) {
        const path = inside(desired, rel);
        parts.push(bytes ? holds(path, bytes) : `[ -d ${q(path)} ]`);
        if (managesAttrs(entry)) parts.push(`cairn_attrs_ok ${q(path)} ${attrWords(entry)}`);
      }
      if (desired.purge === true) parts.push(`[ "$(cd ${p} && find . -mindepth 1 | LC_ALL=C sort)" = ${q(listing(desired))} ]`);
      return parts.join(' && ');
    },
    exists: (desired) => `[ -e ${q(desired.path)} ] || [ -L ${q(desired.path)} ]`,
    // A purge lists the folder, and content from a source writes inside it.
    ownPath: (desired) => desired.purge !== true && shellTree(desired).length === 0,
    // A folder with nothing to copy into it or purge can be made in its parent's stage
    // (cairn_sdir), and the group's files, links and folders in it with it: one mv for the tree.
    stage(desired, ids) {
      const path = desired.path.length > 1 ? desired.path.replace(/\/+$/, '') : desired.path;
      if (desired.ensure === 'absent' || desired.purge === true || desired.parents === false || shellTree(desired).length > 0) return undefined;
      if (path === '/' || !path.startsWith('/') || path.includes('\n')) return undefined;
      const words = `${ids.folder(dirname(path))} ${ids.folder(path)} ${q(path)}`;
      return {
        path,
        makes: path,
        entry: true,
        ...(managesAttrs(desired) ? {} : { turn: (node: number) => `cairn_sd ${node} ${words}` }),
        apply: `if cairn_sdir "$cairn_i" ${words} ${attrWords(desired)}; then return 0; fi\n${this.apply(desired, 'create')}`,
      };
    },
    // A bare directory (no mode or owner, no content, parents made): cairn_td makes it.
    turn: (desired, node) => desired.ensure === 'absent' || managesAttrs(desired) || desired.purge === true || desired.parents === false || shellTree(desired).length > 0
      ? undefined : `cairn_td ${node} ${q(desired.path)}`,
    apply(desired, action) {
      const p = q(desired.path);
      const kind = `if [ -L ${p} ]; then k=symlink; else k=file; fi`;
      if (action === 'destroy') return `if [ -L ${p} ] || [ ! -d ${p} ]; then ${kind}; printf '%s is a %s, not a directory; not removing it\\n' ${p} "$k"; return 1; fi\nrm -rf ${p}`;
      const lines = [
        `if [ -L ${p} ] || { [ -e ${p} ] && [ ! -d ${p} ]; }; then ${kind}; printf '%s is a %s, not a directory; remove it first\\n' ${p} "$k"; return 1; fi`,
        desired.parents === false
          ? `if [ ! -d ${p} ]; then mkdir ${p} 2>/dev/null || { printf 'the parent of %s does not exist (parents: false)\\n' ${p}; return 1; }; fi`
          : `[ -d ${p} ] || cairn_mkdir ${p} || return 1`,
        `cairn_attrs ${p} ${attrWords(desired)} || return 1`,
      ];
      if (desired.purge === true) {
        // What the source does not have goes first, so that a folder in the way of a file goes.
        lines.push(`(cd ${p} && find . -mindepth 1 -maxdepth 1) | LC_ALL=C sort | while IFS= read -r e; do cairn_keep ${p} "$e" || rm -rf ${p}/"$e"; done`);
        lines.unshift(`cairn_keep() { case "$2" in ${[...Object.keys(wanted(desired))].map((rel) => q(`./${rel}`)).join('|') || "''"}) [ -d "$1/$2" ] && (cd "$1" && find "$2" -mindepth 1 -maxdepth 1) | while IFS= read -r s; do cairn_keep "$1" "$s" || rm -rf "$1/$s"; done; return 0 ;; esac; return 1; }`);
      }
      for (const [rel, entry, bytes] of shellTree(desired)) {
        const path = q(inside(desired, rel));
        if (bytes) {
          lines.push(`if ! ${holds(inside(desired, rel), bytes)}; then [ ! -d ${path} ] || [ -L ${path} ] || rm -rf ${path}; ${feed(bytes, `cairn_put ${path} ${attrWords(entry)} ''`).trimEnd()}`, 'fi');
          lines.push(`cairn_attrs ${path} ${attrWords(entry)} || return 1`);
        } else {
          lines.push(`if [ -e ${path} ] && [ ! -d ${path} ]; then rm -f ${path}; fi`, `[ -d ${path} ] || mkdir ${path} || return 1`, `cairn_attrs ${path} ${attrWords(entry)} || return 1`);
        }
      }
      return lines.join('\n');
    },
  },
});

/**
 * Brings what the directory holds to the source's tree: removes what purge found extra (first,
 * so that a folder in the way of a file goes), then makes or fixes each entry that differs,
 * folders before what they hold; an entry in sync is not touched.
 */
async function copyTree(ctx: ProviderContext, desired: DirectoryAttributes, have: Found): Promise<void> {
  const want = wanted(desired);
  const content = (desired.tree_content ?? {}) as Record<string, string>;
  const rendered = (desired.tree_rendered ?? {}) as Record<string, string>;
  for (const [rel, h] of Object.entries(have)) if (h.type === 'extra') await ctx.exec.remove(inside(desired, rel));
  for (const [rel, w] of Object.entries(want).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    let h = have[rel] as TreeEntry | undefined;
    if (isDeepStrictEqual(w, h)) continue;
    const path = inside(desired, rel);
    const mode = w.mode !== undefined ? parseInt(w.mode, 8) : undefined;
    if (h && h.type !== w.type) {
      await ctx.exec.remove(path);
      h = undefined;
    }
    if (w.type === 'file' && (!h || h.sha256 !== w.sha256)) {
      const bytes = rendered[rel] !== undefined ? Buffer.from(rendered[rel]) : Buffer.from(content[rel] ?? '', 'base64');
      await ctx.exec.writeFile(path, bytes, {
        ...(mode !== undefined ? { mode } : {}), ...(w.owner !== undefined ? { owner: w.owner } : {}), ...(w.group !== undefined ? { group: w.group } : {}),
      });
      continue;
    }
    if (!h) await ctx.exec.mkdir(path, { parents: false, ...(mode !== undefined ? { mode } : {}) });
    else if (mode !== undefined && h.mode !== w.mode) await ctx.exec.chmod(path, mode);
    if ((w.owner !== undefined && h?.owner !== w.owner) || (w.group !== undefined && h?.group !== w.group)) {
      await ctx.exec.chown(path, w.owner, w.group);
    }
  }
}

/** The source's entries (sorted, folders before what they hold), with each file's bytes. */
function shellTree(desired: DirectoryAttributes): [string, TreeEntry, Buffer | undefined][] {
  const content = (desired.tree_content ?? {}) as Record<string, string>;
  const rendered = (desired.tree_rendered ?? {}) as Record<string, string>;
  return Object.entries(wanted(desired)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([rel, entry]) => [
    rel, entry,
    entry.type === 'file' ? (rendered[rel] !== undefined ? Buffer.from(rendered[rel]) : Buffer.from(content[rel] ?? '', 'base64')) : undefined,
  ]);
}

/** What `find . -mindepth 1 | LC_ALL=C sort` prints in a directory that holds exactly the source. */
function listing(desired: DirectoryAttributes): string {
  return Object.keys(wanted(desired)).map((rel) => `./${rel}`).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))).join('\n');
}
