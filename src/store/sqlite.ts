/**
 * The embedded store: one SQLite file (better-sqlite3, WAL mode) with etcd's revision model.
 *
 * Tables: `kv` holds the current keys; `log` holds every change with its revision (what a watch
 * replays); `meta` holds the store revision and the compaction point. Every write is one
 * `BEGIN IMMEDIATE` transaction that reads and bumps the revision, so writers in several processes
 * are serialised by SQLite's write lock (waiting up to `busy_timeout`) and revisions never repeat.
 *
 * Watches poll: another process's commit is only visible in the file, so a timer checks
 * `PRAGMA data_version` (it changes when any other connection commits) and then reads the log
 * after the last revision delivered. The log keeps the last `historyRevisions` revisions.
 *
 * The store holds run reports and compiled documents (rendered templates): the file and its
 * `-wal` and `-shm` companions are 0600 (SQLite gives the companions the main file's mode, so the
 * file is created 0600 before SQLite opens it), and a folder made for it is 0700; an existing
 * store left more open is closed when it is opened.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { createPrivateFile, privateDir, privateFile } from '../lib/private-files.ts';
import type BetterSqlite3 from 'better-sqlite3';
import { ChangeQueue, checkCompare, checkOps, holds, prefixEnd, toBuffer } from './common.ts';
import { StoreCompactedError, StoreCorruptError, StoreUnreachableError } from './errors.ts';
import type { Change, Compare, KeyValue, LeaseAttempt, Op, Store, StoreOptions, WatchOptions } from './types.ts';
import { dynamicImport } from '../lib/dynamic-import.ts';

const SCHEMA_VERSION = 1;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY, value BLOB NOT NULL,
    create_revision INTEGER NOT NULL, mod_revision INTEGER NOT NULL, version INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY, revision INTEGER NOT NULL, key BLOB NOT NULL,
    deleted INTEGER NOT NULL, value BLOB);
  CREATE INDEX IF NOT EXISTS log_revision ON log (revision);
  CREATE TABLE IF NOT EXISTS lease (key BLOB PRIMARY KEY, value BLOB NOT NULL, owner TEXT NOT NULL, expires INTEGER NOT NULL);
  INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', ${SCHEMA_VERSION}), ('revision', 1), ('compacted', 0);
`;

interface LeaseRow { value: Buffer; owner: string; expires: number }

/** The columns each table must have, in order: a file whose tables differ is not a store of this Cairn. */
const COLUMNS: Record<string, string[]> = {
  meta: ['name', 'value'],
  kv: ['key', 'value', 'create_revision', 'mod_revision', 'version'],
  log: ['id', 'revision', 'key', 'deleted', 'value'],
};

/**
 * SQLite's own errors as the store's: a damaged or foreign file (SQLITE_CORRUPT, SQLITE_NOTADB,
 * a missing column: SQLITE_ERROR) is a corrupt store, anything else from SQLite (busy, I/O, a
 * full disk, no permission) an unreachable one; both name the file. Anything else is a bug.
 */
function storeError(url: string, path: string, err: unknown): unknown {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return err;
  const message = `${path}: ${(err as Error).message} (${code})`;
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB' || code === 'SQLITE_ERROR' || code === 'SQLITE_MISMATCH') {
    return new StoreCorruptError(url, `${message}; move the file aside to start an empty store, or restore it from a backup`);
  }
  return new StoreUnreachableError(url, message);
}

interface KvRow { key: Buffer; value: Buffer; create_revision: number; mod_revision: number; version: number }
interface LogRow { revision: number; key: Buffer; deleted: number; value: Buffer | null }

/** One open watch: where it is, and the queue its consumer reads. */
interface SqliteWatch { range: [Buffer, Buffer | undefined]; last: number; queue: ChangeQueue }

