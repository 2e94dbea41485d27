/**
 * Reuse at the grain of parts (catalog/compile.ts bySegments, site/segments.ts): a YAML state's
 * rendered parts list is cut into each part's text, and a part whose text (and source map) the
 * last compile rendered too is taken from its record instead of being parsed and validated
 * again. Whatever is cut, the run must be the one a whole parse gives, positions included.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { buildCatalog } from '../src/catalog/catalog.ts';
import { compile, type InvocationRecords } from '../src/catalog/compile.ts';
import { buildGraph } from '../src/graph/build.ts';
import { Diagnostics, InputError } from '../src/lib/errors.ts';
import { loadSite } from '../src/site/load.ts';
import { cutItems } from '../src/site/segments.ts';
import { makeSite } from './helpers/cli.ts';

const FACTS = { os_family: 'debian', hostname: 'h1' };

/**
 * Compiles target t1. `records` false: as a caller that keeps none (the whole text parsed at
 * once, as before parts were cut); otherwise records are kept and `previous` reused.
 */
async function compileSite(dir: string, cliVars: Record<string, unknown>, opts: { records?: boolean; previous?: InvocationRecords } = {}) {
  const d = new Diagnostics();
  const catalog = buildCatalog(await loadSite(dir, d), d);
  d.throwIfAny();
  const records: InvocationRecords = {};
  const partStats = { parsed: 0, reused: 0 };
  const run = compile(catalog, catalog.targets.get('t1')!, {
    facts: FACTS, cliVars, partStats,
    ...(opts.records === false ? {} : { records }),
    ...(opts.previous ? { previous: opts.previous } : {}),
  });
  return { run, graph: buildGraph(run), records, partStats };
}

/** The diagnostics a compile reports, as text (message and position). */
async function errorsOf(dir: string, cliVars: Record<string, unknown>, opts: { records?: boolean; previous?: InvocationRecords } = {}): Promise<string> {
  try {
    await compileSite(dir, cliVars, opts);
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    return JSON.stringify(err.diagnostics);
  }
  return 'no error';
}

function write(dir: string, files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
}

const CAIRN = 'targets:\n  t1:\n    executor: local\n    run: [s]\nvars:\n  v: one\n';

test('one changed part is parsed again and its change appears; the others are taken from the record; the run is a whole parse\'s', async () => {
  const items = Array.from({ length: 30 }, (_, i) => `  - file: /tmp/pr/f${i}\n    content: "${i}"\n`).join('');
  const dir = makeSite({
    'cairn.yaml': CAIRN,
    'states/s.yaml': `s:\n${items}  - file: /tmp/pr/v\n    content: "v=<%= it.vars.v %>\\n"\n    notify: h\n  - line: /tmp/pr/l\n    text: "<%= it.vars.v %> too"\n\nh:\n  lazy: true\n  parts:\n    - exec: echo <%= it.vars.v %>\n`,
  });
  const first = await compileSite(dir, {});
  assert.deepEqual(first.partStats, { parsed: 33, reused: 0 });
  assert.deepEqual(first.run, (await compileSite(dir, {}, { records: false })).run);

  const changed = await compileSite(dir, { v: 'two' }, { previous: first.records });
  // s: its two parts that read v; h: its one.
  assert.deepEqual(changed.partStats, { parsed: 3, reused: 30 });
  const whole = await compileSite(dir, { v: 'two' }, { records: false });
  assert.deepEqual(changed.run, whole.run);
  assert.deepEqual(changed.graph, whole.graph);
  const parts = changed.run.invocations[0]!.parts;
  assert.equal(parts[30]!.attributes.content, 'v=two\n');
  assert.equal(parts[31]!.attributes.text, 'two too');
  assert.deepEqual(parts.map((p) => p.index), parts.map((_, i) => i));

  // Back again: reused from the second compile's records, which kept the unchanged parts' keys.
  const back = await compileSite(dir, {}, { previous: changed.records });
  assert.deepEqual(back.partStats, { parsed: 3, reused: 30 });
  assert.deepEqual(back.run, first.run);
});

