/**
 * The incremental compile (catalog/compile.ts, `previous`/`records`): an invocation whose state
 * file, site files and every input its renders read are unchanged takes its parts from the last
 * compile's record. Changing one variable recompiles exactly the invocations that read it, and
 * after any edit the result is the same as a full compile's.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { buildCatalog } from '../src/catalog/catalog.ts';
import { compile, type InvocationRecords } from '../src/catalog/compile.ts';
import { buildGraph } from '../src/graph/build.ts';
import { Diagnostics } from '../src/lib/errors.ts';
import { loadSite } from '../src/site/load.ts';
import { cairnBin, makeSite } from './helpers/cli.ts';
import { mulberry32 } from './helpers/random.ts';

interface Inputs {
  facts: Record<string, unknown>;
  cliVars: Record<string, unknown>;
}

/** Loads the site as it is now and compiles target t1; with `previous`, incrementally. */
async function compileSite(dir: string, inputs: Inputs, previous?: InvocationRecords) {
  const d = new Diagnostics();
  const catalog = buildCatalog(await loadSite(dir, d), d);
  d.throwIfAny();
  const records: InvocationRecords = {};
  const stats = { compiled: 0, reused: 0 };
  const run = compile(catalog, catalog.targets.get('t1')!, { ...inputs, records, stats, ...(previous ? { previous } : {}) });
  return { run, graph: buildGraph(run), records, stats };
}

function write(dir: string, files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
}

test('changing one variable recompiles exactly the invocations that read it (part templates included); the rest are reused, and the run is a full compile\'s', async () => {
  const dir = makeSite({
    'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    run: [a, b, c, d, { e: { n: 1 } }, { e: { n: 2 } }]\n',
    'vars/all.yaml': 'v1: one\nv2: two\nv3: three\n',
    'states/a.yaml': 'a:\n  - file: /tmp/inc/a\n    content: "<%= it.vars.v1 %>"\n    notify: h\n',
    'states/b.yaml': 'b:\n  - file: /tmp/inc/b\n    content: "<%= it.vars.v2 %> on <%= it.facts.hostname %>"\n',
    'states/c.yaml': 'c:\n  - file: /tmp/inc/c\n    template: templates/c.eta\n    vars: { extra: x }\n',
    'templates/c.eta': '<%= it.vars.v1 %>/<%= it.vars.extra %>\n',
    'states/d.yaml': 'd:\n  - directory: /tmp/inc/d\n',
    'states/e.yaml': 'e:\n  params: { n: ~ }\n  parts:\n    - file: /tmp/inc/e<%= it.params.n %>\n      content: "<%= it.vars.v3 %>"\n',
    'states/h.yaml': 'h:\n  lazy: true\n  parts:\n    - exec: "echo <%= it.vars.v2 %>"\n',
  });
  const inputs: Inputs = { facts: { os_family: 'debian', hostname: 'h1' }, cliVars: {} };
  const first = await compileSite(dir, inputs);
  assert.deepEqual(first.stats, { compiled: 7, reused: 0 });
  assert.equal(Object.keys(first.records).length, 7);

  const unchanged = await compileSite(dir, inputs, first.records);
  assert.deepEqual(unchanged.stats, { compiled: 0, reused: 7 });
  assert.deepEqual(unchanged.run, first.run);

  // v1 is read by a and by c's part template: those two, and nothing else.
  const v1 = { ...inputs, cliVars: { v1: 'changed' } };
  const changed = await compileSite(dir, v1, unchanged.records);
  assert.deepEqual(changed.stats, { compiled: 2, reused: 5 });
  const full = await compileSite(dir, v1);
  assert.deepEqual(changed.run, full.run);
  assert.deepEqual(changed.graph, full.graph);
  assert.equal(changed.run.invocations.find((i) => i.state === 'c')!.parts[0]!.attributes.content, 'changed/x\n');

  // v3 is read by both invocations of e; a fact by b alone; c's template file by c alone.
  assert.deepEqual((await compileSite(dir, { ...v1, cliVars: { v1: 'changed', v3: 3 } }, changed.records)).stats, { compiled: 2, reused: 5 });
  assert.deepEqual((await compileSite(dir, { ...v1, facts: { ...v1.facts, hostname: 'h2' } }, changed.records)).stats, { compiled: 1, reused: 6 });
  write(dir, { 'templates/c.eta': 'edited <%= it.vars.v1 %>\n' });
  const edited = await compileSite(dir, v1, changed.records);
  assert.deepEqual(edited.stats, { compiled: 1, reused: 6 });
  assert.equal(edited.run.invocations.find((i) => i.state === 'c')!.parts[0]!.attributes.content, 'edited changed\n');
});

