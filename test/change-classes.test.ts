/**
 * Change classes (DESIGN §5.8) and write-only inputs, on the engine itself. No core type has
 * reload/rebuild attributes (the system and lifecycle types will), so this test declares a small
 * "unit" type with an in-memory provider, the way a type folder would, and hands the engine a
 * registry holding it. The target state directory is real (a temp folder, local executor).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { z } from 'zod';
import type { StateRun } from '../src/catalog/staterun.ts';
import { diffNode } from '../src/engine/diff.ts';
import { Engine, type Registry } from '../src/engine/engine.ts';
import { LocalExecutor } from '../src/executors/local.ts';
import { buildGraph } from '../src/graph/build.ts';
import { defineType, rebuild, reload, update, writeOnly } from '../src/resources/define.ts';
import { ApplyError, type Provider } from '../src/resources/type.ts';

const unitType = defineType({
  name: 'unit',
  key: 'name',
  description: 'test type',
  schema: z.strictObject({
    name: z.string(), port: update(z.number().optional()), config: reload(z.string().optional()),
    image: rebuild(z.string().optional()), user_data: writeOnly(rebuild(z.string().optional())),
  }),
  stateful: true,
});

function world() {
  const units = new Map<string, Record<string, unknown>>();
  const log: string[] = [];
  let failNext = false;
  const provider: Provider = {
    type: 'unit', name: 'memory', suitable: () => true,
    async read(_ctx, desired) {
      const u = units.get(String(desired.name));
      return u ? { ...u, user_data: undefined } : undefined;
    },
    async apply(_ctx, action, desired) {
      if (failNext) {
        failNext = false;
        throw new ApplyError('boom');
      }
      log.push(action);
      if (action === 'destroy') units.delete(String(desired.name));
      else units.set(String(desired.name), { ...desired });
    },
    async refresh() {
      log.push('refresh');
    },
  };
  const registry: Registry = { type: (n) => (n === 'unit' ? unitType : undefined), provider: () => provider };
  return { units, log, registry, failOnce: () => { failNext = true; } };
}

function runOf(attributes: Record<string, unknown>, meta: { allow_reload?: boolean; allow_rebuild?: boolean } = {}, stateDir: string): StateRun {
  return {
    version: 1,
    target: { name: 't', executor: 'local', state_dir: stateDir },
    vars: {}, facts: {},  os: {},
    invocations: [{
      index: 0, state: 's', params: {}, lazy: false, defer: false, via: 'test', includes: [],
      parts: [{
        index: 0, type: 'unit', ref: 'unit:web', attributes: { name: 'web', ...attributes },
        meta: { noop: false, allow_reload: meta.allow_reload ?? true, allow_rebuild: meta.allow_rebuild ?? true, tags: [] },
        requisites: [],
      }],
    }],
  };
}

async function apply(w: ReturnType<typeof world>, stateDir: string, attributes: Record<string, unknown>, meta = {}) {
  const run = runOf(attributes, meta, stateDir);
  const engine = new Engine(run, buildGraph(run), new LocalExecutor(), { mode: 'apply', registry: w.registry });
  const [r] = await engine.execute();
  return r!;
}

test('diff: the strongest class among changed attributes decides the action', () => {
  const current = { name: 'web', port: 1, config: 'a', image: 'i1' };
  assert.deepEqual(diffNode(unitType, { name: 'web', port: 2, config: 'a' }, current), { action: 'update', changes: ['port'] });
  assert.deepEqual(diffNode(unitType, { name: 'web', port: 2, config: 'b' }, current), { action: 'reload', changes: ['port', 'config'] });
  assert.deepEqual(diffNode(unitType, { name: 'web', config: 'b', image: 'i2' }, current), { action: 'rebuild', changes: ['config', 'image'] });
  assert.deepEqual(diffNode(unitType, { name: 'web' }, current), { action: 'none', changes: [] });
  assert.deepEqual(diffNode(unitType, { name: 'web', ensure: 'absent' }, undefined), { action: 'none', changes: [] });
  assert.deepEqual(diffNode(unitType, { name: 'web' }, undefined), { action: 'create', changes: [] });
});

test('reload applies in place then refreshes; rebuild destroys then creates', async () => {
  const w = world();
  const dir = join(mkdtempSync(join(tmpdir(), 'cairn-cc-')), 'state');
  assert.equal((await apply(w, dir, { config: 'a', image: 'i1' })).action, 'create');
  const reload = await apply(w, dir, { config: 'b', image: 'i1' });
  assert.deepEqual([reload.status, reload.action, reload.changes], ['changed', 'reload', ['config']]);
  const rebuild = await apply(w, dir, { config: 'b', image: 'i2' });
  assert.deepEqual([rebuild.status, rebuild.action], ['changed', 'rebuild']);
  assert.deepEqual(w.log, ['create', 'reload', 'refresh', 'destroy', 'create']);
});

test('a reload whose apply restarted the thing itself ({ refreshed: true }) is not refreshed again', async () => {
  const w = world();
  const dir = join(mkdtempSync(join(tmpdir(), 'cairn-cc-')), 'state');
  await apply(w, dir, { config: 'a' });
  const provider = w.registry.provider('unit', {}, {});
  const plainApply = provider.apply.bind(provider);
  provider.apply = async (ctx, action, desired, current) => {
    await plainApply(ctx, action, desired, current);
    return action === 'reload' ? { refreshed: true } : undefined;
  };
  const reload = await apply(w, dir, { config: 'b' });
  assert.deepEqual([reload.status, reload.action], ['changed', 'reload']);
  assert.deepEqual(w.log, ['create', 'reload']);
});

test('a reload or rebuild that is not allowed fails, naming the attributes and the setting', async () => {
  const w = world();
  const dir = join(mkdtempSync(join(tmpdir(), 'cairn-cc-')), 'state');
  await apply(w, dir, { config: 'a', image: 'i1' });
  const noReload = await apply(w, dir, { config: 'b', image: 'i1' }, { allow_reload: false });
  assert.equal(noReload.status, 'failed');
  assert.match(noReload.error!, /changing config needs a restart; set allow_reload: true/);
  const noRebuild = await apply(w, dir, { config: 'a', image: 'i2' }, { allow_rebuild: false });
  assert.match(noRebuild.error!, /changing image means destroying and recreating unit:web; set allow_rebuild: true/);
  assert.deepEqual(w.log, ['create']);
});

test('write-only inputs are compared through a hash stored only after a successful apply', async () => {
  const w = world();
  const dir = join(mkdtempSync(join(tmpdir(), 'cairn-cc-')), 'state');
  await apply(w, dir, { user_data: 'v1' });
  assert.equal((await apply(w, dir, { user_data: 'v1' })).status, 'unchanged');
  w.failOnce();
  assert.equal((await apply(w, dir, { user_data: 'v2' })).status, 'failed');
  // The failed apply stored nothing: v2 is still a change.
  const retry = await apply(w, dir, { user_data: 'v2' });
  assert.deepEqual([retry.status, retry.action, retry.changes], ['changed', 'rebuild', ['user_data']]);
  assert.equal((await apply(w, dir, { user_data: 'v2' })).status, 'unchanged');
});

test("a type's change classes, write-only, sensitive and internal lists come from its attributes' own declarations", async () => {
  const { internal, sensitive } = await import('../src/resources/define.ts');
  const shared = z.enum(['present', 'absent']).default('present');
  const a = defineType({
    name: 'a', key: 'name', description: 'test type', stateful: true,
    schema: z.strictObject({
      name: z.string(), ensure: rebuild(shared), size: update(z.number().optional()).optional(),
      secret: sensitive(update(z.string().optional())), seed: writeOnly(rebuild(z.string().optional())),
      digest: internal(update(z.string().optional())), note: z.string().optional(),
    }),
  });
  const b = defineType({ name: 'b', key: 'name', description: 'test type', stateful: false, schema: z.strictObject({ name: z.string(), ensure: update(shared) }) });
  assert.deepEqual(a.changes, { ensure: 'rebuild', size: 'update', secret: 'update', seed: 'rebuild', digest: 'update' });
  assert.deepEqual([a.writeOnly, a.sensitive, a.internal], [['seed'], ['secret'], ['digest']]);
  assert.deepEqual(b.changes, { ensure: 'update' }, 'a shared schema takes each type its own class');
  assert.throws(() => defineType({ name: 'c', key: 'name', description: 'test type', stateful: false, schema: z.strictObject({ name: z.string(), x: writeOnly(z.string()) }) }),
    /write-only x needs a change class/);
});

test('a change to a sensitive attribute is named but shows no diff, even with --diff', async () => {
  const { sensitive } = await import('../src/resources/define.ts');
  const secretType = defineType({
    name: 'secret', key: 'name', description: 'test type', stateful: false,
    schema: z.strictObject({ name: z.string(), value: sensitive(update(z.string())) }),
  });
  const provider: Provider = {
    type: 'secret', name: 'memory', suitable: () => true,
    read: async (_ctx, desired) => ({ name: desired.name, value: 'old-password' }),
    apply: async () => undefined,
    diff: (desired, current) => `-${String(current?.value)}\n+${String(desired.value)}\n`,
  };
  const run: StateRun = {
    version: 1, target: { name: 't', executor: 'local', state_dir: mkdtempSync(join(tmpdir(), 'cairn-state-')) }, vars: {}, facts: {}, os: {},
    invocations: [{ index: 0, state: 's', params: {}, lazy: false, defer: false, via: 'test', includes: [], parts: [
      { index: 0, type: 'secret', ref: 'secret:db', attributes: { name: 'db', value: 'new-password' }, requisites: [], meta: { noop: false, allow_reload: true, allow_rebuild: true, tags: [] } }] }],
  };
  const [r] = await new Engine(run, buildGraph(run), new LocalExecutor(), {
    mode: 'plan', diff: true, registry: { type: (n) => (n === 'secret' ? secretType : undefined), provider: () => provider },
  }).execute();
  assert.deepEqual([r!.status, r!.changes, r!.diff], ['would-change', ['value'], '(sensitive)']);
  assert.doesNotMatch(JSON.stringify(r), /password/);
});
