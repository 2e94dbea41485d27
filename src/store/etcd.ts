/**
 * The distributed store: an etcd (v3 API) cluster through the `etcd3` client. Every operation maps
 * onto one etcd request (Range, Put, DeleteRange, Txn, Watch), so revisions are etcd's own.
 *
 * Failures: a member that stops answering is set aside for a second (a circuit breaker per
 * member) and requests are retried with backoff on the others for up to ten seconds, which covers
 * a leader election (2–3 s here). After that an operation fails with StoreUnreachableError.
 * A retried write may have been applied by the first attempt (etcd cannot always say), so a
 * compare-and-swap that reports `succeeded: false` after a failover should re-read and decide.
 *
 * Size: etcd refuses a request (a put, or a whole txn with its compares) larger than its
 * --max-request-bytes (1.5 MiB by default); such a request fails at once with an error that says so.
 *
 * A watch that cannot start (no member answers) throws StoreUnreachableError; once started, it
 * rides out outages of any length, reconnecting with backoff (at most 2 s apart).
 *
 * Security: `ca` turns TLS on (the members' certificates must name the host as written in the URL,
 * e.g. subjectAltName IP:127.0.0.1); `cert` and `key` are the client certificate a member started
 * with --client-cert-auth demands. `user` and `password` are etcd's own authentication. Everything
 * Cairn keeps is under /cairn/ (documents.ts), and the store reads nothing outside it (its revision
 * probe reads the key `/cairn/` itself), so the least a Cairn user's role needs is:
 *
 *   etcdctl role add cairn
 *   etcdctl role grant-permission cairn --prefix=true readwrite /cairn/
 *   etcdctl user add cairn && etcdctl user grant-role cairn cairn
 *
 * (`read` on /cairn/ is enough for `cairn status`; push and agents write.) A wrong user or
 * password, or a role that may not read /cairn/, fails the opening at once as an input error naming
 * the URL (the CLI exits 2), not as an unreachable store.
 *
 * Watches: the etcd3 Watcher reconnects by itself, but resumes from the revision in the last
 * response header, which can lie past changes not yet delivered (a catch-up batch carries the
 * current revision in its header). So each watch here remembers the revision of the last change
 * it delivered and, whenever its connection drops, rewinds the watcher to the next one.
 */
import type * as Cockatiel from 'cockatiel';
import type * as Etcd3Module from 'etcd3';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { IBackoff } from 'cockatiel';
import type { Etcd3, IKeyValue, IRequestOp, IWatchCreateRequest, IWatchResponse, ICompare, Watcher } from 'etcd3';
import { inputError, type InputError } from '../lib/errors.ts';
import { ChangeQueue, checkCompare, checkOps, prefixEnd, toBuffer } from './common.ts';
import { StoreCompactedError, StoreRefusedError, StoreUnreachableError } from './errors.ts';
import type { Change, Compare, HeldLease, KeyValue, LeaseAttempt, Op, Store, StoreOptions, WatchOptions } from './types.ts';
import { dynamicImport } from '../lib/dynamic-import.ts';

/** What index.ts parsed from an `etcd:` URL and the settings. */
export interface EtcdTarget {
  hosts: string[];
  ca?: string;
  cert?: string;
  key?: string;
  user?: string;
  password?: string;
}

/** How etcd (or its gRPC layer) refuses a request over --max-request-bytes. */
const TOO_LARGE = /larger than max|request is too large/;
/**
 * A request's own deadline; a retry gets a fresh one. It bounds a failover: a write a follower
 * forwarded to a leader that just died is lost without an answer until this deadline.
 */
const REQUEST_DEADLINE_MS = 3000;
/** How long one operation may take with its retries before it fails as unreachable. */
const OPERATION_BUDGET_MS = 10_000;
/**
 * The key `revision()` and the connection probe read: it need not exist, but a user of an etcd
 * with authentication must be allowed to read it (see Security above).
 */
