/**
 * The `shell` traits of the system types' providers (DESIGN §11): the POSIX sh fragments `cairn
 * export` puts in a script, for the Debian family (apt, systemd, shadow-utils) and the Alpine
 * family (apk, OpenRC, BusyBox). Their text for representative parts (no Alpine host runs here:
 * those are command contracts, named so); every fragment and the prelude's functions parse under
 * dash and BusyBox ash; and the prelude's text-editing functions (authorized_keys, crontab,
 * sysctl.conf lines, atomic edits) do the same thing under dash with this machine's tools and under
 * BusyBox ash with BusyBox's own (awk, cmp, stat, …), on real files. Their
 * behaviour on a real Debian host is test/lab-shell-traits.test.ts's.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { builtinOsTables } from '../src/catalog/builtin-os.ts';
import { sshAuthorizedKey } from '../src/resources/authorized_key/provider.ts';
import { authorizedKeyType } from '../src/resources/authorized_key/type.ts';
import { crontabCron } from '../src/resources/cron/provider.ts';
import { cronType } from '../src/resources/cron/type.ts';
import { busyboxGroup, shadowGroup } from '../src/resources/group/provider.ts';
import { groupType } from '../src/resources/group/type.ts';
import { etcHostnameHostname, hostnamectlHostname } from '../src/resources/hostname/provider.ts';
import { hostnameType } from '../src/resources/hostname/type.ts';
import { apkProvider } from '../src/resources/package/apk.ts';
import { aptProvider } from '../src/resources/package/apt.ts';
import { packageType } from '../src/resources/package/type.ts';
import { openrcService } from '../src/resources/service/openrc.ts';
import { systemdService } from '../src/resources/service/systemd.ts';
import { serviceType } from '../src/resources/service/type.ts';
import { preludeFor, SHELL_FUNCTIONS, SHELL_PRELUDE } from '../src/resources/shell-prelude.ts';
import { linuxSysctl } from '../src/resources/sysctl/provider.ts';
import { sysctlType } from '../src/resources/sysctl/type.ts';
import { busyboxUser } from '../src/resources/user/busybox.ts';
import { shadowUser } from '../src/resources/user/shadow.ts';
import { userType } from '../src/resources/user/type.ts';
import type { Action, Provider, ResolveContext } from '../src/resources/type.ts';
import { tempDir } from './helpers/cli.ts';
import { osContext } from './helpers/shell-context.ts';

/** The built-in OS tables of a family (the section providers read through `it.os`). */
function osOf(family: 'debian' | 'alpine'): Record<string, unknown> {
  const table = builtinOsTables().find((t) => t.file.endsWith(`/${family}.yaml`))!;
  return (table.doc as Record<string, Record<string, unknown>>)[family]!;
}
const DEBIAN = osOf('debian');
const ALPINE = osOf('alpine');

/** A part's attributes as a provider gets them: parsed (defaults) and resolved (a package's hold). */
function desired(type: { schema: { parse(v: unknown): unknown }; resolve?: (a: Record<string, unknown>, ctx: ResolveContext) => Record<string, unknown> }, attrs: Record<string, unknown>) {
  const parsed = type.schema.parse(attrs) as Record<string, unknown>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the fragments take any type's attributes; the schema made them right
  return (type.resolve ? type.resolve(parsed, {} as ResolveContext) : parsed) as any;
}

/** Every fragment the cases made, for the syntax checks. */
const made: { label: string; text: string }[] = [];

interface Fragments { check: string; apply: string; refresh?: string }

function fragments(label: string, provider: Provider, attrs: Record<string, unknown>, os: Record<string, unknown>, action: Action = 'create'): Fragments {
  const shell = provider.shell;
  assert.ok(shell, `${provider.type}/${provider.name} has a shell trait`);
  const out: Fragments = { check: shell.check(attrs, osContext(os)), apply: shell.apply(attrs, action, osContext(os)) };
  if (shell.refresh) out.refresh = shell.refresh(attrs, osContext(os));
  for (const [k, v] of Object.entries(out)) made.push({ label: `${label} (${k})`, text: v as string });
  return out;
}

