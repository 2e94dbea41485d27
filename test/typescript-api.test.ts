/** A user's TypeScript state file type-checks against the `cairn` package's published types. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { makeSite } from './helpers/cli.ts';

const repo = resolve(import.meta.dirname, '..');

test('the typed API rejects unknown attributes and wrong types in the editor (tsc)', () => {
  const dir = makeSite({
    'package.json': '{ "type": "module" }\n',
    'tsconfig.json': JSON.stringify({ compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', noEmit: true, target: 'ES2022' }, include: ['states'] }),
    'states/good.ts': "import { state, file, exec, line } from 'cairn';\n" +
      "export const good = state({ params: { port: 80 }, parts: (it) => [\n" +
      "  file(`/etc/app-${it.params.port}.conf`, { content: 'x', mode: '0644', notify: 'reload' }),\n" +
      "  line('/etc/hosts', { text: '127.0.0.1 app', match: '^127.0.0.1 ' }),\n" +
      "  exec('reload', { argv: ['/bin/true'], onchanges: ['file:/etc/hosts'] }),\n] });\n",
    'states/bad.ts': "import { state, file } from 'cairn';\n" +
      "export const bad = state(() => [file('/etc/y', { contnet: 'typo' }), file('/etc/z', { mode: 644 })]);\n",
  });
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(repo, join(dir, 'node_modules/cairn'));
  symlinkSync(join(repo, 'node_modules/zod'), join(dir, 'node_modules/zod'));
  const r = spawnSync(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', dir], { encoding: 'utf8' });
  const out = r.stdout + r.stderr;
  assert.notEqual(r.status, 0);
  assert.doesNotMatch(out, /good\.ts/, out);
  assert.match(out, /bad\.ts\(2,50\): error TS2561: .*'contnet' does not exist.*Did you mean to write 'content'\?/);
  assert.match(out, /bad\.ts\(2,\d+\): error TS2322: Type 'number' is not assignable to type 'string'/);
});