export async function openSqliteStore(url: string, path: string, options: StoreOptions): Promise<Store> {
  const { default: Database } = await dynamicImport<{ default: typeof BetterSqlite3 }>('better-sqlite3');
  let db: BetterSqlite3.Database | undefined;
  try {
    const folder = dirname(path);
    // The site's own `.cairn` is Cairn's to close; another existing folder is the user's choice.
    if (!existsSync(folder) || basename(folder) === '.cairn') privateDir(folder);
    createPrivateFile(path);
    db = new Database(path);
    // Set before anything that takes a lock, so a second process opening the file waits instead of failing.
    db.pragma('busy_timeout = 10000');
    db.pragma('journal_mode = WAL');
    // Companions an older Cairn (or a 0644 main file) left open.
    for (const companion of [`${path}-wal`, `${path}-shm`]) privateFile(companion);
    // With WAL, NORMAL never corrupts the file; a power cut may lose the last commits (not a crash).
    db.pragma('synchronous = NORMAL');
    db.transaction(() => db!.exec(SCHEMA)).immediate();
    // CREATE TABLE IF NOT EXISTS leaves a table of that name as it is, whatever its columns.
    for (const [table, expected] of Object.entries(COLUMNS)) {
      const found = (db.prepare(`SELECT name FROM pragma_table_info(?) ORDER BY cid`).pluck().all(table) as string[]);
      if (found.join() !== expected.join()) {
        throw new StoreCorruptError(url, `${path}: table ${table} has the columns (${found.join(', ')}), a Cairn store's has (${expected.join(', ')}); ` +
          'move the file aside to start an empty store');
      }
    }
    const schema = db.prepare(`SELECT value FROM meta WHERE name = 'schema'`).pluck().get();
    if (schema !== SCHEMA_VERSION) throw new StoreUnreachableError(url, `${path} has store schema ${String(schema)}, this Cairn knows ${SCHEMA_VERSION}`);
    return new SqliteStore(url, path, db, options);
  } catch (err) {
    db?.close();
    if (err instanceof StoreUnreachableError) throw err;
    const known = storeError(url, path, err);
    if (known !== err) throw known;
    throw new StoreUnreachableError(url, `cannot open ${path}: ${(err as Error).message}`);
  }
}

class SqliteStore implements Store {
  private readonly watches = new Set<SqliteWatch>();
  /** Leases this connection holds: let go when it closes. */
  private readonly leases = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private dataVersion = -1;
  private readonly pollIntervalMs: number;
  private readonly history: number;
  private readonly sql;

  constructor(readonly url: string, private readonly path: string, private readonly db: BetterSqlite3.Database, options: StoreOptions) {
    this.pollIntervalMs = options.pollIntervalMs ?? 50;
    this.history = Math.max(1, options.historyRevisions ?? 1000);
    const meta = (name: string) => db.prepare(`SELECT value FROM meta WHERE name = '${name}'`).pluck();
    this.sql = {
      revision: meta('revision'),
      compacted: meta('compacted'),
      setMeta: db.prepare(`UPDATE meta SET value = ? WHERE name = ?`),
      get: db.prepare(`SELECT * FROM kv WHERE key = ?`),
      listFrom: db.prepare(`SELECT * FROM kv WHERE key >= ? ORDER BY key`),
      listRange: db.prepare(`SELECT * FROM kv WHERE key >= ? AND key < ? ORDER BY key`),
      insert: db.prepare(`INSERT INTO kv (key, value, create_revision, mod_revision, version) VALUES (?, ?, ?, ?, 1)
                          ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision, version = version + 1`),
      delete: db.prepare(`DELETE FROM kv WHERE key = ?`),
      log: db.prepare(`INSERT INTO log (revision, key, deleted, value) VALUES (?, ?, ?, ?)`),
      forget: db.prepare(`DELETE FROM log WHERE revision < ?`),
      changesFrom: db.prepare(`SELECT revision, key, deleted, value FROM log WHERE revision > ? AND revision <= ? AND key >= ? ORDER BY id`),
      leaseGet: db.prepare(`SELECT value, owner, expires FROM lease WHERE key = ?`),
      leasePut: db.prepare(`INSERT INTO lease (key, value, owner, expires) VALUES (?, ?, ?, ?)
                            ON CONFLICT (key) DO UPDATE SET value = excluded.value, owner = excluded.owner, expires = excluded.expires`),
      leaseRenew: db.prepare(`UPDATE lease SET expires = ? WHERE key = ? AND owner = ?`),
      leaseDrop: db.prepare(`DELETE FROM lease WHERE key = ? AND owner = ?`),
      changesRange: db.prepare(`SELECT revision, key, deleted, value FROM log WHERE revision > ? AND revision <= ? AND key >= ? AND key < ? ORDER BY id`),
    };
  }

