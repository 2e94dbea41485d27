/**
 * No crash window for notifications (DESIGN §5.3): `cairn apply` (the built command) killed by
 * SIGKILL at chosen instants, through the test hook CAIRN_TEST_KILL_AT (src/lib/test-kill.ts):
 * right after a notifier's file is renamed into place, before and after each write of
 * pending.json, between a change and its record, and between a handler and its record. Then at
 * seeded random ones of those instants. After each kill, the next run runs every handler whose
 * notifier changed: at least once, and exactly once except when the kill fell between the handler
 * finishing and its record (then twice: the one window the README names). No temp file of the
 * killed run is left after the next run, anywhere Cairn writes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { buildCatalog } from '../src/catalog/catalog.ts';
import { compile } from '../src/catalog/compile.ts';
import { storeStateStorage } from '../src/daemon/agent.ts';
import { runTarget } from '../src/engine/run-target.ts';
import { stateDirStorage, TargetState } from '../src/engine/target-state.ts';
import { LocalExecutor } from '../src/executors/local.ts';
import { buildGraph } from '../src/graph/build.ts';
import type { Compiled } from '../src/graph/codec.ts';
import { Diagnostics } from '../src/lib/errors.ts';
import { loadSite } from '../src/site/load.ts';
import { openStore } from '../src/store/index.ts';
import { CAIRN, makeSite, tempDir } from './helpers/cli.ts';
import { scratchSite, type Scratch } from './helpers/converge.ts';
import { mulberry32 } from './helpers/random.ts';

interface Site extends Scratch {
  /** $TMPDIR of the runs: where their command shells keep their folders. */
  tmp: string;
}

/** Three files: a.conf and b.conf notify `reload`, c.conf notifies `restart`; each handler counts its runs in a file. */
function site(): Site {
  const s = scratchSite('conf', {
    'states/conf.yaml': [
      'conf:',
      '  - file: <%= it.vars.root %>/a.conf',
      '    content: "a v<%= it.vars.version %>\\n"',
      '    notify: reload',
      '  - file: <%= it.vars.root %>/b.conf',
      '    content: "b v<%= it.vars.version %>\\n"',
      '    notify: reload',
      '  - file: <%= it.vars.root %>/c.conf',
      '    content: "c v<%= it.vars.version %>\\n"',
      '    notify: restart',
      'reload:',
      '  lazy: true',
      '  parts:',
      '    - exec: echo reloaded >> <%= it.vars.root %>/reloads',
      'restart:',
      '  lazy: true',
      '  parts:',
      '    - exec: echo restarted >> <%= it.vars.root %>/restarts',
      '',
    ].join('\n'),
  });
  const tmp = tempDir('cairn-tmpdir-');
  return { ...s, tmp };
}

/** `cairn apply` of version `version`, killed at `killAt` if the run reaches it. */
function apply(s: Site, version: number, killAt?: string) {
  const r = spawnSync(process.execPath, [CAIRN, 'apply', '--site', s.site, '--var', `version=${version}`, '--json'], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', TMPDIR: s.tmp, ...(killAt ? { CAIRN_TEST_KILL_AT: killAt } : { CAIRN_TEST_KILL_AT: '' }) },
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function applyFully(s: Site, version: number) {
  const r = apply(s, version);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { targets: { nodes: { ref: string; status: string }[] }[] };
}

function count(file: string): number {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;
}

function runs(s: Site) {
  return { reload: count(join(s.root, 'reloads')), restart: count(join(s.root, 'restarts')) };
}

function pending(s: Site): string[] {
  const file = join(s.stateDir, 'pending.json');
  if (!existsSync(file)) return [];
  return (JSON.parse(readFileSync(file, 'utf8')) as { pending: { node: string }[] }).pending.map((p) => p.node).sort();
}

/** Temp files of Cairn's anywhere it writes: beside managed files, the state dir, the compile cache, $TMPDIR. */
function temps(s: Site): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (/\.cairn-tmp\.|\.tmp$|^cairn-commands-/.test(e.name)) found.push(path);
      else if (e.isDirectory()) walk(path);
    }
  };
  for (const dir of [s.root, s.stateDir, join(s.site, '.cairn'), s.tmp]) walk(dir);
  return found;
}

/**
 * Kills a run of `version` at `killAt`, then runs it again: returns how often each handler ran
 * over both runs, what the killed run left pending, and which handlers fell in the one window
 * (run by the killed run, and still recorded as pending when it died).
 */
function killThenRecover(s: Site, version: number, killAt: string) {
  const before = runs(s);
  const killed = apply(s, version, killAt);
  const left = pending(s);
  const reached = killed.signal === 'SIGKILL';
  if (!reached) assert.equal(killed.status, 0, killed.stderr);
  const middle = runs(s);
  const next = applyFully(s, version);
  const after = runs(s);
  const window = (h: 'reload' | 'restart') => middle[h] > before[h] && left.some((id) => id.includes(`${h === 'reload' ? 'reloads' : 'restarts'}`));
  return {
    reached, left, next,
    ran: { reload: after.reload - before.reload, restart: after.restart - before.restart },
    inWindow: { reload: window('reload'), restart: window('restart') },
  };
}

