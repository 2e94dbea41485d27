/**
 * The cron, hostname and sysctl types: unit tests of the crontab and sysctl parsing, and CONTRACT
 * TESTS of the providers. They are contract tests because the tools they stand for cannot run on
 * this machine (BusyBox crontab and sysctl on Alpine, FreeBSD's crontab, sysctl, sysrc and
 * hostname, and changing this machine's own host name and kernel parameters is out of the
 * question): a scripted executor checks the exact commands issued and answers with real output
 * captured on those systems (test/fixtures/captured/{crontab,sysctl,hostname}/README.md says where
 * each came from). The same providers run for real on a Debian lab host in
 * test/lab-system-misc.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NodeResult } from '../src/engine/engine.ts';
import { cronType } from '../src/resources/cron/type.ts';
import { hostnameType } from '../src/resources/hostname/type.ts';
import { sysctlType } from '../src/resources/sysctl/type.ts';
import { findJob, parseCrontab, parseJob, renderCrontab, withJob } from '../src/resources/cron/crontab.ts';
import { FREEBSD_OUTPUT_LINE, LINUX_OUTPUT_LINE, normalizeValue, parseConf, parseSysctlOutput, withConfLine } from '../src/resources/sysctl/provider.ts';
import { FACTS, ScriptedExecutor, captured, runScripted, type Reply } from './helpers/scripted-executor.ts';

function site(parts: string): Record<string, string> {
  return {
    'cairn.yaml': 'targets:\n  t1:\n    state_dir: /var/lib/cairn\n    run: [s]\n',
    'states/s.yaml': `s:\n${parts}`,
  };
}

function statuses(results: NodeResult[]): string[] {
  return results.map((r) => `${r.status} ${r.ref}${r.error ? `: ${r.error}` : ''}`);
}

function file(exec: ScriptedExecutor, path: string): string | undefined {
  return exec.files.get(path)?.data.toString('utf8');
}

function seed(exec: ScriptedExecutor, path: string, content: string): ScriptedExecutor {
  exec.files.set(path, { data: Buffer.from(content), mode: 0o644, uid: 0, gid: 0 });
  return exec;
}

describe('schemas', () => {
  const errors = (schema: { safeParse(v: unknown): { success: boolean; error?: { issues: { message: string }[] } } }, value: unknown) =>
    schema.safeParse(value).error?.issues.map((i) => i.message) ?? [];

  test('cron: a command unless absent; special or a schedule, not both; one-line values', () => {
    assert.deepEqual(errors(cronType.schema, { name: 'x', command: 'true', minute: 5, hour: '*/2' }), []);
    assert.deepEqual(errors(cronType.schema, { name: 'x', ensure: 'absent' }), []);
    assert.deepEqual(errors(cronType.schema, { name: 'x' }), ['command is required']);
    assert.deepEqual(errors(cronType.schema, { name: 'x', command: 'true', special: 'daily', hour: 3 }),
      ['special replaces minute, hour, day, month and weekday: give one or the other']);
    assert.deepEqual(errors(cronType.schema, { name: 'x', command: 'true', minute: '1 2' }), ['a schedule field is one word with no spaces']);
    assert.deepEqual(errors(cronType.schema, { name: 'x', command: 'a\nb' }), ['a cron command must be one line']);
    assert.equal(cronType.schema.parse({ name: 'x', command: 'true' }).user, 'root');
  });

  test('hostname and sysctl names', () => {
    assert.deepEqual(errors(hostnameType.schema, { name: 'web-1.example.com' }), []);
    assert.equal(errors(hostnameType.schema, { name: 'web_1' }).length, 1);
    assert.equal(errors(hostnameType.schema, { name: '-web' }).length, 1);
    assert.equal(errors(hostnameType.schema, { name: 'a'.repeat(65) }).length, 1);
    assert.deepEqual(errors(sysctlType.schema, { name: 'net/ipv4/ip_forward', value: 1 }), []);
    assert.equal(errors(sysctlType.schema, { name: '-w', value: 1 }).length, 1, 'never an option to sysctl');
    assert.equal(sysctlType.schema.parse({ name: 'vm.swappiness', value: 10 }).persist, true);
  });
});

