/**
 * Templates are pure, bounded and cannot reach the host (issue 27, DESIGN §4): every escape that
 * reached Cairn's process from a template is tried through `cairn show` and `cairn plan`, and
 * must end in an input error with a position while its canary (a file the escape would create)
 * stays absent.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { compileTemplate } from '../src/site/template.ts';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';

/** What an escape does with the host's `process` once it has it: create the canary file. */
const payload = (getProcess: string, canary: string) =>
  `const P = ${getProcess}; const cp = P.getBuiltinModule ? P.getBuiltinModule('child_process') : P.mainModule.require('child_process'); cp.execSync(${JSON.stringify(`touch ${canary}`)});`;

interface Escape {
  name: string;
  /** Template code (inside `<% %>`) given the canary's path. */
  code: (canary: string) => string;
}

const escapes: Escape[] = [
  { name: 'it.constructor.constructor', code: (c) => payload(`it.constructor.constructor('return process')()`, c) },
  { name: 'the constructor of an input value', code: (c) => payload(`it.vars.list.constructor.constructor('return process')()`, c) },
  { name: 'indirect eval', code: (c) => payload(`(0, eval)('process')`, c) },
  { name: 'the Function global', code: (c) => payload(`Function('return process')()`, c) },
  { name: 'the arrow function constructor', code: (c) => payload(`(() => 0).constructor('return process')()`, c) },
  { name: 'the generator function constructor', code: (c) => payload(`(function* () {}).constructor('return process')().next().value`, c) },
  { name: 'the async function constructor', code: (c) => payload(`(async () => 0).constructor('return process')()`, c) },
  { name: 'process.mainModule.require', code: (c) => `process.mainModule.require('child_process').execSync(${JSON.stringify(`touch ${c}`)});` },
  { name: 'process.getBuiltinModule', code: (c) => `process.getBuiltinModule('child_process').execSync(${JSON.stringify(`touch ${c}`)});` },
  { name: 'require', code: (c) => `require('child_process').execSync(${JSON.stringify(`touch ${c}`)});` },
  { name: 'globalThis.process', code: (c) => payload('globalThis.process', c) },
  { name: 'indirect import()', code: (c) => `import('node:child_process').then((m) => m.execSync(${JSON.stringify(`touch ${c}`)}));` },
  { name: "the error of a refused import()", code: (c) => `import('nosuch').catch((e) => { ${payload(`e.constructor.constructor('return process')()`, c)} });` },
  { name: 'a getter of it', code: (c) => payload(`Object.getOwnPropertyDescriptor(it, 'targets').get.constructor('return process')()`, c) },
  { name: 'stack trace call sites', code: (c) => `Error.prepareStackTrace = (e, sites) => sites; const sites = new Error().stack; ${payload(`sites[0].getFunction().constructor('return process')()`, c)}` },
  { name: 'the constructor of the global object', code: (c) => payload(`globalThis.constructor.constructor('return process')()`, c) },
  { name: "a method the global object inherits", code: (c) => payload(`globalThis.toString.constructor('return process')()`, c) },
  { name: "the descriptor of one of the sandbox's own globals", code: (c) => payload(`Object.getOwnPropertyDescriptor(globalThis, '__cairnIn').constructor.constructor('return process')()`, c) },
  { name: 'the error of a stack overflow', code: (c) => `let e; try { (function f() { f(); })(); } catch (x) { e = x; } ${payload(`e.constructor.constructor('return process')()`, c)}` },
  { name: "the error of redefining one of the sandbox's globals", code: (c) => `let e; try { Object.defineProperty(globalThis, '__cairnIn', { get() { return 1; } }); } catch (x) { e = x; } ${payload(`e.constructor.constructor('return process')()`, c)}` },
  { name: "the error of assigning to the sandbox's frozen API", code: (c) => `let e; try { __cairn.run = 1; } catch (x) { e = x; } ${payload(`e.constructor.constructor('return process')()`, c)}` },
  { name: "the sandbox's own API", code: (c) => payload(`__cairn.constructor.constructor('return process')()`, c) },
  { name: 'WebAssembly', code: (c) => payload(`new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]))) && process`, c) },
];