test('a render that lists the variables depends on all of them; a compile that reads other targets leaves no records', async () => {
  const dir = makeSite({
    'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    run: [all, one]\n  t2:\n    executor: local\nvars:\n  v1: one\n  v2: two\n',
    'states/all.yaml': 'all:\n  - file: /tmp/inc/all\n    content: "<%= Object.keys(it.vars).join(\',\') %>"\n',
    'states/one.yaml': 'one:\n  - file: /tmp/inc/one\n    content: "<%= it.vars.v1 %>"\n',
  });
  const inputs: Inputs = { facts: { os_family: 'debian' }, cliVars: {} };
  const first = await compileSite(dir, inputs);
  // A new variable nobody names: only the state that lists them all.
  const added = await compileSite(dir, { ...inputs, cliVars: { v9: 'new' } }, first.records);
  assert.deepEqual(added.stats, { compiled: 1, reused: 1 });
  assert.deepEqual(added.run, (await compileSite(dir, { ...inputs, cliVars: { v9: 'new' } })).run);

  write(dir, { 'states/one.yaml': 'one:\n  - file: /tmp/inc/one\n    content: "<%= it.targets.length %>"\n' });
  assert.deepEqual((await compileSite(dir, inputs, first.records)).records, {});
});

/** A random site: states reading random variables, facts and part templates, some with parameters, one a handler. */
function randomSite(rand: () => number): { files: Record<string, string>; vars: string[] } {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const vars = ['v0', 'v1', 'v2', 'v3', 'v4', 'v5'];
  const files: Record<string, string> = {};
  const run: string[] = [];
  for (let s = 0; s < 6; s++) {
    files[`states/s${s}.yaml`] = stateText(rand, s, vars);
    run.push(rand() < 0.3 ? `{ s${s}: { p: ${Math.floor(rand() * 3)} } }` : `s${s}`);
    if (rand() < 0.3) run.push(`{ s${s}: { p: 9 } }`);
  }
  for (let t = 0; t < 3; t++) files[`templates/t${t}.eta`] = `<%= it.vars.${pick(vars)} %> <%= it.vars.x %>\n`;
  files['states/h.yaml'] = `h:\n  lazy: true\n  parts:\n    - exec: "echo <%= it.vars.${pick(vars)} %>"\n`;
  files['vars/all.yaml'] = vars.map((v) => `${v}: ${Math.floor(rand() * 100)}\n`).join('');
  files['cairn.yaml'] = `targets:\n  t1:\n    executor: local\n    run: [${run.join(', ')}]\n`;
  return { files, vars };
}

function stateText(rand: () => number, s: number, vars: string[]): string {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const parts: string[] = [];
  const n = 1 + Math.floor(rand() * 3);
  for (let i = 0; i < n; i++) {
    const path = `/tmp/inc/s${s}-<%= it.params.p %>-${i}-${Math.floor(rand() * 1000)}`;
    const kind = rand();
    if (kind < 0.4) parts.push(`  - file: ${path}\n    content: "<%= it.vars.${pick(vars)} %>"\n`);
    else if (kind < 0.55) parts.push(`  - file: ${path}\n    content: "<%= it.facts.hostname %>"\n`);
    else if (kind < 0.75) parts.push(`  - file: ${path}\n    template: templates/t${Math.floor(rand() * 3)}.eta\n    vars: { x: ${i} }\n`);
    else if (kind < 0.85) parts.push(`  - file: ${path}\n    content: "<%= Object.keys(it.vars).length %>"\n`);
    else parts.push(`  - directory: ${path}\n`);
    if (rand() < 0.2) parts[parts.length - 1] += '    notify: h\n';
  }
  return `s${s}:\n  params: { p: 0 }\n  parts:\n${parts.join('')}`;
}

