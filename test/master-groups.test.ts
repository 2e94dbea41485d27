/**
 * The groups `GET /api/v1/targets` shows come from the pushed head revision's catalog
 * (cli/master-compile.ts headGroupsFrom): none before a push, each target's groups (declared on
 * the target, listed by a group, matched by a group) after one, and the next push's groups once
 * it is the head.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { headGroupsFrom } from '../src/cli/master-compile.ts';
import { openStore } from '../src/store/index.ts';
import { runCli, tempDir } from './helpers/cli.ts';

test('groups from the pushed head revision: none before a push, declared, listed and matched after, the new head after another push', async (t) => {
  const dir = tempDir('cairn-head-groups-');
  const url = `sqlite:${join(dir, 'store.db')}`;
  const store = await openStore(url);
  t.after(() => store.close());
  const headGroups = headGroupsFrom(store, join(dir, 'work'));
  assert.equal(await headGroups(), undefined, 'nothing pushed');

  const site = join(dir, 'site');
  mkdirSync(site);
  const push = async (yaml: string) => {
    writeFileSync(join(site, 'cairn.yaml'), yaml);
    const r = await runCli(['push', '--site', site, '--store', url]);
    assert.equal(r.status, 0, r.stderr);
  };
  const target = (name: string, extra = '') => `  ${name}: { executor: local${extra} }\n`;
  await push(`groups:\n  db: {}\n  web: { match: "web*" }\n  edge: { targets: [web2] }\ntargets:\n${target('web1')}${target('web2')}${target('db1', ', groups: [db]')}`);
  const first = await headGroups();
  assert.ok(first);
  assert.deepEqual(Object.fromEntries(first.groups), { web1: ['web'], web2: ['web', 'edge'], db1: ['db'] });
  assert.equal(await headGroups().then((g) => g?.revision), first.revision, 'the same head answers the same');

  await push(`groups:\n  db: { targets: [db1, web1] }\ntargets:\n${target('web1')}${target('db1')}`);
  const second = await headGroups();
  assert.notEqual(second?.revision, first.revision);
  assert.deepEqual(Object.fromEntries(second!.groups), { web1: ['db'], db1: ['db'] });
});
