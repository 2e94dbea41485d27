/**
 * The `package` type's providers (apt, dnf, yum, apk, pacman, pkg).
 *
 * The tests named `contract: …` are CONTRACT TESTS: dnf, yum, apk, pacman and FreeBSD's pkg cannot
 * run on this machine, and apt must not change it, so they run the real engine through a scripted
 * executor and check the exact commands each provider issues and its parsing of output captured on
 * those systems (test/fixtures/captured/{apt,dnf,apk,pacman,pkg}/, each with a README saying where
 * every file came from and which ones were written by hand). test/lab-package.test.ts runs the apt
 * provider on real Debian hosts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeResult } from '../src/engine/engine.ts';
import type { RunOptions, RunResult } from '../src/executors/types.ts';
import { parseApkInfo, parseApkVersion } from '../src/resources/package/apk.ts';
import { parseAptCachePolicy, parseDpkgQuery } from '../src/resources/package/apt.ts';
import { parseCheckUpdate, parseRepoquery, parseRpmQuery, rpmVersionMatches } from '../src/resources/package/dnf.ts';
import { parsePacmanQuery, parsePacmanUpgrades } from '../src/resources/package/pacman.ts';
import { parsePkgQuery, parsePkgVersion } from '../src/resources/package/pkg.ts';
import { captured, FACTS, runScripted, ScriptedExecutor, type Reply } from './helpers/scripted-executor.ts';

/** Also keeps each command's environment (the non-interactive settings are part of the contract). */
class Recorder extends ScriptedExecutor {
  readonly envs: (Record<string, string> | undefined)[] = [];
  override run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    this.envs.push(opts.env);
    return super.run(argv, opts);
  }
}

function site(parts: string, extra = ''): Record<string, string> {
  return { 'cairn.yaml': `targets:\n  t1:\n    executor: local\n    run: [s]\nstates:\n  s:\n${parts}${extra}` };
}

const summary = (results: NodeResult[]) => results.map((r) => `${r.status} ${r.ref}${r.action !== 'none' ? ` (${r.action})` : ''}${r.reason ? ` [${r.reason}]` : ''}`);
const errorOf = (results: NodeResult[], ref: string) => results.find((r) => r.ref === ref)?.error ?? '';

// ---- apt ---------------------------------------------------------------------------------------

const DPKG = 'dpkg-query -W --showformat=${Package}\\t${Status}\\t${Version}\\n';
const APT_GET = 'apt-get -y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold';
const dpkgUnknown = (...names: string[]) => names.map((n) => `dpkg-query: no packages found matching ${n}\n`).join('');

test('contract: dpkg-query and apt-cache policy parsing of real output', () => {
  const versions = parseDpkgQuery(captured('apt/dpkg-query.stdout'));
  assert.deepEqual(Object.fromEntries(versions), {
    bash: ['5.2.15-2+b8'], coreutils: ['9.1-1'], 'openssh-server': ['1:9.2p1-2+deb12u10'],
  }, 'unknown names (hello, nosuch) only show on stderr');
  assert.match(captured('apt/dpkg-query.stderr'), /no packages found matching nosuch/);
  // Removed but with configuration files left, or known and never installed (written as dpkg prints them).
  assert.equal(parseDpkgQuery('tree\tdeinstall ok config-files\t2.1.0-1\nhello\tunknown ok not-installed\t\n').size, 0);

  const policy = parseAptCachePolicy(captured('apt/apt-cache-policy.stdout'));
  assert.deepEqual(Object.fromEntries(policy), {
    bash: { installed: '5.2.15-2+b8', candidate: '5.2.15-2+b13' },
    coreutils: { installed: '9.1-1', candidate: '9.1-1' },
    hello: { candidate: '2.10-3' },
  });
});

