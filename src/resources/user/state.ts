/**
 * What every user provider shares: the current state of a user in the vocabulary of its part
 * (gid as a name or a number, as the part gives it; groups in the part's order when they are the
 * same set), and what a part asks for in the tools' terms.
 */
import { type Current, type ProviderContext, type Desired } from '../type.ts';
import { readAccounts, type Accounts, type PasswdEntry } from '../accounts.ts';
import type { userType } from './type.ts';
import { shellQuote } from '../../lib/shell.ts';

type UserAttributes = Desired<typeof userType>;

/** A group given by name or number, as the group's name when the database knows it. */
export function groupName(accounts: Accounts, group: string | number): string | undefined {
  const text = String(group);
  if (accounts.groups.has(text)) return text;
  return /^\d+$/.test(text) ? accounts.groupByGid.get(Number(text))?.name : undefined;
}

/** The groups that list `user` as a member (its supplementary groups), in database order. */
export function memberOf(accounts: Accounts, user: string): string[] {
  return [...accounts.groups.values()].filter((g) => g.members.includes(user)).map((g) => g.name);
}

/** The primary group as the part names it: its name, its number, or whatever the entry holds. */
function gidAs(accounts: Accounts, desired: unknown, gid: number): string | number {
  if (typeof desired === 'number') return gid;
  const wanted = typeof desired === 'string' ? desired : '';
  if (/^\d+$/.test(wanted)) return String(gid);
  // Several groups may share a gid: the part's name is right when its gid is the entry's.
  if (accounts.groups.get(wanted)?.gid === gid) return wanted;
  return accounts.groupByGid.get(gid)?.name ?? String(gid);
}

/** The supplementary groups, reported in the part's order when they are the same set (numbers resolved). */
function groupsAs(accounts: Accounts, desired: unknown, actual: string[]): string[] {
  if (!Array.isArray(desired)) return actual;
  const wanted = new Set(desired.map((g) => groupName(accounts, String(g)) ?? String(g)));
  const same = wanted.size === actual.length && actual.every((g) => wanted.has(g));
  return same ? [...(desired as string[])] : [...actual].sort();
}

export function userState(accounts: Accounts, entry: PasswdEntry, desired: UserAttributes): Record<string, unknown> {
  const current: Record<string, unknown> = { name: entry.name, ensure: 'present' };
  if (desired.uid !== undefined) current.uid = entry.uid;
  if (desired.gid !== undefined) current.gid = gidAs(accounts, desired.gid, entry.gid);
  if (desired.groups !== undefined) current.groups = groupsAs(accounts, desired.groups, memberOf(accounts, entry.name));
  if (desired.home !== undefined) current.home = entry.home;
  if (desired.shell !== undefined) current.shell = entry.shell;
  if (desired.comment !== undefined) current.comment = entry.comment;
  return current;
}

/** The `read` of every user provider: one batched reading of both databases for the whole run. */
export async function readUser(ctx: ProviderContext, desired: UserAttributes): Promise<Current<typeof userType>> {
  const accounts = await readAccounts(ctx);
  const entry = accounts.users.get(desired.name);
  return entry ? userState(accounts, entry, desired) : undefined;
}

/** Attributes whose current value differs from the part's (all of them when creating). */
export function changed(desired: UserAttributes, current: Current<typeof userType>, attr: keyof UserAttributes): boolean {
  if (desired[attr] === undefined) return false;
  if (!current) return true;
  return JSON.stringify(current[attr]) !== JSON.stringify(desired[attr]);
}

/**
 * The flags useradd/usermod and pw useradd/usermod share, for the attributes that differ from
 * `current` (all given ones when creating): -u, -g, -G (the exact list), -d, -s, -c.
 */
