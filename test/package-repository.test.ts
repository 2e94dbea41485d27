/**
 * `package_repository` for dnf and apk, and `package` holds for dnf and apk, as COMMAND CONTRACT
 * tests: no RHEL-like or Alpine host can run here, so the real engine runs through a scripted
 * executor (test/helpers/scripted-executor.ts) that records every command and keeps files in
 * memory; the tests check the files written and the exact commands. The apt provider and apt
 * holds run on real Debian hosts in test/lab-package-repository.test.ts.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import type { NodeResult } from '../src/engine/engine.ts';
import { findApkEntry, withApkEntry } from '../src/resources/package_repository/apk.ts';
import { parseDeb822 } from '../src/resources/package_repository/apt.ts';
import { parseIniSection } from '../src/resources/package_repository/dnf.ts';
import { parseApkWorld } from '../src/resources/package/apk.ts';
import { parseVersionlockList } from '../src/resources/package/dnf.ts';
import { captured, FACTS, runScripted, ScriptedExecutor, type Reply } from './helpers/scripted-executor.ts';

const KEY = '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ0test\n-----END PGP PUBLIC KEY BLOCK-----\n';
const KEY_SHA = createHash('sha256').update(KEY).digest('hex');
const RPM = 'rpm -q --qf %{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n';

function site(parts: string, files: Record<string, string> = {}): Record<string, string> {
  return { 'cairn.yaml': `targets:\n  t1:\n    executor: local\n    run: [s]\nstates:\n  s:\n${parts}`, ...files };
}

const summary = (results: NodeResult[]) => results.map((r) => `${r.status} ${r.ref}${r.action !== 'none' ? ` (${r.action})` : ''}`);
const text = (exec: ScriptedExecutor, path: string) => exec.files.get(path)?.data.toString('utf8');

/** `mktemp -d` and a download that leaves `body` in the temp folder, as curl would. */
function download(body: string): Reply[] {
  return [
    { when: 'mktemp -d', stdout: '/tmp/tmp.cairn1\n', effect: (e) => e.dirs.add('/tmp/tmp.cairn1') },
    {
      when: /^curl -fsSL --proto =http,https --retry 2 -o \/tmp\/tmp\.cairn1\/key https:\/\//,
      effect: (e) => e.files.set('/tmp/tmp.cairn1/key', { data: Buffer.from(body), mode: 0o600, uid: 0, gid: 0 }),
    },
  ];
}

test('parsing: deb822 fields, a .repo section, the apk list\'s marked entries and world pins, versionlock lines', () => {
  const fields = parseDeb822('# comment\nTypes: deb\nURIs: http://x/\nSuites: ./\nSigned-By: /etc/apt/keyrings/x.asc\n\nTypes: deb-src\n');
  assert.deepEqual(Object.fromEntries(fields), { types: 'deb', uris: 'http://x/', suites: './', 'signed-by': '/etc/apt/keyrings/x.asc' });
  assert.deepEqual(Object.fromEntries(parseIniSection('[a]\nbaseurl=x\n[b]\nbaseurl = y\nenabled=0\n', 'b')!), { baseurl: 'y', enabled: '0' });
  assert.equal(parseIniSection('[a]\n', 'b'), undefined);

  const list = 'https://dl-cdn.alpinelinux.org/alpine/v3.20/main\n# cairn package_repository edge key=alice.rsa.pub\n#https://x/edge\n';
  assert.deepEqual(findApkEntry(list, 'edge'), { uri: 'https://x/edge', enabled: false, key: 'alice.rsa.pub' });
  assert.equal(withApkEntry(list, 'edge', undefined), 'https://dl-cdn.alpinelinux.org/alpine/v3.20/main\n');
  assert.equal(withApkEntry('https://x/edge\n', 'edge', { uri: 'https://x/edge', enabled: true }), '# cairn package_repository edge\nhttps://x/edge\n', 'an unmarked line of the same URI is taken over');

  assert.deepEqual([...parseApkWorld('busybox=1.36.1-r29\nmusl\nzlib>1.3\nfoo@edge=2.0-r0\nbar~1.2\n')].sort(), ['busybox', 'foo']);
  assert.deepEqual([...parseVersionlockList(captured('dnf/versionlock-list.stdout'))].sort(), ['openssh-server', 'perl-interpreter'], 'an exclusion is no lock');
  assert.deepEqual([...parseVersionlockList('0:selinux-policy-targeted-3.13.1-268.el7_9.2.*\nversionlock list done\n')], ['selinux-policy-targeted'], 'yum\'s layout');
  assert.deepEqual([...parseVersionlockList("# Added by 'versionlock add' command on 2024-11-05 10:12:01\nPackage name: tree\nevr = 2.1.1-7.fc41\n")], ['tree'], 'dnf 5\'s layout (its man page\'s example)');
});

