/**
 * The user and group databases as the target sees them, read once for every `user`, `group` and
 * `authorized_key` node of a run: one command prints `getent passwd` and `getent group` (NSS, so
 * what login and sshd see), or the files themselves where there is no getent.
 */
import { outputTail } from './commands.ts';
import { parseGroup, parsePasswd, type GroupEntry, type PasswdEntry } from '../executors/accounts.ts';
import { ApplyError, type ProviderContext } from './type.ts';

export { parseGroup, parsePasswd, type GroupEntry, type PasswdEntry };

export interface Accounts {
  users: Map<string, PasswdEntry>;
  groups: Map<string, GroupEntry>;
  /** The first group listed with this gid. */
  groupByGid: Map<number, GroupEntry>;
}

/** A line that no passwd or group entry can be (it has no colon). */
const GROUPS_FOLLOW = '--cairn-groups--';

/** One shell line for both databases; FreeBSD, Alpine (musl-utils) and glibc systems have getent. */
export const ACCOUNTS_SCRIPT = 'if command -v getent >/dev/null 2>&1; then getent passwd; echo ' + GROUPS_FOLLOW +
  '; getent group; else cat /etc/passwd; echo ' + GROUPS_FOLLOW + '; cat /etc/group; fi';

/** Splits the script's output into the two databases. */
export function parseAccounts(output: string): Accounts {
  const at = output.indexOf(`${GROUPS_FOLLOW}\n`);
  const passwd = at < 0 ? output : output.slice(0, at);
  const group = at < 0 ? '' : output.slice(at + GROUPS_FOLLOW.length + 1);
  const groups = parseGroup(group);
  const groupByGid = new Map<number, GroupEntry>();
  for (const g of groups.values()) if (!groupByGid.has(g.gid)) groupByGid.set(g.gid, g);
  return { users: parsePasswd(passwd), groups, groupByGid };
}

/** Both databases, read with one command per run (until the next change on the target). */
export function readAccounts(ctx: ProviderContext): Promise<Accounts> {
  return ctx.batch('accounts', async () => {
    const r = await ctx.exec.run(['sh', '-c', ACCOUNTS_SCRIPT]);
    // getent exits 0 when it listed anything; a database it cannot enumerate at all is an error.
    if (r.code !== 0 || !r.stdout.includes(GROUPS_FOLLOW)) {
      throw new ApplyError(`could not read the user and group databases: ${outputTail(r.stderr || r.stdout) || `exit ${r.code}`}`);
    }
    return parseAccounts(r.stdout);
  });
}

/** Alpine gets BusyBox's applets; shadow-utils (useradd) is an extra package there. */
export function isAlpine(facts: Record<string, unknown>): boolean {
  return facts.distribution === 'alpine' || facts.os_family === 'alpine';
}

/** Runs a tool; a failure becomes the node's error with the tool's own message. */
export async function runTool(ctx: ProviderContext, argv: string[]): Promise<void> {
  const r = await ctx.exec.run(argv);
  if (r.code === 0) return;
  const output = outputTail(`${r.stderr}\n${r.stdout}`);
  throw new ApplyError(`${argv[0]} exited with ${r.code}${output ? `: ${output}` : ''}`);
}