/** At least once; exactly once unless the kill fell between the handler finishing and its record. */
function assertDelivered(r: ReturnType<typeof killThenRecover>, where: string) {
  for (const h of ['reload', 'restart'] as const) {
    assert.ok(r.ran[h] >= 1, `${h} ran at least once (${where}): ${JSON.stringify(r.ran)}`);
    assert.equal(r.ran[h], r.inWindow[h] ? 2 : 1, `${h} ran exactly once outside the handler-to-record window (${where}): ${JSON.stringify(r)}`);
  }
}

function assertRecovered(s: Site, where: string) {
  assert.deepEqual(pending(s), [], `nothing pending after the next run (${where})`);
  assert.deepEqual(temps(s), [], `no temp file left (${where})`);
  for (const f of ['a', 'b', 'c']) assert.match(readFileSync(join(s.root, `${f}.conf`), 'utf8'), /^[abc] v\d+\n$/);
}

describe('notifications across a kill at a chosen instant', () => {
  test('killed right after the notifier\'s file is renamed into place: its notification is pending, and the next run runs the handler once', () => {
    const s = site();
    applyFully(s, 0);
    assert.deepEqual(runs(s), { reload: 1, restart: 1 });
    const r = killThenRecover(s, 1, 'after-rename:a.conf');
    assert.ok(r.reached, 'the run was killed');
    assert.ok(r.left.some((id) => id.includes('reloads')), `pending.json held the notification: ${JSON.stringify(r.left)}`);
    assert.deepEqual(r.ran, { reload: 1, restart: 1 });
    assert.equal(r.next.targets[0]!.nodes.find((n) => n.ref === `file:${join(s.root, 'a.conf')}`)?.status, 'unchanged',
      'a.conf was already in place: the pending notification ran the handler');
    assertRecovered(s, 'after-rename');
    applyFully(s, 1);
    assert.deepEqual(runs(s), { reload: 2, restart: 2 }, 'the run after does not run them again');
  });

  test('killed just before, and just after, each write of pending.json: every handler runs on the next run, once unless it had run already', () => {
    const s = site();
    applyFully(s, 0);
    let version = 0;
    // A run of a new version writes pending.json four times: reload's intent (before a.conf),
    // restart's (before c.conf), and each handler's delivery. A kill just before a delivery's
    // write is a kill between that handler and its record.
    for (let n = 1; n <= 4; n++) {
      for (const point of ['before-state-write', 'after-state-write']) {
        const where = `${point}:pending.json@${n}`;
        const r = killThenRecover(s, ++version, where);
        assert.ok(r.reached, `the run reached ${where}`);
        assertDelivered(r, where);
        assert.equal(r.inWindow.reload || r.inWindow.restart, point === 'before-state-write' && n >= 3, `only a kill before a delivery's write falls in the window (${where})`);
        assertRecovered(s, where);
      }
    }
  });

  test('killed between a change and its record: the handler runs once on the next run', () => {
    const s = site();
    applyFully(s, 0);
    let version = 0;
    for (const f of ['a', 'b', 'c']) {
      const where = `after-change:file:${join(s.root, `${f}.conf`)}`;
      const r = killThenRecover(s, ++version, where);
      assert.ok(r.reached, where);
      assertDelivered(r, where);
      assert.deepEqual(r.ran, { reload: 1, restart: 1 }, where);
      assertRecovered(s, where);
    }
  });

  test('killed between a handler finishing and its record: the one window, where the next run runs it again', () => {
    const s = site();
    applyFully(s, 0);
    const r = killThenRecover(s, 1, 'after-handler@1');
    assert.ok(r.reached);
    assert.deepEqual(r.left, [...r.left].filter((id) => id.includes('echo')), 'only handlers pending');
    assert.equal(r.left.length, 2, 'both handlers were still recorded as pending when the first had run');
    assert.deepEqual(r.ran, { reload: 2, restart: 1 }, 'reload ran in the killed run and again in the next: at least once, not exactly once');
    assert.deepEqual(r.inWindow, { reload: true, restart: false });
    assertRecovered(s, 'after-handler');
  });
});

const SEED = 0xc0ffee27;
const KILLS = 36;
const POINTS = ['before-rename', 'after-rename', 'before-state-write', 'after-state-write', 'after-change', 'after-handler'];

test(`kill -9 at ${KILLS} seeded random instants (mulberry32 seed 0x${SEED.toString(16)}): every handler runs at least once per notifying change, exactly once outside the one window, and no temp file remains`, () => {
  const s = site();
  applyFully(s, 0);
  const random = mulberry32(SEED);
  let reached = 0;
  for (let k = 1; k <= KILLS; k++) {
    const point = POINTS[Math.floor(random() * POINTS.length)]!;
    const nth = 1 + Math.floor(random() * 4);
    const where = `seed 0x${SEED.toString(16)}, kill ${k}: ${point}@${nth}`;
    const r = killThenRecover(s, k, `${point}@${nth}`);
    if (r.reached) reached++;
    // Both handlers' notifiers changed in the killed run (version k is new to every file).
    assertDelivered(r, where);
    // A handler's own change (after-change), its end (after-handler) and the write that records
    // its delivery (before-state-write) are the instants between a handler and its record.
    if (r.inWindow.reload || r.inWindow.restart) assert.ok(['after-change', 'after-handler', 'before-state-write'].includes(point), `only a kill after a handler, before its record, runs it twice (${where})`);
    assertRecovered(s, where);
  }
  assert.ok(reached >= KILLS / 2, `most runs were killed (${reached} of ${KILLS})`);
});

