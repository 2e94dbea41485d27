/**
 * What a node needs of its executor (DESIGN §7): a type's `needs`, and `attributeNeeds` for the
 * attributes a part sets, checked before any node runs. An executor that lacks one fails those
 * nodes, naming the part, its position and the executor, and runs no other node (nothing applied).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { z } from 'zod';
import type { StateRun } from '../src/catalog/staterun.ts';
import { Engine, type Registry } from '../src/engine/engine.ts';
import { LocalExecutor } from '../src/executors/local.ts';
import type { Executor, ExecutorCapability } from '../src/executors/types.ts';
import { buildGraph } from '../src/graph/build.ts';
import { defineType, update } from '../src/resources/define.ts';
import fileType from '../src/resources/file/type.ts';
import { selectProvider } from '../src/resources/providers.ts';
import { makeSite, runCli } from './helpers/cli.ts';
import type { Provider } from '../src/resources/type.ts';

const daemonType = defineType({
  name: 'daemon', key: 'name', description: 'test type: starting needs a running system, enabling does not', stateful: false,
  schema: z.strictObject({ name: z.string(), ensure: update(z.enum(['running', 'stopped']).optional()), enable: update(z.boolean().optional()) }),
  attributeNeeds: { ensure: ['running-system'] },
});

/** A local executor that says it offers only `capabilities` (as the chroot executor offers none). */
function offering(capabilities: readonly ExecutorCapability[]): Executor {
  const local = new LocalExecutor();
  return new Proxy(local, { get: (t, p) => (p === 'capabilities' ? capabilities : (Reflect.get(t, p, t) as unknown)) }) as Executor;
}

function setUp(dir: string) {
  const applied: string[] = [];
  const daemon: Provider = {
    type: 'daemon', name: 'test', suitable: () => true, read: async () => ({ name: 'd', ensure: 'stopped', enable: false }),
    apply: async (_ctx, _action, desired) => {
      applied.push(String(desired.name));
      return undefined;
    },
  };
  const registry: Registry = {
    type: (n) => (n === 'daemon' ? daemonType : n === 'file' ? fileType : undefined),
    provider: (n, facts, os, wanted) => (n === 'daemon' ? daemon : selectProvider(n, facts, os, wanted)),
  };
  const part = (index: number, type: string, ref: string, attributes: Record<string, unknown>, line: number) => ({
    index, type, ref, attributes, pos: { file: 'states/s.yaml', line, col: 5 },
    meta: { noop: false, allow_reload: false, allow_rebuild: false, tags: [] }, requisites: [],
  });
  const run: StateRun = {
    version: 1, target: { name: 'h', executor: 'chroot', state_dir: join(dir, 'state') }, vars: {}, facts: {}, os: {},
    invocations: [{
      index: 0, state: 's', params: {}, lazy: false, defer: false, via: 'test', includes: [],
      parts: [
        part(0, 'file', `file:${dir}/first`, { path: `${dir}/first`, content: 'x\n', ensure: 'present' }, 2),
        part(1, 'daemon', 'daemon:web', { name: 'web', enable: true }, 4),
        part(2, 'daemon', 'daemon:db', { name: 'db', ensure: 'running', enable: true }, 6),
      ],
    }],
  };
  return { run, registry, applied };
}

test('a part setting an attribute that needs a running system fails before any node runs; nothing is applied', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-needs-'));
  const { run, registry, applied } = setUp(dir);
  const results = await new Engine(run, buildGraph(run), offering([]), { mode: 'apply', registry }).execute();
  assert.deepEqual(results.map((r) => `${r.status} ${r.ref}`), [`skipped file:${dir}/first`, 'skipped daemon:web', 'failed daemon:db']);
  assert.equal(results[2]!.error, 'daemon:db (states/s.yaml:6:5): `ensure` of the daemon type needs a running system, which the local executor does not offer');
  assert.equal(results[0]!.reason, 'not run: daemon:db needs what the local executor does not offer (daemon:db)');
  assert.equal(existsSync(`${dir}/first`), false);
  assert.deepEqual(applied, []);
});

test('a part --skip-tags leaves out asks for nothing: the others run offline', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-needs-'));
  const { run, registry, applied } = setUp(dir);
  run.invocations[0]!.parts[2]!.meta.tags = ['live'];
  const results = await new Engine(run, buildGraph(run), offering([]), { mode: 'apply', registry, tags: { skip: ['live'] } }).execute();
  assert.deepEqual(results.map((r) => `${r.status} ${r.ref}`), [`changed file:${dir}/first`, 'changed daemon:web', 'skipped daemon:db']);
  assert.deepEqual(applied, ['web']);
});

test('the same parts run where a running system is offered; without `ensure` they run offline too', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-needs-'));
  const live = setUp(dir);
  const results = await new Engine(live.run, buildGraph(live.run), offering(['running-system']), { mode: 'apply', registry: live.registry }).execute();
  assert.deepEqual(results.map((r) => r.status), ['changed', 'changed', 'changed']);
  assert.deepEqual(live.applied, ['web', 'db']);

  const offline = setUp(mkdtempSync(join(tmpdir(), 'cairn-needs-')));
  offline.run.invocations[0]!.parts.pop();
  const rest = await new Engine(offline.run, buildGraph(offline.run), offering([]), { mode: 'apply', registry: offline.registry }).execute();
  assert.deepEqual(rest.map((r) => r.status), ['changed', 'changed']);
  assert.deepEqual(offline.applied, ['web']);
});

test('cairn apply: a chroot target without a root, or --root with several targets selected, is exit 2 and runs nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-needs-'));
  const state = { 'states/s.yaml': `s:\n  - file: ${dir}/never\n    content: "x"\n` };
  let r = await runCli(['apply', '--site', makeSite({ 'cairn.yaml': 'targets:\n  img:\n    executor: chroot\n    run: [s]\n', ...state })]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /target img: the chroot executor needs root: \(the root file system to converge\)/);

  const two = makeSite({ 'cairn.yaml': 'targets:\n  a: { run: [s] }\n  b: { run: [s] }\n', ...state });
  r = await runCli(['plan', '--site', two, '--root', dir]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--root converges one root, but 2 targets are selected \(a, b\)/);
  r = await runCli(['plan', '--site', two, '-t', 'nothing-*', '--root', dir]);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(existsSync(`${dir}/never`), false);
});
