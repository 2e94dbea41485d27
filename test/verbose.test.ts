/**
 * `-v`/`-vv`/`--log`: the commands run on a target, their output, providers' log lines and
 * per-node timings, with sensitive values masked (DESIGN §5.13, §12).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { z } from 'zod';
import type { StateRun } from '../src/catalog/staterun.ts';
import { Engine, sensitiveMask, type CommandEvent, type Registry } from '../src/engine/engine.ts';
import { LocalExecutor } from '../src/executors/local.ts';
import { buildGraph } from '../src/graph/build.ts';
import { defineType, sensitive, update } from '../src/resources/define.ts';
import type { Provider } from '../src/resources/type.ts';

const SECRET = 'hunter2-s3cr3t';

const secretType = defineType({
  name: 'secret', key: 'name', description: 'test type with a sensitive attribute',
  schema: z.strictObject({ name: z.string(), password: update(sensitive(z.string())) }),
  stateful: false,
});

const provider: Provider = {
  type: 'secret', name: 'shell', suitable: () => true,
  async read(ctx, desired) {
    const r = await ctx.exec.run(['sh', '-c', `echo "current ${String(desired.password)}"; echo oops >&2; exit 3`]);
    return { name: desired.name, password: r.code === 0 ? desired.password : 'old' };
  },
  async apply(ctx, _action, desired) {
    await ctx.exec.run(['printf', '%s\\n', String(desired.password)]);
    ctx.log(`password set to ${String(desired.password)}`);
    return undefined;
  },
};

function runOf(): StateRun {
  return {
    version: 1, target: { name: 't', executor: 'local', state_dir: join(mkdtempSync(join(tmpdir(), 'cairn-verbose-')), 'state') },
    vars: {}, facts: {}, os: {},
    invocations: [{
      index: 0, state: 's', params: {}, lazy: false, defer: false, via: 'test', includes: [],
      parts: [{ index: 0, type: 'secret', ref: 'secret:db', attributes: { name: 'db', password: SECRET }, requisites: [], meta: { noop: false, allow_reload: true, allow_rebuild: true, tags: [] } }],
    }],
  };
}

test('verbose: commands, their output and log lines show a sensitive attribute as (sensitive)', async () => {
  const registry: Registry = { type: (n) => (n === 'secret' ? secretType : undefined), provider: () => provider };
  const commands: CommandEvent[] = [];
  const logs: string[] = [];
  const started: string[] = [];
  const run = runOf();
  const results = await new Engine(run, buildGraph(run), new LocalExecutor(), {
    mode: 'apply', registry,
    onCommand: (c) => commands.push(c),
    onLog: (ref, line) => logs.push(`${ref}: ${line}`),
    onStart: (ref) => started.push(ref),
  }).execute();
  assert.equal(results[0]?.status, 'changed');
  assert.deepEqual(started, ['secret:db']);
  assert.equal(commands.length, 2);
  assert.deepEqual(commands[0]?.argv, ['sh', '-c', 'echo "current (sensitive)"; echo oops >&2; exit 3']);
  assert.equal(commands[0]?.code, 3);
  assert.equal(commands[0]?.stdout, 'current (sensitive)\n');
  assert.equal(commands[0]?.stderr, 'oops\n');
  assert.deepEqual(commands[1]?.argv, ['printf', '%s\\n', '(sensitive)']);
  assert.equal(commands[1]?.code, 0);
  assert.equal(commands[1]?.stdout, '(sensitive)\n');
  assert.deepEqual(logs, ['secret:db: password set to (sensitive)']);
  assert.ok(!JSON.stringify({ commands, logs }).includes(SECRET));
});

test('verbose: without onCommand the executor is the one given and log lines are as written', async () => {
  const registry: Registry = { type: (n) => (n === 'secret' ? secretType : undefined), provider: () => provider };
  const logs: string[] = [];
  const run = runOf();
  await new Engine(run, buildGraph(run), new LocalExecutor(), { mode: 'apply', registry, onLog: (_ref, line) => logs.push(line) }).execute();
  assert.deepEqual(logs, [`password set to ${SECRET}`]);
});

test('verbose: the mask hides a longer value before a shorter one inside it', () => {
  const mask = sensitiveMask(['ab', 'abcd', '']);
  assert.equal(mask('x abcd y ab z'), 'x (sensitive) y (sensitive) z');
});
