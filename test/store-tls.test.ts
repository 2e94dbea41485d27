/**
 * The etcd store with security turned on, on real etcd members (test/helpers/etcd.ts):
 * - TLS with client certificates (`--client-cert-auth`, a throwaway CA made with openssl): the
 *   files given as options, in the URL's query, in CAIRN_STORE_CA/CERT/KEY and in a store config
 *   file read by `cairn status --store-config`; a missing client certificate fails fast, naming
 *   the URL (the CLI exits 3).
 * - etcd's own authentication, with a user whose role grants only readwrite on /cairn/ (what
 *   src/store/etcd.ts documents as the least a Cairn user needs): the user and password given as
 *   options, as `etcd://USER:PASSWORD@HOST`, in the query and in CAIRN_STORE_USER/PASSWORD; wrong
 *   credentials are an input error naming the URL (the CLI exits 2), never a password in a URL.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { InputError } from '../src/lib/errors.ts';
import { openStore, StoreUnreachableError, type Store, type StoreOptions } from '../src/store/index.ts';
import { runCli } from './helpers/cli.ts';
import { etcdUnavailable, makeCertificates, opensslUnavailable, startEtcdCluster, type EtcdCluster, type EtcdTlsFiles } from './helpers/etcd.ts';
import { show, WatchRecorder } from './store.suite.ts';

const why = etcdUnavailable() ?? opensslUnavailable();
if (why) process.stderr.write(`*** ETCD TLS TESTS SKIPPED: ${why} ***\n`);

const scratch = mkdtempSync(join(tmpdir(), 'cairn-store-tls-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Nothing from the test runner's own environment may leak into a store's settings. */
const NO_ENV: StoreOptions = { env: {} };

/** put, get, list, txn and a watch, under /cairn/ (all a restricted role may touch). */
async function exercise(store: Store, prefix: string): Promise<void> {
  const base = await store.revision();
  const w = new WatchRecorder(store, prefix, base + 1);
  try {
    assert.equal(await store.put(`${prefix}a`, 'one'), base + 1);
    assert.equal((await store.get(`${prefix}a`))?.value.toString(), 'one');
    const swapped = await store.txn([{ key: `${prefix}a`, target: 'value', op: '=', value: 'one' }], [{ put: `${prefix}b`, value: 'two' }]);
    assert.deepEqual(swapped, { succeeded: true, revision: base + 2 });
    assert.deepEqual((await store.list(prefix)).map((kv) => `${kv.key}=${kv.value.toString()}`), [`${prefix}a=one`, `${prefix}b=two`]);
    assert.equal(await store.delete(`${prefix}a`), base + 3);
    assert.deepEqual(show(await w.until(3), base), [`put ${prefix}a=one @1`, `put ${prefix}b=two @2`, `delete ${prefix}a @3`]);
  } finally {
    await w.stop();
  }
}

/** Opens, exercises and closes a store. */
async function works(url: string, options: StoreOptions, prefix: string): Promise<Store> {
  const store = await openStore(url, options);
  try {
    await exercise(store, prefix);
  } finally {
    await store.close();
  }
  return store;
}

/** Writes a store config file (YAML) and returns its path. */
function config(name: string, settings: Record<string, string>): string {
  const path = join(scratch, `${name}.yaml`);
  writeFileSync(path, Object.entries(settings).map(([k, v]) => `${k}: ${JSON.stringify(v)}\n`).join(''));
  return path;
}

/** `cairn status --json` with only this store config (no CAIRN_STORE* from the environment). */
function status(configFile: string) {
  const unset = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith('CAIRN_STORE')).map((k) => [k, undefined]));
  return runCli(['status', '--json', '--store-config', configFile], { cwd: scratch, env: unset });
}

