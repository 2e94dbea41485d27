/**
 * The system types' `shell` traits (DESIGN §11) on a real Debian host (a lab host: bookworm,
 * systemd as PID 1, the local apt repository): for each type, the fragments `cairn export` would
 * write run with the host's /bin/sh (dash), the functions they call defined before them as the
 * exported script defines them. `check` fails, `apply` converges, `check` passes, a second `apply`
 * changes nothing observable, and `cairn plan` with the same part on that host reports it
 * unchanged: the exported script and Cairn's own providers agree on what "in sync" is. The
 * BusyBox family's user, hostname and sysctl fragments run there too, under BusyBox ash with
 * nothing but its applets on PATH (this machine's busybox, bound in): no getent, no usermod.
 */
import assert from 'node:assert/strict';
import { existsSync, realpathSync } from 'node:fs';
import { after, before, test } from 'node:test';
import type { TargetReport } from '../src/engine/engine.ts';
import { builtinOsTables } from '../src/catalog/builtin-os.ts';
import { sshAuthorizedKey } from '../src/resources/authorized_key/provider.ts';
import { authorizedKeyType } from '../src/resources/authorized_key/type.ts';
import { crontabCron } from '../src/resources/cron/provider.ts';
import { cronType } from '../src/resources/cron/type.ts';
import { shadowGroup } from '../src/resources/group/provider.ts';
import { groupType } from '../src/resources/group/type.ts';
import { etcHostnameHostname, hostnamectlHostname } from '../src/resources/hostname/provider.ts';
import { hostnameType } from '../src/resources/hostname/type.ts';
import { aptProvider } from '../src/resources/package/apt.ts';
import { packageType } from '../src/resources/package/type.ts';
import { systemdService } from '../src/resources/service/systemd.ts';
import { serviceType } from '../src/resources/service/type.ts';
import { preludeFor } from '../src/resources/shell-prelude.ts';
import { shellQuote } from '../src/lib/shell.ts';
import { linuxSysctl } from '../src/resources/sysctl/provider.ts';
import { sysctlType } from '../src/resources/sysctl/type.ts';
import { shadowUser } from '../src/resources/user/shadow.ts';
import { busyboxUser } from '../src/resources/user/busybox.ts';
import { userType } from '../src/resources/user/type.ts';
import type { Provider, ResolveContext } from '../src/resources/type.ts';
import type { Report } from './helpers/converge.ts';
import { makeSite, runCli } from './helpers/cli.ts';
import { labUnavailable, startLab, type Lab, type LabHost, targetYaml } from './helpers/lab.ts';
import { osContext } from './helpers/shell-context.ts';

const DEBIAN = (builtinOsTables().find((t) => t.file.endsWith('/debian.yaml'))!.doc as Record<string, Record<string, unknown>>).debian!;