const PROBE_KEY = Buffer.from('/cairn/');
/**
 * Added to a txn that writes nothing. etcd answers a read-only txn whose every op is a
 * serializable range (vacuously, one with no ops at all: etcdserver's isTxnSerializable) from
 * whichever member gets it, with no read barrier: its compares could see a value older than a put
 * that has returned (seen in the store suite: `value = b` false right after `put b`). One
 * linearizable range, of the probe key, makes the member wait until it has applied what the
 * leader committed before answering.
 */
const LINEARIZABLE_BARRIER: IRequestOp = { request_range: { key: PROBE_KEY, limit: 1, keys_only: true } };
/** How etcd cancels a watch whose stream carries a token it no longer knows. */
const STALE_TOKEN = /invalid auth token|permission denied/;
/** etcd's range end meaning "every key from the start key on". */
const ALL_AFTER = Buffer.from([0]);

export async function openEtcdStore(url: string, target: EtcdTarget, options: StoreOptions): Promise<Store> {
  const etcd3 = await dynamicImport<typeof Etcd3Module>('etcd3');
  const cockatiel = await dynamicImport<typeof Cockatiel>('cockatiel');
  const { handleWhen, circuitBreaker, retry, timeout, wrap, ConsecutiveBreaker, ExponentialBackoff, TimeoutStrategy } = cockatiel;
  // etcd3 counts RESOURCE_EXHAUSTED as recoverable, but a request over the server's size limit
  // fails the same way every time: report it at once instead of retrying it.
  const recoverable = (err: Error) => etcd3.isRecoverableError(err) && !TOO_LARGE.test(err.message);
  const transient = (err: Error) => recoverable(err) || cockatiel.isBrokenCircuitError(err);

  // The last error an attempt failed with: says why "no member answered" (refused, a certificate
  // the server rejected, a name the server's certificate does not carry…).
  const last: { error?: Error } = {};
  const retries = retry(handleWhen(transient), { maxAttempts: 12, backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }) });
  retries.onRetry((reason) => {
    if ('error' in reason && !cockatiel.isBrokenCircuitError(reason.error)) last.error = reason.error;
  });

  if (target.ca !== undefined && target.hosts.some((h) => isIP(h.replace(/:\d+$/, '').replace(/^\[|\]$/g, '')) !== 0)) quietIpServerName();

  const client = new etcd3.Etcd3({
    hosts: target.hosts,
    ...(target.ca && {
      credentials: {
        rootCertificate: readPem(url, 'CA', target.ca),
        ...(target.key && { privateKey: readPem(url, 'client key', target.key) }),
        ...(target.cert && { certChain: readPem(url, 'client certificate', target.cert) }),
      },
    }),
    ...(target.user !== undefined && { auth: { username: target.user, password: target.password ?? '' } }),
    // A listing of large documents can exceed gRPC's default 4 MiB message limit.
    grpcOptions: { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 },
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + REQUEST_DEADLINE_MS }),
    faultHandling: {
      host: () => circuitBreaker(handleWhen(recoverable), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(2) }),
      // Retries stop when the operation's whole budget is spent (a blackholed cluster makes every
      // attempt wait for its deadline).
      global: wrap(
        timeout(OPERATION_BUDGET_MS, TimeoutStrategy.Aggressive),
        retries,
      ),
      // etcd3 calls next() on this (its own default is an ExponentialBackoff too) but types it as
      // the backoff that next() returns. The cap keeps a watch's reconnection prompt.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }) as unknown as IBackoff<unknown>,
    },
  });

  // (Not cockatiel's isTaskCancelledError: in 3.2 it tests for the bulkhead error's marker.)
  const store = new EtcdStore(url, client, (err) => transient(err) || err instanceof cockatiel.TaskCancelledError, last);
  // A serializable read is answered by any live member, leader or not: it proves the cluster is
  // there without waiting for an election.
  const timeoutMs = options.connectTimeoutMs ?? 3000;
  try {
    await withTimeout(client.kv.range({ key: PROBE_KEY, limit: 1, keys_only: true, serializable: true }), timeoutMs,
      `no member answered within ${timeoutMs / 1000} s (${target.hosts.join(', ')})`);
  } catch (err) {
    client.close();
    throw authFailure(url, target, err) ?? store.failure(err);
  }
  return store;
}

