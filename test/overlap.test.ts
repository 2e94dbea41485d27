/**
 * Nodes applied side by side (ResourceType.overlap, Executor.overlap): which footprints touch,
 * and an engine run on real files that overlaps writes but never two on related paths, never a
 * command while a write is in flight, and reports in run order.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { PartInvocation, StateRun } from '../src/catalog/staterun.ts';
import { Engine } from '../src/engine/engine.ts';
import { footprintOf, InFlight, StartOrder, type Footprint } from '../src/engine/overlap.ts';
import { LocalExecutor } from '../src/executors/local.ts';
import type { RunOptions, RunResult, WriteOptions } from '../src/executors/types.ts';
import { buildGraph } from '../src/graph/build.ts';
import { tempDir } from './helpers/cli.ts';

const scratch = tempDir('cairn-overlap-');

/**
 * The rule InFlight.blocks() answers by index, written plainly, as the oracle the index is
 * checked against: two footprints touch when a path of one is at or above a path of the other,
 * or when one may create folders above its path and the other lives in a folder at or above it.
 */
function touches(a: Footprint, b: Footprint): boolean {
  for (let i = 0; i < a.paths.length; i++) {
    const p = a.paths[i]!;
    for (let j = 0; j < b.paths.length; j++) {
      const q = b.paths[j]!;
      if (p.startsWith(q) || q.startsWith(p)) return true;
      if (a.parents && p.startsWith(b.folders[j]!)) return true;
      if (b.parents && q.startsWith(a.folders[i]!)) return true;
    }
  }
  return false;
}

test('footprints touch at, above and below a path; a folder made with its parents touches what may live in them', () => {
  const f = (path: string, parents = false) => footprintOf([path], parents);
  assert.equal(touches(f('/a/b'), f('/a/b')), true);
  assert.equal(touches(f('/a/b'), f('/a/b/c')), true);
  assert.equal(touches(f('/a/b/c'), f('/a/b')), true);
  assert.equal(touches(f('/a/b'), f('/a/bc')), false, 'a name that only starts the same is another path');
  assert.equal(touches(f('/a/d1/f1'), f('/a/d1/f2')), false, 'files side by side in one folder');
  assert.equal(touches(f('/a/b/c', true), f('/a/x')), true, 'mkdir -p /a/b/c may make /a, where /a/x lives');
  assert.equal(touches(f('/a/x'), f('/a/b/c', true)), true);
  assert.equal(touches(f('/a/d1', true), f('/a/d2/f')), false, 'mkdir -p /a/d1 makes nothing /a/d2/f lives in');
  assert.equal(touches(f('/a/b/', true), f('/a/b/c')), true, 'a trailing slash is the same path');
  assert.equal(touches(footprintOf(['/x', '/y/z'], false), f('/y')), true, 'any of several paths');
});

test('the in-flight index answers exactly what touches() answers, as nodes come and go', async () => {
  // A small tree, so that random paths often sit above, below or beside each other.
  let seed = 7;
  const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
  const randomPath = () => `/${Array.from({ length: 1 + random(4) }, () => 'abc'[random(3)]).join('/')}`;
  const randomFootprint = () => footprintOf(Array.from({ length: 1 + random(2) }, randomPath), random(2) === 0);
  for (let round = 0; round < 200; round++) {
    const inFlight = new InFlight();
    const members: { footprint: Footprint; finish: () => void }[] = [];
    for (let k = random(5); k > 0; k--) {
      const footprint = randomFootprint();
      let finish!: () => void;
      inFlight.add(`n${k}`, footprint, new Promise<void>((r) => (finish = r)));
      members.push({ footprint, finish });
    }
    // Some finish, and leave the index.
    const finished = members.filter(() => random(3) === 0);
    for (const m of finished) m.finish();
    await new Promise((r) => setImmediate(r));
    const live = members.filter((m) => !finished.includes(m));
    for (let c = 0; c < 10; c++) {
      const candidate = randomFootprint();
      const expected = live.some((m) => touches(m.footprint, candidate));
      assert.equal(inFlight.blocks(candidate), expected, `${JSON.stringify(candidate.paths)} (parents ${candidate.parents}) against ${JSON.stringify(live.map((m) => [m.footprint.paths, m.footprint.parents]))}`);
    }
    assert.equal(inFlight.size, live.length);
  }
});

