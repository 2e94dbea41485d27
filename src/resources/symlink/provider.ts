import { readPath } from '../posix.ts';
import { defineProvider, ApplyError } from '../type.ts';
import type { symlinkType } from './type.ts';

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
});