test('contract: ssh-server is openssh-server via apt on Debian: one dpkg-query, then apt-get install, never a prompt', async () => {
  const exec = new Recorder([
    { when: `${DPKG} openssh-server`, code: 1, stderr: dpkgUnknown('openssh-server') },
    { when: `${APT_GET} install openssh-server`, stdout: 'Setting up openssh-server (1:9.2p1-2+deb12u10) ...\n' },
  ]);
  const plan = await runScripted(site('    - package: ssh-server\n'), FACTS.debian!, exec, 'plan');
  assert.deepEqual(summary(plan), ['would-change package:ssh-server (create)']);
  assert.deepEqual(exec.lines, [`${DPKG} openssh-server`]);

  const applied = await runScripted(site('    - package: ssh-server\n'), FACTS.debian!, exec, 'apply');
  assert.deepEqual(summary(applied), ['changed package:ssh-server (create)']);
  assert.deepEqual(exec.lines.slice(1), [`${DPKG} openssh-server`, `${APT_GET} install openssh-server`]);
  assert.equal(exec.envs.at(-1)?.DEBIAN_FRONTEND, 'noninteractive');
  assert.equal(exec.envs.at(-1)?.LC_ALL, 'C');
});

test('contract: apt reads every package of the run with one dpkg-query and one apt-cache policy (real outputs)', async () => {
  const parts =
    '    - package: bash\n      ensure: latest\n' +
    '    - package: coreutils\n      ensure: latest\n' +
    '    - package: openssh-server\n' +
    '    - package: hello\n' +
    '    - package: nosuch\n      ensure: absent\n';
  const exec = new ScriptedExecutor([
    { when: `${DPKG} bash coreutils hello nosuch openssh-server`, code: 1, stdout: captured('apt/dpkg-query.stdout'), stderr: captured('apt/dpkg-query.stderr') },
    { when: 'apt-cache policy bash coreutils', stdout: captured('apt/apt-cache-policy.stdout') },
    { when: 'apt-mark showhold', stdout: '' },
  ]);
  const results = await runScripted(site(parts), FACTS.debian!, exec, 'plan');
  assert.deepEqual(summary(results), [
    'would-change package:bash (update)', // 5.2.15-2+b8 installed, 5.2.15-2+b13 the candidate
    'unchanged package:coreutils', // installed == candidate: latest
    'unchanged package:openssh-server',
    'would-change package:hello (create)',
    'unchanged package:nosuch',
  ]);
  assert.deepEqual(exec.lines, [`${DPKG} bash coreutils hello nosuch openssh-server`, 'apt-mark showhold', 'apt-cache policy bash coreutils']);
});

test('contract: apt install, upgrade, version and removal argv', async () => {
  const exec = new ScriptedExecutor([
    { when: DPKG, code: 1, stdout: captured('apt/dpkg-query.stdout'), stderr: captured('apt/dpkg-query.stderr') },
    { when: 'apt-cache policy bash', stdout: captured('apt/apt-cache-policy.stdout') },
    { when: APT_GET },
    // bash is held (by an admin): ensure latest, with no pin, releases it before the upgrade.
    { when: 'apt-mark showhold', stdout: 'bash\n' , times: 1 },
    { when: 'apt-mark showhold', stdout: '' },
    { when: 'apt-mark ' },
  ]);
  const results = await runScripted(site(
    '    - package: bash\n      ensure: latest\n' +
    '    - package: coreutils\n      version: "9.1-2"\n' +
    '    - package: openssh-server\n      version: "1:9.2p1-2+deb12u10"\n' +
    '    - package: hello\n      version: "2.10-3"\n' +
    '    - package: nosuch\n      ensure: absent\n' +
    '    - package: coreutils-to-remove\n      ensure: absent\n'), FACTS.debian!, exec, 'apply');
  // coreutils-to-remove is not installed (dpkg-query lists no such name): nothing to do.
  // openssh-server is at its pinned version but not held: only the hold changes.
  assert.deepEqual(summary(results), [
    'changed package:bash (update)', 'changed package:coreutils (update)', 'changed package:openssh-server (update)',
    'changed package:hello (create)', 'unchanged package:nosuch', 'unchanged package:coreutils-to-remove',
  ]);
  assert.deepEqual(results.find((r) => r.ref === 'package:openssh-server')?.changes, ['hold']);
  assert.deepEqual(exec.lines.filter((l) => /^apt-(get|mark) (?!showhold)/.test(l)), [
    'apt-mark unhold bash', `${APT_GET} install bash`,
    `${APT_GET} --allow-downgrades install coreutils=9.1-2`, 'apt-mark hold coreutils',
    'apt-mark hold openssh-server',
    `${APT_GET} --allow-downgrades install hello=2.10-3`, 'apt-mark hold hello',
  ]);

  const remove = new ScriptedExecutor([
    { when: `${DPKG} bash`, stdout: 'bash\tinstall ok installed\t5.2.15-2+b8\n' },
    { when: `${APT_GET} remove bash` },
    { when: 'apt-mark showhold', stdout: 'bash\n' }, { when: 'apt-mark unhold bash' },
  ]);
  assert.deepEqual(summary(await runScripted(site('    - package: bash\n      ensure: absent\n'), FACTS.debian!, remove)), ['changed package:bash (destroy)']);
  assert.deepEqual(remove.lines, [`${DPKG} bash`, 'apt-mark showhold', 'apt-mark unhold bash', `${APT_GET} remove bash`], 'a held package is released, then removed');
});

