/**
 * Bad input through the CLI: every case must exit 2, name the file, line and column, and say what
 * is wrong. Each case is a small site; `show` compiles it without touching anything.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeSite, runCli } from './helpers/cli.ts';
import { badInputCases } from './bad-input.cases.ts';

for (const c of badInputCases) {
  test(`bad input: ${c.name}`, async () => {
    const site = makeSite(c.files);
    const r = await runCli(['show', '--site', site, ...(c.args ?? [])]);
    assert.equal(r.status, 2, `exit code; stderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
    for (const e of c.expect) {
      const where = e.at ? `  --> ${e.at}` : undefined;
      if (where) assert.ok(r.stderr.includes(where), `expected position ${e.at} in:\n${r.stderr}`);
      assert.match(r.stderr, e.message, `expected message ${e.message} in:\n${r.stderr}`);
    }
    assert.match(r.stderr, /nothing was run/);
  });
}