test('a node that finished before anyone asked wakes the next wait at once, not the finish after it', async () => {
  const inFlight = new InFlight();
  let finishFirst!: () => void;
  inFlight.add('first', footprintOf(['/a'], false), new Promise<void>((r) => (finishFirst = r)));
  // Held for the whole test: a wait that passes over the first's finish would wait on it for ever.
  inFlight.add('held', footprintOf(['/b'], false), new Promise<void>(() => undefined));
  finishFirst();
  await new Promise((r) => setImmediate(r));
  // The first has finished; nobody has taken it yet.
  const woke = await Promise.race([inFlight.any().then(() => 'woke'), new Promise((r) => setImmediate(() => r('still waiting')))]);
  assert.equal(woke, 'woke');
  assert.deepEqual(inFlight.takeFinished().map((f) => f.id), ['first']);
  // Once taken, the next wait is for the next finish.
  const next = await Promise.race([inFlight.any().then(() => 'woke'), new Promise((r) => setImmediate(() => r('still waiting')))]);
  assert.equal(next, 'still waiting');
});

test('results come out in start order: a held one waits for those held before it', () => {
  const order = new StartOrder<string>();
  assert.deepEqual(order.release('free', 'free'), ['free'], 'not held: due at once');
  order.hold('a');
  order.hold('b');
  order.hold('c');
  assert.equal(order.isHeld('b'), true);
  assert.deepEqual(order.release('c', 'c'), []);
  assert.deepEqual(order.release('b', 'b'), []);
  assert.deepEqual(order.release('a', 'a'), ['a', 'b', 'c']);
  assert.equal(order.isHeld('a'), false);
});

/** The local executor, recording which writes were in flight together and what a command saw. */
class Recording extends LocalExecutor {
  readonly inFlight = new Set<string>();
  readonly together: [string, string][] = [];
  maxInFlight = 0;
  writesInFlightAtCommands: number[] = [];

  override async writeFile(path: string, data: string | Buffer, opts?: WriteOptions): Promise<void> {
    for (const other of this.inFlight) this.together.push([other, path]);
    this.inFlight.add(path);
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight.size);
    try {
      await super.writeFile(path, data, opts);
    } finally {
      this.inFlight.delete(path);
    }
  }

  override async run(argv: string[], opts?: RunOptions): Promise<RunResult> {
    this.writesInFlightAtCommands.push(this.inFlight.size);
    return super.run(argv, opts);
  }
}

function part(index: number, type: string, path: string, attributes: Record<string, unknown> = {}, requisites: PartInvocation['requisites'] = []): PartInvocation {
  const key = type === 'exec' ? 'command' : 'path';
  const ref = type === 'line' ? `${type}:${path}#${String(attributes.text)}` : `${type}:${path}`;
  return {
    index, type, ref, attributes: { [key]: path, ...attributes }, requisites,
    meta: { noop: false, allow_reload: true, allow_rebuild: true, tags: [] },
  };
}