test('contract: apt: a held package moving to another version is released, installed, held again; held again when the install fails', async () => {
  const exec = new ScriptedExecutor([
    { when: `${DPKG} coreutils`, stdout: 'coreutils\tinstall ok installed\t9.1-1\n' },
    { when: 'apt-mark showhold', stdout: 'coreutils\n' },
    { when: `${APT_GET} --allow-downgrades install coreutils=9.1-2`, times: 1 },
    { when: `${APT_GET} --allow-downgrades install coreutils=9.1-3`, code: 100, stderr: "E: Version '9.1-3' for 'coreutils' was not found\n" },
    { when: `${APT_GET} update` },
    { when: 'apt-mark ' },
  ]);
  const moved = await runScripted(site('    - package: coreutils\n      version: "9.1-2"\n'), FACTS.debian!, exec);
  assert.deepEqual(summary(moved), ['changed package:coreutils (update)']);
  assert.deepEqual(exec.lines.filter((l) => /^apt-(get|mark) (?!showhold)/.test(l)), [
    'apt-mark unhold coreutils', `${APT_GET} --allow-downgrades install coreutils=9.1-2`, 'apt-mark hold coreutils',
  ]);
  const before = exec.lines.length;
  const failed = await runScripted(site('    - package: coreutils\n      version: "9.1-3"\n'), FACTS.debian!, exec);
  assert.deepEqual(summary(failed), ['failed package:coreutils (update)']);
  assert.deepEqual(exec.lines.slice(before).filter((l) => /^apt-(get|mark) (?!showhold)/.test(l)), [
    'apt-mark unhold coreutils', `${APT_GET} --allow-downgrades install coreutils=9.1-3`, `${APT_GET} update`,
    `${APT_GET} --allow-downgrades install coreutils=9.1-3`, 'apt-mark hold coreutils',
  ]);
});

test('contract: an unknown package fails with apt\'s own error after one apt-get update; an unrelated node still converges', async () => {
  const unknown = (name: string): Reply => ({
    when: `${APT_GET} install ${name}`, code: 100,
    stdout: captured('apt/install-unknown.stdout'), stderr: captured('apt/install-unknown.stderr').replace('nosuch', name),
  });
  const exec = new ScriptedExecutor([
    { when: DPKG, code: 1, stderr: dpkgUnknown('nosuch', 'nosuch2') },
    unknown('nosuch2'), unknown('nosuch'), // the longer first: replies match by prefix
    { when: `${APT_GET} update`, stdout: 'Hit:1 http://deb.debian.org/debian bookworm InRelease\nReading package lists...\n' },
  ]);
  const results = await runScripted(site(
    '    - package: nosuch\n    - package: nosuch2\n    - file: /etc/motd\n      content: hi\n'), FACTS.debian!, exec, 'apply');
  assert.deepEqual(summary(results), ['failed package:nosuch (create)', 'failed package:nosuch2 (create)', 'changed file:/etc/motd (create)']);
  assert.match(errorOf(results, 'package:nosuch'), /^apt-get install nosuch exited with 100:\nE: Unable to locate package nosuch$/);
  assert.match(errorOf(results, 'package:nosuch2'), /E: Unable to locate package nosuch2/);
  assert.deepEqual(exec.lines.filter((l) => l.startsWith('apt-get')), [
    `${APT_GET} install nosuch`, `${APT_GET} update`, `${APT_GET} install nosuch`,
    `${APT_GET} install nosuch2`, `${APT_GET} install nosuch2`,
  ], 'the lists are refreshed once per run, only because an install needed it');
});

