/**
 * `cairn export` of a system site (DESIGN §11) run on a fresh lab host (Debian bookworm, systemd,
 * the local apt repository) with the host's own /bin/sh (dash) and no Cairn on it: packages, a
 * service, a group and a user, a key, a cron entry, a sysctl and the hostname converge; a second
 * run changes nothing; and `cairn plan` over SSH then finds every node in sync, so the script and
 * Cairn's own providers agree on what "converged" means.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Report } from './helpers/converge.ts';
import { makeSite, runCli } from './helpers/cli.ts';
import { labUnavailable, startLab, type Lab, type LabHost, targetYaml } from './helpers/lab.ts';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBp6T3vq4pGxwWgNn5dJz8P1vE9gQm3hKcQeUo7a2b5X deploy@laptop';

const why = labUnavailable();
if (why) {
  test(`LAB TESTS SKIPPED: cairn export on a lab host: ${why}`, { skip: why }, () => {});
  process.stderr.write(`\n*** LAB TESTS SKIPPED: ${why} ***\n\n`);
} else {
  let lab: Lab;
  let host: LabHost;
  let site: string;
  before(async () => {
    lab = await startLab(1, { repo: true });
    host = lab.hosts[0]!;
    site = makeSite({
      'cairn.yaml': `${targetYaml(host)}    run: [system]\n`,
      'states/system.yaml': [
        'system:',
        '  - package: tree',
        '  - package: cairn-svc',
        '  - service: cairn-svc',
        '    ensure: running',
        '    enable: true',
        '  - group: ops',
        '    gid: 4100',
        '  - user: deploy',
        '    uid: 4100',
        '    gid: ops',
        '    shell: /bin/sh',
        '    home: /home/deploy',
        `  - authorized_key: ${KEY}`,
        '    user: deploy',
        '  - cron: rotate',
        '    user: deploy',
        '    command: /bin/true',
        '    minute: "5"',
        '  - sysctl: net.ipv4.tcp_fin_timeout',
        '    value: 33',
        '  - hostname: exported1',
        '',
      ].join('\n'),
    });
  });
  after(() => lab?.stop());

  /** Copies the script onto the host (no Cairn there) and runs it with the host's /bin/sh. */
  const runScript = async (script: string, ...args: string[]) => {
    const put = await host.sh(`printf %s ${Buffer.from(script).toString('base64')} | base64 -d > /root/converge.sh`);
    assert.equal(put.code, 0, put.stderr);
    return host.sh(`sh /root/converge.sh ${args.join(' ')}`);
  };

  test('export: a system site exported for a lab host converges it with dash, a second run changes nothing, and cairn plan agrees', async () => {
    const exported = await runCli(['export', '--site', site, '-t', host.name, '--format', 'sh']);
    assert.equal(exported.status, 0, exported.stderr);
    const script = exported.stdout;
    assert.match(script, /^#!\/bin\/sh\n/);

    const first = await runScript(script);
    assert.equal(first.code, 0, `${first.stdout}\n${first.stderr}`);
    assert.match(first.stdout, new RegExp(`^${host.name}: 9 changed, 0 unchanged, 0 failed, 0 skipped$`, 'm'), first.stdout);

    const facts = await host.sh([
      "dpkg-query -W -f '${Status}\\n' tree",
      'systemctl is-active cairn-svc', 'systemctl is-enabled cairn-svc',
      'getent group ops', 'getent passwd deploy',
      'cat /home/deploy/.ssh/authorized_keys',
      'crontab -l -u deploy',
      'sysctl -n net.ipv4.tcp_fin_timeout',
      'cat /etc/hostname',
    ].join('; '));
    assert.equal(facts.code, 0, facts.stderr);
    const out = facts.stdout;
    assert.match(out, /^install ok installed$/m);
    assert.match(out, /^active\nenabled$/m);
    assert.match(out, /^ops:x:4100:$/m);
    assert.match(out, /^deploy:x:4100:4100::\/home\/deploy:\/bin\/sh$/m);
    assert.ok(out.includes(KEY), out);
    assert.match(out, /^# cairn: rotate\n5 \* \* \* \* \/bin\/true$/m);
    assert.match(out, /^33$/m);
    assert.match(out, /^exported1$/m);

    const again = await runScript(script);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`^${host.name}: 0 changed, 9 unchanged, 0 failed, 0 skipped$`, 'm'), again.stdout);

    // Cairn's own providers, over SSH, find what the script left converged.
    const plan = await runCli(['plan', '--site', site, '--json']);
    assert.equal(plan.status, 0, plan.stderr);
    const nodes = (JSON.parse(plan.stdout) as Report).targets[0]!.nodes;
    assert.deepEqual(nodes.filter((n) => n.status !== 'unchanged').map((n) => `${n.status} ${n.ref}`), []);
    assert.equal(nodes.length, 9);
  });
}
