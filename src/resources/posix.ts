/** What the file, directory and symlink providers share: reading a path's kind, mode and owner. */
import type { Stat } from '../executors/types.ts';
import { ApplyError, modeAs, type Action, type Current, type ProviderContext } from './type.ts';

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

/**
 * The current state of `desired.path` when it should be a `kind`: undefined when absent,
 * `{ kind }` when something else is there, else its managed mode, owner and group.
 */
export async function readPath(ctx: ProviderContext, desired: Record<string, unknown>, kind: Stat['type']): Promise<{ current: Current; stat?: Stat }> {
  const path = String(desired.path);
  const stat = await ctx.exec.stat(path);
  if (!stat) return { current: undefined };
  if (stat.type !== kind) return { current: { path, ensure: 'present', kind: stat.type } };
  const current: Record<string, unknown> = { path, ensure: 'present' };
  // Most parts name neither: no call and no await for them (one per file, folder and link).
  if (desired.owner !== undefined || desired.group !== undefined) Object.assign(current, await ownership(ctx, desired, stat.uid, stat.gid));
  if (desired.mode !== undefined) current.mode = modeAs(desired.mode, stat.mode);
  return { current, stat };
}

/** Something of another kind where this part's path should be is never removed or replaced. */
export function refuseOtherKind(current: Current, path: string, kind: string, action: Action): void {
  if (current?.kind === undefined) return;
  throw new ApplyError(`${path} is a ${String(current.kind)}, not a ${kind}; ${action === 'destroy' ? 'not removing it' : 'remove it first'}`);
}

/** The mode, owner and group a part asks for, in the executor's terms. */
export function pathAttributes(desired: Record<string, unknown>): { mode?: number; owner?: string; group?: string } {
  return {
    ...(desired.mode !== undefined ? { mode: parseInt(String(desired.mode), 8) } : {}),
    ...(desired.owner !== undefined ? { owner: String(desired.owner) } : {}),
    ...(desired.group !== undefined ? { group: String(desired.group) } : {}),
  };
}

/** Brings a path's mode (when it existed) and owner and group to what the part asks for. */
export async function convergeAttributes(ctx: ProviderContext, path: string, desired: Record<string, unknown>, current: Current): Promise<void> {
  const { mode, owner, group } = pathAttributes(desired);
  if (current && mode !== undefined && current.mode !== desired.mode) await ctx.exec.chmod(path, mode);
  if ((owner !== undefined && current?.owner !== owner) || (group !== undefined && current?.group !== group)) {
    await ctx.exec.chown(path, owner, group);
  }
}

/**
 * `--diff` lines for the path attributes that change on a path that exists: `mode: 0644 → 0600`,
 * `owner: 1000 → deploy` (an owner the target does not know by the part's name shows as its id).
 */
export function attributeDiff(desired: Record<string, unknown>, current: Current): string | undefined {
  if (!current || current.kind !== undefined) return undefined;
  const lines = ['mode', 'owner', 'group']
    .filter((attr) => desired[attr] !== undefined && current[attr] !== undefined && String(current[attr]) !== String(desired[attr]))
    .map((attr) => `${attr}: ${String(current[attr])} → ${String(desired[attr])}`);
  return lines.length ? lines.join('\n') : undefined;
}
