/**
 * Crash safety (DESIGN §5.3, "notifications are never lost"): `cairn apply` killed with SIGKILL,
 * its whole process group with it, like a machine that loses power.
 *
 * The kill points are events, not times. A run is held at a fifo the test controls (an exec that
 * reads from it while it exists): opening the fifo for writing returns once the run is blocked
 * there, and the run is killed then. Held between a notifier's change and its handler, or inside
 * the handler, the run has persisted the notification and not yet delivered it. The random kill
 * points (seeded, so a failure repeats) are the moment a chosen file of a 500-file run is renamed
 * into place, seen through inotify.
 *
 * After each kill: pending.json in the target's state dir holds the notification; the next run
 * runs the handler exactly once (its effect is counted in a file) and the run after it not again;
 * managed files are whole (old or new content). A kill mid-write leaves the temp files of the
 * writes in flight (`.<name>.cairn-tmp.<tag>.…`, src/executors/temp-names.ts), all carrying the
 * tag the killed run recorded in its lock; the next run takes that lock over and removes them:
 * after it, no temp file is left anywhere.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { constants, existsSync, readdirSync, readFileSync, rmSync, watch, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CAIRN, runCli } from './helpers/cli.ts';
import { scratchSite, type Scratch } from './helpers/converge.ts';
import { mulberry32 } from './helpers/random.ts';

/** `cairn apply` in its own process group (so a kill takes the command shell and execs with it). */
function startApply(site: string, version: number, ...args: string[]): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CAIRN, 'apply', '--site', site, '--var', `version=${version}`, ...args], { stdio: 'ignore', detached: true });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ? null : code)));
  return { child, exited };
}

async function killGroup(run: { child: ChildProcess; exited: Promise<number | null> }): Promise<void> {
  process.kill(-run.child.pid!, 'SIGKILL');
  assert.equal(await run.exited, null, 'the run was killed, not finished');
}

