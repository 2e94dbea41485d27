/**
 * The fstab format (Linux and FreeBSD: `device path fstype options dump pass`, octal escapes for
 * blanks) and the kernel's live mount table (Linux /proc/self/mountinfo; FreeBSD `mount -p`, which
 * prints fstab lines). Pure: the provider reads and writes, this parses and edits text.
 */

export interface FstabEntry {
  device: string;
  path: string;
  fstype: string;
  options: string;
  dump: number;
  pass: number;
}

/** What is mounted at a path now: the top of the stack when several are mounted there. */
export interface LiveMount {
  device: string;
  fstype: string;
  options: string;
}

/** `\040` (space), `\011` (tab), `\012` (newline), `\134` (backslash) → the characters. */
export function unescapeField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** A field as fstab writes it: blanks and backslashes as octal escapes. */
export function escapeField(field: string): string {
  return field.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

/** The entry a line holds, or undefined for a comment, a blank line or a line too short to be one. */
export function parseFstabLine(line: string): FstabEntry | undefined {
  const text = line.trim();
  if (text === '' || text.startsWith('#')) return undefined;
  const f = text.split(/\s+/);
  if (f.length < 2) return undefined;
  return {
    device: unescapeField(f[0]!),
    path: unescapeField(f[1]!),
    fstype: f[2] ?? 'auto',
    options: f[3] ?? 'defaults',
    dump: Number(f[4] ?? 0) || 0,
    pass: Number(f[5] ?? 0) || 0,
  };
}

/** Mount points compare without a trailing slash (`/mnt/data/` is `/mnt/data`). */
export function samePath(a: string, b: string): boolean {
  const norm = (p: string) => (p.length > 1 ? p.replace(/\/+$/, '') : p);
  return norm(a) === norm(b);
}

/** The first entry for `path` (the one `mount PATH` uses), and how many there are. */
export function findEntry(text: string, path: string): { entry?: FstabEntry; count: number } {
  let entry: FstabEntry | undefined;
  let count = 0;
  for (const line of text.split('\n')) {
    const e = parseFstabLine(line);
    if (!e || !samePath(e.path, path)) continue;
    entry ??= e;
    count++;
  }
  return entry ? { entry, count } : { count };
}

/** An entry as one line, fields separated by one space as Ansible's mount module writes them. */
export function formatEntry(e: FstabEntry): string {
  return [escapeField(e.device), escapeField(e.path), e.fstype, e.options, String(e.dump), String(e.pass)].join(' ');
}

/**
 * The file with `path`'s entry replaced by `entry` (where the first one was; any later ones for
 * the same path dropped) or appended, or every entry for `path` removed when `entry` is undefined.
 * Every other line, comments and blank lines included, is kept as it was.
 */
export function withEntry(text: string, path: string, entry: FstabEntry | undefined): string {
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  const out: string[] = [];
  let placed = false;
  for (const line of lines) {
    const e = parseFstabLine(line);
    if (!e || !samePath(e.path, path)) {
      out.push(line);
    } else if (entry && !placed) {
      out.push(formatEntry(entry));
      placed = true;
    }
  }
  if (entry && !placed) out.push(formatEntry(entry));
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

/**
 * Linux's /proc/self/mountinfo: `id parent major:minor root mountpoint options [optional…] -
 * fstype source superoptions`. The last line for a mount point is the one on top.
 */
export function parseMountinfo(text: string): Map<string, LiveMount> {
  const mounts = new Map<string, LiveMount>();
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0) continue;
    const options = [f[5]!, f[sep + 3] ?? ''].filter((o) => o !== '').join(',');
    mounts.set(unescapeField(f[4]!), { device: unescapeField(f[sep + 2] ?? ''), fstype: f[sep + 1]!, options });
  }
  return mounts;
}

/** FreeBSD's `mount -p`: what is mounted, as fstab lines; the last line for a path is on top. */
export function parseMountP(text: string): Map<string, LiveMount> {
  const mounts = new Map<string, LiveMount>();
  for (const line of text.split('\n')) {
    const e = parseFstabLine(line);
    if (e) mounts.set(e.path, { device: e.device, fstype: e.fstype, options: e.options });
  }
  return mounts;
}

/** The live mount at `path`, if any. */
export function liveAt(mounts: Map<string, LiveMount>, path: string): LiveMount | undefined {
  for (const [p, m] of [...mounts].reverse()) if (samePath(p, path)) return m;
  return undefined;
}
