import { dirname } from 'node:path';
import { readPath } from '../posix.ts';
import { defineProvider, ApplyError } from '../type.ts';
import type { symlinkType } from './type.ts';
import { quote as q } from '../shell-fragments.ts';

export const posixSymlink = defineProvider<typeof symlinkType>({
  type: 'symlink',
  name: 'posix',
  suitable: () => true,

  async read(ctx, desired) {
    const { current } = await readPath(ctx, desired, 'symlink');
    return current && current.kind === undefined ? { ...current, target: await ctx.exec.readLink(desired.path) } : current;
  },

  async apply(ctx, action, desired, current) {
    const path = desired.path;
    if (action === 'destroy') {
      if (current?.kind !== undefined) throw new ApplyError(`${path} is a ${String(current.kind)}, not a symlink; not removing it`);
      await ctx.exec.remove(path);
      return;
    }
    if (current?.kind !== undefined) {
      if (desired.force !== true) throw new ApplyError(`a ${String(current.kind)} is in the way at ${path} (set force: true to replace it)`);
      await ctx.exec.remove(path);
    }
    await ctx.exec.symlink(String(desired.target), path);
  },

  shell: {
    check(desired) {
      const p = q(desired.path);
      if (desired.ensure === 'absent') return `[ ! -L ${p} ] && [ ! -e ${p} ]`;
      const t = q(String(desired.target));
      // A link that resolves to the target itself is taken as in sync without a fork (readlink).
      const same = String(desired.target).startsWith('/') ? `{ [ ${p} -ef ${t} ] || [ "$(readlink ${p})" = ${t} ]; }` : `[ "$(readlink ${p})" = ${t} ]`;
      return `[ -L ${p} ] && ${same}`;
    },
    exists: (desired) => `[ -L ${q(desired.path)} ] || [ -e ${q(desired.path)} ]`,
    ownPath: () => true,
    // An absolute target: cairn_tl finds the link in sync by -ef, or makes it where nothing was.
    turn: (desired, node) => desired.ensure === 'absent' || !String(desired.target).startsWith('/')
      ? undefined : `cairn_tl ${node} 0 ${q(desired.path)} ${q(String(desired.target))}`,
    // A link in a folder its group makes goes into that folder's stage (cairn_slink), and in
    // place otherwise.
    stage(desired, ids) {
      if (desired.ensure === 'absent' || desired.path.includes('\n')) return undefined;
      const k = ids.folder(dirname(desired.path));
      const p = q(desired.path);
      const t = q(String(desired.target));
      return {
        path: desired.path,
        entry: true,
        ...(String(desired.target).startsWith('/') ? { turn: (node: number) => `cairn_tl ${node} ${k} ${p} ${t}` } : {}),
        apply: `if [ ! -e ${p} ] && [ ! -L ${p} ] && cairn_slink "$cairn_i" ${k} ${p} ${t}; then return 0; fi\n${this.apply(desired, 'create')}`,
      };
    },
    apply(desired, action) {
      const p = q(desired.path);
      const kind = `if [ -d ${p} ]; then k=directory; else k=file; fi`;
      if (action === 'destroy') return `if [ -e ${p} ] && [ ! -L ${p} ]; then ${kind}; printf '%s is a %s, not a symlink; not removing it\\n' ${p} "$k"; return 1; fi\nrm -f ${p}`;
      const inTheWay = desired.force === true ? `rm -rf ${p} || return 1`
        : `${kind}; printf 'a %s is in the way at %s (set force: true to replace it)\\n' "$k" ${p}; return 1`;
      return `if [ -e ${p} ] && [ ! -L ${p} ]; then ${inTheWay}; fi\nln -sfn ${q(String(desired.target))} ${p}`;
    },
  },
});
