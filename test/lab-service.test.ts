/**
 * The systemd service provider on a real host (a lab host: Debian bookworm, systemd as PID 1),
 * through the `cairn` command over SSH: a unit file written by a `file` part and started by a
 * `service` part, restarted exactly once when its configuration changes, stopped and disabled;
 * a packaged unit (cron) stopped and started; an unknown unit failing in systemd's words while
 * an unrelated node converges; units that die right after they start (DESIGN §5.12) failing with
 * their journal, and what requires them skipped.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { NodeResult, TargetReport } from '../src/engine/engine.ts';
import { makeSite, runCli } from './helpers/cli.ts';
import { labUnavailable, startLab, type Lab, type LabHost } from './helpers/lab.ts';

const why = labUnavailable();
if (why) process.stderr.write(`LAB TESTS SKIPPED: ${why}\n`);

const UNIT = `[Unit]
Description=Cairn demo service

[Service]
EnvironmentFile=/etc/cairn-demo.conf
ExecStart=/bin/sh -c 'exec sleep infinity'

[Install]
WantedBy=multi-user.target
`;

/**
 * A site whose one target is `host`, running the state `s` (given as YAML list items), in a state
 * file: rendered as a whole before it is parsed, so `<%= it.vars.enable %>` gives a boolean.
 */
function labSite(host: LabHost, parts: string): string {
  const target = JSON.stringify({ ...host.target, state_dir: '/var/lib/cairn', run: ['s'] });
  return makeSite({ 'cairn.yaml': `targets:\n  lab: ${target}\n`, 'states/s.yaml': `s:\n${parts}` });
}

