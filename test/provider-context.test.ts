/**
 * What the engine gives providers (ProviderContext): batched readings shared by a type's nodes
 * and forgotten after every change, the peers a batch reads, the OS tables, and an apply that
 * says it already did what a pending notification asks.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { z } from 'zod';
import type { PartInvocation, StateRun } from '../src/catalog/staterun.ts';
import { Engine, type Registry } from '../src/engine/engine.ts';
import { LocalExecutor } from '../src/executors/local.ts';
import { buildGraph } from '../src/graph/build.ts';
import { defineType, update } from '../src/resources/define.ts';
import { ApplyError, type Provider } from '../src/resources/type.ts';
import { LazyAbort } from '../src/lib/run-signal.ts';

const pkgType = defineType({
  name: 'pkg', key: 'name', description: 'test type',
  schema: z.strictObject({ name: z.string(), ensure: update(z.enum(['present', 'absent']).default('present')), running: update(z.boolean().optional()) }),
  stateful: false, refresh: 'restart',
});

function world(installed: string[], running: string[] = []) {
  const state = new Set(installed);
  const up = new Set(running);
  const log: string[] = [];
  const seen: { os?: unknown; peers?: unknown } = {};
  const provider: Provider = {
    type: 'pkg', name: 'memory', suitable: () => true,
    async read(ctx, desired) {
      seen.os = ctx.os;
      seen.peers = ctx.peers().map((p) => p.name);
      const all = await ctx.batch('all', async () => {
        log.push(`query ${ctx.peers().map((p) => String(p.name)).join(' ')}`);
        return new Set(state);
      });
      return all.has(String(desired.name)) ? { name: desired.name, ensure: 'present', running: up.has(String(desired.name)) } : undefined;
    },
    async apply(_ctx, action, desired, current) {
      log.push(`${action} ${String(desired.name)}`);
      state.add(String(desired.name));
      if (desired.running !== true) return undefined;
      up.add(String(desired.name));
      // Started from stopped, it reads its new configuration: no restart needed right after.
      return current?.running === false ? { refreshed: true } : undefined;
    },
    async refresh(_ctx, desired) {
      log.push(`restart ${String(desired.name)}`);
    },
  };
  const registry: Registry = { type: (n) => (n === 'pkg' ? pkgType : undefined), provider: () => provider };
  return { log, seen, registry };
}

function part(index: number, name: string, extra: Record<string, unknown> = {}): PartInvocation {
  return { index, type: 'pkg', ref: `pkg:${name}`, attributes: { name, ensure: 'present', ...extra }, requisites: [], meta: { noop: false, allow_reload: true, allow_rebuild: true, tags: [] } };
}

function runOf(parts: PartInvocation[]): StateRun {
  return {
    version: 1, target: { name: 't', executor: 'local', state_dir: join(mkdtempSync(join(tmpdir(), 'cairn-pc-')), 'state') },
    vars: {}, facts: {}, os: { package_manager: 'memory' },
    invocations: [{ index: 0, state: 's', params: {}, lazy: false, defer: false, via: 'test', includes: [], parts }],
  };
}

async function execute(run: StateRun, registry: Registry, mode: 'plan' | 'apply') {
  return new Engine(run, buildGraph(run), new LocalExecutor(), { mode, registry }).execute();
}

test('one batched reading serves every node of a type until something changes', async () => {
  const run = runOf([part(0, 'a'), part(1, 'b'), part(2, 'c')]);
  const inSync = world(['a', 'b', 'c']);
  assert.deepEqual((await execute(run, inSync.registry, 'apply')).map((r) => r.status), ['unchanged', 'unchanged', 'unchanged']);
  assert.deepEqual(inSync.log, ['query a b c'], 'a no-op run reads once');
  assert.deepEqual(inSync.seen.peers, ['a', 'b', 'c']);
  assert.deepEqual(inSync.seen.os, { package_manager: 'memory' });

  const fresh = world(['c']);
  await execute(run, fresh.registry, 'apply');
  // After each change the reading is taken again: what the apply did is never read stale.
  assert.deepEqual(fresh.log, ['query a b c', 'create a', 'query a b c', 'create b', 'query a b c']);

  const planned = world([]);
  await execute(run, planned.registry, 'plan');
  assert.deepEqual(planned.log, ['query a b c'], 'a plan changes nothing, so it reads once');
});

test('a notified node whose change already did what the notification asks is not refreshed again', async () => {
  const run = runOf([part(0, 'cfg'), part(1, 'svc', { running: true }), part(2, 'other', { running: true })]);
  for (const target of ['pkg:svc', 'pkg:other']) run.invocations[0]!.parts[0]!.requisites.push({ kind: 'notify', ref: target });
  // svc is stopped, so starting it reads the new configuration; other runs already, so the
  // notification restarts it.
  const w = world(['svc', 'other'], ['other']);
  const results = await execute(run, w.registry, 'apply');
  assert.deepEqual(results.map((r) => `${r.status} ${r.ref}${r.reason ? ` [${r.reason}]` : ''}`),
    ['changed pkg:cfg', 'changed pkg:svc', 'changed pkg:other [notified by pkg:cfg]']);
  assert.deepEqual(w.log.filter((l) => !l.startsWith('query')), ['create cfg', 'update svc', 'restart other'], 'no restart right after the start');
});

test("a provider's log lines and progress reach the run with the node they came from, and ctx.signal is the run's", async () => {
  const run = runOf([part(0, 'a'), part(1, 'b')]);
  const w = world([]);
  const controller = new AbortController();
  const seenSignals: AbortSignal[] = [];
  const base = w.registry.provider('pkg', {}, {});
  const talking: Provider = {
    ...base,
    async apply(ctx, action, desired, current) {
      seenSignals.push(ctx.signal);
      ctx.log(`installing ${String(desired.name)}`);
      ctx.progress({ done: 1, total: 2, step: 'unpacking' });
      return base.apply(ctx, action, desired, current);
    },
  };
  const logs: string[] = [];
  const progress: string[] = [];
  const results = await new Engine(run, buildGraph(run), new LocalExecutor(), {
    mode: 'apply', registry: { type: w.registry.type, provider: () => talking }, signal: controller.signal,
    onLog: (ref, message) => logs.push(`${ref}: ${message}`),
    onProgress: (ref, u) => progress.push(`${ref}: ${u.done}/${u.total} ${u.step}`),
  }).execute();
  assert.deepEqual(results.map((r) => r.status), ['changed', 'changed']);
  assert.deepEqual(logs, ['pkg:a: installing a', 'pkg:b: installing b']);
  assert.deepEqual(progress, ['pkg:a: 1/2 unpacking', 'pkg:b: 1/2 unpacking']);
  assert.ok(seenSignals.every((s) => s === controller.signal));
});

test('a cancelled run starts no node after the cancel: they are skipped as cancelled', async () => {
  const run = runOf([part(0, 'a'), part(1, 'b'), part(2, 'c')]);
  const w = world([]);
  const controller = new AbortController();
  const base = w.registry.provider('pkg', {}, {});
  const cancelling: Provider = {
    ...base,
    async apply(ctx, action, desired, current) {
      const outcome = await base.apply(ctx, action, desired, current);
      if (desired.name === 'a') controller.abort();
      return outcome;
    },
  };
  const results = await new Engine(run, buildGraph(run), new LocalExecutor(), {
    mode: 'apply', registry: { type: w.registry.type, provider: () => cancelling }, signal: controller.signal,
  }).execute();
  assert.deepEqual(results.map((r) => [r.ref, r.status, r.reason]), [
    ['pkg:a', 'changed', undefined], ['pkg:b', 'skipped', 'run cancelled'], ['pkg:c', 'skipped', 'run cancelled']]);
  assert.deepEqual(w.log.filter((l) => !l.startsWith('query')), ['create a']);
});

test("a provider's ApplyError fails its node and the run goes on; any other error (a bug) stops the run with that error", async () => {
  const run = runOf([part(0, 'a'), part(1, 'b')]);
  const w = world([]);
  const base = w.registry.provider('pkg', {}, {});
  const refusing: Provider = {
    ...base,
    async apply(ctx, action, desired, current) {
      if (desired.name === 'a') throw new ApplyError('the mirror said 404');
      return base.apply(ctx, action, desired, current);
    },
  };
  const results = await new Engine(run, buildGraph(run), new LocalExecutor(), { mode: 'apply', registry: { type: w.registry.type, provider: () => refusing } }).execute();
  assert.deepEqual(results.map((r) => [r.status, r.error]), [['failed', 'the mirror said 404'], ['changed', undefined]]);

  const buggy: Provider = {
    ...base,
    async read(ctx, desired) {
      if (desired.name === 'b') return (undefined as unknown as { x: () => undefined }).x();
      return base.read(ctx, desired);
    },
  };
  const engine = new Engine(run, buildGraph(run), new LocalExecutor(), { mode: 'plan', registry: { type: w.registry.type, provider: () => buggy } });
  await assert.rejects(engine.execute(), TypeError);
  assert.deepEqual(engine.results.map((r) => r.ref), ['pkg:a'], 'the bug is no failed node');
});

test('a provider with the rebuild trait replaces in one step; without it the engine destroys, then creates', async () => {
  const { defineType: define, rebuild } = await import('../src/resources/define.ts');
  const boxType = define({
    name: 'box', key: 'name', description: 'test type', stateful: false,
    schema: z.strictObject({ name: z.string(), image: rebuild(z.string()) }),
  });
  const boxRun = (image: string): StateRun => ({
    ...runOf([]),
    invocations: [{ index: 0, state: 's', params: {}, lazy: false, defer: false, via: 'test', includes: [], parts: [
      { index: 0, type: 'box', ref: 'box:b', attributes: { name: 'b', image }, requisites: [], meta: { noop: false, allow_reload: true, allow_rebuild: true, tags: [] } }] }],
  });
  for (const swaps of [true, false]) {
    const log: string[] = [];
    let image = 'old';
    const provider: Provider = {
      type: 'box', name: 'memory', suitable: () => true,
      read: async (_ctx, desired) => ({ name: desired.name, image }),
      async apply(_ctx, action, desired) {
        log.push(action);
        image = action === 'destroy' ? '' : String(desired.image);
      },
      ...(swaps ? { async rebuild(_ctx: unknown, desired: Record<string, unknown>) { log.push('rebuild'); image = String(desired.image); } } : {}),
    };
    const [r] = await new Engine(boxRun('new'), buildGraph(boxRun('new')), new LocalExecutor(), {
      mode: 'apply', registry: { type: (n) => (n === 'box' ? boxType : undefined), provider: () => provider },
    }).execute();
    assert.deepEqual([r!.status, r!.action, r!.changes], ['changed', 'rebuild', ['image']]);
    assert.deepEqual(log, swaps ? ['rebuild'] : ['destroy', 'create']);
    assert.equal(image, 'new');
  }
});

test('a notification is written before its notifier changes anything: a run that dies right after the change still has the handler run by the next one', async () => {
  const run = runOf([part(0, 'cfg'), part(1, 'svc', { running: true })]);
  run.invocations[0]!.parts[0]!.requisites.push({ kind: 'notify', ref: 'pkg:svc' });
  const w = world(['svc'], ['svc']);
  const base = w.registry.provider('pkg', {}, {});
  const dying: Provider = {
    ...base,
    async apply(ctx, action, desired, current) {
      const outcome = await base.apply(ctx, action, desired, current);
      // The change is made; the process dies before the engine hears of it.
      if (desired.name === 'cfg') throw new Error('the process died here');
      return outcome;
    },
  };
  await assert.rejects(new Engine(run, buildGraph(run), new LocalExecutor(), { mode: 'apply', registry: { type: w.registry.type, provider: () => dying } }).execute(), /died here/);
  const pendingFile = JSON.parse(readFileSync(join(run.target.state_dir, 'pending.json'), 'utf8')) as { pending: { node: string; from: string }[] };
  assert.deepEqual(pendingFile.pending, [{ node: 'pkg:svc', from: 'pkg:cfg' }]);

  const results = await execute(run, w.registry, 'apply');
  assert.deepEqual(results.map((r) => `${r.status} ${r.ref}`), ['unchanged pkg:cfg', 'changed pkg:svc'], 'cfg is in sync now, yet svc is restarted');
  assert.deepEqual(w.log.filter((l) => !l.startsWith('query')), ['create cfg', 'restart svc']);
  const again = world(['cfg', 'svc'], ['svc']);
  await execute(run, again.registry, 'apply');
  assert.deepEqual(again.log.filter((l) => !l.startsWith('query')), [], 'delivered once');
});

test('a notification written ahead is taken back when its notifier fails or changes nothing', async () => {
  const run = runOf([part(0, 'cfg'), part(1, 'svc', { running: true })]);
  run.invocations[0]!.parts[0]!.requisites.push({ kind: 'notify', ref: 'pkg:svc' });
  const w = world(['svc'], ['svc']);
  const base = w.registry.provider('pkg', {}, {});
  const refusing: Provider = {
    ...base,
    async apply(ctx, action, desired, current) {
      if (desired.name === 'cfg') throw new ApplyError('no space left on device');
      return base.apply(ctx, action, desired, current);
    },
  };
  const results = await new Engine(run, buildGraph(run), new LocalExecutor(), { mode: 'apply', registry: { type: w.registry.type, provider: () => refusing } }).execute();
  assert.deepEqual(results.map((r) => r.status), ['failed', 'unchanged']);
  const pendingFile = JSON.parse(readFileSync(join(run.target.state_dir, 'pending.json'), 'utf8')) as { pending: unknown[] };
  assert.deepEqual(pendingFile.pending, []);
});

test('a run given a LazyAbort (the CLI\'s Ctrl-C) makes no AbortSignal unless a provider reads ctx.signal; a cancel skips the rest as with a signal', async () => {
  const run = runOf([part(0, 'a'), part(1, 'b'), part(2, 'c')]);
  const w = world(['a', 'b', 'c']);
  const quiet = new LazyAbort();
  const inSync = await new Engine(run, buildGraph(run), new LocalExecutor(), { mode: 'apply', registry: w.registry, signal: quiet }).execute();
  assert.deepEqual(inSync.map((r) => r.status), ['unchanged', 'unchanged', 'unchanged']);
  assert.equal((quiet as unknown as { controller?: AbortController }).controller, undefined, 'no AbortController made');

  const fresh = world([]);
  const cancel = new LazyAbort();
  const seenSignals: AbortSignal[] = [];
  const base = fresh.registry.provider('pkg', {}, {});
  const cancelling: Provider = {
    ...base,
    async apply(ctx, action, desired, current) {
      seenSignals.push(ctx.signal);
      const outcome = await base.apply(ctx, action, desired, current);
      if (desired.name === 'a') cancel.abort();
      return outcome;
    },
  };
  const results = await new Engine(run, buildGraph(run), new LocalExecutor(), {
    mode: 'apply', registry: { type: fresh.registry.type, provider: () => cancelling }, signal: cancel,
  }).execute();
  assert.deepEqual(results.map((r) => [r.ref, r.status, r.reason]), [
    ['pkg:a', 'changed', undefined], ['pkg:b', 'skipped', 'run cancelled'], ['pkg:c', 'skipped', 'run cancelled']]);
  assert.equal(seenSignals.length, 1);
  assert.equal(seenSignals[0], cancel.signal, 'ctx.signal is the one the cancel aborted');
  assert.ok(seenSignals[0]!.aborted);
});