class EtcdStore implements Store {
  private readonly queues = new Set<ChangeQueue>();

  constructor(
    readonly url: string,
    private readonly client: Etcd3,
    private readonly unreachable: (err: Error) => boolean,
    private readonly last: { error?: Error },
  ) {}

  async get(key: string): Promise<KeyValue | undefined> {
    const res = await this.call(() => this.client.kv.range({ key: Buffer.from(key) }));
    const kv = res.kvs[0];
    return kv && keyValue(kv);
  }

  async put(key: string, value: Buffer | string): Promise<number> {
    const res = await this.call(() => this.client.kv.put({ key: Buffer.from(key), value: toBuffer(value) }));
    return Number(res.header.revision);
  }

  async delete(key: string): Promise<number> {
    const res = await this.call(() => this.client.kv.deleteRange({ key: Buffer.from(key) }));
    return Number(res.header.revision);
  }

  async list(prefix: string): Promise<KeyValue[]> {
    const [key, rangeEnd] = range(prefix);
    // etcd returns a range in key order (bytewise) when no other order is asked for.
    const res = await this.call(() => this.client.kv.range({ key, range_end: rangeEnd }));
    return res.kvs.map(keyValue);
  }

  async txn(compare: Compare[], then: Op[], otherwise: Op[] = []): Promise<{ succeeded: boolean; revision: number }> {
    compare.forEach(checkCompare);
    checkOps(then);
    checkOps(otherwise);
    const res = await this.call(() => this.client.kv.txn({
      compare: compare.map(toEtcdCompare),
      success: [...then.map(toRequestOp), ...(then.length === 0 && otherwise.length === 0 ? [LINEARIZABLE_BARRIER] : [])],
      failure: otherwise.map(toRequestOp),
    }));
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
  }

  async revision(): Promise<number> {
    const res = await this.call(() => this.client.kv.range({ key: PROBE_KEY, limit: 1, keys_only: true }));
    return Number(res.header.revision);
  }

  watch(prefix: string, options: WatchOptions): AsyncIterable<Change> {
    return this.changes(prefix, options);
  }