describe('etcd over TLS with client certificates', { skip: why ?? false }, () => {
  let cluster: EtcdCluster;
  let tls: EtcdTlsFiles;
  let files: { ca: string; cert: string; key: string };

  before(async () => {
    tls = makeCertificates(mkdtempSync(join(scratch, 'pki-')));
    files = { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey };
    cluster = await startEtcdCluster(1, { tls });
  });
  after(() => cluster?.stop());

  test('the files as options: put, get, list, txn, watch', async () => {
    const store = await works(cluster.url, { ...NO_ENV, ...files }, '/cairn/tls-options/');
    assert.equal(store.url, cluster.url);
  });

  test('the files in the URL\'s query', async () => {
    const url = `${cluster.url}?ca=${files.ca}&cert=${files.cert}&key=${files.key}`;
    const store = await works(url, NO_ENV, '/cairn/tls-query/');
    assert.equal(store.url, url);
  });

  test('the files in CAIRN_STORE_CA, CAIRN_STORE_CERT, CAIRN_STORE_KEY', async () => {
    await works(cluster.url, { env: { CAIRN_STORE_CA: files.ca, CAIRN_STORE_CERT: files.cert, CAIRN_STORE_KEY: files.key } }, '/cairn/tls-env/');
  });

  test('without the client certificate: unreachable (a refusal, not a timeout), naming the URL and why', async () => {
    await assert.rejects(openStore(cluster.url, { ...NO_ENV, ca: files.ca, connectTimeoutMs: 1500 }), (err: Error) => {
      assert.ok(err instanceof StoreUnreachableError, String(err));
      assert.match(err.message, new RegExp(`^store ${cluster.url} is unreachable: .*bad certificate.*give cert and key`));
      return true;
    });
    // Plain text to a TLS member: unreachable as well.
    await assert.rejects(openStore(cluster.url, { ...NO_ENV, connectTimeoutMs: 1500 }), StoreUnreachableError);
  });

  test('a member certificate that does not name the host (localhost, not 127.0.0.1) is refused, saying so', async () => {
    const url = cluster.url.replace('127.0.0.1', 'localhost');
    await assert.rejects(openStore(url, { ...NO_ENV, ...files, connectTimeoutMs: 1500 }), (err: Error) => {
      assert.ok(err instanceof StoreUnreachableError, String(err));
      assert.match(err.message, /does not match certificate's altnames/);
      return true;
    });
  });

  test('cairn status --store-config FILE (url, ca, cert, key); without cert and key it exits 3', async () => {
    const ok = await status(config('tls', { url: cluster.url, ...files }));
    assert.equal(ok.status, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), { version: 1, head: null, targets: [] });
    assert.equal(ok.stderr, '', 'nothing on stderr (no warnings)');

    const refused = await status(config('tls-no-cert', { url: cluster.url, ca: files.ca }));
    assert.equal(refused.status, 3, refused.stderr);
    assert.match(refused.stderr, new RegExp(`^cairn: store ${cluster.url} is unreachable: .*bad certificate`));
  });
});