test('a part moved to another line keeps its text but not its position: it is parsed again, and points at its new line', async () => {
  const dir = makeSite({
    'cairn.yaml': CAIRN,
    'states/s.yaml': 's:\n  - file: /tmp/pr/a\n    content: "<%= it.vars.v %>"\n  - directory: /tmp/pr/d\n',
  });
  const first = await compileSite(dir, {});
  // Same state text, the directory two lines further down (an edit of the file: no reuse of what
  // the file's old stamp stood for), and a variable changed so the invocation is not reused whole.
  write(dir, { 'states/s.yaml': 's:\n  - file: /tmp/pr/a\n    content: "<%= it.vars.v %>"\n\n\n  - directory: /tmp/pr/d\n' });
  const moved = await compileSite(dir, { v: 'two' }, { previous: first.records });
  assert.deepEqual(moved.partStats, { parsed: 2, reused: 0 });
  assert.equal(moved.run.invocations[0]!.parts[1]!.pos?.line, 6);
  assert.deepEqual(moved.run, (await compileSite(dir, { v: 'two' }, { records: false })).run);
});

test('a part whose text is the same but which a template render moved in the source is parsed again (its key holds the source map)', async () => {
  // The same text comes out of two different lines, depending on v: its position must follow.
  const dir = makeSite({
    'cairn.yaml': CAIRN,
    'states/s.yaml': 's:\n  - file: /tmp/pr/x\n    content: "<%= it.vars.v %>"\n<% if (it.vars.v === "one") { %>\n  - directory: /tmp/pr/d\n<% } else { %>\n  - directory: /tmp/pr/d\n<% } %>\n',
  });
  const first = await compileSite(dir, {});
  const other = await compileSite(dir, { v: 'two' }, { previous: first.records });
  assert.deepEqual(other.partStats, { parsed: 2, reused: 0 });
  assert.equal(other.run.invocations[0]!.parts[1]!.pos?.line, 7);
  assert.deepEqual(other.run, (await compileSite(dir, { v: 'two' }, { records: false })).run);
});

test('a part that reads a site file (template:) is parsed again when the file is edited, and the edit shows', async () => {
  const dir = makeSite({
    'cairn.yaml': CAIRN,
    'states/s.yaml': 's:\n  - file: /tmp/pr/t\n    template: templates/t.eta\n  - file: /tmp/pr/v\n    content: "<%= it.vars.v %>"\n  - directory: /tmp/pr/d\n',
    'templates/t.eta': 'first\n',
  });
  const first = await compileSite(dir, {});
  write(dir, { 'templates/t.eta': 'second\n' });
  const next = await compileSite(dir, { v: 'two' }, { previous: first.records });
  assert.deepEqual(next.partStats, { parsed: 2, reused: 1 });
  assert.equal(next.run.invocations[0]!.parts[0]!.attributes.content, 'second\n');
  assert.deepEqual(next.run, (await compileSite(dir, { v: 'two' }, { records: false })).run);
});

