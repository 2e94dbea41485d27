/**
 * A jail's fstab entries as a site writes them (`src dst [fs opts [dump pass]]`, dst inside the
 * jail) and as iocage keeps them (`fstab -Hl`: the destination under the jail's root on the host,
 * `<iocroot>/jails/NAME/root<dst>`). Both sides, no schema.
 */

export interface FstabEntry {
  src: string;
  /** Inside the jail: `/mnt/data`. */
  dst: string;
  fs: string;
  opts: string;
  dump: string;
  pass: string;
}

/** `src dst [fs opts [dump pass]]`, defaults as iocage's one-path form: nullfs, ro, 0, 0. */
export function parseFstabEntry(text: string): FstabEntry | undefined {
  const f = text.trim().split(/\s+/);
  if (![2, 4, 6].includes(f.length)) return undefined;
  const [src, dst, fs = 'nullfs', opts = 'ro', dump = '0', pass = '0'] = f as [string, string, ...string[]];
  if (!dst.startsWith('/') || (fs === 'nullfs' && !src.startsWith('/'))) return undefined;
  if (!/^\d$/.test(dump) || !/^\d$/.test(pass)) return undefined;
  return { src, dst, fs, opts, dump, pass };
}

/** The six fields iocage's `fstab -a NAME "…"` takes. */
export function fstabLine(e: FstabEntry): string {
  return `${e.src} ${e.dst} ${e.fs} ${e.opts} ${e.dump} ${e.pass}`;
}

/**
 * One `fstab -Hl NAME` line (`idx\tsrc\tdst\tfs\topts\tdump\tpass`) with the destination seen from
 * inside the jail: what follows `/jails/NAME/root` (or `/templates/NAME/root`) in the host path.
 */
export function parseFstabListLine(line: string, name: string): FstabEntry | undefined {
  const f = line.split('\t');
  if (f.length < 7) return undefined;
  const [, src, hostDst, fs, opts, dump, pass] = f as [string, string, string, string, string, string, string];
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const inside = new RegExp(`/(?:jails|templates)/${escaped}/root(/.*)?$`).exec(hostDst);
  return { src, dst: inside ? inside[1] ?? '/' : hostDst, fs, opts, dump, pass };
}

export const sameEntry = (a: FstabEntry, b: FstabEntry): boolean => fstabLine(a) === fstabLine(b);
