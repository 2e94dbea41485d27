/**
 * The `service` type's providers (systemd, OpenRC, rc.d).
 *
 * The tests named `contract: …` are CONTRACT TESTS: OpenRC and FreeBSD's rc.d cannot run on this
 * machine (and systemd is not PID 1 here), so they run the real engine through a scripted executor
 * and check the exact commands each provider issues and its parsing of real output captured on
 * those systems (test/fixtures/captured/{systemctl,openrc,rc.d}/, each with a README saying where
 * every file came from). test/lab-service.test.ts runs the systemd provider on real hosts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeResult } from '../src/engine/engine.ts';
import { healthFromRcService, parseRcStatus, parseRcUpdate, statusFromOpenrc } from '../src/resources/service/openrc.ts';
import { healthFromOnestatus, parseEnabled, parseRcvar, parseStatusLoop, STATUS_LOOP, statusFromRcd } from '../src/resources/service/rcd.ts';
import { healthFromShow, parseShow, statusFromShow } from '../src/resources/service/systemd.ts';
import { captured, FACTS, runScripted, ScriptedExecutor, type Reply } from './helpers/scripted-executor.ts';

const SHOW = 'systemctl show --property=Id,LoadState,ActiveState,SubState,UnitFileState,NeedDaemonReload --';
/** What the provider asks after a start, restart or reload (DESIGN §5.12), until the unit has stayed up a while. */
const HEALTH = 'systemctl show --property=ActiveState,SubState,Result,NRestarts,InvocationID,Type --';
const healthy = (name: string): Reply => ({ when: `${HEALTH} ${name}`, stdout: captured('systemctl/health-active.txt') });
/** The commands run, without the health checks' repeated `systemctl show`, and whether there were any. */
const acts = (exec: ScriptedExecutor) => exec.lines.filter((l) => !l.startsWith(HEALTH));
const checked = (exec: ScriptedExecutor, name: string) => exec.lines.filter((l) => l === `${HEALTH} ${name}`).length;

/** The `systemctl show` block of each unit in a captured file, by Id. */
function showBlocks(file: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const block of captured(`systemctl/${file}`).trim().split('\n\n')) out.set(/^Id=(.*)$/m.exec(block)![1]!, `${block}\n`);
  return out;
}
const mixed = showBlocks('show-mixed.txt');
const block = (id: string, from = mixed) => from.get(id)!;

/** A one-target site running the state `s`, its parts given as YAML list items. */
function site(parts: string): Record<string, string> {
  return { 'cairn.yaml': `targets:\n  t1:\n    executor: local\n    run: [s]\nstates:\n  s:\n${parts}` };
}

const summary = (results: NodeResult[]) => results.map((r) => `${r.status} ${r.ref}${r.action !== 'none' ? ` (${r.action})` : ''}${r.reason ? ` [${r.reason}]` : ''}`);

// ---- systemd -----------------------------------------------------------------------------------

test('contract: systemctl show parsing of real output (enabled, static, not found, alias, socket)', () => {
  const blocks = parseShow(captured('systemctl/show-mixed.txt'));
  assert.equal(blocks.length, 7, 'one block per unit asked, in argument order');
  const [ssh, cron, dbus, nosuch, sshdAlias, socket, journald] = blocks.map(statusFromShow);
  assert.deepEqual(ssh, { known: true, running: true, enabled: true, stale: false });
  assert.deepEqual(cron, { known: true, running: true, enabled: true, stale: false });
  // static units cannot be enabled: reported as asked (undefined), never flapping
  assert.deepEqual(dbus, { known: true, running: true, enabled: undefined, stale: false });
  assert.deepEqual(journald, { known: true, running: true, enabled: undefined, stale: false });
  assert.deepEqual(nosuch, { known: false, running: false, enabled: undefined, stale: false });
  assert.equal(blocks[4]!.Id, 'ssh.service', 'an alias resolves to its unit');
  assert.deepEqual(sshdAlias, ssh);
  assert.deepEqual(socket, { known: true, running: false, enabled: false, stale: false });
});

