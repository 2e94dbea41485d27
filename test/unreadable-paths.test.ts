/**
 * A path Cairn cannot read is an error, never "absent" (DESIGN §5.9): run as a user who may not
 * search a folder or read a file, `plan` fails those nodes naming the path instead of planning a
 * create, and an `exec` whose `creates` names such a path fails instead of running. Through the
 * CLI, twice: the built `cairn` run locally as `nobody`, and over SSH logged in as an unprivileged
 * user without become, where the batched read still costs one round trip.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { NodeResult, TargetReport } from '../src/engine/engine.ts';
import { CAIRN, makeSite, runCli } from './helpers/cli.ts';
import { sshUnavailable, startSshd, type Sshd } from './helpers/sshd.ts';

/**
 * A folder only root may search (`private/`, holding `f`), a file only root may read (`secret`),
 * and a folder anyone may write (`open/`), where the `exec` would leave its mark.
 */
function tree(): string {
  const root = mkdtempSync(join(tmpdir(), 'cairn-denied-'));
  chmodSync(root, 0o755);
  mkdirSync(join(root, 'private'), { mode: 0o700 });
  writeFileSync(join(root, 'private/f'), 'there\n');
  writeFileSync(join(root, 'secret'), 'root only\n', { mode: 0o600 });
  mkdirSync(join(root, 'open'), { mode: 0o777 });
  chmodSync(join(root, 'open'), 0o777);
  return root;
}

/** The state: a file behind the private folder, the unreadable file, an exec guarded by `creates` on the private file, and a plain new file. */
const STATE = 's:\n' +
  '  - file: <%= it.vars.root %>/private/x\n    content: "x\\n"\n' +
  '  - file: <%= it.vars.root %>/secret\n    content: "x\\n"\n' +
  '  - exec: touch <%= it.vars.root %>/open/ran\n    creates: <%= it.vars.root %>/private/f\n' +
  '  - file: <%= it.vars.root %>/open/new\n    content: "x\\n"\n';

const brief = (nodes: NodeResult[]) => nodes.map((n) => `${n.status} ${n.ref.replace(/^(\w+:).*\//, '$1…/')}${n.error ? `: ${n.error}` : ''}`);

function expectRefusals(nodes: NodeResult[], root: string, mode: 'plan' | 'apply'): void {
  assert.deepEqual(nodes.map((n) => [n.ref, n.status, n.error ?? n.action]), [
    [`file:${root}/private/x`, 'failed', `permission denied: ${root}/private/x`],
    [`file:${root}/secret`, 'failed', `permission denied: ${root}/secret`],
    [`exec:touch ${root}/open/ran`, 'failed', `permission denied: ${root}/private/f`],
    [`file:${root}/open/new`, mode === 'plan' ? 'would-change' : 'changed', 'create'],
  ], brief(nodes).join('\n'));
  assert.equal(existsSync(join(root, 'open/ran')), false, 'the exec did not run');
}

const parse = (stdout: string) => (JSON.parse(stdout) as { targets: TargetReport[] }).targets[0]!;

const notRoot = process.getuid?.() !== 0 ? 'runs `cairn` as nobody: run as root' : !existsSync(CAIRN) ? `${CAIRN} is missing: npm run build first` : undefined;

describe('unreadable paths, local executor (cairn run as nobody)', { skip: notRoot }, () => {
  const nobody = { uid: Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' })) };

  function cairnAsNobody(args: string[], root: string) {
    const home = mkdtempSync(join(tmpdir(), 'cairn-nobody-'));
    chownSync(home, nobody.uid, nobody.gid);
    const site = makeSite({ 'cairn.yaml': `targets:\n  t1:\n    executor: local\n    state_dir: ${home}/state\n    run: [s]\nvars:\n  root: ${root}\n`, 'states/s.yaml': STATE });
    execFileSync('chmod', ['-R', 'a+rX', site]);
    const r = spawnSync(process.execPath, [CAIRN, ...args, '--site', site, '--json'], {
      ...nobody, cwd: site, encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, NO_COLOR: '1' },
    });
    return { status: r.status, stderr: r.stderr, target: r.stdout ? parse(r.stdout) : undefined };
  }

  test('plan: a path behind a folder it may not search, or a file it may not read, fails the node naming it (exit 1)', () => {
    const root = tree();
    const r = cairnAsNobody(['plan'], root);
    assert.equal(r.status, 1, r.stderr);
    expectRefusals(r.target!.nodes, root, 'plan');
  });

  test('apply: an exec whose `creates` it cannot see fails instead of running', () => {
    const root = tree();
    const r = cairnAsNobody(['apply'], root);
    assert.equal(r.status, 1, r.stderr);
    expectRefusals(r.target!.nodes, root, 'apply');
  });
});

const noSsh = sshUnavailable();

/** The unprivileged login user the SSH become tests use (no password, not locked: sshd refuses locked accounts). */
function loginUser(): string {
  const user = 'cairn-nopw';
  if (spawnSync('id', ['-u', user]).status !== 0) {
    // ssh.test.ts may be making it at the same moment.
    spawnSync('useradd', ['--create-home', '--shell', '/bin/sh', user]);
    execFileSync('id', ['-u', user]);
    execFileSync('usermod', ['-p', '*', user]);
  }
  return user;
}

describe('unreadable paths over SSH, without become', { skip: noSsh }, () => {
  let sshd: Sshd;
  before(async () => {
    sshd = await startSshd({ port: 22460 });
  });
  after(() => sshd?.stop());

  async function cairn(command: 'plan' | 'apply', root: string) {
    const user = loginUser();
    const state = mkdtempSync(join(tmpdir(), 'cairn-denied-state-'));
    execFileSync('chown', [user, state]);
    const settings = { executor: 'ssh', host: sshd.host, port: sshd.port, user, identity_file: sshd.identityFile, known_hosts: sshd.knownHosts, state_dir: `${state}/state`, run: ['s'] };
    const site = makeSite({ 'cairn.yaml': `targets:\n  h: ${JSON.stringify(settings)}\nvars:\n  root: ${root}\n`, 'states/s.yaml': STATE });
    const r = await runCli([command, '--site', site, '--json']);
    return { status: r.status, stderr: r.stderr, target: parse(r.stdout) };
  }

  test('plan: refused paths fail their nodes naming them, read in the same single batched read (2 round trips)', async () => {
    const root = tree();
    const r = await cairn('plan', root);
    assert.equal(r.status, 1, `${r.stderr}${r.target.error ?? ''}`);
    expectRefusals(r.target.nodes, root, 'plan');
    // The set-up with the facts, then one batched read of every path: a refusal costs no process of its own.
    assert.equal(r.target.round_trips, 2);
  });

  test('apply: an exec whose `creates` the login user cannot see fails instead of running', async () => {
    const root = tree();
    const r = await cairn('apply', root);
    assert.equal(r.status, 1, `${r.stderr}${r.target.error ?? ''}`);
    expectRefusals(r.target.nodes, root, 'apply');
    assert.equal(existsSync(join(root, 'open/new')), true, 'an unrelated node converges');
  });
});
