/**
 * `directory` with `source` on this machine, through the local executor (directory-source.suite.ts),
 * and a template of the folder rendered from a `!secret`: the file gets it, output never does.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from './helpers/cli.ts';
import { scratchSite } from './helpers/converge.ts';
import './directory-source.suite.ts';

const PLAIN = 'hunter2-folder-secret';

test('directory source (local): a template rendered from a !secret reaches the file only, not show, the report or --diff', async () => {
  const keyFile = join(tempDir('cairn-key-'), 't1.key');
  const keygen = await runCli(['secret', 'keygen', '--out', keyFile]);
  assert.equal(keygen.status, 0, keygen.stderr);
  const recipient = /public key: (age1\S+)/.exec(keygen.stdout)![1]!;
  const s = scratchSite('s', {
    'states/s.yaml': 's:\n  - directory: <%= it.vars.root %>/app\n    source: app\n    template: true\n',
    'app/db.conf.eta': 'password=<%= it.vars.db_password %>\n',
    'app/readme.txt': 'plain\n',
    'secrets.yaml': `recipients:\n  t1: [${recipient}]\n`,
  });
  const enc = await runCli(['secret', 'encrypt', '--site', s.site, '--for', 't1', PLAIN]);
  assert.equal(enc.status, 0, enc.stderr);
  mkdirSync(join(s.site, 'vars'), { recursive: true });
  writeFileSync(join(s.site, 'vars/all.yaml'), `db_password: ${enc.stdout}`);
  const env = { CAIRN_SECRET_KEY_FILE: keyFile };

  const shown = await runCli(['show', '--site', s.site, '--json'], { env });
  assert.equal(shown.status, 0, shown.stderr);
  assert.ok(!shown.stdout.includes(PLAIN), 'show --json holds the secret');
  assert.match(shown.stdout, /"tree_rendered": "\(sensitive\)"/);
  const applied = await runCli(['apply', '--site', s.site, '--json', '--diff'], { env });
  assert.equal(applied.status, 0, applied.stderr);
  assert.ok(!applied.stdout.includes(PLAIN) && !applied.stderr.includes(PLAIN));
  assert.equal(readFileSync(join(s.root, 'app/db.conf'), 'utf8'), `password=${PLAIN}\n`);
  assert.equal(readFileSync(join(s.root, 'app/readme.txt'), 'utf8'), 'plain\n');
});
