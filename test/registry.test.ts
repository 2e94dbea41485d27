/**
 * Type folders register themselves (DESIGN §6): adding a type is adding a folder. The first test
 * keeps the committed registries current; the second adds a folder to a copy of the source tree
 * and follows the new type through the compiler, the engine, `cairn schema` and the TypeScript
 * API, editing no other file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { tempDir } from './helpers/cli.ts';

const repo = resolve(import.meta.dirname, '..');

function run(cmd: string, args: string[], cwd: string) {
  return spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
}

test('the committed type registries are the ones the type folders make (node scripts/registry.mjs --check)', () => {
  const r = run(process.execPath, ['scripts/registry.mjs', '--check'], repo);
  assert.equal(r.status, 0, r.stderr);
});

test('a folder without providers.ts is refused by the registry, naming it', () => {
  const copy = tempDir('cairn-registry-');
  cpSync(join(repo, 'src'), join(copy, 'src'), { recursive: true });
  mkdirSync(join(copy, 'src/resources/half'));
  writeFileSync(join(copy, 'src/resources/half/type.ts'), 'export default {};\n');
  const r = run(process.execPath, [join(repo, 'scripts/registry.mjs'), copy], repo);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /src\/resources\/half: has a type\.ts but no providers\.ts/);
});

const MOTD_TYPE = `import { z } from 'zod';
import { defineType, update } from '../define.ts';

export const motdType = defineType({
  name: 'motd',
  key: 'path',
  description: 'a message of the day (a test type added as a folder)',
  schema: z.strictObject({
    path: z.string().min(1),
    message: update(z.string().describe('what the file says')),
    shout: z.boolean().optional(),
  }),
  stateful: false,
});
export default motdType;
`;

const MOTD_PROVIDERS = `import { defineProvider, type Desired } from '../type.ts';
import type { motdType } from './type.ts';

const said = (d: Desired<typeof motdType>) => (d.shout ? d.message.toUpperCase() : d.message);

const plain = defineProvider<typeof motdType>({
  type: 'motd',
  name: 'plain',
  suitable: () => true,
  async read(ctx, desired) {
    const bytes = await ctx.exec.readFile(desired.path);
    if (bytes === undefined) return undefined;
    return { path: desired.path, message: bytes.toString() === said(desired) ? desired.message : bytes.toString() };
  },
  async apply(ctx, _action, desired) {
    await ctx.exec.writeFile(desired.path, said(desired));
  },
});
export default [plain];
`;

/** A copy of the source tree with the motd type's folder added, registered as `npm run build` does first. */
function copyWithMotd(providers: string): string {
  const copy = tempDir('cairn-newtype-');
  for (const entry of ['src', 'scripts', 'package.json', 'tsconfig.json']) cpSync(join(repo, entry), join(copy, entry), { recursive: true });
  symlinkSync(join(repo, 'node_modules'), join(copy, 'node_modules'));
  mkdirSync(join(copy, 'src/resources/motd'));
  writeFileSync(join(copy, 'src/resources/motd/type.ts'), MOTD_TYPE);
  writeFileSync(join(copy, 'src/resources/motd/providers.ts'), providers);
  const gen = run(process.execPath, ['scripts/registry.mjs'], copy);
  assert.equal(gen.status, 0, gen.stderr);
  return copy;
}

