/**
 * The `user`, `group` and `authorized_key` providers.
 *
 * Tests named `contract: …` are CONTRACT TESTS: FreeBSD's pw(8) and Alpine's BusyBox
 * adduser/addgroup/deluser/delgroup cannot run on this machine, so these tests check the exact
 * commands the providers issue and their parsing of real captured passwd/group files
 * (test/fixtures/captured/accounts/, see its README), through the real engine with a scripted
 * executor. The Linux shadow-utils provider is also run for real on a lab host
 * (test/lab-accounts.test.ts). The other tests are unit tests of the parsing and line editing.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RunOptions, RunResult } from '../src/executors/types.ts';
import { dropKey, findKey, parseKeyLine, putKey } from '../src/resources/authorized_key/keys.ts';
import { ACCOUNTS_SCRIPT, parseAccounts, parseGroup, parsePasswd } from '../src/resources/accounts.ts';
import { editPasswdLine } from '../src/resources/user/busybox.ts';
import { captured, FACTS, runScripted, ScriptedExecutor, type Reply } from './helpers/scripted-executor.ts';

const KEY_A = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop';
const KEY_B = 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob@desk';

/**
 * A scripted machine whose user database is text the test can change: the batched reading
 * (`sh -c <ACCOUNTS_SCRIPT>`) answers with the current passwd and group, and replies' effects
 * edit them, as the real tools would.
 */
class AccountsMachine extends ScriptedExecutor {
  reads = 0;
  fileReads: string[] = [];

  constructor(public passwd: string, public group: string, replies: Reply[] = []) {
    super(replies);
  }

  override async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    if (argv[0] === 'sh' && argv[1] === '-c' && argv[2] === ACCOUNTS_SCRIPT) {
      this.commands.push({ argv });
      this.reads++;
      return { code: 0, stdout: `${this.passwd.trimEnd()}\n--cairn-groups--\n${this.group.trimEnd()}\n`, stderr: '' };
    }
    return super.run(argv, opts);
  }

  override async readFile(path: string): Promise<Buffer | undefined> {
    this.fileReads.push(path);
    return super.readFile(path);
  }

  override async userId(name: string): Promise<number | undefined> {
    if (/^\d+$/.test(name)) return Number(name);
    return parsePasswd(this.passwd).get(name)?.uid;
  }

  override async groupId(name: string): Promise<number | undefined> {
    if (/^\d+$/.test(name)) return Number(name);
    return parseGroup(this.group).get(name)?.gid;
  }

  /** The commands other than the batched reading. */
  get tools(): string[] {
    return this.lines.filter((l) => !l.startsWith('sh -c '));
  }
}

/** A one-target site whose target runs state `s` with these parts (YAML list items, 4 spaces in). */
function accountsSite(parts: string): Record<string, string> {
  return { 'cairn.yaml': `targets:\n  t1:\n    run: [s]\nstates:\n  s:\n${parts}` };
}

function statuses(results: { status: string; ref: string; error?: string }[]): string[] {
  return results.map((r) => `${r.status} ${r.ref}${r.error ? ` — ${r.error}` : ''}`);
}

const freebsd = () => new AccountsMachine(captured('accounts/freebsd-passwd.txt'), captured('accounts/freebsd-group.txt'));
const alpine = () => new AccountsMachine(captured('accounts/alpine-passwd.txt'), captured('accounts/alpine-group.txt'));