describe('crontab text', () => {
  const text = 'MAILTO=ops@example.com\n# nightly\n0 2 * * * /bin/true\n# cairn: backup\n30 1 * * * /usr/local/bin/backup --all\n@reboot /usr/local/bin/warm-cache\n';

  test('finds managed entries by their marker, five fields or a special', () => {
    const tab = parseCrontab(text);
    assert.deepEqual(findJob(tab, 'backup'), { minute: '30', hour: '1', day: '*', month: '*', weekday: '*', command: '/usr/local/bin/backup --all' });
    assert.equal(findJob(tab, 'nightly'), undefined, 'an ordinary comment is not a marker');
    assert.deepEqual(parseJob('@reboot /usr/local/bin/warm-cache'), { special: 'reboot', command: '/usr/local/bin/warm-cache' });
    assert.equal(parseJob('MAILTO=ops@example.com'), undefined);
    assert.equal(parseJob('# 1 2 3 4 5 six'), undefined);
  });

  test('replacing, adding and removing an entry leaves every other line as it was', () => {
    const tab = parseCrontab(text);
    const replaced = renderCrontab(withJob(tab, 'backup', { minute: '0', hour: '3', day: '*', month: '*', weekday: '*', command: '/usr/local/bin/backup' }));
    assert.equal(replaced, text.replace('30 1 * * * /usr/local/bin/backup --all', '0 3 * * * /usr/local/bin/backup'));
    const added = renderCrontab(withJob(tab, 'report', { special: 'daily', command: 'report.sh' }));
    assert.equal(added, `${text}# cairn: report\n@daily report.sh\n`);
    const removed = renderCrontab(withJob(tab, 'backup', undefined));
    assert.equal(removed, 'MAILTO=ops@example.com\n# nightly\n0 2 * * * /bin/true\n@reboot /usr/local/bin/warm-cache\n');
    assert.equal(renderCrontab(withJob(parseCrontab('# cairn: x\n* * * * * a\n'), 'x', undefined)), '', 'nothing left: an empty crontab');
  });

  test('a duplicate entry and a marker left without its job are cleaned up', () => {
    const messy = '# cairn: a\n1 * * * * one\n# cairn: a\n2 * * * * two\n# cairn: b\n# keep me\n';
    const job = { minute: '5', hour: '*', day: '*', month: '*', weekday: '*', command: 'five' };
    assert.equal(renderCrontab(withJob(parseCrontab(messy), 'a', job)), '# cairn: a\n5 * * * * five\n# cairn: b\n# keep me\n');
    assert.equal(findJob(parseCrontab(messy), 'b'), undefined);
    assert.equal(renderCrontab(withJob(parseCrontab(messy), 'b', job)), '# cairn: a\n1 * * * * one\n# cairn: a\n2 * * * * two\n# cairn: b\n5 * * * * five\n# keep me\n');
  });

  test("a Vixie header shown by crontab -l is dropped, so it does not pile up on every write", () => {
    const spool = '# DO NOT EDIT THIS FILE - edit the master and reinstall.\n# (- installed on Mon Nov 30 20:27:57 2026)\n# (Cron version -- $Id: crontab.c,v 2.13 1994/01/17 03:20:37 vixie Exp $)\n' + captured('crontab/debian-l.stdout');
    assert.equal(renderCrontab(parseCrontab(spool)), captured('crontab/debian-l.stdout'));
  });
});

