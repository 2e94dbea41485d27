/**
 * The store (DESIGN §8): a small key-value database with etcd's revision model, so that the
 * embedded SQLite back end and a real etcd cluster behave the same to everything built on it
 * (`cairn push`, agents, `cairn status`).
 *
 * Revisions: the store has one global revision that starts at 1 and grows by one with every write
 * (`put`, a `delete` that removed something, a `txn` whose branch changed something). Every change
 * keeps the revision it was made at, so a watch can resume from any revision that has not been
 * compacted away.
 */

export interface KeyValue {
  key: string;
  value: Buffer;
  /** Revision of the last change to this key. */
  modRevision: number;
  /** Revision at which the key was created (since it last did not exist). */
  createRevision: number;
  /** How many times the key was written since it was created (1 after the first put). */
  version: number;
}

export interface Change {
  type: 'put' | 'delete';
  key: string;
  /** The new value; only for `put`. */
  value?: Buffer;
  /** The revision of the write that made this change (one txn's changes share it). */
  revision: number;
}

/**
 * One condition of a transaction, evaluated as etcd does:
 * - `value`: the key's value against a Buffer or string, bytewise (`<`/`>` compare
 *   lexicographically); always false when the key does not exist.
 * - `modRevision`, `version`: against a number; a missing key has 0 for both.
 * - `exists`: `true`/`false` with `=` or `!=` (the key's version is, or is not, greater than 0).
 */
export type Compare = {
  key: string;
  target: 'value' | 'modRevision' | 'version' | 'exists';
  op: '=' | '!=' | '<' | '>';
  value: Buffer | string | number | boolean;
};

/** One write of a transaction. A key may appear at most once in a branch (as in etcd). */
export type Op = { put: string; value: Buffer | string } | { delete: string };

export interface WatchOptions {
  /** Ends the watch: the iteration finishes normally (no error). */
  signal: AbortSignal;
  /**
   * First revision to deliver (inclusive). Default: changes after the revision current when the
   * iteration starts. Throws StoreCompactedError (from the iteration) when that history is gone.
   */
  fromRevision?: number;
}

/** A key this process holds (Store.lease), renewed by the store as long as the process lives. */
export interface HeldLease {
  /** Aborted when the lease is lost: it ran out while this process could not renew it, and may be another's now. */
  readonly lost: AbortSignal;
  /** Lets go at once: the key is free for the next taker. */
  release(): Promise<void>;
}

/** Taken, or refused with the value the live holder wrote. */
export type LeaseAttempt = { held: HeldLease } | { holder: Buffer };

export interface Store {
  /** The URL as given, with credentials removed (fit for messages and reports). */
  readonly url: string;
  get(key: string): Promise<KeyValue | undefined>;
  /** Returns the new store revision. */
  put(key: string, value: Buffer | string): Promise<number>;
  /** Returns the store revision after the delete (unchanged when the key did not exist). */
  delete(key: string): Promise<number>;
  /** Every key that starts with `prefix`, sorted by key (bytewise, as UTF-8). `''` lists all. */
  list(prefix: string): Promise<KeyValue[]>;
  /**
   * Changes under `prefix` in revision order (and, within one revision, in the order the txn made
   * them), from `fromRevision` (inclusive; default: from now on). Never skips one and never
   * delivers one twice, also across lost connections. Ends when `signal` aborts.
   * The watch starts when the iteration starts (the first `next()`); pass `fromRevision`
   * (e.g. `(await store.revision()) + 1`) to leave no gap between a read and a watch.
   */
  watch(prefix: string, options: WatchOptions): AsyncIterable<Change>;
  /**
   * Atomically: if every `compare` holds, applies `then`, else `otherwise`. `revision` is the
   * store revision after the txn (unchanged when the branch taken wrote nothing).
   */
  txn(compare: Compare[], then: Op[], otherwise?: Op[]): Promise<{ succeeded: boolean; revision: number }>;
  /** The current store revision. */
  revision(): Promise<number>;
  /**
   * Takes `key` for this process, saying who holds it (`value`), unless another holder's lease
   * on it is live: then its value comes back instead. A lease lasts `ttlSeconds` and the store
   * renews it (every third of that) while the process lives; one whose holder stopped (crashed,
   * killed, cut off) runs out `ttlSeconds` later, and the key can be taken again. etcd: a real
   * lease the key is attached to (etcd deletes it when the lease expires); SQLite: a row of its
   * own table with the holder's id and expiry, taken and renewed in transactions (one machine,
   * one clock). Read a lease only through this: etcd's is a key, SQLite's is not. With `waitMs`,
   * a live holder's lease is waited for, up to that long, before the holder is returned.
   */
  lease(key: string, value: string, ttlSeconds: number, waitMs?: number): Promise<LeaseAttempt>;
  /** Releases connections and ends open watches. */
  close(): Promise<void>;
}

/**
 * Settings of a store. For etcd, each setting can also come from the URL's query
 * (`?ca=…&cert=…&key=…&user=…&password=…`, or `etcd://user:password@host:port,…`) or from the
 * environment (`CAIRN_STORE_CA`, `CAIRN_STORE_CERT`, `CAIRN_STORE_KEY`, `CAIRN_STORE_USER`,
 * `CAIRN_STORE_PASSWORD`), in that order of precedence: options, URL, environment.
 */
export interface StoreOptions {
  /** etcd: PEM file of the CA that signed the members' certificates. Turns TLS on. */
  ca?: string;
  /** etcd: PEM files of the client certificate and its key (mutual TLS; needs `ca`). */
  cert?: string;
  key?: string;
  /** etcd: user and password of etcd's own authentication. */
  user?: string;
  password?: string;
  /** How long opening a store may take before StoreUnreachableError. Default 3000 ms. */
  connectTimeoutMs?: number;
  /** SQLite: how often a watch looks for changes made by other processes. Default 50 ms. */
  pollIntervalMs?: number;
  /** SQLite: how many revisions of history are kept for watches to resume from. Default 1000. */
  historyRevisions?: number;
  /** Where the CAIRN_STORE_* variables are read from. Default `process.env`. */
  env?: Record<string, string | undefined>;
}
