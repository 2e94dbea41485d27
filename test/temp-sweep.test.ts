/**
 * A run killed mid-write leaves the temp files of its writes in flight; the run that takes over
 * its lock removes them (DESIGN §5.11), by the tag the dead run's holder recorded, from the
 * folders it writes into and the state dir. Only those: a file that merely looks like one, with
 * another tag, or in a folder the run does not write, stays. The dead runs are planted (a lock
 * whose holder pid is gone, temp files with its tag), so each case is exact;
 * test/crash-safety.test.ts kills real runs.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Report } from './helpers/converge.ts';
import { cairnBin, makeSite, runCli, tempDir } from './helpers/cli.ts';
import { sshUnavailable, startSshd, type Sshd } from './helpers/sshd.ts';

/** Whether anything is at `path`, a dangling symlink too (existsSync follows it). */
function present(path: string): boolean {
  return readdirSync(dirname(path)).includes(basename(path));
}

function deadPid(): number {
  return spawnSync('true').pid!;
}

async function applyJson(dir: string, ...args: string[]) {
  const r = await runCli(['apply', '--site', dir, '--json', ...args]);
  return { status: r.status, report: JSON.parse(r.stdout || '{"targets":[]}') as Report, stderr: r.stderr };
}

/**
 * A tree as a killed run left it: a lock held by `pid` on `host` recording `tag`, the killed
 * run's temp files beside managed files, in the state dir and as a dangling symlink, and files
 * that only look like them. Returns which must go and which must stay.
 */
function plantDeadRun(root: string, stateDir: string, pid: number, host: string, tag: string) {
  const d = join(root, 'd');
  const other = join(root, 'other');
  for (const dir of [d, other, join(stateDir, 'lock.d')]) mkdirSync(dir, { recursive: true });
  writeFileSync(join(stateDir, 'lock.d', 'holder'), `${pid} ${host} 2020-01-02T03:04:05.000Z cairn apply\ntemps ${tag}\n`);
  const gone = [join(d, `.f1.cairn-tmp.${tag}.0`), join(d, `.f2.cairn-tmp.${tag}.1`), join(stateDir, `.content-index.json.cairn-tmp.${tag}.2`),
    join(stateDir, `.pending.json.cairn-tmp.${tag}.5`)];
  for (const path of gone) writeFileSync(path, 'half');
  const link = join(d, `.link.cairn-tmp.${tag}.3`);
  symlinkSync('/nonexistent/target', link);
  gone.push(link);
  const stays = [
    // Another tag that starts like it, another pid with the same random part, no leading dot,
    // and the tag in a folder the run never writes.
    join(d, `.f1.cairn-tmp.${tag}0.0`), join(d, `.f1.cairn-tmp.1${tag}.0`), join(d, `f1.cairn-tmp.${tag}.0`),
    join(other, `.x.cairn-tmp.${tag}.0`),
  ];
  for (const path of stays) writeFileSync(path, 'not the dead run\'s');
  // A folder named like one is not a temp file.
  mkdirSync(join(d, `.dir.cairn-tmp.${tag}.4`));
  stays.push(join(d, `.dir.cairn-tmp.${tag}.4`));
  return { gone, stays, lock: join(stateDir, 'lock.d') };
}

function siteFor(root: string, target: string): string {
  return makeSite({
    'cairn.yaml': `targets:\n${target}`,
    'states/s.yaml': `s:\n  - file: ${root}/d/f1\n    content: "one\\n"\n  - file: ${root}/d/f2\n    content: "two\\n"\n  - symlink: ${root}/d/link\n    target: f1\n`,
  });
}

function localTarget(stateDir: string): string {
  return `  web1:\n    executor: local\n    state_dir: ${stateDir}\n    run: [s]\n`;
}

