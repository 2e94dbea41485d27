/**
 * Groups: groupadd/groupmod/groupdel (shadow-utils, Linux), `pw groupadd|groupmod|groupdel -n`
 * (FreeBSD) and BusyBox's addgroup/delgroup (Alpine; it has no groupmod, so a gid change is
 * refused there). All read the group database with the run's one batched reading.
 */
import { defineProvider, ApplyError, type Current, type ProviderContext, type Desired } from '../type.ts';
import type { groupType } from './type.ts';
import { isAlpine, readAccounts, runTool } from '../accounts.ts';
import { shellCommand, shellQuote } from '../../lib/shell.ts';
import { shellRefusal } from '../shell-prelude.ts';

type GroupAttributes = Desired<typeof groupType>;

const BUSYBOX_NO_GROUPMOD = 'BusyBox cannot change the gid of an existing group (it has no groupmod): install the shadow package and give this part provider: shadow';

async function readGroup(ctx: ProviderContext, desired: GroupAttributes): Promise<Current<typeof groupType>> {
  const entry = (await readAccounts(ctx)).groups.get(desired.name);
  if (!entry) return undefined;
  return { name: entry.name, ensure: 'present', ...(desired.gid !== undefined ? { gid: entry.gid } : {}) };
}

function gidArgs(desired: GroupAttributes): string[] {
  return desired.gid !== undefined ? ['-g', String(desired.gid)] : [];
}

// ---- as shell, for `cairn export` (resources/shell-prelude.ts has the functions) ----

function shellGroupInSync(desired: GroupAttributes): string {
  const name = shellQuote(desired.name);
  if (desired.ensure === 'absent') return `! cairn_getent group ${name} >/dev/null`;
  return desired.gid !== undefined ? `cairn_group_gid_is ${name} ${desired.gid}` : `cairn_getent group ${name} >/dev/null`;
}

/** `create` when the group is missing, `change` (a gid that differs) when it is there; `remove` when absent. */
function shellGroupConverge(desired: GroupAttributes, commands: { create: string; system: string; change: (gid: number) => string; remove: string }): string {
  const name = shellQuote(desired.name);
  if (desired.ensure === 'absent') return `if cairn_getent group ${name} >/dev/null; then ${commands.remove} ${name}; fi`;
  const change = desired.gid !== undefined ? `cairn_group_gid_is ${name} ${desired.gid} || ${commands.change(desired.gid)}` : 'true';
  const create = shellCommand([commands.create, ...gidArgs(desired), ...(desired.system === true ? [commands.system] : [])]);
  return `if cairn_getent group ${name} >/dev/null; then ${change}; else ${create} ${name}; fi`;
}

export const shadowGroup = defineProvider<typeof groupType>({
  type: 'group',
  name: 'shadow',
  suitable: (facts) => facts.kernel === 'linux' && !isAlpine(facts),
  read: readGroup,
  shell: {
    check: shellGroupInSync,
    apply: (desired) => shellGroupConverge(desired, {
      create: 'groupadd',
      system: '-r',
      change: (gid) => `groupmod -g ${gid} ${shellQuote(desired.name)}`,
      remove: 'groupdel',
    }),
  },
  async apply(ctx, action, desired) {
    const name = desired.name;
    if (action === 'destroy') await runTool(ctx, ['groupdel', name]);
    else if (action === 'create') await runTool(ctx, ['groupadd', ...gidArgs(desired), ...(desired.system === true ? ['-r'] : []), name]);
    else await runTool(ctx, ['groupmod', ...gidArgs(desired), name]);
  },
});

export const pwGroup = defineProvider<typeof groupType>({
  type: 'group',
  name: 'pw',
  suitable: (facts) => facts.kernel === 'freebsd' || facts.os_family === 'freebsd',
  read: readGroup,
  async apply(ctx, action, desired) {
    const name = desired.name;
    if (action === 'destroy') await runTool(ctx, ['pw', 'groupdel', '-n', name]);
    else if (action === 'create') await runTool(ctx, ['pw', 'groupadd', '-n', name, ...gidArgs(desired)]);
    else await runTool(ctx, ['pw', 'groupmod', '-n', name, ...gidArgs(desired)]);
  },
});

export const busyboxGroup = defineProvider<typeof groupType>({
  type: 'group',
  name: 'busybox',
  suitable: (facts) => isAlpine(facts),
  read: readGroup,
  shell: {
    check: shellGroupInSync,
    apply: (desired) => shellGroupConverge(desired, {
      create: 'addgroup',
      system: '-S',
      change: () => shellRefusal(BUSYBOX_NO_GROUPMOD),
      remove: 'delgroup',
    }),
  },
  async apply(ctx, action, desired) {
    const name = desired.name;
    if (action === 'destroy') await runTool(ctx, ['delgroup', name]);
    else if (action === 'create') await runTool(ctx, ['addgroup', ...gidArgs(desired), ...(desired.system === true ? ['-S'] : []), name]);
    else throw new ApplyError(BUSYBOX_NO_GROUPMOD);
  },
});