/** A site with one local target whose state file runs `code` in a control tag. */
function stateFileSite(code: string) {
  return makeSite({
    'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    run: [s]\nvars:\n  list: [1, 2]\n',
    'states/s.yaml': `<% ${code} %>\ns:\n  - file: /tmp/cairn-sandbox-never\n    content: x\n`,
  });
}

/** A site whose file part renders a template file holding `code`. */
function templateFileSite(code: string) {
  return makeSite({
    'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    run: [s]\nvars:\n  list: [1, 2]\n',
    'states/s.yaml': 's:\n  - file: /tmp/cairn-sandbox-never\n    template: templates/t.eta\n',
    'templates/t.eta': `line one\n<% ${code} %>\n`,
  });
}

for (const escape of escapes) {
  for (const command of ['show', 'plan'] as const) {
    test(`template sandbox: ${escape.name} does not reach the host (${command}, state file and template file)`, async () => {
      for (const [make, at] of [[stateFileSite, 'states/s.yaml:1:'], [templateFileSite, 'templates/t.eta:2:']] as const) {
        const canary = join(tempDir('cairn-canary-'), 'escaped');
        const site = make(escape.code(canary));
        const r = await runCli([command, '--site', site], { env: { CAIRN_NO_CACHE: '1' } });
        assert.equal(r.status, 2, `exit code; stderr:\n${r.stderr}`);
        assert.ok(r.stderr.includes(`--> ${at}`), `a position at ${at} in:\n${r.stderr}`);
        assert.equal(existsSync(canary), false, 'the canary command ran');
      }
    });
  }
}

test('template sandbox: a template named by a TypeScript state file is rendered in the sandbox too', async () => {
  const canary = join(tempDir('cairn-canary-'), 'escaped');
  const site = makeSite({
    'cairn.yaml': 'timeout: 1\ntargets:\n  t1:\n    executor: local\n    run: [motd]\n',
    'states/motd.ts': "import { state, file } from 'cairn';\n\nexport const motd = state(() => [file('/tmp/cairn-sandbox-never', { template: 'templates/t.eta' })]);\n",
    'templates/t.eta': `ok\n<% ${payload(`it.constructor.constructor('return process')()`, canary)} %>\n`,
  });
  const r = await runCli(['plan', '--site', site], { env: { CAIRN_NO_CACHE: '1' } });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /Code generation from strings disallowed/);
  assert.ok(r.stderr.includes('--> templates/t.eta:2:4'), r.stderr);
  assert.equal(existsSync(canary), false, 'the canary command ran');
});

test('template sandbox: an endless loop ends at the timeout in cairn.yaml with an input error at its tag', async () => {
  const site = makeSite({
    'cairn.yaml': 'timeout: 1\ntargets:\n  t1:\n    executor: local\n    run: [s]\n',
    'states/s.yaml': 's:\n  - file: /tmp/cairn-sandbox-never\n    content: x\n<% while (true) {} %>\n',
  });
  const r = await runCli(['show', '--site', site], { env: { CAIRN_NO_CACHE: '1' } });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /template did not finish within 1 s/);
  assert.ok(r.stderr.includes('--> states/s.yaml:4:4'), r.stderr);
});

test('template sandbox: an endless loop in a template file, and one in an inline state, end at the timeout', async () => {
  const site = makeSite({
    'cairn.yaml': 'timeout: 0.5\ntargets:\n  t1:\n    executor: local\n    run: [s, inline]\nstates:\n  inline:\n    - file: /tmp/cairn-sandbox-inline\n      content: "<% for (;;) {} %>"\n',
    'states/s.yaml': 's:\n  - file: /tmp/cairn-sandbox-never\n    template: templates/t.eta\n',
    'templates/t.eta': 'a\nb <% while (true) {} %>\n',
  });
  const r = await runCli(['plan', '--site', site], { env: { CAIRN_NO_CACHE: '1' } });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /template did not finish within 0\.5 s/);
  assert.ok(r.stderr.includes('--> templates/t.eta:2:6'), r.stderr);
  assert.ok(r.stderr.includes('--> cairn.yaml:9:'), r.stderr);
});