test('contract: systemctl show parsing: unit file changed on disk, masked, waiting to restart after a crash', () => {
  const [capdemo, cron] = parseShow(captured('systemctl/show-need-daemon-reload.txt')).map(statusFromShow);
  assert.deepEqual(capdemo, { known: true, running: true, enabled: false, stale: true });
  assert.equal(cron!.stale, false);
  const [masked] = parseShow(captured('systemctl/show-masked.txt')).map(statusFromShow);
  assert.deepEqual(masked, { known: true, running: true, enabled: false, stale: false });
  const [crashy, stopped] = parseShow(captured('systemctl/show-auto-restart.txt')).map(statusFromShow);
  assert.equal(crashy!.running, false, 'activating/auto-restart is not running: a start surfaces the failure');
  assert.equal(crashy!.enabled, undefined, 'static');
  assert.equal(stopped!.running, false);
});

test('contract: one systemctl show reads every service of the run; ssh-server is ssh on Debian', async () => {
  const exec = new ScriptedExecutor([{ when: `${SHOW} ssh cron dbus`, stdout: block('ssh.service') + '\n' + block('cron.service') + '\n' + block('dbus.service') }]);
  const results = await runScripted(site(
    '    - service: ssh-server\n      ensure: running\n      enable: true\n' +
    '    - service: cron\n      ensure: running\n      enable: true\n' +
    '    - service: dbus\n      ensure: running\n      enable: false\n'), FACTS.debian!, exec, 'plan');
  assert.deepEqual(summary(results), ['unchanged service:ssh-server', 'unchanged service:cron', 'unchanged service:dbus'], 'dbus is static: enable: false does not flap');
  assert.deepEqual(exec.lines, [`${SHOW} ssh cron dbus`]);
});

test('contract: ssh-server is sshd via systemd on Rocky', async () => {
  const exec = new ScriptedExecutor([{ when: `${SHOW} sshd`, stdout: block('ssh.service') }]);
  const results = await runScripted(site('    - service: ssh-server\n      ensure: running\n'), FACTS.rocky!, exec, 'plan');
  assert.deepEqual(summary(results), ['unchanged service:ssh-server']);
  assert.deepEqual(exec.lines, [`${SHOW} sshd`]);
});

test('systemd: stop and disable a running, enabled unit, then report in sync', async () => {
  const stopped = block('ssh.socket').replace(/ssh\.socket/, 'cron.service');
  const exec = new ScriptedExecutor([
    { when: `${SHOW} cron`, stdout: block('cron.service'), times: 1 },
    { when: `${SHOW} cron`, stdout: stopped },
    { when: 'systemctl stop -- cron' },
    { when: 'systemctl disable -- cron', stderr: 'Removed "/etc/systemd/system/multi-user.target.wants/cron.service".\n' },
  ]);
  const files = site('    - service: cron\n      ensure: stopped\n      enable: false\n');
  assert.deepEqual(summary(await runScripted(files, FACTS.debian!, exec)), ['changed service:cron (update)']);
  assert.deepEqual(exec.lines, [`${SHOW} cron`, 'systemctl stop -- cron', 'systemctl disable -- cron']);
  assert.deepEqual(summary(await runScripted(files, FACTS.debian!, exec)), ['unchanged service:cron']);
});

test('systemd: an unknown unit fails with systemd\'s own words; an unrelated node still converges', async () => {
  const exec = new ScriptedExecutor([
    { when: `${SHOW} nosuch cron`, stdout: block('nosuch.service') + '\n' + block('cron.service') },
    { when: `${SHOW} nosuch`, stdout: block('nosuch.service') },
    { when: 'systemctl daemon-reload' },
    { when: 'systemctl start -- nosuch', code: 5, stderr: captured('systemctl/start-nosuch.stderr') },
  ]);
  const results = await runScripted(site('    - service: nosuch\n      ensure: running\n    - service: cron\n      ensure: running\n'), FACTS.debian!, exec);
  assert.equal(results[0]!.status, 'failed');
  assert.equal(results[0]!.error, 'Failed to start nosuch.service: Unit nosuch.service not found.');
  assert.equal(results[1]!.status, 'unchanged');
});