test('the test hook is inert unless set: a run with CAIRN_TEST_KILL_AT naming no point it reaches finishes', () => {
  const s = site();
  mkdirSync(s.tmp, { recursive: true });
  const r = apply(s, 0, 'after-rename:no-such-file');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(runs(s), { reload: 1, restart: 1 });
});

/** Compiles a one-target site whose state `s` has a.conf notify the lazy `reload`. */
async function notifierSite(root: string): Promise<Compiled> {
  const site = makeSite({
    'cairn.yaml': `targets:\n  t1:\n    executor: local\n    state_dir: ${root}/state\n    run: [s]\n`,
    'states/s.yaml': `s:\n  - file: ${root}/a.conf\n    content: one\n    notify: reload\nreload:\n  lazy: true\n  parts:\n    - exec: echo reloaded >> ${root}/reloads\n`,
  });
  const d = new Diagnostics();
  const catalog = buildCatalog(await loadSite(site, d), d);
  d.throwIfAny();
  const run = compile(catalog, catalog.targets.get('t1')!, { facts: { os_family: 'debian' }, cliVars: {} });
  return { run, graph: buildGraph(run) };
}

describe('pending.json is read, changed and written under the run lock, never from a stale copy', () => {
  test('two runs\' states over one state dir: each write starts from the file as it is, so neither erases nor brings back the other\'s entries', async () => {
    const dir = join(tempDir('cairn-state-'), 'state');
    const exec = new LocalExecutor();
    const first = new TargetState(stateDirStorage(exec, dir));
    await first.add('old', 'file:/old');
    // A run that read the file, then paused while another delivered `old` and recorded `new`.
    const paused = new TargetState(stateDirStorage(exec, dir));
    assert.deepEqual((await paused.load()).map((p) => p.node), ['old']);
    const other = new TargetState(stateDirStorage(exec, dir));
    await other.load();
    await other.remove('old');
    await other.add('new', 'file:/new');
    // The paused run goes on: its own entry joins the file as it is now.
    assert.deepEqual(await paused.addAll([{ node: 'mine', from: 'file:/mine' }]), ['mine']);
    const onDisk = () => (JSON.parse(readFileSync(join(dir, 'pending.json'), 'utf8')) as { pending: { node: string }[] }).pending.map((p) => p.node);
    assert.deepEqual(onDisk(), ['new', 'mine'], 'the other run\'s entry kept, the delivered one not brought back');
    await paused.remove('mine');
    assert.deepEqual(onDisk(), ['new']);
    await exec.close();
  });

  test('a run whose state is in a store reads its pending notifications only once it holds the run lock: one delivered while it waited does not run again', async () => {
    const root = tempDir('cairn-root-');
    const unit = await notifierSite(root);
    const store = await openStore(`sqlite:${join(root, 'store.db')}`);
    const storage = storeStateStorage(store, 't1');
    const exec = new LocalExecutor();
    // Converged, then a notification left pending by a run that is now going on (it holds the lock).
    assert.equal((await runTarget(unit, exec, { mode: 'apply', stateStorage: storage })).status, 'ok');
    assert.equal(count(join(root, 'reloads')), 1);
    const handler = unit.graph.handlers[0]!;
    await storage.write('pending.json', JSON.stringify({ version: 1, pending: [{ node: handler, from: `file:${root}/a.conf` }] }));
    const lockDir = join(root, 'state', 'lock.d');
    mkdirSync(lockDir, { recursive: true });
    writeFileSync(join(lockDir, 'holder'), `${process.pid} ${hostname()} 2026-01-01T00:00:00.000Z cairn apply\n`);

    let waiting!: () => void;
    const waits = new Promise<void>((resolve) => (waiting = resolve));
    const run = runTarget(unit, exec, { mode: 'apply', stateStorage: storage, lockWaitMs: Infinity, onNotice: (line) => line.includes('waiting for the run lock') && waiting() });
    await waits;
    // The run holding the lock delivers the notification (runs the handler, removes the entry) and lets go.
    writeFileSync(join(root, 'reloads'), 'reloaded\nreloaded\n');
    await storage.write('pending.json', JSON.stringify({ version: 1, pending: [] }));
    rmSync(lockDir, { recursive: true });

    const report = await run;
    assert.equal(report.status, 'ok', JSON.stringify(report));
    assert.deepEqual(report.nodes.map((n) => n.status), ['unchanged'], 'the delivered handler is not run again');
    assert.equal(count(join(root, 'reloads')), 2);
    await exec.close();
    await store.close();
  });
});
