/**
 * Users on Alpine with BusyBox's applets (shadow-utils' useradd is an extra package there):
 * `adduser -D` (no password prompt), `addgroup USER GROUP` / `delgroup USER GROUP` for
 * supplementary groups, `deluser [--remove-home]`. BusyBox has no usermod, so a change of
 * shell, comment or home rewrites those fields of the user's line in /etc/passwd (what BusyBox's
 * own tools do, atomically here); a change of uid or primary group is refused with the way out
 * (install `shadow` and use `provider: shadow`), since it would also mean re-owning files.
 * BusyBox's deluser also deletes the user's same-named group.
 */
import { defineProvider, ApplyError, type ProviderContext } from '../type.ts';
import type { userType } from './type.ts';
import { isAlpine, readAccounts, runTool, type Accounts } from '../accounts.ts';
import { changed, createsHome, groupName, implicitGroup, memberOf, readUser, shellAttributeTests, shellCreate, shellUserInSync } from './state.ts';
import { shellCommand, shellQuote } from '../../lib/shell.ts';
import { shellRefusal } from '../shell-prelude.ts';

/** Why a uid or gid cannot change here, and the way out. */
const noUsermod = (attribute: string) =>
  `BusyBox cannot change the ${attribute} of an existing user (it has no usermod): install the shadow package and give this part provider: shadow`;

/** BusyBox resolves -G by name only: a gid the database knows is passed as its group's name. */
function primaryGroup(accounts: Accounts, gid: unknown): string {
  return groupName(accounts, String(gid)) ?? String(gid);
}

/** `/etc/passwd` with the named user's GECOS, home and shell fields replaced where given. */
export function editPasswdLine(text: string, name: string, fields: { comment?: string; home?: string; shell?: string }): string | undefined {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.startsWith(`${name}:`));
  if (i < 0) return undefined;
  const f = lines[i]!.split(':');
  if (f.length < 7) return undefined;
  if (fields.comment !== undefined) f[4] = fields.comment;
  if (fields.home !== undefined) f[5] = fields.home;
  if (fields.shell !== undefined) f[6] = fields.shell;
  lines[i] = f.slice(0, 7).join(':');
  return lines.join('\n');
}

async function rewritePasswd(ctx: ProviderContext, name: string, fields: { comment?: string; home?: string; shell?: string }): Promise<void> {
  const path = '/etc/passwd';
  const [text, stat] = await Promise.all([ctx.exec.readFile(path), ctx.exec.stat(path)]);
  const edited = text === undefined ? undefined : editPasswdLine(text.toString('utf8'), name, fields);
  if (edited === undefined || !stat) throw new ApplyError(`${name} is not in ${path} (an account from another database cannot be changed here)`);
  await ctx.exec.writeFile(path, edited, { mode: stat.mode, owner: String(stat.uid), group: String(stat.gid) });
}

async function syncGroups(ctx: ProviderContext, accounts: Accounts, name: string, wanted: string[], actual: string[]): Promise<void> {
  const want = wanted.map((g) => groupName(accounts, g) ?? g);
  for (const g of want) if (!actual.includes(g)) await runTool(ctx, ['addgroup', name, g]);
  for (const g of actual) if (!want.includes(g)) await runTool(ctx, ['delgroup', name, g]);
}

export const busyboxUser = defineProvider<typeof userType>({
  type: 'user',
  name: 'busybox',
  suitable: (facts) => isAlpine(facts),
  read: readUser,

  shell: {
    check: shellUserInSync,
    apply(desired) {
      const name = shellQuote(desired.name);
      if (desired.ensure === 'absent') {
        return `if cairn_getent passwd ${name} >/dev/null; then deluser ${desired.remove_home === true ? '--remove-home ' : ''}${name}; fi`;
      }
      const groups = desired.groups ? ['cairn_busybox_groups', name, ...desired.groups.map(shellQuote)].join(' ') : undefined;
      const args = ['-D'];
      if (desired.system === true) args.push('-S');
      if (!createsHome(desired)) args.push('-H');
      if (desired.uid !== undefined) args.push('-u', String(desired.uid));
      // BusyBox resolves -G by name only: a number is passed as its group's name.
      const primary = desired.gid !== undefined ? `-G "$(cairn_group_names ${shellQuote(String(desired.gid))})" ` : '';
      const rest = shellCommand([
        ...args,
        ...(desired.home !== undefined ? ['-h', desired.home] : []),
        ...(desired.shell !== undefined ? ['-s', desired.shell] : []),
        ...(desired.comment !== undefined ? ['-g', desired.comment] : []),
      ]);
      const create = shellCreate(desired, (group) => `adduser ${primary}${group ? `-G ${group} ` : ''}${rest} ${name}`);
      const change: string[] = [];
      for (const { attribute, test } of shellAttributeTests(desired)) {
        if (attribute === 'uid' || attribute === 'gid') {
          change.push(`{ ${test} || ${shellRefusal(noUsermod(attribute))}; }`);
        } else if (attribute !== 'groups') {
          const field = { comment: 5, home: 6, shell: 7 }[attribute];
          change.push(`{ ${test} || cairn_passwd_set ${name} ${field} ${shellQuote(String(desired[attribute]))}; }`);
        }
      }
      if (groups) change.push(groups);
      return `if cairn_getent passwd ${name} >/dev/null; then\n  ${change.length ? change.join(' &&\n  ') : 'true'}\nelse\n  ${create}${groups ? ` &&\n  ${groups}` : ''}\nfi`;
    },
  },

  async apply(ctx, action, desired, current) {
    const name = desired.name;
    if (action === 'destroy') {
      await runTool(ctx, ['deluser', ...(desired.remove_home === true ? ['--remove-home'] : []), name]);
      return;
    }
    const accounts = await readAccounts(ctx);
    if (action === 'create') {
      const args = ['-D'];
      if (desired.system === true) args.push('-S');
      if (!createsHome(desired)) args.push('-H');
      if (desired.uid !== undefined) args.push('-u', String(desired.uid));
      const group = desired.gid !== undefined ? primaryGroup(accounts, desired.gid) : implicitGroup(accounts, desired);
      if (group !== undefined) args.push('-G', group);
      if (desired.home !== undefined) args.push('-h', String(desired.home));
      if (desired.shell !== undefined) args.push('-s', String(desired.shell));
      if (desired.comment !== undefined) args.push('-g', String(desired.comment));
      await runTool(ctx, ['adduser', ...args, name]);
      // adduser lists the user in no group but its primary one.
      if (Array.isArray(desired.groups)) await syncGroups(ctx, accounts, name, desired.groups, []);
      return;
    }
    for (const attr of ['uid', 'gid'] as const) {
      if (changed(desired, current, attr)) {
        throw new ApplyError(noUsermod(attr));
      }
    }
    const fields: { comment?: string; home?: string; shell?: string } = {};
    if (changed(desired, current, 'comment')) fields.comment = String(desired.comment);
    if (changed(desired, current, 'home')) fields.home = String(desired.home);
    if (changed(desired, current, 'shell')) fields.shell = String(desired.shell);
    if (Object.keys(fields).length > 0) await rewritePasswd(ctx, name, fields);
    if (desired.groups && changed(desired, current, 'groups')) await syncGroups(ctx, accounts, name, desired.groups, memberOf(accounts, name));
  },
});