describe('temp files of a killed run, local', () => {
  test('the run that takes over a dead run\'s lock removes that run\'s temp files, and says so; files that only look alike stay', async () => {
    const root = tempDir('cairn-sweep-');
    const stateDir = join(root, 'state');
    const pid = deadPid();
    const planted = plantDeadRun(root, stateDir, pid, hostname(), `${pid}.5eed`);
    const r = await applyJson(siteFor(root, localTarget(stateDir)));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^web1: warning: took over the run lock of pid ${pid} on host ${hostname()} \\(started 2020-01-02T03:04:05\\.000Z, cairn apply\\): that process is gone; removed 5 temp files it left$`, 'm'));
    for (const path of planted.gone) assert.ok(!present(path), `${path} removed`);
    for (const path of planted.stays) assert.ok(present(path), `${path} stays`);
    assert.ok(!existsSync(planted.lock), 'the lock released');
  });

  test('a dead run\'s lock that is not taken over (its holder ran on another host) leaves its temp files alone', async () => {
    const root = tempDir('cairn-sweep-');
    const stateDir = join(root, 'state');
    const pid = deadPid();
    const planted = plantDeadRun(root, stateDir, pid, 'elsewhere.example', `${pid}.5eed`);
    const r = await applyJson(siteFor(root, localTarget(stateDir)));
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.report.targets[0]!.error!, /it ran on another host/);
    for (const path of [...planted.gone, ...planted.stays]) assert.ok(present(path), `${path} stays`);
    assert.ok(existsSync(join(planted.lock, 'holder')));
  });
});

const missing = sshUnavailable();

describe('temp files of a killed run, over SSH', { skip: missing }, () => {
  let sshd: Sshd;
  before(async () => {
    sshd = await startSshd({ port: 22480 });
  });
  after(() => sshd?.stop());

  function sshTarget(stateDir: string): string {
    const settings = { host: sshd.host, port: sshd.port, user: 'root', identity_file: sshd.identityFile, known_hosts: sshd.knownHosts, state_dir: stateDir, run: ['s'] };
    return `  web1:\n${Object.entries(settings).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`).join('')}`;
  }

  test('over SSH, the run that takes over a dead remote shell\'s lock removes its temp files on the far side in one request, and says so', async () => {
    // The far side is this machine: a pid dead here is a remote shell gone there.
    const pid = deadPid();
    const tag = `${pid}.c0ffee01`;
    const root = tempDir('cairn-sweep-');
    const planted = plantDeadRun(root, join(root, 'state'), pid, hostname(), tag);
    // A batch of writes cut off mid-way leaves its stage folder (write-batch.ts), files in it.
    const stage = join(root, 'd', `.stage.cairn-tmp.${tag}.0a1b`);
    mkdirSync(stage);
    writeFileSync(join(stage, 'f3'), 'half');
    planted.gone.push(stage);
    // So does the folder of its commands' output (shell-command.ts), in /dev/shm or $TMPDIR.
    const commands = join(existsSync('/dev/shm') ? '/dev/shm' : process.env.TMPDIR ?? '/tmp', `.commands.cairn-tmp.${tag}.0a1b`);
    mkdirSync(commands);
    writeFileSync(join(commands, '3.out'), 'output');
    planted.gone.push(commands);
    const r = await applyJson(siteFor(root, sshTarget(join(root, 'state'))));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^web1: warning: took over the run lock of pid ${pid} on host ${hostname()} \\(started 2020-01-02T03:04:05\\.000Z, cairn apply\\): that process is gone; removed 7 temp files it left$`, 'm'));
    for (const path of planted.gone) assert.ok(!present(path), `${path} removed`);
    for (const path of planted.stays) assert.ok(present(path), `${path} stays`);
    assert.ok(!existsSync(planted.lock), 'the lock released');

    // The same takeover where the dead run left nothing: removing 5 files costs no request more
    // than finding none (one request for all folders, none per file).
    const root2 = tempDir('cairn-sweep-');
    const none = plantDeadRun(root2, join(root2, 'state'), pid, hostname(), tag);
    for (const path of none.gone) rmSync(path);
    const clean = await applyJson(siteFor(root2, sshTarget(join(root2, 'state'))));
    assert.equal(clean.status, 0, clean.stderr);
    assert.match(clean.stderr, /: that process is gone$/m);
    assert.equal(r.report.targets[0]!.round_trips, clean.report.targets[0]!.round_trips);
  });
});

/**
 * Temp files that no run lock covers: the compile cache's (`site/.cairn/cache/<entry>.<pid>.tmp`)
 * and the command shell's folder (`$TMPDIR/cairn-commands-<pid>-XXXXXX`). Each names the process
 * that made it; the next run that uses the folder removes those whose process is gone, and leaves
 * a live process's (a concurrent run's), names of another pattern, and anything not a plain
 * file or folder of this user's alone. Both need the built command (the compile cache is on only
 * in a build; the folder goes by $TMPDIR).
 */
describe('temp files no run lock covers, left by a killed run', () => {
  const livePid = process.pid;

  test('the compile cache: a dead run\'s entry temp files are removed by the next run that uses the cache, a live one\'s and other names stay', () => {
    const root = tempDir('cairn-sweep-');
    mkdirSync(join(root, 'd'));
    const site = siteFor(root, localTarget(join(root, 'state')));
    const cache = join(site, '.cairn', 'cache');
    mkdirSync(cache, { recursive: true });
    const pid = deadPid();
    const gone = [join(cache, `run-0123abcd.json.${pid}.tmp`), join(cache, `facts-99.json.${pid}.tmp`)];
    const stays = [join(cache, `run-0123abcd.json.${livePid}.tmp`), join(cache, `notes.${pid}.tmp`), join(cache, `run-1.json.${pid}.tmp.keep`)];
    for (const path of [...gone, ...stays]) writeFileSync(path, '{"half":');
    const r = cairnBin(['apply', '--site', site]);
    assert.equal(r.status, 0, r.stderr);
    for (const path of gone) assert.ok(!present(path), `${path} removed`);
    for (const path of stays) assert.ok(present(path), `${path} stays`);
    // And a half-written entry is never read as one: the run after it still converges from a compile.
    const again = cairnBin(['apply', '--site', site]);
    assert.equal(again.status, 0, again.stderr);
  });

  test('$TMPDIR: a dead run\'s command-shell folder is removed by the next run that starts a command, a live one\'s, another pattern and a symlink stay', () => {
    const root = tempDir('cairn-sweep-');
    const tmp = tempDir('cairn-tmpdir-');
    const site = makeSite({
      'cairn.yaml': `targets:\n${localTarget(join(root, 'state'))}`,
      'states/s.yaml': `s:\n  - exec: echo ran >> ${root}/ran\n`,
    });
    const pid = deadPid();
    const dead = join(tmp, `cairn-commands-${pid}-Ab3dE9`);
    mkdirSync(dead);
    writeFileSync(join(dead, 'out.1'), 'half');
    const elsewhere = tempDir('cairn-elsewhere-');
    writeFileSync(join(elsewhere, 'keep'), 'not a temp file');
    const link = join(tmp, `cairn-commands-${pid}-L1nk00`);
    symlinkSync(elsewhere, link);
    const stays = [join(tmp, `cairn-commands-${livePid}-Zz9yX8`), join(tmp, 'cairn-commands-Qw3rty'), join(tmp, `cairn-commandsx-${pid}-Ab3dE9`)];
    for (const path of stays) mkdirSync(path);
    const r = cairnBin(['apply', '--site', site], process.cwd(), { TMPDIR: tmp });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(existsSync(join(root, 'ran')), 'the command ran');
    assert.ok(!present(dead), `${dead} removed`);
    for (const path of [...stays, link]) assert.ok(present(path), `${path} stays`);
    assert.ok(existsSync(join(elsewhere, 'keep')), 'a symlink is not followed');
    // The run's own folder went with it.
    assert.deepEqual(readdirSync(tmp).filter((n) => n.startsWith('cairn-commands-')).sort(), stays.concat(link).map((p) => basename(p)).filter((n) => n.startsWith('cairn-commands-')).sort());
  });
});
