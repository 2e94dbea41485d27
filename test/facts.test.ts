/**
 * Facts (the same keys locally and over SSH, one round trip) and the OS tables: built-in tables
 * per family, distribution and release, a site's `os/` laid over them, `it.os` in templates,
 * and provider selection by the tables and facts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildCatalog } from '../src/catalog/catalog.ts';
import { osTable } from '../src/catalog/compile.ts';
import { factsFrom, parseAddresses } from '../src/executors/facts.ts';
import { localFacts } from '../src/executors/local-facts.ts';
import { FACTS_SCRIPT, factsScript, parseFacts, splitSections } from '../src/executors/shell/remote-script.ts';
import { Diagnostics } from '../src/lib/errors.ts';
import { osName, osSetting } from '../src/resources/os.ts';
import { loadSite } from '../src/site/load.ts';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';
import { FACTS } from './helpers/scripted-executor.ts';
import { sshUnavailable, startSshd, type Sshd } from './helpers/sshd.ts';

const FACT_KEYS = ['kernel', 'kernel_release', 'os_family', 'distribution', 'release', 'architecture', 'init_system', 'package_manager', 'hostname', 'addresses', 'cpus', 'memory_mb'];

async function tablesFor(files: Record<string, string>, facts: Record<string, unknown>) {
  const d = new Diagnostics();
  const catalog = buildCatalog(await loadSite(makeSite({ 'cairn.yaml': 'targets:\n  t1: { executor: local }\n', ...files }), d), d);
  d.throwIfAny();
  return osTable(catalog, facts);
}

test('facts from os-release and uname: family from ID or ID_LIKE, init system, package manager, addresses', () => {
  const rocky = factsFrom({
    osRelease: 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n',
    kernel: 'linux', kernelRelease: '5.14.0', machine: 'x86_64', hostname: 'db1', cpus: 4, memoryMb: 7820,
    initSystem: 'systemd', packageTool: 'dnf', addresses: ['127.0.0.1', '10.0.0.5', '::1', 'fe80::1', '2001:db8::5'],
  });
  assert.deepEqual(rocky, {
    kernel: 'linux', kernel_release: '5.14.0', os_family: 'redhat', distribution: 'rocky', release: '9.4', architecture: 'x86_64',
    init_system: 'systemd', package_manager: 'dnf', hostname: 'db1', addresses: { ipv4: ['10.0.0.5'], ipv6: ['2001:db8::5'] }, cpus: 4, memory_mb: 7820,
  });
  const mint = factsFrom({ osRelease: 'ID=linuxmint\nID_LIKE="ubuntu debian"\nVERSION_ID="21.3"\n', kernel: 'linux', kernelRelease: '6', machine: 'aarch64', hostname: 'm', cpus: 1, memoryMb: 1, initSystem: '', packageTool: 'apt-get', addresses: [] });
  assert.equal(mint.os_family, 'debian');
  assert.equal(mint.init_system, 'unknown');
  assert.equal(mint.package_manager, 'apt');
});

test('addresses are parsed from ip -o addr, ifconfig (BSD and Linux) and hostname -I', () => {
  const ip = '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n2: eth0    inet 10.200.1.2/30 brd 10.200.1.3 scope global eth0\n2: eth0    inet6 fe80::1c2a:ff:fe00:1/64 scope link\n2: eth0    inet6 2001:db8::2/64 scope global\n';
  assert.deepEqual(parseAddresses(ip), ['10.200.1.2', '2001:db8::2']);
  const bsd = 'vtnet0: flags=8863<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500\n\tinet 192.168.1.20 netmask 0xffffff00 broadcast 192.168.1.255\n\tinet6 fe80::5a9c:fcff:fe10:1%vtnet0 prefixlen 64 scopeid 0x1\nlo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> metric 0 mtu 16384\n\tinet 127.0.0.1 netmask 0xff000000\n';
  assert.deepEqual(parseAddresses(bsd), ['192.168.1.20']);
  assert.deepEqual(parseAddresses('eth0      Link encap:Ethernet\n          inet addr:172.17.0.2  Bcast:172.17.255.255\n'), ['172.17.0.2']);
  assert.deepEqual(parseAddresses('10.0.0.7 172.17.0.1 2001:db8::7 \n'), ['10.0.0.7', '172.17.0.1', '2001:db8::7']);
});

test('local facts have every key', () => {
  assert.deepEqual(Object.keys(localFacts()), FACT_KEYS);
});

/** A folder holding an Alpine system's files, as a chroot executor would converge. */
function alpineRoot(): string {
  const root = tempDir('cairn-root-');
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc', 'os-release'), 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.1\n');
  mkdirSync(join(root, 'sbin'));
  writeFileSync(join(root, 'sbin', 'openrc'), '');
  // Absolute, so it dangles seen from outside the root: still the root's apk.
  symlinkSync('/bin/busybox-in-the-root', join(root, 'sbin', 'apk'));
  return root;
}

