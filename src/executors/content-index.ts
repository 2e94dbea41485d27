/**
 * What the local executor last verified each managed file held, keyed by the file's stat: a file
 * whose device, inode, size, mtime and ctime are all as they were when its content was read has
 * not been written since, so a later run need not read it again (git's index does the same).
 * It holds the SHA-256 of that content: "does it hold these bytes?" is answered by comparing the
 * SHA-256 of the bytes wanted with it, never by a weaker fingerprint (a crafted content of the same
 * size with the same 64-bit fingerprint would pass for the wanted one).
 *
 * Why trusting the stat is sound: every change to a file's content sets its ctime to the file
 * system's clock, and no user call can set a ctime back. The one gap is a change made within the
 * same clock tick as the recorded ctime ("racy" in git's terms), so a file is recorded only when
 * its ctime is older than the run's start by more than a tick (2 s on file systems with whole
 * seconds). `--checksum` reads every file regardless.
 *
 * A cache, not state: it is written whole to a temp file and renamed (no fsync), and a missing,
 * damaged or foreign file counts as empty, so the worst a crash can do is cost a read.
 */
import { type Stats, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { tempPathFor } from './temp-names.ts';

/** [device, inode, size, mtime ms, ctime ms, sha256 hex of the content]. */
type Entry = [number, number, number, number, number, string];

/**
 * Entries of this format: older ones (a fingerprint, not a hash; one record per path) are not
 * read. The file is three columns, `paths`, `stats` (five numbers a path) and `sha256` (64 hex
 * digits a path, one string): a large index parses several times faster than one object a path,
 * and is held as those columns and a map from path to row rather than an array per path.
 */
const VERSION = 5;
const STAT_WIDTH = 5;
const HASH_WIDTH = 64;

/** How far a recorded ctime must lie before the run's start: more than a clock tick of the file system. */
const FINE_MARGIN_MS = 50;
const WHOLE_SECOND_MARGIN_MS = 2000;
/** Past this many entries, those this run did not use are dropped when saving. */
const MAX_ENTRIES = 200_000;

export interface ContentIndexOptions {
  /** Trust recorded entries (false: `--checksum`, every file is read; reads are still recorded). */
  trust: boolean;
  /** Write the index back when the executor closes (false for `plan`, which changes nothing). */
  save: boolean;
}

/** The index as the file holds it: row `i` is paths[i], stats[5i .. 5i+4] and sha256[64i .. 64i+63]. */
interface Columns {
  paths: string[];
  stats: number[];
  sha256: string;
  row: Map<string, number>;
}

function sameStat(entry: Entry, s: Stats): boolean {
  return entry[0] === s.dev && entry[1] === s.ino && entry[2] === s.size && entry[3] === s.mtimeMs && entry[4] === s.ctimeMs;
}

/** The columns of a parsed index file, or undefined if it is not one of this format. */
function columns(data: unknown): Columns | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const { version, paths, stats, sha256 } = data as Record<string, unknown>;
  if (version !== VERSION || !Array.isArray(paths) || !Array.isArray(stats) || typeof sha256 !== 'string') return undefined;
  if (stats.length !== paths.length * STAT_WIDTH || sha256.length !== paths.length * HASH_WIDTH) return undefined;
  if (!stats.every((n) => typeof n === 'number') || !/^[0-9a-f]*$/.test(sha256)) return undefined;
  const row = new Map<string, number>();
  for (let i = 0; i < paths.length; i++) {
    if (typeof paths[i] !== 'string') return undefined;
    row.set(paths[i] as string, i);
  }
  return { paths: paths as string[], stats: stats as number[], sha256, row };
}

export class ContentIndex {
  private loaded?: Columns;
  /** Entries this run recorded that differ from (or are missing in) the loaded ones. */
  private readonly recorded = new Map<string, Entry>();
  /** Paths looked up or recorded in this run: kept when the index is trimmed. */
  private readonly used = new Set<string>();
  private changed = false;
  /** Stats are all taken after this moment, so a ctime well before it cannot be shared with a later change. */
  private readonly startedMs = Date.now();