test('command contract: dnf: a .repo file and its key downloaded by the host and checked; then nothing to do; absent removes both', async () => {
  const parts = '    - package_repository: example\n      uri: https://rpm.example.org/el9/$basearch\n      description: Example packages\n' +
    `      key: https://rpm.example.org/RPM-GPG-KEY-example\n      key_sha256: ${KEY_SHA}\n`;
  const exec = new ScriptedExecutor(download(KEY));
  const first = await runScripted(site(parts), FACTS.rocky!, exec);
  assert.deepEqual(summary(first), ['changed package_repository:example (create)']);
  assert.deepEqual(exec.lines, ['mktemp -d', 'curl -fsSL --proto =http,https --retry 2 -o /tmp/tmp.cairn1/key https://rpm.example.org/RPM-GPG-KEY-example']);
  assert.equal(text(exec, '/etc/pki/rpm-gpg/RPM-GPG-KEY-example'), KEY);
  assert.equal(exec.files.get('/etc/pki/rpm-gpg/RPM-GPG-KEY-example')!.mode, 0o644);
  assert.equal(exec.dirs.has('/tmp/tmp.cairn1'), false, 'the download folder is removed');
  assert.equal(text(exec, '/etc/yum.repos.d/example.repo'), [
    '# Written by Cairn (package_repository example); changes made here are overwritten.',
    '[example]', 'name=Example packages', 'baseurl=https://rpm.example.org/el9/$basearch', 'enabled=1', 'gpgcheck=1',
    'gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-example', '',
  ].join('\n'));

  const again = await runScripted(site(parts), FACTS.rocky!, exec);
  assert.deepEqual(summary(again), ['unchanged package_repository:example']);
  assert.equal(exec.lines.length, 2, 'nothing downloaded again');

  const gone = await runScripted(site('    - package_repository: example\n      ensure: absent\n'), FACTS.rocky!, exec);
  assert.deepEqual(summary(gone), ['changed package_repository:example (destroy)']);
  assert.equal(exec.files.has('/etc/yum.repos.d/example.repo'), false);
  assert.equal(exec.files.has('/etc/pki/rpm-gpg/RPM-GPG-KEY-example'), false);
});

test('command contract: dnf: a downloaded key whose sha256 is not the pinned one fails the node and puts nothing in place', async () => {
  const exec = new ScriptedExecutor(download(`${KEY}tampered\n`));
  const results = await runScripted(site('    - package_repository: example\n      uri: https://rpm.example.org/el9\n' +
    `      key: https://rpm.example.org/RPM-GPG-KEY-example\n      key_sha256: ${KEY_SHA}\n`), FACTS.rocky!, exec);
  assert.deepEqual(summary(results), ['failed package_repository:example (create)']);
  assert.match(results[0]!.error!, new RegExp(`^the key downloaded from https://rpm\\.example\\.org/RPM-GPG-KEY-example has sha256 [0-9a-f]{64}, not the key_sha256 ${KEY_SHA}: nothing was put in place$`));
  assert.deepEqual([...exec.files.keys()].filter((p) => !p.startsWith('/tmp/tmp.cairn1/')), []);
  assert.equal(exec.dirs.has('/tmp/tmp.cairn1'), false);
});

test('command contract: dnf: apt\'s suites on a dnf host fail the node, naming them', async () => {
  const results = await runScripted(site('    - package_repository: example\n      uri: https://rpm.example.org/el9\n      suites: bookworm\n'), FACTS.rocky!, new ScriptedExecutor());
  assert.deepEqual(summary(results), ['failed package_repository:example']);
  assert.equal(results[0]!.error, "suites is apt's: this target's packages come from dnf");
});

