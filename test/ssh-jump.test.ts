/**
 * Jump hosts, connect_timeout and a missing identity_file, against real OpenSSH servers: a
 * bastion in a network namespace reachable from here, and a far host in another namespace that
 * only the bastion's namespace has a link to. A third namespace blackholes its address (frames
 * go to a MAC nobody has), for connections that never answer. All addresses are 10.203.x.y,
 * inside these namespaces; this machine routes 10.203.2.0/24 nowhere, so nothing leaves it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseJump, sshConfigFor } from '../src/executors/ssh/config.ts';
import type { Report } from './helpers/converge.ts';
import { makeSite, runCli } from './helpers/cli.ts';
import { clientKey, netnsUnavailable, sshUnavailable, startSshd, type Sshd } from './helpers/sshd.ts';

const BASTION = '10.203.1.2';
const FAR = '10.203.2.2';
const HOLE = '10.203.3.2';

function site(targets: Record<string, Record<string, unknown>>) {
  const root = mkdtempSync(join(tmpdir(), 'cairn-jump-root-'));
  const state = mkdtempSync(join(tmpdir(), 'cairn-jump-state-'));
  const yaml = Object.entries(targets).map(([name, settings]) =>
    `  ${name}:\n${Object.entries({ state_dir: join(state, name), run: ['s'], ...settings }).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`).join('')}`).join('');
  const dir = makeSite({
    'cairn.yaml': `targets:\n${yaml}vars:\n  root: ${root}\n`,
    'states/s.yaml': 's:\n  - file: <%= it.vars.root %>/<%= it.target.name %>\n    content: "over the bastion\\n"\n',
  });
  return { dir, root };
}

async function apply(dir: string, args: string[] = [], env: Record<string, string> = {}) {
  const r = await runCli(['apply', '--site', dir, '--json', ...args], { env });
  return { status: r.status, report: JSON.parse(r.stdout || '{"targets":[]}') as Report, stderr: r.stderr };
}

function home(sshConfig: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-jump-home-'));
  mkdirSync(join(dir, '.ssh'), { mode: 0o700 });
  writeFileSync(join(dir, '.ssh', 'config'), sshConfig);
  return dir;
}

test('jump hops: [user@]host[:port], comma-separated or a list, ssh:// and [v6]; none is none', () => {
  assert.deepEqual(parseJump('root@bastion:2222,gw'), [{ user: 'root', host: 'bastion', port: 2222 }, { host: 'gw' }]);
  assert.deepEqual(parseJump(['ssh://ops@[fd00::1]:22', 'b']), [{ user: 'ops', host: 'fd00::1', port: 22 }, { host: 'b' }]);
  assert.deepEqual(parseJump('none'), []);
  assert.throws(() => parseJump('a:b:c'), /"a:b:c" is not a jump host: write \[user@\]host\[:port\]/);
  assert.throws(() => parseJump('h:70000'), /not a jump host/);
});

test('~/.ssh/config: ProxyJump and ConnectTimeout, the first value winning', () => {
  const text = 'Host far\n  ProxyJump root@gw:22\n  ConnectTimeout 3\nHost *\n  ProxyJump other\n  ConnectTimeout 9\n';
  assert.deepEqual(sshConfigFor(text, 'far'), { identityFiles: [], proxyJump: 'root@gw:22', connectTimeout: 3 });
  assert.deepEqual(sshConfigFor(text, 'near'), { identityFiles: [], proxyJump: 'other', connectTimeout: 9 });
});

test('a jump that is not [user@]host[:port] is a site error (exit 2)', async () => {
  const { dir } = site({ h: { host: '127.0.0.1', port: 22499, jump: ['root@gw:22', 'a b'] } });
  const r = await runCli(['plan', '--site', dir]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /a jump host is \[user@\]host\[:port\]/);
});

test('an identity_file that does not exist is a site error naming the target and the path: exit 2, nothing run', async () => {
  const missingKey = join(mkdtempSync(join(tmpdir(), 'cairn-nokey-')), 'id_gone');
  const { dir, root } = site({ h: { host: '127.0.0.1', port: 22499, user: 'root', identity_file: missingKey } });
  const r = await runCli(['apply', '--site', dir]);
  assert.equal(r.status, 2, r.stderr);
  assert.ok(r.stderr.includes(`target h: identity_file ${missingKey} does not exist`), r.stderr);
  assert.ok(!existsSync(join(root, 'h')));
});

const missing = sshUnavailable() ?? netnsUnavailable();
if (missing) process.stderr.write(`\n*** SKIPPED: SSH jump-host tests across network namespaces: ${missing} ***\n\n`);

describe('ssh through a jump host', { skip: missing }, () => {
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
  const quietly = (...args: string[]) => {
    try {
      ip(...args);
    } catch {
      // Not there.
    }
  };
  const teardown = () => {
    for (const ns of ['cairn-j1', 'cairn-j2', 'cairn-j3']) quietly('netns', 'del', ns);
    quietly('link', 'del', 've-cairn-j1');
    quietly('link', 'del', 've-cairn-j3');
    quietly('route', 'del', 'unreachable', '10.203.2.0/24');
  };
  let bastion: Sshd;
  let far: Sshd;
  let knownHosts: string;
  const identity = clientKey();

  before(async () => {
    teardown();
    for (const ns of ['cairn-j1', 'cairn-j2', 'cairn-j3']) {
      ip('netns', 'add', ns);
      ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
    }
    // Here ↔ bastion.
    ip('link', 'add', 've-cairn-j1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', 'cairn-j1');
    ip('addr', 'add', '10.203.1.1/24', 'dev', 've-cairn-j1');
    ip('link', 'set', 've-cairn-j1', 'up');
    ip('netns', 'exec', 'cairn-j1', 'ip', 'addr', 'add', `${BASTION}/24`, 'dev', 'eth0');
    ip('netns', 'exec', 'cairn-j1', 'ip', 'link', 'set', 'eth0', 'up');
    // Bastion ↔ far host: a link this machine has no end of (and the bastion does not forward).
    ip('netns', 'exec', 'cairn-j1', 'ip', 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', 'cairn-j2');
    ip('netns', 'exec', 'cairn-j1', 'ip', 'addr', 'add', '10.203.2.1/24', 'dev', 'eth1');
    ip('netns', 'exec', 'cairn-j1', 'ip', 'link', 'set', 'eth1', 'up');
    ip('netns', 'exec', 'cairn-j2', 'ip', 'addr', 'add', `${FAR}/24`, 'dev', 'eth0');
    ip('netns', 'exec', 'cairn-j2', 'ip', 'link', 'set', 'eth0', 'up');
    // Without a route of its own, a direct try would follow this machine's default route out.
    ip('route', 'add', 'unreachable', '10.203.2.0/24');
    // A blackhole: the peer is up (so the link has carrier) but frames go to a MAC it does not have.
    ip('link', 'add', 've-cairn-j3', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', 'cairn-j3');
    ip('addr', 'add', '10.203.3.1/24', 'dev', 've-cairn-j3');
    ip('link', 'set', 've-cairn-j3', 'up');
    ip('netns', 'exec', 'cairn-j3', 'ip', 'link', 'set', 'eth0', 'up');
    ip('neigh', 'replace', HOLE, 'lladdr', '02:00:5e:00:20:03', 'dev', 've-cairn-j3', 'nud', 'permanent');

    bastion = await startSshd({ host: BASTION, port: 22, netns: 'cairn-j1' });
    far = await startSshd({ host: FAR, port: 22, netns: 'cairn-j2', unroutable: true });
    knownHosts = join(mkdtempSync(join(tmpdir(), 'cairn-jump-kh-')), 'known_hosts');
    writeFileSync(knownHosts, `${BASTION} ${bastion.hostKey}\n${FAR} ${far.hostKey}\n`);
  });
  after(() => {
    bastion?.stop();
    far?.stop();
    teardown();
  });

  test('this machine cannot reach the far host directly', async () => {
    const err = await new Promise<Error | undefined>((resolve) => {
      const s = createConnection({ host: FAR, port: 22, timeout: 3000 }, () => {
        s.destroy();
        resolve(undefined);
      });
      s.on('timeout', () => {
        s.destroy();
        resolve(new Error('timed out'));
      });
      s.on('error', resolve);
    });
    assert.ok(err, `${FAR}:22 answered from here`);
  });

  test('jump: root@bastion:22 (a string or a list) converges a host only the bastion reaches', { timeout: 60_000 }, async () => {
    const common = { host: FAR, user: 'root', identity_file: identity, known_hosts: knownHosts };
    const { dir, root } = site({ a: { ...common, jump: `root@${BASTION}:22` }, b: { ...common, jump: [`root@${BASTION}:22`] } });
    const r = await apply(dir, ['--forks', '2']);
    assert.equal(r.status, 0, r.stderr + JSON.stringify(r.report));
    assert.deepEqual(r.report.targets.map((t) => [t.name, t.status]), [['a', 'ok'], ['b', 'ok']]);
    assert.equal(readFileSync(join(root, 'a'), 'utf8'), 'over the bastion\n');
    assert.equal(readFileSync(join(root, 'b'), 'utf8'), 'over the bastion\n');
    const again = await apply(dir);
    assert.equal(again.status, 0);
    assert.equal(again.report.targets[0]!.counts.changed, 0);
  });

  test("~/.ssh/config's ProxyJump is honoured, and ProxyJump none turns it off", { timeout: 60_000 }, async () => {
    const HOME = home(`Host bastion\n  HostName ${BASTION}\n  User root\n  ProxyJump none\n` +
      `Host far\n  HostName ${FAR}\n  User root\n\nHost *\n  ProxyJump bastion\n`);
    const { dir, root } = site({ far: { host: 'far', identity_file: identity, known_hosts: knownHosts }, gate: { host: 'bastion', identity_file: identity, known_hosts: knownHosts } });
    const r = await apply(dir, [], { HOME });
    assert.equal(r.status, 0, r.stderr + JSON.stringify(r.report));
    assert.equal(readFileSync(join(root, 'far'), 'utf8'), 'over the bastion\n');
    assert.equal(readFileSync(join(root, 'gate'), 'utf8'), 'over the bastion\n');
  });

  test("a jump host's key is verified: unknown refused naming the hop, recorded with --accept-new-host-keys; changed always refused", { timeout: 60_000 }, async () => {
    const HOME = home(`Host bastion\n  HostName ${BASTION}\n  User root\n`);
    const kh = join(mkdtempSync(join(tmpdir(), 'cairn-jump-kh-')), 'known_hosts');
    writeFileSync(kh, `${FAR} ${far.hostKey}\n`);
    const { dir, root } = site({ far: { host: FAR, user: 'root', identity_file: identity, known_hosts: kh, jump: 'bastion' } });
    const refused = await apply(dir, [], { HOME });
    assert.equal(refused.status, 3);
    assert.match(refused.report.targets[0]!.error!, /^jump bastion:22: the host key of 10\.203\.1\.2 is unknown \(ssh-ed25519 SHA256:\S+\); it is not in \S+known_hosts\. Check the fingerprint, then run again with --accept-new-host-keys/);
    assert.ok(!existsSync(join(root, 'far')));

    const accepted = await apply(dir, ['--accept-new-host-keys'], { HOME });
    assert.equal(accepted.status, 0, JSON.stringify(accepted.report));
    assert.ok(readFileSync(kh, 'utf8').includes(`${BASTION} ${bastion.hostKey}\n`));

    writeFileSync(kh, `${FAR} ${far.hostKey}\n${BASTION} ${far.hostKey}\n`);
    const changed = await apply(dir, ['--accept-new-host-keys'], { HOME });
    assert.equal(changed.status, 3);
    assert.match(changed.report.targets[0]!.error!, /^jump bastion:22: HOST KEY CHANGED for 10\.203\.1\.2: /);
  });

  test('a host the bastion cannot reach is unreachable (exit 3), named with the hop', { timeout: 60_000 }, async () => {
    const { dir } = site({ gone: { host: '10.203.2.3', user: 'root', identity_file: identity, known_hosts: knownHosts, jump: `root@${BASTION}`, connect_timeout: 1 } });
    const r = await apply(dir);
    assert.equal(r.status, 3);
    assert.match(r.report.targets[0]!.error!, /^jump 10\.203\.1\.2:22: cannot connect to root@10\.203\.2\.3:22: /);
  });

  test('connect_timeout (and ConnectTimeout): a host that never answers is unreachable, named with the timeout; the others converge', { timeout: 60_000 }, async () => {
    const HOME = home(`Host hole\n  HostName ${HOLE}\n  User root\n  ConnectTimeout 1\n`);
    const { dir, root } = site({
      hole: { host: HOLE, user: 'root', identity_file: identity, known_hosts: knownHosts, connect_timeout: 1 },
      hole2: { host: 'hole', identity_file: identity, known_hosts: knownHosts },
      gate: { host: BASTION, user: 'root', identity_file: identity, known_hosts: knownHosts },
    });
    const r = await apply(dir, ['--forks', '3'], { HOME });
    assert.equal(r.status, 3, r.stderr);
    assert.deepEqual(r.report.targets.map((t) => [t.name, t.status]), [['hole', 'unreachable'], ['hole2', 'unreachable'], ['gate', 'ok']]);
    for (const t of r.report.targets.slice(0, 2)) assert.equal(t.error, 'cannot connect to root@10.203.3.2:22: timed out after 1 s (connect_timeout)');
    assert.ok(existsSync(join(root, 'gate')));
  });
});
