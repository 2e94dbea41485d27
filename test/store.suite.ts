/**
 * The store contract (DESIGN §8, src/store/types.ts), run by store.test.ts against every back end:
 * the same operations must give the same keys, values, revisions and change streams on SQLite
 * and on a real etcd cluster. Each test works under its own key prefix on one shared store.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Change, Store } from '../src/store/index.ts';
import { HANG_MS, waitUntil } from './helpers/wait.ts';

export interface StoreBackend {
  name: string;
  /** Opens a new handle (its own connection) on the same store. */
  open(): Promise<Store>;
  /** Set when the back end cannot run here: every test is skipped with this reason. */
  skip?: string;
}

/** Collects a watch's changes in the background. */
export class WatchRecorder {
  readonly changes: Change[] = [];
  error: unknown;
  private readonly abort = new AbortController();
  private readonly done: Promise<void>;

  constructor(store: Store, prefix: string, fromRevision?: number) {
    const iterable = store.watch(prefix, { signal: this.abort.signal, ...(fromRevision !== undefined && { fromRevision }) });
    this.done = (async () => {
      try {
        for await (const change of iterable) this.changes.push(change);
      } catch (err) {
        this.error = err;
      }
    })();
  }

  /** Waits until at least `count` changes arrived (the deadline only bounds a hang; it fails with what did arrive). */
  async until(count: number, hangMs = HANG_MS): Promise<Change[]> {
    await waitUntil(() => this.changes.length >= count || this.error !== undefined,
      () => `watch got ${this.changes.length} of ${count} changes: ${show(this.changes).join(', ')}`, hangMs);
    if (this.error !== undefined) throw this.error;
    return this.changes;
  }

  /**
   * Puts `key` (under the watched prefix) through `store` and waits until the watch delivers it:
   * returns the changes that came before it. A watch delivers in revision order, so anything
   * else it was going to deliver up to now (a duplicate, a stray change) is among them.
   */
  async throughSentinel(store: Store, key: string): Promise<Change[]> {
    const revision = await store.put(key, 'sentinel');
    await waitUntil(() => this.changes.some((c) => c.key === key && c.revision === revision) || this.error !== undefined,
      () => `the sentinel ${key} never arrived: ${show(this.changes).join(', ')}`);
    if (this.error !== undefined) throw this.error;
    return this.changes.slice(0, this.changes.findIndex((c) => c.key === key && c.revision === revision));
  }

  /** Ends the watch and waits until its loop has finished. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.done;
  }

  /** Resolves when the watch ends by itself (its error, if any, is in `error`). */
  ended(): Promise<void> {
    return this.done;
  }
}

/** `put key=value @revision` / `delete key @revision`, for readable assertions. */
export function show(changes: Change[], base = 0): string[] {
  return changes.map((c) => c.type === 'put'
    ? `put ${c.key}=${c.value!.length > 64 ? `<${c.value!.length} bytes>` : c.value!.toString()} @${c.revision - base}`
    : `delete ${c.key} @${c.revision - base}`);
}

/** A CAS increment: read, then write only if nobody wrote in between; retry until it lands. */
export async function increment(store: Store, key: string): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const kv = await store.get(key);
    const next = Number(kv?.value.toString() ?? '0') + 1;
    const { succeeded } = await store.txn(
      [{ key, target: 'modRevision', op: '=', value: kv?.modRevision ?? 0 }],
      [{ put: key, value: String(next) }],
    );
    if (succeeded) return attempt;
  }
}