test('a part rendered from a template file is taken from the record while its file and what its render read are the same; a var it read, changed, parses it again', async () => {
  const dir = makeSite({
    'cairn.yaml': CAIRN,
    'states/s.yaml': 's:\n  - file: /tmp/pr/t\n    template: templates/t.eta\n    vars: { x: 1 }\n  - file: /tmp/pr/u\n    template: templates/u.eta\n  - file: /tmp/pr/v\n    content: "<%= it.vars.v %>"\n',
    'templates/t.eta': 'x=<%= it.vars.x %> y=<%= it.vars.y %>\n',
    'templates/u.eta': 'w=<%= it.vars.w %>\n',
  });
  const whole = async (vars: Record<string, unknown>) => (await compileSite(dir, vars, { records: false })).run;
  const first = await compileSite(dir, { v: 'one', w: 'a', y: 'b' });
  // Only v's part changed: both template parts (with and without vars of their own) are reused.
  const second = await compileSite(dir, { v: 'two', w: 'a', y: 'b' }, { previous: first.records });
  assert.deepEqual(second.partStats, { parsed: 1, reused: 2 });
  assert.deepEqual(second.run, await whole({ v: 'two', w: 'a', y: 'b' }));
  // A var one template read changed (and nothing else): that part alone is parsed again, its new text shows.
  const third = await compileSite(dir, { v: 'two', w: 'c', y: 'b' }, { previous: second.records });
  assert.deepEqual(third.partStats, { parsed: 1, reused: 2 });
  assert.equal(third.run.invocations[0]!.parts[1]!.attributes.content, 'w=c\n');
  assert.deepEqual(third.run, await whole({ v: 'two', w: 'c', y: 'b' }));
  // The same for the part with vars of its own, whose template reads a target var too.
  const fourth = await compileSite(dir, { v: 'two', w: 'c', y: 'd' }, { previous: third.records });
  assert.deepEqual(fourth.partStats, { parsed: 1, reused: 2 });
  assert.equal(fourth.run.invocations[0]!.parts[0]!.attributes.content, 'x=1 y=d\n');
  assert.deepEqual(fourth.run, await whole({ v: 'two', w: 'c', y: 'd' }));
  // The records of a compile that reused template parts carry their deps on: a later edit of the
  // template file still shows.
  write(dir, { 'templates/u.eta': 'edited <%= it.vars.w %>\n' });
  const fifth = await compileSite(dir, { v: 'three', w: 'c', y: 'd' }, { previous: fourth.records });
  assert.deepEqual(fifth.partStats, { parsed: 2, reused: 1 });
  assert.equal(fifth.run.invocations[0]!.parts[1]!.attributes.content, 'edited c\n');
  assert.deepEqual(fifth.run, await whole({ v: 'three', w: 'c', y: 'd' }));
});

test('a template part of a component is parsed again when a file appears where the lookup would now find it first', async () => {
  const dir = makeSite({
    'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    run: [s]\nvars:\n  v: one\n',
    'components/c/states/s.yaml': 's:\n  - file: /tmp/pr/t\n    template: templates/t.eta\n  - file: /tmp/pr/v\n    content: "<%= it.vars.v %>"\n',
    'templates/t.eta': 'site\n',
  });
  const first = await compileSite(dir, {});
  write(dir, { 'components/c/templates/t.eta': 'component\n' });
  const next = await compileSite(dir, { v: 'two' }, { previous: first.records });
  assert.deepEqual(next.partStats, { parsed: 2, reused: 0 });
  assert.equal(next.run.invocations[0]!.parts[0]!.attributes.content, 'component\n');
  assert.deepEqual(next.run, (await compileSite(dir, { v: 'two' }, { records: false })).run);
});

test('a record whose deps are damaged stands for nothing: the part is parsed', async () => {
  const dir = makeSite({
    'cairn.yaml': CAIRN,
    'states/s.yaml': 's:\n  - file: /tmp/pr/t\n    template: templates/t.eta\n  - file: /tmp/pr/v\n    content: "<%= it.vars.v %>"\n',
    'templates/t.eta': 'first\n',
  });
  const first = await compileSite(dir, {});
  const records = JSON.parse(JSON.stringify(first.records)) as InvocationRecords;
  const record = Object.values(records)[0]!;
  assert.ok(record.segments?.deps?.['0'], 'the template part has deps in its record');
  record.segments!.deps!['0'] = { files: 'nonsense' } as never;
  const next = await compileSite(dir, { v: 'two' }, { previous: records });
  assert.deepEqual(next.partStats, { parsed: 2, reused: 0 });
  assert.deepEqual(next.run, (await compileSite(dir, { v: 'two' }, { records: false })).run);
});

