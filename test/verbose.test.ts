/**
 * `-v`/`-vv`/`--log`: the commands run on a target, their output, providers' log lines and
 * per-node timings, with sensitive values masked (DESIGN §5.13, §12).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
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
import { CAIRN, makeSite, runCli, tempDir } from './helpers/cli.ts';

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

test('verbose: log lines are masked without onCommand too', async () => {
  const registry: Registry = { type: (n) => (n === 'secret' ? secretType : undefined), provider: () => provider };
  const logs: string[] = [];
  const run = runOf();
  await new Engine(run, buildGraph(run), new LocalExecutor(), { mode: 'apply', registry, onLog: (_ref, line) => logs.push(line) }).execute();
  assert.deepEqual(logs, ['password set to (sensitive)']);
});

test('verbose: the mask hides a longer value before a shorter one inside it', () => {
  const mask = sensitiveMask(['ab', 'abcd', ''])!;
  assert.equal(mask('x abcd y ab z'), 'x (sensitive) y (sensitive) z');
});

/** A local target whose run has a command with output, and a file. */
function commandSite() {
  const root = tempDir('cairn-verbose-root-');
  const site = makeSite({
    'cairn.yaml': `targets:\n  local:\n    executor: local\n    state_dir: ${root}/state\n    run: [s]\n`,
    'states/s.yaml': `s:\n  - exec: echo hello world\n    unless: test -f ${root}/never\n  - file: ${root}/f\n    content: "x\\n"\n`,
  });
  return { root, site };
}

test('cli: -v prints each command and its exit status, -vv its output and per-node timings; without either, none', async () => {
  const { site } = commandSite();
  const plain = await runCli(['apply', '--site', site]);
  assert.equal(plain.status, 0, plain.stderr);
  assert.doesNotMatch(plain.stdout, /\$ |hello world\n| ms /);

  const v = await runCli(['apply', '--site', site, '-v']);
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout, /^\$ \/bin\/sh -c 'test -f \S+\/never' → exit 1$/m);
  assert.match(v.stdout, /^\$ \/bin\/sh -c 'echo hello world' → exit 0$/m);
  assert.doesNotMatch(v.stdout, /out\| hello world| ms /);

  const vv = await runCli(['apply', '--site', site, '-vv']);
  assert.equal(vv.status, 0, vv.stderr);
  assert.match(vv.stdout, /^\$ \/bin\/sh -c 'echo hello world' → exit 0 in \d+\.\d ms\n {2}out\| hello world$/m);
  assert.match(vv.stdout, /^ +\d+\.\d ms exec:echo hello world$/m);
  assert.match(vv.stdout, /^ +\d+\.\d ms file:\S+\/f$/m);
});

test('cli: --log FILE gets the -vv stream whatever standard output shows; with --json the commands go to standard error', async () => {
  const { root, site } = commandSite();
  const log = join(root, 'run.log');
  const r = await runCli(['apply', '--site', site, '--json', '--log', log, '-v']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { targets: unknown[] }).targets.length, 1);
  assert.match(r.stderr, /^\$ \/bin\/sh -c 'echo hello world' → exit 0$/m);
  const text = readFileSync(log, 'utf8');
  assert.match(text, /^\$ \/bin\/sh -c 'echo hello world' → exit 0 in \d+\.\d ms\n {2}out\| hello world$/m);
  assert.match(text, /^changed {6}exec:echo hello world \(run\)$/m);
  assert.match(text, /^ +\d+\.\d ms exec:echo hello world$/m);
  assert.match(text, /^local: 2 changed, 0 unchanged, 0 failed, 0 skipped in /m);

  const unwritable = await runCli(['apply', '--site', site, '--log', join(root, 'no/such/dir/log')]);
  assert.equal(unwritable.status, 2);
  assert.match(unwritable.stderr, /--log .*no\/such\/dir\/log/);
});

/** The built command on a pseudo-terminal (util-linux `script`), as a person at a terminal sees it. */
function onTerminal(args: string[], env: Record<string, string | undefined>): string {
  const vars = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete vars[k];
  const r = spawnSync('script', ['-qfc', [process.execPath, CAIRN, ...args].join(' '), '/dev/null'], { encoding: 'utf8', env: vars });
  return r.stdout;
}

const hasScript = spawnSync('script', ['--version']).status === 0;

test('terminal: a status line at once, colour unless NO_COLOR, the running node on the live line', { skip: !hasScript && 'no script(1)' }, () => {
  const { site } = commandSite();
  const coloured = onTerminal(['apply', '--site', site], { NO_COLOR: undefined });
  assert.match(coloured, /connecting to 1 target…/);
  assert.match(coloured, /compiling…/);
  assert.match(coloured, /local: 1\/2 nodes, 1 changed, 0 failed — exec:echo hello world \(\d+\.\d s\)/);
  assert.ok(coloured.includes('\x1b[33mchanged     \x1b[0m exec:echo hello world (run)'), coloured);
  const plain = onTerminal(['apply', '--site', site], { NO_COLOR: '1' });
  assert.ok(plain.includes('changed      exec:echo hello world (run)'), plain);
  assert.ok(!['\x1b[33m', '\x1b[31m', '\x1b[2m'].some((c) => plain.includes(c)), plain);
});

test("verbose: a ref that carries a sensitive value (a node rendered from a secret) is masked in onStart, log lines and results", async () => {
  const registry: Registry = { type: (n) => (n === 'secret' ? secretType : undefined), provider: () => provider };
  const run = runOf();
  const part = run.invocations[0]!.parts[0]!;
  Object.assign(part, { ref: `secret:${SECRET}`, attributes: { name: SECRET, password: 'plain' }, meta: { ...part.meta, sensitive: ['name'] } });
  const started: string[] = [];
  const logs: string[] = [];
  const results = await new Engine(run, buildGraph(run), new LocalExecutor(), {
    mode: 'apply', registry, onStart: (ref) => started.push(ref), onLog: (ref) => logs.push(ref),
  }).execute();
  assert.deepEqual(started, ['secret:(sensitive)']);
  assert.deepEqual(logs, ['secret:(sensitive)']);
  assert.deepEqual(results.map((r) => [r.ref, r.status]), [['secret:(sensitive)', 'changed']]);
});