export function storeSuite(backend: StoreBackend): void {
  describe(`store on ${backend.name}`, { skip: backend.skip ?? false }, () => {
    let store: Store;
    before(async () => {
      store = await backend.open();
    });
    after(async () => {
      await store?.close();
    });

    test('put, get and delete keep etcd\'s revision fields', async () => {
      assert.equal(await store.get('basic/none'), undefined);
      const r1 = await store.put('basic/k', 'one');
      const kv1 = await store.get('basic/k');
      assert.deepEqual(kv1, { key: 'basic/k', value: Buffer.from('one'), modRevision: r1, createRevision: r1, version: 1 });
      const r2 = await store.put('basic/k', Buffer.from('two'));
      assert.deepEqual(await store.get('basic/k'), { key: 'basic/k', value: Buffer.from('two'), modRevision: r2, createRevision: r1, version: 2 });
      const r3 = await store.delete('basic/k');
      assert.equal(r3, r2 + 1);
      assert.equal(await store.get('basic/k'), undefined);
      const r4 = await store.put('basic/k', 'again');
      assert.deepEqual(await store.get('basic/k'), { key: 'basic/k', value: Buffer.from('again'), modRevision: r4, createRevision: r4, version: 1 });
    });

    test('empty values, non-ASCII keys and binary values round trip', async () => {
      await store.put('odd/empty', '');
      assert.deepEqual((await store.get('odd/empty'))?.value, Buffer.alloc(0));
      const binary = Buffer.from([0, 255, 1, 254, 10, 13]);
      await store.put('odd/bïnäry ✓', binary);
      assert.deepEqual((await store.get('odd/bïnäry ✓'))?.value, binary);
      assert.deepEqual((await store.list('odd/')).map((kv) => kv.key), ['odd/bïnäry ✓', 'odd/empty']);
    });

    test('list returns the keys under a prefix in byte order, and a/ does not match ab', async () => {
      for (const key of ['list/b', 'list/a/z', 'list/ab', 'list/a/b', 'list/a/é', 'list/a/B', 'list/a', 'list/a/', 'lisT/a/x']) {
        await store.put(key, key.toUpperCase());
      }
      const under = await store.list('list/a/');
      // Bytewise as UTF-8: '' < 'B' < 'b' < 'z' < 'é' (0xc3 0xa9).
      assert.deepEqual(under.map((kv) => kv.key), ['list/a/', 'list/a/B', 'list/a/b', 'list/a/z', 'list/a/é']);
      assert.deepEqual(under.map((kv) => kv.value.toString()), ['LIST/A/', 'LIST/A/B', 'LIST/A/B', 'LIST/A/Z', 'LIST/A/É']);
      assert.deepEqual((await store.list('list/')).map((kv) => kv.key),
        ['list/a', 'list/a/', 'list/a/B', 'list/a/b', 'list/a/z', 'list/a/é', 'list/ab', 'list/b']);
      assert.deepEqual(await store.list('list/nothing/'), []);
      const all = (await store.list('')).map((kv) => kv.key);
      assert.ok(all.includes('lisT/a/x') && all.includes('list/b'), 'an empty prefix lists every key');
      assert.deepEqual(all, [...all].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    });

    test('every write moves the revision by one; reads and deleting a missing key do not', async () => {
      const start = await store.revision();
      assert.equal(await store.put('rev/a', '1'), start + 1);
      assert.equal(await store.put('rev/b', '1'), start + 2);
      await store.get('rev/a');
      await store.list('rev/');
      assert.equal(await store.revision(), start + 2);
      assert.equal(await store.delete('rev/missing'), start + 2, 'deleting a missing key changes nothing');
      assert.equal(await store.delete('rev/a'), start + 3);
      const t = await store.txn([], [{ put: 'rev/c', value: '1' }, { put: 'rev/d', value: '1' }, { delete: 'rev/b' }]);
      assert.deepEqual(t, { succeeded: true, revision: start + 4 }, 'a txn is one revision');
      assert.equal((await store.get('rev/c'))?.modRevision, start + 4);
      assert.equal((await store.get('rev/d'))?.modRevision, start + 4);
      assert.deepEqual(await store.txn([], [{ delete: 'rev/missing' }]), { succeeded: true, revision: start + 4 },
        'a txn that changes nothing keeps the revision');
      assert.equal(await store.revision(), start + 4);
    });

    test('txn compare-and-swap: 20 concurrent increments from 5 connections give exactly 20', async () => {
      const handles = [store, ...(await Promise.all([1, 2, 3, 4].map(() => backend.open())))];
      try {
        const attempts = await Promise.all(Array.from({ length: 20 }, (_, i) => increment(handles[i % handles.length]!, 'cas/counter')));
        const kv = await store.get('cas/counter');
        assert.equal(kv?.value.toString(), '20');
        assert.equal(kv?.version, 20, 'exactly 20 writes landed');
        assert.ok(attempts.some((a) => a > 1), `some writers must have lost a race and retried (attempts: ${attempts.join(' ')})`);
      } finally {
        await Promise.all(handles.slice(1).map((h) => h.close()));
      }
    });

    test('txn: compares on value, version, modRevision and exists, and the else branch', async () => {
      const r = await store.put('txn/k', 'b');
      const check = async (compare: Parameters<Store['txn']>[0][number], expected: boolean) => {
        const res = await store.txn([compare], [], []);
        assert.equal(res.succeeded, expected, `${JSON.stringify(compare)} should be ${expected}`);
      };
      await check({ key: 'txn/k', target: 'value', op: '=', value: 'b' }, true);
      await check({ key: 'txn/k', target: 'value', op: '=', value: Buffer.from('b') }, true);
      await check({ key: 'txn/k', target: 'value', op: '!=', value: 'b' }, false);
      await check({ key: 'txn/k', target: 'value', op: '<', value: 'c' }, true);
      await check({ key: 'txn/k', target: 'value', op: '>', value: 'a' }, true);
      await check({ key: 'txn/k', target: 'value', op: '>', value: 'ba' }, false);
      await check({ key: 'txn/k', target: 'version', op: '=', value: 1 }, true);
      await check({ key: 'txn/k', target: 'modRevision', op: '=', value: r }, true);
      await check({ key: 'txn/k', target: 'modRevision', op: '<', value: r }, false);
      await check({ key: 'txn/k', target: 'exists', op: '=', value: true }, true);
      await check({ key: 'txn/k', target: 'exists', op: '!=', value: true }, false);
      await check({ key: 'txn/none', target: 'exists', op: '=', value: false }, true);
      await check({ key: 'txn/none', target: 'version', op: '=', value: 0 }, true);
      await check({ key: 'txn/none', target: 'modRevision', op: '=', value: 0 }, true);
      // As in etcd: comparing the value of a missing key is always false, even with !=.
      await check({ key: 'txn/none', target: 'value', op: '!=', value: 'x' }, false);

      const res = await store.txn(
        [{ key: 'txn/k', target: 'value', op: '=', value: 'b' }, { key: 'txn/k', target: 'version', op: '>', value: 5 }],
        [{ put: 'txn/then', value: 'yes' }],
        [{ put: 'txn/else', value: 'yes' }, { delete: 'txn/k' }],
      );
      assert.deepEqual(res, { succeeded: false, revision: r + 1 });
      assert.equal(await store.get('txn/then'), undefined);
      assert.equal((await store.get('txn/else'))?.value.toString(), 'yes');
      assert.equal(await store.get('txn/k'), undefined);
      const create = await store.txn([{ key: 'txn/once', target: 'exists', op: '=', value: false }], [{ put: 'txn/once', value: '1' }]);
      const again = await store.txn([{ key: 'txn/once', target: 'exists', op: '=', value: false }], [{ put: 'txn/once', value: '2' }]);
      assert.deepEqual([create.succeeded, again.succeeded], [true, false]);
      assert.equal(again.revision, create.revision);
      assert.equal((await store.get('txn/once'))?.value.toString(), '1');
    });

    test('txn refuses a branch that writes one key twice, and a malformed compare', async () => {
      await assert.rejects(store.txn([], [{ put: 'bad/k', value: '1' }, { delete: 'bad/k' }]), /more than once/);
      await assert.rejects(store.txn([{ key: 'bad/k', target: 'exists', op: '<', value: true }], []), /exists takes = or !=/);
      await assert.rejects(store.txn([{ key: 'bad/k', target: 'version', op: '=', value: 'one' }], []), /compares with an integer/);
      assert.equal(await store.get('bad/k'), undefined);
    });

    test('watch delivers the puts and deletes under its prefix in order; a txn\'s changes share a revision', async () => {
      const base = await store.revision();
      const w = new WatchRecorder(store, 'watch/a/', base + 1);
      try {
        await store.put('watch/a/1', 'one');
        await store.put('watch/ab', 'not under the prefix');
        await store.put('watch/a/2', 'two');
        await store.delete('watch/a/1');
        await store.put('watch/a/2', 'three');
        await store.txn([], [{ put: 'watch/a/3', value: 'x' }, { delete: 'watch/a/2' }, { put: 'watch/b', value: 'no' }]);
        await store.delete('watch/a/missing');
        await store.put('watch/a/4', 'last');
        assert.deepEqual(show(await w.until(7), base), [
          'put watch/a/1=one @1', 'put watch/a/2=two @3', 'delete watch/a/1 @4', 'put watch/a/2=three @5',
          'put watch/a/3=x @6', 'delete watch/a/2 @6', 'put watch/a/4=last @7',
        ]);
        assert.equal((await w.throughSentinel(store, 'watch/a/zz')).length, 7, 'nothing more arrives');
      } finally {
        await w.stop();
      }
    });

    test('a watch without fromRevision starts after the revision current when it starts', async () => {
      await store.put('now/old', 'before');
      const w = new WatchRecorder(store, 'now/');
      try {
        // The watch attaches asynchronously (an etcd watch asks for the revision first): probes
        // until one arrives, so it is surely attached; probes put before that may be missed.
        for (let i = 0; w.changes.length === 0 && w.error === undefined; i++) {
          assert.ok(i < 100_000, 'the watch never delivered a probe');
          await store.put(`now/probe-${i}`, 'probe');
          await new Promise((resolve) => setImmediate(resolve));
        }
        const r = await store.put('now/new', 'after');
        const got = await w.throughSentinel(store, 'now/zz');
        assert.ok(got.every((c) => c.key !== 'now/old'), `the change from before the watch is not delivered: ${show(got).join(', ')}`);
        assert.deepEqual(show(got).filter((line) => !line.startsWith('put now/probe-')), [`put now/new=after @${r}`]);
      } finally {
        await w.stop();
      }
    });

    test('a watch resumes from a past revision: every change since, none twice, then live ones', async () => {
      const revs: number[] = [];
      for (let i = 1; i <= 5; i++) revs.push(await store.put(`resume/${i}`, `v${i}`));
      await store.delete('resume/1');
      const w = new WatchRecorder(store, 'resume/', revs[1]);
      try {
        await w.until(5);
        const live = await store.put('resume/6', 'v6');
        const got = await w.until(6);
        assert.deepEqual(show(got), [
          `put resume/2=v2 @${revs[1]}`, `put resume/3=v3 @${revs[2]}`, `put resume/4=v4 @${revs[3]}`,
          `put resume/5=v5 @${revs[4]}`, `delete resume/1 @${revs[4]! + 1}`, `put resume/6=v6 @${live}`,
        ]);
        assert.equal((await w.throughSentinel(store, 'resume/zz')).length, 6, 'nothing arrives twice');
      } finally {
        await w.stop();
      }
      // A second handle sees the same history.
      const other = await backend.open();
      const w2 = new WatchRecorder(other, 'resume/', revs[3]);
      try {
        assert.deepEqual(show(await w2.until(4)), show(w.changes.slice(2)));
      } finally {
        await w2.stop();
        await other.close();
      }
    });

    test('large values (1 MiB) round trip through put, get, list, txn and watch', async () => {
      const big = Buffer.alloc(1 << 20);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 10)) & 0xff;
      const base = await store.revision();
      const w = new WatchRecorder(store, 'large/', base + 1);
      try {
        await store.put('large/a', big);
        assert.ok((await store.get('large/a'))?.value.equals(big));
        const equal = await store.txn([{ key: 'large/a', target: 'value', op: '=', value: big }], []);
        assert.equal(equal.succeeded, true, 'a 1 MiB value compares equal');
        // (Not both in one txn: etcd refuses requests over 1.5 MiB by default.)
        const res = await store.txn([{ key: 'large/a', target: 'version', op: '=', value: 1 }], [{ put: 'large/b', value: big }]);
        assert.equal(res.succeeded, true);
        const listed = await store.list('large/');
        assert.deepEqual(listed.map((kv) => [kv.key, kv.value.equals(big)]), [['large/a', true], ['large/b', true]]);
        const changes = await w.until(2);
        assert.deepEqual(show(changes, base), [`put large/a=<${1 << 20} bytes> @1`, `put large/b=<${1 << 20} bytes> @2`]);
        assert.ok(changes.every((c) => c.value!.equals(big)));
      } finally {
        await w.stop();
      }
    });

    test('aborting ends a watch; an already aborted signal yields nothing', async () => {
      const base = await store.revision();
      const w = new WatchRecorder(store, 'abort/', base + 1);
      await store.put('abort/1', 'x');
      await w.until(1);
      await w.stop(); // resolves once the watch's loop has ended

      assert.equal(w.error, undefined, 'an aborted watch ends without an error');
      await store.put('abort/2', 'y');
      assert.equal(w.changes.length, 1);

      const aborted = new AbortController();
      aborted.abort();
      const seen: Change[] = [];
      for await (const c of store.watch('abort/', { signal: aborted.signal, fromRevision: 1 })) seen.push(c);
      assert.deepEqual(seen, []);

      // Breaking out of the loop ends the watch too.
      const ac = new AbortController();
      for await (const c of store.watch('abort/', { signal: ac.signal, fromRevision: base + 1 })) {
        assert.equal(c.key, 'abort/1');
        break;
      }
    });
  });
}
