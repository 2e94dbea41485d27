/**
 * A store whose data is not what Cairn wrote: a damaged SQLite file, a file whose tables are not
 * a store's, a head naming garbage, a manifest that is not JSON. Each is a clear error naming
 * the store, exit 3 (DESIGN §12: the environment, not the input), never a stack trace (exit 70)
 * nor "nothing pushed". A blob altered in the store is found and written again by the next push.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';
import { KEYS } from '../src/store/documents.ts';
import { openStore } from '../src/store/index.ts';
import { sha256Hex } from '../src/lib/digest.ts';

const SITE = {
  'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    run: [s]\n',
  'states/s.yaml': 's:\n  - file: /tmp/cairn-store-corrupt-never\n    content: "hello\\n"\n',
};

/** A site pushed once into a fresh SQLite store; returns the site, the store file and its URL. */
async function pushed(): Promise<{ site: string; file: string; url: string }> {
  const site = makeSite(SITE);
  const file = join(tempDir('cairn-store-corrupt-'), 'store.db');
  const url = `sqlite:${file}`;
  const r = await runCli(['push', '--site', site, '--store', url]);
  assert.equal(r.status, 0, r.stderr);
  return { site, file, url };
}

/** Asserts a command failed with exit 3 and an error naming `file`, without a stack trace. */
function assertCorrupt(r: { status: number | null; stdout: string; stderr: string }, file: string, message: RegExp): void {
  assert.equal(r.status, 3, `exit code; stderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
  assert.ok(r.stderr.includes(file), `the error names the store file ${file}:\n${r.stderr}`);
  assert.match(r.stderr, message);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, 'no stack trace');
  assert.doesNotMatch(r.stdout, /nothing pushed/);
}

async function withStore<T>(url: string, fn: (store: Awaited<ReturnType<typeof openStore>>) => Promise<T>): Promise<T> {
  const store = await openStore(url);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

test('store corrupt: every page header smashed: status and push exit 3 naming the file', async () => {
  const { site, file, url } = await pushed();
  const bytes = readFileSync(file);
  const pageSize = bytes.readUInt16BE(16) === 1 ? 65536 : bytes.readUInt16BE(16);
  const pages = statSync(file).size / pageSize;
  assert.ok(pages >= 2, `a store of ${pages} pages`);
  const fd = openSync(file, 'r+');
  try {
    // Page 1's b-tree header follows the 100-byte file header; every other page's starts it.
    for (let page = 0; page < pages; page++) writeSync(fd, Buffer.alloc(12, 0xa5), 0, 12, page * pageSize + (page === 0 ? 100 : 0));
  } finally {
    closeSync(fd);
  }
  assertCorrupt(await runCli(['status', '--store', url]), file, /is corrupt: .*malformed|is corrupt/);
  assertCorrupt(await runCli(['push', '--site', site, '--store', url]), file, /is corrupt/);
});

test('store corrupt: a file that is not a database at all', async () => {
  const file = join(tempDir('cairn-store-corrupt-'), 'store.db');
  const fd = openSync(file, 'w');
  writeSync(fd, Buffer.alloc(8192, 0x5a));
  closeSync(fd);
  assertCorrupt(await runCli(['status', '--store', `sqlite:${file}`]), file, /is corrupt: .*not a database/);
});

test('store corrupt: a kv table with the wrong columns', async () => {
  const file = join(tempDir('cairn-store-corrupt-'), 'store.db');
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(file);
  db.exec('CREATE TABLE kv (k TEXT, v TEXT); INSERT INTO kv VALUES (\'a\', \'b\');');
  db.close();
  assertCorrupt(await runCli(['status', '--store', `sqlite:${file}`]), file, /table kv has the columns \(k, v\), a Cairn store's has \(key, value, create_revision, mod_revision, version\)/);
});

test('store corrupt: a head pointing at garbage is an error, not "nothing pushed"', async () => {
  const { site, file, url } = await pushed();
  await withStore(url, (store) => store.put(KEYS.head, Buffer.from([0xde, 0xad, 0x00, 0xbe, 0xef])));
  const status = await runCli(['status', '--store', url]);
  assertCorrupt(status, file, /corrupt document \/cairn\/site\/revisions\/.* the head names a revision that is not in the store/);
  assertCorrupt(await runCli(['status', '--store', url, '--json']), file, /the head names a revision that is not in the store/);
  assertCorrupt(await runCli(['push', '--site', site, '--store', url]), file, /the head names a revision/);
});

test('store corrupt: a manifest that is not JSON', async () => {
  const { file, url } = await pushed();
  await withStore(url, async (store) => {
    const head = (await store.get(KEYS.head))!.value.toString('utf8');
    await store.put(KEYS.revision(head), '{"files": {"cairn.yaml": ');
  });
  assertCorrupt(await runCli(['status', '--store', url]), file, /corrupt document \/cairn\/site\/revisions\/\w+ in the store: not JSON/);
});

test('store corrupt: a tampered blob is found and written again by the next push, then the push is unchanged', async () => {
  const { site, url } = await pushed();
  const sha = sha256Hex(readFileSync(join(site, 'states/s.yaml')));
  await withStore(url, (store) => store.put(KEYS.blob(sha), 's:\n  - exec: echo tampered\n'));

  const repair = await runCli(['push', '--site', site, '--store', url]);
  assert.equal(repair.status, 0, repair.stderr);
  assert.match(repair.stdout, /revision \w+ \(unchanged; 1 stored file that did not match its hash written again\)/);
  const stored = await withStore(url, (store) => store.get(KEYS.blob(sha)));
  assert.equal(sha256Hex(stored!.value), sha, 'the blob holds the site file again');

  const again = await runCli(['push', '--site', site, '--store', url]);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /revision \w+ \(unchanged\)\n/);
});
