/**
 * One OS-agnostic site (test/fixtures/sites/system), unchanged: it converges a real Debian lab
 * host over SSH (then a second run changes nothing), and plans correctly for Alpine and FreeBSD.
 *
 * The Alpine and FreeBSD plans are CONTRACT TESTS: apk, OpenRC, rc.d, pw and FreeBSD's sysctl
 * cannot run on this machine, so a scripted executor answers the providers' read commands with
 * output captured on those systems (test/fixtures/captured/). They check that the same site
 * picks each OS's names and tools, and that planning issues nothing but reads.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { NodeResult } from '../src/engine/engine.ts';
import { runCli } from './helpers/cli.ts';
import type { Report } from './helpers/converge.ts';
import { labUnavailable, startLab, type Lab, type LabHost } from './helpers/lab.ts';
import { captured, FACTS, runScripted, ScriptedExecutor } from './helpers/scripted-executor.ts';

const SITE = resolve(import.meta.dirname, 'fixtures/sites/system');

function siteFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const abs = join(dir, entry);
      if (statSync(abs).isDirectory()) walk(abs);
      else files[abs.slice(SITE.length + 1)] = readFileSync(abs, 'utf8');
    }
  };
  walk(SITE);
  return files;
}

const statusOf = (results: NodeResult[]) => Object.fromEntries(results.map((r) => [r.ref, `${r.status}${r.action !== 'none' ? ` ${r.action}` : ''}`]));

/** The commands a plan may issue: reads only. */
const READS = [/^sh -c if command -v getent/, /^apk info -v$/, /^rc-status --servicelist$/, /^rc-update show$/, /^crontab -l -u root$/,
  /^sysctl (-e )?net\.\S+$/, /^uname -n$/, /^service -e$/, /^sh -c for s do .* onestatus/, /^pkg query /, /^sysrc -n hostname$/];

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEsz9StBlwjNUd6CKFxbkHlojxhcz3B3aFjTotNWB0kb';

test('contract: the site plans for Alpine with apk, OpenRC, BusyBox accounts and the Alpine names', async () => {
  const exec = new ScriptedExecutor([
    { when: 'sh -c if command -v getent', stdout: `${captured('accounts/alpine-passwd.txt')}--cairn-groups--\n${captured('accounts/alpine-group.txt')}` },
    { when: 'apk info -v', stdout: captured('apk/info-v.stdout') },
    { when: 'rc-status --servicelist', stdout: captured('openrc/rc-status-a.txt') },
    { when: 'rc-update show', stdout: captured('openrc/rc-update-show.txt') },
    { when: 'crontab -l -u root', code: 1, stderr: captured('crontab/busybox-l-none.stderr') },
    { when: 'sysctl net.ipv4.tcp_syncookies', stdout: 'net.ipv4.tcp_syncookies = 1\n' },
    { when: 'uname -n', stdout: 'alpine320\n' },
  ]);
  const files = { ...siteFiles(), 'inventory.yaml': 'targets:\n  web1: { host: 192.0.2.10, roles: [base] }\n' };
  const results = await runScripted(files, FACTS.alpine!, exec, 'plan');
  assert.deepEqual(statusOf(results), {
    'group:deploy': 'would-change create',
    'user:deploy': 'would-change create',
    [`authorized_key:deploy#${KEY}`]: 'would-change create',
    'package:ssh-server': 'unchanged', // openssh-server is installed in the captured apk info
    'file:/etc/motd': 'would-change create',
    'service:ssh-server': 'unchanged', // sshd started, in the default runlevel
    'package:tree': 'would-change create',
    'cron:tmp-cleanup': 'would-change create',
    'sysctl:net.ipv4.tcp_syncookies': 'would-change update', // set, but not persisted in /etc/sysctl.d
    'hostname:web1': 'would-change update',
  });
  for (const line of exec.lines) assert.ok(READS.some((re) => re.test(line)), `a plan only reads; it ran: ${line}`);
  assert.ok(exec.lines.includes('apk info -v') && exec.lines.includes('rc-status --servicelist'), exec.lines.join('\n'));
});

