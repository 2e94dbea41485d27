/** The compile cache: a converged site reuses its compiled run until any input changes. */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { CompileCache } from '../src/cli/compile-cache.ts';
import { COMPILED_CODEC, type Compiled } from '../src/graph/codec.ts';
import { compileTemplate } from '../src/site/template.ts';
import { runCli } from './helpers/cli.ts';
import { converge, scratchSite } from './helpers/converge.ts';

// The cache is keyed by the build (esbuild defines the id in dist/); run from source, there is
// none and the cache stays off. This file's runs, from the same source, get one to share.
(globalThis as { __CAIRN_BUILD__?: string }).__CAIRN_BUILD__ = `source-${process.pid}`;

const R = '<%= it.vars.root %>';

test('a second run reuses the compiled run; editing a site file or a --var recompiles', async () => {
  const s = scratchSite('s', { 'states/s.yaml': `s:\n  - file: ${R}/f\n    content: one\n` });
  await converge(s, 'apply', [], 0);
  const cacheDir = join(s.site, '.cairn/cache');
  const runs = () => readdirSync(cacheDir).filter((f) => f.startsWith('compiled-')).length;
  assert.equal(runs(), 1);
  await converge(s, 'apply', [], 0);
  assert.equal(runs(), 1, 'same inputs: the same entry');

  writeFileSync(join(s.site, 'states/s.yaml'), `s:\n  - file: ${R}/f\n    content: two\n`);
  const edited = await converge(s, 'apply', [], 0);
  assert.equal(edited.nodes[0]!.status, 'changed');
  assert.equal(readFileSync(join(s.root, 'f'), 'utf8'), 'two');

  const withVar = await converge(s, 'apply', ['--var', 'extra=1'], 0);
  assert.equal(withVar.nodes[0]!.status, 'unchanged');
  assert.equal(runs(), 3);
});

test('sites with TypeScript state files are never cached', async () => {
  const s = scratchSite('web', {
    'states/web.ts': "import { state, file } from 'cairn';\nexport const web = state((it) => [file(`${it.vars.root}/f`, { content: 'x' })]);\n",
  });
  await converge(s, 'apply', [], 0);
  assert.ok(!existsSync(join(s.site, '.cairn/cache')));
});

test('templates cannot reach the process, its environment or modules', () => {
  const render = (src: string) => compileTemplate(src, 'f').render({}).text;
  // The sandbox's own tests (template-sandbox.test.ts) try every known way out.
  assert.throws(() => render('<%= process.env.HOME %>'), /process is not defined/);
  assert.equal(render('<%= typeof require %> <%= typeof process %> <%= typeof setTimeout %> <%= Math.max(1, 2) %>'), 'undefined undefined undefined 2');
});

test('a compiled run read back from the cache is the one compiled: show --json is the same, key for key', async () => {
  const repo = resolve(import.meta.dirname, '..');
  const facts = join(repo, 'test/fixtures/facts-debian.json');
  const sites = [['examples/site', 'web1'], ['examples/site', 'local'], ['test/fixtures/sites/stages', 'h1']];
  for (const [site, target] of sites) {
    const show = (env: Record<string, string> = {}) => runCli(['show', '--json', '--site', site!, '-t', target!, '--facts', facts], { cwd: repo, env });
    const fresh = await show({ CAIRN_NO_CACHE: '1' });
    assert.equal(fresh.status, 0, fresh.stderr);
    await show();
    const cached = await show();
    assert.equal(cached.stdout, fresh.stdout, `${site} ${target}`);
  }
});

test('a cached compiled run is read without its invocations, which come from the same entry when asked; an entry replaced meanwhile is refused', async () => {
  const s = scratchSite('s', { 'states/s.yaml': `s:\n  - file: ${R}/f\n    content: one\n  - file: ${R}/g\n    content: two\n` });
  const repo = resolve(import.meta.dirname, '..');
  const facts = join(repo, 'test/fixtures/facts-debian.json');
  const fresh = compiled(await compiledFrom(s.site, facts, { CAIRN_NO_CACHE: '1' }));
  await compiledFrom(s.site, facts);
  const cache = new CompileCache({ site: s.site, vars: [] });
  const entries = () => readdirSync(join(s.site, '.cairn/cache')).filter((f) => f.startsWith('compiled-'));
  assert.equal(entries().length, 1);
  const entry = join(s.site, '.cairn/cache', entries()[0]!);
  // Its key is the one the CLI wrote: read it back through the cache, as a run does.
  const keyLine = readFileSync(entry, 'utf8').split('\n')[0]!;
  const key = JSON.parse(keyLine.slice(0, keyLine.indexOf('{"build"'))) as { extra: unknown };
  const read = () => cache.get('compiled', key.extra, () => Promise.reject(new Error('not from the cache')), COMPILED_CODEC);
  const whole = await read();
  assert.deepStrictEqual(whole.graph, fresh.graph);
  assert.deepStrictEqual(whole.run.invocations, fresh.run.invocations);

  const replaced = await read();
  const copy = `${entry}.copy`;
  copyFileSync(entry, copy);
  renameSync(copy, entry);
  assert.throws(() => replaced.run.invocations, /compile cache entry .* was replaced while in use/);
});

/** The compiled run the CLI's `show --json` prints (the graph and the run, parsed). */
async function compiledFrom(site: string, facts: string, env: Record<string, string> = {}): Promise<string> {
  const r = await runCli(['show', '--json', '--site', site, '-t', 't1', '--facts', facts], { env });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}
function compiled(json: string): Compiled {
  return JSON.parse(json) as Compiled;
}