describe('etcd with authentication (user and password)', { skip: why ?? false }, () => {
  let cluster: EtcdCluster;
  let host: string;
  // Characters a URL must escape: the password still arrives intact and never shows.
  const password = 'pa:ss@w/rd?%';
  const cairnUser = { user: 'cairn', password };

  before(async () => {
    cluster = await startEtcdCluster(1);
    host = cluster.endpoints[0]!;
    const steps = [
      ['user', 'add', 'root:rootpw'],
      // The least a Cairn user needs (src/store/etcd.ts): readwrite on the prefix /cairn/.
      ['role', 'add', 'cairn'],
      ['role', 'grant-permission', 'cairn', '--prefix=true', 'readwrite', '/cairn/'],
      ['user', 'add', `cairn:${password}`],
      ['user', 'grant-role', 'cairn', 'cairn'],
      // A user whose role does not cover /cairn/.
      ['role', 'add', 'other'],
      ['role', 'grant-permission', 'other', '--prefix=true', 'readwrite', '/other/'],
      ['user', 'add', 'other:otherpw'],
      ['user', 'grant-role', 'other', 'other'],
      // A user who may only read /cairn/ (enough for cairn status, not for cairn push).
      ['role', 'add', 'reader'],
      ['role', 'grant-permission', 'reader', '--prefix=true', 'read', '/cairn/'],
      ['user', 'add', 'reader:readerpw'],
      ['user', 'grant-role', 'reader', 'reader'],
      ['auth', 'enable'],
    ];
    for (const step of steps) {
      const r = cluster.etcdctl(...step);
      assert.equal(r.code, 0, `etcdctl ${step.join(' ')}: ${r.stderr}`);
    }
  });
  after(() => cluster?.stop());

  test('user and password as options: put, get, list, txn, watch', async () => {
    const store = await works(cluster.url, { ...NO_ENV, ...cairnUser }, '/cairn/auth-options/');
    assert.equal(store.url, cluster.url);
  });

  test('etcd://USER:PASSWORD@HOST: the URL the store shows has no credentials', async () => {
    const store = await works(`etcd://cairn:${encodeURIComponent(password)}@${host}`, NO_ENV, '/cairn/auth-url/');
    assert.equal(store.url, `etcd://${host}`);
  });

  test('?user=&password= in the query: the URL the store shows has no password', async () => {
    const store = await works(`etcd:${host}?user=cairn&password=${encodeURIComponent(password)}`, NO_ENV, '/cairn/auth-query/');
    assert.equal(store.url, `etcd:${host}?user=cairn`);
  });

  test('CAIRN_STORE_USER and CAIRN_STORE_PASSWORD', async () => {
    await works(cluster.url, { env: { CAIRN_STORE_USER: 'cairn', CAIRN_STORE_PASSWORD: password } }, '/cairn/auth-env/');
  });

  test('a wrong password, no user, a role without /cairn/: input errors (not retried as unreachable), naming the URL, never the password', async () => {
    const cases: [string, StoreOptions, RegExp][] = [
      [`etcd://cairn:wrong%21pw@${host}`, {}, /^store etcd:\/\/\S+: etcd refused user "cairn": wrong user name or password$/],
      [cluster.url, { user: 'nosuch', password: 'x' }, /etcd refused user "nosuch": wrong user name or password$/],
      [cluster.url, {}, /etcd requires authentication and no user was given$/],
      [cluster.url, { user: 'other', password: 'otherpw' }, /etcd user "other" may not read \/cairn\/$/],
    ];
    for (const [url, options, expected] of cases) {
      await assert.rejects(openStore(url, { ...NO_ENV, ...options }), (err: Error) => {
        assert.ok(err instanceof InputError, `${url}: ${String(err)}`);
        assert.match(err.message, expected);
        assert.ok(err.message.includes(host), err.message);
        assert.ok(!err.message.includes('wrong!pw') && !err.message.includes('wrong%21pw'), err.message);
        return true;
      });
    }
  });

  test('user and password on a store without authentication: an input error too', async () => {
    const plain = await startEtcdCluster(1);
    try {
      await assert.rejects(openStore(plain.url, { ...NO_ENV, ...cairnUser }), /etcd has authentication turned off/);
    } finally {
      await plain.stop();
    }
  });

  test('a watch goes on across a restart of the member (which forgets every token)', async () => {
    const store = await openStore(cluster.url, { ...NO_ENV, ...cairnUser });
    const base = await store.revision();
    const w = new WatchRecorder(store, '/cairn/auth-restart/', base + 1);
    try {
      await store.put('/cairn/auth-restart/1', 'before');
      await w.until(1);
      await cluster.restart(0);
      await store.put('/cairn/auth-restart/2', 'after');
      assert.deepEqual(show(await w.until(2), base), ['put /cairn/auth-restart/1=before @1', 'put /cairn/auth-restart/2=after @2']);
    } finally {
      await w.stop();
      await store.close();
    }
  });

  test('cairn status --store-config FILE (url, user, password); a wrong password exits 2', async () => {
    const ok = await status(config('auth', { url: cluster.url, ...cairnUser }));
    assert.equal(ok.status, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), { version: 1, head: null, targets: [] });

    const refused = await status(config('auth-wrong', { url: cluster.url, user: 'cairn', password: 'wrong!pw' }));
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, new RegExp(`store ${cluster.url}: etcd refused user "cairn": wrong user name or password`));
    assert.ok(!refused.stderr.includes('wrong!pw'), refused.stderr);

    // A role that may read but not write: status works, push is refused (exit 2), nothing written.
    const reader = config('auth-reader', { url: cluster.url, user: 'reader', password: 'readerpw' });
    assert.equal((await status(reader)).status, 0);
    const site = mkdtempSync(join(tmpdir(), 'cairn-tls-site-'));
    writeFileSync(join(site, 'cairn.yaml'), 'targets: {}\n');
    const push = await runCli(['push', '--site', site, '--store-config', reader]);
    assert.equal(push.status, 2, push.stderr);
    assert.match(push.stderr, /refused the request: permission denied/);
    assert.deepEqual(JSON.parse((await status(reader)).stdout), { version: 1, head: null, targets: [] });
  });
});
