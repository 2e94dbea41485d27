/**
 * `directory` with `source` (DESIGN §6) through the CLI, on real files in temp folders, reached
 * through whichever executor the importing file chose (helpers/converge.ts): a site folder copied
 * recursively, each file a change of its own in the report, `.eta` files rendered with
 * `template: true`, `purge`, modes and owner, and a second run that changes nothing.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { converge, executorUnderTest, lines, scratchSite, type Scratch } from './helpers/converge.ts';

const R = '<%= it.vars.root %>';
const via = executorUnderTest();

/** A site copying its folder `www` into ROOT/www with `attributes` (YAML lines under the part). */
const site = (attributes: string, files: Record<string, string> = {}) => scratchSite('s', {
  'states/s.yaml': `s:\n  - directory: ${R}/www\n    source: www\n${attributes}`,
  'vars/all.yaml': 'greeting: hello\n',
  'www/index.html': '<h1>home</h1>\n',
  'www/css/app.css': 'body { margin: 0 }\n',
  'www/css/print/print.css': '@media print {}\n',
  'www/conf/app.conf.eta': 'greeting = <%= it.vars.greeting %>\nhost = <%= it.target.name %>\n',
  ...files,
});

const applyOk = (s: Scratch) => converge(s, 'apply', [], 0);
const stamp = (path: string) => {
  const st = statSync(path);
  return `${st.ino}/${st.mtimeMs}`;
};

test(`directory source (${via}): the first run copies the folder, each file reported; the second changes nothing`, async () => {
  const s = site('    template: true\n    mode: "0750"\n    file_mode: "0640"\n    owner: root\n    group: root\n');
  const www = join(s.root, 'www');
  const first = await applyOk(s);
  assert.deepEqual(lines(first.nodes), [`changed directory:${www}`]);
  assert.equal(first.nodes[0]!.action, 'create');
  assert.deepEqual(first.nodes[0]!.items, [
    `created ${www}/conf/`, `created ${www}/conf/app.conf`, `created ${www}/css/`, `created ${www}/css/app.css`,
    `created ${www}/css/print/`, `created ${www}/css/print/print.css`, `created ${www}/index.html`,
  ]);
  assert.equal(readFileSync(join(www, 'index.html'), 'utf8'), '<h1>home</h1>\n');
  assert.equal(readFileSync(join(www, 'css/print/print.css'), 'utf8'), '@media print {}\n');
  // Rendered with the same `it` as state files, and written without .eta.
  assert.equal(readFileSync(join(www, 'conf/app.conf'), 'utf8'), 'greeting = hello\nhost = t1\n');
  assert.ok(!existsSync(join(www, 'conf/app.conf.eta')));
  for (const dir of ['', 'conf', 'css', 'css/print']) assert.equal(statSync(join(www, dir)).mode & 0o7777, 0o750, dir);
  for (const file of ['index.html', 'conf/app.conf', 'css/app.css']) {
    const st = statSync(join(www, file));
    assert.equal(st.mode & 0o7777, 0o640, file);
    assert.deepEqual([st.uid, st.gid], [0, 0], file);
  }
  const second = await applyOk(s);
  assert.deepEqual(second.target.counts, { changed: 0, unchanged: 1, failed: 0, skipped: 0 });
  assert.equal(second.nodes[0]!.items, undefined);
});

test(`directory source (${via}): one file changed in the site → exactly that file reported and written`, async () => {
  const s = site('');
  const www = join(s.root, 'www');
  await applyOk(s);
  const before = { index: stamp(join(www, 'index.html')), print: stamp(join(www, 'css/print/print.css')), conf: stamp(join(www, 'conf/app.conf.eta')) };
  writeFileSync(join(s.site, 'www/css/app.css'), 'body { margin: 1em }\n');

  const plan = await converge(s, 'plan', [], 0);
  assert.deepEqual(plan.nodes.map((n) => [n.status, n.action, n.changes, n.items]), [['would-change', 'update', ['tree'], [`changed ${www}/css/app.css (content)`]]]);
  assert.equal(readFileSync(join(www, 'css/app.css'), 'utf8'), 'body { margin: 0 }\n');

  const r = await applyOk(s);
  assert.deepEqual(r.nodes.map((n) => [n.status, n.items]), [['changed', [`changed ${www}/css/app.css (content)`]]]);
  assert.equal(readFileSync(join(www, 'css/app.css'), 'utf8'), 'body { margin: 1em }\n');
  // Without template: true an .eta file is copied as it is; the files in sync were not rewritten.
  assert.deepEqual({ index: stamp(join(www, 'index.html')), print: stamp(join(www, 'css/print/print.css')), conf: stamp(join(www, 'conf/app.conf.eta')) }, before);
  assert.deepEqual((await applyOk(s)).target.counts, { changed: 0, unchanged: 1, failed: 0, skipped: 0 });
});

