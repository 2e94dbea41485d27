import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InputError } from '../src/lib/errors.ts';
import { compileTemplate } from '../src/site/template.ts';

const it = { vars: { name: 'web', list: ['a', 'b'], obj: { k: 1 } }, params: {}, facts: {}, os: {}, target: {} };

test('interpolation and control tags render like Eta, with trim_blocks + lstrip_blocks', () => {
  const t = compileTemplate('a: <%= it.vars.name %>\n  <% for (const x of it.vars.list) { %>\n- <%= x %>\n  <% } %>\nend\n', 'f.yaml');
  assert.equal(t.render(it).text, 'a: web\n- a\n- b\nend\n');
});

test('an interpolation never eats the newline after it', () => {
  assert.equal(compileTemplate('<%= it.vars.name %>\nx\n', 'f').render(it).text, 'web\nx\n');
});

test('raw tags and explicit trim modifiers', () => {
  assert.equal(compileTemplate('<%~ it.vars.name %>', 'f').render(it).text, 'web');
  assert.equal(compileTemplate('a\n<%-= it.vars.name -%>\nb', 'f').render(it).text, 'awebb');
  assert.equal(compileTemplate('a   <%_= it.vars.name _%>   b', 'f').render(it).text, 'awebb');
});

test('objects are written as JSON, null as nothing', () => {
  assert.equal(compileTemplate('<%= it.vars.obj %>|<%= null %>', 'f').render(it).text, '{"k":1}|');
});

test('output offsets map back to source offsets', () => {
  const src = 'x: <%= it.vars.name %>\ny: 1\n';
  const r = compileTemplate(src, 'f').render(it);
  assert.equal(r.text, 'x: web\ny: 1\n');
  assert.equal(r.sourceOffset(r.text.indexOf('y')), src.indexOf('y'));
  assert.equal(r.sourceOffset(r.text.indexOf('web')), src.indexOf('it.vars'));
});

test('an undefined value is an error at the tag, with a hint', () => {
  const t = compileTemplate('a\nb: <%= it.vars.missing %>\n', 'f.yaml');
  assert.throws(() => t.render(it), (err: unknown) => {
    assert.ok(err instanceof InputError);
    assert.deepEqual(err.diagnostics[0]!.pos, { file: 'f.yaml', line: 2, col: 8 });
    assert.match(err.diagnostics[0]!.message, /`it\.vars\.missing` is undefined/);
    return true;
  });
});

test('a runtime error names the tag position', () => {
  const t = compileTemplate('x\n  <%= it.vars.nope.deeper %>', 'f');
  assert.throws(() => t.render(it), (err: unknown) => err instanceof InputError && err.diagnostics[0]!.pos!.line === 2
    && /template error: .*reading 'deeper'/.test(err.diagnostics[0]!.message));
});

test('a JavaScript syntax error names the tag position', () => {
  const t = compileTemplate('ok\n<% if (x { %>\nbody\n<% } %>\n', 'f');
  assert.throws(() => t.render(it), (err: unknown) => err instanceof InputError && err.diagnostics[0]!.pos!.line === 2
    && /template syntax error/.test(err.diagnostics[0]!.message));
});

test('an unclosed tag is reported where it opens', () => {
  assert.throws(() => compileTemplate('a\n  <%= it.x\n', 'f'), (err: unknown) =>
    err instanceof InputError && err.diagnostics[0]!.pos!.line === 2 && err.diagnostics[0]!.pos!.col === 3);
});

test('%> inside a string in a tag does not close the tag', () => {
  assert.equal(compileTemplate('<%= "%>" %>', 'f').render(it).text, '%>');
});

test('the skeleton keeps literal text and stands a placeholder for values', () => {
  const t = compileTemplate('<% if (false) { %>\na: <%= it.vars.name %>\n<% } %>\n', 'f');
  assert.equal(t.skeleton().text, 'a: _\n');
});

test('a template string inside a larger file reports positions relative to that file', () => {
  const t = compileTemplate('v: <%= it.vars.nope %>', 'cairn.yaml', { file: 'cairn.yaml', line: 10, col: 14 });
  assert.throws(() => t.render(it), (err: unknown) => err instanceof InputError
    && err.diagnostics[0]!.pos!.line === 10 && err.diagnostics[0]!.pos!.col === 21);
});
