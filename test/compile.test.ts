/** The pure steps end to end without the CLI: load → catalog → compile → graph. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildCatalog, selectTargets } from '../src/catalog/catalog.ts';
import { compile } from '../src/catalog/compile.ts';
import { buildGraph } from '../src/graph/build.ts';
import { Diagnostics, InputError } from '../src/lib/errors.ts';
import { loadSite } from '../src/site/load.ts';
import { makeSite } from './helpers/cli.ts';

async function build(files: Record<string, string>, target = 't1', cliVars: Record<string, unknown> = {}) {
  const d = new Diagnostics();
  const catalog = buildCatalog(await loadSite(makeSite(files), d), d);
  d.throwIfAny();
  const run = compile(catalog, catalog.targets.get(target)!, { facts: { os_family: 'debian' }, cliVars });
  return { catalog, run, graph: buildGraph(run) };
}

const oneTarget = (run: string, extra = '') => `targets:\n  t1:\n    executor: local\n    run: [${run}]\n${extra}`;

test('variable precedence: component < all < role < group < target < --var', async () => {
  const { run } = await build({
    'cairn.yaml': 'vars: { a: all, b: all, c: all, d: all, e: all }\n' +
      'roles:\n  r: { vars: { b: role, c: role, d: role, e: role }, run: [s] }\n' +
      'groups:\n  g: { targets: [t1], roles: [r], vars: { c: group, d: group, e: group } }\n' +
      'targets:\n  t1: { executor: local, vars: { d: target, e: target } }\n',
    'components/comp/component.yaml': 'vars: { a: component, z: component }\n',
    'components/comp/states/s.yaml': 's:\n  - file: /tmp/x\n    content: "<%= it.vars.a %>"\n',
  }, 't1', { e: 'cli' });
  assert.deepEqual(run.vars, { a: 'all', z: 'component', b: 'role', c: 'group', d: 'target', e: 'cli' });
});

test('maps merge deeply across layers, lists replace', async () => {
  const { run } = await build({
    'cairn.yaml': oneTarget('s', 'vars: { app: { port: 80, hosts: [a, b] } }\n'),
    'vars/targets/t1.yaml': 'app: { hosts: [c] }\n',
    'states/s.yaml': 's: []\n',
  });
  assert.deepEqual(run.vars, { app: { port: 80, hosts: ['c'] } });
});

test('groups by explicit list, glob and /regex/', async () => {
  const d = new Diagnostics();
  const catalog = buildCatalog(await loadSite(makeSite({
    'cairn.yaml': 'targets:\n  web1: {}\n  web2: {}\n  db1: {}\ngroups:\n  web: { match: "web*" }\n  dbs: { match: "/^db\\\\d$/" }\n  some: { targets: [web2, db1] }\n',
  }), d), d);
  d.throwIfAny();
  const names = (sel: string) => selectTargets(catalog, [sel]).map((t) => t.name);
  assert.deepEqual(names('web'), ['web1', 'web2']);
  assert.deepEqual(names('dbs'), ['db1']);
  assert.deepEqual(names('some'), ['web2', 'db1']);
  assert.deepEqual(names('*1'), ['web1', 'db1']);
});

test('the same state invoked three times gives three invocations with their own params', async () => {
  const { run, graph } = await build({
    'cairn.yaml': oneTarget('{ site: { d: a } }, { site: { d: b } }, { site: { d: c } }'),
    'states/site.yaml': 'site:\n  params: { d: ~ }\n  parts:\n    - file: /srv/<%= it.params.d %>\n      content: "<%= it.params.d %>"\n',
  });
  assert.deepEqual(run.invocations.map((i) => i.params), [{ d: 'a' }, { d: 'b' }, { d: 'c' }]);
  assert.deepEqual(graph.order, ['file:/srv/a', 'file:/srv/b', 'file:/srv/c']);
});

test('identical invocations are one; identical declarations are one node', async () => {
  const { run, graph } = await build({
    'cairn.yaml': oneTarget('a, b, a'),
    'states/s.yaml': 'a:\n  - directory: /srv\nb:\n  - directory: /srv\n  - file: /srv/x\n',
  });
  assert.equal(run.invocations.length, 2);
  assert.deepEqual(graph.order, ['directory:/srv', 'file:/srv/x']);
  assert.equal(graph.nodes[0]!.declarations.length, 2);
});

test('differing declarations across invocations become stages ending in the last one', async () => {
  const { graph } = await build({
    'cairn.yaml': oneTarget('{ conf: { v: 1 } }, other, { conf: { v: 2 } }'),
    'states/s.yaml': 'conf:\n  params: { v: ~ }\n  parts:\n    - file: /etc/c\n      content: "<%= it.params.v %>"\nother:\n  - file: /etc/o\n',
  });
  assert.deepEqual(graph.order, ['file:/etc/c@1', 'file:/etc/o', 'file:/etc/c']);
  assert.deepEqual(graph.nodes[0]!.stage, { index: 1, of: 2, end: 'file:/etc/c' });
  assert.ok(graph.edges.some((e) => e.kind === 'stage' && e.from === 'file:/etc/c@1' && e.to === 'file:/etc/c'));
});

test('order: declaration order, except where requisites pull a node earlier', async () => {
  const { graph } = await build({
    'cairn.yaml': oneTarget('first, second'),
    'states/s.yaml': 'first:\n  - file: /a\n    require: file:/z\n  - file: /b\nsecond:\n  - file: /z\n  - file: /y\n    before: file:/b\n',
  });
  assert.deepEqual(graph.order, ['file:/z', 'file:/a', 'file:/y', 'file:/b']);
});

test('a reference resolves inside the same invocation first', async () => {
  const { graph } = await build({
    'cairn.yaml': oneTarget('{ s: { n: 1 } }, { s: { n: 2 } }'),
    'states/s.yaml': 's:\n  params: { n: ~ }\n  parts:\n    - file: /f<%= it.params.n %>\n      id: conf\n    - exec: run <%= it.params.n %>\n      require: conf\n',
  });
  const requires = graph.edges.filter((e) => e.kind === 'require').map((e) => `${e.from} -> ${e.to}`);
  assert.deepEqual(requires, ['file:/f1 -> exec:run 1', 'file:/f2 -> exec:run 2']);
});

test('the same part id from several invocations, referenced from elsewhere, is ambiguous', async () => {
  await assert.rejects(build({
    'cairn.yaml': oneTarget('{ s: { n: 1 } }, { s: { n: 2 } }, user'),
    'states/s.yaml': 's:\n  params: { n: ~ }\n  parts:\n    - file: /f<%= it.params.n %>\n      id: conf\nuser:\n  - exec: x\n    require: conf\n',
  }), (err: unknown) => err instanceof InputError && /ambiguous/.test(err.diagnostics[0]!.message));
});

test('a meta state includes others, and requiring it requires all their parts', async () => {
  const { run, graph } = await build({
    'cairn.yaml': oneTarget('stack, app'),
    'states/s.yaml': 'stack:\n  include: [db, web]\ndb:\n  - package: postgresql\nweb:\n  - package: nginx\napp:\n  - exec: deploy\n    require: stack\n',
  });
  assert.deepEqual(run.invocations.map((i) => i.state), ['db', 'web', 'stack', 'app']);
  const before = graph.edges.filter((e) => e.to === 'exec:deploy').map((e) => e.from).sort();
  assert.deepEqual(before, ['package:nginx', 'package:postgresql']);
});

test('a notified lazy state is added as a handler; listen is notify reversed', async () => {
  const { run, graph } = await build({
    'cairn.yaml': oneTarget('s, h2'),
    'states/s.yaml': 's:\n  - file: /c\n    notify: h1\nh1:\n  lazy: true\n  parts:\n    - exec: reload\nh2:\n  lazy: true\n  defer: true\n  parts:\n    - exec: audit\n      listen: file:/c\n',
  });
  assert.deepEqual(run.invocations.map((i) => `${i.state}:${i.via}`), ['s:target t1', 'h2:target t1', 'h1:notified']);
  assert.deepEqual(graph.order, ['file:/c']);
  // Handlers go in their states' declaration order (h1 is declared first), not the run list's.
  assert.deepEqual(graph.handlers, ['exec:reload', 'exec:audit']);
  assert.deepEqual(graph.edges.map((e) => `${e.from} ${e.kind} ${e.to}`).sort(), ['file:/c notify exec:audit', 'file:/c notify exec:reload']);
});

test('a transition is ordered before its resource and every prior_to node', async () => {
  const { graph } = await build({
    'cairn.yaml': oneTarget('s'),
    'states/s.yaml': 's:\n  - exec: start\n    id: svc\n  - file: /conf\n  - transition: stop\n    resource: svc\n    attributes: { unless: "false" }\n    prior_to: file:/conf\n',
  });
  assert.deepEqual(graph.order, ['transition:stop', 'exec:start', 'file:/conf']);
});

test('inline states in cairn.yaml render each string as a template', async () => {
  const { run } = await build({
    'cairn.yaml': oneTarget('motd', 'vars: { motd: hi }\nstates:\n  motd:\n    - file: /etc/motd\n      content: "<%= it.vars.motd %> from <%= it.target.name %>"\n'),
  });
  assert.equal(run.invocations[0]!.parts[0]!.attributes.content, 'hi from t1');
});

test('file templates render with part vars over it.vars, from the component first', async () => {
  const { run } = await build({
    'cairn.yaml': oneTarget('s', 'vars: { who: site, port: 1 }\n'),
    'components/c/states/s.yaml': 's:\n  - file: /etc/app.conf\n    template: templates/app.eta\n    vars: { port: 2 }\n',
    'components/c/templates/app.eta': 'component <%= it.vars.who %>:<%= it.vars.port %>\n',
    'templates/app.eta': 'site template\n',
  });
  assert.equal(run.invocations[0]!.parts[0]!.attributes.content, 'component site:2\n');
});

test('a TypeScript state file produces the same parts as YAML', async () => {
  const { run } = await build({
    'cairn.yaml': oneTarget('{ web: { port: 81 } }', 'vars: { name: x }\n'),
    'states/web.ts': "import { state, file } from 'cairn';\nexport const web = state({ params: { port: 80 }, parts: (it) => [file(`/etc/${it.vars.name}.conf`, { content: `port ${it.params.port}` })] });\n",
  });
  const part = run.invocations[0]!.parts[0]!;
  assert.equal(part.ref, 'file:/etc/x.conf');
  assert.equal(part.attributes.content, 'port 81');
  assert.equal(part.pos?.file, 'states/web.ts');
});

test('attributes named like types (group, user) belong to the part whose type comes first', async () => {
  const { run } = await build({
    'cairn.yaml': oneTarget('s'),
    'states/s.yaml': 's:\n  - file: /etc/x\n    group: staff\n    owner: root\n  - exec: id\n    user: nobody\n',
  });
  assert.deepEqual(run.invocations[0]!.parts.map((p) => [p.ref, p.attributes.group ?? p.attributes.user]), [['file:/etc/x', 'staff'], ['exec:id', 'nobody']]);
});
