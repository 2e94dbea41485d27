/**
 * Users on Linux with shadow-utils: useradd, usermod, userdel. Changing `home` sets the field
 * only (no -m: the old home's files are not moved); `remove_home: true` with `ensure: absent`
 * removes the home (userdel -r), otherwise it is kept.
 */
import { defineProvider } from '../type.ts';
import type { userType } from './type.ts';
import { isAlpine, readAccounts, runTool } from '../accounts.ts';
import { accountOptions, createsHome, implicitGroup, readUser } from './state.ts';

export const shadowUser = defineProvider<typeof userType>({
  type: 'user',
  name: 'shadow',
  // Alpine has shadow-utils only as an extra package: it gets the BusyBox provider unless a part
  // asks for `provider: shadow`.
  suitable: (facts) => facts.kernel === 'linux' && !isAlpine(facts),
  read: readUser,

  async apply(ctx, action, desired, current) {
    const name = desired.name;
    if (action === 'destroy') {
      await runTool(ctx, ['userdel', ...(desired.remove_home === true ? ['-r'] : []), name]);
      return;
    }
    if (action === 'create') {
      const args = accountOptions(desired, undefined);
      const group = implicitGroup(await readAccounts(ctx), desired);
      if (group) args.push('-g', group);
      if (desired.system === true) args.push('-r');
      args.push(createsHome(desired) ? '-m' : '-M');
      await runTool(ctx, ['useradd', ...args, name]);
      return;
    }
    const args = accountOptions(desired, current);
    if (args.length > 0) await runTool(ctx, ['usermod', ...args, name]);
  },
});