describe('package', () => {
  const pkg = (a: Record<string, unknown>) => desired(packageType, a);

  test('apt: present, an OS-agnostic name, a version pin (held), absent', () => {
    assert.deepEqual(fragments('apt present', aptProvider, pkg({ name: 'tree' }), DEBIAN), {
      check: 'cairn_dpkg_version tree >/dev/null && ! cairn_apt_held tree',
      apply:
        'if ! cairn_dpkg_version tree >/dev/null; then\n' +
        '  if cairn_apt_held tree; then apt-mark unhold tree && { cairn_apt_install tree || { apt-mark hold tree; false; }; }; else cairn_apt_install tree; fi\n' +
        'fi &&\n' +
        '{ ! cairn_apt_held tree || apt-mark unhold tree; }',
    });
    // The tables' name for the OS (ssh-server is openssh-server on Debian); latest asks apt-cache policy.
    const latest = fragments('apt latest', aptProvider, pkg({ name: 'ssh-server', ensure: 'latest' }), DEBIAN);
    assert.equal(latest.check, 'cairn_apt_latest openssh-server && ! cairn_apt_held openssh-server');
    assert.match(latest.apply, /else cairn_apt_install openssh-server; fi/);
    assert.deepEqual(fragments('apt pin', aptProvider, pkg({ name: 'cairn-dummy', version: '1.0-1' }), DEBIAN), {
      check: '[ "$(cairn_dpkg_version cairn-dummy)" = 1.0-1 ] && cairn_apt_held cairn-dummy',
      apply:
        'if ! [ "$(cairn_dpkg_version cairn-dummy)" = 1.0-1 ]; then\n' +
        '  if cairn_apt_held cairn-dummy; then apt-mark unhold cairn-dummy && { cairn_apt_install --allow-downgrades cairn-dummy=1.0-1 || { apt-mark hold cairn-dummy; false; }; }; ' +
        'else cairn_apt_install --allow-downgrades cairn-dummy=1.0-1; fi\n' +
        'fi &&\n' +
        '{ cairn_apt_held cairn-dummy || apt-mark hold cairn-dummy; }',
    });
    assert.deepEqual(fragments('apt absent', aptProvider, pkg({ name: 'tree', ensure: 'absent' }), DEBIAN, 'destroy'), {
      check: '! cairn_dpkg_version tree >/dev/null',
      apply: 'if cairn_dpkg_version tree >/dev/null; then { ! cairn_apt_held tree || apt-mark unhold tree; } && cairn_apt_get remove tree; fi',
    });
  });

  test('command contract: alpine apk: present, latest, a version pin (the world file holds it), absent, a base-system name', () => {
    assert.deepEqual(fragments('apk present', apkProvider, pkg({ name: 'tree' }), ALPINE), {
      check: 'cairn_apk_version tree >/dev/null && ! cairn_apk_held tree',
      apply:
        'if ! cairn_apk_version tree >/dev/null; then\n' +
        '  if cairn_apk_held tree; then apk add --no-progress tree && { cairn_apk_add tree || { cairn_apk_hold tree; false; }; }; else cairn_apk_add tree; fi\n' +
        'fi &&\n' +
        '{ ! cairn_apk_held tree || apk add --no-progress tree; }',
    });
    const latest = fragments('apk latest', apkProvider, pkg({ name: 'ssh-server', ensure: 'latest' }), ALPINE);
    assert.equal(latest.check, 'cairn_apk_latest openssh-server && ! cairn_apk_held openssh-server');
    assert.match(latest.apply, /else cairn_apk_add --upgrade openssh-server; fi/);
    assert.deepEqual(fragments('apk pin', apkProvider, pkg({ name: 'busybox', version: '1.36.1' }), ALPINE), {
      check: 'case $(cairn_apk_version busybox) in 1.36.1 | 1.36.1-r[0-9]*) true ;; *) false ;; esac && cairn_apk_held busybox',
      apply:
        'if ! case $(cairn_apk_version busybox) in 1.36.1 | 1.36.1-r[0-9]*) true ;; *) false ;; esac; then\n' +
        '  if cairn_apk_held busybox; then apk add --no-progress busybox && { cairn_apk_add busybox=1.36.1 || { cairn_apk_hold busybox; false; }; }; else cairn_apk_add busybox=1.36.1; fi\n' +
        'fi &&\n' +
        '{ cairn_apk_held busybox || cairn_apk_hold busybox; }',
    });
    assert.deepEqual(fragments('apk absent', apkProvider, pkg({ name: 'tree', ensure: 'absent' }), ALPINE, 'destroy'), {
      check: '! cairn_apk_version tree >/dev/null',
      apply: 'if cairn_apk_version tree >/dev/null; then { ! cairn_apk_held tree || apk add --no-progress tree; } && apk del --no-progress tree; fi',
    });
    // cron is BusyBox's crond on Alpine (the tables map the package to false): present is in sync, absent fails saying why.
    assert.deepEqual(fragments('apk base present', apkProvider, pkg({ name: 'cron' }), ALPINE), { check: 'true', apply: "cairn_refuse 'cron is part of the base system'" });
    assert.deepEqual(fragments('apk base absent', apkProvider, pkg({ name: 'cron', ensure: 'absent' }), ALPINE, 'destroy'), {
      check: 'false',
      apply: "cairn_refuse 'cron is part of the base system on this OS (the OS tables map it to false): it cannot be removed'",
    });
  });
});

