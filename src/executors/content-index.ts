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
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { tempPathFor } from './temp-names.ts';

/** [device, inode, size, mtime ms, ctime ms, sha256 hex of the content]. */
type Entry = [number, number, number, number, number, string];

/** Entries of this format: older ones (a fingerprint, not a hash) are not read. */
const VERSION = 4;

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

function sameStat(entry: Entry, s: fs.Stats): boolean {
  return entry[0] === s.dev && entry[1] === s.ino && entry[2] === s.size && entry[3] === s.mtimeMs && entry[4] === s.ctimeMs;
}

export class ContentIndex {
  private entries?: Map<string, Entry>;
  /** Paths looked up or recorded in this run: kept when the index is trimmed. */
  private readonly used = new Set<string>();
  private changed = false;
  /** Stats are all taken after this moment, so a ctime well before it cannot be shared with a later change. */
  private readonly startedMs = Date.now();

  constructor(private readonly file: string, private readonly options: ContentIndexOptions) {}

  private load(): Map<string, Entry> {
    if (this.entries) return this.entries;
    this.entries = new Map();
    try {
      const data = JSON.parse(fs.readFileSync(this.file, 'utf8')) as { version?: unknown; files?: Record<string, unknown> };
      if (data.version === VERSION && data.files && typeof data.files === 'object') {
        for (const [path, entry] of Object.entries(data.files)) {
          if (Array.isArray(entry) && entry.length === 6 && typeof entry[5] === 'string') this.entries.set(path, entry as Entry);
        }
      }
    } catch {
      // No index yet, or not one we wrote: every file is read once and recorded.
    }
    return this.entries;
  }

  /** The sha256 (hex) of `path`'s content if this stat is the one recorded with it. */
  lookup(path: string, s: fs.Stats): string | undefined {
    if (!this.options.trust) return undefined;
    const entry = this.load().get(path);
    if (!entry) return undefined;
    this.used.add(path);
    return sameStat(entry, s) ? entry[5] : undefined;
  }

  /** Whether a trusted entry already holds `path` with this very stat (recording it again would change nothing). */
  recordedAs(path: string, s: fs.Stats): boolean {
    const entry = this.options.trust ? this.load().get(path) : undefined;
    return entry !== undefined && sameStat(entry, s);
  }

  /** Whether content read after taking `s` may be recorded with it: its ctime is older than a tick before the run. */
  recordable(s: fs.Stats): boolean {
    const margin = s.ctimeMs % 1000 === 0 ? WHOLE_SECOND_MARGIN_MS : FINE_MARGIN_MS;
    return s.ctimeMs <= this.startedMs - margin;
  }

  /** Records the sha256 (hex) of what `path`, with stat `s` (taken before its content was read), held. */
  record(path: string, s: fs.Stats, sha256: string): void {
    if (!this.recordable(s)) return;
    const entries = this.load();
    const old = entries.get(path);
    const entry: Entry = [s.dev, s.ino, s.size, s.mtimeMs, s.ctimeMs, sha256];
    this.used.add(path);
    if (old && old.every((v, i) => v === entry[i])) return;
    entries.set(path, entry);
    this.changed = true;
  }

  /** Writes the index back if this run recorded anything; best effort (it is only a cache). */
  save(): void {
    if (!this.options.save || !this.changed || !this.entries) return;
    let files = [...this.entries];
    if (files.length > MAX_ENTRIES) files = files.filter(([path]) => this.used.has(path));
    // Named as the executor's writes are: a run that takes over a killed one's lock removes it.
    const temp = tempPathFor(this.file);
    try {
      fs.mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
      fs.writeFileSync(temp, JSON.stringify({ version: VERSION, files: Object.fromEntries(files) }), { mode: 0o600 });
      fs.renameSync(temp, this.file);
      this.changed = false;
    } catch {
      fs.rmSync(temp, { force: true });
    }
  }
}
