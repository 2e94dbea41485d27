/**
 * The SSH executor against real OpenSSH servers: host keys (unknown, accepted, changed), client
 * authentication, become through sudo, ~/.ssh/config, four hosts in network namespaces of their
 * own with one down, and the round trips of a no-op run of the standard workload.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { z } from 'zod';
import type { StateRun } from '../src/catalog/staterun.ts';
import { Engine, type Registry } from '../src/engine/engine.ts';
import { LocalExecutor } from '../src/executors/local.ts';
import { SshExecutor } from '../src/executors/ssh/executor.ts';
import { buildGraph } from '../src/graph/build.ts';
import { defineType } from '../src/resources/define.ts';
import type { Provider } from '../src/resources/type.ts';
import type { Report } from './helpers/converge.ts';
import { makeSite, runCli } from './helpers/cli.ts';
import { netnsHost, netnsUnavailable, sshUnavailable, startSshd, type Sshd } from './helpers/sshd.ts';

const missing = sshUnavailable();
if (missing) process.stderr.write(`\n*** SKIPPED: SSH tests: ${missing} ***\n\n`);

function site(targets: string, states = 's:\n  - file: <%= it.vars.root %>/f\n    content: "over ssh\\n"\n', extra = '') {
  const root = mkdtempSync(join(tmpdir(), 'cairn-ssh-root-'));
  const dir = makeSite({ 'cairn.yaml': `targets:\n${targets}vars:\n  root: ${root}\n${extra}`, 'states/s.yaml': states });
  return { dir, root };
}

function sshTarget(name: string, s: Sshd, more: Record<string, unknown> = {}): string {
  const settings = { host: s.host, port: s.port, user: 'root', identity_file: s.identityFile, known_hosts: s.knownHosts, state_dir: join(mkdtempSync(join(tmpdir(), 'cairn-ssh-state-')), 'state'), run: ['s'], ...more };
  return `  ${name}:\n${Object.entries(settings).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`).join('')}`;
}

async function apply(dir: string, ...args: string[]) {
  const r = await runCli(['apply', '--site', dir, '--json', ...args]);
  return { status: r.status, report: JSON.parse(r.stdout || '{"targets":[]}') as Report, stderr: r.stderr };
}

describe('ssh', { skip: missing }, () => {
  let sshd: Sshd;
  before(async () => {
    sshd = await startSshd({ port: 22411 });
  });
  after(() => sshd?.stop());

  test('an unknown host key is refused, with how to accept it; --accept-new-host-keys records it', async () => {
    const knownHosts = join(mkdtempSync(join(tmpdir(), 'cairn-kh-')), 'known_hosts');
    const { dir, root } = site(sshTarget('h', sshd, { known_hosts: knownHosts }));
    const refused = await apply(dir);
    assert.equal(refused.status, 3);
    const t = refused.report.targets[0]!;
    assert.equal(t.status, 'unreachable');
    assert.match(t.error!, /the host key of \[127\.0\.0\.1\]:22411 is unknown \(ssh-ed25519 SHA256:\S+\); it is not in .*known_hosts\. Check the fingerprint, then run again with --accept-new-host-keys/);
    assert.ok(!existsSync(join(root, 'f')), 'nothing changed');

    const accepted = await apply(dir, '--accept-new-host-keys');
    assert.equal(accepted.status, 0, accepted.stderr);
    assert.equal(readFileSync(knownHosts, 'utf8'), `[127.0.0.1]:22411 ${sshd.hostKey}\n`);
    assert.equal(readFileSync(join(root, 'f'), 'utf8'), 'over ssh\n');
    const again = await apply(dir);
    assert.equal(again.status, 0);
    assert.equal(again.report.targets[0]!.counts.unchanged, 1);
  });

  test('a changed host key is always refused, even with --accept-new-host-keys', async () => {
    const knownHosts = join(mkdtempSync(join(tmpdir(), 'cairn-kh-')), 'known_hosts');
    const other = join(mkdtempSync(join(tmpdir(), 'cairn-kh-')), 'key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other]);
    const otherKey = readFileSync(`${other}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
    writeFileSync(knownHosts, `# a comment\n[127.0.0.1]:22411 ${otherKey}\n`);
    const { dir, root } = site(sshTarget('h', sshd, { known_hosts: knownHosts }));
    for (const args of [[], ['--accept-new-host-keys']]) {
      const r = await apply(dir, ...args);
      assert.equal(r.status, 3);
      assert.match(r.report.targets[0]!.error!, /HOST KEY CHANGED for \[127\.0\.0\.1\]:22411: it now offers ssh-ed25519 SHA256:\S+, which does not match .*known_hosts:2\..*ssh-keygen -R '\[127\.0\.0\.1\]:22411'/);
    }
    assert.ok(!existsSync(join(root, 'f')));
    assert.equal(readFileSync(knownHosts, 'utf8'), `# a comment\n[127.0.0.1]:22411 ${otherKey}\n`, 'known_hosts untouched');
  });

  test('a hashed known_hosts entry (ssh-keygen -H) is honoured', async () => {
    const knownHosts = join(mkdtempSync(join(tmpdir(), 'cairn-kh-')), 'known_hosts');
    writeFileSync(knownHosts, readFileSync(sshd.knownHosts));
    execFileSync('ssh-keygen', ['-q', '-H', '-f', knownHosts], { stdio: 'pipe' });
    assert.match(readFileSync(knownHosts, 'utf8'), /^\|1\|/);
    const { dir } = site(sshTarget('h', sshd, { known_hosts: knownHosts }));
    assert.equal((await apply(dir)).status, 0);
  });

  test('a key the server does not accept: exit 3, the host named, nothing else stops', async () => {
    const wrong = join(mkdtempSync(join(tmpdir(), 'cairn-key-')), 'id');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrong]);
    const { dir, root } = site(sshTarget('bad', sshd, { identity_file: wrong }) + sshTarget('good', sshd));
    const r = await apply(dir);
    assert.equal(r.status, 3);
    const [bad, good] = r.report.targets;
    assert.equal(bad!.status, 'unreachable');
    assert.equal(bad!.error, `authentication failed for root@127.0.0.1:22411 (tried key ${wrong})`);
    assert.equal(good!.status, 'ok');
    assert.ok(existsSync(join(root, 'f')));
    const text = await runCli(['apply', '--site', dir]);
    assert.match(text.stdout, /^bad: UNREACHABLE: authentication failed for root@127\.0\.0\.1:22411/m);
  });

  test('~/.ssh/config supplies HostName, Port, User and IdentityFile for a host alias', async () => {
    const home = mkdtempSync(join(tmpdir(), 'cairn-home-'));
    mkdirSync(join(home, '.ssh'));
    writeFileSync(join(home, '.ssh/config'), `Host other\n  Port 1\nHost box-*\n  HostName ${sshd.host}\n  Port ${sshd.port}\n  User root\n  IdentityFile ${sshd.identityFile}\n`);
    cpSync(sshd.knownHosts, join(home, '.ssh/known_hosts'));
    const root = mkdtempSync(join(tmpdir(), 'cairn-ssh-root-'));
    const dir = makeSite({
      'cairn.yaml': `targets:\n  box-1:\n    executor: ssh\n    state_dir: ${root}/.state\n    run: [s]\nvars:\n  root: ${root}\n`,
      'states/s.yaml': 's:\n  - file: <%= it.vars.root %>/f\n    content: "<%= it.facts.hostname %>"\n',
    });
    const r = await runCli(['apply', '--site', dir], { env: { HOME: home, SSH_AUTH_SOCK: '' } });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal(readFileSync(join(root, 'f'), 'utf8'), execFileSync('uname', ['-n'], { encoding: 'utf8' }).trim(), 'facts come from the target');
  });

  test('a connection lost mid-run ends that target as unreachable (exit 3), not as a string of failed nodes', async () => {
    // The second command blocks on a fifo nobody writes: the connection drops while it waits.
    const gate = join(mkdtempSync(join(tmpdir(), 'cairn-gate-')), 'gate');
    execFileSync('mkfifo', [gate]);
    const { dir, root } = site(sshTarget('h', sshd), `s:\n  - exec: echo started\n  - exec: cat ${gate}\n  - file: <%= it.vars.root %>/after\n    content: x\n`);
    let dropped = false;
    const { status, stdout: out } = await runCli(['apply', '--site', dir], {
      onStdout: (text) => {
        if (!dropped && text.includes('exec:echo started')) {
          dropped = true;
          sshd.dropConnections();
        }
      },
    });
    assert.equal(status, 3, out);
    assert.match(out, /^h: UNREACHABLE: lost the connection to root@127\.0\.0\.1:22411: /m);
    assert.doesNotMatch(out, /FAILED/);
    assert.ok(!existsSync(join(root, 'after')));
  });

  test('commands: exit status and output of quick commands are never lost; stdin, env, cwd and timeout', async () => {
    const exec = await SshExecutor.open('h', { host: sshd.host, port: sshd.port, user: 'root', identity_file: sshd.identityFile, known_hosts: sshd.knownHosts });
    try {
      // A quick command's exit status can arrive with the reply to the exec request itself.
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => exec.run(['/bin/sh', '-c', `echo ${i}; exit ${i % 3}`])));
      assert.deepEqual(results.map((r) => [r.code, r.stdout]), Array.from({ length: 40 }, (_, i) => [i % 3, `${i}\n`]));
      assert.deepEqual(await exec.run(['cat'], { stdin: 'in\n' }), { code: 0, stdout: 'in\n', stderr: '' });
      assert.equal((await exec.run(['/bin/sh', '-c', 'echo "$A $(pwd)"'], { env: { A: "it's" }, cwd: '/tmp' })).stdout, "it's /tmp\n");
      const slow = await exec.run(['sleep', '5'], { timeoutMs: 200 });
      assert.equal(slow.timedOut, true);
      assert.equal(slow.code, 137);
    } finally {
      await exec.close();
    }
  });

  test('facts come with the set-up, and a later call reads them again; a write puts the shell\'s umask back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-ssh-setup-'));
    const exec = await SshExecutor.open('h', { host: sshd.host, port: sshd.port, user: 'root', identity_file: sshd.identityFile, known_hosts: sshd.knownHosts });
    try {
      assert.equal(exec.roundTrips, 1);
      const facts = await exec.facts();
      assert.equal(exec.roundTrips, 1);
      assert.equal(facts.kernel, 'linux');
      assert.deepEqual(await exec.facts(), facts);
      assert.equal(exec.roundTrips, 2);
      await exec.writeFile(join(dir, 'private'), 'x', { mode: 0o600 });
      await exec.writeFile(join(dir, 'plain'), 'x');
      assert.equal(statSync(join(dir, 'private')).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir, 'plain')).mode & 0o777, 0o644);
    } finally {
      await exec.close();
    }
  });

  test('a large file comes back whole: its reply arrives in hundreds of chunks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-ssh-large-'));
    const path = join(dir, 'large.bin');
    const bytes = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) % 251;
    writeFileSync(path, bytes);
    const exec = await SshExecutor.open('h', { host: sshd.host, port: sshd.port, user: 'root', identity_file: sshd.identityFile, known_hosts: sshd.knownHosts });
    try {
      assert.ok((await exec.readFile(path))?.equals(bytes));
      // The shell goes on answering after it.
      assert.deepEqual(await exec.stat(join(dir, 'missing')), undefined);
      assert.equal((await exec.stat(path))?.size, bytes.length);
    } finally {
      await exec.close();
    }
  });

  test('a type that needs Cairn on the machine fails over plain SSH at plan time, saying so; locally it plans', async () => {
    const agentOnly = defineType({
      name: 'guest', key: 'name', description: 'test type that needs Cairn on the machine', stateful: true,
      schema: z.strictObject({ name: z.string() }), needs: ['cairn'],
    });
    const provider: Provider = { type: 'guest', name: 'test', suitable: () => true, read: async () => undefined, apply: async () => undefined };
    const registry: Registry = { type: (n) => (n === 'guest' ? agentOnly : undefined), provider: () => provider };
    const run: StateRun = {
      version: 1, target: { name: 'h', executor: 'ssh', state_dir: mkdtempSync(join(tmpdir(), 'cairn-state-')) }, vars: {}, facts: {}, os: {},
      invocations: [{
        index: 0, state: 's', params: {}, lazy: false, defer: false, via: 'test', includes: [],
        parts: [{ index: 0, type: 'guest', ref: 'guest:vm1', attributes: { name: 'vm1' }, meta: { noop: false, allow_reload: false, allow_rebuild: false, tags: [] }, requisites: [] }],
      }],
    };
    const exec = await SshExecutor.open('h', { host: sshd.host, port: sshd.port, user: 'root', identity_file: sshd.identityFile, known_hosts: sshd.knownHosts });
    try {
      const [overSsh] = await new Engine(run, buildGraph(run), exec, { mode: 'plan', registry }).execute();
      assert.deepEqual([overSsh!.status, overSsh!.error], ['failed', 'guest:vm1: the guest type needs Cairn on the machine (the local or agent executor), which the ssh executor does not offer']);
    } finally {
      await exec.close();
    }
    const [local] = await new Engine(run, buildGraph(run), new LocalExecutor(), { mode: 'plan', registry }).execute();
    assert.equal(local!.status, 'would-change');
  });

  test('the standard workload over SSH: 742 changes, then a no-op in a handful of round trips', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cairn-bench-site-'));
    cpSync(resolve('bench/site/states'), join(dir, 'states'), { recursive: true });
    cpSync(resolve('bench/site/templates'), join(dir, 'templates'), { recursive: true });
    const root = mkdtempSync(join(tmpdir(), 'cairn-bench-root-'));
    writeFileSync(join(dir, 'cairn.yaml'), `targets:\n${sshTarget('h', sshd, { run: ['workload'] })}vars:\n  root: ${root}/w\n  app_version: 1\n`);
    const first = await apply(dir);
    assert.equal(first.status, 0, first.stderr);
    assert.equal(first.report.targets[0]!.counts.changed, 743);
    const noop = await apply(dir);
    const t = noop.report.targets[0]!;
    assert.deepEqual(t.counts, { changed: 0, unchanged: 742, failed: 0, skipped: 0 });
    // The set-up with the facts, then the batched read of every path: nothing per node.
    assert.ok(t.round_trips! <= 2, `round trips: ${t.round_trips}`);
    const change = await apply(dir, '--var', 'app_version=2');
    assert.equal(change.report.targets[0]!.counts.changed, 2);
    assert.equal(readFileSync(join(root, 'w/d50/app.reloads'), 'utf8'), 'reloaded\nreloaded\n');
  });
});

/** Two users with sudo rights: one without a password, one that must type it. */
function sudoUsers(): string | undefined {
  if (!existsSync('/usr/bin/sudo')) return '/usr/bin/sudo is missing (install sudo: scripts/install.sh does)';
  for (const [user, rule] of [['cairn-nopw', 'NOPASSWD: ALL'], ['cairn-pw', 'ALL']] as const) {
    if (spawnSync('id', ['-u', user]).status !== 0) execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', user]);
    // Not locked ('!'): sshd refuses locked accounts. cairn-pw gets a real password for sudo to ask.
    execFileSync('chpasswd', { input: `${user}:${user === 'cairn-pw' ? 'correct-horse' : 'x'}\n` });
    if (user === 'cairn-nopw') execFileSync('usermod', ['-p', '*', user]);
    writeFileSync(`/etc/sudoers.d/${user}`, `${user} ALL=(ALL) ${rule}\n`, { mode: 0o440 });
  }
  return undefined;
}