test(`directory source (${via}): a mode changed by hand, a file removed by hand, a folder in the way of a file: each reported and put back`, async () => {
  const s = site('    file_mode: "0644"\n');
  const www = join(s.root, 'www');
  await applyOk(s);
  chmodSync(join(www, 'index.html'), 0o600);
  rmSync(join(www, 'css/app.css'));
  rmSync(join(www, 'css/print/print.css'));
  mkdirSync(join(www, 'css/print/print.css'));
  writeFileSync(join(www, 'css/print/print.css/inside'), 'x');
  const r = await applyOk(s);
  assert.deepEqual(r.nodes[0]!.items, [
    `created ${www}/css/app.css`, `changed ${www}/css/print/print.css (a folder was in the way)`, `changed ${www}/index.html (mode)`,
  ]);
  assert.equal(statSync(join(www, 'index.html')).mode & 0o7777, 0o644);
  assert.equal(readFileSync(join(www, 'css/print/print.css'), 'utf8'), '@media print {}\n');
  assert.deepEqual((await applyOk(s)).target.counts, { changed: 0, unchanged: 1, failed: 0, skipped: 0 });
});

test(`directory source (${via}): purge removes what the source lacks, only inside the directory; without purge it stays`, async () => {
  const keep = site('');
  const www = join(keep.root, 'www');
  await applyOk(keep);
  writeFileSync(join(www, 'old.html'), 'old\n');
  assert.deepEqual((await applyOk(keep)).target.counts, { changed: 0, unchanged: 1, failed: 0, skipped: 0 });
  assert.ok(existsSync(join(www, 'old.html')));

  const s = site('    purge: true\n');
  const target = join(s.root, 'www');
  await applyOk(s);
  writeFileSync(join(target, 'old.html'), 'old\n');
  mkdirSync(join(target, 'css/legacy/deep'), { recursive: true });
  writeFileSync(join(target, 'css/legacy/deep/a.css'), 'a\n');
  // Beside the directory, with a name it prefixes: not the directory's to purge.
  mkdirSync(join(s.root, 'www-old'));
  writeFileSync(join(s.root, 'www-old/keep.html'), 'keep\n');
  writeFileSync(join(s.root, 'www.bak'), 'keep\n');

  const plan = await converge(s, 'plan', [], 0);
  assert.deepEqual(plan.nodes[0]!.items, [`removed ${target}/css/legacy`, `removed ${target}/old.html`]);
  assert.ok(existsSync(join(target, 'old.html')));
  const r = await applyOk(s);
  assert.deepEqual(r.nodes.map((n) => [n.status, n.items]), [['changed', [`removed ${target}/css/legacy`, `removed ${target}/old.html`]]]);
  assert.deepEqual(readdirSync(target).sort(), ['conf', 'css', 'index.html']);
  assert.deepEqual(readdirSync(join(target, 'css')).sort(), ['app.css', 'print']);
  assert.equal(readFileSync(join(s.root, 'www-old/keep.html'), 'utf8'), 'keep\n');
  assert.equal(readFileSync(join(s.root, 'www.bak'), 'utf8'), 'keep\n');
  assert.deepEqual((await applyOk(s)).target.counts, { changed: 0, unchanged: 1, failed: 0, skipped: 0 });
});

test(`directory source (${via}): the human report lists each file under the node`, async () => {
  const s = site('    template: true\n');
  const www = join(s.root, 'www');
  await applyOk(s);
  writeFileSync(join(s.site, 'www/index.html'), '<h1>new home</h1>\n');
  const { runCli } = await import('./helpers/cli.ts');
  const r = await runCli(['apply', '--site', s.site]);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdout.includes(`changed      directory:${www} (update: tree)\n             changed ${www}/index.html (content)\n`), r.stdout);
});
