/**
 * The local executor's content index (src/executors/content-index.ts): a file whose stat is as
 * recorded is not read again, any write shows in the stat, recent files are never recorded,
 * `--checksum` reads everything, and `plan` writes no index.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ContentIndex } from '../src/executors/content-index.ts';
import { sha256Hex } from '../src/lib/digest.ts';
import { fingerprint, fingerprintHex, murmur3Pair } from '../src/lib/fingerprint.ts';
import { DIRECT_COMPARES, LocalExecutor } from '../src/executors/local.ts';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';
import { waitUntil } from './helpers/wait.ts';

/**
 * Waits until a run starting now may record `paths` (their ctime lies a clock tick before it, by
 * the index's own rule, whatever the file system's timestamps), instead of sleeping a guess.
 */
async function untilRecordable(...paths: string[]): Promise<void> {
  // Never saved: only its clock (the moment it is made) is used.
  const unused = join(tempDir('cairn-ci-probe-'), 'index.json');
  const probe = () => new ContentIndex(unused, { trust: true, save: false });
  await waitUntil(() => paths.every((path) => probe().recordable(lstatSync(path))), `${paths.join(', ')} recordable`);
}

/** Writes `content` to `path` and puts its mtime back exactly (to the nanosecond), as a careful editor could. */
function writeKeepingMtime(path: string, content: string): void {
  const reference = `${path}.mtime`;
  execFileSync('touch', ['-r', path, reference]);
  writeFileSync(path, content);
  execFileSync('touch', ['-m', '-r', reference, path]);
}

const SHA = 'a'.repeat(64);

type Entry = [number, number, number, number, number, string];

/** An index file's entries by path (its columns: paths, five stat numbers a path, 64 hex digits a path). */
function readIndex(file: string): Record<string, Entry> {
  const { version, paths, stats, sha256 } = JSON.parse(readFileSync(file, 'utf8')) as { version: number; paths: string[]; stats: number[]; sha256: string };
  assert.equal(version, 5);
  return Object.fromEntries(paths.map((p, i) => [p, [...stats.slice(i * 5, i * 5 + 5), sha256.slice(i * 64, i * 64 + 64)] as Entry]));
}
function writeIndex(file: string, entries: Record<string, Entry>): void {
  const rows = Object.entries(entries);
  writeFileSync(file, JSON.stringify({ version: 5, paths: rows.map(([p]) => p), stats: rows.flatMap(([, e]) => e.slice(0, 5)), sha256: rows.map(([, e]) => e[5]).join('') }));
}

function fakeStat(fields: Partial<Stats>): Stats {
  return { dev: 1, ino: 2, size: 3, mtimeMs: 1000.5, ctimeMs: 1000.5, ...fields } as Stats;
}

test('the fingerprint is MurmurHash3 (x86, 32-bit) with two seeds: the reference vectors', () => {
  const h = (text: string, seed: number) => murmur3Pair(Buffer.from(text), [seed, seed])[0];
  assert.equal(h('', 0), 0);
  assert.equal(h('', 1), 0x514e28b7);
  assert.equal(h('', 0xffffffff), 0x81f16f39);
  assert.equal(h('aaaa', 0x9747b28c), 0x5a97808a);
  assert.equal(h('Hello, world!', 1234), 0xfaf6cdb3);
  assert.equal(h('The quick brown fox jumps over the lazy dog', 0), 0x2e4ff723);
  assert.deepEqual(fingerprint(Buffer.from('Hello, world!')), [0xc0363e43, murmur3Pair(Buffer.from('Hello, world!'), [0x9747b28c, 0])[0]]);
  assert.match(fingerprintHex(Buffer.from('x')), /^[0-9a-f]{16}$/);
  assert.notDeepEqual(fingerprint(Buffer.from('dir 01 file 04\n')), fingerprint(Buffer.from('dir 01 file 05\n')));
});

test('an entry answers only for the exact stat it was recorded with', () => {
  const index = new ContentIndex(join(tempDir('cairn-ci-'), 'index.json'), { trust: true, save: true });
  const s = fakeStat({});
  index.record('/f', s, SHA);
  assert.equal(index.lookup('/f', s), SHA);
  index.record('/f', fakeStat({ ctimeMs: 999.5 }), 'b'.repeat(64));
  assert.equal(index.lookup('/f', fakeStat({ ctimeMs: 999.5 })), 'b'.repeat(64), 'a new stat replaces the entry');
  assert.equal(index.lookup('/f', s), undefined);
  index.record('/f', s, SHA);
  for (const change of [{ dev: 9 }, { ino: 9 }, { size: 9 }, { mtimeMs: 1000.6 }, { ctimeMs: 1000.6 }]) {
    assert.equal(index.lookup('/f', fakeStat(change)), undefined, JSON.stringify(change));
  }
  assert.equal(index.lookup('/other', s), undefined);
});

