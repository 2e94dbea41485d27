/**
 * What the local executor last verified each managed file held, keyed by the file's stat: a file
 * whose device, inode, size, mtime and ctime are all as they were when its content was read has
 * not been written since, so a later run need not read it again (git's index does the same).
 * It holds a fingerprint of that content (lib/fingerprint.ts), which answers "does it hold these
 * bytes?", and its sha256 when a run asked for that.
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

/** [device, inode, size, mtime ms, ctime ms, fingerprint (two halves), sha256 hex]; a digest not yet known is null. */
type Entry = [number, number, number, number, number, number | null, number | null, string | null];

/** What is known of a file's content. */
export interface Digests {
  fingerprint?: [number, number];
  sha256?: string;
}

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
      if (data.version === 3 && data.files && typeof data.files === 'object') {
        for (const [path, entry] of Object.entries(data.files)) {
          if (Array.isArray(entry) && entry.length === 8) this.entries.set(path, entry as Entry);
        }
      }
    } catch {
      // No index yet, or not one we wrote: every file is read once and recorded.
    }
    return this.entries;
  }

  /** What is known of `path`'s content if this stat is the one recorded with it. */
  lookup(path: string, s: fs.Stats): Digests | undefined {
    if (!this.options.trust) return undefined;
    const entry = this.load().get(path);
    if (!entry) return undefined;
    this.used.add(path);
    if (!sameStat(entry, s)) return undefined;
    return { ...(entry[5] !== null && entry[6] !== null ? { fingerprint: [entry[5], entry[6]] } : {}), ...(entry[7] !== null ? { sha256: entry[7] } : {}) };
  }

  /** Whether content read after taking `s` may be recorded with it: its ctime is older than a tick before the run. */
  recordable(s: fs.Stats): boolean {
    const margin = s.ctimeMs % 1000 === 0 ? WHOLE_SECOND_MARGIN_MS : FINE_MARGIN_MS;
    return s.ctimeMs <= this.startedMs - margin;
  }

  /** Records what `path`, with stat `s` (taken before its content was read), held; kept with what is known of the same stat. */
  record(path: string, s: fs.Stats, digests: Digests): void {
    if (!this.recordable(s)) return;
    const entries = this.load();
    const old = entries.get(path);
    const known = old && sameStat(old, s) ? old : undefined;
    const fingerprint = digests.fingerprint ?? (known && known[5] !== null && known[6] !== null ? [known[5], known[6]] : undefined);
    const entry: Entry = [s.dev, s.ino, s.size, s.mtimeMs, s.ctimeMs, fingerprint?.[0] ?? null, fingerprint?.[1] ?? null, digests.sha256 ?? known?.[7] ?? null];
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
      fs.writeFileSync(temp, JSON.stringify({ version: 3, files: Object.fromEntries(files) }), { mode: 0o600 });
      fs.renameSync(temp, this.file);
      this.changed = false;
    } catch {
      fs.rmSync(temp, { force: true });
    }
  }
}
