/**
 * The `apt` package provider on real Debian hosts (the test lab, test/helpers/lab.ts), converged by
 * the `cairn` command over SSH, installing from the lab's local apt repository.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { TargetReport } from '../src/engine/engine.ts';
import type { Report } from './helpers/converge.ts';
import { makeSite, runCli } from './helpers/cli.ts';
import { labUnavailable, startLab, type Lab, type LabHost, targetYaml } from './helpers/lab.ts';

const why = labUnavailable();
if (why) {
  test(`LAB TESTS SKIPPED: package (apt) on lab hosts: ${why}`, { skip: why }, () => {});
  process.stderr.write(`\n*** LAB TESTS SKIPPED: ${why} ***\n\n`);
} else {
  let lab: Lab;
  let host: LabHost;
  before(async () => {
    lab = await startLab(1, { repo: true });
    host = lab.hosts[0]!;
  });
  after(() => lab?.stop());

  /** `cairn apply|plan --json` on a one-target site whose state `s` has `parts` (YAML list items). */
  const converge = async (parts: string, mode: 'apply' | 'plan' = 'apply') => {
    const site = makeSite({ 'cairn.yaml': `${targetYaml(host)}    run: [s]\nstates:\n  s:\n${parts}` });
    const r = await runCli([mode, '--site', site, '--json']);
    let target: TargetReport;
    try {
      target = (JSON.parse(r.stdout) as Report).targets[0]!;
    } catch {
      assert.fail(`cairn ${mode}: no JSON report (exit ${r.status}); stderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
    }
    const nodes = target.nodes.map((n) => `${n.status} ${n.ref}`);
    return { status: r.status, target, nodes, stderr: r.stderr };
  };
  const installed = async (name: string) => (await host.sh(`dpkg-query -W -f='\${Status}' ${name} 2>/dev/null`)).stdout === 'install ok installed';

  test('apt: install hello from the local repository, then nothing to do; latest and its exact version are in sync', async () => {
    assert.ok(lab.packages.includes('hello'), lab.packages.join(' '));
    assert.equal(await installed('hello'), false);
    const first = await converge('    - package: hello\n');
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(first.nodes, ['changed package:hello']);
    assert.ok(await installed('hello'));
    assert.match((await host.sh('hello')).stdout, /Hello, world!/);

    const again = await converge('    - package: hello\n');
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(again.nodes, ['unchanged package:hello']);
    assert.equal(again.target.counts.changed, 0);

    // The local repository has one version of hello: installed == candidate, so latest is in sync.
    const version = (await host.sh("dpkg-query -W -f='${Version}' hello")).stdout;
    const latest = await converge(`    - package: hello\n      ensure: latest\n    - package: tree\n      ensure: absent\n`);
    assert.deepEqual(latest.nodes, ['unchanged package:hello', 'unchanged package:tree']);
    // (hold: false: the version alone is compared; holds are test/lab-package-repository.test.ts's)
    const pinned = await converge(`    - package: hello\n      version: "${version}"\n      hold: false\n`);
    assert.deepEqual(pinned.nodes, ['unchanged package:hello']);
  });

  test('apt: remove hello, then nothing to do', async () => {
    if (!(await installed('hello'))) assert.equal((await host.sh('apt-get install -y -q hello')).code, 0);
    const first = await converge('    - package: hello\n      ensure: absent\n');
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(first.nodes, ['changed package:hello']);
    assert.equal(await installed('hello'), false);
    const again = await converge('    - package: hello\n      ensure: absent\n');
    assert.deepEqual(again.nodes, ['unchanged package:hello']);
    assert.equal(again.target.counts.changed, 0);
  });

  test('apt: reading many packages costs what reading one does (one dpkg-query for all)', async () => {
    // A converged host: every package below is installed (the base system's) and declared present.
    const many = ['bash', 'coreutils', 'sudo', 'cron', 'procps', 'openssh-server', 'dbus', 'systemd'];
    for (const name of many) assert.ok(await installed(name), `${name} is part of the lab's image`);
    const one = await converge('    - package: bash\n', 'plan');
    const all = await converge(many.map((n) => `    - package: ${n}\n`).join(''), 'plan');
    assert.deepEqual(all.nodes, many.map((n) => `unchanged package:${n}`));
    assert.ok(one.target.round_trips !== undefined && all.target.round_trips !== undefined, 'the SSH executor reports round trips');
    assert.equal(all.target.round_trips, one.target.round_trips, `${many.length} packages: ${all.target.round_trips} round trips; 1 package: ${one.target.round_trips}`);

    // The same for `latest`: one apt-cache policy for all of them, on top of the one dpkg-query.
    const oneLatest = await converge('    - package: bash\n      ensure: latest\n', 'plan');
    const allLatest = await converge(many.map((n) => `    - package: ${n}\n      ensure: latest\n`).join(''), 'plan');
    assert.deepEqual(allLatest.nodes, many.map((n) => `unchanged package:${n}`));
    assert.equal(allLatest.target.round_trips, oneLatest.target.round_trips);
    assert.equal(oneLatest.target.round_trips, one.target.round_trips! + 1, 'latest costs one more query (apt-cache policy)');
  });

  test('apt: an unknown package fails with apt\'s own error; an unrelated file in the same run still converges', async () => {
    await host.sh('rm -f /etc/cairn-package-test');
    const r = await converge('    - package: cairn-no-such-package\n    - file: /etc/cairn-package-test\n      content: converged\n');
    assert.equal(r.status, 1, r.stderr);
    assert.deepEqual(r.nodes, ['failed package:cairn-no-such-package', 'changed file:/etc/cairn-package-test']);
    const failed = r.target.nodes.find((n) => n.ref === 'package:cairn-no-such-package')!;
    assert.match(failed.error ?? '', /E: Unable to locate package cairn-no-such-package/);
    assert.equal((await host.sh('cat /etc/cairn-package-test')).stdout, 'converged');
  });
}