test('a damaged record is ignored: parts are parsed, and the run is a whole parse\'s', async () => {
  const dir = makeSite({
    'cairn.yaml': CAIRN,
    'states/s.yaml': 's:\n  - file: /tmp/pr/v\n    content: "<%= it.vars.v %>"\n  - directory: /tmp/pr/d\n',
  });
  const first = await compileSite(dir, {});
  const whole = (await compileSite(dir, { v: 'two' }, { records: false })).run;
  const record = first.records['s\u0000{}']!;
  for (const damaged of [
    { ...record, parts: '[{"index":0' },
    { ...record, parts: '{}' },
    { ...record, segments: { file: record.segments!.file, keys: [...record.segments!.keys, 'extra'] } },
    { ...record, segments: { file: 'states/other.yaml', keys: record.segments!.keys } },
    { ...record, segments: { file: record.segments!.file, keys: 'not a list' as unknown as string[] } },
    { ...record, file: 'another stamp' },
  ]) {
    const next = await compileSite(dir, { v: 'two' }, { previous: { 's\u0000{}': damaged } });
    assert.deepEqual(next.partStats, { parsed: 2, reused: 0 });
    assert.deepEqual(next.run, whole);
  }
});

test('texts that cannot be cut, or whose cut parts do not parse apart, compile as a whole parse does (results and errors)', async () => {
  const cases: Record<string, string> = {
    'block scalars, kept newlines, comments between parts': 's:\n  - file: /tmp/pr/a\n    content: |+\n      <%= it.vars.v %>\n\n# a comment at column 0\n  - file: /tmp/pr/b\n    content: >-\n      folded\n      text\n    # indented comment\n  - exec: echo x\n',
    'list at the key\'s indentation, map form with keys after': 's:\n  lazy: false\n  parts:\n  - file: /tmp/pr/a\n    content: "<%= it.vars.v %>"\n  - directory: /tmp/pr/d\n  tags: [t]\n',
    'anchors and aliases across parts': 's:\n  - file: /tmp/pr/a\n    content: &c "<%= it.vars.v %>"\n  - file: /tmp/pr/b\n    content: *c\n',
    'an alias whose anchor is in the same part': 's:\n  - file: /tmp/pr/a\n    content: &c "<%= it.vars.v %>"\n    id: *c\n  - directory: /tmp/pr/d\n',
    'quoted text over several lines': 's:\n  - exec: "echo <%= it.vars.v %>\n      and more"\n  - directory: /tmp/pr/d\n',
    'flow collections': 's:\n  - { file: /tmp/pr/a, content: "<%= it.vars.v %>",\n      mode: "0644" }\n  - directory: /tmp/pr/d\n    require: [ "file:/tmp/pr/a" ]\n',
    'a part that is not a map': 's:\n  - { file: /tmp/pr/a, content: "<%= it.vars.v %>" }\n  - [not, a, map]\n',
    'a document marker': '---\ns:\n  - file: /tmp/pr/a\n    content: "<%= it.vars.v %>"\n',
    'CRLF line ends': 's:\r\n  - file: /tmp/pr/a\r\n    content: "<%= it.vars.v %>"\r\n  - directory: /tmp/pr/d\r\n',
    'a nested list in a part': 's:\n  - file: /tmp/pr/a\n    content: "<%= it.vars.v %>"\n    require:\n    - directory:/tmp/pr/d\n  - directory: /tmp/pr/d\n',
    'an empty item': 's:\n  - file: /tmp/pr/a\n    content: "<%= it.vars.v %>"\n  -\n  - directory: /tmp/pr/d\n',
    'a YAML error in one part': 's:\n  - file: /tmp/pr/a\n    content: "<%= it.vars.v %>"\n  - directory: /tmp/pr/d\n     bad: indentation\n',
    'an unknown attribute in one part': 's:\n  - file: /tmp/pr/a\n    content: "<%= it.vars.v %>"\n    colour: red\n  - directory: /tmp/pr/d\n',
    'a tab where indentation ends': 's:\n  - file: /tmp/pr/a\n    content: "<%= it.vars.v %>"\n\t- directory: /tmp/pr/d\n',
    'plain text continued on a less indented line': 's:\n  - exec: echo <%= it.vars.v %>\n   continued\n  - directory: /tmp/pr/d\n',
    'the state missing once rendered': '<% if (it.vars.v === "one") { %>\ns:\n  - file: /tmp/pr/a\n    content: x\n<% } %>\n',
  };
  for (const [what, text] of Object.entries(cases)) {
    const dir = makeSite({ 'cairn.yaml': CAIRN, 'states/s.yaml': text });
    for (const cliVars of [{}, { v: 'two' }]) {
      const whole = await errorsOf(dir, cliVars, { records: false });
      assert.equal(await errorsOf(dir, cliVars), whole, `${what}: errors`);
      if (whole !== 'no error') continue;
      const full = await compileSite(dir, cliVars, { records: false });
      const cut = await compileSite(dir, cliVars);
      assert.deepEqual(cut.run, full.run, what);
      const three = { v: 'three' };
      const wholeNext = await errorsOf(dir, three, { records: false });
      assert.equal(await errorsOf(dir, three, { previous: cut.records }), wholeNext, `${what}: errors after a change`);
      if (wholeNext !== 'no error') continue;
      const next = await compileSite(dir, three, { previous: cut.records });
      assert.deepEqual(next.run, (await compileSite(dir, three, { records: false })).run, `${what}: after a change`);
    }
  }
});