test('a new type folder is picked up by the compiler, the engine, the JSON Schema and the TypeScript API without touching another file', () => {
  const copy = copyWithMotd(MOTD_PROVIDERS);

  // A site using it from YAML and from a TypeScript state file, converged locally from source.
  const out = tempDir('cairn-newtype-out-');
  const site = join(copy, 'site');
  mkdirSync(join(site, 'states'), { recursive: true });
  writeFileSync(join(site, 'cairn.yaml'), `name: t\nstates:\n  greet:\n    - motd: ${out}/motd\n      message: hello\n`);
  writeFileSync(join(site, 'states/typed.ts'), `import { state, motd } from 'cairn';\nexport const typed = state(() => [motd('${out}/typed', { message: 'hi', shout: true })]);\n`);
  writeFileSync(join(site, 'cairn.yaml'), `${readFileSync(join(site, 'cairn.yaml'), 'utf8')}  main:\n    include: [greet, typed]\n    parts: []\n`);
  writeFileSync(join(site, 'inventory.yaml'), `targets:\n  here: { state_dir: ${out}/state, run: [main] }\n`);
  const cli = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', ...args], copy);

  const apply = cli(['apply', '--site', site, '-t', 'here', '--json']);
  assert.equal(apply.status, 0, `${apply.stdout}\n${apply.stderr}`);
  const report = JSON.parse(apply.stdout) as { targets: { nodes: { ref: string; status: string }[] }[] };
  assert.deepEqual(report.targets[0]!.nodes.map((n) => [n.ref, n.status]), [[`motd:${out}/motd`, 'changed'], [`motd:${out}/typed`, 'changed']]);
  assert.equal(readFileSync(join(out, 'motd'), 'utf8'), 'hello');
  assert.equal(readFileSync(join(out, 'typed'), 'utf8'), 'HI');
  const again = cli(['apply', '--site', site, '-t', 'here', '--json']);
  assert.deepEqual(JSON.parse(again.stdout).targets[0].counts, { changed: 0, unchanged: 2, failed: 0, skipped: 0 });

  // The compiler knows its attributes: a misspelt one is an error with a suggestion.
  writeFileSync(join(site, 'states/bad.yaml'), `bad:\n  - motd: /x\n    mesage: hi\n`);
  writeFileSync(join(site, 'inventory.yaml'), `targets:\n  here: { state_dir: ${out}/state, run: [main, bad] }\n`);
  const bad = cli(['show', '--site', site, '-t', 'here']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /motd \/x: unknown attribute 'mesage' \(did you mean 'message'\?\)/);

  const schema = JSON.parse(cli(['schema']).stdout) as unknown;
  assert.match(JSON.stringify(schema), /"motd"/);
  assert.match(JSON.stringify(schema), /what the file says/);

  // The typed builder: a missing required attribute or a wrong one does not compile.
  writeFileSync(join(copy, 'check.ts'), `import { motd } from './src/api/index.ts';
motd('/etc/motd', { message: 'hi', shout: true });
// @ts-expect-error message is required
motd('/etc/motd', {});
// @ts-expect-error shout is a boolean
motd('/etc/motd', { message: 'hi', shout: 'yes' });
`);
  writeFileSync(join(copy, 'tsconfig.check.json'), JSON.stringify({ extends: './tsconfig.json', include: ['check.ts'] }));
  const tsc = run(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.check.json'], copy);
  assert.equal(tsc.status, 0, tsc.stdout);
});

test("a provider's bug (a TypeError) stops the command with exit 70 and its stack, never a failed node", () => {
  const copy = copyWithMotd(MOTD_PROVIDERS.replace(
    'const bytes = await ctx.exec.readFile(desired.path);',
    'const bytes = await ctx.exec.readFile(desired.path);\n    if (desired.message === \'boom\') (undefined as unknown as () => void)();'));
  const out = tempDir('cairn-bugtype-out-');
  const site = join(copy, 'site');
  mkdirSync(site);
  writeFileSync(join(site, 'cairn.yaml'), `targets:\n  here: { state_dir: ${out}/state, run: [s] }\nstates:\n  s:\n    - file: ${out}/before\n      content: x\n    - motd: ${out}/motd\n      message: boom\n`);
  const r = run(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', 'apply', '--site', site, '-t', 'here'], copy);
  assert.equal(r.status, 70, r.stdout);
  assert.match(r.stderr, /internal error: TypeError: .* is not a function\n\s+at /);
  assert.doesNotMatch(r.stdout, /FAILED/);
});
