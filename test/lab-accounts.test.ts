/**
 * `user`, `group` and `authorized_key` on a real Debian host of the lab (shadow-utils' useradd,
 * usermod, userdel, groupadd, groupdel; OpenSSH's sshd), converged by the `cairn` command over
 * SSH: create, log in with the managed key as the new user, modify, remove, each followed by a
 * run that changes nothing; and a user whose primary group is missing fails with useradd's own
 * error while an unrelated node converges.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { NodeResult, TargetReport } from '../src/engine/engine.ts';
import type { Report } from './helpers/converge.ts';
import { makeSite, runCli } from './helpers/cli.ts';
import { labUnavailable, startLab, type Lab, type LabHost, targetYaml } from './helpers/lab.ts';

const why = labUnavailable();
if (why) {
  test(`LAB TESTS SKIPPED: accounts on a lab host: ${why}`, { skip: why }, () => {});
  process.stderr.write(`\n*** LAB TESTS SKIPPED: ${why} ***\n\n`);
} else {
  let lab: Lab;
  let host: LabHost;
  let keyFile: string;
  let publicKey: string;

  before(async () => {
    keyFile = join(mkdtempSync(join(tmpdir(), 'cairn-accounts-key-')), 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'deploy@cairn-test', '-f', keyFile]);
    publicKey = readFileSync(`${keyFile}.pub`, 'utf8').trim();
    lab = await startLab(1);
    host = lab.hosts[0]!;
  });
  after(() => lab?.stop());

  /** A site whose one target is the lab host, running the parts given (YAML list items). */
  const siteWith = (parts: string) => {
    return makeSite({ 'cairn.yaml': `${targetYaml(host, 'lab')}    run: [accounts]\nstates:\n  accounts:\n${parts}` });
  };

  const apply = async (site: string, expectStatus = 0): Promise<TargetReport> => {
    const r = await runCli(['apply', '--site', site, '--json']);
    assert.equal(r.status, expectStatus, `cairn apply exit code; stderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
    return (JSON.parse(r.stdout) as Report).targets[0]!;
  };

  const statuses = (nodes: NodeResult[]) => nodes.map((n) => `${n.status} ${n.ref.replace(/#.*/, '#…')}`);

  const sh = async (command: string) => {
    const r = await host.sh(command);
    return { code: r.code, out: r.stdout.trim() };
  };

  /** Logs in over SSH as `user` with the test's key, as anyone would, and runs `id -un`. */
  const login = (user: string) => spawnSync('ssh', [
    '-i', keyFile, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=10',
    `${user}@${host.address}`, 'id -un',
  ], { encoding: 'utf8', timeout: 30_000 });

  const created = () => siteWith([
    '    - group: ops',
    '      gid: 2345',
    '    - user: deploy',
    '      uid: 2345',
    '      gid: ops',
    '      groups: [sudo, users]',
    '      shell: /bin/bash',
    '      comment: Deploy User',
    '      home: /home/deploy',
    '    - file: /home/deploy/notes.txt',
    '      owner: deploy',
    '      group: ops',
    '      mode: "0640"',
    '      content: "owned by a user made in this run\\n"',
    `    - authorized_key: ${publicKey}`,
    '      user: deploy',
    '      require: user:deploy',
    '',
  ].join('\n'));

  test('create a group, a user, a file it owns and its key; log in with the key; then nothing to do', async () => {
    const site = created();
    const plan = await runCli(['plan', '--site', site, '--json']);
    assert.equal(plan.status, 0, plan.stderr);
    const planned = (JSON.parse(plan.stdout) as Report).targets[0]!.nodes;
    assert.deepEqual(planned.map((n) => n.status), ['would-change', 'would-change', 'would-change', 'would-change']);
    assert.equal((await sh('getent passwd deploy')).code, 2, 'a plan changes nothing');

    const first = await apply(site);
    assert.deepEqual(statuses(first.nodes), [
      'changed group:ops', 'changed user:deploy', 'changed file:/home/deploy/notes.txt', 'changed authorized_key:deploy#…',
    ]);
    assert.deepEqual(await sh('getent passwd deploy'), { code: 0, out: 'deploy:x:2345:2345:Deploy User:/home/deploy:/bin/bash' });
    assert.deepEqual(await sh('id deploy'), { code: 0, out: 'uid=2345(deploy) gid=2345(ops) groups=2345(ops),27(sudo),100(users)' });
    assert.equal((await sh('stat -c "%a %U %G" /home/deploy')).out.split(' ').slice(1).join(' '), 'deploy ops', 'useradd -m made the home');
    assert.equal((await sh('stat -c "%a %U %G" /home/deploy/notes.txt')).out, '640 deploy ops');
    assert.equal((await sh('stat -c "%a %U %G" /home/deploy/.ssh')).out, '700 deploy ops');
    assert.equal((await sh('stat -c "%a %U %G" /home/deploy/.ssh/authorized_keys')).out, '600 deploy ops');
    assert.equal((await host.sh('cat /home/deploy/.ssh/authorized_keys')).stdout, `${publicKey}\n`);

    const ssh = login('deploy');
    assert.equal(ssh.status, 0, `ssh as deploy with the managed key: ${ssh.stderr}`);
    assert.equal(ssh.stdout.trim(), 'deploy');

    const again = await apply(site);
    assert.equal(again.counts.changed, 0, statuses(again.nodes).join('\n'));
    assert.equal(again.counts.failed, 0);
  });

  test('modify shell, groups and comment: changed, then nothing to do; other lines of the key file are kept', async () => {
    await sh('echo "# a line someone else wrote" >> /home/deploy/.ssh/authorized_keys');
    const site = siteWith([
      '    - group: ops',
      '      gid: 2345',
      '    - user: deploy',
      '      uid: 2345',
      '      gid: 2345',
      '      groups: [users]',
      '      shell: /bin/sh',
      '      comment: Deployer',
      `    - authorized_key: ${publicKey.split(' ').slice(0, 2).join(' ')} new comment`,
      '      user: deploy',
      '      options: no-port-forwarding',
      '',
    ].join('\n'));
    const first = await apply(site);
    assert.deepEqual(statuses(first.nodes), ['unchanged group:ops', 'changed user:deploy', 'changed authorized_key:deploy#…']);
    assert.deepEqual(await sh('getent passwd deploy'), { code: 0, out: 'deploy:x:2345:2345:Deployer:/home/deploy:/bin/sh' });
    assert.deepEqual(await sh('id deploy'), { code: 0, out: 'uid=2345(deploy) gid=2345(ops) groups=2345(ops),100(users)' });
    const [type, body] = publicKey.split(' ');
    assert.equal((await host.sh('cat /home/deploy/.ssh/authorized_keys')).stdout,
      `no-port-forwarding ${type} ${body} new comment\n# a line someone else wrote\n`);
    assert.equal((await sh('stat -c "%a %U %G" /home/deploy/.ssh/authorized_keys')).out, '600 deploy ops');
    const ssh = login('deploy');
    assert.equal(ssh.status, 0, `ssh as deploy after the change: ${ssh.stderr}`);

    const again = await apply(site);
    assert.equal(again.counts.changed, 0, statuses(again.nodes).join('\n'));
  });

  test('remove the key, the user and the group: changed, then nothing to do; the home is kept', async () => {
    const site = siteWith([
      `    - authorized_key: ${publicKey}`,
      '      user: deploy',
      '      ensure: absent',
      '    - user: deploy',
      '      ensure: absent',
      '    - group: ops',
      '      ensure: absent',
      '',
    ].join('\n'));
    const first = await apply(site);
    assert.deepEqual(statuses(first.nodes), ['changed authorized_key:deploy#…', 'changed user:deploy', 'changed group:ops']);
    assert.equal((await host.sh('cat /home/deploy/.ssh/authorized_keys')).stdout, '# a line someone else wrote\n');
    assert.equal((await sh('getent passwd deploy')).code, 2);
    assert.equal((await sh('getent group ops')).code, 2);
    assert.equal((await sh('test -d /home/deploy')).code, 0, 'userdel without remove_home keeps the home');

    const again = await apply(site);
    assert.equal(again.counts.changed, 0, statuses(again.nodes).join('\n'));
    assert.equal(again.counts.failed, 0);
  });

  test('a user whose gid names a missing group fails with useradd\'s error; an unrelated node converges (exit 1)', async () => {
    const site = siteWith([
      '    - user: broken',
      '      gid: nosuchgroup',
      '    - file: /etc/cairn-accounts-unrelated',
      '      content: "converged\\n"',
      '',
    ].join('\n'));
    const report = await apply(site, 1);
    const [user, file] = report.nodes;
    assert.equal(user!.status, 'failed');
    assert.match(user!.error ?? '', /useradd: group 'nosuchgroup' does not exist/);
    assert.equal(file!.status, 'changed');
    assert.equal((await host.sh('cat /etc/cairn-accounts-unrelated')).stdout, 'converged\n');
    assert.equal((await sh('getent passwd broken')).code, 2);
  });
}
