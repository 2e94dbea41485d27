/**
 * The user and group databases (passwd(5), group(5)): one parser for every executor and for the
 * account types. The rule, as getpwnam(3) reads the files: the first entry of a name wins, and
 * lines that are not entries (comments, FreeBSD has them; NIS `+`/`-` lines; blank or short
 * lines, or an id that is not a number) are skipped.
 */

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  /** The whole GECOS field. */
  comment: string;
  home: string;
  shell: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** Lines of a passwd or group text that hold entries: no comments (FreeBSD's files have them) or NIS `+`/`-` lines. */
function entryLines(text: string, fields: number): string[][] {
  const out: string[][] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    const f = line.split(':');
    if (f.length < fields || f[0] === '' || !/^\d+$/.test(f[2] ?? '')) continue;
    out.push(f);
  }
  return out;
}

/** passwd(5) lines; the first entry of a name wins, as getpwnam(3) does. */
export function parsePasswd(text: string): Map<string, PasswdEntry> {
  const users = new Map<string, PasswdEntry>();
  for (const f of entryLines(text, 7)) {
    const name = f[0]!;
    if (users.has(name)) continue;
    // A GECOS field cannot hold a colon, so any extra fields belong to the shell: keep them joined.
    users.set(name, { name, uid: Number(f[2]), gid: Number(f[3]), comment: f[4]!, home: f[5]!, shell: f.slice(6).join(':') });
  }
  return users;
}

/** group(5) lines; the first entry of a name wins. */
export function parseGroup(text: string): Map<string, GroupEntry> {
  const groups = new Map<string, GroupEntry>();
  for (const f of entryLines(text, 4)) {
    const name = f[0]!;
    if (groups.has(name)) continue;
    groups.set(name, { name, gid: Number(f[2]), members: f[3]!.trim() === '' ? [] : f[3]!.trim().split(',').map((m) => m.trim()).filter(Boolean) });
  }
  return groups;
}

/**
 * Names to numeric ids for an executor's chown and run-as, from the databases read once and
 * again after `forget()` (a command may have added users).
 */
export class IdLookup {
  private tables?: Promise<{ users: Map<string, PasswdEntry>; groups: Map<string, GroupEntry> }>;

  constructor(private readonly read: () => Promise<{ passwd: string; group: string }>) {}

  forget(): void {
    this.tables = undefined;
  }

  private load() {
    this.tables ??= this.read().then(({ passwd, group }) => ({ users: parsePasswd(passwd), groups: parseGroup(group) }));
    return this.tables;
  }

  /** A number passes through; a name is looked up (undefined: no such user). */
  async userId(name: string): Promise<number | undefined> {
    return /^\d+$/.test(name) ? Number(name) : (await this.load()).users.get(name)?.uid;
  }

  async groupId(name: string): Promise<number | undefined> {
    return /^\d+$/.test(name) ? Number(name) : (await this.load()).groups.get(name)?.gid;
  }

  /** The primary group of a user named in passwd. */
  async primaryGroup(user: string): Promise<number | undefined> {
    return (await this.load()).users.get(user)?.gid;
  }
}