describe('ssh become', { skip: missing }, () => {
  let sshd: Sshd;
  let why: string | undefined;
  before(async () => {
    why = sudoUsers();
    sshd = await startSshd({ port: 22412 });
  });
  after(() => sshd?.stop());

  test('become: true runs everything through sudo -n as root', async (t) => {
    if (why) return t.skip(why);
    const { dir, root } = site(
      sshTarget('h', sshd, { user: 'cairn-nopw', become: true }),
      's:\n  - directory: <%= it.vars.root %>/private\n    mode: "0700"\n  - file: <%= it.vars.root %>/private/secret\n    content: s3cret\n    mode: "0600"\n  - exec: id -un > <%= it.vars.root %>/private/whoami\n    creates: <%= it.vars.root %>/private/whoami\n',
    );
    const r = await apply(dir);
    assert.equal(r.status, 0, JSON.stringify(r.report));
    assert.equal(statSync(join(root, 'private/secret')).uid, 0);
    assert.equal(statSync(join(root, 'private/secret')).mode & 0o777, 0o600);
    assert.equal(readFileSync(join(root, 'private/whoami'), 'utf8'), 'root\n');
    assert.equal((await apply(dir)).report.targets[0]!.counts.changed, 0);
  });

  test('without become, the login user acts as itself', async (t) => {
    if (why) return t.skip(why);
    // Its own state folder: one it could not search would fail the run (a pending file it cannot read is not "none pending").
    const state = mkdtempSync(join(tmpdir(), 'cairn-ssh-state-'));
    execFileSync('chown', ['cairn-nopw', state]);
    const { dir, root } = site(sshTarget('h', sshd, { user: 'cairn-nopw', state_dir: join(state, 'state') }), 's:\n  - exec: id -un > <%= it.vars.root %>/whoami\n');
    execFileSync('chmod', ['0777', root]);
    assert.equal((await apply(dir)).status, 0);
    assert.equal(readFileSync(join(root, 'whoami'), 'utf8'), 'cairn-nopw\n');
  });

  test('sudo that wants a password fails clearly: exit 3, nothing changed', async (t) => {
    if (why) return t.skip(why);
    const { dir, root } = site(sshTarget('h', sshd, { user: 'cairn-pw', become: true }));
    const r = await apply(dir);
    assert.equal(r.status, 3);
    assert.match(r.report.targets[0]!.error!, /^become: sudo on cairn-pw@127\.0\.0\.1:22412 wants a password to run as root\. Cairn runs sudo non-interactively \(sudo -n\): allow cairn-pw to run commands as root without a password \(NOPASSWD in sudoers\)$/);
    assert.ok(!existsSync(join(root, 'f')));
  });
});