function applyFully(site: string, version: number, ...args: string[]) {
  const r = spawnSync(process.execPath, [CAIRN, 'apply', '--site', site, '--var', `version=${version}`, '--json', ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { ...JSON.parse(r.stdout) as { targets: { nodes: { ref: string; status: string }[] }[] }, stderr: r.stderr };
}

function mkfifo(path: string): void {
  const r = spawnSync('mkfifo', [path], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

/**
 * Resolves once a reader has opened `fifo` (the run is blocked on it), holding the write end open
 * so it stays blocked; fails if the run exits first. Close the returned handle after the kill.
 */
async function whenBlockedOn(fifo: string, exited: Promise<number | null>) {
  const opening = open(fifo, 'w');
  const outcome = await Promise.race([opening.then(() => 'blocked' as const), exited.then((code) => code)]);
  if (outcome !== 'blocked') {
    // Let the pending open return (a reader of our own), then fail.
    const reader = await open(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    await (await opening).close();
    await reader.close();
    assert.fail(`the run exited (${outcome}) before it reached ${fifo}`);
  }
  return opening;
}

/** Lines in `file` (0 if it does not exist): how often a handler ran. */
function count(file: string): number {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;
}

interface Pending {
  pending: { node: string; from: string }[];
}

function pending(s: Scratch): Pending['pending'] {
  const file = join(s.stateDir, 'pending.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Pending).pending : [];
}

/** Cairn's atomic-write temp files (executors: `.<name>.cairn-tmp.…`; caches: `<name>.<pid>.tmp`) under `dirs`. */
function tempFiles(...dirs: string[]): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (/\.cairn-tmp\.|\.\d+\.tmp$/.test(e.name)) found.push(path);
      if (e.isDirectory()) walk(path);
    }
  };
  for (const dir of dirs) walk(dir);
  return found;
}

const SEED = 0x5eed_c4a5;
const FILES = 500;
const KILLS = 50;

test(`kill -9 at ${KILLS} seeded random points of a ${FILES}-file run (mulberry32 seed 0x${SEED.toString(16)}): files whole, the notification pending, then delivered once`, { timeout: 600_000 }, async () => {
  const s = scratchSite('files', {
    'states/files.yaml': [
      'files:',
      '  - directory: <%= it.vars.root %>/d',
      `<% for (let i = 0; i < ${FILES}; i++) { %>`,
      '  - file: <%= it.vars.root %>/d/f<%= i %>',
      '    content: "file <%= i %> version <%= it.vars.version %>\\n"',
      '    notify: reload',
      '<% } %>',
      // Holds a killed run before its handler: the kill never lands after the delivery.
      '  - exec: if test -p <%= it.vars.root %>/gate; then read line < <%= it.vars.root %>/gate; fi',
      'reload:',
      '  lazy: true',
      '  parts:',
      '    - exec: echo reloaded >> <%= it.vars.root %>/reloads',
      '',
    ].join('\n'),
  });
  const dir = join(s.root, 'd');
  const gate = join(s.root, 'gate');
  const reloads = join(s.root, 'reloads');
  applyFully(s.site, 0);
  assert.equal(count(reloads), 1);
  assert.deepEqual(pending(s), []);

  const random = mulberry32(SEED);
  let swept = 0;
  for (let k = 1; k <= KILLS; k++) {
    // Killed once f<at> holds version k: the run is somewhere among its file writes, or at the gate.
    const at = Math.floor(random() * FILES);
    const where = `seed 0x${SEED.toString(16)}, kill ${k}, after f${at}`;
    mkfifo(gate);
    const renamed = new Promise<void>((resolve) => {
      const watcher = watch(dir, (_event, name) => {
        if (name === `f${at}` && readFileSync(join(dir, name), 'utf8').endsWith(`version ${k}\n`)) {
          watcher.close();
          resolve();
        }
      });
    });
    const run = startApply(s.site, k);
    const outcome = await Promise.race([renamed.then(() => 'renamed'), run.exited.then((code) => `exited ${code}`)]);
    assert.equal(outcome, 'renamed', where);
    await killGroup(run);

    for (let i = 0; i < FILES; i++) {
      assert.match(readFileSync(join(dir, `f${i}`), 'utf8'), new RegExp(`^file ${i} version (${k - 1}|${k})\\n$`), `f${i} (${where})`);
    }
    assert.equal(readFileSync(join(dir, `f${at}`), 'utf8'), `file ${at} version ${k}\n`);
    assert.ok(pending(s).some((p) => /^file:.*\/d\/f\d+$/.test(p.from)), `pending.json holds the notification (${where}): ${JSON.stringify(pending(s))}`);
    assert.equal(count(reloads), k, `the killed run did not reach its handler (${where})`);
    // A kill mid-write can leave the temp files of the writes in flight: beside managed files,
    // all with the tag the killed run's lock records; nothing else is new in the tree.
    const tag = /^temps (\S+)$/m.exec(readFileSync(join(s.stateDir, 'lock.d', 'holder'), 'utf8'))?.[1];
    assert.ok(tag, `the killed run's lock records its temp files' tag (${where})`);
    const left = tempFiles(s.root, s.stateDir);
    assert.deepEqual(left.filter((path) => !path.startsWith(`${dir}/.f`) || !path.includes(`.cairn-tmp.${tag}.`)), [], `only the killed run's temp files of managed files (${where})`);
    assert.deepEqual(readdirSync(dir).filter((name) => !/^f\d+$/.test(name) && !/^\.f\d+\.cairn-tmp\./.test(name)), [], `no other file (${where})`);

    swept += left.length;
    rmSync(gate);
    const next = applyFully(s.site, k);
    assert.match(next.stderr, new RegExp(`took over the run lock of pid \\d+ .*: that process is gone${left.length > 0 ? `; removed ${left.length} temp files? it left` : ''}$`, 'm'), where);
    assert.equal(count(reloads), k + 1, `the next run delivered the handler exactly once (${where})`);
    assert.deepEqual(pending(s), [], `nothing stays pending after a full run (${where})`);
    for (let i = 0; i < FILES; i++) assert.equal(readFileSync(join(dir, `f${i}`), 'utf8'), `file ${i} version ${k}\n`);
    assert.deepEqual(tempFiles(s.root, s.stateDir), [], `the next run left no temp file, the killed run's nor its own (${where})`);
  }
  // The kills land among writes in flight often enough that the sweep was put to work.
  assert.ok(swept > 0, 'some kill left temp files for the next run to remove');
  applyFully(s.site, KILLS);
  assert.equal(count(reloads), KILLS + 1, 'a run with nothing pending and nothing changed does not run the handler');
});

/** Starts an apply, waits until it is held on the fifo `gate` (made here), and kills it there. */
async function killWhenHeld(site: string, gate: string): Promise<void> {
  mkfifo(gate);
  const run = startApply(site, 1);
  const writer = await whenBlockedOn(gate, run.exited);
  await killGroup(run);
  await writer.close();
}

test('a run killed between a notifier\'s change and its handler: the notification is pending, then delivered once', { timeout: 120_000 }, async () => {
  const s = scratchSite('conf', {
    'states/conf.yaml': [
      'conf:',
      '  - file: <%= it.vars.root %>/app.conf',
      '    content: "v<%= it.vars.version %>\\n"',
      '    notify: reload',
      // The notifier's successor: the run is held here, after the change, before the handler.
      '  - exec: if test -p <%= it.vars.root %>/gate; then read line < <%= it.vars.root %>/gate; fi',
      'reload:',
      '  lazy: true',
      '  parts:',
      '    - exec: echo reloaded >> <%= it.vars.root %>/reloads',
      '',
    ].join('\n'),
  });
  const gate = join(s.root, 'gate');
  const reloads = join(s.root, 'reloads');
  await killWhenHeld(s.site, gate);

  assert.equal(readFileSync(join(s.root, 'app.conf'), 'utf8'), 'v1\n', 'the notifier changed');
  assert.deepEqual(pending(s).map((p) => p.from), [`file:${join(s.root, 'app.conf')}`], 'pending.json holds the notification');
  assert.equal(count(reloads), 0, 'the handler did not run');
  assert.deepEqual(tempFiles(s.root, s.stateDir), [], 'no temp file left');

  rmSync(gate);
  const next = applyFully(s.site, 1);
  assert.deepEqual(next.targets[0]!.nodes.map((n) => `${n.status} ${n.ref.split(' ')[0]}`), [
    `unchanged file:${join(s.root, 'app.conf')}`, 'changed exec:if', 'changed exec:echo',
  ]);
  assert.equal(count(reloads), 1, 'the next run ran the handler exactly once');
  assert.deepEqual(pending(s), []);
  applyFully(s.site, 1);
  assert.equal(count(reloads), 1, 'the run after it does not run it again');
  assert.deepEqual(tempFiles(s.root, s.stateDir), [], 'no temp file left');
});

test('a run killed inside its handler: the notification stays pending and the next run delivers it once', { timeout: 120_000 }, async () => {
  const s = scratchSite('conf', {
    'states/conf.yaml': [
      'conf:',
      '  - file: <%= it.vars.root %>/app.conf',
      '    content: "v<%= it.vars.version %>\\n"',
      '    notify: reload',
      'reload:',
      '  lazy: true',
      '  parts:',
      '    - exec: if test -p <%= it.vars.root %>/gate; then read line < <%= it.vars.root %>/gate; fi; echo reloaded >> <%= it.vars.root %>/reloads',
      '',
    ].join('\n'),
  });
  const gate = join(s.root, 'gate');
  const reloads = join(s.root, 'reloads');
  await killWhenHeld(s.site, gate);

  assert.equal(readFileSync(join(s.root, 'app.conf'), 'utf8'), 'v1\n');
  assert.deepEqual(pending(s).map((p) => p.from), [`file:${join(s.root, 'app.conf')}`], 'pending.json holds the notification');
  assert.equal(count(reloads), 0, 'the handler was killed before its effect');

  // The next run finds the config in sync, yet runs the handler; the one after does not.
  rmSync(gate);
  const next = applyFully(s.site, 1);
  assert.deepEqual(next.targets[0]!.nodes.map((n) => `${n.status} ${n.ref.split(' ')[0]}`), [`unchanged file:${join(s.root, 'app.conf')}`, 'changed exec:if']);
  assert.equal(count(reloads), 1);
  assert.deepEqual(pending(s), []);
  applyFully(s.site, 1);
  assert.equal(count(reloads), 1);
  assert.deepEqual(tempFiles(s.root, s.stateDir), [], 'no temp file left');
});

test('a run stopped by --fail-fast after a notifier changed: the skipped handler stays pending, the next run delivers it once', async () => {
  const s = scratchSite('conf', {
    'states/conf.yaml': [
      'conf:',
      '  - file: <%= it.vars.root %>/app.conf',
      '    content: "v1\\n"',
      '    notify: reload',
      '  - exec: test ! -e <%= it.vars.root %>/broken',
      'reload:',
      '  lazy: true',
      '  parts:',
      '    - exec: echo reloaded >> <%= it.vars.root %>/reloads',
      '',
    ].join('\n'),
  });
  const reloads = join(s.root, 'reloads');
  const apply = async (...args: string[]) => {
    const r = await runCli(['apply', '--site', s.site, '--json', ...args]);
    return { status: r.status, nodes: (JSON.parse(r.stdout) as { targets: { nodes: { ref: string; status: string }[] }[] }).targets[0]!.nodes };
  };
  writeFileSync(join(s.root, 'broken'), '');
  const stopped = await apply('--fail-fast');
  assert.equal(stopped.status, 1);
  assert.deepEqual(stopped.nodes.map((n) => `${n.status} ${n.ref.split(' ')[0]}`), [
    `changed file:${join(s.root, 'app.conf')}`, 'failed exec:test', 'skipped exec:echo',
  ]);
  assert.equal(count(reloads), 0);
  assert.deepEqual(pending(s).map((p) => p.from), [`file:${join(s.root, 'app.conf')}`], 'a skipped handler stays pending');

  rmSync(join(s.root, 'broken'));
  const next = await apply();
  assert.equal(next.status, 0);
  assert.equal(count(reloads), 1, 'the next run delivers it exactly once');
  assert.deepEqual(pending(s), []);
  await apply();
  assert.equal(count(reloads), 1, 'and the run after it not again');
});