test('systemd: an unknown unit with nothing asked of it fails too (systemctl status says why)', async () => {
  const exec = new ScriptedExecutor([
    { when: `${SHOW} nosuch`, stdout: block('nosuch.service') },
    { when: 'systemctl daemon-reload' },
    { when: 'systemctl status --no-pager --lines=0 -- nosuch', code: 4, stderr: captured('systemctl/status-nosuch.stderr') },
  ]);
  const [r] = await runScripted(site('    - service: nosuch\n'), FACTS.debian!, exec);
  assert.equal(r!.status, 'failed');
  assert.equal(r!.error, 'Unit nosuch.service could not be found.');
});

test('contract: an invalid unit name spoils only its own reading (systemctl show fails for the batch)', async () => {
  const exec = new ScriptedExecutor([
    { when: `${SHOW} cron bad name!`, code: 1, stdout: captured('systemctl/show-invalid-name.stdout'), stderr: captured('systemctl/show-invalid-name.stderr') },
    { when: `${SHOW} cron`, stdout: block('cron.service') },
    { when: `${SHOW} bad name!`, code: 1, stderr: captured('systemctl/show-invalid-name.stderr') },
  ]);
  const results = await runScripted(site('    - service: cron\n      ensure: running\n    - service: bad name!\n      ensure: running\n'), FACTS.debian!, exec);
  assert.equal(results[0]!.status, 'unchanged');
  assert.equal(results[1]!.status, 'failed');
  assert.match(results[1]!.error!, /Failed to get properties: Unit name bad\\\\x20name!\.service is neither a valid invocation ID nor unit name\./);
});

/** A unit file and a config file that notifies the service, as the lab test does. */
const notifySite = (service: string) => site(
  '    - file: /etc/demo.conf\n      content: "v2\\n"\n      notify: service:demo\n' +
  `    - service: demo\n${service}`);

function demoExec(showBlock: string, extra: Reply[] = []): ScriptedExecutor {
  const exec = new ScriptedExecutor([{ when: `${SHOW} demo`, stdout: showBlock }, ...extra]);
  exec.files.set('/etc/demo.conf', { data: Buffer.from('v1\n'), mode: 0o644, uid: 0, gid: 0 });
  return exec;
}
const demo = (from: string, id: string) => block(id, showBlocks(from)).replace(new RegExp(id.replace('.', '\\.'), 'g'), 'demo.service');

test('systemd: started by its own ensure and notified in the same run: started once, no restart after', async () => {
  const exec = demoExec(demo('show-mixed.txt', 'ssh.socket'), [{ when: 'systemctl start -- demo' }, healthy('demo'), { when: 'systemctl enable -- demo' }]);
  const results = await runScripted(notifySite('      ensure: running\n      enable: true\n'), FACTS.debian!, exec);
  assert.deepEqual(summary(results), ['changed file:/etc/demo.conf (update)', 'changed service:demo (update)']);
  assert.deepEqual(acts(exec), [`${SHOW} demo`, 'systemctl start -- demo', 'systemctl enable -- demo'], 'no restart');
  assert.ok(checked(exec, 'demo') >= 2, 'watched for a while after its start');
});

test('systemd: running and notified: one restart; reload: true reloads instead', async () => {
  let exec = demoExec(block('cron.service').replace(/cron/g, 'demo'), [{ when: 'systemctl restart -- demo' }, healthy('demo')]);
  const results = await runScripted(notifySite('      ensure: running\n'), FACTS.debian!, exec);
  assert.deepEqual(summary(results), ['changed file:/etc/demo.conf (update)', 'changed service:demo (refresh) [notified by file:/etc/demo.conf]']);
  assert.deepEqual(acts(exec), [`${SHOW} demo`, 'systemctl restart -- demo']);
  assert.ok(checked(exec, 'demo') >= 2);

  exec = demoExec(block('cron.service').replace(/cron/g, 'demo'), [{ when: 'systemctl reload -- demo' }, healthy('demo')]);
  await runScripted(notifySite('      ensure: running\n      reload: true\n'), FACTS.debian!, exec);
  assert.deepEqual(acts(exec), [`${SHOW} demo`, 'systemctl reload -- demo']);
  assert.ok(checked(exec, 'demo') >= 2);
});