test('contract: a package missing from stale lists installs after apt-get update', async () => {
  const exec = new ScriptedExecutor([
    { when: DPKG, code: 1, stderr: dpkgUnknown('hello') },
    { when: `${APT_GET} install hello`, times: 1, code: 100, stderr: 'E: Unable to locate package hello\n' },
    { when: `${APT_GET} update` },
    { when: `${APT_GET} install hello`, stdout: 'Setting up hello (2.10-3) ...\n' },
  ]);
  assert.deepEqual(summary(await runScripted(site('    - package: hello\n'), FACTS.debian!, exec)), ['changed package:hello (create)']);
});

// ---- base system (FreeBSD's sshd) --------------------------------------------------------------

test('contract: ssh-server is part of FreeBSD\'s base system: present runs nothing, absent fails clearly', async () => {
  const exec = new ScriptedExecutor([]);
  assert.deepEqual(summary(await runScripted(site('    - package: ssh-server\n'), FACTS.freebsd!, exec, 'plan')), ['unchanged package:ssh-server']);
  assert.deepEqual(summary(await runScripted(site('    - package: ssh-server\n'), FACTS.freebsd!, exec, 'apply')), ['unchanged package:ssh-server']);
  assert.deepEqual(exec.lines, []);
  const results = await runScripted(site('    - package: ssh-server\n      ensure: absent\n'), FACTS.freebsd!, exec, 'apply');
  assert.equal(results[0]!.status, 'failed');
  assert.match(results[0]!.error!, /ssh-server is part of the base system on freebsd .*cannot be removed/);
  assert.deepEqual(exec.lines, []);
});

test('version goes with ensure: present only (schema)', async () => {
  await assert.rejects(runScripted(site('    - package: hello\n      ensure: latest\n      version: "1"\n'), FACTS.debian!, new ScriptedExecutor(), 'plan'),
    /version goes with ensure: present/);
});

// ---- dnf / yum ---------------------------------------------------------------------------------

const RPM = 'rpm -q --qf %{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n';
const REPOQUERY = 'dnf repoquery -q --upgrades --latest-limit=1 --qf %{name}\\t%{evr}';

test('contract: rpm -q, dnf repoquery and yum check-update parsing', () => {
  const versions = parseRpmQuery(captured('dnf/rpm-q.stdout'));
  assert.deepEqual(versions.get('openssh-server'), ['8.7p1-38.el9_4.4']);
  assert.deepEqual(versions.get('openssh-server.x86_64'), ['8.7p1-38.el9_4.4']);
  assert.deepEqual(versions.get('perl-interpreter'), ['4:5.32.1-481.el9']);
  assert.equal(versions.has('nosuch'), false);
  assert.ok(rpmVersionMatches('8.7p1-38.el9_4.4', '8.7p1'));
  assert.ok(rpmVersionMatches('8.7p1-38.el9_4.4', '8.7p1-38.el9_4.4'));
  assert.ok(rpmVersionMatches('4:5.32.1-481.el9', '4:5.32.1-481.el9'));
  assert.ok(rpmVersionMatches('4:5.32.1-481.el9', '5.32.1'));
  assert.ok(!rpmVersionMatches('8.7p1-38.el9_4.4', '8.7'));
  assert.deepEqual(Object.fromEntries(parseRepoquery(captured('dnf/repoquery-upgrades.stdout'))), { 'openssh-server': '8.7p1-43.el9' });
  assert.deepEqual(Object.fromEntries(parseCheckUpdate(captured('dnf/yum-check-update.stdout'))), {
    'openssh-server': '8.7p1-43.el9', 'selinux-policy-targeted': '38.1.45-3.el9_5',
  }, 'a wrapped long name still pairs with its version; obsoletes are not updates');
});

