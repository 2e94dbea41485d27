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
import { type Stats, closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { tempPathFor } from './temp-names.ts';

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

/** Whether row `i` of a stats column is this stat. */
function sameStatAt(stats: number[], i: number, s: Stats): boolean {
  const at = i * STAT_WIDTH;
  return stats[at] === s.dev && stats[at + 1] === s.ino && stats[at + 2] === s.size && stats[at + 3] === s.mtimeMs && stats[at + 4] === s.ctimeMs;
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

/** Paths, stats and hashes written out this many rows at a time: a large index is never one more string. */
const SAVE_CHUNK = 4096;

export class ContentIndex {
  private loaded?: Columns;
  /**
   * Entries this run recorded that differ from (or are missing in) the loaded ones: row `i` of
   * these columns, as in the file; a path recorded again keeps its row.
   */
  private readonly recorded = new Map<string, number>();
  private readonly recordedStats: number[] = [];
  private readonly recordedSha256: string[] = [];
  /** Loaded rows looked up or recorded in this run (recorded paths are all used): kept when the index is trimmed. */
  private usedRows?: Uint8Array;
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
    this.usedRows = new Uint8Array(this.loaded.paths.length);
    return this.loaded;
  }

  /**
   * The sha256 recorded for `path` (this run's record, else the loaded one) if it was recorded
   * with this very stat (`use`: the loaded row is marked used, kept when the index is trimmed).
   * Compared in the columns: no entry is built for the lookup every managed file makes.
   */
  private hashIfSame(path: string, s: Stats, use: boolean): string | undefined {
    const recorded = this.recorded.get(path);
    if (recorded !== undefined) return sameStatAt(this.recordedStats, recorded, s) ? this.recordedSha256[recorded] : undefined;
    const { row, stats, sha256 } = this.load();
    const i = row.get(path);
    if (i === undefined) return undefined;
    if (use) this.usedRows![i] = 1;
    return sameStatAt(stats, i, s) ? sha256.slice(i * HASH_WIDTH, (i + 1) * HASH_WIDTH) : undefined;
  }

  /** The sha256 (hex) of `path`'s content if this stat is the one recorded with it. */
  lookup(path: string, s: Stats): string | undefined {
    return this.options.trust ? this.hashIfSame(path, s, true) : undefined;
  }

  /** Whether a trusted entry already holds `path` with this very stat (recording it again would change nothing). */
  recordedAs(path: string, s: Stats): boolean {
    return this.options.trust && this.hashIfSame(path, s, false) !== undefined;
  }

  /** Whether content read after taking `s` may be recorded with it: its ctime is older than a tick before the run. */
  recordable(s: Stats): boolean {
    const margin = s.ctimeMs % 1000 === 0 ? WHOLE_SECOND_MARGIN_MS : FINE_MARGIN_MS;
    return s.ctimeMs <= this.startedMs - margin;
  }

  /** Records the sha256 (hex) of what `path`, with stat `s` (taken before its content was read), held. */
  record(path: string, s: Stats, sha256: string): void {
    if (!this.recordable(s)) return;
    if (this.hashIfSame(path, s, true) === sha256) return;
    let row = this.recorded.get(path);
    if (row === undefined) {
      row = this.recordedSha256.length;
      this.recorded.set(path, row);
    }
    const at = row * STAT_WIDTH;
    const stats = this.recordedStats;
    stats[at] = s.dev;
    stats[at + 1] = s.ino;
    stats[at + 2] = s.size;
    stats[at + 3] = s.mtimeMs;
    stats[at + 4] = s.ctimeMs;
    this.recordedSha256[row] = sha256;
    this.changed = true;
  }

  /** Writes the index back if this run recorded anything; best effort (it is only a cache). */
  save(): void {
    if (!this.options.save || !this.changed) return;
    const { paths, stats, sha256 } = this.load();
    const used = this.usedRows!;
    const kept = paths.filter((p) => !this.recorded.has(p)).length + this.recorded.size;
    const trim = kept > MAX_ENTRIES;
    // The loaded rows written (those this run did not record again), then this run's (recorded
    // paths are all used, so trimming keeps them).
    const loadedRows: number[] = [];
    paths.forEach((path, i) => {
      if (!this.recorded.has(path) && (!trim || used[i])) loadedRows.push(i);
    });
    const recordedPaths = [...this.recorded.keys()];
    const count = loadedRows.length + recordedPaths.length;
    /** Row `k` of the file, as `piece` writes it from the loaded columns or this run's. */
    const rowText = (k: number, piece: (stats: number[], row: number, sha256: (row: number) => string, path: string) => string): string => {
      if (k < loadedRows.length) {
        const i = loadedRows[k]!;
        return piece(stats, i, (r) => sha256.slice(r * HASH_WIDTH, (r + 1) * HASH_WIDTH), paths[i]!);
      }
      const path = recordedPaths[k - loadedRows.length]!;
      return piece(this.recordedStats, this.recorded.get(path)!, (r) => this.recordedSha256[r]!, path);
    };
    // Named as the executor's writes are: a run that takes over a killed one's lock removes it.
    const temp = tempPathFor(this.file);
    try {
      mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
      const fd = openSync(temp, 'w', 0o600);
      try {
        // The text JSON.stringify({ version, paths, stats, sha256 }) makes, written some rows at
        // a time: at 100,000 files the whole text, and the arrays it was made from, were 30 MiB
        // more at the end of the run, when it holds the most.
        const column = (open: string, piece: Parameters<typeof rowText>[1], separator: string, close: string) => {
          let text = open;
          for (let k = 0; k < count; k++) {
            text += `${k > 0 ? separator : ''}${rowText(k, piece)}`;
            if ((k + 1) % SAVE_CHUNK === 0) {
              writeAll(fd, text);
              text = '';
            }
          }
          writeAll(fd, text + close);
        };
        column(`{"version":${VERSION},"paths":[`, (_stats, _row, _sha256, path) => JSON.stringify(path), ',', ']');
        column(',"stats":[', (from, row) => JSON.stringify(from.slice(row * STAT_WIDTH, (row + 1) * STAT_WIDTH)).slice(1, -1), ',', ']');
        column(',"sha256":"', (_stats, row, hash) => hash(row), '', '"}');
      } finally {
        closeSync(fd);
      }
      renameSync(temp, this.file);
      this.changed = false;
    } catch {
      rmSync(temp, { force: true });
    }
  }
}

function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text);
  for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done);
}