test('an apply overlaps writes on unrelated paths only, runs commands alone, and reports in run order', async () => {
  const root = join(scratch, 'root');
  const parts: PartInvocation[] = [];
  const add = (type: string, path: string, attributes: Record<string, unknown> = {}, requisites: PartInvocation['requisites'] = []) =>
    parts.push(part(parts.length, type, path, { ensure: 'present', ...attributes }, requisites));
  for (let d = 1; d <= 3; d++) {
    add('directory', `${root}/d${d}/sub`);
    for (let f = 1; f <= 8; f++) add('file', `${root}/d${d}/sub/f${f}`, { content: `d${d} f${f}\n` });
    // Two lines in one file: never in flight together.
    add('line', `${root}/d${d}/sub/conf`, { text: 'one' });
    add('line', `${root}/d${d}/sub/conf`, { text: 'two' });
    add('symlink', `${root}/d${d}/link`, { target: `${root}/d${d}/sub/f2` });
  }
  // A command between writes: it must see every earlier write done.
  const exec = parts.length;
  parts.push({ ...part(exec, 'exec', `cat ${root}/d3/sub/f8`), attributes: { command: `cat ${root}/d3/sub/f8` } });
  add('file', `${root}/after`, { content: 'after\n' }, [{ kind: 'require', ref: `file:${root}/d1/sub/f3` }]);
  const run: StateRun = {
    version: 1, target: { name: 't', executor: 'local', state_dir: join(scratch, 'state') }, vars: {}, facts: {}, os: {},
    invocations: [{ index: 0, state: 's', params: {}, lazy: false, defer: false, via: 'test', includes: [], parts }],
  };
  const graph = buildGraph(run);
  // The files are there already, with other content: replacing them waits on an fsync, and that
  // wait is what overlaps (new files go in without one, unsynced-writes.ts).
  for (let d = 1; d <= 3; d++) {
    mkdirSync(`${root}/d${d}/sub`, { recursive: true });
    for (let f = 1; f <= 8; f++) writeFileSync(`${root}/d${d}/sub/f${f}`, 'older\n');
  }
  const exec1 = new Recording();
  const reported: string[] = [];
  const results = await new Engine(run, graph, exec1, { mode: 'apply', onResult: (r) => reported.push(r.ref) }).execute();

  assert.deepEqual(results.map((r) => r.status), parts.map((p) => (p.type === 'directory' ? 'unchanged' : 'changed')));
  assert.deepEqual(results.map((r) => r.ref), graph.order.map((id) => graph.nodes.find((n) => n.id === id)!.ref), 'results in run order');
  assert.deepEqual(reported, results.map((r) => r.ref), 'reported as they are recorded, in run order');
  assert.ok(exec1.maxInFlight > 1, `writes overlapped (at most ${exec1.maxInFlight} in flight)`);
  const related = exec1.together.filter(([a, b]) => touches(footprintOf([a], false), footprintOf([b], false)));
  assert.deepEqual(related, [], 'no two writes on related paths were ever in flight together');
  assert.deepEqual(exec1.writesInFlightAtCommands, [0], 'the command ran with no write in flight');
  for (let d = 1; d <= 3; d++) {
    assert.equal(readFileSync(`${root}/d${d}/sub/conf`, 'utf8'), 'one\ntwo\n');
    assert.equal(readFileSync(`${root}/d${d}/link`, 'utf8'), `d${d} f2\n`);
  }

  const again = await new Engine(run, graph, new LocalExecutor(), { mode: 'apply' }).execute();
  assert.deepEqual(again.filter((r) => r.status !== 'unchanged').map((r) => r.ref), [`exec:cat ${root}/d3/sub/f8`], 'only the command runs again');
});

