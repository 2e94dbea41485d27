/**
 * Bad input to `cairn provision` (DESIGN §10, §12): an unknown script, a missing or unknown
 * argument, a malformed profile, an unknown key, a bad size, a script that does not load or is no
 * Builder, a script refusing its input with invalid(): each exits 2 naming file:line:col, and
 * nothing is created (no output folder, no work folder, no loop device).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'a build child needs root (mount namespaces)';
  const missing = ['unshare', 'nsenter', 'setpriv'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  return missing.length ? `missing tools: ${missing.join(', ')}` : undefined;
}
const childWhy = unavailable();
if (childWhy) process.stderr.write(`PROVISION INPUT TESTS THAT START A BUILD CHILD SKIPPED: ${childWhy}\n`);

const NEEDS_ARGS = `import { Builder } from 'cairn';
export default class NeedsArgs extends Builder {
  static arguments = { mirror: { required: true, description: 'the Debian mirror' }, release: { default: 'bookworm' } };
  async create() { return '<domain/>'; }
}
`;

const REFUSES = `import { Builder } from 'cairn';
export default class Refuses extends Builder {
  async setup() {
    if (this.ctx.storage[0].size < 2 ** 30) this.invalid('disk vda is smaller than the 1 GiB image', ['storage', 0, 'size']);
  }
  async create() { return '<domain/>'; }
}
`;

interface Case {
  name: string;
  files: Record<string, string>;
  extra?: string[];
  /** The error's message, and where it points (file:line:col) when it points anywhere. */
  message: RegExp;
  at?: string;
  /** Starts a build child (needs root). */
  child?: boolean;
}

const CASES: Case[] = [
  {
    name: 'an unknown script',
    files: { 'profiles/p.yaml': 'system: { cpus: 1 }\nscript: noopp\n' },
    message: /unknown script 'noopp' \(did you mean 'noop'\?\)/,
    at: 'profiles/p.yaml:2:9',
  },
  {
    name: 'an unknown key',
    files: { 'profiles/p.yaml': 'script: noop\nstorge:\n  - size: 1G\n' },
    message: /unknown profile key 'storge' \(did you mean 'storage'\?\)/,
    at: 'profiles/p.yaml:2:1',
  },
  {
    name: 'a malformed profile',
    files: { 'profiles/p.yaml': 'script: noop\nsystem: { cpus: 2\n' },
    message: /YAML: /,
    at: 'profiles/p.yaml:',
  },
  {
    name: 'a bad size',
    files: { 'profiles/p.yaml': 'script: noop\nstorage:\n  - size: lots\n' },
    message: /storage\.0\.size: expected a size such as 10G/,
    at: 'profiles/p.yaml:3:11',
  },
  {
    name: 'a missing profile',
    files: { 'profiles/other.yaml': 'script: noop\n' },
    message: /no profile 'p'/,
  },
  {
    name: 'a missing required argument',
    files: { 'profiles/p.yaml': 'script: needs-args\nargs:\n  release: trixie\n', 'builders/needs-args.ts': NEEDS_ARGS },
    message: /script 'builders\/needs-args\.ts' needs argument 'mirror' \(the Debian mirror\)/,
    at: 'profiles/p.yaml:2:1',
    child: true,
  },
  {
    name: 'an unknown argument in the profile',
    files: { 'profiles/p.yaml': 'script: needs-args\nargs:\n  mirror: http://deb\n  relase: trixie\n', 'builders/needs-args.ts': NEEDS_ARGS },
    message: /args\.relase: script 'builders\/needs-args\.ts' takes no argument 'relase' \(did you mean 'release'\?\)/,
    at: 'profiles/p.yaml:4:3',
    child: true,
  },
  {
    name: 'an unknown --arg',
    files: { 'profiles/p.yaml': 'script: needs-args\nargs:\n  mirror: http://deb\n', 'builders/needs-args.ts': NEEDS_ARGS },
    extra: ['--arg', 'mirorr=x'],
    message: /--arg mirorr: script 'builders\/needs-args\.ts' takes no argument 'mirorr' \(did you mean 'mirror'\?\)/,
    child: true,
  },
  {
    name: 'a script that does not compile',
    files: { 'profiles/p.yaml': 'script: broken\n', 'builders/broken.ts': "import { Builder } from 'cairn';\nexport default class extends Builder {\n  async setup() { const = 1; }\n}\n" },
    message: /TypeScript: /,
    at: 'builders/broken.ts:3:',
    child: true,
  },
  {
    name: 'a script that is no Builder',
    files: { 'profiles/p.yaml': 'script: plain\n', 'builders/plain.ts': 'export default { setup() {} };\n' },
    message: /builders\/plain\.ts must `export default` a class that extends Builder/,
    at: 'builders/plain.ts:1:1',
    child: true,
  },
  {
    name: 'a disk smaller than the image (the script refuses with invalid())',
    files: { 'profiles/p.yaml': 'script: refuses\nstorage:\n  - size: 512M\n', 'builders/refuses.ts': REFUSES },
    message: /disk vda is smaller than the 1 GiB image/,
    at: 'profiles/p.yaml:3:11',
    child: true,
  },
];

for (const c of CASES) {
  test(`bad input: ${c.name} exits 2${c.at ? ' with its position' : ''}, nothing created`, { skip: c.child ? childWhy : undefined }, async () => {
    const site = makeSite({ 'cairn.yaml': 'targets: {}\n', ...c.files });
    const base = tempDir('cairn-provision-input-');
    const out = join(base, 'out');
    const builds = join(base, 'builds');
    const losetupBefore = c.child ? execFileSync('losetup', ['-a'], { encoding: 'utf8' }) : '';
    const r = await runCli(['provision', '--site', site, '--profile', 'p', 'g1', '--output', out, '--builds', builds, ...(c.extra ?? [])]);
    assert.equal(r.status, 2, r.stderr + r.stdout);
    assert.match(r.stderr, c.message);
    if (c.at) assert.ok(r.stderr.includes(`--> ${c.at}`), `expected the error at ${c.at}:\n${r.stderr}`);
    assert.ok(!existsSync(out), 'the output folder was created');
    assert.deepEqual(existsSync(builds) ? readdirSync(builds) : [], [], 'a work folder is left');
    if (c.child) assert.equal(execFileSync('losetup', ['-a'], { encoding: 'utf8' }), losetupBefore);
  });
}

test('bad input: provision without NAME, without --profile, or with --arg lacking =, exits 2', async () => {
  const site = makeSite({ 'cairn.yaml': 'targets: {}\n', 'profiles/p.yaml': 'script: noop\n' });
  const builds = join(tempDir('cairn-provision-input-'), 'builds');
  for (const [argv, message] of [
    [['provision', '--site', site, '--profile', 'p', '--builds', builds], /needs the NAME/],
    [['provision', '--site', site, 'g1', '--builds', builds], /needs --profile/],
    [['provision', '--site', site, '--profile', 'p', 'g1', '--builds', builds, '--arg', 'novalue'], /--arg novalue: expected NAME=VALUE/],
    [['provision', '--site', site, '--profile', 'p', 'bad/name', '--builds', builds], /no valid name for a build/],
  ] as const) {
    const r = await runCli([...argv]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
  }
  assert.ok(!existsSync(builds));
});
