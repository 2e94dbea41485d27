/**
 * `file` with `validate` (DESIGN §6) on this machine through the CLI: the command runs on the temp
 * file, with the content and mode it will have, before the rename; a refusal fails the node with
 * the command's output, leaves the old file as it was and no temp file behind. (A real `visudo`
 * on a lab host: lab-files.test.ts.)
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { converge, lines, scratchSite } from './helpers/converge.ts';

const R = '<%= it.vars.root %>';

const site = () => scratchSite('s', {
  'states/s.yaml': `s:\n  - file: ${R}/app.conf\n    content: "<%= it.vars.content %>\\n"\n    mode: "0600"\n` +
    `    validate: "grep -q '^ok' % || { echo \\"no ok line in %\\" >&2; exit 3; }"\n`,
});

test('validate: content the command accepts is written; what it refuses fails the node and leaves the old file', async () => {
  const s = site();
  writeFileSync(join(s.root, 'app.conf'), 'old content\n', { mode: 0o644 });
  const accepted = await converge(s, 'apply', ['--var', 'content=ok one'], 0);
  assert.deepEqual(lines(accepted.nodes), [`changed file:${s.root}/app.conf`]);
  assert.equal(readFileSync(join(s.root, 'app.conf'), 'utf8'), 'ok one\n');

  const refused = await converge(s, 'apply', ['--var', 'content=broken'], 1);
  assert.deepEqual(lines(refused.nodes), [`failed file:${s.root}/app.conf`]);
  const error = refused.nodes[0]!.error!;
  assert.match(error, new RegExp(`^validate refused the new content \\(${s.root}/app\\.conf left as it was\\)`));
  // The command's own words, naming the temp file it checked beside the real one.
  assert.match(error, /validate exited with 3\nno ok line in .*\/\.app\.conf\.cairn-tmp\./);
  assert.equal(readFileSync(join(s.root, 'app.conf'), 'utf8'), 'ok one\n');
  assert.deepEqual(readdirSync(s.root), ['app.conf']);

  // Nothing changed: the next plan still wants the refused content, and a good one goes through.
  const plan = await converge(s, 'plan', ['--var', 'content=broken'], 0);
  assert.deepEqual(plan.nodes.map((n) => n.changes), [['content']]);
  const fixed = await converge(s, 'apply', ['--var', 'content=ok two'], 0);
  assert.deepEqual(lines(fixed.nodes), [`changed file:${s.root}/app.conf`]);
  assert.equal(readFileSync(join(s.root, 'app.conf'), 'utf8'), 'ok two\n');
});

test('validate: a new file the command refuses is not created', async () => {
  const s = site();
  const r = await converge(s, 'apply', ['--var', 'content=nope'], 1);
  assert.equal(r.nodes[0]!.status, 'failed');
  assert.deepEqual(readdirSync(s.root), []);
});

test('validate: the command sees the temp file with the mode it will have; %% is a literal %', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - file: ${R}/mode.conf\n    content: "x\\n"\n    mode: "0640"\n    validate: "stat -c 100%%a % > ${R}/seen"\n`,
  });
  await converge(s, 'apply', [], 0);
  assert.equal(readFileSync(join(s.root, 'seen'), 'utf8'), '100640\n');
});
