/**
 * Site files that are not plain files of the site (folders, FIFOs, symbolic links, oversized
 * files) are refused with an exit-2 error that names them, or, for a link to another file of the
 * site, followed; and sites at a scale that used to take minutes compile to the right result
 * (times are the benchmark's business: `npm run bench` prints them). FIFO cases run the built
 * command in a process of its own under a hang guard, since a read blocked on a FIFO would
 * block the test process itself.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CAIRN, makeSite, runCli, tempDir } from './helpers/cli.ts';

/** Kills a command that has not finished by then: a hang guard, not a time limit on the work. */
const HANG_GUARD_MS = 60_000;

/** A site with one local target `t1` running state `s`, which writes `<root>/out` from `it.vars.motd`. */
function motdSite(extra: Record<string, string> = {}): { site: string; root: string } {
  const root = tempDir('cairn-bounded-root-');
  const site = makeSite({
    'cairn.yaml': `targets:\n  t1:\n    executor: local\n    state_dir: ${join(root, '.state')}\n    run: [s]\n`,
    'states/s.yaml': `s:\n  - file: ${join(root, 'out')}\n    content: "<%= it.vars.motd %>\\n"\n`,
    'vars/all.yaml': 'motd: from all\n',
    ...extra,
  });
  return { site, root };
}

/** The built command, killed after HANG_GUARD_MS; `timedOut` says whether it had to be. */
function cairnGuarded(args: string[]): { status: number | null; stderr: string; timedOut: boolean } {
  assert.ok(existsSync(CAIRN), `${CAIRN} is missing: run \`npm run build\` first`);
  const r = spawnSync(process.execPath, [CAIRN, ...args], { encoding: 'utf8', timeout: HANG_GUARD_MS, killSignal: 'SIGKILL', env: { ...process.env, NO_COLOR: '1' } });
  return { status: r.status, stderr: r.stderr, timedOut: r.error !== undefined || r.signal === 'SIGKILL' };
}

/** Asserts an apply exited 2 naming `at` and matching `message`, with nothing written under `root`. */
function assertRefused(r: { status: number | null; stderr: string }, root: string, at: string, message: RegExp): void {
  assert.equal(r.status, 2, `exit code; stderr:\n${r.stderr}`);
  assert.ok(r.stderr.includes(`  --> ${at}`), `expected position ${at} in:\n${r.stderr}`);
  assert.match(r.stderr, message);
  assert.match(r.stderr, /nothing was run/);
  assert.deepEqual(readdirSync(root), [], 'the target folder is unchanged');
}

function mkfifo(path: string): void {
  const r = spawnSync('mkfifo', [path]);
  assert.equal(r.status, 0, `mkfifo ${path}: ${r.stderr}`);
}

test('a FIFO as vars/all.yaml is refused, not read (reading it blocked forever)', () => {
  const { site, root } = motdSite();
  const path = join(site, 'vars/all.yaml');
  spawnSync('rm', [path]);
  mkfifo(path);
  const r = cairnGuarded(['apply', '--site', site]);
  assert.equal(r.timedOut, false, 'cairn apply hung on the FIFO');
  assertRefused(r, root, 'vars/all.yaml:1:1', /vars\/all\.yaml is a FIFO \(named pipe\), not a file/);
});

test('a FIFO named like a state file in states/ is refused', () => {
  const { site, root } = motdSite();
  mkfifo(join(site, 'states/other.yaml'));
  const r = cairnGuarded(['apply', '--site', site]);
  assert.equal(r.timedOut, false, 'cairn apply hung on the FIFO');
  assertRefused(r, root, 'states/other.yaml:1:1', /states\/other\.yaml is a FIFO/);
});

test('a FIFO as a template is refused at the template: attribute', () => {
  const { site, root } = motdSite({ 'states/s.yaml': 's:\n  - file: /tmp/never\n    template: templates/t.eta\n' });
  mkdirSync(join(site, 'templates'));
  mkfifo(join(site, 'templates/t.eta'));
  const r = cairnGuarded(['apply', '--site', site]);
  assert.equal(r.timedOut, false, 'cairn apply hung on the FIFO');
  assertRefused(r, root, 'states/s.yaml:3:15', /site file 'templates\/t\.eta' is a FIFO/);
});

test('a folder named like a state file is refused, not skipped', async () => {
  const { site, root } = motdSite();
  mkdirSync(join(site, 'states/more.yaml'));
  assertRefused(await runCli(['apply', '--site', site]), root, 'states/more.yaml:1:1', /states\/more\.yaml is a folder, not a file/);
});

test('a folder as vars/all.yaml is refused', async () => {
  const { site, root } = motdSite();
  spawnSync('rm', [join(site, 'vars/all.yaml')]);
  mkdirSync(join(site, 'vars/all.yaml'));
  assertRefused(await runCli(['apply', '--site', site]), root, 'vars/all.yaml:1:1', /vars\/all\.yaml is a folder/);
});

test('a vars file linked from outside the site is refused (it used to be skipped silently)', async () => {
  const { site, root } = motdSite();
  const outside = join(tempDir('cairn-outside-'), 't1.yaml');
  writeFileSync(outside, 'motd: from outside\n');
  mkdirSync(join(site, 'vars/targets'));
  symlinkSync(outside, join(site, 'vars/targets/t1.yaml'));
  assertRefused(await runCli(['apply', '--site', site]), root, 'vars/targets/t1.yaml:1:1',
    /vars\/targets\/t1\.yaml is a symbolic link to .*t1\.yaml, outside the site folder/);
});