test('contract: a unit file changed on disk (NeedDaemonReload=yes) is reloaded before the restart', async () => {
  const exec = demoExec(demo('show-need-daemon-reload.txt', 'capdemo.service'), [{ when: 'systemctl daemon-reload' }, { when: 'systemctl restart -- demo' }, healthy('demo')]);
  await runScripted(notifySite('      ensure: running\n'), FACTS.debian!, exec);
  assert.deepEqual(acts(exec), [`${SHOW} demo`, 'systemctl daemon-reload', 'systemctl restart -- demo']);
});

test('systemd: notified while it should be stopped, or not running and not asked to run: no restart', async () => {
  const stopped = demo('show-mixed.txt', 'ssh.socket');
  for (const attrs of ['      ensure: stopped\n', '      enable: false\n']) {
    const exec = demoExec(stopped);
    await runScripted(notifySite(attrs), FACTS.debian!, exec);
    assert.deepEqual(exec.lines, [`${SHOW} demo`], attrs);
  }
});

test('systemd: a masked unit asked to run fails with systemd\'s words', async () => {
  const exec = new ScriptedExecutor([
    { when: `${SHOW} cron`, stdout: captured('systemctl/show-masked.txt').replace('ActiveState=active\nSubState=running', 'ActiveState=inactive\nSubState=dead') },
    { when: 'systemctl start -- cron', code: 1, stderr: 'Failed to start cron.service: Unit cron.service is masked.\n' },
    { when: 'journalctl -u cron -n 20 --no-pager -q' },
  ]);
  const [r] = await runScripted(site('    - service: cron\n      ensure: running\n'), FACTS.debian!, exec);
  assert.equal(r!.error, 'Failed to start cron.service: Unit cron.service is masked.');
});

test('contract: systemd health after a start: systemctl show parsing of real output (failed, active, restarted by systemd, a finished oneshot)', () => {
  const health = (file: string, after: 'start' | 'restart' | 'reload' = 'start') => {
    const h = healthFromShow(parseShow(captured(`systemctl/${file}`))[0]!, after);
    return `${h.state}: ${h.detail}`;
  };
  assert.equal(health('health-failed.txt'), 'down: ActiveState=failed, SubState=failed, Result=exit-code');
  assert.equal(health('health-active.txt'), 'up: ActiveState=active, SubState=running, Result=success');
  assert.equal(health('health-restarted.txt'), 'down: systemd restarted it 2 times already (ActiveState=active, SubState=running, Result=success)');
  assert.equal(health('health-restarted.txt', 'restart'), health('health-restarted.txt'), 'a restart by hand sets NRestarts to 0 too');
  assert.equal(health('health-restarted.txt', 'reload'), 'up: ActiveState=active, SubState=running, Result=success', 'a reload keeps the count of crashes before it');
  assert.equal(health('health-oneshot.txt'), 'up: ActiveState=inactive, SubState=dead, Result=success');
  const [crashy] = parseShow(captured('systemctl/show-auto-restart.txt'));
  assert.equal(healthFromShow(crashy!, 'start').state, 'down', 'waiting to be restarted after a crash');
});