export function accountOptions(desired: UserAttributes, current: Current<typeof userType>): string[] {
  const args: string[] = [];
  if (changed(desired, current, 'uid')) args.push('-u', String(desired.uid));
  if (changed(desired, current, 'gid')) args.push('-g', String(desired.gid));
  if (desired.groups && changed(desired, current, 'groups')) args.push('-G', desired.groups.join(','));
  if (changed(desired, current, 'home')) args.push('-d', String(desired.home));
  if (changed(desired, current, 'shell')) args.push('-s', String(desired.shell));
  if (changed(desired, current, 'comment')) args.push('-c', String(desired.comment));
  return args;
}

/**
 * Whether the home is made when the user is created: `create_home` when given, else yes for
 * ordinary users (Ansible's `create_home: yes`) and no for system users (useradd -r's own default).
 */
export function createsHome(desired: UserAttributes): boolean {
  return typeof desired.create_home === 'boolean' ? desired.create_home : desired.system !== true;
}

/**
 * The primary group for a new user without a `gid`: a group already named like the user (say,
 * declared just before it), which useradd and BusyBox adduser would otherwise refuse to create.
 */
export function implicitGroup(accounts: Accounts, desired: UserAttributes): string | undefined {
  if (desired.gid !== undefined) return undefined;
  const name = desired.name;
  return accounts.groups.has(name) ? name : undefined;
}

// ---- the same, as shell for `cairn export` (resources/shell-prelude.ts has the functions) ----

/** A primary group given by number is compared as the entry's number, one given by name through the group database. */
function numeric(gid: string | number): boolean {
  return typeof gid === 'number' || /^\d+$/.test(gid);
}

/** The tests of every user provider's check: exists, then each attribute the part gives. */
export function shellUserInSync(desired: UserAttributes): string {
  const name = shellQuote(desired.name);
  if (desired.ensure === 'absent') return `! cairn_getent passwd ${name} >/dev/null`;
  return [`cairn_getent passwd ${name} >/dev/null`, ...shellAttributeTests(desired).map((t) => t.test)].join(' && ');
}

/** Per attribute the part gives: a test that it is as asked. */
export function shellAttributeTests(desired: UserAttributes): { attribute: 'uid' | 'gid' | 'groups' | 'home' | 'shell' | 'comment'; test: string }[] {
  const name = shellQuote(desired.name);
  const tests: { attribute: 'uid' | 'gid' | 'groups' | 'home' | 'shell' | 'comment'; test: string }[] = [];
  if (desired.uid !== undefined) tests.push({ attribute: 'uid', test: `cairn_user_is ${name} 3 ${desired.uid}` });
  if (desired.gid !== undefined) {
    const gid = shellQuote(String(desired.gid));
    tests.push({ attribute: 'gid', test: numeric(desired.gid) ? `cairn_user_is ${name} 4 ${gid}` : `cairn_user_gid_is ${name} ${gid}` });
  }
  if (desired.groups !== undefined) tests.push({ attribute: 'groups', test: ['cairn_user_groups_are', name, ...desired.groups.map(shellQuote)].join(' ') });
  if (desired.home !== undefined) tests.push({ attribute: 'home', test: `cairn_user_is ${name} 6 ${shellQuote(desired.home)}` });
  if (desired.shell !== undefined) tests.push({ attribute: 'shell', test: `cairn_user_is ${name} 7 ${shellQuote(desired.shell)}` });
  if (desired.comment !== undefined) tests.push({ attribute: 'comment', test: `cairn_user_is ${name} 5 ${shellQuote(desired.comment)}` });
  return tests;
}

/**
 * A create command with the primary group `implicitGroup` would give it: a group already named
 * like the user, when the part names none (decided by the script, as the run decides it).
 */
export function shellCreate(desired: UserAttributes, command: (group: string | undefined) => string): string {
  if (desired.gid !== undefined) return command(undefined);
  const name = shellQuote(desired.name);
  return `if cairn_getent group ${name} >/dev/null; then ${command(name)}; else ${command(undefined)}; fi`;
}