test('contract: dnf on Rocky: one rpm -q and one repoquery for the run; install, upgrade, version, removal', async () => {
  const exec = new ScriptedExecutor([
    { when: `${RPM} bash nosuch openssh-server perl-interpreter tree`, code: 2, stdout: captured('dnf/rpm-q.stdout') + 'package tree is not installed\n' },
    { when: `${REPOQUERY} bash openssh-server`, stdout: captured('dnf/repoquery-upgrades.stdout') },
    { when: 'dnf -q versionlock list', stdout: captured('dnf/versionlock-list.stdout') },
    { when: 'dnf ' },
  ]);
  const results = await runScripted(site(
    '    - package: ssh-server\n      ensure: latest\n' +
    '    - package: bash\n      ensure: latest\n' +
    '    - package: perl-interpreter\n      version: "5.32.1"\n' +
    '    - package: tree\n      version: "1.8.0"\n' +
    '    - package: nosuch\n      ensure: absent\n'), FACTS.rocky!, exec, 'apply');
  assert.deepEqual(summary(results), [
    'changed package:ssh-server (update)', 'unchanged package:bash', 'unchanged package:perl-interpreter',
    'changed package:tree (create)', 'unchanged package:nosuch',
  ]);
  // (after each change the engine forgets batched readings: the next package node reads again)
  assert.deepEqual(exec.lines.slice(0, 3), [`${RPM} bash nosuch openssh-server perl-interpreter tree`, 'dnf -q versionlock list', `${REPOQUERY} bash openssh-server`]);
  // openssh-server was locked (by an admin) and has no pin: released to upgrade it, and left released;
  // perl-interpreter is pinned and already locked: in sync; tree is locked once installed.
  assert.deepEqual(exec.lines.filter((l) => /^dnf (install|upgrade|remove|versionlock)/.test(l)), [
    'dnf versionlock delete openssh-server', 'dnf upgrade -y openssh-server', 'dnf install -y tree-1.8.0', 'dnf versionlock add tree',
  ]);

  // Without the versionlock plugin nothing is locked: removal needs no release.
  const remove = new ScriptedExecutor([
    { when: `${RPM} bash`, stdout: 'bash\t(none)\t5.1.8\t9.el9\tx86_64\n' }, { when: 'dnf remove -y bash' },
    { when: 'dnf -q versionlock list', code: 2, stderr: 'No such command: versionlock. Please use /usr/bin/dnf --help\n' },
  ]);
  assert.deepEqual(summary(await runScripted(site('    - package: bash\n      ensure: absent\n'), FACTS.rocky!, remove)), ['changed package:bash (destroy)']);
  assert.deepEqual(remove.lines, [`${RPM} bash`, 'dnf -q versionlock list', 'dnf remove -y bash']);
});

test('contract: dnf: an unknown package fails with dnf\'s own error', async () => {
  const exec = new ScriptedExecutor([
    { when: RPM, code: 1, stdout: 'package nosuch is not installed\n' },
    { when: 'dnf install -y nosuch', code: 1, stdout: captured('dnf/install-unknown.stdout'), stderr: captured('dnf/install-unknown.stderr') },
  ]);
  const results = await runScripted(site('    - package: nosuch\n'), FACTS.rocky!, exec);
  assert.equal(results[0]!.status, 'failed');
  assert.equal(results[0]!.error, 'dnf install nosuch exited with 1:\nError: Unable to find a match: nosuch');
});