test('a failure among overlapped nodes skips exactly its dependants; with --fail-fast nothing after it starts', async () => {
  const root = join(scratch, 'fail');
  const parts = [
    part(0, 'directory', `${root}/ok`, { ensure: 'present' }),
    part(1, 'file', `${root}/missing/f`, { ensure: 'present', content: 'x' }),
    part(2, 'file', `${root}/ok/a`, { ensure: 'present', content: 'a' }),
    part(3, 'file', `${root}/ok/b`, { ensure: 'present', content: 'b' }, [{ kind: 'require', ref: `file:${root}/missing/f` }]),
    part(4, 'file', `${root}/ok/c`, { ensure: 'present', content: 'c' }),
  ];
  const runOf = (stateDir: string): StateRun => ({
    version: 1, target: { name: 't', executor: 'local', state_dir: join(scratch, stateDir) }, vars: {}, facts: {}, os: {},
    invocations: [{ index: 0, state: 's', params: {}, lazy: false, defer: false, via: 'test', includes: [], parts }],
  });
  const run = runOf('state-fail');
  const results = await new Engine(run, buildGraph(run), new LocalExecutor(), { mode: 'apply' }).execute();
  assert.deepEqual(results.map((r) => `${r.status} ${r.ref.slice(r.ref.indexOf(":") + 1 + root.length)}`), [
    'changed /ok', 'failed /missing/f', 'changed /ok/a', 'skipped /ok/b', 'changed /ok/c',
  ]);
  assert.match(results[1]!.error!, /does not exist/);

  rmSync(root, { recursive: true, force: true });
  const fast = runOf('state-fast');
  const stopped = await new Engine(fast, buildGraph(fast), new LocalExecutor(), { mode: 'apply', failFast: true }).execute();
  // --fail-fast overlaps nothing: no node after the failure was started.
  assert.deepEqual(stopped.map((r) => r.status), ['changed', 'failed', 'skipped', 'skipped', 'skipped']);
});

/**
 * The local executor with one folder's mkdir held until another's is asked for: a run that does
 * not look past the nodes waiting on the held one never asks, and the case's hang guard fails it.
 * Records the file operations in the order they were asked for.
 */
class Gated extends LocalExecutor {
  readonly calls: string[] = [];
  private open!: () => void;
  private readonly opened = new Promise<void>((resolve) => (this.open = resolve));

  constructor(private readonly held: string, private readonly until: string) {
    super();
  }

  override async mkdir(path: string, opts?: { parents?: boolean; mode?: number }): Promise<void> {
    this.calls.push(`mkdir ${path}`);
    if (path === this.until) this.open();
    if (path === this.held) await this.opened;
    return super.mkdir(path, opts);
  }

  override async writeFile(path: string, data: string | Buffer, opts?: WriteOptions): Promise<void> {
    this.calls.push(`write ${path}`);
    return super.writeFile(path, data, opts);
  }
}

function oneInvocation(name: string, parts: PartInvocation[]): StateRun {
  return {
    version: 1, target: { name: 't', executor: 'local', state_dir: join(scratch, `state-${name}`) }, vars: {}, facts: {}, os: {},
    invocations: [{ index: 0, state: 's', params: {}, lazy: false, defer: false, via: 'test', includes: [], parts }],
  };
}

test('a node waiting on its requisite lets the free nodes after it start; what lives in a folder a waiting node makes still waits for it', { timeout: 60_000 }, async () => {
  const root = join(scratch, 'ahead');
  const present = { ensure: 'present' };
  const parts = [
    part(0, 'directory', root, present),
    part(1, 'directory', `${root}/z`, present),
    part(2, 'directory', `${root}/x`, present),
    // Waits for x; it makes a/b with mkdir -p.
    part(3, 'directory', `${root}/a/b/c`, present, [{ kind: 'require', ref: `directory:${root}/x` }]),
    // No requisite, but it lives in a/b, which the waiting node makes: it must not go before it.
    part(4, 'file', `${root}/a/b/f`, { ...present, content: 'f\n' }),
    // Free (z, its folder, is made): it starts while x's mkdir is held, and only that lets x's go on.
    part(5, 'directory', `${root}/z/y`, present),
  ];
  const run = oneInvocation('ahead', parts);
  const graph = buildGraph(run);
  const exec = new Gated(`${root}/x`, `${root}/z/y`);
  const results = await new Engine(run, graph, exec, { mode: 'apply' }).execute();

  assert.deepEqual(results.map((r) => [r.ref, r.status]), graph.order.map((id) => [graph.nodes.find((n) => n.id === id)!.ref, 'changed']), 'every node changed, reported in run order');
  const at = (call: string) => exec.calls.indexOf(call);
  assert.ok(at(`mkdir ${root}/z/y`) < at(`mkdir ${root}/a/b/c`), `z/y went ahead of the node waiting on x: ${exec.calls.join(', ')}`);
  assert.ok(at(`mkdir ${root}/a/b/c`) < at(`write ${root}/a/b/f`), `the file waited for the folder made above it: ${exec.calls.join(', ')}`);
  assert.equal(readFileSync(`${root}/a/b/f`, 'utf8'), 'f\n');
});

