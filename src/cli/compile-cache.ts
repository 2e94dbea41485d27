/**
 * A cache of compiled runs, so a converged site costs a file read instead of a compile.
 *
 * Compiling is a pure function of the site's files, the target selection, `--var`, the facts and
 * Cairn's own build (templates cannot reach the process, its environment or modules). The key is
 * all of those, with each site file represented by its path, size, inode, modification time and
 * change time (ctime: an edit that restores the mtime, as `touch -r` or utimes() can, still sets
 * it, and nothing can set it back, as the content index relies on too);
 * it is written in full on an entry's first line and compared in full, and the entry's file is
 * named by its fingerprint (no sha256: a converged run does not load node:crypto). Each target's
 * run is an entry of its own, keyed by its own facts, so a change on one machine does not
 * recompile the others. Sites with TypeScript state files (arbitrary code) are never cached.
 * Nor is a compile that used a `!secret` (DESIGN §4a): its run holds the plaintext, which must not
 * reach the disk, so a site with secrets recompiles those targets on every run.
 * Set CAIRN_NO_CACHE=1 to bypass it. A site folder that cannot be written simply gets no cache.
 * Entries hold rendered templates (a key, a password built from facts): they are 0600 files in
 * 0700 folders, whatever the umask, and a cache an older Cairn left more open is closed on use.
 *
 * Besides those entries, each target keeps its last compile's invocation records (`latest`):
 * keyed by Cairn's build and the target alone, since each record says itself what it was made
 * from (catalog/compile.ts, InvocationRecord). A compile after any change reuses from them every
 * invocation whose inputs are the same, and renders only the others.
 */
import { closeSync, fchmodSync, fstatSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { sweepOrphans } from '../executors/temp-names.ts';
import { fingerprintHex } from '../lib/fingerprint.ts';
import { releaseGarbage } from '../lib/memory.ts';
import { PRIVATE_FILE, privateDir, privateFile } from '../lib/private-files.ts';
import { longWork, shortRun } from '../lib/tiering.ts';

declare const __CAIRN_BUILD__: string | undefined;

export type { Compiled } from '../graph/codec.ts';

const SKIP = new Set(['.cairn', '.git', 'node_modules']);

/** An entry's temp file while it is written: `<kind>-<fingerprint>.json.<pid>.tmp`. */
const CACHE_TEMP = /^[a-z]+-[^/]*\.json\.(\d+)\.tmp$/;

/** Path, size, inode, mtime and ctime of every file in the site; undefined if the site must not be cached. */
function siteFiles(root: string): string[] | undefined {
  const out: string[] = [];
  const walk = (dir: string, depth: number): boolean => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (SKIP.has(entry.name)) continue;
      const abs = join(dir, entry.name);
      // A link to a folder is walked too (the loader follows links inside the site); a deep
      // nesting means a link loop, and such a site is not cached.
      if (entry.isDirectory() || (entry.isSymbolicLink() && statSync(abs).isDirectory())) {
        if (depth > 32 || !walk(abs, depth + 1)) return false;
        continue;
      }
      if (/\.m?ts$/.test(entry.name) && /(^|\/)states\//.test(relative(root, abs))) return false;
      const s = statSync(abs, { bigint: true });
      out.push(`${relative(root, abs)}\u0000${s.size}\u0000${s.ino}\u0000${s.mtimeNs}\u0000${s.ctimeNs}`);
    }
    return true;
  };
  return walk(root, 0) ? out.sort() : undefined;
}

function fileStamp(path: string): string {
  try {
    const s = statSync(path, { bigint: true });
    return `${path}\u0000${s.size}\u0000${s.ino}\u0000${s.mtimeNs}\u0000${s.ctimeNs}`;
  } catch {
    return `${path}\u0000missing`;
  }
}

/** Entries kept per kind: enough for alternating inputs (two --var values) and many targets. */
const KEEP = 64;

/** Keeps the most recently written entries of a kind. */
function prune(dir: string, kind: string): void {
  const entries = readdirSync(dir).filter((f) => f.startsWith(`${kind}-`) && f.endsWith('.json'))
    .map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const { f } of entries.slice(KEEP)) {
    // unlink, not rmSync: that walks its rimraf code for a file too, a few milliseconds cold.
    try {
      unlinkSync(join(dir, f));
    } catch {
      // Gone already (another run pruned it).
    }
  }
}

/** How an entry's value is kept in its file. */
export interface Codec<T> {
  /** Pieces written one after another: a large value is never joined into one more string. */
  encode(value: T): string[];
  /** `bytes`: the entry's content after its key line. */
  decode(bytes: Buffer): T;
  /**
   * Decodes from the first piece alone, reading the rest (`rest()`: the other pieces' bytes) only
   * if asked: a large entry whose tail is seldom needed is then neither read nor held. An entry
   * of such a codec keeps the first piece's length on a line after the key. `first` comes as
   * text: the bytes it was read into are let go before it is decoded, not held beside it.
   */
  decodeFirst?(first: string, rest: () => Buffer): T;
}

