/**
 * The reboot type for real: a Debian bookworm lab host rebooted by `cairn apply` over SSH. The
 * guest's `systemctl reboot` ends its systemd-nspawn with exit code 133 and test/lab/lab.sh
 * boots it again (same overlay, network namespace and host key): a real reboot, with a new boot
 * id and a new sshd. The run waits for it, reconnects with the same host-key verification and goes
 * on with the nodes after the reboot.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NodeResult } from '../src/engine/engine.ts';
import type { Report } from './helpers/converge.ts';
import { makeSite, runCli } from './helpers/cli.ts';
import { labUnavailable, startLab, type Lab, type LabHost, targetYaml } from './helpers/lab.ts';

const why = labUnavailable();
if (why) {
  test(`LAB TESTS SKIPPED: reboot on a lab host: ${why}`, { skip: why }, () => {});
  process.stderr.write(`\n*** LAB TESTS SKIPPED: ${why} ***\n\n`);
} else {
  let lab: Lab;
  let host: LabHost;

  const sh = (command: string) => host.must(command);
  const bootId = async () => (await sh('cat /proc/sys/kernel/random/boot_id')).trim();

  before(async () => {
    lab = await startLab(1);
    host = lab.hosts[0]!;
  });
  after(() => lab?.stop());

  /** `cairn apply --json` of a site whose one target is the lab host: `cairn.yaml` runs `run`, `states` is states/s.yaml. */
  const apply = async (run: string[], states: string, expectStatus = 0): Promise<{ status: string; error?: string; nodes: NodeResult[] }> => {
    const site = makeSite({
      'cairn.yaml': `${targetYaml(host)}    run: [${run.join(', ')}]\n`,
      'states/s.yaml': states,
    });
    const r = await runCli(['apply', '--site', site, '--json']);
    assert.equal(r.status, expectStatus, `cairn apply exit code; stderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
    const target = (JSON.parse(r.stdout) as Report).targets[0]!;
    return { status: target.status, ...(target.error ? { error: target.error } : {}), nodes: target.nodes };
  };
  const statuses = (nodes: NodeResult[]) => nodes.map((n) => `${n.status} ${n.ref}${n.error ? `: ${n.error}` : ''}`);

  // A kernel-ish config file notifies a reboot handler; a later state writes into /run, a tmpfs a
  // reboot empties: finding the file there proves it was written after the reboot.
  const handlerSite = (version: number) => `
kernel:
  - file: /etc/cairn-kernel.conf
    content: "version ${version}\\n"
    notify: rebooter
rebooter:
  lazy: true
  parts:
    - reboot: after-kernel
      timeout: 120
later:
  - file: /run/cairn-after-reboot
    content: "written after the reboot\\n"
`;

  test('reboot: a change notifies the reboot handler; the host reboots (new boot id), the run reconnects and applies the later node', async () => {
    const bootBefore = await bootId();
    const run = await apply(['kernel', 'later'], handlerSite(1));
    assert.equal(run.status, 'ok');
    assert.deepEqual(statuses(run.nodes), ['changed file:/etc/cairn-kernel.conf', 'changed reboot:after-kernel', 'changed file:/run/cairn-after-reboot']);
    const rebooted = run.nodes[1]!;
    // A reboot part of a triggered lazy state runs as its turn's work (an exec in a handler does too).
    assert.equal(rebooted.action, 'run');
    assert.equal(rebooted.reason, 'notified by file:/etc/cairn-kernel.conf');
    assert.notEqual(await bootId(), bootBefore);
    assert.equal(await sh('cat /run/cairn-after-reboot'), 'written after the reboot\n');
    // The run lock was taken again after the reboot and let go at the end.
    assert.equal((await host.sh('test -e /var/lib/cairn/lock.d')).code, 1);
    // Delivered: nothing pending for the next run.
    assert.deepEqual((JSON.parse(await sh('cat /var/lib/cairn/pending.json')) as { pending: unknown[] }).pending, []);

    const bootAfter = await bootId();
    const again = await apply(['kernel', 'later'], handlerSite(1));
    assert.deepEqual(statuses(again.nodes), ['unchanged file:/etc/cairn-kernel.conf', 'unchanged file:/run/cairn-after-reboot']);
    assert.equal(await bootId(), bootAfter);
  });

  test('reboot: when: required reboots at its turn only while /run/reboot-required exists', async () => {
    const states = 'kernel:\n  - reboot: if-needed\n    when: required\n    timeout: 120\n  - file: /run/cairn-after-required\n    content: "x\\n"\n';
    const quiet = await bootId();
    assert.deepEqual(statuses((await apply(['kernel'], states)).nodes), ['unchanged reboot:if-needed', 'changed file:/run/cairn-after-required']);
    assert.equal(await bootId(), quiet);

    await sh('touch /run/reboot-required');
    const run = await apply(['kernel'], states);
    assert.deepEqual(statuses(run.nodes), ['changed reboot:if-needed', 'changed file:/run/cairn-after-required']);
    assert.equal(run.nodes[0]!.action, 'run');
    assert.notEqual(await bootId(), quiet);
    assert.equal((await host.sh('test -e /run/reboot-required')).code, 1);
    assert.deepEqual(statuses((await apply(['kernel'], states)).nodes), ['unchanged reboot:if-needed', 'unchanged file:/run/cairn-after-required']);
  });

  // Last: the host stays down. Its "reboot" command powers it off, so it cannot come back.
  test('reboot: a host that does not come back within timeout fails the node; the nodes after it on that target do not run (exit 3)', async () => {
    const states = `
kernel:
  - file: /etc/cairn-kernel.conf
    content: "version 99\\n"
    notify: reboot:never-back
  - reboot: never-back
    command: [systemctl, poweroff]
    timeout: 2
  - file: /etc/cairn-not-reached
    content: "x\\n"
`;
    const run = await apply(['kernel'], states, 3);
    assert.equal(run.status, 'unreachable');
    assert.deepEqual(run.nodes.map((n) => `${n.status} ${n.ref}`), ['changed file:/etc/cairn-kernel.conf', 'failed reboot:never-back']);
    assert.match(run.nodes[1]!.error!, /^the target did not come back within 2 s \(timeout\) after systemctl poweroff: /);
    assert.match(run.error!, /did not come back within 2 s/);
    // Powered off for good: the lab's own way in finds no running guest.
    const r = await host.sh('true');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /not running/);
  });
}