  constructor(private readonly file: string, private readonly options: ContentIndexOptions) {}

  private load(): Columns {
    if (this.loaded) return this.loaded;
    try {
      this.loaded = columns(JSON.parse(readFileSync(this.file, 'utf8')));
    } catch {
      // No index yet, or not one we wrote: every file is read once and recorded.
    }
    this.loaded ??= { paths: [], stats: [], sha256: '', row: new Map() };
    return this.loaded;
  }

  /** The entry for `path`: this run's record, else the loaded one. */
  private entry(path: string): Entry | undefined {
    const recorded = this.recorded.get(path);
    if (recorded) return recorded;
    const { row, stats, sha256 } = this.load();
    const i = row.get(path);
    if (i === undefined) return undefined;
    const at = i * STAT_WIDTH;
    return [stats[at]!, stats[at + 1]!, stats[at + 2]!, stats[at + 3]!, stats[at + 4]!, sha256.slice(i * HASH_WIDTH, (i + 1) * HASH_WIDTH)];
  }

  /** The sha256 (hex) of `path`'s content if this stat is the one recorded with it. */
  lookup(path: string, s: Stats): string | undefined {
    if (!this.options.trust) return undefined;
    const entry = this.entry(path);
    if (!entry) return undefined;
    this.used.add(path);
    return sameStat(entry, s) ? entry[5] : undefined;
  }

  /** Whether a trusted entry already holds `path` with this very stat (recording it again would change nothing). */
  recordedAs(path: string, s: Stats): boolean {
    const entry = this.options.trust ? this.entry(path) : undefined;
    return entry !== undefined && sameStat(entry, s);
  }

  /** Whether content read after taking `s` may be recorded with it: its ctime is older than a tick before the run. */
  recordable(s: Stats): boolean {
    const margin = s.ctimeMs % 1000 === 0 ? WHOLE_SECOND_MARGIN_MS : FINE_MARGIN_MS;
    return s.ctimeMs <= this.startedMs - margin;
  }

  /** Records the sha256 (hex) of what `path`, with stat `s` (taken before its content was read), held. */
  record(path: string, s: Stats, sha256: string): void {
    if (!this.recordable(s)) return;
    const old = this.entry(path);
    const entry: Entry = [s.dev, s.ino, s.size, s.mtimeMs, s.ctimeMs, sha256];
    this.used.add(path);
    if (old && old.every((v, i) => v === entry[i])) return;
    this.recorded.set(path, entry);
    this.changed = true;
  }

  /** Writes the index back if this run recorded anything; best effort (it is only a cache). */
  save(): void {
    if (!this.options.save || !this.changed) return;
    const { paths, stats, sha256 } = this.load();
    const kept = paths.filter((p) => !this.recorded.has(p)).length + this.recorded.size;
    const keep = kept > MAX_ENTRIES ? (path: string) => this.used.has(path) : () => true;
    const out = { paths: [] as string[], stats: [] as number[], sha256: [] as string[] };
    paths.forEach((path, i) => {
      if (this.recorded.has(path) || !keep(path)) return;
      out.paths.push(path);
      for (let k = 0; k < STAT_WIDTH; k++) out.stats.push(stats[i * STAT_WIDTH + k]!);
      out.sha256.push(sha256.slice(i * HASH_WIDTH, (i + 1) * HASH_WIDTH));
    });
    for (const [path, entry] of this.recorded) {
      if (!keep(path)) continue;
      out.paths.push(path);
      out.stats.push(...entry.slice(0, STAT_WIDTH) as number[]);
      out.sha256.push(entry[5]);
    }
    // Named as the executor's writes are: a run that takes over a killed one's lock removes it.
    const temp = tempPathFor(this.file);
    try {
      mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
      writeFileSync(temp, JSON.stringify({ version: VERSION, paths: out.paths, stats: out.stats, sha256: out.sha256.join('') }), { mode: 0o600 });
      renameSync(temp, this.file);
      this.changed = false;
    } catch {
      rmSync(temp, { force: true });
    }
  }
}