test('command contract: apk: a marked line in /etc/apk/repositories, the key under its source\'s name; the next apk add runs apk update first; absent removes both', async () => {
  const exec = new ScriptedExecutor([
    { when: 'apk info -v', stdout: captured('apk/info-v.stdout') },
    { when: 'apk update --no-progress' }, { when: 'apk add --no-progress tree' },
  ]);
  exec.files.set('/etc/apk/repositories', { data: Buffer.from('https://dl-cdn.alpinelinux.org/alpine/v3.20/main\n'), mode: 0o644, uid: 0, gid: 0 });
  const parts = '    - package_repository: extra\n      uri: https://apk.example.org/v3.20/main\n      key: keys/alice-61f3.rsa.pub\n' +
    '    - package: tree\n      require: package_repository:extra\n';
  const files = { 'keys/alice-61f3.rsa.pub': '-----BEGIN PUBLIC KEY-----\nMIIBIjANtest\n-----END PUBLIC KEY-----\n' };
  const first = await runScripted(site(parts, files), FACTS.alpine!, exec);
  assert.deepEqual(summary(first), ['changed package_repository:extra (create)', 'changed package:tree (create)']);
  assert.equal(text(exec, '/etc/apk/repositories'),
    'https://dl-cdn.alpinelinux.org/alpine/v3.20/main\n# cairn package_repository extra key=alice-61f3.rsa.pub\nhttps://apk.example.org/v3.20/main\n');
  assert.equal(text(exec, '/etc/apk/keys/alice-61f3.rsa.pub'), files['keys/alice-61f3.rsa.pub']);
  assert.deepEqual(exec.lines, ['apk info -v', 'apk update --no-progress', 'apk add --no-progress tree'], 'the index is refreshed before the install, not after it failed');

  const gone = await runScripted(site('    - package_repository: extra\n      ensure: absent\n'), FACTS.alpine!, exec);
  assert.deepEqual(summary(gone), ['changed package_repository:extra (destroy)']);
  assert.equal(text(exec, '/etc/apk/repositories'), 'https://dl-cdn.alpinelinux.org/alpine/v3.20/main\n');
  assert.equal(exec.files.has('/etc/apk/keys/alice-61f3.rsa.pub'), false);
});

test('command contract: apt: after a repository changed, apt-get update runs before the next install (and once)', async () => {
  const APT_GET = 'apt-get -y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold';
  const exec = new ScriptedExecutor([
    { when: 'dpkg-query -W', code: 1 },
    { when: `${APT_GET} update` }, { when: `${APT_GET} install` },
  ]);
  const results = await runScripted(site('    - package_repository: extra\n      uri: http://10.0.0.1/repo/\n      suites: ./\n      key: keys/extra.asc\n' +
    '    - package: cairn-extra\n    - package: cairn-other\n', { 'keys/extra.asc': KEY }), FACTS.debian!, exec);
  assert.deepEqual(summary(results), ['changed package_repository:extra (create)', 'changed package:cairn-extra (create)', 'changed package:cairn-other (create)']);
  assert.deepEqual(exec.lines.filter((l) => l.startsWith('apt-get')), [`${APT_GET} update`, `${APT_GET} install cairn-extra`, `${APT_GET} install cairn-other`]);
  assert.match(text(exec, '/etc/apt/sources.list.d/extra.sources')!, /^Signed-By: \/etc\/apt\/keyrings\/extra\.asc$/m);
  assert.equal(text(exec, '/etc/apt/keyrings/extra.asc'), KEY);
});

test('command contract: dnf holds: a pin adds a versionlock, removing it deletes the lock, then nothing to do; without the plugin the error names it', async () => {
  let locked = '';
  const exec = new ScriptedExecutor([
    { when: RPM, stdout: 'tree\t(none)\t1.8.0\t10.el9\tx86_64\n' },
    { when: 'dnf -q versionlock list', effect: () => {} },
    { when: 'dnf versionlock add tree', effect: () => (locked = 'tree-0:1.8.0-10.el9.*\n') },
    { when: 'dnf versionlock delete tree', effect: () => (locked = '') },
  ]);
  // The list's reply follows what the lock commands did.
  const run = exec.run.bind(exec);
  exec.run = async (argv, opts) => {
    const r = await run(argv, opts);
    return argv.join(' ') === 'dnf -q versionlock list' ? { ...r, stdout: locked } : r;
  };
  const pinned = '    - package: tree\n      version: "1.8.0"\n';
  assert.deepEqual(summary(await runScripted(site(pinned), FACTS.rocky!, exec)), ['changed package:tree (update)']);
  assert.deepEqual(summary(await runScripted(site(pinned), FACTS.rocky!, exec)), ['unchanged package:tree']);
  const unpinned = '    - package: tree\n';
  const plan = await runScripted(site(unpinned), FACTS.rocky!, exec, 'plan');
  assert.deepEqual(summary(plan), ['would-change package:tree (update)']);
  assert.deepEqual(plan[0]!.changes, ['hold']);
  assert.deepEqual(summary(await runScripted(site(unpinned), FACTS.rocky!, exec)), ['changed package:tree (update)']);
  assert.deepEqual(summary(await runScripted(site(unpinned), FACTS.rocky!, exec)), ['unchanged package:tree']);
  assert.deepEqual(exec.lines.filter((l) => /^dnf (versionlock|install|upgrade)/.test(l)), ['dnf versionlock add tree', 'dnf versionlock delete tree']);

  const noPlugin = new ScriptedExecutor([
    { when: RPM, stdout: 'tree\t(none)\t1.8.0\t10.el9\tx86_64\n' },
    { when: /^dnf (-q )?versionlock/, code: 2, stderr: 'No such command: versionlock. Please use /usr/bin/dnf --help\n' },
  ]);
  const failed = await runScripted(site(pinned), FACTS.rocky!, noPlugin);
  assert.deepEqual(summary(failed), ['failed package:tree (update)']);
  assert.match(failed[0]!.error!, /^dnf has no versionlock command here: .*`package: versionlock` .*python3-dnf-plugin-versionlock/);
});