test('a file changed just before the run is not recorded (a later change could share its ctime)', () => {
  const index = new ContentIndex(join(tempDir('cairn-ci-'), 'index.json'), { trust: true, save: true });
  const now = Date.now();
  assert.equal(index.recordable(fakeStat({ ctimeMs: now - 1000.25 })), true);
  assert.equal(index.recordable(fakeStat({ ctimeMs: now - 10.25 })), false);
  assert.equal(index.recordable(fakeStat({ ctimeMs: now + 5000.25 })), false, 'a ctime ahead of the clock');
  // Whole seconds: a file system with coarse timestamps, so the margin is two seconds.
  const whole = Math.floor(now / 1000) * 1000;
  assert.equal(index.recordable(fakeStat({ ctimeMs: whole - 1000 })), false);
  assert.equal(index.recordable(fakeStat({ ctimeMs: whole - 3000 })), true);
  index.record('/recent', fakeStat({ ctimeMs: now - 10.25 }), SHA);
  assert.equal(index.lookup('/recent', fakeStat({ ctimeMs: now - 10.25 })), undefined);
});

test('saved and loaded whole; a damaged index counts as empty; without trust nothing is looked up', () => {
  const dir = tempDir('cairn-ci-');
  const file = join(dir, 'state', 'index.json');
  const first = new ContentIndex(file, { trust: true, save: true });
  first.record('/f', fakeStat({}), SHA);
  first.save();
  assert.equal(statSync(join(dir, 'state')).mode & 0o777, 0o700);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(new ContentIndex(file, { trust: true, save: true }).lookup('/f', fakeStat({})), SHA);
  assert.equal(new ContentIndex(file, { trust: false, save: true }).lookup('/f', fakeStat({})), undefined);
  writeFileSync(file, '{"version":5,"paths":["/f"],"stats":[1,2');
  assert.equal(new ContentIndex(file, { trust: true, save: true }).lookup('/f', fakeStat({})), undefined);
  // Columns that do not line up are not trusted either.
  writeFileSync(file, JSON.stringify({ version: 5, paths: ['/f'], stats: [1, 2, 3, 1000.5], sha256: SHA }));
  assert.equal(new ContentIndex(file, { trust: true, save: true }).lookup('/f', fakeStat({})), undefined);
  // Nor the format of one record a path (version 4): read as empty, rewritten in columns.
  writeFileSync(file, JSON.stringify({ version: 4, files: { '/f': [1, 2, 3, 1000.5, 1000.5, SHA] } }));
  assert.equal(new ContentIndex(file, { trust: true, save: true }).lookup('/f', fakeStat({})), undefined);
  // An index of the format before SHA-256 (a 64-bit fingerprint per file) is not trusted.
  writeFileSync(file, JSON.stringify({ version: 3, files: { '/f': [1, 2, 3, 1000.5, 1000.5, 1, 2, null] } }));
  assert.equal(new ContentIndex(file, { trust: true, save: true }).lookup('/f', fakeStat({})), undefined);
  const readOnly = new ContentIndex(join(dir, 'plan.json'), { trust: true, save: false });
  readOnly.record('/f', fakeStat({}), SHA);
  readOnly.save();
  assert.equal(existsSync(join(dir, 'plan.json')), false);
});

test('a saved index keeps the entries a run did not touch, with the ones it recorded anew', () => {
  const file = join(tempDir('cairn-ci-'), 'index.json');
  const first = new ContentIndex(file, { trust: true, save: true });
  first.record('/a', fakeStat({ ino: 10 }), SHA);
  first.record('/b', fakeStat({ ino: 11 }), SHA);
  first.save();
  const second = new ContentIndex(file, { trust: true, save: true });
  second.record('/b', fakeStat({ ino: 12 }), 'b'.repeat(64));
  second.record('/c', fakeStat({ ino: 13 }), 'c'.repeat(64));
  second.save();
  assert.deepEqual(readIndex(file), {
    '/a': [1, 10, 3, 1000.5, 1000.5, SHA],
    '/b': [1, 12, 3, 1000.5, 1000.5, 'b'.repeat(64)],
    '/c': [1, 13, 3, 1000.5, 1000.5, 'c'.repeat(64)],
  });
  const third = new ContentIndex(file, { trust: true, save: true });
  assert.equal(third.lookup('/a', fakeStat({ ino: 10 })), SHA);
  assert.equal(third.lookup('/b', fakeStat({ ino: 11 })), undefined, 'the old stat of /b no longer answers');
  assert.equal(third.lookup('/b', fakeStat({ ino: 12 })), 'b'.repeat(64));
});

