/**
 * Other targets' data in templates (DESIGN §4a): `it.targets` and `it.groups`, with the facts of
 * targets in the run and, from a store's agent records, of those that are not.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { KEYS } from '../src/store/documents.ts';
import { openStore } from '../src/store/index.ts';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';

// The cache is keyed by the build; run from source there is none, so this file's runs get one.
(globalThis as { __CAIRN_BUILD__?: string }).__CAIRN_BUILD__ = `source-${process.pid}`;

const TEMPLATE = [
  '<% for (const t of it.targets.filter((t) => t.groups.includes("web"))) { %>',
  'server <%= t.name %>:<%= t.vars.port %> <%= t.facts?.address ?? "address unknown" %>',
  '<% } %>',
  'web: <%= it.groups.web.join(",") %>',
  'me: <%= it.targets.find((t) => t.name === it.target.name).facts.kernel %>',
  '',
].join('\n');

function site() {
  const root = tempDir('cairn-root-');
  const stateDir = join(tempDir('cairn-state-'), 'state');
  const dir = makeSite({
    'cairn.yaml': [
      'targets:',
      '  lb1:',
      '    executor: local',
      `    state_dir: ${stateDir}`,
      '    run: [lb]',
      ...[1, 2, 3].map((i) => `  web${i}:\n    executor: ssh\n    host: 192.0.2.${i}\n    vars: { port: ${8080 + i} }\n    run: [lb]`),
      'groups:',
      '  web:',
      '    match: "web*"',
      `vars:\n  root: ${root}`,
      '',
    ].join('\n'),
    'states/lb.yaml': 'lb:\n  - file: <%= it.vars.root %>/lb.conf\n    template: templates/lb.conf.eta\n',
    'templates/lb.conf.eta': TEMPLATE,
  });
  return { dir, root, conf: join(root, 'lb.conf') };
}

test('a template lists the targets of a group with their vars; facts of targets not in the run are absent without a store', async () => {
  const s = site();
  const plan = await runCli(['plan', '--site', s.dir, '-t', 'lb1', '--diff'], { env: { CAIRN_STORE: undefined } });
  assert.equal(plan.status, 0, plan.stderr);
  assert.match(plan.stdout, /\+server web1:8081 address unknown/);
  const apply = await runCli(['apply', '--site', s.dir, '-t', 'lb1'], { env: { CAIRN_STORE: undefined } });
  assert.equal(apply.status, 0, apply.stderr);
  const conf = readFileSync(s.conf, 'utf8');
  assert.match(conf, /^server web1:8081 address unknown\nserver web2:8082 address unknown\nserver web3:8083 address unknown\nweb: web1,web2,web3\nme: \S+\n$/);
  assert.doesNotMatch(conf, /me: undefined/, "the run's own target is seen with its facts");
});

test("with a store, a target not in the run is seen with its agent's last facts; a change to them recompiles, the cache notwithstanding", async () => {
  const s = site();
  const url = `sqlite:${join(tempDir('cairn-store-'), 'store.db')}`;
  const register = async (address: string) => {
    const store = await openStore(url);
    try {
      await store.put(KEYS.agent('web2'), JSON.stringify({ name: 'web2', facts: { address } }));
    } finally {
      await store.close();
    }
  };
  await register('198.51.100.2');
  const env = { CAIRN_STORE: url };
  const first = await runCli(['apply', '--site', s.dir, '-t', 'lb1'], { env });
  assert.equal(first.status, 0, first.stderr);
  assert.match(readFileSync(s.conf, 'utf8'), /server web1:8081 address unknown\nserver web2:8082 198\.51\.100\.2\n/);
  const again = await runCli(['apply', '--site', s.dir, '-t', 'lb1'], { env });
  assert.match(again.stdout, /0 changed/);

  await register('198.51.100.22');
  const plan = await runCli(['plan', '--site', s.dir, '-t', 'lb1', '--diff'], { env });
  assert.equal(plan.status, 0, plan.stderr);
  assert.match(plan.stdout, /\+server web2:8082 198\.51\.100\.22/);
  await runCli(['apply', '--site', s.dir, '-t', 'lb1'], { env });
  assert.match(readFileSync(s.conf, 'utf8'), /server web2:8082 198\.51\.100\.22\n/);

  // Without the store the record is not read: absent again, whatever the cache holds.
  const none = await runCli(['plan', '--site', s.dir, '-t', 'lb1', '--diff'], { env: { CAIRN_STORE: undefined } });
  assert.match(none.stdout, /\+server web2:8082 address unknown/);
});

test('a run that never reads it.targets is cached without other targets\' facts in its key', async () => {
  const s = site();
  writeFileSync(join(s.dir, 'templates/lb.conf.eta'), 'static <%= it.vars.root.length > 0 %>\n');
  const url = `sqlite:${join(tempDir('cairn-store-'), 'store.db')}`;
  const store = await openStore(url);
  await store.put(KEYS.agent('web2'), JSON.stringify({ name: 'web2', facts: { address: 'a' } }));
  await store.close();
  const r1 = await runCli(['apply', '--site', s.dir, '-t', 'lb1'], { env: { CAIRN_STORE: url } });
  assert.equal(r1.status, 0, r1.stderr);
  const compiled = () => readdirSync(join(s.dir, '.cairn/cache')).filter((f) => f.startsWith('compiled-')).length;
  assert.equal(compiled(), 1);
  const store2 = await openStore(url);
  await store2.put(KEYS.agent('web2'), JSON.stringify({ name: 'web2', facts: { address: 'b' } }));
  await store2.close();
  await runCli(['apply', '--site', s.dir, '-t', 'lb1'], { env: { CAIRN_STORE: url } });
  assert.equal(compiled(), 1, 'the same entry: the run does not depend on web2');
});