describe('service', () => {
  const svc = (a: Record<string, unknown>) => desired(serviceType, a);

  test('systemd: running and enabled, stopped and disabled, refresh restarts (or reloads) a running service', () => {
    assert.deepEqual(fragments('systemd running', systemdService, svc({ name: 'ssh-server', ensure: 'running', enable: true }), DEBIAN), {
      check: 'cairn_systemd_known ssh && cairn_systemd_running ssh && cairn_systemd_enabled ssh yes',
      apply: 'cairn_systemd_unit ssh &&\n{ cairn_systemd_running ssh || cairn_systemd_do start ssh; } &&\n{ cairn_systemd_enabled ssh yes || systemctl enable -- ssh; }',
      refresh: 'cairn_systemd_unit ssh &&\nif cairn_systemd_running ssh; then cairn_systemd_do restart ssh; else cairn_systemd_do start ssh; fi',
    });
    assert.deepEqual(fragments('systemd stopped', systemdService, svc({ name: 'cairn-svc', ensure: 'stopped', enable: false }), DEBIAN), {
      check: 'cairn_systemd_known cairn-svc && ! cairn_systemd_running cairn-svc && cairn_systemd_enabled cairn-svc no',
      apply: 'cairn_systemd_unit cairn-svc &&\n{ ! cairn_systemd_running cairn-svc || systemctl stop -- cairn-svc; } &&\n{ cairn_systemd_enabled cairn-svc no || systemctl disable -- cairn-svc; }',
      // Notified, but meant to be stopped: nothing.
      refresh: 'true',
    });
    // No ensure: a notification restarts it only when it runs; reload: true reloads instead.
    assert.equal(fragments('systemd reload', systemdService, svc({ name: 'nginx', reload: true }), DEBIAN).refresh,
      'cairn_systemd_unit nginx &&\nif cairn_systemd_running nginx; then cairn_systemd_do reload nginx; fi');
  });

  test('command contract: alpine OpenRC: running and enabled (default runlevel), stopped and disabled (out of every runlevel), refresh', () => {
    assert.deepEqual(fragments('openrc running', openrcService, svc({ name: 'ssh-server', ensure: 'running', enable: true }), ALPINE), {
      check: 'rc-service --exists sshd && cairn_openrc_running sshd && [ -n "$(cairn_openrc_levels sshd)" ]',
      apply: 'cairn_openrc_service sshd &&\n{ cairn_openrc_running sshd || cairn_openrc_do start sshd; } &&\n{ [ -n "$(cairn_openrc_levels sshd)" ] || rc-update add sshd default; }',
      refresh: 'cairn_openrc_service sshd &&\nif cairn_openrc_running sshd; then cairn_openrc_do restart sshd; else cairn_openrc_do start sshd; fi',
    });
    assert.deepEqual(fragments('openrc stopped', openrcService, svc({ name: 'cron', ensure: 'stopped', enable: false }), ALPINE), {
      check: 'rc-service --exists crond && ! cairn_openrc_running crond && [ -z "$(cairn_openrc_levels crond)" ]',
      apply: 'cairn_openrc_service crond &&\n{ ! cairn_openrc_running crond || rc-service crond stop; } &&\n{ [ -z "$(cairn_openrc_levels crond)" ] || rc-update del crond $(cairn_openrc_levels crond); }',
      refresh: 'true',
    });
  });
});

