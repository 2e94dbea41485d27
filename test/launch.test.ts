/**
 * The `cairn` command's launcher (src/cli/launch.ts → dist/cairn.cjs): it runs the bundle from
 * V8's code cache, makes the cache on a command's first run, survives a damaged or foreign cache,
 * and runs where it cannot write one; import() of packages and of TypeScript state files works
 * from the cached script. Most tests run the CLI in-process (helpers/cli.ts, runCli); the plan and
 * apply here are the built command's, end to end.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { cairnBin, tempDir } from './helpers/cli.ts';
import { sshUnavailable, startSshd } from './helpers/sshd.ts';

const DIST = resolve(import.meta.dirname, '../dist');

/** A copy of the built command in a folder of its own, so its cache files are this test's. */
function installCopy(): string {
  const dir = tempDir('cairn-launch-');
  for (const f of readdirSync(DIST).filter((name) => name.endsWith('.cjs'))) copyFileSync(join(DIST, f), join(dir, f));
  return dir;
}

function run(dir: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [join(dir, 'cairn.cjs'), ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('the first run of a command makes its code cache; later runs use it; a damaged cache is replaced', () => {
  const dir = installCopy();
  // `schema` loads the compiler's libraries (zod): its cache is a compile's (see the last test).
  const cache = join(dir, '.cairn-main.schema.compile.v8-cache');
  const first = run(dir, ['schema']);
  assert.equal(first.status, 0, first.stderr);
  assert.ok(existsSync(cache), 'made on the first run');
  const made = statSync(cache);
  assert.ok(made.size > 1000);

  const second = run(dir, ['schema']);
  assert.equal(second.stdout, first.stdout);
  assert.equal(statSync(cache).mtimeMs, made.mtimeMs, 'an accepted cache is not written again');

  writeFileSync(cache, 'not a code cache');
  const third = run(dir, ['schema']);
  assert.equal(third.status, 0, third.stderr);
  assert.equal(third.stdout, first.stdout, 'a rejected cache changes nothing but speed');
  assert.notEqual(readFileSync(cache, 'utf8'), 'not a code cache', 'and is made again');
  assert.ok(!existsSync(join(dir, '.cairn-main.apply.v8-cache')), 'each command has its own');
});

test("a bug in the bundle is exit 70 with a stack whose lines are the bundle file's, from the code cache too", () => {
  const dir = installCopy();
  // The built files are the launcher's function, wrapper included (scripts/build.mjs): a frame's
  // line must still be the line of the file that holds the statement.
  const bundle = join(dir, 'cairn-main.cjs');
  const lines = readFileSync(bundle, 'latin1').split('\n');
  // cli/converge.ts's converge(), which every apply runs.
  const at = lines.findIndex((l) => /^async function converge\d*\(mode, sessions,/.test(l));
  assert.ok(at > 0, 'the bundle has the CLI\'s converge()');
  lines.splice(at + 1, 0, '  null.cairnTestBug();');
  writeFileSync(bundle, lines.join('\n'), 'latin1');
  const site = tempDir('cairn-launch-site-');
  writeFileSync(join(site, 'cairn.yaml'), `targets:\n  t:\n    executor: local\n    state_dir: ${join(site, 'state')}\n    run: [s]\n`);
  mkdirSync(join(site, 'states'));
  writeFileSync(join(site, 'states/s.yaml'), `s:\n  - file: ${join(site, 'out')}\n    content: "x\\n"\n`);
  for (const pass of ['without a cache', 'from the cache']) {
    const r = run(dir, ['apply', '--site', site]);
    assert.equal(r.status, 70, `${pass}: ${r.stderr}`);
    assert.match(r.stderr, /^cairn: internal error: TypeError: Cannot read properties of null \(reading 'cairnTestBug'\)\n\s+at /, pass);
    const frame = new RegExp(`at converge\\d* \\(${bundle.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:(\\d+):\\d+\\)`).exec(r.stderr);
    assert.ok(frame, `${pass}: a frame in the bundle: ${r.stderr}`);
    assert.equal(lines[Number(frame[1]) - 1], '  null.cairnTestBug();', pass);
    // The first run compiled the site: the second runs from the cache it made.
    if (pass === 'without a cache') assert.ok(existsSync(join(dir, '.cairn-main.apply.compile.v8-cache')));
  }
});

test('the command runs where no cache can be written, and leaves no temp file', () => {
  const dir = installCopy();
  // A folder in the cache's place: the write fails as it would on a read-only installation
  // (this suite runs as root, which permissions would not stop).
  const cache = join(dir, '.cairn-main.other.v8-cache');
  mkdirSync(cache);
  const r = run(dir, ['--version']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^\d+\.\d+\.\d+/);
  assert.ok(statSync(cache).isDirectory());
  assert.deepEqual(readdirSync(dir).filter((f) => /\.\d+$/.test(f)), [], 'no temp file left');
});

test('the compiler\'s libraries are a file of their own, cached like the bundle, and a compile-cached run never reads it', () => {
  const dir = installCopy();
  const site = tempDir('cairn-launch-site-');
  // The target's files and state lie outside the site: files in the site are part of the compile cache's key.
  const root = tempDir('cairn-launch-root-');
  writeFileSync(join(site, 'cairn.yaml'), `targets:\n  t:\n    executor: local\n    state_dir: ${join(root, 'state')}\n    run: [s]\n`);
  mkdirSync(join(site, 'states'));
  writeFileSync(join(site, 'states/s.yaml'), `s:\n  - file: ${join(root, 'motd')}\n    content: "hi\\n"\n`);
  const first = run(dir, ['apply', '--site', site]);
  assert.equal(first.status, 0, first.stderr);
  assert.equal(readFileSync(join(root, 'motd'), 'utf8'), 'hi\n');
  assert.ok(existsSync(join(dir, '.cairn-vendor.apply.v8-cache')), 'the compile loaded it, from a cache made at exit');
  rmSync(join(dir, 'cairn-vendor.cjs'));
  const again = run(dir, ['apply', '--site', site]);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /0 changed, 1 unchanged/);
});

test('the SSH client is a file of its own, cached like the bundle: the built command converges a target over a real sshd, and a local run never reads it', { skip: sshUnavailable() }, async () => {
  const dir = installCopy();
  const sshd = await startSshd({ port: 22451 });
  try {
    const site = tempDir('cairn-launch-site-');
    const root = tempDir('cairn-launch-root-');
    writeFileSync(join(site, 'cairn.yaml'), [
      'targets:',
      '  far:',
      `    host: ${sshd.host}`, `    port: ${sshd.port}`, '    user: root',
      `    identity_file: ${sshd.identityFile}`, `    known_hosts: ${sshd.knownHosts}`,
      `    state_dir: ${join(root, 'far-state')}`, '    run: [s]',
      '  near:',
      '    executor: local', `    state_dir: ${join(root, 'near-state')}`, '    run: [s]',
      '',
    ].join('\n'));
    mkdirSync(join(site, 'states'));
    writeFileSync(join(site, 'states/s.yaml'), `s:\n  - file: ${root}/<%= it.target.name %>.txt\n    content: "hi\\n"\n`);
    const far = run(dir, ['apply', '--site', site, '-t', 'far']);
    assert.equal(far.status, 0, far.stderr);
    assert.equal(readFileSync(join(root, 'far.txt'), 'utf8'), 'hi\n');
    assert.ok(existsSync(join(dir, '.cairn-vendor-ssh.apply.v8-cache')), 'the SSH run loaded it, from a cache made at exit');
    const again = run(dir, ['apply', '--site', site, '-t', 'far']);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /0 changed, 1 unchanged/);
    rmSync(join(dir, 'cairn-vendor-ssh.cjs'));
    const near = run(dir, ['apply', '--site', site, '-t', 'near']);
    assert.equal(near.status, 0, near.stderr);
    assert.equal(readFileSync(join(root, 'near.txt'), 'utf8'), 'hi\n');
  } finally {
    sshd.stop();
  }
});

test('libuv\'s pool size is not passed on to the commands a run starts', () => {
  const dir = installCopy();
  const site = tempDir('cairn-launch-site-');
  const out = join(site, 'env.txt');
  writeFileSync(join(site, 'cairn.yaml'), `targets:\n  t:\n    executor: local\n    state_dir: ${join(site, 'state')}\n    run: [s]\n`);
  mkdirSync(join(site, 'states'));
  writeFileSync(join(site, 'states/s.yaml'), `s:\n  - exec: sh -c 'env > ${out}'\n`);
  const r = run(dir, ['apply', '--site', site]);
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(readFileSync(out, 'utf8'), /UV_THREADPOOL_SIZE/);
  // One the user sets is the user's: left as it is.
  run(dir, ['apply', '--site', site], { UV_THREADPOOL_SIZE: '3' });
  assert.match(readFileSync(out, 'utf8'), /UV_THREADPOOL_SIZE=3/);
});

test('the built command plans and applies the bundled example; a second apply changes nothing', () => {
  const root = join(tempDir('cairn-launch-example-'), 'root');
  const args = ['--site', resolve(import.meta.dirname, '../examples/site'), '-t', 'web1', '--var', `root=${root}`, '--json'];
  const counts = (r: { stdout: string }) => (JSON.parse(r.stdout) as { targets: { counts: Record<string, number> }[] }).targets[0]!.counts;
  const plan = cairnBin(['plan', ...args]);
  assert.equal(plan.status, 0, plan.stderr);
  assert.equal(counts(plan).changed, 20);
  assert.ok(!existsSync(root));
  const first = cairnBin(['apply', ...args]);
  assert.equal(first.status, 0, first.stderr);
  assert.match(readFileSync(join(root, 'etc/webserver/sites/c.example.conf'), 'utf8'), /tls on;/);
  assert.deepEqual(counts(cairnBin(['apply', ...args])), { changed: 0, unchanged: 16, failed: 0, skipped: 0 });
});

test('code caches made by runs that change V8\'s flags (lib/tiering.ts) are accepted by the runs after them', () => {
  const dir = installCopy();
  const site = tempDir('cairn-launch-site-');
  const root = tempDir('cairn-launch-root-');
  writeFileSync(join(site, 'cairn.yaml'), `targets:\n  t:\n    executor: local\n    state_dir: ${join(root, 'state')}\n    run: [s]\nvars:\n  v: 1\n`);
  mkdirSync(join(site, 'states'));
  // 300 files: a compiled run of more than 64 KiB, so a converged run turns to the short-run flags too.
  writeFileSync(join(site, 'states/s.yaml'), `s:\n<% for (let i = 0; i < 300; i++) { %>\n  - file: ${root}/f<%= i %>\n    content: "<%= it.vars.v %> <%= i %>\\n"\n<% } %>\n`);
  const caches = ['.cairn-main.apply.v8-cache', '.cairn-vendor.apply.v8-cache'].map((f) => join(dir, f));
  const stamps = () => caches.map((c) => statSync(c).mtimeMs);
  const first = run(dir, ['apply', '--site', site]);
  assert.equal(first.status, 0, first.stderr);
  // The bundle's cache of a converged run is made by the second converged run (see the test below).
  for (let i = 0; i < 2; i++) assert.match(run(dir, ['apply', '--site', site]).stdout, /0 changed, 300 unchanged/);
  const made = stamps();
  const converged = run(dir, ['apply', '--site', site]);
  assert.match(converged.stdout, /0 changed, 300 unchanged/);
  const recompiled = run(dir, ['apply', '--site', site, '--var', 'v=2']);
  assert.match(recompiled.stdout, /300 changed, 0 unchanged/);
  assert.deepEqual(stamps(), made, 'neither run rejected a cache and wrote it again');
});

test("a compile's cache of the bundle serves until a converged run; the next makes one without the compiler's functions, kept from then on", () => {
  const dir = installCopy();
  const site = tempDir('cairn-launch-site-');
  const root = tempDir('cairn-launch-root-');
  writeFileSync(join(site, 'cairn.yaml'), `targets:\n  t:\n    executor: local\n    state_dir: ${join(root, 'state')}\n    run: [s]\nvars:\n  v: 1\n`);
  mkdirSync(join(site, 'states'));
  writeFileSync(join(site, 'states/s.yaml'), `s:\n  - file: ${join(root, 'f')}\n    content: "<%= it.vars.v %>\\n"\n`);
  const plain = join(dir, '.cairn-main.apply.v8-cache');
  const compiled = join(dir, '.cairn-main.apply.compile.v8-cache');
  const apply = (...args: string[]) => {
    const r = run(dir, ['apply', '--site', site, ...args]);
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };
  assert.match(apply(), /1 changed/);
  assert.ok(existsSync(compiled) && !existsSync(plain), 'the compile made the compile\'s cache');
  const compiledSize = statSync(compiled).size;
  assert.match(apply(), /0 changed, 1 unchanged/);
  assert.ok(!existsSync(compiled) && !existsSync(plain), 'the converged run used it, then removed it');
  assert.match(apply(), /0 changed, 1 unchanged/);
  assert.ok(existsSync(plain) && !existsSync(compiled), 'the next converged run made its own');
  assert.ok(statSync(plain).size < compiledSize, 'without the compiler\'s functions');
  const made = statSync(plain).mtimeMs;
  assert.match(apply('--var', 'v=2'), /1 changed/);
  assert.match(apply('--var', 'v=2'), /0 changed, 1 unchanged/);
  assert.equal(statSync(plain).mtimeMs, made, 'a compile and a converged run both used it as it is');
  assert.ok(!existsSync(compiled));
  assert.deepEqual(readdirSync(dir).filter((f) => /\.\d+$/.test(f)), [], 'no temp file left');

  // A rejected cache (another Node's, say) is replaced, whichever run finds it.
  writeFileSync(plain, 'not a code cache');
  assert.match(apply('--var', 'v=3'), /1 changed/);
  assert.ok(!existsSync(plain) && existsSync(compiled), 'a compile replaced it with its own');
});
