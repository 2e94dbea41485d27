/**
 * The store: the shared suite (store.suite.ts) on SQLite and on a real three-member etcd cluster
 * (test/helpers/etcd.ts), then what only one back end can show: SQLite across processes, etcd
 * losing its leader or the member a watch is connected to, compaction, unreachable stores, and
 * reading store URLs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { InputError } from '../src/lib/errors.ts';
import { openStore, parseStoreUrl, StoreCompactedError, StoreRefusedError, StoreUnreachableError, type Store } from '../src/store/index.ts';
import { etcdUnavailable, startEtcdCluster, type EtcdCluster } from './helpers/etcd.ts';
import { increment, show, storeSuite, WatchRecorder } from './store.suite.ts';

const scratch = mkdtempSync(join(tmpdir(), 'cairn-store-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

// ---- SQLite ----

const sqliteUrl = `sqlite:${join(scratch, 'nested/folder/store.db')}`;
storeSuite({ name: 'SQLite', open: () => openStore(sqliteUrl) });

/** Runs a child Node process that opens the store and runs `body` (with `store` in scope). */
function child(url: string, body: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = join(scratch, `child-${Math.random().toString(36).slice(2)}.mts`);
  const index = pathToFileURL(join(import.meta.dirname, '../src/store/index.ts')).href;
  writeFileSync(script, `import { openStore } from ${JSON.stringify(index)};\n` +
    `const store = await openStore(${JSON.stringify(url)});\n${body}\nawait store.close();\n`);
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d));
    p.stderr.on('data', (d: Buffer) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('store on SQLite only', () => {
  test('the file and its folder are created, in WAL mode', async () => {
    const url = `sqlite:${join(scratch, 'a/b/c/wal.db')}`;
    const store = await openStore(url);
    try {
      assert.equal(store.url, url);
      assert.ok(existsSync(join(scratch, 'a/b/c/wal.db')));
      await store.put('k', 'v');
      assert.ok(existsSync(join(scratch, 'a/b/c/wal.db-wal')), 'a WAL file exists');
      assert.equal(await store.revision(), 2, 'a new store starts at revision 1, as etcd does');
    } finally {
      await store.close();
    }
  });

  test('a watch sees the changes another process writes, once each, in order', async () => {
    const url = `sqlite:${join(scratch, 'cross.db')}`;
    const store = await openStore(url);
    try {
      const base = await store.revision();
      const w = new WatchRecorder(store, 'x/', base + 1);
      const r = await child(url, `
        for (let i = 1; i <= 30; i++) await store.put('x/' + (i % 4), 'v' + i);
        await store.delete('x/1');
        await store.txn([], [{ put: 'x/t', value: 'txn' }, { delete: 'x/2' }]);`);
      assert.equal(r.code, 0, r.stderr);
      await w.until(33);
      const got = await w.throughSentinel(store, 'x/zz');
      await w.stop();
      const expected = Array.from({ length: 30 }, (_, i) => `put x/${(i + 1) % 4}=v${i + 1} @${i + 1}`)
        .concat(['delete x/1 @31', 'put x/t=txn @32', 'delete x/2 @32']);
      assert.deepEqual(show(got, base), expected);
    } finally {
      await store.close();
    }
  });

  test('several processes writing with compare-and-swap: 3 × 10 increments give exactly 30', async () => {
    const url = `sqlite:${join(scratch, 'writers.db')}`;
    const body = `
      ${increment.toString()}
      for (let i = 0; i < 10; i++) await increment(store, 'counter');`;
    const results = await Promise.all([child(url, body), child(url, body), child(url, body)]);
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const store = await openStore(url);
    try {
      const kv = await store.get('counter');
      assert.equal(kv?.value.toString(), '30');
      assert.equal(kv?.version, 30);
      assert.equal(await store.revision(), 31, 'no revision was lost or repeated');
    } finally {
      await store.close();
    }
  });

  test('history beyond historyRevisions is compacted: watching from there says so', async () => {
    const store = await openStore(`sqlite:${join(scratch, 'compact.db')}`, { historyRevisions: 5 });
    try {
      for (let i = 0; i < 10; i++) await store.put('c/k', String(i));
      const current = await store.revision();
      const w = new WatchRecorder(store, 'c/', 2);
      await w.ended();
      assert.ok(w.error instanceof StoreCompactedError, String(w.error));
      assert.match((w.error as Error).message, /cannot watch from revision 2: that history was compacted \(the oldest revision kept is 7\)/);
      const ok = new WatchRecorder(store, 'c/', current - 4);
      assert.equal((await ok.until(5)).length, 5);
      await ok.stop();
    } finally {
      await store.close();
    }
  });

  test('a store file that cannot be created is unreachable, naming the URL', async () => {
    // A folder that cannot exist: its parent is a file. (Not under /proc: Node 20's recursive
    // mkdirSync loops forever there.)
    writeFileSync(join(scratch, 'a-file'), '');
    const url = `sqlite:${join(scratch, 'a-file/sub/store.db')}`;
    await assert.rejects(openStore(url), (err: Error) => {
      assert.ok(err instanceof StoreUnreachableError);
      assert.equal(err.exitCode, 3);
      assert.ok(err.message.startsWith(`store ${url} is unreachable: cannot open ${join(scratch, 'a-file/sub/store.db')}: ENOTDIR`), err.message);
      return true;
    });
  });
});

// ---- etcd ----

const etcdWhy = etcdUnavailable();
if (etcdWhy) process.stderr.write(`ETCD TESTS SKIPPED: ${etcdWhy}\n`);
let cluster: EtcdCluster | undefined;
const clusterUp = etcdWhy ? undefined : (async () => {
  cluster = await startEtcdCluster(3);
  return cluster;
})();
after(async () => {
  await clusterUp?.catch(() => undefined);
  await cluster?.stop();
});

storeSuite({ name: 'etcd (3 members)', skip: etcdWhy, open: async () => openStore((await clusterUp!).url) });

describe('store on etcd only', { skip: etcdWhy ?? false }, () => {
  let c: EtcdCluster;
  let store: Store;
  before(async () => {
    c = (await clusterUp)!;
    store = await openStore(c.url);
  });
  after(async () => {
    await store?.close();
  });

  test('kill the leader: writes, lists and an open watch go on, and nothing is lost', async () => {
    const base = await store.revision();
    const w = new WatchRecorder(store, 'ha/', base + 1);
    const leader = await c.leader();
    for (let i = 0; i < 10; i++) await store.put(`ha/${String(i).padStart(2, '0')}`, `v${i}`);
    await c.kill(leader);
    await store.put('ha/10', 'v10');
    for (let i = 11; i < 20; i++) await store.put(`ha/${i}`, `v${i}`);
    assert.deepEqual((await store.list('ha/')).map((kv) => kv.value.toString()), Array.from({ length: 20 }, (_, i) => `v${i}`));
    await w.until(20);
    const got = await w.throughSentinel(store, 'ha/zz');
    assert.deepEqual(show(got).map((s) => s.replace(/ @\d+$/, '')), Array.from({ length: 20 }, (_, i) => `put ha/${String(i).padStart(2, '0')}=v${i}`), 'each change once, in order');
    assert.ok(got.every((ch, i) => i === 0 || ch.revision === got[i - 1]!.revision + 1), 'consecutive revisions');
    await w.stop();
    await c.restart(leader);
    // The restarted member catches up from its data folder and the others.
    const only = await openStore(`etcd:${c.endpoints[leader]}`);
    try {
      assert.equal((await only.list('ha/')).length, 21, 'the 20 changes and the sentinel');
    } finally {
      await only.close();
    }
  });

  test('a watch that loses its member resumes from the last change it delivered', async () => {
    // The watching handle knows only this member, so its watch surely runs through it.
    const victim = (await c.leader() + 1) % c.endpoints.length;
    const watcher = await openStore(`etcd:${c.endpoints[victim]}`);
    const writer = await openStore(`etcd:${c.endpoints.filter((_, i) => i !== victim).join(',')}`);
    try {
      const base = await writer.revision();
      const w = new WatchRecorder(watcher, 'lost/', base + 1);
      for (let i = 0; i < 5; i++) await writer.put(`lost/${i}`, `v${i}`);
      await w.until(5);
      await c.kill(victim);
      for (let i = 5; i < 15; i++) await writer.put(`lost/${i}`, `v${i}`);
      // The watcher's only member is dead: the writes, committed by the others, have not reached it.
      assert.equal(w.changes.length, 5, 'nothing arrives while the member is down');
      await c.restart(victim);
      await w.until(15);
      const got = await w.throughSentinel(writer, 'lost/zz');
      assert.deepEqual(show(got, base), Array.from({ length: 15 }, (_, i) => `put lost/${i}=v${i} @${i + 1}`));
      assert.equal(w.error, undefined);
      await w.stop();
    } finally {
      await watcher.close();
      await writer.close();
      if (!c.members[victim]!.process) await c.restart(victim);
    }
  });

  test('a request over etcd\'s size limit fails, saying so (refused, not unreachable)', async () => {
    const big = Buffer.alloc(1 << 20, 1);
    await assert.rejects(store.txn([], [{ put: 'size/a', value: big }, { put: 'size/b', value: big }]), (err: Error) => {
      assert.ok(err instanceof StoreRefusedError, String(err));
      assert.match(err.message, /^store etcd:\S+ refused the request: the request is larger than the etcd server accepts/);
      return true;
    });
    assert.equal(await store.get('size/a'), undefined);
  });

  test('watching from a compacted revision says so', async () => {
    const first = await store.put('compact/k', '1');
    for (let i = 2; i <= 5; i++) await store.put('compact/k', String(i));
    const current = await store.revision();
    const r = c.etcdctl('compact', String(current));
    assert.equal(r.code, 0, r.stderr);
    const w = new WatchRecorder(store, 'compact/', first);
    await w.ended();
    assert.ok(w.error instanceof StoreCompactedError, String(w.error));
    assert.match((w.error as Error).message, new RegExp(`cannot watch from revision ${first}: that history was compacted`));
    const ok = new WatchRecorder(store, 'compact/', current);
    assert.deepEqual(show(await ok.until(1)), [`put compact/k=5 @${current}`]);
    await ok.stop();
  });
});

describe('unreachable stores', () => {
  test('an etcd URL where nothing listens (or nothing answers) is unreachable, naming the URL', async () => {
    const urls = ['etcd:127.0.0.1:9,127.0.0.1:7', 'etcd://192.0.2.1:2379'];
    await Promise.all(urls.map(async (url) => {
      await assert.rejects(openStore(url), (err: Error) => {
        assert.ok(err instanceof StoreUnreachableError, String(err));
        assert.equal(err.url, url);
        assert.ok(err.message.startsWith(`store ${url} is unreachable: `), err.message);
        return true;
      });
    }));
  });
});

describe('store URLs', () => {
  test('sqlite paths', () => {
    assert.deepEqual(parseStoreUrl('sqlite:/var/lib/cairn/store.db'), { kind: 'sqlite', url: 'sqlite:/var/lib/cairn/store.db', path: '/var/lib/cairn/store.db' });
    assert.equal((parseStoreUrl('sqlite:///abs/s.db') as { path: string }).path, '/abs/s.db');
    assert.equal((parseStoreUrl('sqlite:rel/s.db') as { path: string }).path, join(process.cwd(), 'rel/s.db'));
  });

  test('etcd hosts, default port, credentials removed from the URL', () => {
    const t = parseStoreUrl('etcd://admin:s3cret@10.0.0.1:2379,10.0.0.2,[::1]:2400?ca=/etc/ca.pem&cert=/c&key=/k', { env: {} });
    assert.deepEqual(t, {
      kind: 'etcd', url: 'etcd://10.0.0.1:2379,10.0.0.2,[::1]:2400?ca=/etc/ca.pem&cert=/c&key=/k',
      hosts: ['10.0.0.1:2379', '10.0.0.2:2379', '[::1]:2400'],
      ca: '/etc/ca.pem', cert: '/c', key: '/k', user: 'admin', password: 's3cret',
    });
    assert.equal(parseStoreUrl('etcd:h1:1,h2:2', { env: {} }).url, 'etcd:h1:1,h2:2');
    const q = parseStoreUrl('etcd:h1?user=u&password=p%26w&ca=/x', { env: {} });
    assert.deepEqual([q.url, (q as { password?: string }).password], ['etcd:h1?user=u&ca=/x', 'p&w']);
    assert.equal(parseStoreUrl('etcd:h1?password=p', { env: {} }).url, 'etcd:h1');
  });

  test('settings: options win over the URL, which wins over CAIRN_STORE_* variables', () => {
    const env = { CAIRN_STORE_USER: 'envuser', CAIRN_STORE_PASSWORD: 'envpw', CAIRN_STORE_CA: '/env/ca' };
    assert.deepEqual(parseStoreUrl('etcd:h:1', { env }), { kind: 'etcd', url: 'etcd:h:1', hosts: ['h:1'], user: 'envuser', password: 'envpw', ca: '/env/ca' });
    assert.deepEqual(parseStoreUrl('etcd:h:1?user=urluser', { env }), { kind: 'etcd', url: 'etcd:h:1?user=urluser', hosts: ['h:1'], user: 'urluser', password: 'envpw', ca: '/env/ca' });
    assert.deepEqual(parseStoreUrl('etcd:h:1?user=urluser', { env, user: 'opt', ca: '/opt/ca' }),
      { kind: 'etcd', url: 'etcd:h:1?user=urluser', hosts: ['h:1'], user: 'opt', password: 'envpw', ca: '/opt/ca' });
  });

  test('malformed URLs are input errors', () => {
    for (const [url, message] of [
      ['mysql://x', /has no known scheme/], ['store.db', /has no known scheme/], ['sqlite:', /names no file/],
      ['etcd:', /names no etcd member/], ['etcd:h:1?cert=/c', /needs both cert and key/], ['etcd:h:1?cert=/c&key=/k', /needs ca/],
      ['etcd:h:x', /is not HOST:PORT/],
    ] as const) {
      assert.throws(() => parseStoreUrl(url, { env: {} }), (err: Error) => err instanceof InputError && message.test(err.message), url);
    }
  });
});
