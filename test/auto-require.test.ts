/**
 * Implicit ordering (DESIGN §6, Puppet's autorequire), on this machine through the CLI: a path
 * after the `directory` node of its closest parent, a service after the package of its name, an
 * explicit requisite winning, an implicit edge that would close a cycle dropped, and `cairn show`
 * marking them. (A file owned by a user declared later is in lab-files.test.ts: it makes a user.)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { makeSite, runCli } from './helpers/cli.ts';
import { converge, lines, scratchSite } from './helpers/converge.ts';

const R = '<%= it.vars.root %>';
const facts = resolve(import.meta.dirname, 'fixtures/facts-debian.json');

const show = async (site: string) => {
  const r = await runCli(['show', '--site', site, '--facts', facts]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
};

test('auto: a file declared before its folder runs after the folder\'s directory node, the first run converges', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - file: ${R}/a/b/f\n    content: "f\\n"\n  - directory: ${R}/a/b\n  - directory: ${R}/a\n    mode: "0750"\n`,
  });
  const first = await converge(s, 'apply', [], 0);
  // The closest parent in the run: a/b for the file, a for a/b.
  assert.deepEqual(lines(first.nodes), [`changed directory:${s.root}/a`, `changed directory:${s.root}/a/b`, `changed file:${s.root}/a/b/f`]);
  assert.equal(readFileSync(join(s.root, 'a/b/f'), 'utf8'), 'f\n');
  const again = await converge(s, 'apply', [], 0);
  assert.deepEqual(again.target.counts, { changed: 0, unchanged: 3, failed: 0, skipped: 0 });
});

test('auto: a plan of a file in a folder to be made says it comes after that folder\'s node', async () => {
  const s = scratchSite('s', { 'states/s.yaml': `s:\n  - line: ${R}/d/conf\n    text: x = 1\n  - directory: ${R}/d\n` });
  const plan = await converge(s, 'plan', [], 0);
  assert.deepEqual(lines(plan.nodes), [`would-change directory:${s.root}/d`, `would-change line:${s.root}/d/conf#x = 1 [after directory:${s.root}/d]`]);
});

test('auto: show marks implicit edges `auto`; a service follows the package of its name; explicit requisites win', async () => {
  const site = makeSite({
    'cairn.yaml': 'targets:\n  web1:\n    executor: local\n    run: [s]\n',
    'states/s.yaml': 's:\n  - service: nginx\n    ensure: running\n  - file: /srv/www/index.html\n    content: hi\n    owner: www\n' +
      '  - package: nginx\n  - user: www\n  - directory: /srv/www\n  - file: /srv/www/other.html\n    content: x\n    before: directory:/srv/www\n',
  });
  const text = await show(site);
  const run = text.slice(text.indexOf('run order'));
  assert.match(run, /\d\. service:nginx .*\n\s+after package:nginx \(auto\)\n/);
  assert.match(run, /\d\. file:\/srv\/www\/index\.html .*\n\s+after directory:\/srv\/www \(auto\); after user:www \(auto\)\n/);
  // other.html is explicitly before its folder: no implicit edge the other way, and no cycle.
  assert.match(run, /\d\. directory:\/srv\/www .*\n\s+after file:\/srv\/www\/other\.html\n/);
  assert.doesNotMatch(run, /other\.html[^\n]*\n\s+[^\n]*\(auto\)/);
  const order = [...run.matchAll(/^\s+\d+\. (\S+)/gm)].map((m) => m[1]);
  assert.ok(order.indexOf('package:nginx') < order.indexOf('service:nginx'), order.join(' '));
  assert.ok(order.indexOf('user:www') < order.indexOf('file:/srv/www/index.html'), order.join(' '));
  const json = JSON.parse((await runCli(['show', '--site', site, '--facts', facts, '--json'])).stdout) as { graph: { edges: { from: string; to: string; declared?: string }[] } };
  assert.deepEqual(json.graph.edges.filter((e) => e.declared === 'auto').map((e) => `${e.from} → ${e.to}`).sort(), [
    'directory:/srv/www → file:/srv/www/index.html', 'package:nginx → service:nginx', 'user:www → file:/srv/www/index.html',
  ]);
});

test('auto: an implicit edge that would close a cycle is dropped, the run goes on, and show says so', async () => {
  // The folder waits (explicitly) for an exec that waits for the file in it: "file after folder" would be a cycle.
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - exec: mkdir -p ${R}/x && echo made > ${R}/x/f\n    id: prepare\n    creates: ${R}/x/f\n  - file: ${R}/x/f\n    content: "f\\n"\n    require: prepare\n` +
      `  - exec: touch ${R}/marker\n    id: mark\n    require: file:${R}/x/f\n  - directory: ${R}/x\n    require: mark\n`,
  });
  const r = await runCli(['show', '--site', s.site]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`file:${s.root}/x/f .*\\n\\s+after exec:mkdir[^\\n]*; not after directory:${s.root}/x \\(auto, dropped: it would make a cycle\\)\\n`));
  const applied = await converge(s, 'apply', [], 0);
  assert.deepEqual(applied.nodes.map((n) => `${n.status} ${n.ref.split(' ')[0]}`), [
    'changed exec:mkdir', `changed file:${s.root}/x/f`, 'changed exec:touch', `unchanged directory:${s.root}/x`,
  ]);
});

test('auto: every package follows every package_repository of its target, and an explicit before the other way wins', async () => {
  const site = makeSite({
    'cairn.yaml': 'targets:\n  web1:\n    executor: local\n    run: [s]\n',
    'keys/example.asc': '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n-----END PGP PUBLIC KEY BLOCK-----\n',
    'states/s.yaml': 's:\n  - package: example-tool\n  - package: gnupg\n    before: package_repository:example\n' +
      '  - package_repository: example\n    uri: https://deb.example.org/debian\n    suites: bookworm\n    key: keys/example.asc\n',
  });
  const text = await show(site);
  const run = text.slice(text.indexOf('run order'));
  assert.match(run, /\d\. package:example-tool .*\n\s+after package_repository:example \(auto\)\n/);
  const order = [...run.matchAll(/^\s+\d+\. (\S+)/gm)].map((m) => m[1]);
  assert.deepEqual(order, ['package:gnupg', 'package_repository:example', 'package:example-tool']);
});

test('auto: what a node names is removed after it: a folder being removed goes after the file in it, whatever the declaration order', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - directory: ${R}/gone\n    ensure: absent\n  - file: ${R}/gone/f\n    ensure: absent\n`,
  });
  const text = await show(s.site);
  assert.match(text.slice(text.indexOf('run order')), /\d\. directory:\S+\/gone .*\n\s+after file:\S+\/gone\/f \(auto\)\n/);
  const plan = await converge(s, 'plan', [], 0);
  assert.deepEqual(plan.nodes.map((n) => n.ref.split(' ')[0]), [`file:${s.root}/gone/f`, `directory:${s.root}/gone`]);
});
