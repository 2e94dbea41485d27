import { convergeAttributes, pathAttributes, readPath, refuseOtherKind } from '../posix.ts';
import { ApplyError, type Provider } from '../type.ts';

export const posixDirectory: Provider = {
  type: 'directory',
  name: 'posix',
  suitable: () => true,

  async read(ctx, desired) {
    return (await readPath(ctx, desired, 'directory')).current;
  },

  async apply(ctx, action, desired, current) {
    const path = String(desired.path);
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
};
