/**
 * The archive and git types off a lab host: their pure parts (formats, unpack and download
 * commands, ls-remote parsing), and CONTRACT TESTS of the archive provider on FreeBSD and Alpine,
 * whose download and checksum tools (fetch, BusyBox wget, sha256 -q) cannot run on this machine:
 * a scripted executor checks the exact commands issued and answers as those tools do. Both types
 * run for real on a Debian lab host in test/lab-archive-git.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import type { NodeResult } from '../src/engine/engine.ts';
import { archiveType } from '../src/resources/archive/type.ts';
import { formatOf, unpackCommand } from '../src/resources/archive/formats.ts';
import { downloadCommand, partialPath } from '../src/resources/archive/provider.ts';
import { parseLsRemote } from '../src/resources/git/provider.ts';
import { gitType } from '../src/resources/git/type.ts';
import { FACTS, ScriptedExecutor, runScripted } from './helpers/scripted-executor.ts';

const errors = (schema: { safeParse(v: unknown): { success: boolean; error?: { issues: { message: string }[] } } }, value: unknown) =>
  schema.safeParse(value).error?.issues.map((i) => i.message) ?? [];

const HASH = createHash('sha256').update('the archive').digest('hex');
const URL = 'https://downloads.example.org/app-1.0.tar.gz';

describe('archive and git: schemas and commands', () => {
  test('archive: a download needs its sha256; a site file does not; absent needs no source', () => {
    assert.deepEqual(errors(archiveType.schema, { path: '/opt/app', source: URL, sha256: HASH }), []);
    assert.match(errors(archiveType.schema, { path: '/opt/app', source: URL })[0] ?? '', /a download needs its sha256/);
    assert.deepEqual(errors(archiveType.schema, { path: '/opt/app', source: 'files/app.zip' }), []);
    assert.deepEqual(errors(archiveType.schema, { path: '/opt/app', ensure: 'absent' }), []);
    assert.deepEqual(errors(archiveType.schema, { path: '/opt/app' }), ['source is required']);
    assert.deepEqual(errors(archiveType.schema, { path: '/opt/app', source: URL, sha256: 'abc' }), ['a sha256 is 64 hex digits']);
    assert.equal(archiveType.schema.parse({ path: '/opt/app', source: URL, sha256: HASH.toUpperCase() }).sha256, HASH);
  });

  test('git: a repository unless absent; revision defaults to the remote HEAD; force defaults to false', () => {
    assert.deepEqual(errors(gitType.schema, { path: '/srv/app' }), ['repository is required']);
    const parsed = gitType.schema.parse({ path: '/srv/app', repository: 'https://example.org/app.git' });
    assert.equal(parsed.revision, 'HEAD');
    assert.equal(parsed.force, false);
    assert.equal(errors(gitType.schema, { path: '/srv/app', repository: 'x', revision: 5 }).length, 1);
    assert.deepEqual(errors(gitType.schema, { path: '/srv/app', repository: '--upload-pack=touch /tmp/x' }), ["a repository cannot start with '-'"]);
    assert.deepEqual(errors(gitType.schema, { path: '/srv/app', repository: 'x', revision: '-b' }), ["a revision cannot start with '-'"]);
  });

  test('archive formats by name, and the unpack command of each', () => {
    assert.equal(formatOf('https://x.org/a.tar.gz?token=1#frag'), 'tar.gz');
    assert.equal(formatOf('files/a.TGZ'), 'tgz');
    assert.equal(formatOf('a.tar.xz'), 'tar.xz');
    assert.equal(formatOf('a.tar.bz2'), 'tar.bz2');
    assert.equal(formatOf('a.tar'), 'tar');
    assert.equal(formatOf('a.zip'), 'zip');
    assert.equal(formatOf('a.rar'), undefined);
    assert.deepEqual(unpackCommand('tar.xz', '/f', '/d', 2), ['tar', '-x', '-J', '-o', '-f', '/f', '-C', '/d', '--strip-components=2']);
    assert.deepEqual(unpackCommand('tar', '/f', '/d', 0), ['tar', '-x', '-o', '-f', '/f', '-C', '/d']);
    assert.deepEqual(unpackCommand('zip', '/f', '/d', 0), ['unzip', '-q', '-o', '/f', '-d', '/d']);
    assert.deepEqual(downloadCommand('curl', URL, '/p'), ['curl', '-fsSL', '-C', '-', '-o', '/p', URL]);
    assert.deepEqual(downloadCommand('/usr/bin/wget', URL, '/p'), ['wget', '-q', '-c', '-O', '/p', URL]);
    assert.deepEqual(downloadCommand('fetch', URL, '/p'), ['fetch', '-q', '-r', '-o', '/p', URL]);
  });

  test('git ls-remote output: branches, peeled tags and the symbolic HEAD', () => {
    const a = 'a'.repeat(40);
    const b = 'b'.repeat(40);
    const parsed = parseLsRemote(`ref: refs/heads/trunk\tHEAD\n${a}\tHEAD\n${b}\trefs/tags/v1\n${a}\trefs/tags/v1^{}\n`);
    assert.equal(parsed.headBranch, 'trunk');
    assert.equal(parsed.refs.get('HEAD'), a);
    assert.equal(parsed.refs.get('refs/tags/v1^{}'), a);
  });
});

function site(parts: string): Record<string, string> {
  return { 'cairn.yaml': 'targets:\n  t1:\n    state_dir: /var/lib/cairn\n    run: [s]\n', 'states/s.yaml': `s:\n${parts}` };
}
const statuses = (results: NodeResult[]) => results.map((r) => `${r.status} ${r.ref}${r.error ? `: ${r.error}` : ''}`);

/** A machine with /opt whose tools are scripted: `download` is the tool `command -v` finds, `checksum` the hash reply. */
function machine(download: string, sha256Reply: RegExp, checksumOut: (file: string) => string): ScriptedExecutor {
  const exec = new ScriptedExecutor([
    { when: /^sh -c for t do command -v/, stdout: `${download}\n` },
    { when: /^(fetch|wget|curl) /, effect: (e, argv) => e.files.set(argv[argv.indexOf('-o') >= 0 ? argv.indexOf('-o') + 1 : argv.indexOf('-O') + 1]!, { data: Buffer.from('the archive'), mode: 0o644, uid: 0, gid: 0 }) },
    { when: sha256Reply, stdout: checksumOut(partialPath('/opt/app', HASH)) },
    { when: /^tar -x -z -o -f /, effect: (e, argv) => e.dirs.add(`${argv[argv.indexOf('-C') + 1]!}/bin`) },
    { when: /^mv /, effect: (e, argv) => e.dirs.add(argv[2]!) },
  ]);
  exec.dirs.add('/opt');
  return exec;
}

