/**
 * The one way to run a target (src/engine/run-target.ts) that the CLI, the store agent and a
 * master share, its exit-code rule, and the executor registry targets are opened through.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildCatalog } from '../src/catalog/catalog.ts';
import { compile } from '../src/catalog/compile.ts';
import { summarize, type NodeResult, type TargetReport } from '../src/engine/engine.ts';
import { runExitCode, runTarget } from '../src/engine/run-target.ts';
import type { StateStorage } from '../src/engine/target-state.ts';
import { executorNamed, openExecutor } from '../src/executors/registry.ts';
import { LocalExecutor } from '../src/executors/local.ts';
import { TargetError, UnreachableError } from '../src/executors/types.ts';
import { buildGraph } from '../src/graph/build.ts';
import type { Compiled } from '../src/graph/codec.ts';
import { Diagnostics, ExitCode } from '../src/lib/errors.ts';
import { loadSite } from '../src/site/load.ts';
import { makeSite, tempDir } from './helpers/cli.ts';

/** Target t1 of a site whose state `s` has `parts` (by default two files, a and b, under `root`). */
async function compiled(root: string, parts = `  - file: ${root}/a\n    content: one\n  - file: ${root}/b\n    content: two\n`): Promise<Compiled> {
  const site = makeSite({
    'cairn.yaml': `targets:\n  t1:\n    executor: local\n    state_dir: ${root}/state\n    run: [s]\n`,
    'states/s.yaml': `s:\n${parts}`,
  });
  const d = new Diagnostics();
  const catalog = buildCatalog(await loadSite(site, d), d);
  d.throwIfAny();
  const run = compile(catalog, catalog.targets.get('t1')!, { facts: { os_family: 'debian' }, cliVars: {} });
  return { run, graph: buildGraph(run) };
}

/** Counts its round trips, as a remote executor does. */
class CountingExecutor extends LocalExecutor {
  readonly roundTrips = 2;
}

test('runTarget plans and applies a compiled target, forwarding each node result and counting round trips', async () => {
  const root = tempDir('cairn-run-');
  const unit = await compiled(root);
  const seen: NodeResult[] = [];
  const plan = await runTarget(unit, new LocalExecutor(), { mode: 'plan', onResult: (r) => seen.push(r) });
  assert.equal(plan.name, 't1');
  assert.deepEqual(plan.counts, { changed: 2, unchanged: 0, failed: 0, skipped: 0 });
  assert.deepEqual(seen.map((r) => r.status), ['would-change', 'would-change']);
  assert.equal(plan.round_trips, undefined, 'an executor that does not count leaves it out');
  assert.ok(!existsSync(join(root, 'a')));

  const exec = new CountingExecutor();
  const apply = await runTarget(unit, exec, { mode: 'apply' });
  await exec.close();
  assert.equal(apply.status, 'ok');
  assert.equal(apply.counts.changed, 2);
  assert.equal(apply.round_trips, 2);
  assert.equal(readFileSync(join(root, 'b'), 'utf8'), 'two');
});

test('a run the target ends is reported unreachable with the nodes run so far, or thrown when asked; a bug always goes through', async () => {
  const root = tempDir('cairn-run-');
  const unit = await compiled(root);
  let reads = 0;
  const lost: StateStorage = {
    paths: () => [],
    read: async () => {
      reads++;
      throw new UnreachableError('t1', 'connection lost');
    },
    write: async () => undefined,
  };
  const report = await runTarget(unit, new LocalExecutor(), { mode: 'apply', stateStorage: lost });
  assert.equal(report.status, 'unreachable');
  assert.equal(report.error, 'connection lost');
  assert.ok(reads > 0);

  const broken: StateStorage = { ...lost, read: async () => { throw new TargetError('store down'); } };
  const other = await runTarget(unit, new LocalExecutor(), { mode: 'apply', stateStorage: broken });
  assert.equal(other.status, 'unreachable');
  assert.equal(other.error, 'store down');
  await assert.rejects(runTarget(unit, new LocalExecutor(), { mode: 'apply', stateStorage: broken, errors: 'throw' }), /store down/);

  const buggy: StateStorage = { ...lost, read: async () => { throw new TypeError('x is not a function'); } };
  await assert.rejects(runTarget(unit, new LocalExecutor(), { mode: 'apply', stateStorage: buggy }), TypeError);
});

test('the exit code: unreachable, then failed nodes, then pending changes when asked', () => {
  const report = (status: TargetReport['status'], changed = 0): TargetReport => ({ ...summarize('t', []), status, counts: { changed, unchanged: 0, failed: 0, skipped: 0 } });
  assert.equal(runExitCode('apply', [report('ok'), report('failed'), report('unreachable')]), ExitCode.unreachable);
  assert.equal(runExitCode('apply', [report('ok'), report('failed')]), ExitCode.nodesFailed);
  assert.equal(runExitCode('plan', [report('ok', 3)]), ExitCode.ok);
  assert.equal(runExitCode('plan', [report('ok', 3)], true), ExitCode.changesPending);
  assert.equal(runExitCode('apply', [report('ok', 3)], true), ExitCode.ok, 'only a plan has pending changes');
  assert.equal(runExitCode('plan', [report('failed', 3)], true), ExitCode.nodesFailed);
});

test('the executor registry opens local targets and says which executors this Cairn lacks', async () => {
  assert.ok(executorNamed('local'));
  assert.ok(executorNamed('ssh'));
  assert.ok(executorNamed('chroot'));
  for (const missing of ['agent', 'toString', 'constructor']) assert.equal(executorNamed(missing), undefined, missing);

  const options = { localFacts: () => ({ os_family: 'debian' }) };
  assert.deepEqual(await openExecutor('t1', { executor: 'agent' }, options),
    { unreachable: 'target t1 is run by its agent through a master (cairn plan, apply, run and facts reach it with --master); this command cannot' });
  // A chroot target without a root is the site's mistake (exit 2), not an unreachable target.
  await assert.rejects(openExecutor('t1', { executor: 'chroot' }, options), /target t1: the chroot executor needs root:/);
  const opened = await openExecutor('t1', { executor: 'local' }, options);
  assert.ok('exec' in opened);
  assert.deepEqual(opened.facts, { os_family: 'debian' });
  assert.equal(opened.exec.name, 'local');
  await opened.exec.close();

  const fixed = await openExecutor('t1', { executor: 'local' }, { ...options, fixedFacts: { os_family: 'freebsd' } });
  assert.ok('exec' in fixed);
  assert.deepEqual(fixed.facts, { os_family: 'freebsd' });
  await fixed.exec.close();
});

test('a long run lets the event loop turn as it goes (what its results feed can send them as they come): an immediate queued at its start runs before its last result', async () => {
  const root = tempDir('cairn-turns-');
  const unit = await compiled(root, Array.from({ length: 600 }, (_, i) => `  - file: ${root}/f${i}\n    content: "${i}"\n`).join(''));
  assert.equal((await runTarget(unit, new LocalExecutor(), { mode: 'apply' })).counts.changed, 600);
  // The converged run: each node a few stat calls, nothing that waits on its own.
  let turns = 0;
  let counting = true;
  const count = () => {
    turns++;
    if (counting) setImmediate(count);
  };
  setImmediate(count);
  const turnsAt: number[] = [];
  const noop = await runTarget(unit, new LocalExecutor(), { mode: 'apply', onResult: () => turnsAt.push(turns) });
  counting = false;
  assert.equal(noop.counts.unchanged, 600);
  assert.ok(turnsAt.at(-1)! > 0, 'the loop turned before the last result');
});
