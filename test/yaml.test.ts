import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '../src/lib/errors.ts';
import { keyPosOf, LineIndex, posOf } from '../src/lib/positions.ts';
import { parseYaml } from '../src/site/yaml.ts';

const parse = (text: string) => {
  const lines = new LineIndex(text);
  return parseYaml(text, (o, length) => ({ file: 'f.yaml', ...lines.lineCol(o), length }));
};

test('keys and values keep their positions', () => {
  const doc = parse('a:\n  b: 1\n  list:\n    - x\n    - y\n') as { a: { b: number; list: string[] } };
  assert.deepEqual(doc, { a: { b: 1, list: ['x', 'y'] } });
  assert.equal(keyPosOf(doc.a, 'b')!.line, 2);
  assert.equal(keyPosOf(doc.a, 'b')!.col, 3);
  assert.equal(posOf(doc.a.list, 1)!.line, 5);
  assert.equal(posOf(doc.a.list, 1)!.col, 7);
});

test('aliases are resolved', () => {
  assert.deepEqual(parse('a: &x { k: 1 }\nb: *x\n'), { a: { k: 1 }, b: { k: 1 } });
});

test('duplicate keys are an error at the second key', () => {
  assert.throws(() => parse('a: 1\na: 2\n'), (err: unknown) => err instanceof InputError && err.diagnostics[0]!.pos!.line === 2);
});

test('every syntax error of a document is reported', () => {
  assert.throws(() => parse('a: [1\nb: {\n'), (err: unknown) => err instanceof InputError && err.diagnostics.length >= 1);
});