test('a link to another file of the site is followed: the linked vars apply', async () => {
  const { site, root } = motdSite({ 'shared/t1-vars.yaml': 'motd: from the linked file\n' });
  mkdirSync(join(site, 'vars/targets'));
  symlinkSync('../../shared/t1-vars.yaml', join(site, 'vars/targets/t1.yaml'));
  const r = await runCli(['apply', '--site', site]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(join(root, 'out'), 'utf8'), 'from the linked file\n');
});

test('a dangling link in states/ is refused', async () => {
  const { site, root } = motdSite();
  symlinkSync('nowhere.yaml', join(site, 'states/gone.yaml'));
  assertRefused(await runCli(['apply', '--site', site]), root, 'states/gone.yaml:1:1', /states\/gone\.yaml is a symbolic link to nothing/);
});

test('a template linked from outside the site is refused at the template: attribute', async () => {
  const { site, root } = motdSite({ 'states/s.yaml': 's:\n  - file: /tmp/never\n    template: templates/t.eta\n' });
  const outside = join(tempDir('cairn-outside-'), 't.eta');
  writeFileSync(outside, 'secret stuff\n');
  mkdirSync(join(site, 'templates'));
  symlinkSync(outside, join(site, 'templates/t.eta'));
  assertRefused(await runCli(['apply', '--site', site]), root, 'states/s.yaml:3:15', /templates\/t\.eta is a symbolic link to .*, outside the site folder/);
});

test('a site file over 16 MiB is refused before it is read', async () => {
  const { site, root } = motdSite();
  writeFileSync(join(site, 'vars/all.yaml'), `motd: "${'x'.repeat(17 * 1024 * 1024)}"\n`);
  assertRefused(await runCli(['apply', '--site', site]), root, 'vars/all.yaml:1:1', /vars\/all\.yaml is 17 MiB, over the 16 MiB limit for a site file/);
});

test('scale: 20,000 variables compile, the last one visible to a template', async () => {
  const vars = Array.from({ length: 20_000 }, (_, i) => `v${i}: value ${i}\n`).join('');
  const site = makeSite({
    'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    run: [s]\n',
    'vars/all.yaml': vars,
    'states/s.yaml': 's:\n  - file: /tmp/x\n    content: "<%= it.vars.v19999 %>"\n',
  });
  const r = await runCli(['show', '--site', site, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const shown = JSON.parse(r.stdout) as { run: { vars: Record<string, unknown> }; graph: { nodes: { attributes: { content: string } }[] } };
  assert.equal(Object.keys(shown.run.vars).length, 20_000);
  assert.equal(shown.graph.nodes[0]!.attributes.content, 'value 19999');
});

test('scale: 2,000 invocations of one state (each required by the next) compile to 2,000 ordered nodes', async () => {
  const run = Array.from({ length: 2000 }, (_, i) => `      - one: { i: ${i} }\n`).join('');
  const site = makeSite({
    'cairn.yaml': `targets:\n  t1:\n    executor: local\n    run:\n${run}`,
    'states/one.yaml': 'one:\n  params: { i: ~ }\n  parts:\n    - file: /tmp/f<%= it.params.i %>\n      content: "<%= it.params.i %>"\n' +
      '<% if (it.params.i > 0) { %>\n      require: file:/tmp/f<%= it.params.i - 1 %>\n<% } %>\n',
  });
  const r = await runCli(['show', '--site', site, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const shown = JSON.parse(r.stdout) as { graph: { nodes: { id: string }[]; edges: unknown[]; order: string[] } };
  assert.equal(shown.graph.nodes.length, 2000);
  assert.equal(shown.graph.edges.length, 1999);
  assert.deepEqual(shown.graph.order, Array.from({ length: 2000 }, (_, i) => `file:/tmp/f${i}`));
});

test('push uploads a link inside the site under the link\'s name, as the loader reads it, and leaves a link out of the site out', async () => {
  const { site } = motdSite({ 'shared/t1-vars.yaml': 'motd: from the linked file\n' });
  mkdirSync(join(site, 'vars/targets'));
  symlinkSync('../../shared/t1-vars.yaml', join(site, 'vars/targets/t1.yaml'));
  const outside = join(tempDir('cairn-outside-'), 'notes.txt');
  writeFileSync(outside, 'not the site\n');
  symlinkSync(outside, join(site, 'notes.txt'));
  const url = `sqlite:${join(tempDir('cairn-bounded-store-'), 'store.db')}`;
  const r = await runCli(['push', '--site', site, '--store', url, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const pushed = JSON.parse(r.stdout) as { added: string[] };
  assert.ok(pushed.added.includes('vars/targets/t1.yaml'), `pushed: ${pushed.added.join(', ')}`);
  assert.ok(!pushed.added.includes('notes.txt'), `pushed: ${pushed.added.join(', ')}`);
});

test('an editor lock (.#name, a dangling link Emacs leaves while editing) in states/ is not a site file', async () => {
  const { site, root } = motdSite();
  symlinkSync('user@host.1234:1700000000', join(site, 'states/.#s.yaml'));
  const r = await runCli(['apply', '--site', site]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(join(root, 'out'), 'utf8'), 'from all\n');
});
