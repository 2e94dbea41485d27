/**
 * The reboot type away from a real host: the schema; the local executor's refusal (the machine
 * Cairn runs on cannot be waited for: nothing is rebooted, and the test's reboot command is
 * harmless anyway); and a CONTRACT TEST of the provider on FreeBSD (`shutdown -r now`, the boot
 * time from `sysctl -n kern.boottime`) through a scripted executor that stands in for one and
 * "reconnects" on request. Real reboots of a Debian lab host are in test/lab-reboot.test.ts.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { NodeResult } from '../src/engine/engine.ts';
import type { ReconnectOptions } from '../src/executors/types.ts';
import { rebootType } from '../src/resources/reboot/type.ts';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';
import type { Report } from './helpers/converge.ts';
import { FACTS, ScriptedExecutor, runScripted } from './helpers/scripted-executor.ts';

const statuses = (nodes: NodeResult[]) => nodes.map((n) => `${n.status} ${n.ref}${n.error ? `: ${n.error}` : ''}`);

describe('reboot', () => {
  test('schema: when notified by default, timeout 600 s, command an argument list', () => {
    assert.deepEqual(rebootType.schema.parse({ name: 'now' }), { name: 'now', when: 'notified', timeout: 600 });
    assert.equal(rebootType.schema.safeParse({ name: 'now', when: 'sometimes' }).success, false);
    assert.equal(rebootType.schema.safeParse({ name: 'now', timeout: 0 }).success, false);
    assert.equal(rebootType.schema.safeParse({ name: 'now', command: [] }).success, false);
  });

  test('the local executor refuses a reboot, at plan and at apply: it cannot wait for the machine it runs on', async () => {
    const dir = tempDir('cairn-reboot-local-');
    const marker = join(dir, 'marker');
    const site = makeSite({
      'cairn.yaml': `targets:\n  here:\n    executor: local\n    state_dir: ${JSON.stringify(join(dir, 'state'))}\n    run: [s]\n`,
      // A command that reboots nothing, should the refusal ever fail.
      'states/s.yaml': `s:\n  - file: ${marker}\n    content: "x\\n"\n    notify: reboot:now\n  - reboot: now\n    command: [/bin/true]\n`,
    });
    const plan = await runCli(['plan', '--site', site, '--json']);
    assert.equal(plan.status, 1, plan.stderr);
    const planned = (JSON.parse(plan.stdout) as Report).targets[0]!.nodes;
    assert.equal(planned[1]!.status, 'failed');
    assert.match(planned[1]!.error!, /^cannot reboot through the local executor: it cannot wait for its target to come back/);

    const r = await runCli(['apply', '--site', site, '--json']);
    assert.equal(r.status, 1, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as Report).targets[0]!.nodes.map((n) => `${n.status} ${n.ref}`),
      [`changed file:${marker}`, 'failed reboot:now']);
  });

  /** A FreeBSD host that "reboots": its boot time changes once the scripted connection is renewed. */
  class RebootingHost extends ScriptedExecutor {
    readonly reconnects: ReconnectOptions[] = [];
    boots: string[];
    constructor(boots: string[]) {
      // The boot time's output is the current boot's (run, below).
      super([{ when: 'shutdown -r now' }, { when: 'sysctl -n kern.boottime' }]);
      this.boots = [...boots];
    }
    override async run(argv: string[], opts = {}) {
      const r = await super.run(argv, opts);
      return argv.join(' ') === 'sysctl -n kern.boottime' ? { ...r, stdout: `${this.boots[0]}\n` } : r;
    }
    async reconnect(options: ReconnectOptions): Promise<void> {
      this.reconnects.push(options);
      this.commands.push({ argv: ['(reconnect)'] });
      if (this.boots.length > 1) this.boots.shift();
    }
  }

  const site = {
    'cairn.yaml': 'targets:\n  t1:\n    state_dir: /var/lib/cairn\n    run: [s]\n',
    'states/s.yaml': 's:\n  - file: /boot/loader.conf\n    content: "kern.maxusers=512\\n"\n    notify: reboot:after-loader\n  - reboot: after-loader\n    timeout: 300\n  - file: /etc/after\n    content: "x\\n"\n',
  };
  const BOOT1 = '{ sec = 1733472000, usec = 412345 } Fri Dec  6 08:00:00 2024';
  const BOOT2 = '{ sec = 1733475600, usec = 101010 } Fri Dec  6 09:00:00 2024';

  test('command contract: FreeBSD reboot — boot time, shutdown -r now, reconnect, a new boot time; the later node runs after it', async () => {
    const host = new RebootingHost([BOOT1, BOOT2]);
    const results = await runScripted(site, FACTS.freebsd!, host);
    assert.deepEqual(statuses(results), ['changed file:/boot/loader.conf', 'changed reboot:after-loader', 'changed file:/etc/after']);
    assert.equal(results[1]!.action, 'refresh');
    assert.deepEqual(host.lines, ['sysctl -n kern.boottime', 'shutdown -r now', '(reconnect)', 'sysctl -n kern.boottime']);
    assert.equal(host.reconnects.length, 1);
    assert.ok(host.reconnects[0]!.timeoutMs > 299_000 && host.reconnects[0]!.timeoutMs <= 300_000);
    assert.equal(host.files.get('/etc/after')?.data.toString(), 'x\n');
  });

  test('command contract: FreeBSD reboot — a connection that still reaches the old boot is tried again', async () => {
    const host = new RebootingHost([BOOT1, BOOT1, BOOT2]);
    const results = await runScripted(site, FACTS.freebsd!, host);
    assert.deepEqual(statuses(results).slice(1, 2), ['changed reboot:after-loader']);
    assert.deepEqual(host.lines, ['sysctl -n kern.boottime', 'shutdown -r now', '(reconnect)', 'sysctl -n kern.boottime', '(reconnect)', 'sysctl -n kern.boottime']);
  });

  test('command contract: FreeBSD reboot — when: required needs a reboot-required file the FreeBSD tables do not name', async () => {
    const host = new RebootingHost([BOOT1, BOOT2]);
    const results = await runScripted({ ...site, 'states/s.yaml': 's:\n  - reboot: pending\n    when: required\n' }, FACTS.freebsd!, host);
    assert.deepEqual(statuses(results), ["failed reboot:pending: when: required needs the OS tables' reboot.required_file, which this target's tables do not give"]);
    assert.deepEqual(host.lines, []);
  });
});