test('contract: systemd: a unit that died right after its start fails with systemd\'s state and its journal; what requires it is skipped (exit 1)', async () => {
  const exec = demoExec(demo('show-mixed.txt', 'ssh.socket'), [
    { when: 'systemctl start -- demo' },
    { when: `${HEALTH} demo`, stdout: captured('systemctl/health-failed.txt') },
    { when: 'journalctl -u demo -n 20 --no-pager -q', stdout: captured('systemctl/journal-failed.txt') },
  ]);
  const results = await runScripted(site('    - service: demo\n      ensure: running\n    - file: /etc/after\n      content: x\n      require: service:demo\n'), FACTS.debian!, exec);
  assert.deepEqual(summary(results), ['failed service:demo (update)', 'skipped file:/etc/after [dependency failed: service:demo]']);
  assert.equal(results[0]!.error, `demo is not running after it was started: ActiveState=failed, SubState=failed, Result=exit-code\n${captured('systemctl/journal-failed.txt').trim()}`);
  assert.deepEqual(exec.lines, [`${SHOW} demo`, 'systemctl start -- demo', `${HEALTH} demo`, 'journalctl -u demo -n 20 --no-pager -q']);
  assert.equal(exec.files.has('/etc/after'), false);
});

test('contract: systemd: a unit that systemd restarted by itself (Restart=) since the start fails; so does one that cycles while Cairn watches', async () => {
  let exec = demoExec(demo('show-mixed.txt', 'ssh.socket'), [
    { when: 'systemctl start -- demo' },
    { when: `${HEALTH} demo`, stdout: captured('systemctl/health-restarted.txt') },
    { when: 'journalctl -u demo', stdout: 'demo.service: Scheduled restart job, restart counter is at 2.\n' },
  ]);
  let [r] = await runScripted(site('    - service: demo\n      ensure: running\n'), FACTS.debian!, exec);
  assert.equal(r!.error, 'demo is not running after it was started: systemd restarted it 2 times already (ActiveState=active, SubState=running, Result=success)\ndemo.service: Scheduled restart job, restart counter is at 2.');

  // A reload does not reset NRestarts: a new InvocationID while Cairn watches is what gives it away.
  const active = captured('systemctl/health-restarted.txt');
  exec = demoExec(block('cron.service').replace(/cron/g, 'demo'), [
    { when: 'systemctl reload -- demo' },
    { when: `${HEALTH} demo`, stdout: active, times: 1 },
    { when: `${HEALTH} demo`, stdout: active.replace(/InvocationID=\w+/, 'InvocationID=0123456789abcdef0123456789abcdef') },
    { when: 'journalctl -u demo' },
  ]);
  [r] = await runScripted(notifySite('      ensure: running\n      reload: true\n'), FACTS.debian!, exec).then((rs) => rs.slice(1));
  assert.equal(r!.status, 'failed');
  assert.equal(r!.error, 'demo is not running after it was reloaded: systemd started it again by itself (it keeps dying)');
});

// ---- OpenRC ------------------------------------------------------------------------------------

test('contract: rc-status and rc-update show parsing of real Alpine and Gentoo output', () => {
  const states = parseRcStatus(captured('openrc/rc-status-a.txt'));
  assert.equal(states.get('sshd'), 'started');
  assert.equal(states.get('wpa_supplicant'), 'started', '[  started 168 day(s) 22:59:07 (0) ]');
  assert.equal(states.get('killprocs'), 'stopped');
  assert.equal(states.get('unbound'), 'started');
  assert.equal(states.has('Runlevel:'), false);
  const gentoo = parseRcStatus(captured('openrc/rc-status-gentoo.txt'));
  assert.equal(gentoo.size, 12, 'the "Caching service dependencies" line is not a service');
  assert.equal(gentoo.get('net.ethmgm'), 'crashed');
  assert.equal(gentoo.get('net.ethsrv'), 'starting');

  const levels = parseRcUpdate(captured('openrc/rc-update-show.txt'));
  assert.deepEqual(levels.get('sshd'), ['default']);
  assert.deepEqual(levels.get('devfs'), ['sysinit']);
  assert.deepEqual(levels.get('killprocs'), ['shutdown']);
  assert.equal(levels.size, 20);

  assert.deepEqual(statusFromOpenrc('started', ['default']), { known: true, running: true, crashed: false, enabled: true, runlevels: ['default'] });
  assert.deepEqual(statusFromOpenrc('stopped', ['shutdown']), { known: true, running: false, crashed: false, enabled: false, runlevels: [] });
  assert.deepEqual(statusFromOpenrc('crashed', []), { known: true, running: false, crashed: true, enabled: false, runlevels: [] });
  assert.equal(statusFromOpenrc(undefined, []).known, false);
});