test('template sandbox: the strings of an inline state render together; one that loops is named, and the others still report their own errors', async () => {
  const site = makeSite({
    'cairn.yaml': 'timeout: 0.5\ntargets:\n  t1:\n    executor: local\n    run: [inline]\nstates:\n  inline:\n    - file: /tmp/cairn-sandbox-inline\n      owner: "<%= it.vars.nosuch %>"\n      content: "<% for (;;) {} %>"\n      group: "<%= \'ok\' %>"\n',
  });
  const r = await runCli(['show', '--site', site], { env: { CAIRN_NO_CACHE: '1' } });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /`it\.vars\.nosuch` is undefined/);
  assert.ok(r.stderr.includes('--> cairn.yaml:9:'), r.stderr);
  assert.match(r.stderr, /template did not finish within 0\.5 s/);
  assert.ok(r.stderr.includes('--> cairn.yaml:10:'), r.stderr);
});

test('template sandbox: the invocations of a run list render together; one that fails or loops is named, the rest compile', async () => {
  const run = Array.from({ length: 40 }, (_, i) => `      - f: { i: ${i} }\n`).join('');
  const state = (code: string) => makeSite({
    'cairn.yaml': `timeout: 0.5\ntargets:\n  t1:\n    executor: local\n    run:\n${run}`,
    'states/f.yaml': `f:\n  params: { i: ~ }\n  parts:\n    - file: /tmp/cairn-sandbox-<%= it.params.i %>\n      content: "${code}"\n`,
  });
  const ok = await runCli(['show', '--json', '--site', state('<%= it.params.i * 2 %>')], { env: { CAIRN_NO_CACHE: '1' } });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /cairn-sandbox-39/);
  assert.match(ok.stdout, /"content": ?"78"/);
  const undef = await runCli(['show', '--site', state('<%= it.params.i === 7 ? it.vars.nosuch : 1 %>')], { env: { CAIRN_NO_CACHE: '1' } });
  assert.equal(undef.status, 2, undef.stderr);
  assert.match(undef.stderr, /`it\.params\.i === 7 \? it\.vars\.nosuch : 1` is undefined/);
  assert.ok(undef.stderr.includes('--> states/f.yaml:5:'), undef.stderr);
  const loop = await runCli(['show', '--site', state('<% if (it.params.i === 30) while (true) {} %>x')], { env: { CAIRN_NO_CACHE: '1' } });
  assert.equal(loop.status, 2, loop.stderr);
  assert.match(loop.stderr, /template did not finish within 0\.5 s/);
  assert.ok(loop.stderr.includes('--> states/f.yaml:5:'), loop.stderr);
});

test('template sandbox: a timeout that is not a positive number of seconds is refused', async () => {
  const site = makeSite({ 'cairn.yaml': 'timeout: 0\ntargets:\n  t1:\n    executor: local\n' });
  const r = await runCli(['show', '--site', site]);
  assert.equal(r.status, 2, r.stderr);
  assert.ok(r.stderr.includes('--> cairn.yaml:1:'), r.stderr);
});

test('template sandbox: process.exit in a template is an input error, and the process goes on', async () => {
  const site = stateFileSite('process.exit(0)');
  const r = await runCli(['show', '--site', site], { env: { CAIRN_NO_CACHE: '1' } });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /process is not defined/);
  assert.ok(r.stderr.includes('--> states/s.yaml:1:4'), r.stderr);
});

test('template sandbox: the clock, randomness and the environment are refused with a reason', async () => {
  for (const [code, message] of [
    ['Date.now()', /Date is not available in templates: a template has no clock/],
    ['new Date()', /Date is not available in templates/],
    ['new Intl.DateTimeFormat().format()', /Intl is not available in templates/],
    ['Math.random()', /Math\.random is not available in templates/],
    ['process.env.HOME', /process is not defined/],
    ['setTimeout(() => 0, 1)', /setTimeout is not defined/],
  ] as const) {
    const r = await runCli(['show', '--site', stateFileSite(`const v = ${code};`)], { env: { CAIRN_NO_CACHE: '1' } });
    assert.equal(r.status, 2, `${code}: ${r.stderr}`);
    assert.match(r.stderr, message, code);
    assert.ok(r.stderr.includes('--> states/s.yaml:1:4'), r.stderr);
  }
});