test('cutItems: items start at `-` lines of the list\'s indentation; a less indented line ends the list; document-level syntax and tabs are refused', () => {
  assert.deepEqual(cutItems('s:\n  - a\n    b: 1\n\n  # c\n  - d\nh:\n  - e\n'), { indent: 2, starts: [3, 25], end: 31 });
  assert.deepEqual(cutItems('s:\n- a\n-\n- b'), { indent: 0, starts: [3, 7, 9], end: 12 });
  assert.equal(cutItems('%YAML 1.1\n---\ns:\n  - a\n'), undefined);
  assert.equal(cutItems('s:\n  - a\n\t- b\n'), undefined);
  assert.equal(cutItems('s: {}\n'), undefined);
});

test('the standard workload (bench/site): a changed app_version parses only what reads it, and the run is a whole parse\'s', async () => {
  const dir = makeSite({
    'cairn.yaml': readFileSync(new URL('../bench/site/cairn.yaml', import.meta.url), 'utf8'),
    'states/workload.yaml': readFileSync(new URL('../bench/site/states/workload.yaml', import.meta.url), 'utf8'),
    'templates/service.conf.eta': readFileSync(new URL('../bench/site/templates/service.conf.eta', import.meta.url), 'utf8'),
  });
  const compileLocal = async (cliVars: Record<string, unknown>, opts: { records?: boolean; previous?: InvocationRecords } = {}) => {
    const d = new Diagnostics();
    const catalog = buildCatalog(await loadSite(dir, d), d);
    d.throwIfAny();
    const records: InvocationRecords = {};
    const partStats = { parsed: 0, reused: 0 };
    const run = compile(catalog, catalog.targets.get('local')!, {
      facts: FACTS, cliVars, partStats, ...(opts.records === false ? {} : { records }), ...(opts.previous ? { previous: opts.previous } : {}),
    });
    return { run, records, partStats };
  };
  const first = await compileLocal({ root: '/tmp/pr-bench', app_version: 1 });
  const next = await compileLocal({ root: '/tmp/pr-bench', app_version: 2 }, { previous: first.records });
  // app.conf alone: the 20 parts rendered from a template file read neither root nor app_version.
  assert.deepEqual(next.partStats, { parsed: 1, reused: 741 });
  assert.deepEqual(next.run, (await compileLocal({ root: '/tmp/pr-bench', app_version: 2 }, { records: false })).run);
});