describe('user and group', () => {
  const user = (a: Record<string, unknown>) => desired(userType, a);
  const group = (a: Record<string, unknown>) => desired(groupType, a);

  test('shadow (Debian): useradd with every attribute given, usermod to bring an existing one there, userdel', () => {
    const full = { name: 'deploy', uid: 2345, gid: 'deploy', groups: ['adm', 'users'], home: '/srv/deploy', shell: '/bin/sh', comment: 'Deploy, bot' };
    assert.deepEqual(fragments('shadow user', shadowUser, user(full), DEBIAN), {
      check: "cairn_getent passwd deploy >/dev/null && cairn_user_is deploy 3 2345 && cairn_user_gid_is deploy deploy && cairn_user_groups_are deploy adm users && " +
        "cairn_user_is deploy 6 /srv/deploy && cairn_user_is deploy 7 /bin/sh && cairn_user_is deploy 5 'Deploy, bot'",
      apply: "if cairn_getent passwd deploy >/dev/null; then { cairn_user_is deploy 3 2345 && cairn_user_gid_is deploy deploy && cairn_user_groups_are deploy adm users && " +
        "cairn_user_is deploy 6 /srv/deploy && cairn_user_is deploy 7 /bin/sh && cairn_user_is deploy 5 'Deploy, bot'; } || usermod -u 2345 -g deploy -G adm,users -d /srv/deploy -s /bin/sh -c 'Deploy, bot' deploy; " +
        "else useradd -u 2345 -g deploy -G adm,users -d /srv/deploy -s /bin/sh -c 'Deploy, bot' -m deploy; fi",
    });
    // No gid: the group named like the user, when there is one (useradd would refuse to make it).
    assert.deepEqual(fragments('shadow user bare', shadowUser, user({ name: 'svc', system: true }), DEBIAN), {
      check: 'cairn_getent passwd svc >/dev/null',
      apply: 'if cairn_getent passwd svc >/dev/null; then true; else if cairn_getent group svc >/dev/null; then useradd -g svc -r -M svc; else useradd -r -M svc; fi; fi',
    });
    assert.deepEqual(fragments('shadow user absent', shadowUser, user({ name: 'old', ensure: 'absent', remove_home: true }), DEBIAN, 'destroy'), {
      check: '! cairn_getent passwd old >/dev/null',
      apply: 'if cairn_getent passwd old >/dev/null; then userdel -r old; fi',
    });
    assert.deepEqual(fragments('shadow group', shadowGroup, group({ name: 'web', gid: 3456 }), DEBIAN), {
      check: 'cairn_group_gid_is web 3456',
      apply: 'if cairn_getent group web >/dev/null; then cairn_group_gid_is web 3456 || groupmod -g 3456 web; else groupadd -g 3456 web; fi',
    });
    assert.deepEqual(fragments('shadow group absent', shadowGroup, group({ name: 'web', ensure: 'absent' }), DEBIAN, 'destroy'), {
      check: '! cairn_getent group web >/dev/null',
      apply: 'if cairn_getent group web >/dev/null; then groupdel web; fi',
    });
  });

  test('command contract: alpine BusyBox: adduser -D and addgroup, /etc/passwd fields rewritten, a uid or gid change refused, deluser', () => {
    const full = { name: 'deploy', uid: 2345, gid: 3456, groups: ['wheel'], home: '/srv/deploy', shell: '/bin/ash', comment: 'Deploy' };
    const refusal = (what: string) => `cairn_refuse 'BusyBox cannot change the ${what} of an existing user (it has no usermod): install the shadow package and give this part provider: shadow'`;
    assert.deepEqual(fragments('busybox user', busyboxUser, user(full), ALPINE), {
      check: 'cairn_getent passwd deploy >/dev/null && cairn_user_is deploy 3 2345 && cairn_user_is deploy 4 3456 && cairn_user_groups_are deploy wheel && ' +
        'cairn_user_is deploy 6 /srv/deploy && cairn_user_is deploy 7 /bin/ash && cairn_user_is deploy 5 Deploy',
      apply: 'if cairn_getent passwd deploy >/dev/null; then\n' +
        `  { cairn_user_is deploy 3 2345 || ${refusal('uid')}; } &&\n` +
        `  { cairn_user_is deploy 4 3456 || ${refusal('gid')}; } &&\n` +
        '  { cairn_user_is deploy 6 /srv/deploy || cairn_passwd_set deploy 6 /srv/deploy; } &&\n' +
        '  { cairn_user_is deploy 7 /bin/ash || cairn_passwd_set deploy 7 /bin/ash; } &&\n' +
        '  { cairn_user_is deploy 5 Deploy || cairn_passwd_set deploy 5 Deploy; } &&\n' +
        '  cairn_busybox_groups deploy wheel\n' +
        'else\n' +
        '  adduser -G "$(cairn_group_names 3456)" -D -u 2345 -h /srv/deploy -s /bin/ash -g Deploy deploy &&\n' +
        '  cairn_busybox_groups deploy wheel\n' +
        'fi',
    });
    assert.equal(fragments('busybox user bare', busyboxUser, user({ name: 'svc', system: true }), ALPINE).apply,
      'if cairn_getent passwd svc >/dev/null; then\n  true\nelse\n  if cairn_getent group svc >/dev/null; then adduser -G svc -D -S -H svc; else adduser -D -S -H svc; fi\nfi');
    assert.equal(fragments('busybox user absent', busyboxUser, user({ name: 'old', ensure: 'absent', remove_home: true }), ALPINE, 'destroy').apply,
      'if cairn_getent passwd old >/dev/null; then deluser --remove-home old; fi');
    assert.deepEqual(fragments('busybox group', busyboxGroup, group({ name: 'web', gid: 3456, system: true }), ALPINE), {
      check: 'cairn_group_gid_is web 3456',
      apply: 'if cairn_getent group web >/dev/null; then cairn_group_gid_is web 3456 || ' +
        "cairn_refuse 'BusyBox cannot change the gid of an existing group (it has no groupmod): install the shadow package and give this part provider: shadow'; " +
        'else addgroup -g 3456 -S web; fi',
    });
    assert.equal(fragments('busybox group absent', busyboxGroup, group({ name: 'web', ensure: 'absent' }), ALPINE, 'destroy').apply,
      'if cairn_getent group web >/dev/null; then delgroup web; fi');
  });
});

