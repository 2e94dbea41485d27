import { ownership } from '../file/provider.ts';
import { ApplyError, modeAs, type Provider } from '../type.ts';

export const posixDirectory: Provider = {
  type: 'directory',
  name: 'posix',
  suitable: () => true,

  async read(ctx, desired) {
    const path = String(desired.path);
    const st = await ctx.exec.stat(path);
    if (!st) return undefined;
    if (st.type !== 'directory') return { path, ensure: 'present', kind: st.type };
    return {
      path,
      ensure: 'present',
      ...(desired.mode !== undefined ? { mode: modeAs(desired.mode, st.mode) } : {}),
      ...(await ownership(ctx, desired, st.uid, st.gid)),
    };
  },

  async apply(ctx, action, desired, current) {
    const path = String(desired.path);
    if (current?.kind !== undefined) {
      throw new ApplyError(`${path} is a ${String(current.kind)}, not a directory; ${action === 'destroy' ? 'not removing it' : 'remove it first'}`);
    }
    if (action === 'destroy') {
      await ctx.exec.remove(path);
      return;
    }
    const mode = desired.mode !== undefined ? parseInt(String(desired.mode), 8) : undefined;
    if (!current) {
      try {
        await ctx.exec.mkdir(path, { parents: desired.parents !== false, ...(mode !== undefined ? { mode } : {}) });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ApplyError(`the parent of ${path} does not exist (parents: false)`);
        throw err;
      }
    } else if (mode !== undefined && current.mode !== desired.mode) await ctx.exec.chmod(path, mode);
    const owner = desired.owner !== undefined ? String(desired.owner) : undefined;
    const group = desired.group !== undefined ? String(desired.group) : undefined;
    if ((owner !== undefined && current?.owner !== owner) || (group !== undefined && current?.group !== group)) {
      await ctx.exec.chown(path, owner, group);
    }
  },
};