test('contract: the site plans for FreeBSD with pkg, rc.d, pw and the FreeBSD names (sshd is in the base system)', async () => {
  const exec = new ScriptedExecutor([
    { when: 'sh -c if command -v getent', stdout: `${captured('accounts/freebsd-passwd.txt')}--cairn-groups--\n${captured('accounts/freebsd-group.txt')}` },
    { when: 'service -e', stdout: captured('rc.d/service-e.txt') },
    { when: /^sh -c for s do .* onestatus/, stdout: `@@cairn-service sshd\n${captured('rc.d/onestatus-running.txt')}@@cairn-service-rc 0\n` },
    { when: 'pkg query', code: 1 },
    { when: 'crontab -l -u root', code: 1, stderr: captured('crontab/freebsd-l-none.stderr') },
    { when: 'sysctl -e net.inet.tcp.syncookies', stdout: 'net.inet.tcp.syncookies=1\n' },
    { when: 'sysrc -n hostname', stdout: 'fbsd14\n' },
    { when: 'uname -n', stdout: 'fbsd14\n' },
  ]);
  exec.files.set('/etc/sysctl.conf', { data: Buffer.from('net.inet.tcp.syncookies=1\n'), mode: 0o644, uid: 0, gid: 0 });
  const files = { ...siteFiles(), 'inventory.yaml': 'targets:\n  web1: { host: 192.0.2.11, roles: [base] }\n' };
  const results = await runScripted(files, FACTS.freebsd!, exec, 'plan');
  assert.deepEqual(statusOf(results), {
    'group:deploy': 'would-change create',
    'user:deploy': 'would-change create',
    [`authorized_key:deploy#${KEY}`]: 'would-change create',
    'package:ssh-server': 'unchanged', // part of the base system: nothing to install
    'file:/etc/motd': 'would-change create',
    'service:ssh-server': 'unchanged', // sshd running and enabled
    'package:tree': 'would-change create',
    'cron:tmp-cleanup': 'would-change create',
    'sysctl:net.inet.tcp.syncookies': 'unchanged',
    'hostname:web1': 'would-change update',
  });
  for (const line of exec.lines) assert.ok(READS.some((re) => re.test(line)), `a plan only reads; it ran: ${line}`);
  assert.ok(exec.lines.some((l) => /onestatus/.test(l) && l.endsWith(' sshd')), 'service ssh-server is sshd on FreeBSD');
  assert.ok(!exec.lines.some((l) => l.startsWith('pkg query') && l.includes('ssh')), 'no package is looked up for the base system');
});

const why = labUnavailable();
if (why) process.stderr.write(`\n*** LAB TESTS SKIPPED: one site on a Debian host: ${why} ***\n\n`);

describe('one site on a real Debian host', { skip: why }, () => {
  let lab: Lab;
  let host: LabHost;
  let site: string;
  before(async () => {
    lab = await startLab(1, { repo: true });
    host = lab.hosts[0]!;
    site = mkdtempSync(join(tmpdir(), 'cairn-one-site-'));
    cpSync(SITE, site, { recursive: true });
    const settings = Object.entries(host.target).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(', ');
    writeFileSync(join(site, 'inventory.yaml'), `targets:\n  web1: { ${settings}, roles: [base] }\n`);
  });
  after(() => lab?.stop());

  const run = async (mode: 'plan' | 'apply', expect = 0) => {
    const r = await runCli([mode, '--site', site, '--json']);
    assert.equal(r.status, expect, `${r.stderr}\n${r.stdout}`);
    return (JSON.parse(r.stdout) as Report).targets[0]!;
  };

  test('plan, apply, then a second apply with 0 changes; the host is as the site says', async () => {
    const planned = await run('plan');
    assert.equal(planned.counts.failed, 0);
    assert.deepEqual(await host.sh('getent passwd deploy'), { code: 2, stdout: '', stderr: '' }, 'a plan changed nothing');

    const first = await run('apply');
    assert.deepEqual(statusOf(first.nodes), {
      'group:deploy': 'changed create',
      'user:deploy': 'changed create',
      [`authorized_key:deploy#${KEY}`]: 'changed create',
      'package:ssh-server': 'unchanged', // openssh-server is in the lab's root
      'file:/etc/motd': 'changed update', // Debian ships one
      'service:ssh-server': 'unchanged', // ssh runs and is enabled there
      'package:tree': 'changed create',
      'cron:tmp-cleanup': 'changed create',
      'sysctl:net.ipv4.tcp_syncookies': 'changed update', // already 1, but not persisted
      'hostname:web1': 'changed update',
    });
    const second = await run('apply');
    assert.deepEqual(second.counts, { changed: 0, unchanged: 10, failed: 0, skipped: 0 });

    const check = await host.sh([
      'getent passwd deploy', 'cat /home/deploy/.ssh/authorized_keys', 'cat /etc/motd', "dpkg-query -W -f='${Status}\\n' tree",
      'systemctl is-active ssh', 'crontab -l -u root | grep -A1 "cairn: tmp-cleanup"', 'sysctl -n net.ipv4.tcp_syncookies',
      'grep syncookies /etc/sysctl.d/99-cairn.conf', 'hostname', 'cat /etc/hostname',
    ].join('; '));
    assert.equal(check.stdout, [
      'deploy:x:2101:2101:Deploy user:/home/deploy:/bin/bash', `${KEY} deploy@cairn-test`, 'managed by cairn on debian 12',
      'install ok installed', 'active', '# cairn: tmp-cleanup', '30 3 * * * find /tmp -type f -mtime +7 -delete', '1',
      'net.ipv4.tcp_syncookies = 1', 'web1', 'web1', '',
    ].join('\n'));
  });
});