describe('sysctl text', () => {
  test('procps and BusyBox output: name = value, tabs kept (compared normalised)', () => {
    const procps = parseSysctlOutput(captured('sysctl/procps-read.stdout'), ['net.ipv4.ip_forward', 'net.ipv4.tcp_syncookies', 'kernel.printk', 'net.nosuch'], LINUX_OUTPUT_LINE);
    assert.deepEqual([...procps], [['net.ipv4.ip_forward', '0'], ['net.ipv4.tcp_syncookies', '1'], ['kernel.printk', '4\t4\t1\t7']]);
    const busybox = parseSysctlOutput(captured('sysctl/busybox-read.stdout'), ['net/ipv4/ip_forward', 'kernel.printk', 'net.nosuch.key'], LINUX_OUTPUT_LINE);
    assert.deepEqual([...busybox], [['net.ipv4.ip_forward', '0'], ['kernel.printk', '4\t4\t1\t7']]);
    assert.equal(normalizeValue('4\t4\t1\t7\n'), normalizeValue(' 4 4  1 7'));
  });

  test('FreeBSD -e output: name=value, a value may span lines', () => {
    const names = ['kern.ostype', 'kern.osrelease', 'kern.osrevision', 'kern.version', 'kern.maxvnodes'];
    const values = parseSysctlOutput(captured('sysctl/freebsd-read-e.stdout'), names, FREEBSD_OUTPUT_LINE);
    const some = parseSysctlOutput(captured('sysctl/freebsd-read-e.stdout'), ['kern.osrelease', 'kern.maxvnodes'], FREEBSD_OUTPUT_LINE);
    assert.deepEqual([...some], [['kern.osrelease', '13.0-CURRENT'], ['kern.maxvnodes', '213989']], 'names not asked for are skipped, lines and all');
    assert.equal(values.get('kern.ostype'), 'FreeBSD');
    assert.equal(values.get('kern.maxvnodes'), '213989');
    assert.equal(values.get('kern.version'), 'FreeBSD 13.0-CURRENT #246 r365916M: Thu Sep 24 09:17:12 MDT 2020\n    user@host.domain:/usr/obj/usr/src/head\n/amd64.amd64/sys/GENERIC\n');
  });

  test('the persisted file: one line per name, other lines kept', () => {
    const conf = '# mine\nvm.swappiness = 10\n-net.ipv4.ip_forward=0\n; old style comment\nnet/ipv4/ip_forward = 0\n';
    assert.deepEqual([...parseConf(conf)], [['vm.swappiness', '10'], ['net.ipv4.ip_forward', '0']]);
    assert.equal(withConfLine(conf, 'net.ipv4.ip_forward', 'net.ipv4.ip_forward = 1'), '# mine\nvm.swappiness = 10\nnet.ipv4.ip_forward = 1\n; old style comment\n');
    assert.equal(withConfLine(conf, 'net.ipv4.ip_forward', undefined), '# mine\nvm.swappiness = 10\n; old style comment\n');
    assert.equal(withConfLine('', 'kern.maxvnodes', 'kern.maxvnodes=250000'), 'kern.maxvnodes=250000\n');
  });
});

