/**
 * `cairn export` (DESIGN §11) end to end: the standard workload (../shared/bench, 742 resources)
 * exported and run with dash into a fresh root leaves the tree `cairn apply` leaves; re-runs;
 * one changed input; --check and --diff; cloud-init; parts with no shell trait refused (exit 2).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
// @ts-expect-error: a plain ES module of the benchmark, shared with bench/run.mjs, has no types
import { snapshot } from '../bench/snapshot.mjs';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';

const repo = resolve(import.meta.dirname, '..');
const tree = (root: string) => snapshot(root) as string;

/** bench/site, its state_dir moved into a temp folder (the benchmark's own is left alone). */
function benchSite(): string {
  const site = join(tempDir('cairn-export-bench-'), 'site');
  cpSync(join(repo, 'bench/site'), site, { recursive: true });
  const conf = join(site, 'cairn.yaml');
  writeFileSync(conf, readFileSync(conf, 'utf8').replace('/tmp/cmbench/cairn-state', join(tempDir('cairn-export-state-'), 'state')));
  return site;
}

async function exported(args: string[], file: string): Promise<string> {
  const r = await runCli(['export', ...args, '-o', file]);
  assert.equal(r.status, 0, r.stderr);
  return file;
}

function dash(file: string, ...flags: string[]) {
  const r = spawnSync('dash', [file, ...flags], { encoding: 'utf8', maxBuffer: 1 << 26 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const changedLines = (stdout: string) => stdout.split('\n').filter((l) => /^(changed|would change) /.test(l));

test('the standard workload: the exported script leaves the tree cairn apply leaves; a re-run changes nothing; one changed input changes that file and runs the handler', async () => {
  const site = benchSite();
  const work = tempDir('cairn-export-work-');
  const engineRoot = join(work, 'engine');
  const scriptRoot = join(work, 'script');
  const applied = await runCli(['apply', '--site', site, '--var', `root=${engineRoot}`]);
  assert.equal(applied.status, 0, applied.stderr);

  const script = await exported(['--site', site, '-t', 'local', '--var', `root=${scriptRoot}`], join(work, 'converge.sh'));
  assert.equal(statSync(script).mode & 0o777, 0o600);
  const first = dash(script);
  assert.equal(first.status, 0, first.stdout + first.stderr);
  assert.match(first.stdout, /^local: 743 changed, 0 unchanged, 0 failed, 0 skipped$/m);
  assert.equal(tree(scriptRoot), tree(engineRoot));
  assert.equal(readFileSync(join(scriptRoot, 'd50/app.reloads'), 'utf8'), 'reloaded\n', 'the handler ran once');

  const again = dash(script);
  assert.equal(again.status, 0);
  assert.match(again.stdout, /^local: 0 changed, 742 unchanged, 0 failed, 0 skipped$/m);
  assert.deepEqual(changedLines(again.stdout), []);
  assert.equal(tree(scriptRoot), tree(engineRoot));

  // --check on a converged root: nothing would change; on a changed input: that file and the handler.
  const v2 = await exported(['--site', site, '-t', 'local', '--var', `root=${scriptRoot}`, '--var', 'app_version=2'], join(work, 'v2.sh'));
  const before = tree(scriptRoot);
  const check = dash(v2, '--check', '--diff');
  assert.equal(check.status, 0);
  assert.deepEqual(changedLines(check.stdout), [
    `would change file:${scriptRoot}/d50/app.conf (update)`,
    `would change exec:echo reloaded >> ${scriptRoot}/d50/app.reloads (run) — notified by file:${scriptRoot}/d50/app.conf`,
  ]);
  assert.match(check.stdout, /^-version = 1\n\+version = 2$/m, 'the diff of the content');
  assert.match(check.stdout, /^local: 2 to change, 741 unchanged, 0 failed, 0 skipped$/m);
  assert.equal(tree(scriptRoot), before, '--check changed nothing');

  const changed = dash(v2);
  assert.equal(changed.status, 0);
  assert.deepEqual(changedLines(changed.stdout), [
    `changed      file:${scriptRoot}/d50/app.conf (update)`,
    `changed      exec:echo reloaded >> ${scriptRoot}/d50/app.reloads (run) — notified by file:${scriptRoot}/d50/app.conf`,
  ]);
  const diff = (a: string, b: string) => a.split('\n').filter((l) => !b.split('\n').includes(l));
  const after = tree(scriptRoot);
  assert.deepEqual(diff(after, before).map((l) => l.replace(/ [0-9a-f]{16}$/, '')), ['f 644 ./d50/app.conf', 'f 644 ./d50/app.reloads lines=2']);
  assert.equal(readFileSync(join(scriptRoot, 'd50/app.conf'), 'utf8'), 'version = 2\n');
  const engine2 = await runCli(['apply', '--site', site, '--var', `root=${engineRoot}`, '--var', 'app_version=2']);
  assert.equal(engine2.status, 0);
  assert.equal(after, tree(engineRoot));
});

test('a part whose type has no shell trait: the export fails (exit 2) listing every such part with its position, and writes nothing', async () => {
  const site = makeSite({
    'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    run: [s]\n',
    'states/s.yaml': 's:\n  - file: /tmp/cairn-export-never\n    content: x\n  - reboot: after-kernel\n  - mount: /mnt/data\n    device: /dev/vdb1\n    fstype: ext4\n',
  });
  const out = join(tempDir('cairn-export-bad-'), 'script.sh');
  const r = await runCli(['export', '--site', site, '-t', 't1', '-o', out]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /reboot:after-kernel: the reboot type's provider 'reconnect' has no shell trait[^\n]*\n +--> states\/s\.yaml:4:5\n/);
  assert.match(r.stderr, /mount:\/mnt\/data: the mount type's provider 'fstab' has no shell trait[^\n]*\n +--> states\/s\.yaml:5:5\n/);
  assert.doesNotMatch(r.stderr, /file:\/tmp\/cairn-export-never/);
  assert.ok(!existsSync(out));
});

test('--format cloud-init: #cloud-config writing the same script (0700) and running it', async () => {
  const site = makeSite({
    'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    run: [s]\n',
    'states/s.yaml': 's:\n  - file: /tmp/cairn-export-cloud-init/motd\n    content: "hello\\n"\n',
  });
  const sh = await runCli(['export', '--site', site, '-t', 't1']);
  const ci = await runCli(['export', '--site', site, '-t', 't1', '--format', 'cloud-init']);
  assert.equal(ci.status, 0, ci.stderr);
  assert.ok(ci.stdout.startsWith('#cloud-config\n'));
  const doc = parse(ci.stdout) as { write_files: { path: string; permissions: string; content: string }[]; runcmd: string[][] };
  assert.equal(doc.write_files[0]!.content, sh.stdout);
  assert.equal(doc.write_files[0]!.permissions, '0700');
  assert.deepEqual(doc.runcmd, [['sh', doc.write_files[0]!.path]]);
  const bad = await runCli(['export', '--site', site, '-t', 't1', '--format', 'zip']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--format zip: expected sh or cloud-init/);
});

test('export needs exactly one target (exit 2)', async () => {
  const site = makeSite({ 'cairn.yaml': 'targets:\n  a:\n    executor: local\n    run: []\n  b:\n    executor: local\n    run: []\n' });
  const r = await runCli(['export', '--site', site]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /one target's script/);
});

test('a run with a secret: the script holds it (and writes it), shows it nowhere, and export warns; -o is 0600', async () => {
  const keyFile = join(tempDir('cairn-key-'), 't1.key');
  const key = await runCli(['secret', 'keygen', '--out', keyFile]);
  assert.equal(key.status, 0, key.stderr);
  const recipient = /public key: (age1\S+)/.exec(key.stdout)![1]!;
  const root = tempDir('cairn-export-secret-root-');
  const site = makeSite({
    'cairn.yaml': `targets:\n  t1:\n    executor: local\n    run: [s]\nvars:\n  root: ${root}\n`,
    'states/s.yaml': 's:\n  - file: <%= it.vars.root %>/conf\n    content: "password=<%= it.vars.db_password %>\\n"\n',
    'secrets.yaml': `recipients:\n  t1: [${recipient}]\n`,
  });
  const plain = 'hunter2-export-secret';
  const enc = await runCli(['secret', 'encrypt', '--site', site, '--for', 't1', plain]);
  assert.equal(enc.status, 0, enc.stderr);
  mkdirSync(join(site, 'vars'));
  writeFileSync(join(site, 'vars/all.yaml'), `db_password: ${enc.stdout}`);
  const out = join(tempDir('cairn-export-secret-'), 'script.sh');
  const r = await runCli(['export', '--site', site, '-t', 't1', '-o', out], { env: { CAIRN_SECRET_KEY_FILE: keyFile } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /holds sensitive values \(secrets\) in the clear/);
  assert.equal(statSync(out).mode & 0o777, 0o600);
  const run = dash(out, '--diff');
  assert.equal(run.status, 0, run.stdout + run.stderr);
  assert.equal(readFileSync(join(root, 'conf'), 'utf8'), `password=${plain}\n`);
  assert.ok(!run.stdout.includes(plain) && !run.stderr.includes(plain), run.stdout);
  assert.match(run.stdout, /\(content hidden\)/);
});

test('a script fed on stdin (curl … | sh) runs to its end: no fragment reads the script as its input', async () => {
  const root = tempDir('cairn-export-stdin-');
  const site = makeSite({
    'cairn.yaml': `targets:\n  t1:\n    executor: local\n    run: [s]\nvars:\n  root: ${root}\n`,
    'states/s.yaml': 's:\n  - exec: cat > <%= it.vars.root %>/seen\n  - file: <%= it.vars.root %>/after\n    content: "still here\\n"\n',
  });
  const sh = await runCli(['export', '--site', site, '-t', 't1']);
  assert.equal(sh.status, 0, sh.stderr);
  const r = spawnSync('dash', ['-s'], { input: sh.stdout, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^t1: 2 changed, 0 unchanged, 0 failed, 0 skipped$/m);
  assert.equal(readFileSync(join(root, 'seen'), 'utf8'), '');
  assert.equal(readFileSync(join(root, 'after'), 'utf8'), 'still here\n');
});

test('a new folder tree whose one rename fails (mv refused by a wrapper on PATH): every part in it is reported failed with the error, nothing of it is left, exit 1', async () => {
  const root = tempDir('cairn-export-tree-');
  const site = makeSite({
    'cairn.yaml': `targets:\n  t1:\n    executor: local\n    run: [s]\nvars:\n  root: ${root}\n`,
    'states/s.yaml': ['s:', '  - directory: <%= it.vars.root %>/t', '  - directory: <%= it.vars.root %>/t/a', '    mode: "0750"',
      '  - file: <%= it.vars.root %>/t/a/one', '    content: "1\\n"', '  - symlink: <%= it.vars.root %>/t/a/link', '    target: <%= it.vars.root %>/t/a/one',
      '  - directory: <%= it.vars.root %>/t/a/empty', '  - file: <%= it.vars.root %>/elsewhere', '    content: "e\\n"', ''].join('\n'),
  });
  const file = await exported(['--site', site, '-t', 't1'], join(tempDir('cairn-export-tree-sh-'), 's.sh'));
  // Fault injection, not a stand-in: the real mv does the work, except the tree's one rename.
  const bin = tempDir('cairn-export-tree-bin-');
  writeFileSync(join(bin, 'mv'), `#!/bin/sh\nfor a in "$@"; do case $a in */.cairn-stage.*/t) echo "mv: refused: $a" >&2; exit 1 ;; esac; done\nexec ${spawnSync('sh', ['-c', 'command -v mv'], { encoding: 'utf8' }).stdout.trim()} "$@"\n`, { mode: 0o755 });
  const r = spawnSync('dash', [file], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  const failed = r.stdout.split('\n').filter((l) => l.startsWith('FAILED'));
  assert.deepEqual(failed.map((l) => l.replace(/\s+\(create\)$/, '').replace(/^FAILED\s+/, '').replace(root, 'ROOT')),
    ['directory:ROOT/t', 'directory:ROOT/t/a', 'file:ROOT/t/a/one', 'symlink:ROOT/t/a/link', 'directory:ROOT/t/a/empty']);
  assert.equal((r.stdout.match(/^ +mv: refused: .*\/\.cairn-stage\.\d+\/t$/gm) ?? []).length, 5, r.stdout);
  assert.match(r.stdout, /^changed +file:.*\/elsewhere \(create\)$/m);
  assert.match(r.stdout, /^t1: 1 changed, 0 unchanged, 5 failed, 0 skipped$/m);
  assert.deepEqual(readdirSync(root).sort(), ['elsewhere']);
  // The next run, with the real mv, makes the whole tree.
  const again = dash(file);
  assert.equal(again.status, 0, again.stdout + again.stderr);
  assert.equal(readFileSync(join(root, 't/a/link'), 'utf8'), '1\n');
  assert.equal(statSync(join(root, 't/a')).mode & 0o777, 0o750);
  assert.ok(statSync(join(root, 't/a/empty')).isDirectory());
  assert.deepEqual(readdirSync(root).sort(), ['elsewhere', 't']);
});
