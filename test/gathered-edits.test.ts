/**
 * Edits of one file gathered (FileEdits; engine.ts, runEdits): `line`s that follow one another in
 * a run and edit one file cost one read and one write of it, each still reporting what it would
 * applied alone in turn (engine.suite.ts compares the statuses and the file with lines applied
 * one at a time). An engine run on real files, through the local executor counting what it is
 * asked.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { PartInvocation, StateRun } from '../src/catalog/staterun.ts';
import { Engine } from '../src/engine/engine.ts';
import { LocalExecutor } from '../src/executors/local.ts';
import { TargetError, type WriteOptions } from '../src/executors/types.ts';
import { buildGraph } from '../src/graph/build.ts';
import { tempDir } from './helpers/cli.ts';

/** The local executor, counting the reads and writes of each file. */
class Counting extends LocalExecutor {
  readonly reads = new Map<string, number>();
  readonly writes = new Map<string, number>();

  override async readFile(path: string): Promise<Buffer | undefined> {
    this.reads.set(path, (this.reads.get(path) ?? 0) + 1);
    return super.readFile(path);
  }

  override async writeFile(path: string, data: string | Buffer, opts?: WriteOptions): Promise<void> {
    this.writes.set(path, (this.writes.get(path) ?? 0) + 1);
    return super.writeFile(path, data, opts);
  }
}

/**
 * Refuses every write to one path, as a target whose disk is full would. No real refusal is at
 * hand: the suite runs as root, whom permissions do not stop.
 */
class Refusing extends Counting {
  constructor(private readonly refused: string) {
    super();
  }

  override async writeFile(path: string, data: string | Buffer, opts?: WriteOptions): Promise<void> {
    if (path !== this.refused) return super.writeFile(path, data, opts);
    this.writes.set(path, (this.writes.get(path) ?? 0) + 1);
    throw new TargetError(`ENOSPC: no space left on device, write '${path}'`, 'ENOSPC');
  }
}

function part(index: number, type: string, key: string, attributes: Record<string, unknown>, extra: Partial<PartInvocation> = {}): PartInvocation {
  const ref = type === 'line' ? `line:${key}#${String(attributes.match ?? attributes.text)}` : `${type}:${key}`;
  return {
    index, type, ref, attributes: { [type === 'exec' ? 'command' : 'path']: key, ensure: 'present', ...attributes }, requisites: [],
    meta: { noop: false, allow_reload: true, allow_rebuild: true, tags: [] }, ...extra,
  };
}

function runOf(root: string, parts: PartInvocation[], more: StateRun['invocations'] = []): StateRun {
  return {
    version: 1, target: { name: 't', executor: 'local', state_dir: join(root, 'state') }, vars: {}, facts: {}, os: {},
    invocations: [{ index: 0, state: 's', params: {}, lazy: false, defer: false, via: 'test', includes: [], parts }, ...more],
  };
}

const statuses = (results: { status: string; ref: string }[], root: string) => results.map((r) => `${r.status} ${r.ref.split(root).join('')}`);

test('lines of one file that follow one another: one read and one write of it, each line reported in run order', async () => {
  const root = tempDir('cairn-gather-');
  const conf = join(root, 'conf');
  writeFileSync(conf, 'keep\nb = 0\n');
  const parts = [
    part(0, 'file', join(root, 'before'), { content: 'x\n' }),
    part(1, 'line', conf, { text: 'a = 1' }),
    part(2, 'line', conf, { match: '^b =', text: 'b = 2' }),
    part(3, 'line', conf, { text: 'keep' }),
    part(4, 'line', conf, { text: 'c = 3' }),
    part(5, 'file', join(root, 'after'), { content: 'y\n' }),
  ];
  const run = runOf(root, parts);
  const exec = new Counting();
  const reported: string[] = [];
  const results = await new Engine(run, buildGraph(run), exec, { mode: 'apply', onResult: (r) => reported.push(r.ref) }).execute();
  assert.deepEqual(statuses(results, root), ['changed file:/before', 'changed line:/conf#a = 1', 'changed line:/conf#^b =', 'unchanged line:/conf#keep', 'changed line:/conf#c = 3', 'changed file:/after']);
  assert.deepEqual(reported, results.map((r) => r.ref), 'reported in run order');
  assert.equal(readFileSync(conf, 'utf8'), 'keep\nb = 2\na = 1\nc = 3\n');
  assert.equal(exec.writes.get(conf), 1);
  assert.equal(exec.reads.get(conf), 1);

  const again = new Counting();
  const second = await new Engine(run, buildGraph(run), again, { mode: 'apply' }).execute();
  assert.deepEqual(second.map((r) => r.status), parts.map(() => 'unchanged'));
  assert.equal(again.writes.get(conf), undefined);
});