describe('authorized_key, cron, hostname, sysctl', () => {
  const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPq7 alice@laptop';

  test('authorized_key: the key by type and body, options compared when given (the same on both families)', () => {
    for (const os of [DEBIAN, ALPINE]) {
      assert.deepEqual(fragments('key', sshAuthorizedKey, desired(authorizedKeyType, { key: KEY, user: 'alice', options: 'from="10.0.0.0/8",no-pty' }), os), {
        check: `cairn_key_is alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPq7 'from="10.0.0.0/8",no-pty'`,
        apply: `cairn_authorized_key alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPq7 'from="10.0.0.0/8",no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPq7 alice@laptop'`,
      });
      assert.deepEqual(fragments('key absent', sshAuthorizedKey, desired(authorizedKeyType, { key: KEY, user: 'alice', ensure: 'absent' }), os, 'destroy'), {
        check: '! cairn_key_is alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPq7',
        apply: 'cairn_authorized_key alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPq7',
      });
    }
  });

  test('cron: the job line below its marker, absent without one (crontab -u on Debian and BusyBox alike)', () => {
    for (const os of [DEBIAN, ALPINE]) {
      assert.deepEqual(fragments('cron', crontabCron, desired(cronType, { name: 'backup', command: 'tar czf /tmp/b.tgz /etc', minute: 15, hour: 3 }), os), {
        check: "cairn_cron_is root backup '15 3 * * * tar czf /tmp/b.tgz /etc'",
        apply: "cairn_cron_set root backup '15 3 * * * tar czf /tmp/b.tgz /etc'",
      });
      assert.deepEqual(fragments('cron special', crontabCron, desired(cronType, { name: 'boot', command: 'echo up', special: 'reboot', user: 'alice' }), os), {
        check: "cairn_cron_is alice boot '@reboot echo up'",
        apply: "cairn_cron_set alice boot '@reboot echo up'",
      });
      assert.deepEqual(fragments('cron absent', crontabCron, desired(cronType, { name: 'backup', ensure: 'absent' }), os, 'destroy'), {
        check: "cairn_cron_is root backup ''",
        apply: 'cairn_cron_set root backup',
      });
    }
  });

  test('hostname: hostnamectl on systemd (the file and the running name without it); command contract: alpine /etc/hostname and hostname', () => {
    assert.deepEqual(fragments('hostnamectl', hostnamectlHostname, desired(hostnameType, { name: 'web-1.example.org' }), DEBIAN), {
      check: 'cairn_hostname_is web-1.example.org',
      apply: '{ command -v hostnamectl >/dev/null 2>&1 && hostnamectl set-hostname web-1.example.org; } || cairn_set_hostname web-1.example.org',
    });
    assert.deepEqual(fragments('etc-hostname', etcHostnameHostname, desired(hostnameType, { name: 'web-1' }), ALPINE), {
      check: 'cairn_hostname_is web-1',
      apply: 'cairn_set_hostname web-1',
    });
  });

  test('sysctl: the live value and its line in the tables\' sysctl.d file (both families); persist: false drops the line', () => {
    const header = "'# Kernel parameters set by Cairn (sysctl parts), applied at boot. Lines Cairn does not manage are kept.\n'";
    for (const os of [DEBIAN, ALPINE]) {
      assert.deepEqual(fragments('sysctl', linuxSysctl, desired(sysctlType, { name: 'net.ipv4.ping_group_range', value: '0  2147483647' }), os), {
        check: "cairn_sysctl_is net.ipv4.ping_group_range '0 2147483647' && cairn_sysctl_kept /etc/sysctl.d/99-cairn.conf net.ipv4.ping_group_range '0 2147483647'",
        apply: "{ cairn_sysctl_is net.ipv4.ping_group_range '0 2147483647' || sysctl -w 'net.ipv4.ping_group_range=0  2147483647' >/dev/null; } &&\n" +
          `mkdir -p /etc/sysctl.d && cairn_edit /etc/sysctl.d/99-cairn.conf 644 '' cairn_sysctl_conf edit net.ipv4.ping_group_range 'net.ipv4.ping_group_range = 0  2147483647' ${header}`,
      });
    }
    // Slashes name the same key; the tables may move the folder.
    assert.deepEqual(fragments('sysctl transient', linuxSysctl, desired(sysctlType, { name: 'net/ipv4/ip_forward', value: 1, persist: false }), { paths: { sysctl_dir: '/run/sysctl.d' } }), {
      check: "cairn_sysctl_is net.ipv4.ip_forward 1 && cairn_sysctl_kept /run/sysctl.d/99-cairn.conf net.ipv4.ip_forward ''",
      apply: '{ cairn_sysctl_is net.ipv4.ip_forward 1 || sysctl -w net/ipv4/ip_forward=1 >/dev/null; } &&\n' +
        "{ [ ! -f /run/sysctl.d/99-cairn.conf ] || cairn_edit /run/sysctl.d/99-cairn.conf 644 '' cairn_sysctl_conf edit net.ipv4.ip_forward; }",
    });
  });
});

