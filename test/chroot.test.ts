/**
 * The chroot executor (DESIGN §7) on a real debootstrapped Debian bookworm root: an overlay of
 * the lab's golden root, with the lab's local apt repository copied in. A system site (packages,
 * a packaged service enabled, a user and group, a file they own, cron, the host name) converges
 * through the CLI with `executor: chroot`, again with 0 changes, and through `--root`; nothing
 * leaks to the host (its passwd, its mounts, its services); a part that would start a service
 * fails at plan time with nothing applied; a run killed outright leaves no mount and no
 * policy-rc.d behind; and the converged root, booted with systemd-nspawn, starts the enabled
 * service.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { NodeResult, TargetReport } from '../src/engine/engine.ts';
import { makeSite, runCli } from './helpers/cli.ts';
import { LAB_SH, labUnavailable } from './helpers/lab.ts';
import { waitUntil } from './helpers/wait.ts';

const TOOLS = ['unshare', 'nsenter', 'chroot', 'mount', 'systemd-nspawn'];

function onPath(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } }).status === 0;
}

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the chroot executor needs root (chroot, mount namespaces, overlay mounts)';
  const missing = TOOLS.filter((t) => !onPath(t));
  if (missing.length > 0) return `missing tools: ${missing.join(', ')}`;
  // The root is the lab's golden root: what the lab needs to build it.
  return labUnavailable();
}

const why = unavailable();
if (why) process.stderr.write(`CHROOT TESTS SKIPPED: ${why}\n`);

/** Mount points at or below `dir` in this process's mount table (the host's). */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '')
    .filter((point) => point.startsWith(`${dir}/`));
}

/** Processes whose root directory is `dir`: a chroot session still alive. */
function processesIn(dir: string): number[] {
  const found: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readlinkSync(`/proc/${pid}/root`) === dir) found.push(Number(pid));
    } catch {
      // Gone meanwhile, or a kernel thread.
    }
  }
  return found;
}


const brief = (nodes: NodeResult[]) => nodes.map((n) => `${n.status} ${n.ref}`);

async function applyJson(args: string[]): Promise<{ status: number | null; target: TargetReport; stderr: string }> {
  const r = await runCli([...args, '--json']);
  try {
    return { status: r.status, target: (JSON.parse(r.stdout) as { targets: TargetReport[] }).targets[0]!, stderr: r.stderr };
  } catch {
    throw new Error(`cairn ${args[0]} gave no JSON report (exit ${r.status}):\n${r.stderr}\n${r.stdout}`);
  }
}

const BUILDER_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDGNQ3XJE8mVgZCzAFOFrYSKJOfiM9S03i5ukxPRwXnO builder';

const SYSTEM = `system:
  - package: tree
  - package: cairn-svc
  - service: cairn-svc
    enable: true
  - group: builders
  - user: alice
    groups: [builders]
    shell: /bin/sh
  - file: /srv/notes.txt
    content: "built offline\\n"
    owner: alice
    group: builders
    mode: "0640"
  - authorized_key: "${BUILDER_KEY}"
    user: alice
  - cron: nightly
    user: alice
    command: /usr/bin/tree /srv > /dev/null
    hour: 3
    minute: 15
  - hostname: image1
`;

