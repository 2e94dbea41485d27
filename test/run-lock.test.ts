/**
 * One run per target at a time (DESIGN §5.11), through the CLI with real processes: a first
 * apply is held inside an exec part on a FIFO the test controls (the part tells it has started
 * through a second FIFO), so a second run meets the lock at a known moment; nothing here sleeps
 * or looks at the clock.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Report } from './helpers/converge.ts';
import { CAIRN, makeSite, runCli, tempDir } from './helpers/cli.ts';
import { sshUnavailable, startSshd, type Sshd } from './helpers/sshd.ts';

interface Held {
  root: string;
  dir: string;
  lock: string;
  child: ChildProcess;
  stderr: () => string;
  /** Lets the first run go on; resolves with its exit status. */
  release: () => Promise<number | null>;
}

/**
 * A site whose target runs an exec part that waits on a FIFO (once: `creates`), then writes a
 * file. `targets` gets the state_dir and root.
 */
function blockingSite(targets: (stateDir: string) => string): { root: string; dir: string; stateDir: string } {
  const root = tempDir('cairn-lock-');
  const stateDir = join(root, 'state');
  for (const f of ['ready', 'gate']) spawnSync('mkfifo', [join(root, f)]);
  const dir = makeSite({
    'cairn.yaml': `targets:\n${targets(stateDir)}vars:\n  root: ${root}\n`,
    'states/s.yaml': 's:\n  - exec: "echo started > <%= it.vars.root %>/ready; cat <%= it.vars.root %>/gate >/dev/null; touch <%= it.vars.root %>/done"\n' +
      '    creates: <%= it.vars.root %>/done\n    id: wait\n  - file: <%= it.vars.root %>/f\n    content: "written\\n"\n    require: wait\n',
  });
  return { root, dir, stateDir };
}

function localTarget(name: string, stateDir: string): string {
  return `  ${name}:\n    executor: local\n    state_dir: ${stateDir}\n    run: [s]\n`;
}

/** The built command in a process of its own, its output collected as it comes. */
function cairnChild(args: string[]): { child: ChildProcess; stdout: () => string; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CAIRN, ...args], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Starts an apply of `target` that holds the lock until `release()`. */
async function holdLock(site: { root: string; dir: string; stateDir: string }, target: string): Promise<Held> {
  const run = cairnChild(['apply', '--site', site.dir, '-t', target]);
  // The exec part runs only once the run holds the lock.
  assert.equal((await readFile(join(site.root, 'ready'), 'utf8')).trim(), 'started');
  return {
    root: site.root, dir: site.dir, lock: join(site.stateDir, 'lock.d'), child: run.child, stderr: run.stderr,
    release: async () => {
      writeFileSync(join(site.root, 'gate'), 'go\n');
      return run.exited;
    },
  };
}

/** Resolves when `text()` (growing as a process writes) matches `pattern`; checked on each chunk. */
function whenOutput(child: ChildProcess, text: () => string, pattern: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (pattern.test(text())) resolve();
    };
    child.stderr!.on('data', () => setImmediate(check));
    child.on('close', () => (pattern.test(text()) ? resolve() : reject(new Error(`exited before printing ${pattern}: ${text()}`))));
    check();
  });
}

function deadPid(): number {
  const r = spawnSync('true');
  return r.pid!;
}

async function applyJson(dir: string, ...args: string[]) {
  const r = await runCli(['apply', '--site', dir, '--json', ...args]);
  return { status: r.status, report: JSON.parse(r.stdout || '{"targets":[]}') as Report, stderr: r.stderr };
}