async function apply(site: string, vars: Record<string, string> = {}) {
  const r = await runCli(['apply', '--site', site, '--json', ...Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}=${v}`])]);
  let target: TargetReport;
  try {
    target = (JSON.parse(r.stdout) as { targets: TargetReport[] }).targets[0]!;
  } catch {
    throw new Error(`cairn apply gave no JSON report (exit ${r.status}):\n${r.stderr}\n${r.stdout}`);
  }
  return { status: r.status, target, nodes: target.nodes, stderr: r.stderr };
}

const brief = (nodes: NodeResult[]) => nodes.map((n) => `${n.status} ${n.ref}${n.action !== 'none' ? ` (${n.action})` : ''}`);

describe('service (systemd) on a lab host, through the CLI', { skip: why }, () => {
  let lab: Lab;
  let host: LabHost;

  before(async () => {
    lab = await startLab(1);
    host = lab.hosts[0]!;
  });
  after(async () => {
    await lab?.stop();
  });

  async function sh(command: string): Promise<string> {
    const r = await host.sh(command);
    return r.stdout.trim();
  }
  /** How many times systemd started the demo service (journal lines "Started …"). */
  const starts = async () => Number(await sh('journalctl -q -o cat -u cairn-demo.service | grep -c "^Started "'));

  test('a unit file, a config that notifies the service, the service: start, in sync, one restart, stop', async () => {
    const site = labSite(host,
      `    - file: /etc/systemd/system/cairn-demo.service\n      content: ${JSON.stringify(UNIT)}\n` +
      '    - file: /etc/cairn-demo.conf\n      content: "GREETING=<%= it.vars.greeting %>\\n"\n      notify: service:cairn-demo\n' +
      '    - service: cairn-demo\n      ensure: <%= it.vars.ensure %>\n      enable: <%= it.vars.enable %>\n');
    const running = { greeting: 'hello', ensure: 'running', enable: 'true' };

    // First run: written, started once (the notification needs no restart right after the start), enabled.
    let r = await apply(site, running);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(brief(r.nodes), [
      'changed file:/etc/systemd/system/cairn-demo.service (create)',
      'changed file:/etc/cairn-demo.conf (create)',
      'changed service:cairn-demo (update)', // the unit file is loaded by the time the service is read
    ]);
    assert.equal(await sh('systemctl is-active cairn-demo'), 'active');
    assert.equal(await sh('systemctl is-enabled cairn-demo'), 'enabled');
    assert.equal(await sh('tr "\\0" "\\n" < /proc/$(systemctl show -P MainPID cairn-demo)/environ | grep GREETING'), 'GREETING=hello');
    assert.equal(await starts(), 1, 'started exactly once');

    // Second run: nothing to do.
    r = await apply(site, running);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.target.counts, { changed: 0, unchanged: 3, failed: 0, skipped: 0 });

    // The configuration changes: exactly one restart, which reads it.
    const pid = await sh('systemctl show -P MainPID cairn-demo');
    const entered = await sh('systemctl show -P ActiveEnterTimestampMonotonic cairn-demo');
    r = await apply(site, { ...running, greeting: 'bonjour' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(brief(r.nodes), [
      'unchanged file:/etc/systemd/system/cairn-demo.service',
      'changed file:/etc/cairn-demo.conf (update)',
      'changed service:cairn-demo (refresh)',
    ]);
    assert.notEqual(await sh('systemctl show -P MainPID cairn-demo'), pid);
    assert.notEqual(await sh('systemctl show -P ActiveEnterTimestampMonotonic cairn-demo'), entered);
    assert.equal(await starts(), 2, 'restarted exactly once');
    assert.equal(await sh('tr "\\0" "\\n" < /proc/$(systemctl show -P MainPID cairn-demo)/environ | grep GREETING'), 'GREETING=bonjour');

    // Stopped and disabled, then in sync.
    const stopped = { greeting: 'bonjour', ensure: 'stopped', enable: 'false' };
    r = await apply(site, stopped);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(brief(r.nodes).at(-1), 'changed service:cairn-demo (update)');
    assert.equal(await sh('systemctl is-active cairn-demo'), 'inactive');
    assert.equal(await sh('systemctl is-enabled cairn-demo'), 'disabled');
    r = await apply(site, stopped);
    assert.deepEqual(r.target.counts, { changed: 0, unchanged: 3, failed: 0, skipped: 0 });
  });

  test('a unit file changed on disk is reloaded (daemon-reload) before the restart its change notifies', async () => {
    const site = labSite(host,
      `    - file: /etc/systemd/system/cairn-demo.service\n      content: ${JSON.stringify(UNIT.replace('Cairn demo service', '<%= it.vars.description %>'))}\n      notify: service:cairn-demo\n` +
      '    - service: cairn-demo\n      ensure: running\n');
    let r = await apply(site, { description: 'Cairn demo service' });
    assert.equal(r.status, 0, JSON.stringify(r.nodes, null, 2));
    r = await apply(site, { description: 'Cairn demo service, edited' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(brief(r.nodes), ['changed file:/etc/systemd/system/cairn-demo.service (update)', 'changed service:cairn-demo (refresh)']);
    assert.equal(await sh('systemctl show -P NeedDaemonReload cairn-demo'), 'no');
    assert.equal(await sh('systemctl show -P Description cairn-demo'), 'Cairn demo service, edited');
  });

  test('a packaged unit (cron): stop it, then start it', async () => {
    const site = labSite(host, '    - service: cron\n      ensure: <%= it.vars.state %>\n');
    let r = await apply(site, { state: 'stopped' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(brief(r.nodes), ['changed service:cron (update)']);
    assert.equal(await sh('systemctl is-active cron'), 'inactive');
    r = await apply(site, { state: 'stopped' });
    assert.deepEqual(brief(r.nodes), ['unchanged service:cron']);
    r = await apply(site, { state: 'running' });
    assert.deepEqual(brief(r.nodes), ['changed service:cron (update)']);
    assert.equal(await sh('systemctl is-active cron'), 'active');
  });

  test('an unknown service fails with systemd\'s own error; an unrelated node still converges (exit 1)', async () => {
    const site = labSite(host,
      '    - service: nosuch\n      ensure: running\n' +
      '    - file: /root/unrelated.txt\n      content: "converged\\n"\n');
    const r = await apply(site);
    assert.equal(r.status, 1, r.stderr);
    const [svc, file] = r.nodes;
    assert.equal(svc!.status, 'failed');
    assert.match(svc!.error ?? '', /Failed to start nosuch\.service: Unit nosuch\.service not found\./);
    assert.equal(file!.status, 'changed');
    assert.equal(await sh('cat /root/unrelated.txt'), 'converged');
  });

  /** A unit file part and a service part for it, and a file that requires the service. */
  const unitParts = (name: string, service: string) =>
    `    - file: /etc/systemd/system/${name}.service\n      content: ${JSON.stringify(`[Service]\n${service}\n`)}\n` +
    `    - service: ${name}\n      ensure: running\n` +
    `    - file: /root/after-${name}\n      content: "ran\\n"\n      require: service:${name}\n`;

  test('a unit that dies right after it starts fails with its journal, and what requires it is skipped; a healthy unit converges (exit 1)', async () => {
    const site = labSite(host,
      unitParts('cairn-false', 'ExecStart=/bin/false') +
      unitParts('cairn-late', "ExecStart=/bin/sh -c 'sleep 0.2; exit 1'") +
      unitParts('cairn-cycle', "ExecStart=/bin/sh -c 'sleep 0.1; exit 3'\nRestart=always\nRestartSec=100ms") +
      unitParts('cairn-ok', "ExecStart=/bin/sh -c 'exec sleep infinity'"));
    for (const run of [1, 2]) {
      const r = await apply(site);
      assert.equal(r.status, 1, r.stderr);
      const byRef = new Map(r.nodes.map((n) => [n.ref, n]));
      for (const name of ['cairn-false', 'cairn-late', 'cairn-cycle']) {
        const svc = byRef.get(`service:${name}`)!;
        assert.equal(svc.status, 'failed', `run ${run}: ${name} is ${svc.status}, not failed`);
        assert.equal(byRef.get(`file:/root/after-${name}`)!.status, 'skipped');
        assert.equal(byRef.get(`file:/root/after-${name}`)!.reason, `dependency failed: service:${name}`);
      }
      const error = (name: string) => byRef.get(`service:${name}`)!.error ?? '';
      // systemd's state, then the journal's last lines (the exit status is in them).
      assert.match(error('cairn-false'), /^cairn-false is not running after it was started: ActiveState=failed, SubState=failed, Result=exit-code\n/);
      assert.match(error('cairn-false'), /cairn-false\.service: Main process exited, code=exited, status=1\/FAILURE/);
      assert.match(error('cairn-late'), /^cairn-late is not running after it was started: ActiveState=failed, SubState=failed, Result=exit-code\n/);
      assert.match(error('cairn-late'), /cairn-late\.service: Main process exited, code=exited, status=1\/FAILURE/);
      // With Restart=, systemd brings it back each time: it looks up, but it keeps dying.
      // Still cycling at the second run, its start fails outright ("Job for … failed").
      assert.match(error('cairn-cycle'), run === 1 ? /^cairn-cycle is not running after it was started: (systemd restarted it \d+ times?|systemd started it again by itself|ActiveState=activating, SubState=auto-restart)/
        : /^(cairn-cycle is not running after it was started|Job for cairn-cycle\.service failed)/);
      assert.match(error('cairn-cycle'), /status=3\/NOTIMPLEMENTED/);
      assert.equal(byRef.get('service:cairn-ok')!.status, run === 1 ? 'changed' : 'unchanged');
      assert.equal(byRef.get('file:/root/after-cairn-ok')!.status, run === 1 ? 'changed' : 'unchanged');
    }
    assert.equal(await sh('systemctl is-active cairn-ok'), 'active');
    assert.equal(await sh('test -e /root/after-cairn-false || test -e /root/after-cairn-late || echo none ran'), 'none ran');
    await sh('systemctl stop cairn-cycle');
  });

  test('a running unit notified after its config broke: the restart fails with the journal, not "changed"', async () => {
    const site = labSite(host,
      `    - file: /etc/systemd/system/cairn-conf.service\n      content: ${JSON.stringify("[Service]\nExecStart=/bin/sh -c 'test \"$$(cat /etc/cairn-conf)\" = good && exec sleep infinity || { echo bad config >&2; exit 2; }'\n")}\n` +
      '    - file: /etc/cairn-conf\n      content: "<%= it.vars.conf %>"\n      notify: service:cairn-conf\n' +
      '    - service: cairn-conf\n      ensure: running\n');
    let r = await apply(site, { conf: 'good' });
    assert.equal(r.status, 0, JSON.stringify(r.nodes, null, 2));
    r = await apply(site, { conf: 'bad' });
    assert.equal(r.status, 1, r.stderr);
    const svc = r.nodes.at(-1)!;
    assert.deepEqual([svc.status, svc.action], ['failed', 'refresh']);
    assert.match(svc.error ?? '', /^cairn-conf is not running after it was restarted: ActiveState=failed/);
    assert.match(svc.error ?? '', /bad config/);
    // The notification stays pending (§5.3): the next run, with the config fixed, restarts it.
    r = await apply(site, { conf: 'good' });
    assert.equal(r.status, 0, JSON.stringify(r.nodes, null, 2));
    assert.equal(await sh('systemctl is-active cairn-conf'), 'active');
  });
});
