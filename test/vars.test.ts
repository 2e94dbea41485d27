import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { deepMerge, mergeAll, parseCliVars } from '../src/catalog/vars.ts';

test('maps merge deeply; lists and scalars replace', () => {
  const merged = mergeAll([
    { a: { x: 1, y: [1, 2] }, s: 'low' },
    { a: { y: [3], z: true }, s: 'high' },
  ]);
  assert.deepEqual(merged, { a: { x: 1, y: [3], z: true }, s: 'high' });
});

test('deepMerge does not modify its inputs', () => {
  const base = { a: { b: 1 } };
  deepMerge(base, { a: { c: 2 } });
  assert.deepEqual(base, { a: { b: 1 } });
});

test('--var values are YAML scalars; dotted keys nest; @file reads YAML', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-vars-'));
  writeFileSync(join(dir, 'users.yaml'), '- alice\n- bob\n');
  assert.deepEqual(parseCliVars(['n=3', 'flag=true', 's=hello world', 'nginx.port=8080', 'users=@users.yaml', 'e='], dir), {
    n: 3, flag: true, s: 'hello world', nginx: { port: 8080 }, users: ['alice', 'bob'], e: '',
  });
});

test('--var without = is an input error', () => {
  assert.throws(() => parseCliVars(['oops'], '.'), /expected key=value/);
});
