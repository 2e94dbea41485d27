import { attributeDiff, convergeAttributes, pathAttributes, readPath, refuseOtherKind } from '../posix.ts';
import { defineProvider, ApplyError } from '../type.ts';
import type { directoryType } from './type.ts';

export const posixDirectory = defineProvider<typeof directoryType>({
  type: 'directory',
  name: 'posix',
  suitable: () => true,

  async read(ctx, desired) {
    return (await readPath(ctx, desired, 'directory')).current;
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
  },

  diff(desired, current) {
    return attributeDiff(desired, current);
  },
});