describe('run lock, local', () => {
  test('a second apply meets the lock: exit 2 naming the holder, nothing changed; with --lock-wait it waits, then runs', async () => {
    const site = blockingSite((s) => localTarget('web1', s));
    const held = await holdLock(site, 'web1');
    try {
      assert.ok(existsSync(held.lock));
      const second = await applyJson(site.dir);
      assert.equal(second.status, 2, second.stderr);
      const t = second.report.targets[0]!;
      assert.equal(t.status, 'locked');
      assert.match(t.error!, new RegExp(`^web1: another run holds the lock since \\S+: pid ${held.child.pid} on host ${hostname()} \\(started \\S+, cairn apply\\); --lock-wait to wait$`));
      assert.equal(t.nodes.length, 0);
      assert.ok(!existsSync(join(held.root, 'f')), 'the second run changed nothing');

      const plan = await runCli(['plan', '--site', site.dir]);
      assert.equal(plan.status, 2, 'a plan waits for the lock too');
      assert.match(plan.stdout, /web1: another run holds the lock/);

      const waiting = cairnChild(['apply', '--site', site.dir, '--lock-wait', '600']);
      await whenOutput(waiting.child, waiting.stderr, /web1: waiting for the run lock: another run holds the lock since \S+: pid \d+/);
      assert.equal(await held.release(), 0, held.stderr());
      assert.equal(await waiting.exited, 0, waiting.stderr());
      assert.match(waiting.stdout(), /web1: 0 changed, 2 unchanged/);
      assert.ok(!existsSync(held.lock), 'released at the end of the run');
    } finally {
      held.child.kill();
    }
  });

  test('a lock whose holder is gone is taken over with a warning naming it; one from another host is reported with how to remove it', async () => {
    const root = tempDir('cairn-lock-');
    const stateDir = join(root, 'state');
    const dir = makeSite({
      'cairn.yaml': `targets:\n${localTarget('web1', stateDir)}`,
      'states/s.yaml': `s:\n  - file: ${root}/f\n    content: x\n`,
    });
    const lock = join(stateDir, 'lock.d');
    mkdirSync(lock, { recursive: true });
    const pid = deadPid();
    writeFileSync(join(lock, 'holder'), `${pid} ${hostname()} 2020-01-02T03:04:05.000Z cairn apply\n`);
    const r = await runCli(['apply', '--site', dir]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^web1: warning: took over the run lock of pid ${pid} on host ${hostname()} \\(started 2020-01-02T03:04:05.000Z, cairn apply\\): that process is gone$`, 'm'));
    assert.equal(readFileSync(join(root, 'f'), 'utf8'), 'x');
    assert.ok(!existsSync(lock));

    mkdirSync(lock);
    writeFileSync(join(lock, 'holder'), `${pid} elsewhere.example 2020-01-02T03:04:05.000Z cairn apply from ws9 pid 7\n`);
    const other = await applyJson(dir);
    assert.equal(other.status, 2);
    assert.match(other.report.targets[0]!.error!, new RegExp(`pid ${pid} on host elsewhere\\.example .*it ran on another host, which Cairn cannot check from here: if that run is gone, remove ${lock}`));
    assert.ok(existsSync(join(lock, 'holder')), 'a lock that cannot be checked is left alone');
  });

  test('the lock is gone after a failed run', async () => {
    const root = tempDir('cairn-lock-');
    const stateDir = join(root, 'state');
    const dir = makeSite({ 'cairn.yaml': `targets:\n${localTarget('web1', stateDir)}`, 'states/s.yaml': 's:\n  - exec: "false"\n' });
    const r = await runCli(['apply', '--site', dir]);
    assert.equal(r.status, 1, r.stdout);
    assert.ok(existsSync(stateDir) && !existsSync(join(stateDir, 'lock.d')));
  });

  test('--lock-wait takes a number of seconds', async () => {
    const r = await runCli(['apply', '--site', makeSite({ 'cairn.yaml': 'targets: {}\n' }), '--lock-wait', 'soon']);
    assert.equal(r.status, 2);
  });
});

const missing = sshUnavailable();

describe('run lock over SSH', { skip: missing }, () => {
  let sshd: Sshd;
  before(async () => {
    sshd = await startSshd({ port: 22470 });
  });
  after(() => sshd?.stop());

  function sshTarget(name: string, stateDir: string): string {
    const settings = { host: sshd.host, port: sshd.port, user: 'root', identity_file: sshd.identityFile, known_hosts: sshd.knownHosts, state_dir: stateDir, run: ['s'] };
    return `  ${name}:\n${Object.entries(settings).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`).join('')}`;
  }

  test('an SSH run holds the mkdir lock: a second SSH run, and a local one (as the agent runs) on the same state_dir, exit 2; --lock-wait waits', async () => {
    const site = blockingSite((s) => sshTarget('web1', s) + localTarget('here', s));
    const held = await holdLock(site, 'web1');
    try {
      // The holder is the remote shell: a process on the far side, with the workstation named.
      const holder = readFileSync(join(held.lock, 'holder'), 'utf8');
      const [pid, host] = holder.split(' ');
      assert.equal(host, hostname());
      // Then the tag of the session's temp files: the remote shell's pid and a random part.
      assert.match(holder, new RegExp(`cairn apply from ${hostname()} pid ${held.child.pid}\\ntemps ${pid}\\.[0-9a-f]+\\n$`));

      const second = await applyJson(site.dir, '-t', 'web1');
      assert.equal(second.status, 2, second.stderr);
      assert.match(second.report.targets[0]!.error!, new RegExp(`^web1: another run holds the lock since \\S+: pid ${pid} on host ${hostname()} \\(started \\S+, cairn apply from ${hostname()} pid ${held.child.pid}\\); --lock-wait to wait$`));
      const local = await applyJson(site.dir, '-t', 'here');
      assert.equal(local.status, 2, local.stderr);
      assert.match(local.report.targets[0]!.error!, new RegExp(`^here: another run holds the lock since \\S+: pid ${pid} on host`));
      assert.ok(!existsSync(join(held.root, 'f')), 'nothing changed');

      const waiting = cairnChild(['apply', '--site', site.dir, '-t', 'web1', '--lock-wait', '600']);
      await whenOutput(waiting.child, waiting.stderr, /web1: waiting for the run lock/);
      assert.equal(await held.release(), 0, held.stderr());
      assert.equal(await waiting.exited, 0, waiting.stderr());
      assert.match(waiting.stdout(), /web1: 0 changed, 2 unchanged/);
      assert.ok(!existsSync(held.lock), 'the shell released it as it exited, before the command ended');
    } finally {
      held.child.kill();
    }
  });

  test('over SSH, a lock whose holder is gone is taken over with a warning; a failed run leaves none', async () => {
    const root = tempDir('cairn-lock-');
    const stateDir = join(root, 'state');
    const dir = makeSite({ 'cairn.yaml': `targets:\n${sshTarget('web1', stateDir)}`, 'states/s.yaml': `s:\n  - file: ${root}/f\n    content: x\n` });
    const lock = join(stateDir, 'lock.d');
    mkdirSync(lock, { recursive: true });
    const pid = deadPid();
    writeFileSync(join(lock, 'holder'), `${pid} ${hostname()} 2020-01-02T03:04:05.000Z cairn apply from ws9 pid 7\n`);
    const r = await applyJson(dir);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^web1: warning: took over the run lock of pid ${pid} on host ${hostname()} \\(started 2020-01-02T03:04:05.000Z, cairn apply from ws9 pid 7\\): that process is gone$`, 'm'));
    assert.equal(readFileSync(join(root, 'f'), 'utf8'), 'x');
    assert.ok(!existsSync(lock));
    assert.ok(r.report.targets[0]!.round_trips! <= 3, `round trips: ${r.report.targets[0]!.round_trips}`);

    writeFileSync(join(dir, 'states/s.yaml'), 's:\n  - exec: "false"\n');
    const failed = await applyJson(dir);
    assert.equal(failed.status, 1);
    assert.ok(!existsSync(lock));
  });
});