test('template sandbox: nothing a template starts outlives its render (no Promise, async refused, no console)', async () => {
  for (const [code, message, at] of [
    ['Promise.reject(new Error("later"))', /Promise is not defined/, 'states/s.yaml:1:4'],
    ['const f = async () => { throw new Error("later") }; f()', /`async` is not available in templates/, 'states/s.yaml:1:14'],
    ['console.log("x")', /console is not defined/, 'states/s.yaml:1:4'],
    ['new FinalizationRegistry(() => { while (true) {} })', /FinalizationRegistry is not defined/, 'states/s.yaml:1:4'],
  ] as const) {
    const r = await runCli(['show', '--site', stateFileSite(code)], { env: { CAIRN_NO_CACHE: '1' } });
    assert.equal(r.status, 2, `${code}: ${r.stderr}`);
    assert.match(r.stderr, message, code);
    assert.ok(r.stderr.includes(`--> ${at}`), r.stderr);
  }
});

test('template sandbox: renders are the same every time (locale methods use en-US, special numbers survive the copy)', async () => {
  const site = makeSite({
    'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    run: [s]\nvars:\n  n: .nan\n  big: .inf\n  list: [b, a]\n',
    'states/s.yaml': 's:\n  - file: /tmp/cairn-sandbox-x\n    content: "<%= [(1234.5).toLocaleString(), \'a\'.localeCompare(\'B\'), Number.isNaN(it.vars.n), it.vars.big, [...it.vars.list].sort()].join(\' \') %>"\n',
  });
  const first = await runCli(['show', '--json', '--site', site], { env: { CAIRN_NO_CACHE: '1' } });
  const second = await runCli(['show', '--json', '--site', site], { env: { CAIRN_NO_CACHE: '1' } });
  assert.equal(first.status, 0, first.stderr);
  assert.equal(first.stdout, second.stdout);
  assert.match(first.stdout, /1,234\.5 -1 true Infinity a,b/);
});

test('template sandbox: inputs are read-only; a copy can be changed', async () => {
  const r = await runCli(['show', '--site', stateFileSite('it.vars.list.push(3)')], { env: { CAIRN_NO_CACHE: '1' } });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /not extensible/);
  const ok = await runCli(['show', '--site', stateFileSite('const l = [...it.vars.list]; l.push(3); if (l.length !== 3) throw new Error("copy")')], { env: { CAIRN_NO_CACHE: '1' } });
  assert.equal(ok.status, 0, ok.stderr);
});

test('template sandbox: a throw of something that is not an Error is an input error with its position', async () => {
  for (const [code, message] of [
    ['throw Object.create(null)', /threw a value that is not an Error/],
    ['throw 5', /threw 5, not an Error/],
    ["throw 'no'", /threw "no", not an Error/],
    ['throw new Proxy({}, { get() { throw new Error("trap") } })', /threw a value that is not an Error/],
    ['throw { get message() { while (true) {} } }', /threw a value that is not an Error/],
  ] as const) {
    const r = await runCli(['show', '--site', stateFileSite(code)], { env: { CAIRN_NO_CACHE: '1' } });
    assert.equal(r.status, 2, `${code}: ${r.stderr}`);
    assert.match(r.stderr, message, code);
    assert.ok(r.stderr.includes('--> states/s.yaml:1:4'), r.stderr);
  }
});