const why = labUnavailable();
const noBusybox = existsSync('/bin/busybox') ? undefined : 'busybox is not installed here (scripts/install.sh installs it): the BusyBox case is skipped';
if (why) {
  test(`LAB TESTS SKIPPED: shell traits on a lab host: ${why}`, { skip: why }, () => {});
  process.stderr.write(`\n*** LAB TESTS SKIPPED: ${why} ***\n\n`);
} else {
  let lab: Lab;
  let host: LabHost;
  before(async () => {
    // BusyBox (this machine's, when it has it) for the BusyBox family's fragments.
    lab = await startLab(1, { repo: true, ...(noBusybox ? {} : { binds: [{ source: realpathSync('/bin/busybox'), target: '/opt/busybox', readOnly: true }] }) });
    host = lab.hosts[0]!;
  });
  after(() => lab?.stop());

  /** Runs a fragment as an exported script would: after the functions it calls (and under `set -e`, which they bear). */
  const sh = (fragment: string) => host.sh(`set -e\n${preludeFor([fragment])}\n${fragment}`);
  const out = async (command: string) => {
    const r = await host.sh(command);
    assert.equal(r.code, 0, `${command}: ${r.stderr}`);
    return r.stdout;
  };

  /** `cairn plan --json` of one part (a YAML list item) on the host: its node's status. */
  const plan = async (part: string) => {
    const site = makeSite({ 'cairn.yaml': `${targetYaml(host)}    run: [s]\nstates:\n  s:\n${part}` });
    const r = await runCli(['plan', '--site', site, '--json']);
    let target: TargetReport;
    try {
      target = (JSON.parse(r.stdout) as Report).targets[0]!;
    } catch {
      assert.fail(`cairn plan: no JSON report (exit ${r.status}); stderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
    }
    return target.nodes.map((n) => `${n.status} ${n.ref}`);
  };

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any type's attributes, made right by its schema
  type Attrs = any;
  const parsed = (type: { schema: { parse(v: unknown): unknown }; resolve?: (a: Record<string, unknown>, ctx: ResolveContext) => Record<string, unknown> }, attrs: Record<string, unknown>): Attrs => {
    const p = type.schema.parse(attrs) as Record<string, unknown>;
    return type.resolve ? type.resolve(p, {} as ResolveContext) : p;
  };

  /**
   * The exported script's turn at one node: check fails, apply converges, check passes; a second
   * apply changes nothing `observe` shows; `cairn plan` of `part` reports `unchanged <ref>`.
   */
  async function converges(provider: Provider, desired: Attrs, observe: string, part: string, ref: string, run = sh): Promise<string> {
    const sh = run;
    const check = provider.shell!.check(desired, osContext(DEBIAN));
    const apply = provider.shell!.apply(desired, desired.ensure === 'absent' ? 'destroy' : 'create', osContext(DEBIAN));
    const before = await sh(check);
    assert.notEqual(before.code, 0, `check passed before apply:\n${check}`);
    const applied = await sh(apply);
    assert.equal(applied.code, 0, `apply failed:\n${apply}\n${applied.stdout}${applied.stderr}`);
    const after = await sh(check);
    assert.equal(after.code, 0, `check fails after apply:\n${check}\n${after.stderr}`);
    const state = await out(observe);
    const again = await sh(apply);
    assert.equal(again.code, 0, `apply again failed:\n${again.stderr}`);
    assert.equal(await out(observe), state, 'a second apply changed something');
    assert.deepEqual(await plan(part), [`unchanged ${ref}`]);
    return state;
  }

  const pkg = (a: Record<string, unknown>) => parsed(packageType, a);
  /** What a package fragment changes: dpkg's database, the holds. */
  const DPKG = 'stat -c %Y.%i /var/lib/dpkg/status; dpkg-query -W -f=\'${Package} ${Version} ${db:Status-Abbrev}\\n\' tree cairn-dummy hello 2>/dev/null; apt-mark showhold';

  test('package (apt): present, latest, a version pin held and moved, absent while held', async () => {
    let state = await converges(aptProvider, pkg({ name: 'tree' }), DPKG, '    - package: tree\n', 'package:tree');
    assert.match(state, /^tree \S+ ii/m);
    state = await converges(aptProvider, pkg({ name: 'hello', ensure: 'latest' }), DPKG, '    - package: hello\n      ensure: latest\n', 'package:hello');
    assert.match(state, /^hello \S+ ii/m);

    // A pin installs that version and holds it; another pin releases, moves and holds again.
    state = await converges(aptProvider, pkg({ name: 'cairn-dummy', version: '1.0-1' }), DPKG, '    - package: cairn-dummy\n      version: "1.0-1"\n', 'package:cairn-dummy');
    assert.match(state, /^cairn-dummy 1\.0-1 hi/m);
    assert.match(state, /^cairn-dummy$/m);
    state = await converges(aptProvider, pkg({ name: 'cairn-dummy', version: '2.0-1' }), DPKG, '    - package: cairn-dummy\n      version: "2.0-1"\n', 'package:cairn-dummy');
    assert.match(state, /^cairn-dummy 2\.0-1 hi/m);
    assert.match(state, /^cairn-dummy$/m);
    // No pin: the hold found is released (the site owns the hold of every package it names).
    state = await converges(aptProvider, pkg({ name: 'cairn-dummy' }), DPKG, '    - package: cairn-dummy\n', 'package:cairn-dummy');
    assert.match(state, /^cairn-dummy 2\.0-1 ii/m);
    assert.doesNotMatch(state, /^cairn-dummy$/m);
    await out('apt-mark hold cairn-dummy');
    state = await converges(aptProvider, pkg({ name: 'cairn-dummy', ensure: 'absent' }), DPKG, '    - package: cairn-dummy\n      ensure: absent\n', 'package:cairn-dummy');
    assert.doesNotMatch(state, /^cairn-dummy \S+ .i/m);
    assert.doesNotMatch(state, /^cairn-dummy$/m);
  });

  test('service (systemd): running and enabled, a refresh restarts it, stopped and disabled', async () => {
    await out('DEBIAN_FRONTEND=noninteractive apt-get -y -q install cairn-svc');
    const svc = (a: Record<string, unknown>) => parsed(serviceType, a);
    const UNIT = 'systemctl show -p ActiveState,UnitFileState,InvocationID cairn-svc';
    const running = svc({ name: 'cairn-svc', ensure: 'running', enable: true });
    let state = await converges(systemdService, running, UNIT, '    - service: cairn-svc\n      ensure: running\n      enable: true\n', 'service:cairn-svc');
    assert.match(state, /ActiveState=active/);
    assert.match(state, /UnitFileState=enabled/);

    const refreshed = await sh(systemdService.shell!.refresh!(running, osContext(DEBIAN)));
    assert.equal(refreshed.code, 0, refreshed.stderr);
    const now = await out(UNIT);
    assert.match(now, /ActiveState=active/);
    assert.notEqual(/InvocationID=(\S+)/.exec(now)![1], /InvocationID=(\S+)/.exec(state)![1], 'refresh restarted it');

    state = await converges(systemdService, svc({ name: 'cairn-svc', ensure: 'stopped', enable: false }), UNIT,
      '    - service: cairn-svc\n      ensure: stopped\n      enable: false\n', 'service:cairn-svc');
    assert.match(state, /ActiveState=inactive/);
    assert.match(state, /UnitFileState=disabled/);
    // Notified while meant to be stopped: nothing starts it.
    assert.equal((await sh(systemdService.shell!.refresh!(svc({ name: 'cairn-svc', ensure: 'stopped' }), osContext(DEBIAN)))).code, 0);
    assert.match(await out(UNIT), /ActiveState=inactive/);

    // A unit systemd does not know: apply fails in systemd's words.
    const unknown = await sh(systemdService.shell!.apply(svc({ name: 'no-such-unit', ensure: 'running' }), 'update', osContext(DEBIAN)));
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /no-such-unit/);
  });

  /** What an account fragment changes: the databases (inode and time: a rewrite shows) and their entries. */
  const ACCOUNTS = "stat -c %n.%Y.%i /etc/passwd /etc/group /etc/shadow; grep -hE '^(deploy|web|adm|users):' /etc/passwd /etc/group; true";

  test('group and user (shadow): gid, supplementary groups, home, shell, comment; changed in place; absent', async () => {
    const group = (a: Record<string, unknown>) => parsed(groupType, a);
    let state = await converges(shadowGroup, group({ name: 'web', gid: 3456 }), ACCOUNTS, '    - group: web\n      gid: 3456\n', 'group:web');
    assert.match(state, /^web:x:3456:/m);
    state = await converges(shadowGroup, group({ name: 'web', gid: 3457 }), ACCOUNTS, '    - group: web\n      gid: 3457\n', 'group:web');
    assert.match(state, /^web:x:3457:/m);

    const user = (a: Record<string, unknown>) => parsed(userType, a);
    const full = { name: 'deploy', uid: 2345, gid: 'web', groups: ['adm', 'users'], home: '/srv/deploy', shell: '/bin/sh', comment: 'Deploy bot' };
    state = await converges(shadowUser, user(full), ACCOUNTS,
      '    - user: deploy\n      uid: 2345\n      gid: web\n      groups: [adm, users]\n      home: /srv/deploy\n      shell: /bin/sh\n      comment: Deploy bot\n', 'user:deploy');
    assert.match(state, /^deploy:x:2345:3457:Deploy bot:\/srv\/deploy:\/bin\/sh$/m);
    assert.match(state, /^adm:x:\d+:.*\bdeploy\b/m);
    assert.match(state, /^users:x:\d+:.*\bdeploy\b/m);
    assert.equal(await out('stat -c %U /srv/deploy'), 'deploy\n');

    // An existing user brought to another shell and one group fewer (usermod).
    state = await converges(shadowUser, user({ ...full, shell: '/bin/bash', groups: ['users'] }), ACCOUNTS,
      '    - user: deploy\n      shell: /bin/bash\n      groups: [users]\n', 'user:deploy');
    assert.match(state, /^deploy:x:2345:3457:Deploy bot:\/srv\/deploy:\/bin\/bash$/m);
    assert.doesNotMatch(state, /^adm:x:\d+:.*\bdeploy\b/m);

    state = await converges(shadowUser, user({ name: 'deploy', ensure: 'absent' }), ACCOUNTS, '    - user: deploy\n      ensure: absent\n', 'user:deploy');
    assert.doesNotMatch(state, /^deploy:/m);
    state = await converges(shadowGroup, group({ name: 'web', ensure: 'absent' }), ACCOUNTS, '    - group: web\n      ensure: absent\n', 'group:web');
    assert.doesNotMatch(state, /^web:/m);
  });

  test('authorized_key: added beside the lines already there (~/.ssh made 0700, the file 0600, owned by the user), options changed, removed', async () => {
    await out('useradd -m -s /bin/sh alice');
    const FILE = '/home/alice/.ssh/authorized_keys';
    const KEYS = `stat -c '%n %a %U %Y.%i' /home/alice/.ssh ${FILE} 2>/dev/null; cat ${FILE} 2>/dev/null || true`;
    const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKl3Tsy2 alice@laptop';
    const key = (a: Record<string, unknown>) => parsed(authorizedKeyType, { key: KEY, user: 'alice', ...a });
    const part = (extra: string) => `    - authorized_key: ${KEY}\n      user: alice\n${extra}`;

    let state = await converges(sshAuthorizedKey, key({}), KEYS, part(''), `authorized_key:alice#ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKl3Tsy2`);
    assert.match(state, /^\/home\/alice\/\.ssh 700 alice /m);
    assert.match(state, /^\/home\/alice\/\.ssh\/authorized_keys 600 alice /m);
    assert.match(state, new RegExp(`^${KEY}$`, 'm'));

    // Another line of the file stays; options are set on the key's own line.
    await out(`printf '%s\\n' 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB other@host' >> ${FILE}`);
    state = await converges(sshAuthorizedKey, key({ options: 'from="10.0.0.0/8",no-pty' }), KEYS,
      part('      options: \'from="10.0.0.0/8",no-pty\'\n'), 'authorized_key:alice#ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKl3Tsy2');
    assert.ok(state.endsWith(`from="10.0.0.0/8",no-pty ${KEY}\nssh-rsa AAAAB3NzaC1yc2EAAAADAQAB other@host\n`), state);
    assert.match(state, /authorized_keys 600 alice /);

    state = await converges(sshAuthorizedKey, key({ ensure: 'absent' }), KEYS, part('      ensure: absent\n'), 'authorized_key:alice#ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKl3Tsy2');
    assert.ok(state.endsWith('\nssh-rsa AAAAB3NzaC1yc2EAAAADAQAB other@host\n'), state);
    assert.doesNotMatch(state, /ssh-ed25519/);
  });

  test('cron: the entry under its marker, the crontab\'s other lines kept; a changed schedule; absent', async () => {
    await out(`printf 'MAILTO=root\\n0 0 * * * /bin/true mine\\n' | crontab -u root -`);
    const TAB = 'crontab -l -u root';
    const cron = (a: Record<string, unknown>) => parsed(cronType, { name: 'backup', ...a });
    let state = await converges(crontabCron, cron({ command: 'tar czf /tmp/b.tgz /etc', minute: 15, hour: 3 }), TAB,
      '    - cron: backup\n      command: tar czf /tmp/b.tgz /etc\n      minute: 15\n      hour: 3\n', 'cron:backup');
    assert.equal(state, 'MAILTO=root\n0 0 * * * /bin/true mine\n# cairn: backup\n15 3 * * * tar czf /tmp/b.tgz /etc\n');
    state = await converges(crontabCron, cron({ command: 'tar czf /tmp/b.tgz /etc', special: 'daily' }), TAB,
      '    - cron: backup\n      command: tar czf /tmp/b.tgz /etc\n      special: daily\n', 'cron:backup');
    assert.equal(state, 'MAILTO=root\n0 0 * * * /bin/true mine\n# cairn: backup\n@daily tar czf /tmp/b.tgz /etc\n');
    state = await converges(crontabCron, cron({ ensure: 'absent' }), TAB, '    - cron: backup\n      ensure: absent\n', 'cron:backup');
    assert.equal(state, 'MAILTO=root\n0 0 * * * /bin/true mine\n');
  });

  test('hostname: the running name and /etc/hostname', async () => {
    const state = await converges(hostnamectlHostname, parsed(hostnameType, { name: 'exported-1' }), 'uname -n; cat /etc/hostname; stat -c %Y.%i /etc/hostname',
      '    - hostname: exported-1\n', 'hostname:exported-1');
    assert.match(state, /^exported-1\nexported-1\n/);
  });

  test('sysctl: the live value and its line in /etc/sysctl.d/99-cairn.conf (other lines kept); persist: false drops the line', async () => {
    const CONF = '/etc/sysctl.d/99-cairn.conf';
    const SYSCTL = `sysctl -n net.ipv4.ip_forward net.ipv4.ping_group_range; stat -c %Y.%i ${CONF} 2>/dev/null; cat ${CONF} 2>/dev/null || true`;
    await out('sysctl -w net.ipv4.ip_forward=0 >/dev/null');
    let state = await converges(linuxSysctl, parsed(sysctlType, { name: 'net.ipv4.ip_forward', value: 1 }), SYSCTL,
      '    - sysctl: net.ipv4.ip_forward\n      value: 1\n', 'sysctl:net.ipv4.ip_forward');
    assert.match(state, /^1\n/);
    assert.ok(state.endsWith('# Kernel parameters set by Cairn (sysctl parts), applied at boot. Lines Cairn does not manage are kept.\nnet.ipv4.ip_forward = 1\n'), state);
    // A value of two numbers, written with more spaces than sysctl prints (tabs).
    state = await converges(linuxSysctl, parsed(sysctlType, { name: 'net.ipv4.ping_group_range', value: '0  2000' }), SYSCTL,
      '    - sysctl: net.ipv4.ping_group_range\n      value: "0  2000"\n', 'sysctl:net.ipv4.ping_group_range');
    assert.match(state, /^1\n0\s+2000\n/);
    assert.ok(state.endsWith('net.ipv4.ip_forward = 1\nnet.ipv4.ping_group_range = 0  2000\n'), state);
    state = await converges(linuxSysctl, parsed(sysctlType, { name: 'net.ipv4.ip_forward', value: 1, persist: false }), SYSCTL,
      '    - sysctl: net.ipv4.ip_forward\n      value: 1\n      persist: false\n', 'sysctl:net.ipv4.ip_forward');
    assert.ok(state.endsWith('applied at boot. Lines Cairn does not manage are kept.\nnet.ipv4.ping_group_range = 0  2000\n'), state);
  });

  test('the BusyBox family\'s fragments under BusyBox ash with only its applets (no getent, no usermod): user fields rewritten, a uid change refused, hostname, sysctl', { skip: noBusybox }, async () => {
    // Debian's BusyBox has no adduser or crontab applets: the user exists already, in its groups.
    await out('useradd -m -s /bin/sh bob && groupadd crew && usermod -aG crew bob');
    const bb = (fragment: string) => host.sh('mkdir -p /tmp/bb && for a in $(/opt/busybox --list); do ln -sf /opt/busybox "/tmp/bb/$a"; done && ' +
      `PATH=/tmp/bb /opt/busybox sh -c ${shellQuote(`set -e\n${preludeFor([fragment])}\n${fragment}`)}`);
    assert.equal((await bb('command -v getent || command -v usermod || echo none')).stdout, 'none\n');

    const user = (a: Record<string, unknown>) => parsed(userType, { name: 'bob', ...a });
    const PASSWD = "stat -c %Y.%i /etc/passwd; grep '^bob:' /etc/passwd";
    let state = await converges(busyboxUser, user({ shell: '/bin/dash', home: '/srv/bob', comment: 'Bob, B', groups: ['crew'] }), PASSWD,
      "    - user: bob\n      shell: /bin/dash\n      home: /srv/bob\n      comment: 'Bob, B'\n      groups: [crew]\n", 'user:bob', bb);
    assert.match(state, /^bob:x:\d+:\d+:Bob, B:\/srv\/bob:\/bin\/dash$/m);
    assert.equal(await out('stat -c %a /etc/passwd'), '644\n');

    const refused = await bb(busyboxUser.shell!.apply(user({ uid: 4242 }), 'update'));
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /BusyBox cannot change the uid of an existing user \(it has no usermod\)/);
    assert.equal(await out(PASSWD), state);

    state = await converges(etcHostnameHostname, parsed(hostnameType, { name: 'busybox-1' }), 'uname -n; cat /etc/hostname; stat -c %Y.%i /etc/hostname',
      '    - hostname: busybox-1\n', 'hostname:busybox-1', bb);
    assert.match(state, /^busybox-1\nbusybox-1\n/);

    await out('sysctl -w net.ipv4.tcp_syncookies=0 >/dev/null');
    state = await converges(linuxSysctl, parsed(sysctlType, { name: 'net.ipv4.tcp_syncookies', value: 1 }), 'sysctl -n net.ipv4.tcp_syncookies; cat /etc/sysctl.d/99-cairn.conf',
      '    - sysctl: net.ipv4.tcp_syncookies\n      value: 1\n', 'sysctl:net.ipv4.tcp_syncookies', bb);
    assert.match(state, /^1\n[^]*\nnet\.ipv4\.tcp_syncookies = 1\n$/);
  });
}