/** What a first read takes of an entry: the key line and the length line, usually. */
const FIRST_READ = 64 * 1024;

/** Reads `length` bytes of an open file from `position` (fewer only at its end). */
function readAt(fd: number, length: number, position: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, bytes, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? bytes : bytes.subarray(0, done);
}

/**
 * An entry of a codec with decodeFirst: undefined if the file's key is not `key` (or the file is
 * not one such entry). The rest is read when asked, from the same file: its device, inode, size
 * and mtime must be as they were (entries are replaced by rename, never rewritten in place).
 */
function readFirst<T>(path: string, key: Buffer, codec: Codec<T> & { decodeFirst: NonNullable<Codec<T>['decodeFirst']> }, onSize: (bytes: number) => void): T | undefined {
  const fd = openSync(path, 'r');
  let first: string;
  let restAt: number;
  let seen: ReturnType<typeof fstatSync>;
  try {
    seen = fstatSync(fd);
    const start = readAt(fd, Math.min(FIRST_READ, seen.size), 0);
    if (start.length <= key.length || !start.subarray(0, key.length).equals(key)) return undefined;
    onSize(seen.size);
    const newline = start.indexOf(0x0a, key.length);
    const length = newline < 0 ? NaN : Number(start.toString('latin1', key.length, newline));
    if (!Number.isSafeInteger(length) || length < 0 || newline + 1 + length > seen.size) return undefined;
    // Only the text is kept: a large entry's bytes (tens of MiB) are garbage before it is parsed,
    // and young enough to be freed by the first scavenge the parse makes.
    first = newline + 1 + length <= start.length ? start.toString('utf8', newline + 1, newline + 1 + length) : readAt(fd, length, newline + 1).toString('utf8');
    restAt = newline + 1 + length;
  } finally {
    closeSync(fd);
  }
  return codec.decodeFirst(first, () => {
    const again = openSync(path, 'r');
    try {
      const now = fstatSync(again);
      if (now.dev !== seen.dev || now.ino !== seen.ino || now.size !== seen.size || now.mtimeMs !== seen.mtimeMs) {
        throw new Error(`the compile cache entry ${path} was replaced while in use: run the command again`);
      }
      return readAt(again, seen.size - restAt, restAt);
    } finally {
      closeSync(again);
    }
  });
}

/** A cached entry past this size holds a run with work to do (80 resources or so): lib/tiering.ts. */
const SHORT_RUN_MIN_BYTES = 64 * 1024;
/** ...and up to this size: a larger one (tens of thousands of resources) makes a long run, which V8's optimizing compiler pays back. */
const SHORT_RUN_MAX_BYTES = 4 * 1024 * 1024;

/** A compiled run of this size read from the cache: a short run (lib/tiering.ts), or a long one. */
function tierBySize(bytes: number): void {
  if (bytes > SHORT_RUN_MAX_BYTES) longWork();
  else if (bytes > SHORT_RUN_MIN_BYTES) shortRun();
}
const JSON_CODEC: Codec<unknown> = { encode: (v) => [JSON.stringify(v)], decode: (bytes) => JSON.parse(bytes.toString('utf8')) as unknown };

export interface CacheInputs {
  site: string;
  vars: string[];
}

/**
 * Entries keyed by everything compiling depends on besides what each caller adds to the key (the
 * target selection; one target's name and facts). Disabled (every lookup produces) when the
 * site must not be cached or CAIRN_NO_CACHE is set.
 */
export class CompileCache {
  private readonly base?: string;
  private build?: string;
  private readonly dir: string;
  private swept = false;

  constructor(inputs: CacheInputs) {
    const root = resolve(inputs.site);
    this.dir = join(root, '.cairn', 'cache');
    const build = typeof __CAIRN_BUILD__ === 'string' ? __CAIRN_BUILD__ : undefined;
    if (!build || process.env.CAIRN_NO_CACHE) return;
    let files: string[] | undefined;
    try {
      files = siteFiles(root);
    } catch {
      files = undefined;
    }
    if (!files) return;
    this.build = build;
    this.base = JSON.stringify({
      build,
      files,
      vars: inputs.vars,
      varFiles: inputs.vars.filter((v) => v.includes('=@')).map((v) => fileStamp(resolve(v.slice(v.indexOf('=@') + 2)))),
    });
  }

  private closed = false;

  /** `.cairn` and its cache folder 0700; once per process, and every entry 0600 if the folder was open to others. */
  private makePrivate(): void {
    if (this.closed) return;
    privateDir(dirname(this.dir));
    if (privateDir(this.dir)) for (const f of readdirSync(this.dir)) privateFile(join(this.dir, f));
    this.closed = true;
  }