test('contract: yum on CentOS 7 (the OS tables say so): check-update for latest, install of a version', async () => {
  const centos7 = { ...FACTS.rocky!, distribution: 'centos', release: '7.9.2009', package_manager: 'yum' };
  const exec = new ScriptedExecutor([
    { when: `${RPM} openssh-server selinux-policy-targeted`, stdout: 'openssh-server\t(none)\t7.4p1\t23.el7_9\tx86_64\nselinux-policy-targeted\t(none)\t3.13.1\t268.el7_9.2\tnoarch\n' },
    { when: 'yum -q check-update openssh-server', code: 100, stdout: captured('dnf/yum-check-update.stdout') },
    { when: 'yum upgrade -y openssh-server' },
    { when: 'yum -q versionlock list', stdout: '0:selinux-policy-targeted-3.13.1-268.el7_9.2.*\nversionlock list done\n' },
  ]);
  const results = await runScripted(site(
    '    - package: ssh-server\n      ensure: latest\n' +
    '    - package: selinux-policy-targeted\n      version: "3.13.1-268.el7_9.2"\n'), centos7, exec);
  assert.deepEqual(summary(results), ['changed package:ssh-server (update)', 'unchanged package:selinux-policy-targeted']);
  // After a change the engine forgets batched readings, so the next package node reads again.
  assert.deepEqual(exec.lines.slice(1), [
    'yum -q versionlock list', 'yum -q check-update openssh-server', 'yum upgrade -y openssh-server', `${RPM} openssh-server selinux-policy-targeted`, 'yum -q versionlock list',
  ]);

  // yum install does not downgrade: a version it did not reach is a failure, not a change.
  const down = new ScriptedExecutor([
    { when: RPM, stdout: 'tree\t(none)\t1.6.0\t10.el7\tx86_64\n' },
    { when: 'yum install -y tree-1.5.0', stdout: 'Package matching tree-1.5.0-1.el7.x86_64 already installed. Checking for update.\nNothing to do\n' },
    { when: 'yum -q versionlock list', stdout: '' },
  ]);
  const failed = await runScripted(site('    - package: tree\n      version: "1.5.0"\n'), centos7, down);
  assert.equal(failed[0]!.status, 'failed');
  assert.match(failed[0]!.error!, /yum install does not downgrade/);
});

// ---- apk ---------------------------------------------------------------------------------------

test('contract: apk info -v and apk version parsing', () => {
  const versions = parseApkInfo(captured('apk/info-v.stdout'));
  assert.equal(versions.size, 15);
  assert.deepEqual(versions.get('openssh-server'), ['9.7_p1-r4']);
  assert.deepEqual(versions.get('alpine-baselayout-data'), ['3.6.5-r0']);
  assert.deepEqual(versions.get('ca-certificates-bundle'), ['20240705-r0']);
  assert.deepEqual(Object.fromEntries(parseApkVersion(captured('apk/version-l.stdout'))), { 'openssh-server': '9.7_p1-r5' });
});

test('contract: ssh-server is openssh-server via apk on Alpine: apk info -v, then apk add', async () => {
  const exec = new ScriptedExecutor([
    { when: 'apk info -v', stdout: captured('apk/info-v.stdout').replace(/^openssh-server.*\n/m, '') },
    { when: 'apk add --no-progress openssh-server' },
  ]);
  assert.deepEqual(summary(await runScripted(site('    - package: ssh-server\n'), FACTS.alpine!, exec, 'plan')), ['would-change package:ssh-server (create)']);
  assert.deepEqual(exec.lines, ['apk info -v']);
  assert.deepEqual(summary(await runScripted(site('    - package: ssh-server\n'), FACTS.alpine!, exec)), ['changed package:ssh-server (create)']);
  assert.deepEqual(exec.lines.slice(1), ['apk info -v', 'apk add --no-progress openssh-server']);
});

