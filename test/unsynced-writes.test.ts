/**
 * Which writes fsync before their rename (src/executors/unsynced-writes.ts): only those that
 * replace content older than the run. Checked on the local executor by counting its fsync calls,
 * and on the SSH executor's remote commit function in a real /bin/sh.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { LocalExecutor } from '../src/executors/local.ts';
import { REMOTE_FUNCTIONS } from '../src/executors/shell/remote-script.ts';
import { UnsyncedWrites } from '../src/executors/unsynced-writes.ts';
import { shellQuote } from '../src/lib/shell.ts';
import { tempDir } from './helpers/cli.ts';

test('the rule: a write fsyncs only where something is that this run did not write unsynced', () => {
  const writes = new UnsyncedWrites();
  assert.equal(writes.mustSync('/a', false), false);
  assert.equal(writes.mustSync('/a', true), true);
  writes.add('/a');
  assert.equal(writes.mustSync('/a', true), false);
  assert.equal(writes.mustSync('/b', true), true);
});

test('local: new files and files this run created are renamed without an fsync; older content is fsynced first', async (t) => {
  const dir = tempDir('cairn-unsynced-');
  const older = join(dir, 'older');
  const created = join(dir, 'created');
  writeFileSync(older, 'from before the run\n');
  // node:fs's ESM namespace (which the executor imports) follows the CommonJS object once synced.
  const fsyncs = t.mock.method(createRequire(import.meta.url)('node:fs') as typeof fs, 'fsync');
  syncBuiltinESMExports();
  t.after(() => {
    t.mock.restoreAll();
    syncBuiltinESMExports();
  });

  const run = new LocalExecutor();
  await run.writeFile(created, 'one\n');
  await run.writeFile(created, 'two\n');
  assert.equal(fsyncs.mock.callCount(), 0, 'nothing was at the path, then only what this run wrote');
  await run.writeFile(older, 'replaced\n');
  assert.equal(fsyncs.mock.callCount(), 1, 'content from before the run is kept until the new content is on disk');
  await run.writeFile(older, 'replaced again\n');
  assert.equal(fsyncs.mock.callCount(), 2, 'an fsynced write is content to keep too');
  await run.close();
  assert.equal(readFileSync(created, 'utf8'), 'two\n');
  assert.equal(readFileSync(older, 'utf8'), 'replaced again\n');

  // The next run: what the last one wrote is older content now.
  const next = new LocalExecutor();
  await next.writeFile(created, 'three\n');
  assert.equal(fsyncs.mock.callCount(), 3);
  await next.close();
});

test('ssh: the remote commit runs sync on the temp file only when asked, and commits a dangling symlink', () => {
  const dir = tempDir('cairn-unsynced-ssh-');
  const bin = join(dir, 'bin');
  fs.mkdirSync(bin);
  // A `sync` that logs its arguments ahead of the real one on PATH; everything else is the real tool.
  const log = join(dir, 'sync.log');
  writeFileSync(join(bin, 'sync'), `#!/bin/sh\necho "$*" >> ${shellQuote(log)}\nexec /bin/sync "$@"\n`, { mode: 0o755 });
  const commit = (temp: string, path: string, sync: 0 | 1) => `printf 'x\\n' > ${shellQuote(temp)} && __cairn_commit ${shellQuote(temp)} ${shellQuote(path)} - - 0 ${sync}`;
  const script = [
    `PATH=${shellQuote(bin)}:$PATH`, '__n=cairn-test-nonce', `{\n${REMOTE_FUNCTIONS}\n} >/dev/null`,
    commit(join(dir, '.t1'), join(dir, 'new'), 0),
    commit(join(dir, '.t2'), join(dir, 'old'), 1),
    `ln -s ${shellQuote(join(dir, 'nowhere'))} ${shellQuote(join(dir, '.t3'))} && __cairn_commit ${shellQuote(join(dir, '.t3'))} ${shellQuote(join(dir, 'link'))} - - 0 0`,
  ].join('\n');
  execFileSync('/bin/sh', ['-c', script]);
  assert.equal(readFileSync(join(dir, 'new'), 'utf8'), 'x\n');
  assert.equal(readFileSync(join(dir, 'old'), 'utf8'), 'x\n');
  assert.equal(fs.readlinkSync(join(dir, 'link')), join(dir, 'nowhere'));
  assert.equal(readFileSync(log, 'utf8'), `-- ${join(dir, '.t2')}\n`);
});