  /** Runs a statement, turning SQLite's errors into the store's (storeError). */
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw storeError(this.url, this.path, err);
    }
  }

  async get(key: string): Promise<KeyValue | undefined> {
    const row = this.guard(() => this.sql.get.get(Buffer.from(key)) as KvRow | undefined);
    return row && keyValue(row);
  }

  async put(key: string, value: Buffer | string): Promise<number> {
    return this.write((revision) => {
      this.putAt(revision, Buffer.from(key), toBuffer(value));
      return 1;
    });
  }

  async delete(key: string): Promise<number> {
    return this.write((revision) => this.deleteAt(revision, Buffer.from(key)));
  }

  async list(prefix: string): Promise<KeyValue[]> {
    const [start, end] = range(prefix);
    const rows = this.guard(() => (end ? this.sql.listRange.all(start, end) : this.sql.listFrom.all(start)) as KvRow[]);
    return rows.map(keyValue);
  }

  async txn(compare: Compare[], then: Op[], otherwise: Op[] = []): Promise<{ succeeded: boolean; revision: number }> {
    compare.forEach(checkCompare);
    checkOps(then);
    checkOps(otherwise);
    let succeeded = false;
    const revision = this.write((next) => {
      succeeded = compare.every((c) => this.compareHolds(c));
      let changed = 0;
      for (const op of succeeded ? then : otherwise) {
        if ('put' in op) {
          this.putAt(next, Buffer.from(op.put), toBuffer(op.value));
          changed++;
        } else {
          changed += this.deleteAt(next, Buffer.from(op.delete));
        }
      }
      return changed;
    });
    return { succeeded, revision };
  }

  async revision(): Promise<number> {
    return this.guard(() => this.sql.revision.get() as number);
  }

  watch(prefix: string, options: WatchOptions): AsyncIterable<Change> {
    return this.changes(prefix, options);
  }

  async lease(key: string, value: string, ttlSeconds: number, waitMs = 0): Promise<LeaseAttempt> {
    const k = Buffer.from(key);
    const owner = randomUUID();
    const ttlMs = Math.max(1, ttlSeconds) * 1000;
    // Date.now, not the run clock: expiry is compared across processes on this machine.
    const take = () => this.db.transaction(() => {
      const row = this.sql.leaseGet.get(k) as LeaseRow | undefined;
      if (row && row.expires > Date.now()) return row;
      this.sql.leasePut.run(k, Buffer.from(value), owner, Date.now() + ttlMs);
      return undefined;
    }).immediate();
    const deadline = Date.now() + waitMs;
    for (let held = take(); held; held = take()) {
      // Its holder renews it before then, or is gone by then: try again at its expiry.
      if (held.expires >= deadline) return { holder: held.value };
      await new Promise((resolve) => setTimeout(resolve, held!.expires - Date.now() + 5));
    }
    const lost = new AbortController();
    const stop = () => {
      clearInterval(timer);
      this.leases.delete(release);
    };
    const timer = setInterval(() => {
      if (!this.db.open) return stop();
      try {
        const renewed = this.sql.leaseRenew.run(Date.now() + ttlMs, k, owner).changes > 0;
        if (!renewed) {
          stop();
          lost.abort(new Error(`the lease on ${key} ran out and was taken by another holder`));
        }
      } catch {
        // The file busy past busy_timeout: the next renewal tries again, well before expiry.
      }
    }, ttlMs / 3);
    // The holder's own work keeps the process alive, not its lease.
    timer.unref();
    const release = () => {
      stop();
      if (this.db.open) this.sql.leaseDrop.run(k, owner);
    };
    this.leases.add(release);
    return { held: { lost: lost.signal, release: async () => release() } };
  }

  async close(): Promise<void> {
    for (const release of [...this.leases]) release();
    for (const w of this.watches) w.queue.end();
    this.watches.clear();
    this.stopPolling();
    if (this.db.open) this.db.close();
  }

  private async *changes(prefix: string, { signal, fromRevision }: WatchOptions): AsyncGenerator<Change> {
    if (signal.aborted) return;
    const watch: SqliteWatch = {
      range: range(prefix),
      last: fromRevision !== undefined ? fromRevision - 1 : this.guard(() => this.sql.revision.get() as number),
      queue: new ChangeQueue(),
    };
    const stop = () => watch.queue.end();
    signal.addEventListener('abort', stop, { once: true });
    this.watches.add(watch);
    this.startPolling();
    try {
      this.catchUp(watch);
      yield* watch.queue.drain();
    } finally {
      signal.removeEventListener('abort', stop);
      this.watches.delete(watch);
      if (this.watches.size === 0) this.stopPolling();
    }
  }

  /** Runs `apply` in a write transaction at the next revision; the revision moves only if it changed something. */
  private write(apply: (next: number) => number): number {
    const revision = this.guard(() => this.db.transaction(() => {
      const current = this.sql.revision.get() as number;
      const next = current + 1;
      if (apply(next) === 0) return current;
      this.sql.setMeta.run(next, 'revision');
      const oldest = next - this.history + 1;
      if (oldest > (this.sql.compacted.get() as number)) {
        this.sql.forget.run(oldest);
        this.sql.setMeta.run(oldest, 'compacted');
      }
      return next;
    }).immediate());
    // This connection's own commits do not move data_version: look now rather than at the next tick.
    if (this.watches.size > 0) setImmediate(() => this.pollAll(true));
    return revision;
  }

  private putAt(revision: number, key: Buffer, value: Buffer): void {
    this.sql.insert.run(key, value, revision, revision);
    this.sql.log.run(revision, key, 0, value);
  }

  private deleteAt(revision: number, key: Buffer): number {
    const { changes } = this.sql.delete.run(key);
    if (changes > 0) this.sql.log.run(revision, key, 1, null);
    return changes;
  }

  private compareHolds(c: Compare): boolean {
    const row = this.sql.get.get(Buffer.from(c.key)) as KvRow | undefined;
    switch (c.target) {
      case 'value':
        return row !== undefined && holds(c.op, row.value, toBuffer(c.value as Buffer | string));
      case 'modRevision':
        return holds(c.op, row?.mod_revision ?? 0, c.value as number);
      case 'version':
        return holds(c.op, row?.version ?? 0, c.value as number);
      case 'exists':
        return holds(c.op, row ? 1 : 0, c.value ? 1 : 0);
    }
  }

  private startPolling(): void {
    // Not unref'd: an open watch keeps the process alive, as an etcd watch's connection does.
    this.timer ??= setInterval(() => this.pollAll(false), this.pollIntervalMs);
  }

  private stopPolling(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private pollAll(ownWrite: boolean): void {
    if (!this.db.open) return;
    let version: number;
    try {
      version = this.guard(() => this.db.pragma('data_version', { simple: true }) as number);
    } catch (err) {
      for (const watch of this.watches) watch.queue.fail(err);
      return;
    }
    if (!ownWrite && version === this.dataVersion) return;
    this.dataVersion = version;
    for (const watch of this.watches) this.catchUp(watch);
  }

  /** Delivers the watch's changes up to the current revision (one read transaction: a consistent view). */
  private catchUp(watch: SqliteWatch): void {
    try {
      this.db.transaction(() => {
        const current = this.sql.revision.get() as number;
        if (current <= watch.last) return;
        const compacted = this.sql.compacted.get() as number;
        if (watch.last + 1 < compacted) throw new StoreCompactedError(this.url, watch.last + 1, compacted);
        const [start, end] = watch.range;
        const rows = (end
          ? this.sql.changesRange.all(watch.last, current, start, end)
          : this.sql.changesFrom.all(watch.last, current, start)) as LogRow[];
        watch.last = current;
        watch.queue.push(rows.map(change));
      }).deferred();
    } catch (err) {
      watch.queue.fail(storeError(this.url, this.path, err));
    }
  }
}

function range(prefix: string): [Buffer, Buffer | undefined] {
  const start = Buffer.from(prefix);
  return [start, prefixEnd(start)];
}

function keyValue(row: KvRow): KeyValue {
  return {
    key: row.key.toString('utf8'),
    value: row.value,
    modRevision: row.mod_revision,
    createRevision: row.create_revision,
    version: row.version,
  };
}

function change(row: LogRow): Change {
  const key = row.key.toString('utf8');
  return row.deleted
    ? { type: 'delete', key, revision: row.revision }
    : { type: 'put', key, value: row.value ?? Buffer.alloc(0), revision: row.revision };
}
