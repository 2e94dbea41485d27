/**
 * Golden tests of `cairn show --json` (and the human form) on example sites. Regenerate with
 * UPDATE_GOLDEN=1 after a deliberate change, and review the diff.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { runCli } from './helpers/cli.ts';

const repo = resolve(import.meta.dirname, '..');
const facts = join(repo, 'test/fixtures/facts-debian.json');

const cases = [
  { name: 'example-web1', site: 'examples/site', target: 'web1' },
  { name: 'example-local', site: 'examples/site', target: 'local' },
  { name: 'stages', site: 'test/fixtures/sites/stages', target: 'h1' },
  { name: 'typescript', site: 'test/fixtures/sites/typescript', target: 't1' },
];

for (const c of cases) {
  for (const format of ['json', 'txt'] as const) {
    test(`golden: show ${c.name} (${format})`, async () => {
      const args = ['show', '--site', c.site, '-t', c.target, '--facts', facts, ...(format === 'json' ? ['--json'] : [])];
      const r = await runCli(args, { cwd: repo });
      assert.equal(r.status, 0, r.stderr);
      const file = join(repo, 'test/golden', `${c.name}.${format}`);
      // Written only when asked: a missing golden file is a failure, never a pass that writes itself.
      if (process.env.UPDATE_GOLDEN) writeFileSync(file, r.stdout);
      assert.ok(existsSync(file), `${file} is missing: make it with UPDATE_GOLDEN=1 and review it`);
      assert.equal(r.stdout, readFileSync(file, 'utf8'));
    });
  }
}