test('facts of a system in a folder: release, init system and package tool from its files, the rest from this machine', () => {
  const root = alpineRoot();
  const here = localFacts();
  const nonce = 'cairn-test-nonce';
  const byShell = parseFacts(splitSections(execFileSync('/bin/sh', ['-c', `__n=${nonce}\n${factsScript(`${root}/`)}`]), nonce));
  for (const facts of [localFacts(root), byShell]) {
    assert.deepEqual(Object.keys(facts), FACT_KEYS);
    assert.equal(facts.os_family, 'alpine');
    assert.equal(facts.distribution, 'alpine');
    assert.equal(facts.release, '3.20.1');
    assert.equal(facts.package_manager, 'apk');
    assert.equal(facts.init_system, 'openrc');
    for (const key of ['kernel', 'kernel_release', 'architecture', 'hostname']) assert.deepEqual(facts[key], here[key], key);
  }
  // A root without those files says so, rather than borrowing this machine's.
  const bare = localFacts(tempDir('cairn-root-'));
  assert.deepEqual([bare.distribution, bare.package_manager, bare.init_system], ['linux', 'unknown', 'unknown']);
  // `/` is this machine, read the live way.
  assert.equal(factsScript('/'), FACTS_SCRIPT);
  assert.deepEqual(localFacts('/'), here);
});

test('OS tables: built-in family, distribution and release sections; a site os/ file overrides them', async () => {
  const debian = await tablesFor({}, FACTS.debian!);
  assert.equal(osName(debian, 'packages', 'ssh-server'), 'openssh-server');
  assert.equal(osName(debian, 'services', 'ssh-server'), 'ssh');
  assert.equal(osName(debian, 'packages', 'hello'), 'hello', 'a name the tables do not list is used as written');
  assert.equal(osSetting(debian, {}, 'package_manager'), 'apt');
  assert.equal(osSetting(debian, {}, 'init_system'), 'systemd');

  const ubuntu = await tablesFor({}, FACTS.ubuntu!);
  assert.equal(osName(ubuntu, 'packages', 'dns-utils'), 'dnsutils', 'the distribution section is laid over the family');
  assert.equal(osName(ubuntu, 'packages', 'ssh-server'), 'openssh-server', 'and the family still applies');

  const alpine = await tablesFor({}, FACTS.alpine!);
  assert.equal(osName(alpine, 'packages', 'ssh-server'), 'openssh-server');
  assert.equal(osName(alpine, 'services', 'ssh-server'), 'sshd');
  assert.equal(osSetting(alpine, {}, 'init_system'), 'openrc');

  const freebsd = await tablesFor({}, FACTS.freebsd!);
  assert.equal(osName(freebsd, 'packages', 'ssh-server'), null, 'sshd is part of the FreeBSD base system');
  assert.equal(osSetting(freebsd, {}, 'package_manager'), 'pkg');
  assert.equal(osSetting(freebsd, {}, 'init_system'), 'rc.d');

  for (const [name, manager] of [['rocky', 'dnf'], ['arch', 'pacman']] as const) {
    assert.equal(osSetting(await tablesFor({}, FACTS[name]!), {}, 'package_manager'), manager);
  }
  const centos7 = await tablesFor({}, { os_family: 'redhat', distribution: 'centos', release: '7.9.2009' });
  assert.equal(osSetting(centos7, {}, 'package_manager'), 'yum', 'a distribution-major section (centos-7) applies to 7.9');

  const site = await tablesFor({
    'os/ours.yaml': 'default:\n  packages: { ssh-server: our-sshd }\n  paths: { motd: /etc/motd }\ndebian-12:\n  paths: { motd: /etc/motd.d/ours }\n',
  }, FACTS.debian!);
  assert.equal(osName(site, 'packages', 'ssh-server'), 'our-sshd', "the site's tables are laid over the built-in ones");
  assert.equal(osName(site, 'packages', 'apache'), 'apache2', 'built-in entries the site does not name stay');
  assert.deepEqual((site.paths as Record<string, unknown>).motd, '/etc/motd.d/ours');
});