describe('the chroot executor on a debootstrapped root', { skip: why }, () => {
  let work: string;
  let root: string;

  before(() => {
    const golden = execFileSync('sh', [LAB_SH, 'root'], { encoding: 'utf8' }).trim();
    const repo = execFileSync('sh', [LAB_SH, 'repo'], { encoding: 'utf8' }).trim();
    // Beside the golden root (the same file system), so the overlay's upper layer is cheap.
    work = mkdtempSync(join(resolve(golden, '..'), 'chroot-test-'));
    root = join(work, 'fs');
    for (const d of ['fs', 'upper', 'work']) mkdirSync(join(work, d));
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${golden}/fs,upperdir=${work}/upper,workdir=${work}/work`, root]);
    // The lab's apt repository, inside the root (as lab.sh's mk gives its hosts).
    mkdirSync(join(root, 'srv/repo'), { recursive: true });
    execFileSync('cp', ['-a', `${repo}/.`, join(root, 'srv/repo')]);
    writeFileSync(join(root, 'etc/apt/sources.list.d/cairn-lab.list'), 'deb [trusted=yes] file:/srv/repo ./\n');
    writeFileSync(join(root, 'etc/apt/apt.conf.d/99cairn-lab'), 'Acquire::Languages "none";\n');
  });

  after(() => {
    if (!root) return;
    spawnSync('umount', ['-l', root]);
    rmSync(work, { recursive: true, force: true });
  });

  function site(state: string, extra = ''): string {
    return makeSite({
      'cairn.yaml': `targets:\n  img:\n    executor: chroot\n    root: ${JSON.stringify(root)}\n    run: [system]\n${extra}`,
      'states/system.yaml': state,
    });
  }

  test('a part that would start a service fails at plan time, naming the part and the executor, and nothing is applied', async () => {
    const s = site(`system:\n  - file: /srv/should-not-exist\n    content: "no\\n"\n  - service: cron\n    ensure: running\n`);
    for (const mode of ['plan', 'apply']) {
      const r = await applyJson([mode, '--site', s]);
      assert.equal(r.status, 1, r.stderr);
      assert.deepEqual(brief(r.target.nodes), ['skipped file:/srv/should-not-exist', 'failed service:cron']);
      const failed = r.target.nodes[1]!;
      assert.match(failed.error ?? '', /^service:cron \(states\/system\.yaml:4:\d+\): `ensure` of the service type needs a running system, which the chroot executor does not offer$/);
      assert.match(r.target.nodes[0]!.reason ?? '', /not run: service:cron needs what the chroot executor does not offer/);
    }
    assert.equal(existsSync(join(root, 'srv/should-not-exist')), false);
    assert.deepEqual(mountsUnder(root), []);
  });

  test('a system site converges the root: packages, an enabled service, accounts, an owned file, cron, the host name; again with 0 changes', async () => {
    const hostPasswd = readFileSync('/etc/passwd');
    const hostGroup = readFileSync('/etc/group');
    const hostName = readFileSync('/etc/hostname', 'utf8');
    const s = site(SYSTEM);

    // The root's facts, from its files: its release, the init it would boot, its package tool.
    const facts = await runCli(['facts', '--site', s, '--json']);
    assert.equal(facts.status, 0, facts.stderr);
    const rootFacts = (JSON.parse(facts.stdout) as { targets: { facts: Record<string, unknown> }[] }).targets[0]!.facts;
    assert.deepEqual([rootFacts.distribution, rootFacts.release, rootFacts.init_system, rootFacts.package_manager], ['debian', '12', 'systemd', 'apt']);

    let r = await applyJson(['apply', '--site', s]);
    assert.equal(r.status, 0, `${r.stderr}\n${JSON.stringify(r.target.nodes, null, 1)}`);
    assert.deepEqual(brief(r.target.nodes), [
      'changed package:tree', 'changed package:cairn-svc', 'changed service:cairn-svc', 'changed group:builders',
      'changed user:alice', 'changed file:/srv/notes.txt', `changed authorized_key:alice#${BUILDER_KEY.split(' ').slice(0, 2).join(' ')}`, 'changed cron:nightly', 'changed hostname:image1',
    ]);

    // In the root, by its own files.
    const inRoot = (cmd: string) => execFileSync('chroot', [root, '/bin/sh', '-c', cmd], { encoding: 'utf8' }).trim();
    assert.equal(inRoot("dpkg-query -W -f '${Status};' tree cairn-svc"), 'install ok installed;install ok installed;');
    assert.equal(inRoot('systemctl is-enabled cairn-svc'), 'enabled');
    assert.match(inRoot('id alice'), /groups=.*\(builders\)/);
    const notes = statSync(join(root, 'srv/notes.txt'));
    const alice = readFileSync(join(root, 'etc/passwd'), 'utf8').split('\n').find((l) => l.startsWith('alice:'))!.split(':');
    const builders = readFileSync(join(root, 'etc/group'), 'utf8').split('\n').find((l) => l.startsWith('builders:'))!.split(':');
    assert.deepEqual([notes.uid, notes.gid, notes.mode & 0o777], [Number(alice[2]), Number(builders[2]), 0o640]);
    const keys = join(root, 'home/alice/.ssh/authorized_keys');
    assert.ok(readFileSync(keys, 'utf8').includes(BUILDER_KEY));
    assert.equal(statSync(keys).uid, Number(alice[2]));
    assert.match(inRoot('crontab -l -u alice'), /# cairn: nightly\n15 3 \* \* \* \/usr\/bin\/tree \/srv > \/dev\/null/);
    assert.equal(readFileSync(join(root, 'etc/hostname'), 'utf8'), 'image1\n');

    // Nothing of it on the host: its accounts, its name, its mounts, its services, the policy-rc.d taken away.
    assert.deepEqual(readFileSync('/etc/passwd'), hostPasswd);
    assert.deepEqual(readFileSync('/etc/group'), hostGroup);
    assert.equal(readFileSync('/etc/hostname', 'utf8'), hostName);
    assert.deepEqual(mountsUnder(root), []);
    assert.deepEqual(processesIn(root), [], 'no process of the run (no service) is left in the root');
    assert.equal(existsSync(join(root, 'usr/sbin/policy-rc.d')), false, "Cairn's policy-rc.d is gone after the run");

    r = await applyJson(['apply', '--site', s]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.target.counts, { changed: 0, unchanged: 9, failed: 0, skipped: 0 });
    assert.deepEqual(mountsUnder(root), []);
  });

  test('--root converges a root as the selected target; a root that is not one is exit 3, naming it, nothing changed', async () => {
    const s = makeSite({
      'cairn.yaml': 'targets:\n  img: { run: [system] }\n  other: { run: [system] }\n',
      'states/system.yaml': 'system:\n  - file: /srv/by-root-option\n    content: "via --root\\n"\n',
    });
    let r = await runCli(['apply', '--site', s, '--root', root]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--root converges one root, but 2 targets are selected \(img, other\)/);

    // A policy-rc.d the root has already is its own: left in place, as it was.
    const policy = join(root, 'usr/sbin/policy-rc.d');
    writeFileSync(policy, '#!/bin/sh\n# the image builder\'s own\nexit 0\n', { mode: 0o755 });
    r = await runCli(['apply', '--site', s, '--target', 'img', '--root', root]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(join(root, 'srv/by-root-option'), 'utf8'), 'via --root\n');
    assert.equal(existsSync('/srv/by-root-option'), false);
    assert.equal(readFileSync(policy, 'utf8'), '#!/bin/sh\n# the image builder\'s own\nexit 0\n');
    rmSync(policy);

    const notDir = join(work, 'upper', 'not-a-root');
    writeFileSync(notDir, '');
    const noShell = mkdtempSync(join(work, 'empty-'));
    for (const [path, said] of [[notDir, 'is not a directory'], [noShell, 'has no /bin/sh'], [join(work, 'nowhere'), 'does not exist']] as const) {
      r = await runCli(['apply', '--site', s, '--target', 'img', '--root', path]);
      assert.equal(r.status, 3, r.stderr);
      assert.ok(r.stdout.includes(`img: UNREACHABLE: the root ${path} ${said}`), `${r.stdout}${r.stderr}`);
    }
    assert.deepEqual(readdirSync(noShell), []);
  });

  test('a run killed outright (SIGKILL) mid-run leaves no mount under the root and no policy-rc.d', async () => {
    const marker = join(root, 'srv/run-started');
    const s = site('system:\n  - exec: "grep -c proc /proc/self/mountinfo > /srv/run-started; while :; do echo tick; sleep 0.2; done"\n');
    const child = spawn(process.execPath, ['--import', 'tsx', resolve(import.meta.dirname, '../src/cli/bin.ts'), 'apply', '--site', s],
      { stdio: ['ignore', 'pipe', 'pipe'], cwd: resolve(import.meta.dirname, '..') });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    await waitUntil(() => (existsSync(marker) && readFileSync(marker, 'utf8').trim() !== '') || child.exitCode !== null, () => `the run's command to start:\n${output}`);
    assert.equal(child.exitCode, null, `cairn ended before its command started:\n${output}`);
    // The command has /proc (bound in its namespace) while the host sees no mount under the root.
    assert.ok(Number(readFileSync(marker, 'utf8')) > 0, 'the command sees /proc mounted');
    assert.deepEqual(mountsUnder(root), []);
    assert.equal(existsSync(join(root, 'usr/sbin/policy-rc.d')), true, 'policy-rc.d in place while the session lasts');
    child.kill('SIGKILL');
    await exited;
    // The orphaned command dies on its closed output, the shell on its closed input: the session
    // ends by itself, taking its namespace (and mounts) with it and removing policy-rc.d.
    await waitUntil(() => processesIn(root).length === 0, () => `the killed run's processes to end: ${processesIn(root).join(' ')}`);
    assert.deepEqual(mountsUnder(root), []);
    assert.equal(existsSync(join(root, 'usr/sbin/policy-rc.d')), false);
    rmSync(marker);
  });

  test('the converged root boots with systemd-nspawn and starts the service it enabled', { timeout: 180_000 }, async () => {
    // Converged here (in sync already when the case above ran).
    const converged = await applyJson(['apply', '--site', site(SYSTEM)]);
    assert.equal(converged.status, 0, converged.stderr);
    const machine = `cairn-chroot-${process.pid}`;
    // Its own cgroup, as lab.sh's `up` gives each guest: nspawn without systemd on the host.
    const cgroups = ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified', '/sys/fs/cgroup'].filter((c) => existsSync(join(c, 'cgroup.procs')));
    const boot = spawn('sh', ['-c',
      'for c in $CGS; do mkdir -p "$c/cairn-lab/$0" && echo $$ > "$c/cairn-lab/$0/cgroup.procs"; done; ' +
      'exec systemd-nspawn --register=no --keep-unit --console=read-only -q --private-network -M "$0" -D "$1" -b',
      machine, root], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CGS: cgroups.join(' ') }, detached: true });
    let log = '';
    boot.stdout.on('data', (d: Buffer) => (log += d.toString()));
    boot.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const ended = new Promise<void>((done) => boot.once('exit', () => done()));
    try {
      const init = () => {
        const nspawn = readFileSync(`/proc/${boot.pid}/task/${boot.pid}/children`, 'utf8').trim();
        for (const pid of nspawn.split(/\s+/).filter(Boolean)) {
          try {
            if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'systemd') return pid;
          } catch {
            // Gone meanwhile.
          }
        }
        return undefined;
      };
      let pid: string | undefined;
      await waitUntil(() => boot.exitCode !== null || (pid = init()) !== undefined, () => `the container's init:\n${log}`);
      assert.ok(pid, `systemd-nspawn ended before its init started:\n${log}`);
      // The guest's bus exists once systemd is up: until then is-system-running fails.
      await waitUntil(() => {
        const r = spawnSync('nsenter', ['-t', pid!, '-a', 'systemctl', 'is-system-running', '--wait'], { encoding: 'utf8' });
        return ['running', 'degraded'].includes(r.stdout.trim());
      }, () => `the container to finish booting:\n${log}`, 120_000);
      const inGuest = (...argv: string[]) => spawnSync('nsenter', ['-t', pid!, '-a', ...argv], { encoding: 'utf8' }).stdout.trim();
      assert.equal(inGuest('systemctl', 'is-enabled', 'cairn-svc'), 'enabled');
      assert.equal(inGuest('systemctl', 'is-active', 'cairn-svc'), 'active');
      assert.equal(inGuest('hostname'), 'image1');
      assert.equal(inGuest('tree', '--version').startsWith('tree v2'), true);
    } finally {
      // nspawn passes SIGTERM on to the container's init as a poweroff, and exits once it is done.
      if (boot.exitCode === null) boot.kill('SIGTERM');
      await ended;
      for (const c of cgroups) spawnSync('rmdir', [join(c, 'cairn-lab', machine)]);
    }
  });
});