// ---- the shells themselves ------------------------------------------------------------------------

const busybox = spawnSync('/bin/busybox', ['sh', '-c', 'true']).status === 0;
const noBusybox = busybox ? undefined : 'busybox is not installed (scripts/install.sh installs it): BusyBox ash checks skipped';
if (noBusybox) process.stderr.write(`\n*** ${noBusybox} ***\n\n`);

/**
 * A PATH of nothing but BusyBox's applets (awk, cmp, stat, sort, grep, …), as on Alpine: under
 * `busybox sh` the functions then run on BusyBox's tools, not on this machine's GNU ones.
 */
function busyboxPath(): string {
  const dir = tempDir('cairn-busybox-path-');
  const applets = spawnSync('busybox', ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter((a) => /^[a-z0-9_.-]+$/.test(a));
  for (const applet of applets) symlinkSync(realpathSync('/bin/busybox'), join(dir, applet));
  return dir;
}

const SHELLS: { name: string; argv: string[]; path?: () => string; skip?: string }[] = [
  { name: 'dash', argv: ['dash'] },
  { name: 'busybox ash, BusyBox tools', argv: ['/bin/busybox', 'sh'], path: busyboxPath, ...(noBusybox ? { skip: noBusybox } : {}) },
];

for (const shell of SHELLS) {
  describe(`under ${shell.name}`, { ...(shell.skip ? { skip: shell.skip } : {}) }, () => {
    test('sh -n: the prelude and every fragment above parse', () => {
      assert.ok(made.length > 40, `fragments made: ${made.length}`);
      const prelude = spawnSync(shell.argv[0]!, [...shell.argv.slice(1), '-n'], { input: SHELL_PRELUDE, encoding: 'utf8' });
      assert.equal(prelude.status, 0, prelude.stderr);
      for (const { label, text } of made) {
        const r = spawnSync(shell.argv[0]!, [...shell.argv.slice(1), '-n'], { input: `${text}\n`, encoding: 'utf8' });
        assert.equal(r.status, 0, `${label}:\n${text}\n${r.stderr}`);
        // Every function a fragment calls is defined by its prelude.
        for (const name of text.match(/\bcairn_[a-z_]+/g) ?? []) assert.ok(name in SHELL_FUNCTIONS, `${label}: ${name} is no prelude function`);
      }
    });

    /** Runs `script` after the functions it needs, in `dir`; stdin `input`. */
    let path: string | undefined;
    const run = (dir: string, script: string, input = '') => {
      if (shell.path) path ??= shell.path();
      const env = path ? { ...process.env, PATH: path } : process.env;
      const r = spawnSync(shell.argv[0]!, [...shell.argv.slice(1), '-c', `${preludeFor([script])}\n${script}`], { cwd: dir, input, encoding: 'utf8', env });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    };

    test('authorized_keys lines: found by type and body with their options (quoted spaces too), replaced in place, appended, removed', () => {
      const dir = tempDir('cairn-shell-keys-');
      // BusyBox's own awk, where the test says so.
      if (shell.path) assert.equal(run(dir, 'command -v awk').stdout, `${path}/awk\n`);
      const file = '# keys\nssh-rsa AAAAB3Nza other@host\ncommand="echo a b",no-pty ssh-ed25519 AAAAC3Nza alice@old\nssh-ed25519 AAAAC3Nza dup\n';
      assert.deepEqual(run(dir, 'cairn_key_lines find ssh-ed25519 AAAAC3Nza', file), { code: 0, stdout: 'command="echo a b",no-pty\n', stderr: '' });
      assert.deepEqual(run(dir, 'cairn_key_lines find ssh-rsa AAAAB3Nza', file), { code: 0, stdout: '\n', stderr: '' });
      assert.equal(run(dir, 'cairn_key_lines find ssh-ed25519 OTHER', file).code, 1);
      // Replaced at the first line holding it; a duplicate further down stays (as the TypeScript putKey does).
      assert.equal(run(dir, "cairn_key_lines edit ssh-ed25519 AAAAC3Nza 'no-pty ssh-ed25519 AAAAC3Nza alice'", file).stdout,
        '# keys\nssh-rsa AAAAB3Nza other@host\nno-pty ssh-ed25519 AAAAC3Nza alice\nssh-ed25519 AAAAC3Nza dup\n');
      assert.equal(run(dir, "cairn_key_lines edit ssh-ed25519 NEW 'ssh-ed25519 NEW bob'", file).stdout, `${file}ssh-ed25519 NEW bob\n`);
      assert.equal(run(dir, 'cairn_key_lines edit ssh-ed25519 AAAAC3Nza', file).stdout, '# keys\nssh-rsa AAAAB3Nza other@host\n');
    });

    test('crontab lines: the job below a marker, set in place or appended, removed with its duplicates, other lines kept', () => {
      const dir = tempDir('cairn-shell-cron-');
      const tab = 'MAILTO=root\n# cairn: backup\n0 1 * * * old command\n5 * * * * mine\n# cairn: backup\n@daily dup\n# cairn: lone\n';
      assert.equal(run(dir, 'cairn_cron_lines find backup', tab).stdout, '0 1 * * * old command\n');
      assert.equal(run(dir, 'cairn_cron_lines find lone', tab).stdout, '');
      assert.equal(run(dir, 'cairn_cron_lines find nothing', tab).stdout, '');
      assert.equal(run(dir, "cairn_cron_lines edit backup '15 3 * * * new'", tab).stdout,
        'MAILTO=root\n# cairn: backup\n15 3 * * * new\n5 * * * * mine\n# cairn: lone\n');
      assert.equal(run(dir, "cairn_cron_lines edit other '@reboot up'", tab).stdout, `${tab}# cairn: other\n@reboot up\n`);
      assert.equal(run(dir, 'cairn_cron_lines edit backup', tab).stdout, 'MAILTO=root\n5 * * * * mine\n# cairn: lone\n');
      assert.equal(run(dir, "cairn_cron_lines edit first '1 2 3 4 5 x'", '').stdout, '# cairn: first\n1 2 3 4 5 x\n');
    });

    test('sysctl.conf lines and cairn_edit: the last value of a key (slashes, dashes, spacing), replaced, appended after a header, removed; atomic, mode kept', () => {
      const dir = tempDir('cairn-shell-sysctl-');
      const conf = '# mine\nnet.ipv4.ip_forward=0\n- net/ipv4/ip_forward = 1 \nvm.swappiness = 10\nkernel.printk = 4\t4  1 7\n';
      assert.deepEqual(run(dir, 'cairn_sysctl_conf find net.ipv4.ip_forward', conf), { code: 0, stdout: '1\n', stderr: '' });
      assert.equal(run(dir, 'cairn_sysctl_conf find kernel.printk', conf).stdout, '4 4 1 7\n');
      assert.equal(run(dir, 'cairn_sysctl_conf find vm.dirty_ratio', conf).code, 1);
      assert.equal(run(dir, "cairn_sysctl_conf edit net.ipv4.ip_forward 'net.ipv4.ip_forward = 1'", conf).stdout,
        '# mine\nnet.ipv4.ip_forward = 1\nvm.swappiness = 10\nkernel.printk = 4\t4  1 7\n');
      assert.equal(run(dir, 'cairn_sysctl_conf edit vm.swappiness', conf).stdout, '# mine\nnet.ipv4.ip_forward=0\n- net/ipv4/ip_forward = 1 \nkernel.printk = 4\t4  1 7\n');

      const path = join(dir, 'sub', '99-cairn.conf');
      const set = `mkdir -p sub && cairn_edit sub/99-cairn.conf 644 '' cairn_sysctl_conf edit vm.swappiness 'vm.swappiness = 5' '# header\n'`;
      assert.equal(run(dir, set).code, 0);
      assert.equal(readFileSync(path, 'utf8'), '# header\nvm.swappiness = 5\n');
      assert.equal(statSync(path).mode & 0o777, 0o644);
      assert.equal(run(dir, "cairn_sysctl_kept sub/99-cairn.conf vm.swappiness 5 && ! cairn_sysctl_kept sub/99-cairn.conf vm.swappiness ''").code, 0);
      // An existing file keeps its mode; an edit that changes nothing leaves the file (same inode).
      writeFileSync(path, 'a = 1\n');
      chmodSync(path, 0o600);
      const ino = statSync(path).ino;
      assert.equal(run(dir, "cairn_edit sub/99-cairn.conf 644 '' cairn_sysctl_conf edit a 'a = 1'").code, 0);
      assert.equal(statSync(path).ino, ino);
      assert.equal(run(dir, "cairn_edit sub/99-cairn.conf 644 '' cairn_sysctl_conf edit b 'b = 2'").code, 0);
      assert.equal(readFileSync(path, 'utf8'), 'a = 1\nb = 2\n');
      assert.equal(statSync(path).mode & 0o777, 0o600);
      // A failing command leaves the file as it was, and no temp file.
      assert.notEqual(run(dir, "cairn_edit sub/99-cairn.conf 644 '' false").code, 0);
      assert.equal(readFileSync(path, 'utf8'), 'a = 1\nb = 2\n');
      assert.deepEqual(readdirSync(join(dir, 'sub')), ['99-cairn.conf']);
    });
  });
}