test('template sandbox: import and async are refused where they are keywords, and only there', () => {
  const it = { vars: { import: 'i', async: 'a' } };
  assert.equal(compileTemplate("<%= it.vars.import + it.vars.async + 'import async' %>", 'f').render(it).text, 'iaimport async');
  assert.throws(() => compileTemplate("x\n<% const f = async () => 1 %>", 'f').render(it), (err: Error) =>
    /`async` is not available in templates/.test(err.message) && (err as { diagnostics?: { pos?: { line: number; col: number } }[] }).diagnostics?.[0]?.pos?.line === 2);
  assert.throws(() => compileTemplate("<%= import.meta %>", 'f').render(it), /syntax error|`import` is not available/);
  assert.throws(() => compileTemplate("<% /* 'x */ import('fs') %>", 'f').render(it), /`import` is not available in templates/);
});

test('template sandbox: it.targets is read only when a template asks, and then it is there', async () => {
  const site = makeSite({
    'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    run: [s]\n  t2:\n    executor: local\n',
    'states/s.yaml': 's:\n  - file: /tmp/cairn-sandbox-x\n    content: "<%= it.targets.map((t) => t.name).join(\',\') %> <%= it.groups.all ?? \'-\' %>"\n',
  });
  const r = await runCli(['show', '--json', '--site', site, '-t', 't1'], { env: { CAIRN_NO_CACHE: '1' } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /t1,t2 -/);
});

test("template sandbox: the globals are ECMAScript's own, even those a V8 flag adds to new contexts (lib/memory.ts turns on gc())", () => {
  setFlagsFromString('--expose-gc');
  const names = compileTemplate('<%= Object.getOwnPropertyNames(globalThis).sort().join(" ") %>', 'f').render({}).text.split(' ');
  for (const absent of ['process', 'require', 'console', 'Promise', 'WebAssembly', 'SharedArrayBuffer', 'Atomics', 'WeakRef', 'FinalizationRegistry', 'setTimeout']) {
    assert.ok(!names.includes(absent), `${absent} is a global of the sandbox`);
  }
  // V8 makes gc undeletable: it stays a name, with nothing behind it.
  assert.equal(compileTemplate('<%= typeof gc %>', 'f').render({}).text, 'undefined');
  for (const present of ['Object', 'JSON', 'Math', 'Map', 'RegExp', 'Date', 'Intl']) assert.ok(names.includes(present), `${present} is missing`);
  assert.throws(() => compileTemplate('<%= typeof Date %>', 'f').render({}), /Date is not available in templates/);
});

test("template sandbox: no object reachable from a template belongs to Cairn's realm", () => {
  // Everything reachable from the globals and the render's arguments, through own properties
  // (as descriptors: no getter runs), prototypes and getters/setters: each must inherit from the
  // sandbox's own Object.prototype (or from nothing). One that does not is another realm's,
  // whose Function compiles strings.
  const walk = `<%
    const seen = new Set();
    const queue = [globalThis, it, out, at, __str, it.vars, it.params];
    const foreign = [];
    // Names the global object finds by lookup, not as its own: Node looks them up elsewhere.
    for (const k of Object.getOwnPropertyNames(Object.prototype)) { try { queue.push(globalThis[k]); } catch { /* a getter that refuses */ } }
    const own = (o) => { for (let p = o, i = 0; i < 64; i++) { p = Object.getPrototypeOf(p); if (p === Object.prototype) return true; if (p === null) return false; } return false; };
    while (queue.length) {
      const o = queue.pop();
      if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o)) continue;
      seen.add(o);
      if (Object.getPrototypeOf(o) !== null && !own(o)) foreign.push(typeof o);
      queue.push(Object.getPrototypeOf(o));
      for (const k of Reflect.ownKeys(o)) {
        const d = Reflect.getOwnPropertyDescriptor(o, k);
        if (!d) continue;
        // A descriptor is a new object each time: checked, not walked.
        if (!own(d)) foreign.push('descriptor');
        if ('value' in d) queue.push(d.value); else queue.push(d.get, d.set);
      }
    }
  %><%= seen.size %> <%= foreign.length %>`;
  const [reached, foreign] = compileTemplate(walk, 'f').render({ vars: { list: [1, { a: 2 }] }, params: { p: 'x' } }).text.split(' ');
  assert.ok(Number(reached) > 300, `the walk reached ${reached} objects`);
  assert.equal(foreign, '0');
});
