/**
 * The `container` type's `nspawn` provider on real lab hosts (systemd as PID 1): machines nested
 * in a lab host, made from the lab's own golden root (bound read-only into the host) with
 * systemd-container installed from this machine's .deb. Then a site whose third target is
 * converged inside the container through `via:` (DESIGN §6).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { NodeResult } from '../src/engine/engine.ts';
import { CAIRN, makeSite, runCli } from './helpers/cli.ts';
import type { Report } from './helpers/converge.ts';
import { LAB_SH, labUnavailable, startLab, targetYaml, type Lab, type LabHost } from './helpers/lab.ts';

const HANG_GUARD = { timeout: 600_000 };

/** The systemd-container .deb matching the golden root's systemd (apt's cache, else downloaded once). */
function containerDeb(): { dir: string } | { why: string } {
  const cached = '/var/cache/apt/archives';
  if (existsSync(cached) && readdirSync(cached).some((f) => /^systemd-container_.*\.deb$/.test(f))) return { dir: cached };
  const dir = join(process.env.CAIRN_LAB_DIR ?? '/var/tmp/cairn-lab', 'debs');
  mkdirSync(dir, { recursive: true });
  if (readdirSync(dir).some((f) => /^systemd-container_.*\.deb$/.test(f))) return { dir };
  try {
    execFileSync('apt-get', ['-q', 'download', 'systemd-container'], { cwd: dir, stdio: 'pipe' });
    return { dir };
  } catch (err) {
    return { why: `cannot get systemd-container's .deb for the lab hosts: ${(err as Error).message.split('\n')[0]}` };
  }
}

const why = labUnavailable();
const deb = why ? undefined : containerDeb();
const skip = why ?? (deb && 'why' in deb ? deb.why : undefined);
if (skip) console.error(`SKIP lab-container: ${skip}`);

function nodesOf(stdout: string): NodeResult[] {
  return (JSON.parse(stdout) as Report).targets.flatMap((t) => t.nodes);
}

function containerNode(nodes: NodeResult[], name = 'box'): NodeResult {
  const node = nodes.find((n) => n.ref === `container:${name}`);
  assert.ok(node, `no container:${name} in ${JSON.stringify(nodes)}`);
  return node;
}