test('contract: apk latest, version, removal; an unknown package fails with apk\'s own error after one apk update', async () => {
  const exec = new ScriptedExecutor([
    { when: 'apk info -v', stdout: captured('apk/info-v.stdout') },
    { when: 'apk version -l < openssh-server zlib', stdout: captured('apk/version-l.stdout') },
    { when: 'apk add --no-progress nosuch', code: 1, stderr: captured('apk/add-unknown.stderr') },
    { when: 'apk update --no-progress' },
    { when: 'apk add ' }, { when: 'apk del ' },
  ]);
  // apk's hold is the world file: busybox is pinned there already, musl is not.
  exec.files.set('/etc/apk/world', { data: Buffer.from('busybox=1.36.1-r29\nopenssh-server\nscanelf\nzlib\n'), mode: 0o644, uid: 0, gid: 0 });
  const results = await runScripted(site(
    '    - package: openssh-server\n      ensure: latest\n' +
    '    - package: zlib\n      ensure: latest\n' +
    '    - package: musl\n      version: "1.2.5-r1"\n' +
    '    - package: busybox\n      version: "1.36.1"\n' +
    '    - package: scanelf\n      ensure: absent\n' +
    '    - package: nosuch\n'), FACTS.alpine!, exec);
  assert.deepEqual(summary(results), [
    'changed package:openssh-server (update)', 'unchanged package:zlib', 'changed package:musl (update)',
    'unchanged package:busybox', 'changed package:scanelf (destroy)', 'failed package:nosuch (create)',
  ]);
  assert.match(errorOf(results, 'package:nosuch'), /^apk add nosuch exited with 1:\n[^]*ERROR: unable to select packages:\n {2}nosuch \(no such package\):\n {4}required by: world\[nosuch\]$/);
  assert.deepEqual(exec.lines.filter((l) => !l.startsWith('apk info') && !l.startsWith('apk version')), [
    'apk add --no-progress --upgrade openssh-server', 'apk add --no-progress musl=1.2.5-r1', 'apk del --no-progress scanelf',
    'apk add --no-progress nosuch', 'apk update --no-progress', 'apk add --no-progress nosuch',
  ]);
});

// ---- pacman ------------------------------------------------------------------------------------

test('contract: pacman -Q and -Qu parsing', () => {
  assert.deepEqual(Object.fromEntries(parsePacmanQuery(captured('pacman/Q.stdout'))), { openssh: ['9.9p1-2'], pacman: ['7.0.0.r6.gc685ae6-2'] });
  assert.deepEqual(Object.fromEntries(parsePacmanUpgrades(captured('pacman/Qu.stdout'))), { openssh: '9.9p1-2' }, 'an ignored package is not upgraded by pacman -S');
});

test('contract: pacman on Arch: one pacman -Q, one -Qu; install, upgrade, removal; pacman\'s own error', async () => {
  const exec = new ScriptedExecutor([
    { when: 'pacman -Q nosuch openssh pacman tree', code: 1, stdout: captured('pacman/Q.stdout'), stderr: captured('pacman/Q.stderr') + "error: package 'tree' was not found\n" },
    { when: 'pacman -Qu openssh', stdout: captured('pacman/Qu.stdout') },
    { when: 'pacman -S --noconfirm --needed nosuch', code: 1, stderr: captured('pacman/S-unknown.stderr') },
    { when: 'pacman -S ' }, { when: 'pacman -R ' },
  ]);
  const results = await runScripted(site(
    '    - package: ssh-server\n      ensure: latest\n' +
    '    - package: pacman\n      ensure: absent\n' +
    '    - package: tree\n      version: "2.1.3-1"\n      hold: false\n' +
    '    - package: nosuch\n'), FACTS.arch!, exec);
  assert.deepEqual(summary(results), ['changed package:ssh-server (update)', 'changed package:pacman (destroy)', 'changed package:tree (create)', 'failed package:nosuch (create)']);
  assert.equal(errorOf(results, 'package:nosuch'), 'pacman -S nosuch exited with 1:\nerror: target not found: nosuch');
  assert.deepEqual(exec.lines.slice(0, 2), ['pacman -Q nosuch openssh pacman tree', 'pacman -Qu openssh']);
  assert.deepEqual(exec.lines.filter((l) => /^pacman -[SR]/.test(l)), [
    'pacman -S --noconfirm --needed openssh', 'pacman -R --noconfirm pacman', 'pacman -S --noconfirm --needed tree=2.1.3-1', 'pacman -S --noconfirm --needed nosuch',
  ]);
});