describe('cron providers', () => {
  const twoEntries = [
    '  - cron: backup',
    '    command: /usr/local/bin/backup',
    '    hour: 3',
    '    minute: 0',
    '  - cron: report',
    '    user: bob',
    '    command: report.sh --mail',
    '    special: daily',
    '',
  ].join('\n');

  test('contract: Debian cron — one crontab -l per user, the whole crontab written back with unmanaged lines intact', async () => {
    const root = `${captured('crontab/debian-l.stdout')}# cairn: backup\n30 1 * * * /usr/local/bin/backup\n`;
    const exec = new ScriptedExecutor([
      { when: 'crontab -l -u root', stdout: root },
      { when: 'crontab -l -u bob', code: 1, stderr: captured('crontab/debian-l-none.stderr') },
      { when: 'crontab -u ' },
    ]);
    const results = await runScripted(site(twoEntries), FACTS.debian!, exec);
    assert.deepEqual(statuses(results), ['changed cron:backup', 'changed cron:report']);
    assert.deepEqual(exec.lines, ['crontab -l -u root', 'crontab -u root -', 'crontab -l -u bob', 'crontab -u bob -']);
    assert.equal(exec.commands[1]!.stdin, `${captured('crontab/debian-l.stdout')}# cairn: backup\n0 3 * * * /usr/local/bin/backup\n`);
    assert.equal(exec.commands[3]!.stdin, '# cairn: report\n@daily report.sh --mail\n');
  });

  test('contract: Debian cron — in sync: only the readings, one per user, however many entries', async () => {
    const parts = `${twoEntries}  - cron: cleanup\n    command: find /tmp -mtime +7 -delete\n    minute: "*/15"\n`;
    const exec = new ScriptedExecutor([
      { when: 'crontab -l -u root', stdout: '# cairn: backup\n0 3 * * * /usr/local/bin/backup\nMAILTO=x\n# cairn: cleanup\n*/15 * * * * find /tmp -mtime +7 -delete\n' },
      { when: 'crontab -l -u bob', stdout: '# cairn: report\n@daily report.sh --mail\n' },
    ]);
    const results = await runScripted(site(parts), FACTS.debian!, exec);
    assert.deepEqual(statuses(results), ['unchanged cron:backup', 'unchanged cron:report', 'unchanged cron:cleanup']);
    assert.deepEqual(exec.lines, ['crontab -l -u root', 'crontab -l -u bob']);
  });

  test('contract: a special line is not the same as a schedule, either way', async () => {
    const exec = new ScriptedExecutor([
      { when: 'crontab -l -u root', stdout: '# cairn: backup\n@daily /usr/local/bin/backup\n' },
      { when: 'crontab -l -u bob', stdout: '# cairn: report\n0 0 * * * report.sh --mail\n' },
      { when: 'crontab -u ' },
    ]);
    const results = await runScripted(site(twoEntries), FACTS.debian!, exec);
    assert.deepEqual(statuses(results), ['changed cron:backup', 'changed cron:report']);
    assert.equal(exec.commands[1]!.stdin, '# cairn: backup\n0 3 * * * /usr/local/bin/backup\n');
    assert.equal(exec.commands[3]!.stdin, '# cairn: report\n@daily report.sh --mail\n');
  });

  test('contract: ensure absent removes the entry and its marker, and is in sync when there is none', async () => {
    const exec = new ScriptedExecutor([
      { when: 'crontab -l -u root', stdout: '# nightly\n0 2 * * * /bin/true\n# cairn: backup\n0 3 * * * /usr/local/bin/backup\n' },
      { when: 'crontab -l -u bob', code: 1, stderr: captured('crontab/debian-l-none.stderr') },
      { when: 'crontab -u root -' },
    ]);
    const results = await runScripted(site('  - cron: backup\n    ensure: absent\n  - cron: gone\n    user: bob\n    ensure: absent\n'), FACTS.debian!, exec);
    assert.deepEqual(statuses(results), ['changed cron:backup', 'unchanged cron:gone']);
    assert.deepEqual(exec.lines, ['crontab -l -u root', 'crontab -u root -', 'crontab -l -u bob']);
    assert.equal(exec.commands[1]!.stdin, '# nightly\n0 2 * * * /bin/true\n');
  });

  test("contract: crontab's own errors fail the node (unknown user, a crontab it refuses); other nodes converge", async () => {
    const exec = new ScriptedExecutor([
      { when: 'crontab -l -u nosuchuser', code: 1, stderr: captured('crontab/debian-l-unknown-user.stderr') },
      { when: 'crontab -l -u root', code: 1, stderr: captured('crontab/debian-l-none.stderr') },
      { when: 'crontab -u root -', code: 1, stderr: captured('crontab/debian-install-bad.stderr'), times: 1 },
      { when: 'crontab -u root -' },
    ]);
    const parts = '  - cron: a\n    user: nosuchuser\n    command: a.sh\n  - cron: b\n    command: b.sh\n  - cron: c\n    command: c.sh\n';
    const results = await runScripted(site(parts), FACTS.debian!, exec);
    assert.deepEqual(statuses(results), [
      "failed cron:a: crontab:  user `nosuchuser' unknown",
      'failed cron:b: "-":0: bad minute\nerrors in crontab file, can\'t install.',
      'changed cron:c',
    ]);
  });

  test('contract: Alpine (BusyBox crontab) — "can\'t open" on -l is an empty crontab', async () => {
    const exec = new ScriptedExecutor([
      { when: 'crontab -l -u root', code: 1, stderr: captured('crontab/busybox-l-none.stderr') },
      { when: 'crontab -u root -' },
    ]);
    const results = await runScripted(site('  - cron: sync\n    command: /usr/bin/sync-data\n    minute: "*/5"\n'), FACTS.alpine!, exec);
    assert.deepEqual(statuses(results), ['changed cron:sync']);
    assert.deepEqual(exec.lines, ['crontab -l -u root', 'crontab -u root -']);
    assert.equal(exec.commands[1]!.stdin, '# cairn: sync\n*/5 * * * * /usr/bin/sync-data\n');
  });

  test('contract: FreeBSD crontab — "no crontab for" is an empty crontab', async () => {
    const exec = new ScriptedExecutor([
      { when: 'crontab -l -u root', code: 1, stderr: captured('crontab/freebsd-l-none.stderr') },
      { when: 'crontab -u root -' },
    ]);
    const results = await runScripted(site('  - cron: warm\n    command: /usr/local/bin/warm-cache\n    special: reboot\n'), FACTS.freebsd!, exec);
    assert.deepEqual(statuses(results), ['changed cron:warm']);
    assert.deepEqual(exec.lines, ['crontab -l -u root', 'crontab -u root -']);
    assert.equal(exec.commands[1]!.stdin, '# cairn: warm\n@reboot /usr/local/bin/warm-cache\n');
  });
});

