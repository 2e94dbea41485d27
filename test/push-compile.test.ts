/**
 * `cairn push` compiles every target of the site before it uploads (DESIGN §8): a site that does
 * not compile is refused with exit 2 and positioned errors, and the store is left as it was.
 * SQLite only; the facts are each target's agent's last report, else the assumed ones.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { KEYS } from '../src/store/documents.ts';
import { openStore } from '../src/store/index.ts';
import { makeSite, runCli } from './helpers/cli.ts';

const CAIRN_YAML = 'targets:\n  web1: { executor: ssh, host: web1.example, run: [s] }\n  local: { executor: local, run: [s] }\n';
const GOOD = 's:\n  - file: /tmp/<%= it.facts.hostname %>-<%= it.os.package_manager %>\n    content: "hi\\n"\n';

/** The head and the number of revisions: what a refused push must leave as it was. */
async function storeState(url: string): Promise<{ head: string | undefined; revisions: number }> {
  const store = await openStore(url);
  try {
    const head = await store.get(KEYS.head);
    return { head: head?.value.toString('utf8'), revisions: (await store.list('/cairn/site/revisions/')).length };
  } finally {
    await store.close();
  }
}

const broken: { name: string; files: Record<string, string>; at: string; message: RegExp }[] = [
  {
    name: 'an attribute typo',
    files: { 'states/s.yaml': 's:\n  - file: /tmp/x\n    contnet: hi\n' },
    at: 'states/s.yaml:3:5',
    message: /unknown attribute 'contnet' \(did you mean 'content'\?\)/,
  },
  {
    name: 'an undefined variable',
    files: { 'states/s.yaml': 's:\n  - file: /tmp/x\n    content: <%= it.vars.motd %>\n' },
    at: 'states/s.yaml:3:18',
    message: /`it\.vars\.motd` is undefined/,
  },
  {
    name: 'a dangling require',
    files: { 'states/s.yaml': 's:\n  - file: /tmp/x\n    require: package:nginx\n' },
    at: 'states/s.yaml:3:14',
    message: /require 'package:nginx' matches no node/,
  },
  {
    name: 'a cycle',
    files: { 'states/s.yaml': 's:\n  - file: /tmp/a\n    require: file:/tmp/b\n  - file: /tmp/b\n    require: file:/tmp/a\n' },
    at: 'states/s.yaml:5:14',
    message: /dependency cycle: file:\/tmp\/a/,
  },
  {
    name: 'a template error',
    files: { 'states/s.yaml': 's:\n  - file: /tmp/x\n    template: templates/x.eta\n', 'templates/x.eta': 'a\n<%= it.facts.nope.deeper %>\n' },
    at: 'templates/x.eta:2:5',
    message: /template error: Cannot read properties of undefined \(reading 'deeper'\)/,
  },
];

describe('push compiles every target first (SQLite)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-push-compile-'));
  const url = `sqlite:${join(dir, 'store.db')}`;
  const site = makeSite({ 'cairn.yaml': CAIRN_YAML, 'states/s.yaml': GOOD });
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

  test('a site that compiles is pushed; the targets without an agent compile with assumed facts, said on stderr', async () => {
    const r = await runCli(['push', '--site', site, '--store', url]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^revision [0-9a-f]{16} \(2 added/);
    assert.match(r.stderr, /no agent has reported facts for web1, local: compiled as a generic debian 12 host \(os_family debian, x86_64, systemd, apt/);
    assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, 'one line');
  });

  for (const c of broken) {
    test(`${c.name}: exit 2 with the positioned error, nothing uploaded`, async () => {
      const before = await storeState(url);
      const bad = makeSite({ 'cairn.yaml': CAIRN_YAML, ...c.files });
      const r = await runCli(['push', '--site', bad, '--store', url]);
      assert.equal(r.status, 2, `stderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
      assert.ok(r.stderr.includes(`--> ${c.at}`), `expected position ${c.at} in:\n${r.stderr}`);
      assert.match(r.stderr, c.message);
      assert.equal(r.stdout, '');
      assert.deepEqual(await storeState(url), before, 'the head and the revisions are as they were');
      const diff = await runCli(['push', '--site', bad, '--store', url, '--diff']);
      assert.equal(diff.status, 2, '--diff checks the same');
    });
  }

  test("a target's facts are its agent's last report: a site that needs them compiles only with them", async () => {
    // Only Alpine has what this state needs: with assumed (Debian) facts it cannot compile.
    const alpineOnly = makeSite({
      'cairn.yaml': 'targets:\n  web1: { executor: ssh, host: web1.example, run: [s] }\nvars:\n  motd: { alpine: "welcome to alpine" }\n',
      'states/s.yaml': 's:\n  - file: /etc/motd\n    content: <%= it.vars.motd[it.facts.os_family] %>\n',
    });
    const before = await storeState(url);
    const refused = await runCli(['push', '--site', alpineOnly, '--store', url]);
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /no agent has reported facts for web1: compiled as a generic debian/);
    assert.ok(refused.stderr.includes('--> states/s.yaml:3:18'), refused.stderr);
    assert.deepEqual(await storeState(url), before);

    const store = await openStore(url);
    try {
      const facts = { kernel: 'linux', os_family: 'alpine', distribution: 'alpine', release: '3.20.1', package_manager: 'apk', init_system: 'openrc', hostname: 'web1' };
      await store.put(KEYS.agent('web1'), JSON.stringify({ name: 'web1', host: 'web1', version: 'test', facts, updated: new Date().toISOString() }));
    } finally {
      await store.close();
    }
    const pushed = await runCli(['push', '--site', alpineOnly, '--store', url]);
    assert.equal(pushed.status, 0, pushed.stderr);
    assert.equal(pushed.stderr, '', 'nothing assumed');
    const after = await storeState(url);
    assert.equal(after.revisions, before.revisions + 1);
    assert.notEqual(after.head, before.head);
  });

  test('a site that does not load is refused before the store is opened', async () => {
    const bad = makeSite({ 'cairn.yaml': 'targets:\n  web1: { executor: ssh, run: [s] }\n  bad: [\n' });
    const missing = join(dir, 'never-made.db');
    const r = await runCli(['push', '--site', bad, '--store', `sqlite:${missing}`]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--> cairn\.yaml:\d+:\d+/);
    assert.equal(existsSync(missing), false, 'no store was made');
  });
});