test('the local executor records what it read, trusts it next time, and sees any write', async () => {
  const dir = tempDir('cairn-ci-');
  const path = join(dir, 'motd');
  const indexFile = join(dir, 'state', 'content-index.json');
  writeFileSync(path, 'hello\n');
  await untilRecordable(path);
  const options = { contentIndex: { file: indexFile, trust: true, save: true } };

  const first = new LocalExecutor(options);
  assert.equal(await first.holds(path, Buffer.from('hello\n')), true);
  assert.equal(await first.sha256(path), sha256Hex(Buffer.from('hello\n')));
  await first.close();
  const saved = readIndex(indexFile);
  const s = lstatSync(path);
  assert.deepEqual(saved[path], [s.dev, s.ino, s.size, s.mtimeMs, s.ctimeMs, sha256Hex(Buffer.from('hello\n'))]);

  // The index is trusted: an entry saying the file holds other bytes (of the same size) is
  // believed, once a run has compared its first few small files byte for byte (those are read).
  writeIndex(indexFile, { [path]: [s.dev, s.ino, s.size, s.mtimeMs, s.ctimeMs, sha256Hex(Buffer.from('HELLO\n'))] });
  const forged = readFileSync(indexFile);
  const trusting = new LocalExecutor(options);
  for (let i = 0; i < DIRECT_COMPARES; i++) {
    assert.equal(await trusting.holds(path, Buffer.from(i % 2 ? 'hello\n' : 'HELLO\n')), i % 2 === 1, `compare ${i}: the file is read`);
  }
  assert.equal(await trusting.holds(path, Buffer.from('HELLO\n')), true);
  assert.equal(await trusting.holds(path, Buffer.from('hello\n')), false);
  await trusting.close();
  assert.deepEqual(readFileSync(indexFile), forged, 'reading a file recorded with its stat records nothing');
  assert.equal(await new LocalExecutor(options).sha256(path), sha256Hex(Buffer.from('HELLO\n')));
  // ...and `--checksum` reads the file instead.
  const checking = new LocalExecutor({ contentIndex: { ...options.contentIndex, trust: false } });
  assert.equal(await checking.holds(path, Buffer.from('hello\n')), true);
  assert.equal(await checking.holds(path, Buffer.from('HELLO\n')), false);

  // A write of the same size with the mtime put back still moves the ctime: the file is read.
  writeIndex(indexFile, saved);
  writeKeepingMtime(path, 'HELLO\n');
  assert.equal(lstatSync(path).mtimeMs, s.mtimeMs);
  const after = new LocalExecutor(options);
  assert.equal(await after.holds(path, Buffer.from('hello\n')), false);
  assert.equal(await after.holds(path, Buffer.from('HELLO\n')), true);
  await after.close();
  assert.deepEqual(readIndex(indexFile), saved, 'written just now: read, not recorded');
});

test('cairn apply keeps the index in state_dir and notices a file edited behind its back; plan writes none', async () => {
  const root = tempDir('cairn-ci-root-');
  const state = join(root, 'state');
  const site = makeSite({
    'cairn.yaml': `targets:\n  local:\n    executor: local\n    state_dir: ${state}\n    run: [files]\n`,
    'states/files.yaml': `files:\n${['a', 'b', 'c'].map((n) => `  - file: ${root}/${n}\n    content: "${n}${n}${n}\\n"\n`).join('')}`,
  });
  const apply = (...extra: string[]) => runCli(['apply', '--site', site, '--json', ...extra]);
  const changed = (r: { stdout: string }) => (JSON.parse(r.stdout) as { targets: { counts: { changed: number } }[] }).targets[0]!.counts.changed;

  assert.equal(changed(await apply()), 3);
  await untilRecordable(...['a', 'b', 'c'].map((n) => join(root, n)));
  const plan = await runCli(['plan', '--site', site]);
  assert.equal(plan.status, 0, plan.stderr);
  assert.equal(existsSync(join(state, 'content-index.json')), false, 'plan writes no index');
  assert.equal(changed(await apply()), 0);
  assert.deepEqual(Object.keys(readIndex(join(state, 'content-index.json'))).sort(), [`${root}/a`, `${root}/b`, `${root}/c`]);

  const b = join(root, 'b');
  const mtime = lstatSync(b).mtimeMs;
  writeKeepingMtime(b, 'xxx\n');
  assert.equal(lstatSync(b).mtimeMs, mtime);
  const again = await apply();
  assert.equal(changed(again), 1);
  assert.equal(readFileSync(b, 'utf8'), 'bbb\n');
  assert.equal(changed(await apply('--checksum')), 0);
});
