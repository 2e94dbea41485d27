/**
 * Users on Linux with shadow-utils: useradd, usermod, userdel. Changing `home` sets the field
 * only (no -m: the old home's files are not moved); `remove_home: true` with `ensure: absent`
 * removes the home (userdel -r), otherwise it is kept.
 */
import type { Provider } from '../type.ts';
import { isAlpine, readAccounts, runTool } from './accounts.ts';
import { changed, createsHome, implicitGroup, readUser } from './state.ts';

/** Options shared by useradd and usermod for the attributes that differ (all given ones on create). */
function commonOptions(desired: Record<string, unknown>, current: Record<string, unknown> | undefined): string[] {
  const args: string[] = [];
  if (changed(desired, current, 'uid')) args.push('-u', String(desired.uid));
  if (changed(desired, current, 'gid')) args.push('-g', String(desired.gid));
  if (changed(desired, current, 'groups')) args.push('-G', (desired.groups as string[]).join(','));
  if (changed(desired, current, 'home')) args.push('-d', String(desired.home));
  if (changed(desired, current, 'shell')) args.push('-s', String(desired.shell));
  if (changed(desired, current, 'comment')) args.push('-c', String(desired.comment));
  return args;
}

export const shadowUser: Provider = {
  type: 'user',
  name: 'shadow',
  // Alpine has shadow-utils only as an extra package: it gets the BusyBox provider unless a part
  // asks for `provider: shadow`.
  suitable: (facts) => facts.kernel === 'linux' && !isAlpine(facts),
  read: readUser,

  async apply(ctx, action, desired, current) {
    const name = String(desired.name);
    if (action === 'destroy') {
      await runTool(ctx, ['userdel', ...(desired.remove_home === true ? ['-r'] : []), name]);
      return;
    }
    if (action === 'create') {
      const args = commonOptions(desired, undefined);
      const group = implicitGroup(await readAccounts(ctx), desired);
      if (group) args.push('-g', group);
      if (desired.system === true) args.push('-r');
      args.push(createsHome(desired) ? '-m' : '-M');
      await runTool(ctx, ['useradd', ...args, name]);
      return;
    }
    const args = commonOptions(desired, current);
    if (args.length > 0) await runTool(ctx, ['usermod', ...args, name]);
  },
};