  /** A facts file stands in the key by its stamp, gathered facts by their value. */
  static factsKey(factsFile: string | undefined, facts: Record<string, unknown>): unknown {
    return factsFile ? fileStamp(resolve(factsFile)) : facts;
  }

  /** `keep(value)` false: the value is returned but not written (it holds a secret's plaintext). */
  async get<T>(kind: string, extra: unknown, produce: () => Promise<T>, codec: Codec<T> = JSON_CODEC as Codec<T>, keep?: (value: T) => boolean): Promise<T> {
    if (this.base === undefined) return produce();
    // Two JSON texts, each on one line: the first ends where its object closes.
    if (!this.swept) {
      // A run killed mid-write left `<entry>.<pid>.tmp`: never read (entries are found by their
      // exact name), but litter; removed once its process is gone.
      this.swept = true;
      sweepOrphans(this.dir, CACHE_TEMP, 'file');
    }
    const { decodeFirst } = codec;
    // An entry whose first piece's length follows the key is another layout: another key.
    const key = Buffer.from(`${JSON.stringify({ kind, extra, ...(decodeFirst ? { layout: 'first-length' } : {}) })}${this.base}\n`);
    const path = join(this.dir, `${kind}-${fingerprintHex(key)}.json`);
    try {
      // The key on the first line, then the value as its codec wrote it.
      if (decodeFirst) {
        let bytes = 0;
        const value = readFirst(path, key, { ...codec, decodeFirst }, (size) => {
          bytes = size;
          tierBySize(size);
        });
        this.makePrivate();
        if (value !== undefined) {
          // Parsing a large entry leaves its text and parsed form (as much again as the value) in
          // the old generation, where V8 would keep them through the whole run: 100,000 resources
          // held 100 MiB of them at the run's peak. Collected now, the run reuses that memory.
          if (bytes > SHORT_RUN_MAX_BYTES) releaseGarbage();
          return value;
        }
      } else {
        const bytes = readFileSync(path);
        this.makePrivate();
        if (bytes.length > key.length && bytes.subarray(0, key.length).equals(key)) {
          tierBySize(bytes.length);
          return codec.decode(bytes.subarray(key.length));
        }
      }
    } catch {
      // No entry yet, or an unreadable one: produce it.
    }
    const value = await produce();
    if (keep && !keep(value)) return value;
    // Outside the try: a value the codec refuses is a bug to report, not a read-only site.
    const pieces: (string | Buffer)[] = codec.encode(value);
    if (decodeFirst) {
      const first = Buffer.from(pieces[0] ?? '');
      pieces.splice(0, 1, `${first.length}\n`, first);
    }
    this.write(kind, path, key, pieces);
    return value;
  }

  /** The key line and file of a `latest` entry: Cairn's build, the kind and `extra`, not the site's files or vars. */
  private latestEntry(kind: string, extra: unknown): { key: Buffer; path: string } | undefined {
    if (this.build === undefined) return undefined;
    const key = Buffer.from(`${JSON.stringify({ kind, extra, build: this.build })}\n`);
    return { key, path: join(this.dir, `${kind}-${fingerprintHex(key)}.json`) };
  }

  /** The value last stored with `storeLatest(kind, extra)`, whatever changed in the site since; undefined if none (or the cache is off). */
  latest<T>(kind: string, extra: unknown): T | undefined {
    const entry = this.latestEntry(kind, extra);
    if (!entry) return undefined;
    try {
      const bytes = readFileSync(entry.path);
      this.makePrivate();
      if (bytes.length > entry.key.length && bytes.subarray(0, entry.key.length).equals(entry.key)) {
        return JSON.parse(bytes.subarray(entry.key.length).toString('utf8')) as T;
      }
    } catch {
      // None yet, or unreadable: nothing to reuse.
    }
    return undefined;
  }

  storeLatest(kind: string, extra: unknown, value: unknown): void {
    const entry = this.latestEntry(kind, extra);
    if (entry) this.write(kind, entry.path, entry.key, [JSON.stringify(value)]);
  }

  /** Writes an entry atomically (0600); a site that cannot be written simply keeps none. */
  private write(kind: string, path: string, key: Buffer, pieces: (string | Buffer)[]): void {
    try {
      this.makePrivate();
      const temp = `${path}.${process.pid}.tmp`;
      const fd = openSync(temp, 'w', PRIVATE_FILE);
      try {
        fchmodSync(fd, PRIVATE_FILE);
        for (const piece of [key, ...pieces]) {
          const bytes = typeof piece === 'string' ? Buffer.from(piece) : piece;
          for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done);
        }
      } finally {
        closeSync(fd);
      }
      renameSync(temp, path);
      prune(this.dir, kind);
    } catch {
      // A read-only site: no cache.
    }
  }
}