test('contract: pacman has no hold command: a pin that would hold fails the node and says what to do, installing nothing', async () => {
  const exec = new ScriptedExecutor([{ when: 'pacman -Q tree', code: 1, stderr: "error: package 'tree' was not found\n" }]);
  const results = await runScripted(site('    - package: tree\n      version: "2.1.3-1"\n'), FACTS.arch!, exec);
  assert.deepEqual(summary(results), ['failed package:tree (create)']);
  assert.match(errorOf(results, 'package:tree'), /^pacman has no command to hold a package: list it in IgnorePkg .* and write hold: false$/);
  assert.deepEqual(exec.lines, ['pacman -Q tree']);
});

// ---- pkg (FreeBSD) -----------------------------------------------------------------------------

test('contract: pkg query and pkg version parsing', () => {
  assert.deepEqual(Object.fromEntries(parsePkgQuery(captured('pkg/query.stdout'))), { curl: ['8.10.1'], sudo: ['1.9.16p2'] });
  assert.deepEqual(Object.fromEntries(parsePkgVersion(captured('pkg/version-vRL.stdout'))), { curl: '8.11.0' }, 'orphaned and newer-than-remote are not upgrades');
});

test('contract: pkg on FreeBSD: one pkg query, one pkg version; install, upgrade, removal; pkg\'s own error', async () => {
  const exec = new ScriptedExecutor([
    { when: 'pkg query %n %v apache24 curl nosuch sudo', code: 1, stdout: captured('pkg/query.stdout') },
    { when: 'pkg version -vRL=', stdout: captured('pkg/version-vRL.stdout') },
    // `%k %n`: 1 when locked. sudo is locked (by an admin) and its node has no pin: unlocked.
    { when: 'pkg query -a %k %n', stdout: '0 curl\n1 sudo\n' },
    { when: 'pkg install -y nosuch', code: 1, stdout: captured('pkg/install-unknown.stdout'), stderr: captured('pkg/install-unknown.stderr') },
    { when: 'pkg ' },
  ]);
  const results = await runScripted(site(
    '    - package: curl\n      ensure: latest\n' +
    '    - package: sudo\n      ensure: latest\n' +
    '    - package: apache\n' +
    '    - package: nosuch\n' +
    '    - package: ssh-server\n'), FACTS.freebsd!, exec);
  assert.deepEqual(summary(results), [
    'changed package:curl (update)', 'changed package:sudo (update)', 'changed package:apache (create)', 'failed package:nosuch (create)', 'unchanged package:ssh-server',
  ]);
  assert.equal(errorOf(results, 'package:nosuch'), "pkg install nosuch exited with 1:\npkg: No packages available to install matching 'nosuch' have been found in the repositories");
  assert.deepEqual(exec.lines.slice(0, 3), ['pkg query %n %v apache24 curl nosuch sudo', 'pkg query -a %k %n', 'pkg version -vRL=']);
  assert.deepEqual(exec.lines.filter((l) => /^pkg (install|upgrade|delete|lock|unlock)/.test(l)), ['pkg upgrade -y curl', 'pkg unlock -y sudo', 'pkg install -y apache24', 'pkg install -y nosuch']);

  const remove = new ScriptedExecutor([{ when: 'pkg query %n %v curl', stdout: 'curl 8.10.1\n' }, { when: 'pkg query -a %k %n', stdout: '0 curl\n' }, { when: 'pkg delete -y curl' }]);
  assert.deepEqual(summary(await runScripted(site('    - package: curl\n      ensure: absent\n'), FACTS.freebsd!, remove)), ['changed package:curl (destroy)']);
  assert.deepEqual(remove.lines, ['pkg query %n %v curl', 'pkg query -a %k %n', 'pkg delete -y curl']);
});
