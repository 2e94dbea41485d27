/**
 * What the engine gives providers (ProviderContext): batched readings shared by a type's nodes
 * and forgotten after every change, the peers a batch reads, the OS tables, and an apply that
 * says it already did what a pending notification asks.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { z } from 'zod';
import type { PartInvocation, StateRun } from '../src/catalog/staterun.ts';
import { Engine, type Registry } from '../src/engine/engine.ts';
import { LocalExecutor } from '../src/executors/local.ts';
import { buildGraph } from '../src/graph/build.ts';
import { defineType, type Provider } from '../src/resources/type.ts';

const pkgType = defineType({
  name: 'pkg', key: 'name', description: 'test type',
  schema: z.strictObject({ name: z.string(), ensure: z.enum(['present', 'absent']).default('present'), running: z.boolean().optional() }),
  changes: { ensure: 'update', running: 'update' }, stateful: false, refresh: 'restart',
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

test('providers get the run\'s abort signal as ctx.signal', async () => {
  const run = runOf([part(0, 'a')]);
  const w = world(['a']);
  const signals: (AbortSignal | undefined)[] = [];
  const provider = w.registry.provider('pkg', {}, {}) as Provider;
  const registry: Registry = { ...w.registry, provider: () => ({ ...provider, read: (ctx, desired) => (signals.push(ctx.signal), provider.read(ctx, desired)) }) };
  const controller = new AbortController();
  await new Engine(run, buildGraph(run), new LocalExecutor(), { mode: 'plan', registry, signal: controller.signal }).execute();
  await new Engine(run, buildGraph(run), new LocalExecutor(), { mode: 'plan', registry }).execute();
  assert.deepEqual(signals, [controller.signal, undefined]);
});
