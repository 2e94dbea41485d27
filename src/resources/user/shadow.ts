/**
 * Users on Linux with shadow-utils: useradd, usermod, userdel. Changing `home` sets the field
 * only (no -m: the old home's files are not moved); `remove_home: true` with `ensure: absent`
 * removes the home (userdel -r), otherwise it is kept.
 */
import { defineProvider } from '../type.ts';
import type { userType } from './type.ts';
import { isAlpine, readAccounts, runTool } from '../accounts.ts';
import { accountOptions, createsHome, implicitGroup, readUser, shellAttributeTests, shellCreate, shellUserInSync } from './state.ts';
import { shellCommand, shellQuote } from '../../lib/shell.ts';

export const shadowUser = defineProvider<typeof userType>({
  type: 'user',
  name: 'shadow',
  // Alpine has shadow-utils only as an extra package: it gets the BusyBox provider unless a part
  // asks for `provider: shadow`.
  suitable: (facts) => facts.kernel === 'linux' && !isAlpine(facts),
  read: readUser,

  // useradd and usermod with every attribute the part gives.
  shell: {
    check: shellUserInSync,
    apply(desired) {
      const name = shellQuote(desired.name);
      if (desired.ensure === 'absent') {
        return `if cairn_getent passwd ${name} >/dev/null; then userdel ${desired.remove_home === true ? '-r ' : ''}${name}; fi`;
      }
      const options = shellCommand(accountOptions(desired, undefined));
      const create = shellCreate(desired, (group) => ['useradd', options, group && `-g ${group}`, desired.system === true && '-r', createsHome(desired) ? '-m' : '-M', name].filter(Boolean).join(' '));
      // usermod only when something differs, so a user in sync is not written again.
      const change = options ? `{ ${shellAttributeTests(desired).map((t) => t.test).join(' && ')}; } || usermod ${options} ${name}` : 'true';
      return `if cairn_getent passwd ${name} >/dev/null; then ${change}; else ${create}; fi`;
    },
  },

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
