/**
 * Groups: groupadd/groupmod/groupdel (shadow-utils, Linux), `pw groupadd|groupmod|groupdel -n`
 * (FreeBSD) and BusyBox's addgroup/delgroup (Alpine; it has no groupmod, so a gid change is
 * refused there). All read the group database with the run's one batched reading.
 */
import { defineProvider, ApplyError, type Current, type ProviderContext, type Desired } from '../type.ts';
import type { groupType } from './type.ts';
import { isAlpine, readAccounts, runTool } from '../accounts.ts';

type GroupAttributes = Desired<typeof groupType>;

async function readGroup(ctx: ProviderContext, desired: GroupAttributes): Promise<Current<typeof groupType>> {
  const entry = (await readAccounts(ctx)).groups.get(desired.name);
  if (!entry) return undefined;
  return { name: entry.name, ensure: 'present', ...(desired.gid !== undefined ? { gid: entry.gid } : {}) };
}

function gidArgs(desired: GroupAttributes): string[] {
  return desired.gid !== undefined ? ['-g', String(desired.gid)] : [];
}

export const shadowGroup = defineProvider<typeof groupType>({
  type: 'group',
  name: 'shadow',
  suitable: (facts) => facts.kernel === 'linux' && !isAlpine(facts),
  read: readGroup,
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
  async apply(ctx, action, desired) {
    const name = desired.name;
    if (action === 'destroy') await runTool(ctx, ['delgroup', name]);
    else if (action === 'create') await runTool(ctx, ['addgroup', ...gidArgs(desired), ...(desired.system === true ? ['-S'] : []), name]);
    else throw new ApplyError('BusyBox cannot change the gid of an existing group (it has no groupmod): install the shadow package and give this part provider: shadow');
  },
});