describe('container (nspawn) on a lab host (slow)', { skip }, () => {
  let lab: Lab;
  let host: LabHost;

  before(async () => {
    const golden = execFileSync('sh', [LAB_SH, 'root'], { encoding: 'utf8' }).trim();
    lab = await startLab(1, {
      binds: [
        { source: join(golden, 'fs'), target: '/srv/golden', readOnly: true },
        { source: (deb as { dir: string }).dir, target: '/srv/debs', readOnly: true },
      ],
    });
    host = lab.hosts[0]!;
    await host.must('dpkg -i --ignore-depends=libcurl4 /srv/debs/systemd-container_*.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; exit 1; }; systemctl daemon-reload');
  }, HANG_GUARD);

  after(async () => {
    await lab?.stop();
  });

  /** A site with host1 (the lab host) running one container part, and more after it. */
  function site(container: string, extra = ''): string {
    return makeSite({
      'cairn.yaml': `${targetYaml(host, 'host1')}    run: [c]\n${extra}`,
      'states/c.yaml': `c:\n${container}`,
    });
  }
  const box = (attrs: string, properties = '{ Exec: { PrivateUsers: "no" } }') => `  - container: box\n    image: /srv/golden\n    properties: ${properties}\n${attrs}`;
  const changedProperties = '{ Exec: { PrivateUsers: "no", Environment: CAIRN_TEST=1 } }';

  async function apply(dir: string, args: string[] = [], status = 0): Promise<NodeResult[]> {
    const r = await runCli(['apply', '--site', dir, '--json', ...args]);
    assert.equal(r.status, status, `apply: exit ${r.status}\n${r.stderr}\n${r.stdout}`);
    return nodesOf(r.stdout);
  }
  async function plan(dir: string): Promise<NodeResult[]> {
    const r = await runCli(['plan', '--site', dir, '--json']);
    assert.equal(r.status, 0, `plan: exit ${r.status}\n${r.stderr}\n${r.stdout}`);
    return nodesOf(r.stdout);
  }
  const machineState2 = async (name: string) => (await host.sh(`machinectl show ${name} -p State --value`)).stdout.trim() || 'absent';
  const machineState = () => machineState2('box');

  test('create from a root folder, no-op, reload, refused and allowed rebuild, boot, destroy; plan shows each without doing it', HANG_GUARD, async () => {
    const first = site(box(''));
    // plan: a create, nothing made
    const planned0 = containerNode(await plan(first));
    assert.deepEqual([planned0.status, planned0.action], ['would-change', 'create']);
    assert.equal((await host.sh('test -e /var/lib/machines/box')).code, 1);

    const created = containerNode(await apply(first));
    assert.deepEqual([created.status, created.action], ['changed', 'create']);
    assert.equal(await machineState(), 'running');
    assert.equal((await host.must('systemd-run -M box --wait --pipe -q cat /etc/hostname')).trim(), 'box');
    assert.match(await host.must('cat /etc/systemd/nspawn/box.nspawn'), /\[Exec\]\nPrivateUsers=no\n\n\[Network\]\nPrivate=yes\nVirtualEthernet=no\n/);

    const again = containerNode(await apply(first));
    assert.deepEqual([again.status, again.action], ['unchanged', 'none']);

    // reload: binds and properties changed; plan first, then poweroff, rewrite, start — in that order
    const reloaded = site(box('    binds: ["/srv/debs:/mnt/debs:norbind"]\n', changedProperties));
    const planned = containerNode(await plan(reloaded));
    assert.deepEqual([planned.status, planned.action, planned.changes], ['would-change', 'reload', ['binds', 'properties']]);
    assert.doesNotMatch(await host.must('cat /etc/systemd/nspawn/box.nspawn'), /Bind=/);
    const leaderBefore = (await host.must('machinectl show box -p Leader --value')).trim();
    const cursor = /-- cursor: (.+)/.exec(await host.must('journalctl -n 0 --show-cursor --no-pager'))![1]!;
    const reload = containerNode(await apply(reloaded));
    assert.deepEqual([reload.status, reload.action], ['changed', 'reload']);
    const journal = await host.must(`journalctl -u systemd-nspawn@box.service --after-cursor '${cursor}' --no-pager -o cat`);
    // The container's own shutdown (its console is in the unit's journal), the unit's end, then a new start.
    const poweredOff = journal.indexOf('Reached target poweroff.target');
    const ended = journal.indexOf('systemd-nspawn@box.service: Deactivated successfully');
    const started = journal.lastIndexOf('Started systemd-nspawn@box.service');
    assert.ok(poweredOff >= 0 && ended > poweredOff && started > ended, `poweroff, then start, in the journal:\n${journal}`);
    assert.notEqual((await host.must('machinectl show box -p Leader --value')).trim(), leaderBefore);
    assert.equal((await host.must('systemd-run -M box --wait --pipe -q ls /mnt/debs')).includes('systemd-container'), true);
    assert.equal(containerNode(await apply(reloaded)).status, 'unchanged');

    // rebuild: refused by default (stateful), the container untouched; done with allow_rebuild
    await host.must('systemd-run -M box --wait --pipe -q touch /root/old-marker');
    const rebuilt = (extra: string) => site(box(`    binds: ["/srv/debs:/mnt/debs:norbind"]\n    user_data: "echo first-boot > /root/user-data-ran"\n${extra}`, changedProperties));
    const refused = containerNode(await apply(rebuilt(''), [], 1));
    assert.equal(refused.status, 'failed');
    assert.match(refused.error ?? '', /changing user_data means destroying and recreating container:box; set allow_rebuild: true/);
    assert.equal((await host.sh('systemd-run -M box --wait --pipe -q test -e /root/old-marker')).code, 0);
    const planRebuild = containerNode(await plan(rebuilt('    allow_rebuild: true\n')));
    assert.deepEqual([planRebuild.status, planRebuild.action], ['would-change', 'rebuild']);
    const rebuild = containerNode(await apply(rebuilt('    allow_rebuild: true\n')));
    assert.deepEqual([rebuild.status, rebuild.action], ['changed', 'rebuild']);
    assert.equal(await machineState(), 'running');
    assert.notEqual((await host.sh('systemd-run -M box --wait --pipe -q test -e /root/old-marker')).code, 0);
    // The one-shot unit ran (or runs now: starting it waits for it) the user data at the first boot, once.
    await host.must('systemctl -M box start cairn-user-data.service');
    assert.equal((await host.must('systemd-run -M box --wait --pipe -q cat /root/user-data-ran')).trim(), 'first-boot');
    assert.equal((await host.sh('systemd-run -M box --wait --pipe -q test -e /var/lib/cairn-user-data/user-data.done')).code, 0);
    assert.equal(containerNode(await apply(rebuilt('    allow_rebuild: true\n'))).status, 'unchanged');
    assert.equal((await host.sh('ls -A /var/lib/machines | grep cairn')).stdout, '', 'no staging or old image left');

    // boot (enable) and stopped: an update in place
    const booted = rebuilt('    allow_rebuild: true\n    boot: true\n    state: stopped\n');
    const planBoot = containerNode(await plan(booted));
    assert.deepEqual([planBoot.action, planBoot.changes], ['update', ['state', 'boot']]);
    assert.equal((await host.sh('systemctl is-enabled systemd-nspawn@box.service')).stdout.trim(), 'disabled');
    const boot = containerNode(await apply(booted));
    assert.deepEqual([boot.status, boot.action], ['changed', 'update']);
    assert.equal((await host.sh('systemctl is-enabled systemd-nspawn@box.service')).stdout.trim(), 'enabled');
    assert.equal(await machineState(), 'absent');
    assert.equal(containerNode(await apply(booted)).status, 'unchanged');

    // destroy
    const gone = site('  - container: box\n    ensure: absent\n');
    const planGone = containerNode(await plan(gone));
    assert.deepEqual([planGone.status, planGone.action], ['would-change', 'destroy']);
    assert.equal((await host.sh('test -d /var/lib/machines/box')).code, 0);
    const destroyed = containerNode(await apply(gone));
    assert.deepEqual([destroyed.status, destroyed.action], ['changed', 'destroy']);
    assert.equal((await host.sh('test -e /var/lib/machines/box || test -e /etc/systemd/nspawn/box.nspawn')).code, 1);
    assert.equal((await host.sh('systemctl is-enabled systemd-nspawn@box.service')).stdout.trim(), 'disabled');
    assert.equal(containerNode(await apply(gone)).status, 'unchanged');
  });

  test('one site: the host, the container it runs, a target inside it through via: and its root through a nested chroot (host first; re-run 0 changes)', HANG_GUARD, async () => {
    const dir = makeSite({
      'cairn.yaml': `${targetYaml(host, 'host1')}    run: [c]\n` +
        '  inside:\n    via: host1\n    executor: container\n    machine: nest\n    run: [i]\n' +
        '  offline:\n    via: host1\n    executor: chroot\n    root: /var/lib/machines/nest\n    state_dir: /var/lib/cairn-offline\n    run: [o]\n',
      'states/c.yaml': 'c:\n  - container: nest\n    image: /srv/golden\n    properties: { Exec: { PrivateUsers: "no" } }\n',
      'states/o.yaml': 'o:\n  - file: /etc/written-offline\n    content: "through chroot on host1\\n"\n',
      'states/i.yaml': 'i:\n  - file: /etc/motd\n    content: "converged inside <%= it.facts.hostname %>\\n"\n  - directory: /srv/inner\n    mode: "0750"\n',
    });
    // A plan changes nothing: the container is not there yet, so the inside target waits for it.
    const planned = await runCli(['plan', '--site', dir]);
    assert.equal(planned.status, 0, planned.stderr + planned.stdout);
    assert.match(planned.stdout, /inside: skipped \(via host1: after the changes its plan shows/);
    assert.match(planned.stdout, /offline: skipped \(via host1: after the changes its plan shows/);
    assert.equal(await machineState2('nest'), 'absent');

    const r = await runCli(['apply', '--site', dir, '--json']);
    assert.equal(r.status, 0, `${r.stderr}\n${r.stdout}`);
    const report = JSON.parse(r.stdout) as Report;
    assert.deepEqual(report.targets.map((t) => t.name), ['host1', 'inside', 'offline']);
    assert.deepEqual(report.targets[2]!.nodes.map((n) => [n.ref, n.status]), [['file:/etc/written-offline', 'changed']]);
    assert.equal(await host.must('systemd-run -M nest --wait --pipe -q cat /etc/written-offline'), 'through chroot on host1\n');
    assert.deepEqual(report.targets[0]!.nodes.map((n) => [n.ref, n.status]), [['container:nest', 'changed']]);
    assert.deepEqual(report.targets[1]!.nodes.map((n) => [n.ref, n.status]), [['file:/etc/motd', 'changed'], ['directory:/srv/inner', 'changed']]);
    // Facts come from inside: the hostname is the container's.
    assert.equal(await host.must('systemd-run -M nest --wait --pipe -q cat /etc/motd'), 'converged inside nest\n');
    assert.equal((await host.must('systemd-run -M nest --wait --pipe -q stat -c %a /srv/inner')).trim(), '750');
    assert.equal((await host.sh('test -e /srv/inner')).code, 1, 'nothing written on the host itself');

    const again = await runCli(['apply', '--site', dir, '--json']);
    assert.equal(again.status, 0, again.stderr);
    const counts = (JSON.parse(again.stdout) as Report).targets.map((t) => [t.name, t.counts.changed, t.counts.unchanged]);
    assert.deepEqual(counts, [['host1', 0, 1], ['inside', 0, 2], ['offline', 0, 1]]);
  });

  test('a raw disk image is copied as NAME.raw and listed by machinectl', HANG_GUARD, async () => {
    await host.must('truncate -s 64M /root/disk.raw && mkfs.ext4 -q -F /root/disk.raw 2>/dev/null || truncate -s 64M /root/disk.raw');
    const dir = makeSite({
      'cairn.yaml': `${targetYaml(host, 'host1')}    run: [c]\n`,
      'states/c.yaml': 'c:\n  - container: disky\n    image: /root/disk.raw\n    state: stopped\n',
    });
    const created = containerNode(await apply(dir), 'disky');
    assert.deepEqual([created.status, created.action], ['changed', 'create']);
    assert.match(await host.must('machinectl list-images --no-legend'), /^disky\s+raw/m);
    assert.equal(containerNode(await apply(dir), 'disky').status, 'unchanged');
    const gone = makeSite({
      'cairn.yaml': `${targetYaml(host, 'host1')}    run: [c]\n`,
      'states/c.yaml': 'c:\n  - container: disky\n    ensure: absent\n',
    });
    assert.equal(containerNode(await apply(gone), 'disky').action, 'destroy');
    assert.equal((await host.sh('test -e /var/lib/machines/disky.raw')).code, 1);
  });

  test('an interrupted create (SIGINT while the image is copied) leaves no container, no staging copy, no .nspawn file', HANG_GUARD, async () => {
    const dir = makeSite({
      'cairn.yaml': `${targetYaml(host, 'host1')}    run: [c]\n`,
      'states/c.yaml': 'c:\n  - container: halfway\n    image: /srv/golden\n',
    });
    const child = spawn(process.execPath, [CAIRN, 'apply', '--site', dir, '-v'], { env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    let sent = false;
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      // The provider says it starts copying just before it does: a copy of the whole root takes seconds.
      if (!sent && out.includes('copying /srv/golden to')) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    assert.ok(sent, `the copy never started:\n${out}`);
    assert.notEqual(status, 0, out);
    assert.match(out, /SIGINT: finishing the node under way/);
    // The copy itself was stopped (killed: 137), not waited for.
    assert.match(out, /exec cp -a .*→ exit 137/);
    assert.match(out, /FAILED\s+container:halfway \(create\)\s+cancelled while copying the image/);
    assert.equal((await host.sh('ls -A /var/lib/machines /etc/systemd/nspawn 2>/dev/null | grep halfway')).stdout, '', 'nothing of halfway left');
    assert.doesNotMatch(await host.must('machinectl list-images --no-legend'), /halfway/);
    // The copy was stopped, not left to write into a folder that was removed under it.
    assert.equal((await host.sh('pgrep -x cp')).code, 1, 'no copy still running');
  });
});