const openrcReplies = (): Reply[] => [
  { when: 'rc-status --servicelist', stdout: captured('openrc/rc-status-a.txt') + captured('openrc/rc-status-gentoo.txt') },
  { when: 'rc-update show', stdout: captured('openrc/rc-update-show.txt') },
];

test('contract: ssh-server is sshd via OpenRC on Alpine; one rc-status and one rc-update for the run', async () => {
  const exec = new ScriptedExecutor(openrcReplies());
  const results = await runScripted(site(
    '    - service: ssh-server\n      ensure: running\n      enable: true\n' +
    '    - service: cron\n      ensure: running\n      enable: true\n' +
    '    - service: unbound\n      ensure: running\n      enable: false\n'), FACTS.alpine!, exec, 'plan');
  assert.deepEqual(summary(results), ['unchanged service:ssh-server', 'unchanged service:cron', 'unchanged service:unbound']);
  assert.deepEqual(exec.lines, ['rc-status --servicelist', 'rc-update show']);
});

test('contract: OpenRC stop + disable removes it from every runlevel it starts in; start of a crashed one restarts', async () => {
  const exec = new ScriptedExecutor([...openrcReplies(), { when: 'rc-service sshd stop' }, { when: 'rc-update del sshd default' }, { when: 'rc-service net.ethmgm restart' },
    { when: 'rc-service net.ethmgm status', stdout: captured('openrc/status-started.txt') }, { when: 'rc-update add net.ethmgm default' }]);
  const results = await runScripted(site(
    '    - service: ssh-server\n      ensure: stopped\n      enable: false\n' +
    '    - service: net.ethmgm\n      ensure: running\n      enable: true\n'), FACTS.alpine!, exec);
  assert.deepEqual(summary(results), ['changed service:ssh-server (update)', 'changed service:net.ethmgm (update)']);
  assert.deepEqual(exec.lines, [
    'rc-status --servicelist', 'rc-update show', 'rc-service sshd stop', 'rc-update del sshd default',
    // the batch is read again after a change
    'rc-status --servicelist', 'rc-update show', 'rc-service net.ethmgm restart',
    ...exec.lines.filter((l) => l === 'rc-service net.ethmgm status'), 'rc-update add net.ethmgm default',
  ]);
  assert.ok(exec.lines.filter((l) => l === 'rc-service net.ethmgm status').length >= 2, 'its status asked until it had stayed up a while');
});

test('contract: OpenRC: an unknown service fails with rc-service\'s words; notified running service restarts', async () => {
  let exec = new ScriptedExecutor([...openrcReplies(), { when: 'rc-service nosuch stop', code: 1, stderr: captured('openrc/rc-service-nosuch.txt') }]);
  const [r] = await runScripted(site('    - service: nosuch\n      ensure: stopped\n'), FACTS.alpine!, exec);
  assert.equal(r!.status, 'failed');
  assert.equal(r!.error, "* rc-service: service `nosuch' does not exist");

  exec = new ScriptedExecutor([...openrcReplies(), { when: 'rc-service sshd reload' }, { when: 'rc-service sshd status', stdout: captured('openrc/status-started.txt') }]);
  exec.files.set('/etc/ssh/sshd_config', { data: Buffer.from('old\n'), mode: 0o644, uid: 0, gid: 0 });
  await runScripted(site('    - file: /etc/ssh/sshd_config\n      content: "new\\n"\n      notify: service:ssh-server\n    - service: ssh-server\n      ensure: running\n      reload: true\n'), FACTS.alpine!, exec);
  assert.deepEqual(exec.lines.filter((l) => l !== 'rc-service sshd status'), ['rc-status --servicelist', 'rc-update show', 'rc-service sshd reload']);
});