test('provider selection: the tables choose, facts fill in where the tables say nothing', () => {
  assert.equal(osSetting({ package_manager: 'dnf' }, { package_manager: 'yum' }, 'package_manager'), 'dnf');
  assert.equal(osSetting({}, { package_manager: 'apk' }, 'package_manager'), 'apk');
  assert.equal(osSetting({}, { init_system: 'unknown' }, 'init_system'), undefined);
});

test('it.os in templates and cairn show with a facts file', async () => {
  const site = makeSite({
    'cairn.yaml': 'targets:\n  t1: { executor: local, run: [s] }\n',
    'states/s.yaml': 's:\n  - file: /tmp/<%= it.os.packages["ssh-server"] %>-<%= it.os.package_manager %>\n    content: x\n',
    'alpine.json': JSON.stringify(FACTS.alpine),
  });
  const r = await runCli(['show', '--site', site, '--facts', join(site, 'alpine.json'), '--json']);
  assert.equal(r.status, 0, r.stderr);
  const shown = JSON.parse(r.stdout) as { run: { invocations: { parts: { ref: string }[] }[] } };
  assert.equal(shown.run.invocations[0]!.parts[0]!.ref, 'file:/tmp/openssh-server-apk');
});

test('cairn facts without a site prints this machine', async () => {
  const r = await runCli(['facts', '--site', mkdtempSync(join(tmpdir(), 'cairn-nosite-')), '--json']);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { targets: { name: string; facts: Record<string, unknown> }[] };
  assert.equal(out.targets[0]!.name, 'local');
  assert.deepEqual(Object.keys(out.targets[0]!.facts), FACT_KEYS);
  const text = await runCli(['facts', '--site', mkdtempSync(join(tmpdir(), 'cairn-nosite-'))]);
  assert.match(text.stdout, /^local\n {2}kernel: linux\n/);
  assert.match(text.stdout, /\n {2}package_manager: \w+\n/);
});

const missing = sshUnavailable();
if (missing) process.stderr.write(`\n*** SKIPPED: cairn facts over SSH: ${missing} ***\n\n`);

describe('cairn facts over SSH', { skip: missing }, () => {
  let sshd: Sshd;
  before(async () => {
    sshd = await startSshd({ port: 22431 });
  });
  after(() => sshd?.stop());

  test('the same keys as locally, in one round trip; an unreachable target is exit 3 with its host', async () => {
    const target = (port: number) => `{ host: ${sshd.host}, port: ${port}, user: root, identity_file: ${sshd.identityFile}, known_hosts: ${sshd.knownHosts} }`;
    const site = makeSite({ 'cairn.yaml': `targets:\n  far: ${target(sshd.port)}\n  gone: ${target(22439)}\n  here: { executor: local }\n` });
    const r = await runCli(['facts', '--site', site, '--json']);
    assert.equal(r.status, 3, r.stderr);
    const out = JSON.parse(r.stdout) as { targets: { name: string; facts?: Record<string, unknown>; error?: string }[] };
    const [far, gone, here] = out.targets;
    assert.deepEqual(Object.keys(far!.facts!), FACT_KEYS);
    // The sshd runs on this machine: the far side's facts are this machine's, read by the script.
    for (const key of ['kernel', 'os_family', 'distribution', 'release', 'architecture', 'package_manager', 'hostname', 'cpus']) {
      assert.deepEqual(far!.facts![key], here!.facts![key], key);
    }
    assert.match(gone!.error!, /127\.0\.0\.1:22439/);
    const one = await runCli(['facts', '--site', site, '-t', 'far']);
    assert.equal(one.status, 0, one.stderr);
    assert.match(one.stdout, /^far\n {2}kernel: linux\n/);
  });
});