describe('parsing the user and group databases', () => {
  test('FreeBSD /etc/passwd and /etc/group: comment lines skipped, GECOS kept whole, empty shell', () => {
    const users = parsePasswd(captured('accounts/freebsd-passwd.txt'));
    assert.equal(users.size, 30);
    assert.deepEqual(users.get('root'), { name: 'root', uid: 0, gid: 0, comment: 'Charlie &', home: '/root', shell: '/bin/csh' });
    assert.equal(users.get('toor')?.shell, '');
    assert.deepEqual(users.get('charix'), { name: 'charix', uid: 1001, gid: 1001, comment: 'charix', home: '/home/charix', shell: '/bin/csh' });
    const groups = parseGroup(captured('accounts/freebsd-group.txt'));
    assert.equal(groups.size, 30);
    assert.deepEqual(groups.get('operator'), { name: 'operator', gid: 5, members: ['root'] });
    assert.deepEqual(groups.get('daemon'), { name: 'daemon', gid: 1, members: [] });
  });

  test('Alpine (BusyBox) files: member lists, BusyBox adduser\'s default GECOS', () => {
    const groups = parseGroup(captured('accounts/alpine-group.txt'));
    assert.deepEqual(groups.get('bin')?.members, ['root', 'bin', 'daemon']);
    assert.deepEqual(groups.get('appgroup'), { name: 'appgroup', gid: 10000, members: ['appuser'] });
    const users = parsePasswd(captured('accounts/alpine-3.14-passwd-after-adduser.txt'));
    assert.deepEqual(users.get('alpine'), { name: 'alpine', uid: 1000, gid: 1000, comment: 'Linux User,,,', home: '/home/alpine', shell: '/bin/ash' });
    assert.equal(users.get('ftp')?.comment, '');
  });

  test('the batched output splits into both databases; the first entry of a name wins; NIS lines are skipped', () => {
    const a = parseAccounts('root:x:0:0:root:/root:/bin/sh\nroot:x:9:9:dup:/x:/bin/false\n+::::::\n--cairn-groups--\nwheel:x:10:root,alice\nadmins:x:10:\n');
    assert.equal(a.users.size, 1);
    assert.equal(a.users.get('root')?.uid, 0);
    assert.deepEqual([...a.groups.keys()], ['wheel', 'admins']);
    assert.equal(a.groupByGid.get(10)?.name, 'wheel');
  });
});

describe('authorized_keys lines', () => {
  test('a key with and without options; quoted options with spaces; comments and junk are not keys', () => {
    assert.deepEqual(parseKeyLine(KEY_A), { type: 'ssh-ed25519', body: 'AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl', comment: 'alice@laptop' });
    assert.deepEqual(parseKeyLine('command="echo \\"a b\\"",no-pty,from="10.0.0.0/8" ssh-rsa AAAAB3Nz== x y'), {
      options: 'command="echo \\"a b\\"",no-pty,from="10.0.0.0/8"', type: 'ssh-rsa', body: 'AAAAB3Nz==', comment: 'x y',
    });
    assert.deepEqual(parseKeyLine('  ecdsa-sha2-nistp256 AAAAE2Vj  '), { type: 'ecdsa-sha2-nistp256', body: 'AAAAE2Vj' });
    assert.deepEqual(parseKeyLine('sk-ssh-ed25519@openssh.com AAAAGnNr me'), { type: 'sk-ssh-ed25519@openssh.com', body: 'AAAAGnNr', comment: 'me' });
    assert.equal(parseKeyLine('# ssh-rsa AAAA old key'), undefined);
    assert.equal(parseKeyLine(''), undefined);
    assert.equal(parseKeyLine('not a key at all'), undefined);
  });

  test('putKey replaces the key\'s line in place (whatever its comment) and keeps every other line', () => {
    const [type, body] = KEY_A.split(' ') as [string, string];
    const file = `# managed elsewhere\n${KEY_B}\n\nfrom="1.2.3.4" ${type} ${body} old comment\n# trailing\n`;
    assert.equal(findKey(file, type, body)?.options, 'from="1.2.3.4"');
    const out = putKey(file, `no-pty ${KEY_A}`, type, body);
    assert.equal(out, `# managed elsewhere\n${KEY_B}\n\nno-pty ${KEY_A}\n# trailing\n`);
  });

  test('putKey appends on a line of its own; dropKey removes every line of that key only', () => {
    const [type, body] = KEY_A.split(' ') as [string, string];
    assert.equal(putKey('', KEY_A, type, body), `${KEY_A}\n`);
    assert.equal(putKey(KEY_B, KEY_A, type, body), `${KEY_B}\n${KEY_A}\n`);
    const file = `${KEY_A}\n${KEY_B}\nno-pty ${type} ${body} again\n`;
    assert.equal(dropKey(file, type, body), `${KEY_B}\n`);
    assert.equal(dropKey(`${KEY_B}\n`, type, body), `${KEY_B}\n`);
  });

  test('the BusyBox provider\'s /etc/passwd edit changes only the named fields of that user', () => {
    const text = captured('accounts/alpine-passwd.txt');
    const out = editPasswdLine(text, 'appuser', { shell: '/bin/ash', comment: 'App' })!;
    assert.ok(out.includes('\nappuser:x:10000:10000:App:/app:/bin/ash\n'));
    assert.equal(out.replace('App:/app:/bin/ash', 'appuser/appgroup:/app:/sbin/nologin'), text);
    assert.equal(editPasswdLine(text, 'app', { shell: '/bin/sh' }), undefined);
  });
});