test('a write of the gathered text that fails fails every line that changed it, with its message; a line in sync stays unchanged', async () => {
  const root = tempDir('cairn-gather-');
  const conf = join(root, 'conf');
  writeFileSync(conf, 'b = 2\n');
  const parts = [
    part(0, 'line', conf, { text: 'a = 1' }),
    part(1, 'line', conf, { text: 'b = 2' }),
    part(2, 'line', conf, { text: 'c = 3' }),
  ];
  const run = runOf(root, parts);
  const exec = new Refusing(conf);
  const results = await new Engine(run, buildGraph(run), exec, { mode: 'apply' }).execute();
  assert.deepEqual(statuses(results, root), ['failed line:/conf#a = 1', 'unchanged line:/conf#b = 2', 'failed line:/conf#c = 3']);
  for (const r of [results[0]!, results[2]!]) assert.match(r.error!, /ENOSPC: no space left on device/);
  assert.equal(exec.writes.get(conf), 1, 'one write, refused');
  assert.equal(readFileSync(conf, 'utf8'), 'b = 2\n');
});

test('lines are applied one at a time where a run needs each apart: with --fail-fast, a line that notifies, lines between other parts, lines of two files', async () => {
  const root = tempDir('cairn-gather-');
  mkdirSync(join(root, 'd'));
  const [one, two] = [join(root, 'one'), join(root, 'two')];
  const lines = (n: number, path: string) => Array.from({ length: 3 }, (_, i) => part(n + i, 'line', path, { text: `l${i}` }));

  const failFast = runOf(root, lines(0, one));
  const fast = new Counting();
  await new Engine(failFast, buildGraph(failFast), fast, { mode: 'apply', failFast: true }).execute();
  assert.equal(fast.writes.get(one), 3, '--fail-fast: each line alone, so none after a failure starts');

  const notifying = runOf(join(root, 'n'), [
    part(0, 'line', two, { text: 'n0' }),
    part(1, 'line', two, { text: 'n1' }, { requisites: [{ kind: 'notify', ref: 'exec:true' }] }),
    part(2, 'line', two, { text: 'n2' }),
  ], [{ index: 1, state: 'h', params: {}, lazy: true, defer: false, via: 'test', includes: [], parts: [part(0, 'exec', 'true', {})] }]);
  const notifier = new Counting();
  const results = await new Engine(notifying, buildGraph(notifying), notifier, { mode: 'apply' }).execute();
  assert.deepEqual(results.map((r) => r.status), ['changed', 'changed', 'changed', 'changed']);
  assert.equal(notifier.writes.get(two), 3, 'the notifier is applied alone, after its notification is written ahead; the lines around it too');

  const mixed = runOf(join(root, 'm'), [
    part(0, 'line', one, { text: 'm0' }),
    part(1, 'directory', join(root, 'd'), {}),
    part(2, 'line', one, { text: 'm1' }),
    part(3, 'line', two, { text: 'm2' }),
  ]);
  const apart = new Counting();
  await new Engine(mixed, buildGraph(mixed), apart, { mode: 'apply' }).execute();
  assert.equal(apart.writes.get(one), 2);
  assert.equal(apart.writes.get(two), 1);
  assert.equal(readFileSync(one, 'utf8'), 'l0\nl1\nl2\nm0\nm1\n');
});
