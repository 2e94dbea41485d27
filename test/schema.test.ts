import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsonSchema } from '../src/cli/schema.ts';
import { allResourceTypes } from '../src/resources/index.ts';
import { runCli } from './helpers/cli.ts';

test('cairn schema prints a JSON Schema with one part variant per resource type', async () => {
  const r = await runCli(['schema']);
  assert.equal(r.status, 0, r.stderr);
  const schema = JSON.parse(r.stdout) as { $schema: string };
  assert.match(schema.$schema, /json-schema\.org/);
  const text = r.stdout;
  for (const type of allResourceTypes()) assert.ok(text.includes(`"${type.name}"`), `schema mentions ${type.name}`);
  for (const meta of ['require', 'notify', 'onchanges', 'allow_rebuild']) assert.ok(text.includes(`"${meta}"`));
});

test('the file variant lists its attributes and forbids others', () => {
  const text = JSON.stringify(jsonSchema('state'));
  assert.match(text, /"template":\{[^}]*"description":"a site path rendered with Eta/);
  assert.match(text, /"additionalProperties":false/);
});

test('schemas for cairn.yaml and the inventory', () => {
  const site = jsonSchema('site') as { properties: Record<string, unknown> };
  assert.deepEqual(Object.keys(site.properties).sort(), ['defaults', 'groups', 'master', 'name', 'roles', 'states', 'store', 'targets', 'timeout', 'vars']);
  const inv = jsonSchema('inventory') as { properties: Record<string, unknown> };
  assert.deepEqual(Object.keys(inv.properties).sort(), ['groups', 'targets']);
});

test("a type's internal and reference attributes are attributes of its schema, and internal ones stay out of the JSON Schema", () => {
  for (const type of allResourceTypes()) {
    for (const name of [...type.internal, ...Object.keys(type.references ?? {})]) {
      assert.ok(name in type.schema.shape, `${type.name}: ${name} is not an attribute of its schema`);
    }
  }
  const file = (jsonSchema('state') as { $defs: Record<string, { properties: Record<string, unknown> }> }).$defs['part-file']!;
  assert.ok('content' in file.properties);
  for (const name of ['source_base64', 'content_sha256']) assert.ok(!(name in file.properties), `${name} is internal`);
});