test('folders side by side in a folder a requisite made go out together; a failed one skips only what is in it', { timeout: 60_000 }, async () => {
  const root = join(scratch, 'siblings');
  const present = { ensure: 'present' };
  const parts = [
    part(0, 'directory', root, present),
    part(1, 'directory', `${root}/d1`, present),
    part(2, 'file', `${root}/d1/f`, { ...present, content: '1\n' }),
    part(3, 'directory', `${root}/d2`, present),
    part(4, 'file', `${root}/d2/f`, { ...present, content: '2\n' }),
  ];
  const run = oneInvocation('siblings', parts);
  const graph = buildGraph(run);
  // d1's mkdir -p may make nothing above it (the run made its folder first): d2's goes out beside it.
  const exec = new Gated(`${root}/d1`, `${root}/d2`);
  const results = await new Engine(run, graph, exec, { mode: 'apply' }).execute();
  assert.deepEqual(results.map((r) => r.status), ['changed', 'changed', 'changed', 'changed', 'changed']);
  assert.deepEqual(results.map((r) => r.ref), graph.order.map((id) => graph.nodes.find((n) => n.id === id)!.ref));
  assert.equal(readFileSync(`${root}/d2/f`, 'utf8'), '2\n');

  // d1 cannot be made (a file is in its way): its file is skipped naming it, d2 and its file go on.
  const blocked = join(scratch, 'siblings-blocked');
  mkdirSync(blocked, { recursive: true });
  writeFileSync(`${blocked}/d1`, 'in the way\n');
  const again = oneInvocation('siblings-blocked', parts.map((p) => ({ ...p, ref: p.ref.replace(root, blocked), attributes: { ...p.attributes, path: String(p.attributes.path).replace(root, blocked) } })));
  const second = await new Engine(again, buildGraph(again), new LocalExecutor(), { mode: 'apply' }).execute();
  assert.deepEqual(second.map((r) => `${r.status} ${r.ref.slice(r.ref.indexOf(':') + 1 + blocked.length) || '/'}${r.reason ? ` (${r.reason.replace(blocked, '')})` : ''}`), [
    'unchanged /', 'failed /d1', 'skipped /d1/f (dependency failed: directory:/d1)', 'changed /d2', 'changed /d2/f',
  ]);
});

/**
 * The local executor, each operation answered a seeded random number of turns late (microtasks,
 * now and then a turn of the event loop), before and after it acts: the nodes in flight finish
 * in ever other orders, and what the run reports and leaves must not depend on it. (A wait that
 * passed over a node finished meanwhile, InFlight.any, only delays such a run; the gated case
 * above is the one it hung.)
 */
class Jittery extends LocalExecutor {
  constructor(private seed: number) {
    super();
  }

  private async jitter(): Promise<void> {
    this.seed = (this.seed * 1103515245 + 12345) % 2147483648;
    const turns = this.seed % 8;
    for (let i = 0; i < turns; i++) await null;
    if (turns === 7) await new Promise((r) => setImmediate(r));
  }

  private async late<T>(act: () => Promise<T>): Promise<T> {
    await this.jitter();
    const result = await act();
    await this.jitter();
    return result;
  }

