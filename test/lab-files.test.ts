/**
 * On a real Debian host of the lab, converged by the `cairn` command over SSH: a file owned by a
 * user the site declares later (implicit ordering, DESIGN §6: the plan says it waits for the
 * user, and the first run converges instead of failing with chown's "invalid user"), and a
 * sudoers file checked by the real `visudo -cf %` before it replaces the old one (a broken one is
 * refused and the old one stays, sudo still working).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NodeResult, TargetReport } from '../src/engine/engine.ts';
import type { Report } from './helpers/converge.ts';
import { makeSite, runCli } from './helpers/cli.ts';
import { labUnavailable, startLab, type Lab, type LabHost, targetYaml } from './helpers/lab.ts';

const why = labUnavailable();
if (why) {
  test(`LAB TESTS SKIPPED: files on a lab host: ${why}`, { skip: why }, () => {});
  process.stderr.write(`\n*** LAB TESTS SKIPPED: ${why} ***\n\n`);
} else {
  let lab: Lab;
  let host: LabHost;

  before(async () => {
    lab = await startLab(1);
    host = lab.hosts[0]!;
  });
  after(() => lab?.stop());

  /** A site whose one target is the lab host, running the parts given (YAML list items). */
  const siteWith = (parts: string) => {
    return makeSite({ 'cairn.yaml': `${targetYaml(host, 'lab')}    run: [s]\nstates:\n  s:\n${parts}` });
  };

  const run = async (mode: 'plan' | 'apply', site: string, expectStatus = 0): Promise<TargetReport> => {
    const r = await runCli([mode, '--site', site, '--json']);
    assert.equal(r.status, expectStatus, `cairn ${mode} exit code; stderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
    return (JSON.parse(r.stdout) as Report).targets[0]!;
  };

  const statuses = (nodes: NodeResult[]) => nodes.map((n) => `${n.status} ${n.ref}${n.reason ? ` [${n.reason}]` : ''}`);

  const sh = async (command: string) => {
    const r = await host.sh(command);
    return { code: r.code, out: r.stdout.trim(), err: r.stderr.trim() };
  };

  test('lab: a file owned by a user declared after it: the plan waits for the user, the first run converges', async () => {
    const site = siteWith([
      '    - file: /srv/app/notes.txt',
      '      owner: appuser',
      '      group: appgroup',
      '      mode: "0640"',
      '      content: "owned by a user made later in the site\\n"',
      '    - directory: /srv/app',
      '      owner: appuser',
      '    - user: appuser',
      '      gid: appgroup',
      '      create_home: false',
      '    - group: appgroup',
    ].map((l) => `${l}\n`).join(''));
    const plan = await run('plan', site);
    assert.deepEqual(statuses(plan.nodes), [
      'would-change group:appgroup',
      'would-change user:appuser [after group:appgroup]',
      'would-change directory:/srv/app [after user:appuser]',
      'would-change file:/srv/app/notes.txt [after directory:/srv/app]',
    ]);
    const first = await run('apply', site);
    assert.deepEqual(statuses(first.nodes), ['changed group:appgroup', 'changed user:appuser', 'changed directory:/srv/app', 'changed file:/srv/app/notes.txt']);
    assert.equal((await sh('stat -c "%U:%G %a" /srv/app/notes.txt')).out, 'appuser:appgroup 640');
    assert.equal((await sh('stat -c "%U" /srv/app')).out, 'appuser');
    assert.deepEqual((await run('apply', site)).counts, { changed: 0, unchanged: 4, failed: 0, skipped: 0 });
  });

  test('lab: validate with the real visudo: a good sudoers file goes in, a broken one is refused and the old one stays', async () => {
    const sudoers = (content: string) => siteWith([
      '    - user: deploy',
      '      create_home: false',
      '    - file: /etc/sudoers.d/deploy',
      `      content: ${JSON.stringify(content)}`,
      '      mode: "0440"',
      '      owner: root',
      '      group: root',
      '      validate: visudo -cf %',
    ].map((l) => `${l}\n`).join(''));
    const good = 'deploy ALL=(ALL) NOPASSWD: /usr/bin/id\n';
    const first = await run('apply', sudoers(good));
    assert.deepEqual(statuses(first.nodes), ['changed user:deploy', 'changed file:/etc/sudoers.d/deploy']);
    assert.equal((await sh('cat /etc/sudoers.d/deploy')).out, good.trim());
    assert.equal((await sh('su -s /bin/sh deploy -c "sudo -n /usr/bin/id -un"')).out, 'root');

    const broken = await run('apply', sudoers('deploy ALL=(ALL NOPASSWD /usr/bin/id\n'), 1);
    assert.deepEqual(statuses(broken.nodes), ['unchanged user:deploy', 'failed file:/etc/sudoers.d/deploy']);
    const error = broken.nodes[1]!.error!;
    assert.match(error, /^validate refused the new content \(\/etc\/sudoers\.d\/deploy left as it was\): visudo -cf %\nvalidate exited with 1\n/);
    assert.match(error, /syntax error/);
    // The old file, untouched; no temp file left beside it; sudo as a whole still works.
    assert.equal((await sh('cat /etc/sudoers.d/deploy')).out, good.trim());
    assert.equal((await sh('ls -A /etc/sudoers.d | grep -c cairn-tmp')).out, '0');
    assert.equal((await sh('visudo -c >/dev/null && echo parsed')).out, 'parsed');
    assert.equal((await sh('su -s /bin/sh deploy -c "sudo -n /usr/bin/id -un"')).out, 'root');
  });
}