test('seeded random edits: after each, the incremental compile is the full compile, deep-equal (run and graph)', async () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const rand = mulberry32(seed);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const { files, vars } = randomSite(rand);
    const dir = makeSite(files);
    let inputs: Inputs = { facts: { os_family: 'debian', hostname: 'h0' }, cliVars: {} };
    let records = (await compileSite(dir, inputs)).records;
    let reusedSome = false;
    for (let step = 0; step < 12; step++) {
      const edit = rand();
      let what: string;
      if (edit < 0.35) {
        const v = pick(vars);
        inputs = { ...inputs, cliVars: { ...inputs.cliVars, [v]: Math.floor(rand() * 100) } };
        what = `--var ${v}`;
      } else if (edit < 0.5) {
        inputs = { ...inputs, facts: { ...inputs.facts, hostname: `h${Math.floor(rand() * 3)}` } };
        what = 'facts';
      } else if (edit < 0.7) {
        const t = Math.floor(rand() * 3);
        write(dir, { [`templates/t${t}.eta`]: `<%= it.vars.${pick(vars)} %>/<%= it.vars.x %>/${step}\n` });
        what = `templates/t${t}.eta`;
      } else if (edit < 0.85) {
        const s = Math.floor(rand() * 6);
        write(dir, { [`states/s${s}.yaml`]: stateText(rand, s, vars) });
        what = `states/s${s}.yaml`;
      } else {
        const v = `w${step}`;
        inputs = { ...inputs, cliVars: { ...inputs.cliVars, [v]: step } };
        what = `new --var ${v}`;
      }
      const incremental = await compileSite(dir, inputs, records);
      const full = await compileSite(dir, inputs);
      assert.deepEqual(incremental.run, full.run, `seed ${seed}, step ${step} (${what})`);
      assert.deepEqual(incremental.graph, full.graph, `seed ${seed}, step ${step} (${what})`);
      assert.equal(incremental.stats.compiled + incremental.stats.reused, full.stats.compiled, `seed ${seed}, step ${step}`);
      if (incremental.stats.reused > 0) reusedSome = true;
      records = incremental.records;
    }
    assert.ok(reusedSome, `seed ${seed}: some invocation was reused`);
  }
});

test('through the built command: the compile cache keeps each target\'s records, so a --var change renders only what reads it; the output is a fresh compile\'s', () => {
  const dir = makeSite({
    'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    run: [a, b, c]\nvars:\n  v1: one\n  v2: two\n',
    'states/a.yaml': 'a:\n  - file: /tmp/inc/a\n    content: "<%= it.vars.v1 %>"\n',
    'states/b.yaml': 'b:\n  - file: /tmp/inc/b\n    content: "<%= it.vars.v2 %>"\n',
    'states/c.yaml': 'c:\n  - directory: /tmp/inc/c\n',
  });
  const show = (...args: string[]) => cairnBin(['show', '--site', dir, '--json', '--facts', factsFile, ...args], dir, { CAIRN_COMPILE_STATS: '1' });
  const factsFile = join(dir, 'facts.json');
  writeFileSync(factsFile, JSON.stringify({ os_family: 'debian', hostname: 'h1' }));
  const first = show();
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stderr, /^compile t1: 3 invocations compiled, 0 reused$/m);
  const changed = show('--var', 'v2=changed');
  assert.equal(changed.status, 0, changed.stderr);
  assert.match(changed.stderr, /^compile t1: 1 invocations compiled, 2 reused$/m);
  const fresh = cairnBin(['show', '--site', dir, '--json', '--facts', factsFile, '--var', 'v2=changed'], dir, { CAIRN_NO_CACHE: '1' });
  assert.equal(changed.stdout, fresh.stdout);
  assert.match(changed.stdout, /"content": "changed"/);
});