  override stat(path: string) { return this.late(() => super.stat(path)); }
  override readFile(path: string) { return this.late(() => super.readFile(path)); }
  override readLink(path: string) { return this.late(() => super.readLink(path)); }
  override sha256(path: string) { return this.late(() => super.sha256(path)); }
  override holds(path: string, bytes: Buffer) { return this.late(() => super.holds(path, bytes)); }
  override writeFile(path: string, data: string | Buffer, opts?: WriteOptions) { return this.late(() => super.writeFile(path, data, opts)); }
  override mkdir(path: string, opts?: { parents?: boolean; mode?: number }) { return this.late(() => super.mkdir(path, opts)); }
  override symlink(target: string, path: string) { return this.late(() => super.symlink(target, path)); }
  override remove(path: string) { return this.late(() => super.remove(path)); }
  override run(argv: string[], opts?: RunOptions) { return this.late(() => super.run(argv, opts)); }
}

test('whenever each operation is answered (40 seeded schedules), a run ends with the results and the tree of an unhurried one', { timeout: 120_000 }, async () => {
  const partsUnder = (root: string): PartInvocation[] => {
    const parts: PartInvocation[] = [];
    const add = (type: string, path: string, attributes: Record<string, unknown> = {}, requisites: PartInvocation['requisites'] = []) =>
      parts.push(part(parts.length, type, path, type === 'exec' ? attributes : { ensure: 'present', ...attributes }, requisites));
    add('directory', root);
    for (let d = 1; d <= 5; d++) {
      add('directory', `${root}/d${d}`);
      for (let f = 1; f <= 4; f++) add('file', `${root}/d${d}/f${f}`, { content: `${d}.${f}\n` });
      // Nested folders made with their parents, a file waiting on another folder, lines of one file.
      add('directory', `${root}/d${d}/a/b`);
      add('file', `${root}/d${d}/a/b/f`, { content: 'deep\n' }, [{ kind: 'require', ref: `directory:${root}/d${d % 5 + 1}` }]);
      add('line', `${root}/d${d}/conf`, { text: 'one' });
      add('line', `${root}/d${d}/conf`, { text: 'two' });
      add('symlink', `${root}/d${d}/link`, { target: `${root}/d${d}/f1` });
    }
    add('exec', `touch ${root}/done`, { creates: `${root}/done` });
    add('file', `${root}/missing/f`, { content: 'x' });
    add('file', `${root}/after`, { content: 'after\n' }, [{ kind: 'require', ref: `file:${root}/missing/f` }]);
    return parts;
  };
  const runUnder = async (root: string, exec: LocalExecutor) => {
    const run = oneInvocation(root.slice(scratch.length + 1).replaceAll('/', '-'), partsUnder(root));
    let hung: NodeJS.Timeout | undefined;
    const results = await Promise.race([
      new Engine(run, buildGraph(run), exec, { mode: 'apply' }).execute(),
      new Promise<never>((_, reject) => (hung = setTimeout(() => reject(new Error(`the run under ${root} never ended`)), 60_000))),
    ]).finally(() => clearTimeout(hung));
    return results.map((r) => `${r.status} ${r.ref.split(root).join('ROOT')}`);
  };
  const tree = (root: string): string[] => {
    const out: string[] = [];
    const walk = (dir: string, rel: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        const path = join(dir, e.name);
        if (e.isDirectory()) {
          out.push(`${rel}${e.name}/`);
          walk(path, `${rel}${e.name}/`);
        } else if (e.isSymbolicLink()) out.push(`${rel}${e.name} -> ${readlinkSync(path).split(dir).join('.')}`);
        else out.push(`${rel}${e.name}: ${readFileSync(path, 'utf8')}`);
      }
    };
    walk(root, '');
    return out;
  };
  const reference = await runUnder(join(scratch, 'unhurried'), new LocalExecutor());
  assert.ok(reference.includes('failed file:ROOT/missing/f') && reference.includes('skipped file:ROOT/after'), reference.join('\n'));
  for (let seed = 1; seed <= 40; seed++) {
    const root = join(scratch, `jitter-${seed}`);
    assert.deepEqual(await runUnder(root, new Jittery(seed)), reference, `seed ${seed}`);
    assert.deepEqual(tree(root), tree(join(scratch, 'unhurried')), `seed ${seed}: the tree`);
  }
});