describe('contract: FreeBSD pw(8)', () => {
  test('contract: one batched reading serves every user, group and key node; a converged account is unchanged', async () => {
    const exec = freebsd();
    const results = await runScripted(accountsSite(
      '    - user: root\n      uid: 0\n      gid: wheel\n      groups: [operator, wheel]\n      comment: Charlie &\n      home: /root\n      shell: /bin/csh\n' +
      '    - user: charix\n      uid: 1001\n      gid: 1001\n      groups: []\n' +
      '    - group: operator\n      gid: 5\n' +
      '    - group: www\n' +
      '    - user: nosuch\n      ensure: absent\n'), FACTS.freebsd!, exec);
    // root is in the operator group: it follows that group's node (implicit ordering, DESIGN §6).
    assert.deepEqual(statuses(results), ['unchanged user:charix', 'unchanged group:operator', 'unchanged user:root', 'unchanged group:www', 'unchanged user:nosuch']);
    assert.equal(exec.reads, 1);
    assert.deepEqual(exec.tools, []);
  });

  test('contract: pw useradd with every attribute, after pw groupadd; home made with -m', async () => {
    const exec = freebsd();
    exec.reply({ when: 'pw groupadd', effect: (e) => { (e as AccountsMachine).group += 'deploy:*:2001:\n'; } });
    exec.reply({ when: 'pw useradd', effect: (e) => { (e as AccountsMachine).passwd += 'deploy:*:2001:2001:Deploy user:/home/deploy:/bin/sh\n'; } });
    const results = await runScripted(accountsSite(
      '    - group: deploy\n      gid: 2001\n' +
      '    - user: deploy\n      uid: 2001\n      gid: deploy\n      groups: [wheel, operator]\n      home: /home/deploy\n      shell: /bin/sh\n      comment: Deploy user\n'), FACTS.freebsd!, exec);
    assert.deepEqual(statuses(results), ['changed group:deploy', 'changed user:deploy']);
    assert.deepEqual(exec.tools, [
      'pw groupadd -n deploy -g 2001',
      'pw useradd -n deploy -u 2001 -g deploy -G wheel,operator -d /home/deploy -s /bin/sh -c Deploy user -m',
    ]);
    assert.deepEqual(exec.commands.find((c) => c.argv[1] === 'useradd')?.argv.slice(-3), ['-c', 'Deploy user', '-m']);
  });

  test('contract: pw usermod with only the attributes that differ; groups are the exact list', async () => {
    const exec = freebsd().reply({ when: 'pw usermod', code: 0 });
    const results = await runScripted(accountsSite(
      '    - user: charix\n      uid: 1001\n      shell: /bin/sh\n      groups: [wheel]\n      comment: Charix\n'), FACTS.freebsd!, exec);
    assert.deepEqual(statuses(results), ['changed user:charix']);
    assert.deepEqual(exec.tools, ['pw usermod -n charix -G wheel -s /bin/sh -c Charix']);
  });

  test('contract: removing users (home kept unless remove_home) and groups; changing a gid', async () => {
    const exec = freebsd().reply({ when: 'pw ', code: 0 });
    await runScripted(accountsSite(
      '    - user: games\n      ensure: absent\n' +
      '    - user: charix\n      ensure: absent\n      remove_home: true\n' +
      '    - group: dialer\n      ensure: absent\n' +
      '    - group: www\n      gid: 8080\n'), FACTS.freebsd!, exec);
    assert.deepEqual(exec.tools, ['pw userdel -n games', 'pw userdel -n charix -r', 'pw groupdel -n dialer', 'pw groupmod -n www -g 8080']);
  });

  test('contract: pw\'s own error fails the node; an unrelated node still converges', async () => {
    const exec = freebsd();
    exec.reply({ when: 'pw useradd', code: 67, stderr: 'pw: group `nosuch\' is not defined\n' });
    exec.reply({ when: 'pw groupadd', code: 0 });
    const results = await runScripted(accountsSite(
      '    - user: deploy\n      gid: nosuch\n' +
      '    - group: deployers\n'), FACTS.freebsd!, exec);
    assert.equal(results[0]!.status, 'failed');
    assert.match(results[0]!.error ?? '', /pw exited with 67: pw: group `nosuch' is not defined/);
    assert.equal(results[1]!.status, 'changed');
  });
});

describe('contract: Alpine BusyBox adduser/addgroup/deluser/delgroup', () => {
  test('contract: gid by name or number and supplementary groups in any order read as in sync', async () => {
    const exec = alpine();
    const results = await runScripted(accountsSite(
      '    - user: appuser\n      gid: appgroup\n      groups: [appgroup]\n      comment: appuser/appgroup\n      home: /app\n      shell: /sbin/nologin\n' +
      '    - user: root\n      gid: 0\n      groups: [wheel, bin, daemon, sys, adm, disk, floppy, dialout, tape, video, root]\n' +
      '    - group: appgroup\n      gid: 10000\n'), FACTS.alpine!, exec);
    // appuser's group is declared after it: the user follows the group's node (implicit ordering, DESIGN §6).
    assert.deepEqual(statuses(results), ['unchanged user:root', 'unchanged group:appgroup', 'unchanged user:appuser']);
    assert.equal(exec.reads, 1);
  });

  test('contract: adduser -D (never a password prompt) with BusyBox flags, then addgroup per supplementary group', async () => {
    const exec = alpine().reply({ when: /^(adduser|addgroup) /, code: 0 });
    await runScripted(accountsSite(
      '    - user: alice\n      uid: 1001\n      gid: 100\n      groups: [wheel, audio]\n      home: /home/alice\n      shell: /bin/ash\n      comment: Alice\n' +
      '    - user: svc\n      system: true\n' +
      '    - group: web\n      gid: 2000\n      system: true\n'), FACTS.alpine!, exec);
    assert.deepEqual(exec.tools, [
      'adduser -D -u 1001 -G users -h /home/alice -s /bin/ash -g Alice alice',
      'addgroup alice wheel',
      'addgroup alice audio',
      'adduser -D -S -H svc',
      'addgroup -g 2000 -S web',
    ]);
  });

  test('contract: changing groups runs addgroup/delgroup for the difference; shell and comment rewrite /etc/passwd', async () => {
    const exec = alpine().reply({ when: /^(addgroup|delgroup) /, code: 0 });
    exec.files.set('/etc/passwd', { data: Buffer.from(captured('accounts/alpine-passwd.txt')), mode: 0o644, uid: 0, gid: 0 });
    const results = await runScripted(accountsSite(
      '    - user: appuser\n      groups: [wheel]\n      shell: /bin/ash\n      comment: App user\n'), FACTS.alpine!, exec);
    assert.deepEqual(statuses(results), ['changed user:appuser']);
    assert.deepEqual(exec.tools, ['addgroup appuser wheel', 'delgroup appuser appgroup']);
    const passwd = exec.files.get('/etc/passwd')!;
    assert.match(passwd.data.toString(), /\nappuser:x:10000:10000:App user:\/app:\/bin\/ash\n$/);
    assert.equal(passwd.mode, 0o644);
  });

  test('contract: a uid change is refused with the way out; deluser and delgroup remove', async () => {
    const exec = alpine().reply({ when: /^(deluser|delgroup) /, code: 0 });
    const results = await runScripted(accountsSite(
      '    - user: appuser\n      uid: 4242\n' +
      '    - user: guest\n      ensure: absent\n      remove_home: true\n' +
      '    - group: ping\n      ensure: absent\n' +
      '    - group: users\n      gid: 101\n'), FACTS.alpine!, exec);
    assert.equal(results[0]!.status, 'failed');
    assert.match(results[0]!.error ?? '', /BusyBox cannot change the uid .* provider: shadow/);
    assert.equal(results[3]!.status, 'failed');
    assert.deepEqual(exec.tools, ['deluser --remove-home guest', 'delgroup ping']);
  });
});

describe('contract: Linux shadow-utils argv', () => {
  test('contract: useradd -r -M for a system user; an existing same-named group becomes the primary group', async () => {
    const exec = new AccountsMachine('root:x:0:0:root:/root:/bin/bash\n', 'root:x:0:\nsudo:x:27:\nbob:x:1500:\n')
      .reply({ when: /^(useradd|usermod|userdel|groupadd|groupmod|groupdel) /, code: 0 });
    await runScripted(accountsSite(
      '    - user: bob\n      groups: [sudo]\n' +
      '    - user: daemon2\n      system: true\n      shell: /usr/sbin/nologin\n' +
      '    - user: carol\n      create_home: false\n      gid: 27\n' +
      '    - group: ops\n      system: true\n' +
      '    - user: root\n      groups: []\n      comment: superuser\n'), FACTS.debian!, exec);
    assert.deepEqual(exec.tools, [
      'useradd -G sudo -g bob -m bob',
      'useradd -s /usr/sbin/nologin -r -M daemon2',
      'useradd -g 27 -M carol',
      'groupadd -r ops',
      'usermod -c superuser root',
    ]);
  });
});

describe('authorized_key (scripted files)', () => {
  const type = KEY_A.split(' ')[0]!;
  const body = KEY_A.split(' ')[1]!;

  test('contract: creates ~/.ssh 0700 and the file 0600 owned by the user; reads the file once per user; then in sync', async () => {
    const exec = alpine();
    exec.dirs.add('/app');
    const files = accountsSite(
      `    - authorized_key: ${KEY_A}\n      user: appuser\n` +
      `    - authorized_key: ${KEY_B}\n      user: appuser\n      options: no-pty\n`);
    const first = await runScripted(files, FACTS.alpine!, exec);
    assert.deepEqual(statuses(first).map((s) => s.split(' ')[0]), ['changed', 'changed']);
    assert.ok(exec.dirs.has('/app/.ssh'));
    const f = exec.files.get('/app/.ssh/authorized_keys')!;
    assert.deepEqual({ mode: f.mode, uid: f.uid, gid: f.gid }, { mode: 0o600, uid: 10000, gid: 10000 });
    assert.equal(f.data.toString(), `${KEY_A}\nno-pty ${KEY_B}\n`);

    exec.fileReads.length = 0;
    const again = await runScripted(files, FACTS.alpine!, exec);
    assert.deepEqual(again.map((r) => r.status), ['unchanged', 'unchanged']);
    assert.deepEqual(exec.fileReads.filter((p) => p.startsWith('/app/')), ['/app/.ssh/authorized_keys']);
  });

  test('contract: options change rewrites that line in place; absent removes only that key; other lines untouched', async () => {
    const exec = alpine();
    const before = `# keys\n${KEY_B}\n${type} ${body} other-comment\nfrom="10.0.0.1" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBB carol\n`;
    exec.files.set('/app/.ssh/authorized_keys', { data: Buffer.from(before), mode: 0o640, uid: 10000, gid: 100 });
    const changed = await runScripted(accountsSite(
      `    - authorized_key: ${KEY_A}\n      user: appuser\n      options: from="10.0.0.0/8"\n`), FACTS.alpine!, exec);
    assert.deepEqual(changed.map((r) => r.status), ['changed']);
    const f = exec.files.get('/app/.ssh/authorized_keys')!;
    assert.equal(f.data.toString(), `# keys\n${KEY_B}\nfrom="10.0.0.0/8" ${KEY_A}\nfrom="10.0.0.1" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBB carol\n`);
    assert.deepEqual({ mode: f.mode, uid: f.uid, gid: f.gid }, { mode: 0o640, uid: 10000, gid: 100 });

    const removed = await runScripted(accountsSite(
      `    - authorized_key: ${type} ${body} comment ignored\n      user: appuser\n      ensure: absent\n`), FACTS.alpine!, exec);
    assert.deepEqual(removed.map((r) => r.status), ['changed']);
    assert.equal(exec.files.get('/app/.ssh/authorized_keys')!.data.toString(), `# keys\n${KEY_B}\nfrom="10.0.0.1" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBB carol\n`);
  });

  test('contract: a key for a missing user fails with "no such user"; absent for a missing user is in sync', async () => {
    const exec = alpine();
    const results = await runScripted(accountsSite(
      `    - authorized_key: ${KEY_A}\n      user: ghost\n` +
      `    - authorized_key: ${KEY_B}\n      user: ghost\n      ensure: absent\n`), FACTS.alpine!, exec);
    assert.equal(results[0]!.status, 'failed');
    assert.equal(results[0]!.error, 'no such user: ghost');
    assert.equal(results[1]!.status, 'unchanged');
  });
});