test('contract: OpenRC: after a start, `rc-service NAME status` must say started; a crashed one fails the node in its words', async () => {
  assert.deepEqual(healthFromRcService({ code: 0, stdout: captured('openrc/status-started.txt'), stderr: '' }), { state: 'up', detail: '* status: started' });
  assert.deepEqual(healthFromRcService({ code: 32, stdout: '', stderr: captured('openrc/status-crashed.txt') }), { state: 'down', detail: '* status: crashed' });
  assert.equal(healthFromRcService({ code: 8, stdout: '', stderr: ' * status: starting\n' }).state, 'starting');
  assert.equal(healthFromRcService({ code: 16, stdout: '', stderr: ' * status: inactive\n' }).state, 'up');
  assert.equal(healthFromRcService({ code: 3, stdout: '', stderr: '' }).state, 'down', 'a status function of its own: the exit code');

  // killprocs is stopped in the captured rc-status.
  const exec = new ScriptedExecutor([...openrcReplies(), { when: 'rc-service killprocs start' },
    { when: 'rc-service killprocs status', code: 32, stderr: captured('openrc/status-crashed.txt') }]);
  const results = await runScripted(site('    - service: killprocs\n      ensure: running\n    - file: /etc/after\n      content: x\n      require: service:killprocs\n'), FACTS.alpine!, exec);
  assert.deepEqual(summary(results), ['failed service:killprocs (update)', 'skipped file:/etc/after [dependency failed: service:killprocs]']);
  assert.equal(results[0]!.error, 'killprocs is not running after it was started: * status: crashed');
  assert.deepEqual(exec.lines, ['rc-status --servicelist', 'rc-update show', 'rc-service killprocs start', 'rc-service killprocs status']);
});

// ---- FreeBSD rc.d ------------------------------------------------------------------------------

/** The status loop's answer for each service, built from captured `onestatus` outputs. */
function loopAnswer(...services: [string, string, number][]): string {
  return services.map(([name, file, code]) => `@@cairn-service ${name}\n${captured(`rc.d/${file}`)}@@cairn-service-rc ${code}\n`).join('');
}

test('contract: service -e, onestatus and rcvar parsing of real FreeBSD output', () => {
  const enabled = parseEnabled(captured('rc.d/service-e.txt'));
  assert.equal(enabled.size, 34);
  assert.ok(enabled.has('sshd') && enabled.has('mysql-server') && enabled.has('apache24'));
  assert.equal(parseRcvar(captured('rc.d/rcvar-sshd.txt')), 'sshd_enable');
  assert.equal(parseRcvar(captured('rc.d/rcvar-mysql-server.txt')), 'mysql_enable');
  const answers = parseStatusLoop(loopAnswer(['sshd', 'onestatus-running.txt', 0], ['apcupsd', 'onestatus-stopped.txt', 1], ['rwhod', 'onestatus-missing.txt', 1]));
  assert.deepEqual(statusFromRcd(answers.get('sshd'), true), { known: true, running: true, enabled: true });
  assert.deepEqual(statusFromRcd(answers.get('apcupsd'), false), { known: true, running: false, enabled: false });
  assert.equal(statusFromRcd(answers.get('rwhod'), false).known, false);
});

test('contract: ssh-server is sshd via rc.d on FreeBSD; service -e and one status loop for the run', async () => {
  const exec = new ScriptedExecutor([
    { when: 'service -e', stdout: captured('rc.d/service-e.txt') },
    { when: /^sh -c for s do/, stdout: loopAnswer(['sshd', 'onestatus-running.txt', 0], ['mysql-server', 'onestatus-running.txt', 0]) },
  ]);
  const results = await runScripted(site('    - service: ssh-server\n      ensure: running\n      enable: true\n    - service: mysql-server\n      ensure: running\n'), FACTS.freebsd!, exec, 'plan');
  assert.deepEqual(summary(results), ['unchanged service:ssh-server', 'unchanged service:mysql-server']);
  assert.deepEqual(exec.commands.map((c) => c.argv), [['service', '-e'], ['sh', '-c', STATUS_LOOP, 'sh', 'sshd', 'mysql-server']]);
});

