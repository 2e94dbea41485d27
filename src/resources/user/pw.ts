/**
 * Users on FreeBSD with pw(8): `pw useradd|usermod|userdel -n NAME …`, the flags Ansible's
 * FreeBsdUser uses. pw has no "system account" flag: `system` is ignored (give a `uid`). `-G`
 * on usermod replaces the user's supplementary groups, which is the exact list this type manages.
 */
import { defineProvider } from '../type.ts';
import type { userType } from './type.ts';
import { readAccounts, runTool } from '../accounts.ts';
import { accountOptions, createsHome, implicitGroup, readUser } from './state.ts';

export const pwUser = defineProvider<typeof userType>({
  type: 'user',
  name: 'pw',
  suitable: (facts) => facts.kernel === 'freebsd' || facts.os_family === 'freebsd',
  read: readUser,

  async apply(ctx, action, desired, current) {
    const name = desired.name;
    if (action === 'destroy') {
      await runTool(ctx, ['pw', 'userdel', '-n', name, ...(desired.remove_home === true ? ['-r'] : [])]);
      return;
    }
    if (action === 'create') {
      const args = accountOptions(desired, undefined);
      const group = implicitGroup(await readAccounts(ctx), desired);
      if (group) args.push('-g', group);
      if (createsHome(desired)) args.push('-m');
      await runTool(ctx, ['pw', 'useradd', '-n', name, ...args]);
      return;
    }
    const args = accountOptions(desired, current);
    if (args.length > 0) await runTool(ctx, ['pw', 'usermod', '-n', name, ...args]);
  },
});