  /**
   * An etcd lease (the etcd3 client sends its keep-alives every third of the TTL) with the key
   * attached, put only if the key does not exist: etcd deletes it when the lease expires or is
   * revoked. A retried put may have landed the first time: a key already attached to this very
   * lease is taken.
   */
  async lease(key: string, value: string, ttlSeconds: number, waitMs = 0): Promise<LeaseAttempt> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const attempt = await this.leaseOnce(key, value, ttlSeconds);
      const left = deadline - Date.now();
      if ('held' in attempt || left <= 0) return 'held' in attempt ? attempt : { holder: attempt.holder.value };
      // etcd deletes the key when the holder's lease runs out: wait for that, or the deadline.
      const signal = AbortSignal.timeout(left);
      try {
        for await (const change of this.watch(key, { signal, fromRevision: Number(attempt.holder.mod_revision) + 1 })) {
          if (change.key === key && change.type === 'delete') break;
        }
      } catch (err) {
        if (!signal.aborted) throw err;
      }
    }
  }

  private async leaseOnce(key: string, value: string, ttlSeconds: number): Promise<{ held: HeldLease } | { holder: IKeyValue }> {
    const lease = this.client.lease(Math.max(1, Math.ceil(ttlSeconds)), { autoKeepAlive: true });
    // Until the lease is taken, a failure to grant or keep it is reported by grant() and the txn.
    const early = (): void => undefined;
    lease.on('lost', early);
    let id: string;
    try {
      id = await this.call(() => lease.grant());
    } catch (err) {
      lease.release();
      throw this.failure(err);
    }
    const k = Buffer.from(key);
    let holder: IKeyValue | undefined;
    try {
      const res = await this.call(() => this.client.kv.txn({
        compare: [{ key: k, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key: k, value: Buffer.from(value), lease: id } }],
        failure: [{ request_range: { key: k } }],
      }));
      holder = res.succeeded ? undefined : res.responses[0]?.response_range?.kvs[0];
    } catch (err) {
      await lease.revoke().catch(() => undefined);
      throw this.failure(err);
    }
    if (holder && String(holder.lease) !== id) {
      await lease.revoke().catch(() => undefined);
      return { holder };
    }
    const lost = new AbortController();
    lease.off('lost', early);
    lease.on('lost', (err) => lost.abort(new Error(`the lease on ${key} was lost: ${err.message}`)));
    return {
      held: {
        lost: lost.signal,
        release: async () => {
          await lease.revoke().catch(() => undefined);
        },
      },
    };
  }

  async close(): Promise<void> {
    for (const queue of this.queues) queue.end();
    this.queues.clear();
    this.client.close();
  }

  /** The error an operation reports: transient ones mean the cluster is out of reach. */
  failure(err: unknown): Error {
    if (err instanceof StoreUnreachableError || err instanceof StoreCompactedError) return err;
    const e = err instanceof Error ? err : new Error(String(err));
    if (TOO_LARGE.test(e.message)) {
      return new StoreRefusedError(this.url, `the request is larger than the etcd server accepts ` +
        `(its --max-request-bytes, 1.5 MiB by default): ${e.message}`);
    }
    if (/permission denied/i.test(e.message)) {
      return new StoreRefusedError(this.url, `permission denied: the etcd user's role does not allow this on /cairn/ ` +
        `(cairn push and agents need readwrite, cairn status read)`);
    }
    const lastError = this.last.error ? `; last error: ${describe(this.last.error)}` : '';
    if (e instanceof TimeoutError) return new StoreUnreachableError(this.url, e.message + lastError);
    if (this.unreachable(e)) {
      const budgetSpent = /timed out after/.test(e.message);
      return new StoreUnreachableError(this.url, budgetSpent ? `no member answered within ${OPERATION_BUDGET_MS / 1000} s${lastError}` : describe(e));
    }
    return new Error(`store ${this.url}: ${e.message}`, { cause: e });
  }

  private async call<T>(request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (err) {
      throw this.failure(err);
    }
  }

  private async *changes(prefix: string, { signal, fromRevision }: WatchOptions): AsyncGenerator<Change> {
    if (signal.aborted) return;
    const from = fromRevision ?? (await this.revision()) + 1;
    /** The revision of the last change delivered: a watch resumes right after it. */
    let last = from - 1;
    const queue = new ChangeQueue();
    this.queues.add(queue);
    const [key, rangeEnd] = range(prefix);
    let watcher: Watcher;
    /** Whether etcd canceled the current watcher. */
    let canceledByServer = false;
    /** Stream renewals for a stale token since the watch last connected (bounds a loop). */
    let renewals = 0;
    const start = () => {
      canceledByServer = false;
      // watcher() (unlike create()) returns the watcher before it connects, so every handler is in
      // place before the first response can arrive.
      watcher = this.client.watch().inRange({ start: key, end: rangeEnd }).startRevision(String(last + 1)).watcher();
      // The request the watcher re-sends on reconnection (a private field of etcd3's Watcher).
      const request = (watcher as unknown as { request: IWatchCreateRequest }).request;
      watcher.on('connected', () => (renewals = 0));
      watcher.on('data', onData);
      watcher.on('disconnected', () => {
        request.start_revision = String(last + 1);
      });
      watcher.on('error', (err: Error) => {
        canceledByServer = true;
        if (STALE_TOKEN.test(err.message) && renewals++ < 3 && !signal.aborted) {
          // (Unless the watch ended meanwhile: a watcher started then would never be canceled.)
          void this.renewToken(key).then(() => this.queues.has(queue) && start(), (e: unknown) => queue.fail(this.failure(e)));
          return;
        }
        void this.watchFailure(err, last + 1).then((e) => queue.fail(e));
      });
    };
    const onData = (res: IWatchResponse) => {
      const changes: Change[] = [];
      for (const event of res.events) {
        const revision = Number(event.kv.mod_revision);
        // One revision's events always come in one response, so this drops only true repeats.
        if (revision <= last) continue;
        const k = event.kv.key.toString('utf8');
        changes.push(event.type === 'Delete' ? { type: 'delete', key: k, revision } : { type: 'put', key: k, value: event.kv.value, revision });
      }
      if (changes.length === 0) return;
      last = changes[changes.length - 1]!.revision;
      queue.push(changes);
    };
    start();
    const stop = () => queue.end();
    signal.addEventListener('abort', stop, { once: true });
    try {
      yield* queue.drain();
    } finally {
      signal.removeEventListener('abort', stop);
      this.queues.delete(queue);
      // A watcher etcd canceled is already gone: cancelling it again would wait for an answer that never comes.
      if (!canceledByServer) await cancel(watcher!);
    }
  }

  /**
   * etcd forgets its tokens when it restarts (and a token lapses after --auth-token-ttl unused), and
   * etcd3 then authenticates again for a request, but not for its watch stream: the watch stream
   * reconnects with the old token and etcd cancels every watch on it. So: drop the token, prove
   * with a read of the watched key that a new one still may read it (a role that lost the
   * permission fails here), and make the watch stream connect again (private parts of etcd3 1.1).
   */
  private async renewToken(key: Buffer): Promise<void> {
    const internals = this.client as unknown as {
      pool: { authenticator: { invalidateMetadata(): void } };
      watchManager: { state: number; handleError(err: Error): void };
    };
    internals.pool.authenticator.invalidateMetadata();
    await this.client.kv.range({ key, limit: 1, keys_only: true });
    // 2 is etcd3's State.Connected: only then is there a stream to replace.
    if (internals.watchManager.state === 2) internals.watchManager.handleError(new Error('the watch stream\'s auth token is stale'));
  }

  /** etcd cancels a watch whose start was compacted without saying why: ask the store. */
  private async watchFailure(err: Error, next: number): Promise<Error> {
    try {
      await this.client.kv.range({ key: PROBE_KEY, revision: next, limit: 1, keys_only: true });
    } catch (probe) {
      if (/compacted/.test((probe as Error).message)) return new StoreCompactedError(this.url, next);
    }
    return this.failure(err);
  }
}