test('contract: rc.d stop + disable uses onestop and the script\'s own rcvar with sysrc; start uses onestart', async () => {
  const exec = new ScriptedExecutor([
    { when: 'service -e', stdout: captured('rc.d/service-e.txt') },
    { when: /^sh -c for s do/, stdout: loopAnswer(['mysql-server', 'onestatus-running.txt', 0], ['apcupsd', 'onestatus-stopped.txt', 1]) },
    { when: 'service mysql-server onestop', stdout: 'Stopping mysql.\n' },
    { when: 'service mysql-server rcvar', stdout: captured('rc.d/rcvar-mysql-server.txt') },
    { when: 'sysrc mysql_enable=NO', stdout: 'mysql_enable: YES -> NO\n' },
    { when: 'service apcupsd onestart', stdout: captured('rc.d/onestart.txt') },
    { when: 'service apcupsd onestatus', stdout: captured('rc.d/onestatus-running.txt').replace('sshd', 'apcupsd') },
  ]);
  const results = await runScripted(site('    - service: mysql-server\n      ensure: stopped\n      enable: false\n    - service: apcupsd\n      ensure: running\n'), FACTS.freebsd!, exec);
  assert.deepEqual(summary(results), ['changed service:mysql-server (update)', 'changed service:apcupsd (update)']);
  assert.deepEqual(exec.lines.filter((l) => !l.startsWith('sh -c') && l !== 'service -e'), [
    'service mysql-server onestop', 'service mysql-server rcvar', 'sysrc mysql_enable=NO', 'service apcupsd onestart',
    ...exec.lines.filter((l) => l === 'service apcupsd onestatus'),
  ]);
});

test('contract: rc.d: an unknown service fails with service(8)\'s words', async () => {
  const exec = new ScriptedExecutor([
    { when: 'service -e', stdout: captured('rc.d/service-e.txt') },
    { when: /^sh -c for s do/, stdout: loopAnswer(['apcupsd', 'onestatus-missing.txt', 1]) },
  ]);
  const [r] = await runScripted(site('    - service: apcupsd\n      ensure: running\n'), FACTS.freebsd!, exec);
  assert.equal(r!.status, 'failed');
  assert.equal(r!.error, 'apcupsd does not exist in /etc/rc.d or the local startup\ndirectories (/usr/local/etc/rc.d), or is not executable');
});

test('contract: rc.d: after onestart, `service NAME onestatus` must say it runs; one that is not running fails the node in its words', async () => {
  assert.deepEqual(healthFromOnestatus({ code: 0, stdout: captured('rc.d/onestatus-running.txt'), stderr: '' }), { state: 'up', detail: 'sshd is running as pid 788.' });
  const exec = new ScriptedExecutor([
    { when: 'service -e', stdout: captured('rc.d/service-e.txt') },
    { when: /^sh -c for s do/, stdout: loopAnswer(['apcupsd', 'onestatus-stopped.txt', 1]) },
    { when: 'service apcupsd onestart', stdout: captured('rc.d/onestart.txt') },
    { when: 'service apcupsd onestatus', code: 1, stdout: captured('rc.d/onestatus-stopped.txt') },
  ]);
  const results = await runScripted(site('    - service: apcupsd\n      ensure: running\n    - file: /etc/after\n      content: x\n      require: service:apcupsd\n'), FACTS.freebsd!, exec);
  assert.deepEqual(summary(results), ['failed service:apcupsd (update)', 'skipped file:/etc/after [dependency failed: service:apcupsd]']);
  assert.equal(results[0]!.error, 'apcupsd is not running after it was started: apcupsd is not running.');
});