describe('sysctl providers', () => {
  const CONF = '/etc/sysctl.d/99-cairn.conf';
  const parts = [
    '  - sysctl: net.ipv4.ip_forward',
    '    value: 1',
    '  - sysctl: kernel.printk',
    '    value: "4 4 1 7"',
    '  - sysctl: net.nosuch',
    '    value: 1',
    '',
  ].join('\n');

  test('contract: Debian (procps) — one sysctl for all nodes, set with -w, kept in 99-cairn.conf; an unknown name fails with sysctl\'s words', async () => {
    const exec = seed(new ScriptedExecutor([
      { when: 'sysctl -w net.ipv4.ip_forward=1', stdout: captured('sysctl/procps-write.stdout') },
      { when: 'sysctl net.ipv4.ip_forward kernel.printk net.nosuch', code: 1, stdout: captured('sysctl/procps-read.stdout'), stderr: captured('sysctl/procps-read.stderr') },
    ]), CONF, '# mine\nvm.swappiness = 10\n');
    const results = await runScripted(site(parts), FACTS.debian!, exec);
    assert.deepEqual(statuses(results), [
      'changed sysctl:net.ipv4.ip_forward',
      'changed sysctl:kernel.printk',
      'failed sysctl:net.nosuch: sysctl: cannot stat /proc/sys/net/nosuch: No such file or directory',
    ]);
    // The reading is shared until something changes; kernel.printk's value already matched (tabs
    // vs spaces), so only its persisted line was missing.
    assert.deepEqual(exec.lines, [
      'sysctl net.ipv4.ip_forward kernel.printk net.nosuch',
      'sysctl -w net.ipv4.ip_forward=1',
      'sysctl net.ipv4.ip_forward kernel.printk net.nosuch',
      'sysctl net.ipv4.ip_forward kernel.printk net.nosuch',
    ]);
    assert.equal(file(exec, CONF), '# mine\nvm.swappiness = 10\nnet.ipv4.ip_forward = 1\nkernel.printk = 4 4 1 7\n');
  });

  test('contract: Debian — in sync (running and persisted): one command, nothing written', async () => {
    const exec = seed(new ScriptedExecutor([
      { when: 'sysctl net.ipv4.ip_forward kernel.printk', stdout: captured('sysctl/procps-read.stdout').replace('ip_forward = 0', 'ip_forward = 1') },
    ]), CONF, 'net.ipv4.ip_forward = 1\nkernel.printk = 4\t4\t1\t7\n');
    const results = await runScripted(site(parts.replace('  - sysctl: net.nosuch\n    value: 1\n', '')), FACTS.debian!, exec);
    assert.deepEqual(statuses(results), ['unchanged sysctl:net.ipv4.ip_forward', 'unchanged sysctl:kernel.printk']);
    assert.deepEqual(exec.lines, ['sysctl net.ipv4.ip_forward kernel.printk']);
  });

  test('contract: Debian — set but not persisted is a change; persist: false drops the line Cairn kept', async () => {
    const exec = seed(new ScriptedExecutor([
      { when: 'sysctl ', stdout: 'net.ipv4.ip_forward = 1\nnet.ipv4.tcp_syncookies = 1\n' },
    ]), CONF, '# mine\nnet.ipv4.tcp_syncookies = 1\n');
    const results = await runScripted(site('  - sysctl: net.ipv4.ip_forward\n    value: 1\n  - sysctl: net.ipv4.tcp_syncookies\n    value: 1\n    persist: false\n'), FACTS.debian!, exec);
    assert.deepEqual(statuses(results), ['changed sysctl:net.ipv4.ip_forward', 'changed sysctl:net.ipv4.tcp_syncookies']);
    assert.ok(!exec.lines.some((l) => l.includes('-w')), 'the running values were right: no sysctl -w');
    assert.equal(file(exec, CONF), '# mine\nnet.ipv4.ip_forward = 1\n');
  });

  test('contract: a sysctl -w refused (read-only /proc/sys) fails the node with sysctl\'s message', async () => {
    const exec = new ScriptedExecutor([
      { when: 'sysctl -w', code: 1, stderr: captured('sysctl/procps-write-readonly.stderr') },
      { when: 'sysctl net.ipv4.ip_forward', stdout: 'net.ipv4.ip_forward = 0\n' },
    ]);
    const results = await runScripted(site('  - sysctl: net.ipv4.ip_forward\n    value: 1\n'), FACTS.debian!, exec);
    assert.deepEqual(statuses(results), ['failed sysctl:net.ipv4.ip_forward: sysctl: permission denied on key "net.ipv4.ip_forward"']);
    assert.equal(file(exec, CONF), undefined, 'nothing persisted when setting failed');
  });

  test('contract: Alpine (BusyBox sysctl) — same commands, its unknown-key complaint found despite the mangled name', async () => {
    const exec = new ScriptedExecutor([
      { when: 'sysctl -w net.ipv4.ip_forward=1', stdout: captured('sysctl/busybox-write.stdout').replace('= 0', '= 1') },
      { when: 'sysctl net.ipv4.ip_forward kernel.printk net.nosuch.key', code: 1, stdout: captured('sysctl/busybox-read.stdout'), stderr: captured('sysctl/busybox-read.stderr') },
    ]);
    const results = await runScripted(site('  - sysctl: net.ipv4.ip_forward\n    value: 1\n  - sysctl: kernel.printk\n    value: "4 4 1 7"\n    persist: false\n  - sysctl: net.nosuch.key\n    value: 1\n'), FACTS.alpine!, exec);
    assert.deepEqual(statuses(results), [
      'changed sysctl:net.ipv4.ip_forward',
      'unchanged sysctl:kernel.printk',
      "failed sysctl:net.nosuch.key: sysctl: error: 'net.nosuch/key' is an unknown key",
    ]);
    assert.equal(exec.lines[1], 'sysctl -w net.ipv4.ip_forward=1');
    assert.match(file(exec, CONF)!, /^# Kernel parameters set by Cairn.*\nnet\.ipv4\.ip_forward = 1\n$/);
  });

  test('contract: FreeBSD — sysctl -e to read, sysctl k=v to set, /etc/sysctl.conf (k=v) to persist', async () => {
    const out = captured('sysctl/freebsd-read-e.stdout').split('\n').filter((l) => /^kern\.(ostype|maxvnodes)=/.test(l)).join('\n') + '\n';
    const exec = seed(new ScriptedExecutor([
      { when: 'sysctl kern.maxvnodes=250000', stdout: 'kern.maxvnodes: 213989 -> 250000\n' },
      { when: 'sysctl -e kern.ostype kern.maxvnodes asef.esrhaseras.easr', code: 1, stdout: out, stderr: captured('sysctl/freebsd-unknown.stderr') },
    ]), '/etc/sysctl.conf', '# $FreeBSD$\nsecurity.bsd.see_other_uids=0\n');
    const parts = '  - sysctl: kern.ostype\n    value: FreeBSD\n    persist: false\n  - sysctl: kern.maxvnodes\n    value: 250000\n  - sysctl: asef.esrhaseras.easr\n    value: backward\n';
    const results = await runScripted(site(parts), FACTS.freebsd!, exec);
    assert.deepEqual(statuses(results), [
      'unchanged sysctl:kern.ostype',
      'changed sysctl:kern.maxvnodes',
      "failed sysctl:asef.esrhaseras.easr: sysctl: unknown oid 'asef.esrhaseras.easr'",
    ]);
    assert.deepEqual(exec.lines.filter((l) => !l.startsWith('sysctl -e')), ['sysctl kern.maxvnodes=250000']);
    assert.equal(file(exec, '/etc/sysctl.conf'), '# $FreeBSD$\nsecurity.bsd.see_other_uids=0\nkern.maxvnodes=250000\n');
    assert.equal(exec.files.has(CONF), false);
  });

  test('contract: FreeBSD — sysctl k=v as Salt saw it succeed and fail', async () => {
    const exec = new ScriptedExecutor([
      { when: 'sysctl vfs.usermount=1', stdout: captured('sysctl/freebsd-write.stdout') },
      { when: 'sysctl -e vfs.usermount', stdout: 'vfs.usermount=0\n' },
    ]);
    const results = await runScripted(site('  - sysctl: vfs.usermount\n    value: 1\n'), FACTS.freebsd!, exec);
    assert.deepEqual(statuses(results), ['changed sysctl:vfs.usermount']);
    assert.deepEqual(exec.lines, ['sysctl -e vfs.usermount', 'sysctl vfs.usermount=1']);
    assert.equal(file(exec, '/etc/sysctl.conf'), 'vfs.usermount=1\n');
  });
});

describe('hostname providers', () => {
  const web1 = '  - hostname: web1\n';
  const machine = (running: string, replies: Reply[] = []) => new ScriptedExecutor([...replies, { when: 'uname -n', stdout: `${running}\n` }]);

  test('contract: systemd (Debian) — hostnamectl set-hostname sets both halves', async () => {
    const exec = seed(machine('old', [{ when: 'hostnamectl set-hostname web1' }]), '/etc/hostname', 'old\n');
    const results = await runScripted(site(web1), FACTS.debian!, exec);
    assert.deepEqual(statuses(results), ['changed hostname:web1']);
    assert.deepEqual(exec.lines, ['uname -n', 'hostnamectl set-hostname web1']);
  });

  test('contract: in sync only when both the running and the persisted name match', async () => {
    const synced = seed(machine('web1'), '/etc/hostname', '# set at install\nweb1\n');
    assert.deepEqual(statuses(await runScripted(site(web1), FACTS.debian!, synced)), ['unchanged hostname:web1']);
    assert.deepEqual(synced.lines, ['uname -n']);

    const notPersisted = seed(machine('web1', [{ when: 'hostnamectl set-hostname web1' }]), '/etc/hostname', 'debian\n');
    assert.deepEqual(statuses(await runScripted(site(web1), FACTS.debian!, notPersisted)), ['changed hostname:web1']);
  });

  test('contract: systemd without a reachable hostnamed — falls back to /etc/hostname and hostname', async () => {
    const exec = seed(machine('old', [
      { when: 'hostnamectl set-hostname web1', code: 1, stderr: 'System has not been booted with systemd as init system (PID 1). Can\'t operate.\nFailed to connect to bus: Host is down\n' },
      { when: 'hostname web1' },
    ]), '/etc/hostname', 'old\n');
    const results = await runScripted(site(web1), FACTS.debian!, exec);
    assert.deepEqual(statuses(results), ['changed hostname:web1']);
    assert.deepEqual(exec.lines, ['uname -n', 'hostnamectl set-hostname web1', 'hostname web1']);
    assert.equal(file(exec, '/etc/hostname'), 'web1\n');
  });

  test('contract: hostnamectl refusing for another reason fails with its message', async () => {
    const exec = machine('old', [{ when: 'hostnamectl', code: 1, stderr: 'Could not set static hostname: Access denied\n' }]);
    const results = await runScripted(site(web1), FACTS.debian!, exec);
    assert.deepEqual(statuses(results), ['failed hostname:web1: Could not set static hostname: Access denied']);
  });

  test('contract: Alpine (OpenRC) — /etc/hostname written and hostname run, each only when it differs', async () => {
    const exec = seed(machine('localhost', [{ when: 'hostname web1' }]), '/etc/hostname', 'localhost\n');
    assert.deepEqual(statuses(await runScripted(site(web1), FACTS.alpine!, exec)), ['changed hostname:web1']);
    assert.deepEqual(exec.lines, ['uname -n', 'hostname web1']);
    assert.equal(file(exec, '/etc/hostname'), 'web1\n');

    const runningOnly = seed(machine('web1'), '/etc/hostname', 'localhost\n');
    assert.deepEqual(statuses(await runScripted(site(web1), FACTS.alpine!, runningOnly)), ['changed hostname:web1']);
    assert.deepEqual(runningOnly.lines, ['uname -n'], 'the running name was right: no hostname command');
    assert.equal(file(runningOnly, '/etc/hostname'), 'web1\n');
  });

  test('contract: FreeBSD — sysrc -n hostname to read, sysrc hostname=NAME and hostname NAME to set', async () => {
    const exec = machine('freebsd', [
      { when: 'sysrc -n hostname', code: 1, stderr: captured('hostname/freebsd-sysrc-unset.stderr') },
      { when: 'sysrc hostname=web1', stdout: captured('hostname/freebsd-sysrc-set.stdout') },
      { when: 'hostname web1' },
    ]);
    assert.deepEqual(statuses(await runScripted(site(web1), FACTS.freebsd!, exec)), ['changed hostname:web1']);
    assert.deepEqual(exec.lines, ['sysrc -n hostname', 'uname -n', 'sysrc hostname=web1', 'hostname web1']);

    const synced = machine('web1', [{ when: 'sysrc -n hostname', stdout: 'web1\n' }]);
    assert.deepEqual(statuses(await runScripted(site(web1), FACTS.freebsd!, synced)), ['unchanged hostname:web1']);
    assert.deepEqual(synced.lines, ['sysrc -n hostname', 'uname -n']);
  });
});