class TimeoutError extends Error {}

let ipServerNameQuieted = false;
/**
 * grpc-js gives TLS the member's address as the server name even when it is an IP address, and
 * Node then warns once per process (DEP0123) on stderr: noise in every command's output that the
 * user can do nothing about. Only that warning is dropped; the certificate is still checked
 * against the address.
 */
function quietIpServerName(): void {
  if (ipServerNameQuieted) return;
  ipServerNameQuieted = true;
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((...args: unknown[]) => {
    const [, type, code] = args;
    const named = typeof type === 'object' && type !== null ? (type as { code?: unknown }).code : code;
    if (named !== 'DEP0123') emit(...args);
  }) as typeof process.emitWarning;
}

/**
 * The opening failed because etcd refused the credentials (or their role may not read /cairn/):
 * an input error naming the URL, since waiting or retrying cannot help. Undefined for other errors.
 */
function authFailure(url: string, target: EtcdTarget, err: unknown): InputError | undefined {
  const message = err instanceof Error ? err.message : String(err);
  const credentials = 'set user and password (store options, etcd://USER:PASSWORD@HOST, ?user=&password=, or CAIRN_STORE_USER and CAIRN_STORE_PASSWORD)';
  if (/authentication failed|user name not found/.test(message)) {
    return inputError(`store ${url}: etcd refused user ${JSON.stringify(target.user)}: wrong user name or password`, undefined, credentials);
  }
  if (/user name is empty/.test(message)) {
    return inputError(`store ${url}: etcd requires authentication and no user was given`, undefined, credentials);
  }
  if (/authentication is not enabled/.test(message)) {
    return inputError(`store ${url}: a user was given but etcd has authentication turned off`, undefined, 'leave user and password out');
  }
  if (/permission denied/.test(message)) {
    return inputError(`store ${url}: etcd user ${JSON.stringify(target.user)} may not read /cairn/`, undefined,
      'grant its role readwrite on the key prefix /cairn/ (etcdctl role grant-permission ROLE --prefix=true readwrite /cairn/)');
  }
  return undefined;
}