const parts = `  - archive: /opt/app\n    source: ${URL}\n    sha256: ${HASH}\n`;

describe('archive: command contract', () => {
  test('command contract: FreeBSD downloads with fetch -r (resumable) and checks with sha256 -q', async () => {
    const exec = machine('fetch', /^sha256 -q /, () => `${HASH}\n`);
    assert.deepEqual(statuses(await runScripted(site(parts), FACTS.freebsd!, exec)), ['changed archive:/opt/app']);
    const partial = partialPath('/opt/app', HASH);
    assert.equal(exec.lines[0], 'sh -c for t do command -v "$t" >/dev/null 2>&1 && { echo "$t"; exit 0; }; done; exit 1 sh fetch curl');
    assert.equal(exec.lines[1], `fetch -q -r -o ${partial} ${URL}`);
    assert.equal(exec.lines[2], `sha256 -q ${partial}`);
    assert.match(exec.lines[3]!, new RegExp(`^tar -x -z -o -f ${partial.replace(/\./g, '\\.')} -C /opt/\\.app\\.cairn-tmp\\.\\S+$`));
    assert.match(exec.lines[4]!, /^mv \/opt\/\.app\.cairn-tmp\.\S+ \/opt\/app$/);
    assert.equal(exec.lines.length, 5);
    assert.equal(exec.files.has(partial), false, 'the download is removed once unpacked');
    // The marker went into the unpacked folder before it was renamed into place (the scripted mv moves no files).
    const marker = [...exec.files.entries()].find(([path]) => /^\/opt\/\.app\.cairn-tmp\.\S+\/\.cairn-archive$/.test(path));
    assert.deepEqual(JSON.parse(marker?.[1].data.toString() ?? '{}'), { sha256: HASH, strip_components: 0, format: 'tar.gz' });
  });

  test('command contract: Alpine without curl downloads with BusyBox wget -c and checks with sha256sum', async () => {
    const exec = machine('wget', /^sha256sum /, (file) => `${HASH}  ${file}\n`);
    assert.deepEqual(statuses(await runScripted(site(parts), FACTS.alpine!, exec)), ['changed archive:/opt/app']);
    const partial = partialPath('/opt/app', HASH);
    assert.equal(exec.lines[0], 'sh -c for t do command -v "$t" >/dev/null 2>&1 && { echo "$t"; exit 0; }; done; exit 1 sh curl wget');
    assert.equal(exec.lines[1], `wget -q -c -O ${partial} ${URL}`);
    assert.equal(exec.lines[2], `sha256sum ${partial}`);
  });

  test('command contract: FreeBSD, a download whose sha256 -q differs is removed and the node fails', async () => {
    const other = createHash('sha256').update('tampered').digest('hex');
    const exec = machine('fetch', /^sha256 -q /, () => `${other}\n`);
    const results = await runScripted(site(parts), FACTS.freebsd!, exec);
    assert.equal(results[0]!.status, 'failed');
    assert.match(results[0]!.error ?? '', new RegExp(`has sha256 ${other}, not the ${HASH} expected; nothing was unpacked`));
    assert.equal(exec.files.size, 0, 'nothing left: the download was removed');
    assert.ok(!exec.lines.some((l) => l.startsWith('tar ')), 'nothing was unpacked');
  });
});