test('command contract: apk holds: a pin is name=version in the world file; removing it makes the entry plain again', async () => {
  const exec = new ScriptedExecutor([
    { when: 'apk info -v', stdout: captured('apk/info-v.stdout') },
    {
      when: /^apk add --no-progress musl/,
      effect: (e, argv) => e.files.set('/etc/apk/world', { data: Buffer.from(`${argv.at(-1)}\n`), mode: 0o644, uid: 0, gid: 0 }),
    },
  ]);
  exec.files.set('/etc/apk/world', { data: Buffer.from('musl\n'), mode: 0o644, uid: 0, gid: 0 });
  // musl 1.2.5-r0 is installed: a pin to it holds it where it is.
  const pinned = '    - package: musl\n      version: "1.2.5-r0"\n';
  assert.deepEqual(summary(await runScripted(site(pinned), FACTS.alpine!, exec)), ['changed package:musl (update)']);
  assert.equal(text(exec, '/etc/apk/world'), 'musl=1.2.5-r0\n');
  assert.deepEqual(summary(await runScripted(site(pinned), FACTS.alpine!, exec)), ['unchanged package:musl']);
  assert.deepEqual(summary(await runScripted(site('    - package: musl\n'), FACTS.alpine!, exec)), ['changed package:musl (update)']);
  assert.equal(text(exec, '/etc/apk/world'), 'musl\n');
  assert.deepEqual(exec.lines.filter((l) => l.startsWith('apk add')), ['apk add --no-progress musl=1.2.5-r0', 'apk add --no-progress musl']);
});

test('command contract: apt: a downloaded key whose armour is not what its name says is refused, nothing in place; a .gpg URL is a binary keyring', async () => {
  const binary = Buffer.from([0x99, 0x01, 0x0d, 0x04, 0x65, 0x00]).toString('latin1');
  const binarySha = createHash('sha256').update(Buffer.from(binary, 'latin1')).digest('hex');
  const part = (file: string, sha: string) => '    - package_repository: vendor\n      uri: https://deb.vendor.example/debian\n      suites: bookworm\n' +
    `      components: main\n      key: https://deb.vendor.example/${file}\n      key_sha256: ${sha.toUpperCase()}\n`;
  const withBytes = (): Reply[] => [
    { when: 'mktemp -d', stdout: '/tmp/tmp.cairn1\n' },
    { when: /^curl /, effect: (e) => e.files.set('/tmp/tmp.cairn1/key', { data: Buffer.from(binary, 'latin1'), mode: 0o600, uid: 0, gid: 0 }) },
  ];
  const refused = new ScriptedExecutor(withBytes());
  const results = await runScripted(site(part('vendor.asc', binarySha)), FACTS.debian!, refused);
  assert.deepEqual(summary(results), ['failed package_repository:vendor (create)']);
  assert.match(results[0]!.error!, /is binary, but its name says armoured \(\.asc\).*nothing was put in place$/);
  assert.deepEqual([...refused.files.keys()].filter((p) => p.startsWith('/etc/')), []);

  const keyring = new ScriptedExecutor(withBytes());
  assert.deepEqual(summary(await runScripted(site(part('vendor.gpg', binarySha)), FACTS.debian!, keyring)), ['changed package_repository:vendor (create)']);
  assert.deepEqual(keyring.files.get('/etc/apt/keyrings/vendor.gpg')?.data, Buffer.from(binary, 'latin1'));
  assert.equal(text(keyring, '/etc/apt/sources.list.d/vendor.sources'), [
    '# Written by Cairn (package_repository vendor); changes made here are overwritten.',
    'Types: deb', 'URIs: https://deb.vendor.example/debian', 'Suites: bookworm', 'Components: main', 'Signed-By: /etc/apt/keyrings/vendor.gpg', '',
  ].join('\n'));
  assert.deepEqual(summary(await runScripted(site(part('vendor.gpg', binarySha)), FACTS.debian!, keyring)), ['unchanged package_repository:vendor'], 'an upper-case sha256 is the same sha256');
});