/** The useful part of a gRPC connection error ("14 UNAVAILABLE: No connection established. Last error: …"). */
function describe(err: Error): string {
  let text = err.message.replace(/^\d+ [A-Z_]+: /, '');
  const inner = /Last error: ([\s\S]*?)\s*(?:\(\d{4}-\d\d-\d\dT[^)]*\))?\.?\s*(?:Resolution note:[\s\S]*)?$/.exec(text);
  if (inner?.[1]) text = inner[1];
  text = text.replace(/^Error(?: \[\w+\])?: /, '');
  // OpenSSL says "<hex>:error:<code>:SSL routines:<function>:<reason>:<file>:<line>:…".
  const ssl = /:SSL routines:[^:]*:([^:]+):/.exec(text);
  if (ssl) {
    text = `TLS: ${ssl[1]}`;
    if (/alert (bad|unknown|certificate required)/.test(text)) text += ' (the server refused the client certificate, or there was none: give cert and key)';
  }
  return text.trim();
}

function readPem(url: string, what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw inputError(`store ${url}: cannot read the ${what} file ${path}: ${(err as Error).message}`);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(message)), ms);
  });
  // The losing request still settles later (rejected when the client closes): not an unhandled rejection.
  promise.catch(() => undefined);
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Cancels a watcher, without waiting long for a cluster that no longer answers. */
async function cancel(watcher: Watcher): Promise<void> {
  await withTimeout(watcher.cancel(), 1000, 'cancel').catch(() => undefined);
}

function range(prefix: string): [Buffer, Buffer] {
  const start = Buffer.from(prefix);
  // An empty prefix is every key: etcd spells that key "\0", range end "\0".
  if (start.length === 0) return [ALL_AFTER, ALL_AFTER];
  return [start, prefixEnd(start) ?? ALL_AFTER];
}

function keyValue(kv: IKeyValue): KeyValue {
  return {
    key: kv.key.toString('utf8'),
    value: kv.value,
    modRevision: Number(kv.mod_revision),
    createRevision: Number(kv.create_revision),
    version: Number(kv.version),
  };
}

const RESULT = { '=': 'Equal', '!=': 'NotEqual', '<': 'Less', '>': 'Greater' } as const;

function toEtcdCompare(c: Compare): ICompare {
  const key = Buffer.from(c.key);
  switch (c.target) {
    case 'value':
      return { key, target: 'Value', result: RESULT[c.op], value: toBuffer(c.value as Buffer | string) };
    case 'modRevision':
      return { key, target: 'Mod', result: RESULT[c.op], mod_revision: c.value as number };
    case 'version':
      return { key, target: 'Version', result: RESULT[c.op], version: c.value as number };
    case 'exists':
      // A key exists exactly when its version is above 0.
      return (c.op === '=') === c.value
        ? { key, target: 'Version', result: 'Greater', version: 0 }
        : { key, target: 'Version', result: 'Equal', version: 0 };
  }
}

function toRequestOp(op: Op): IRequestOp {
  return 'put' in op
    ? { request_put: { key: Buffer.from(op.put), value: toBuffer(op.value) } }
    : { request_delete_range: { key: Buffer.from(op.delete) } };
}
