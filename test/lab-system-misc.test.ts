/**
 * The cron, hostname and sysctl types for real: a Debian bookworm lab host (systemd as PID 1,
 * Debian's cron, procps, hostnamectl), converged by the `cairn` command over SSH, and checked
 * from inside the host with the tools themselves (`crontab -l -u`, `hostname`, `sysctl -n`).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NodeResult } from '../src/engine/engine.ts';
import { labUnavailable, startLab, type Lab, type LabHost, applyParts } from './helpers/lab.ts';

const why = labUnavailable();
if (why) {
  test(`LAB TESTS SKIPPED: cron, hostname and sysctl on a lab host: ${why}`, { skip: why }, () => {});
  process.stderr.write(`\n*** LAB TESTS SKIPPED: ${why} ***\n\n`);
} else {
  let lab: Lab;
  let host: LabHost;

  const sh = (command: string) => host.must(command);

  before(async () => {
    lab = await startLab(1);
    host = lab.hosts[0]!;
    // The user type is not under test here: the second crontab's owner is made by hand.
    await sh('useradd --create-home bob');
    // A root crontab Cairn did not write, which must survive every run.
    await sh(`printf 'MAILTO=""\\n17 4 * * * /usr/bin/unmanaged-job\\n' | crontab -u root -`);
  });
  after(() => lab?.stop());

  const apply = (parts: string[], expectStatus = 0) => applyParts(host, parts, expectStatus);
  const statuses = (nodes: NodeResult[]) => nodes.map((n) => `${n.status} ${n.ref}`);

  test('cron: entries for root and another user, unmanaged lines kept; a new schedule is one change; removed', async () => {
    const entries = (hour: number) => [
      '  - cron: backup',
      '    command: /usr/local/bin/backup --quiet',
      '    minute: 30',
      `    hour: ${hour}`,
      '  - cron: report',
      '    user: bob',
      '    command: /usr/local/bin/report > /dev/null 2>&1',
      '    special: daily',
    ];
    assert.deepEqual(statuses(await apply(entries(2))), ['changed cron:backup', 'changed cron:report']);
    assert.equal(await sh('crontab -l -u root'),
      'MAILTO=""\n17 4 * * * /usr/bin/unmanaged-job\n# cairn: backup\n30 2 * * * /usr/local/bin/backup --quiet\n');
    assert.equal(await sh('crontab -l -u bob'), '# cairn: report\n@daily /usr/local/bin/report > /dev/null 2>&1\n');
    // cron itself accepted both files (it logs a syntax error otherwise, and crontab refuses them)
    assert.equal(await sh('stat -c %U /var/spool/cron/crontabs/bob'), 'bob\n');

    assert.deepEqual(statuses(await apply(entries(2))), ['unchanged cron:backup', 'unchanged cron:report']);

    assert.deepEqual(statuses(await apply(entries(4))), ['changed cron:backup', 'unchanged cron:report']);
    assert.equal(await sh('crontab -l -u root'),
      'MAILTO=""\n17 4 * * * /usr/bin/unmanaged-job\n# cairn: backup\n30 4 * * * /usr/local/bin/backup --quiet\n');
    assert.deepEqual(statuses(await apply(entries(4))), ['unchanged cron:backup', 'unchanged cron:report']);

    const gone = ['  - cron: backup', '    ensure: absent', '  - cron: report', '    user: bob', '    ensure: absent'];
    assert.deepEqual(statuses(await apply(gone)), ['changed cron:backup', 'changed cron:report']);
    assert.equal(await sh('crontab -l -u root'), 'MAILTO=""\n17 4 * * * /usr/bin/unmanaged-job\n');
    assert.equal(await sh('crontab -l -u bob'), '');
    assert.deepEqual(statuses(await apply(gone)), ['unchanged cron:backup', 'unchanged cron:report']);
  });

  test('hostname: hostnamectl sets the running and the persisted name; a second run changes nothing', async () => {
    assert.deepEqual(statuses(await apply(['  - hostname: cairn-lab-web1'])), ['changed hostname:cairn-lab-web1']);
    assert.equal(await sh('hostname'), 'cairn-lab-web1\n');
    assert.equal(await sh('cat /etc/hostname'), 'cairn-lab-web1\n');
    assert.match(await sh('hostnamectl status'), /Static hostname: cairn-lab-web1/);
    assert.deepEqual(statuses(await apply(['  - hostname: cairn-lab-web1'])), ['unchanged hostname:cairn-lab-web1']);

    // Only the persisted half is off: still a change.
    await sh('echo somethingelse > /etc/hostname');
    assert.deepEqual(statuses(await apply(['  - hostname: cairn-lab-web1'])), ['changed hostname:cairn-lab-web1']);
    assert.equal(await sh('cat /etc/hostname'), 'cairn-lab-web1\n');
  });

  test('sysctl: set and persisted in 99-cairn.conf; a second run changes nothing; set but not persisted is a change', async () => {
    const parts = [
      // (not net.ipv4.ip_forward: writing it needs CAP_NET_ADMIN, which the nspawn guest lacks)
      '  - sysctl: net.ipv4.tcp_keepalive_time',
      '    value: 600',
      '  - sysctl: net.ipv4.tcp_syncookies',
      '    value: 0',
      '  - sysctl: net.ipv4.ip_local_port_range',
      '    value: "20000 60999"',
    ];
    assert.deepEqual(statuses(await apply(parts)), [
      'changed sysctl:net.ipv4.tcp_keepalive_time', 'changed sysctl:net.ipv4.tcp_syncookies', 'changed sysctl:net.ipv4.ip_local_port_range',
    ]);
    assert.equal(await sh('sysctl -n net.ipv4.tcp_keepalive_time net.ipv4.tcp_syncookies net.ipv4.ip_local_port_range'), '600\n0\n20000\t60999\n');
    const conf = await sh('cat /etc/sysctl.d/99-cairn.conf');
    assert.match(conf, /^# Kernel parameters set by Cairn/);
    assert.ok(conf.endsWith('net.ipv4.tcp_keepalive_time = 600\nnet.ipv4.tcp_syncookies = 0\nnet.ipv4.ip_local_port_range = 20000 60999\n'), conf);
    // The file is one systemd-sysctl would apply at boot.
    assert.equal((await host.sh('sysctl -p /etc/sysctl.d/99-cairn.conf')).code, 0);

    assert.deepEqual(statuses(await apply(parts)), [
      'unchanged sysctl:net.ipv4.tcp_keepalive_time', 'unchanged sysctl:net.ipv4.tcp_syncookies', 'unchanged sysctl:net.ipv4.ip_local_port_range',
    ]);

    await sh("sed -i '/tcp_syncookies/d' /etc/sysctl.d/99-cairn.conf");
    assert.deepEqual(statuses(await apply(parts)), [
      'unchanged sysctl:net.ipv4.tcp_keepalive_time', 'changed sysctl:net.ipv4.tcp_syncookies', 'unchanged sysctl:net.ipv4.ip_local_port_range',
    ]);
    assert.match(await sh('cat /etc/sysctl.d/99-cairn.conf'), /^net\.ipv4\.tcp_syncookies = 0$/m);
  });

  test("sysctl: an unknown name fails with sysctl's own error while an unrelated node converges (exit 1)", async () => {
    const nodes = await apply([
      '  - sysctl: net.ipv4.no_such_key',
      '    value: 1',
      '  - sysctl: net.ipv4.tcp_fin_timeout',
      '    value: 30',
      '    persist: false',
    ], 1);
    assert.deepEqual(statuses(nodes), ['failed sysctl:net.ipv4.no_such_key', 'changed sysctl:net.ipv4.tcp_fin_timeout']);
    assert.equal(nodes[0]!.error, 'sysctl: cannot stat /proc/sys/net/ipv4/no_such_key: No such file or directory');
    assert.equal(await sh('sysctl -n net.ipv4.tcp_fin_timeout'), '30\n');
    // The file may not exist when this test runs alone: neither node persists anything.
    assert.doesNotMatch(await sh('cat /etc/sysctl.d/99-cairn.conf 2>/dev/null; true'), /tcp_fin_timeout|no_such_key/);
  });
}