const noNetns = missing ?? netnsUnavailable();
if (noNetns && !missing) process.stderr.write(`\n*** SKIPPED: SSH tests across network namespaces: ${noNetns} ***\n\n`);

describe('ssh across network namespaces', { skip: noNetns }, () => {
  const hosts: { address: string; remove(): void; sshd?: Sshd }[] = [];
  before(async () => {
    for (let i = 1; i <= 4; i++) {
      const ns = netnsHost(`cairn-t${i}`, 40 + i);
      hosts.push(ns);
      // Host 3 is down: its namespace is up, nothing listens.
      if (i !== 3) Object.assign(ns, { sshd: await startSshd({ host: ns.address, port: 22, netns: `cairn-t${i}` }) });
    }
  });
  after(() => {
    for (const h of hosts) {
      h.sshd?.stop();
      h.remove();
    }
  });

  test('four hosts, one down: the other three converge, the down one is named, exit 3', { timeout: 60_000 }, async () => {
    const up = hosts.find((h) => h.sshd)!.sshd!;
    const knownHosts = join(mkdtempSync(join(tmpdir(), 'cairn-kh-')), 'known_hosts');
    writeFileSync(knownHosts, hosts.filter((h) => h.sshd).map((h) => `${h.address} ${h.sshd!.hostKey}\n`).join(''));
    const targets = hosts.map((h, i) => `  h${i + 1}:\n    host: ${h.address}\n    user: root\n    identity_file: ${up.identityFile}\n    known_hosts: ${knownHosts}\n    state_dir: /tmp/cairn-netns-state-${process.pid}/h${i + 1}\n    run: [s]\n`).join('');
    const { dir, root } = site(targets, 's:\n  - file: <%= it.vars.root %>/<%= it.target.name %>\n    content: "<%= it.target.host %>\\n"\n',
      'groups:\n  fleet: { match: "h*" }\n');
    const r = await runCli(['apply', '--site', dir, '-t', 'fleet', '--forks', '4', '--json']);
    assert.equal(r.status, 3, r.stderr);
    const report = JSON.parse(r.stdout) as Report;
    assert.deepEqual(report.targets.map((t) => [t.name, t.status]), [['h1', 'ok'], ['h2', 'ok'], ['h3', 'unreachable'], ['h4', 'ok']]);
    assert.match(report.targets[2]!.error!, /^cannot connect to root@10\.201\.43\.2:22: connect (ECONNREFUSED|EHOSTUNREACH)/);
    for (const i of [1, 2, 4]) assert.equal(readFileSync(join(root, `h${i}`), 'utf8'), `10.201.${40 + i}.2\n`);
    assert.ok(!existsSync(join(root, 'h3')));
    // Plain output: a summary line per target, the unreachable one named with its host.
    const text = await runCli(['plan', '--site', dir, '-t', 'h*']);
    assert.match(text.stdout, /^h3: UNREACHABLE: cannot connect to root@10\.201\.43\.2:22/m);
    assert.equal(text.stdout.match(/^h[124]: 0 to change, 1 unchanged, 0 failed, 0 skipped in [\d.]+ s \(\d+ round trips\)$/gm)?.length, 3);
  });
});
