import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import { createTwoFilesPatch } from 'diff';
import { ApplyError, modeAs, type Provider, type ProviderContext } from '../type.ts';

/** The bytes a file part wants, or undefined when it does not manage content. */
export function desiredBytes(desired: Record<string, unknown>): Buffer | undefined {
  if (typeof desired.content === 'string') return Buffer.from(desired.content);
  if (typeof desired.source_base64 === 'string') return Buffer.from(desired.source_base64, 'base64');
  return undefined;
}

/** Owner and group as the part names them when the ids match, else the actual ids. */
export async function ownership(ctx: ProviderContext, desired: Record<string, unknown>, uid: number, gid: number) {
  const out: Record<string, unknown> = {};
  if (desired.owner !== undefined) {
    const want = await ctx.exec.userId(String(desired.owner));
    out.owner = want === uid ? desired.owner : String(uid);
  }
  if (desired.group !== undefined) {
    const want = await ctx.exec.groupId(String(desired.group));
    out.group = want === gid ? desired.group : String(gid);
  }
  return out;
}

async function write(ctx: ProviderContext, path: string, bytes: Buffer, opts: { mode?: number; owner?: string; group?: string }) {
  try {
    await ctx.exec.writeFile(path, bytes, opts);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new ApplyError(`the directory ${dirname(path)} does not exist (declare it with a directory part and require it)`);
    }
    throw err;
  }
}

export const posixFile: Provider = {
  type: 'file',
  name: 'posix',
  suitable: () => true,

  async read(ctx, desired) {
    const path = String(desired.path);
    const st = await ctx.exec.stat(path);
    if (!st) return undefined;
    if (st.type !== 'file') return { path, ensure: 'present', kind: st.type };
    const current: Record<string, unknown> = { path, ensure: 'present', ...(await ownership(ctx, desired, st.uid, st.gid)) };
    if (desired.mode !== undefined) current.mode = modeAs(desired.mode, st.mode);
    if (typeof desired.content === 'string') {
      const bytes = await ctx.exec.readFile(path);
      current.content = bytes?.toString('utf8');
    } else if (desired.content_sha256 !== undefined) {
      const bytes = await ctx.exec.readFile(path);
      current.content_sha256 = bytes ? createHash('sha256').update(bytes).digest('hex') : undefined;
    }
    return current;
  },

  async apply(ctx, action, desired, current) {
    const path = String(desired.path);
    if (current?.kind !== undefined) {
      // Never remove or replace a directory (and what is in it) because a file part says so.
      throw new ApplyError(`${path} is a ${String(current.kind)}, not a file; ${action === 'destroy' ? 'not removing it' : 'remove it first'}`);
    }
    if (action === 'destroy') {
      await ctx.exec.remove(path);
      return;
    }
    const mode = desired.mode !== undefined ? parseInt(String(desired.mode), 8) : undefined;
    const owner = desired.owner !== undefined ? String(desired.owner) : undefined;
    const group = desired.group !== undefined ? String(desired.group) : undefined;
    const bytes = desiredBytes(desired);
    const contentChanged = !current || ('content' in current && current.content !== desired.content) ||
      ('content_sha256' in current && current.content_sha256 !== desired.content_sha256);
    if (bytes !== undefined && contentChanged) {
      if (desired.backup === true && current) {
        const old = await ctx.exec.readFile(path);
        if (old) await ctx.exec.writeFile(`${path}.cairn-bak`, old);
      }
      await write(ctx, path, bytes, { mode, owner, group });
      return;
    }
    if (!current) {
      await write(ctx, path, Buffer.alloc(0), { mode, owner, group });
      return;
    }
    if (mode !== undefined && current.mode !== desired.mode) await ctx.exec.chmod(path, mode);
    if ((owner !== undefined && current.owner !== owner) || (group !== undefined && current.group !== group)) {
      await ctx.exec.chown(path, owner, group);
    }
  },

  diff(desired, current) {
    if (typeof desired.content !== 'string') return undefined;
    const before = typeof current?.content === 'string' ? current.content : '';
    if (before === desired.content) return undefined;
    const path = String(desired.path);
    return createTwoFilesPatch(current ? path : '/dev/null', path, before, desired.content, undefined, undefined, { context: 3 });
  },
};
