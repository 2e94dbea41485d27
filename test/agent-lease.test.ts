/**
 * One agent per name (DESIGN §8): an agent holds a lease on its name in the store while it runs
 * (Store.lease: a real etcd lease; on SQLite a row with the holder's id and expiry, taken in a
 * transaction). A second agent of the same name is refused with exit 3 naming the holder, so no
 * revision is converged twice; when the holder dies, its lease runs out after its TTL and a new
 * agent takes the name over (`--lease-wait` waits for that).
 *
 * The same cases run on SQLite and on a real etcd (test/helpers/etcd.ts). Waits are for events
 * (an agent's log line, a process's exit, the lease's own wait), never for a time.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import { openStore } from '../src/store/index.ts';
import { CAIRN, makeSite, runCli, tempDir } from './helpers/cli.ts';
import { etcdUnavailable, startEtcdCluster, type EtcdCluster } from './helpers/etcd.ts';
import { HANG_MS } from './helpers/wait.ts';

/** A process whose output is collected, and waited on by what it prints. */
class Proc {
  out = '';
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  constructor(args: string[]) {
    this.child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    this.child.stdout!.on('data', (d: Buffer) => (this.out += d));
    this.child.stderr!.on('data', (d: Buffer) => (this.out += d));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Resolves once the output matches; fails if the process exits first (the deadline only bounds a hang). */
  waitFor(re: RegExp): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`output never matched ${re}:\n${this.out}`)), HANG_MS);
      const check = () => re.test(this.out) && finish();
      const finish = (err?: Error) => {
        clearTimeout(timer);
        this.child.stdout!.off('data', check);
        this.child.stderr!.off('data', check);
        if (err) reject(err);
        else resolve();
      };
      this.child.stdout!.on('data', check);
      this.child.stderr!.on('data', check);
      void this.exited.then(({ code }) => finish(re.test(this.out) ? undefined : new Error(`exited ${code} before its output matched ${re}:\n${this.out}`)));
      check();
    });
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    this.child.kill(signal);
    await this.exited;
  }
}

function agentSite(root: string, name: string): string {
  return makeSite({
    'cairn.yaml': `targets:\n  ${name}: { executor: local, run: [base] }\n`,
    'states/base.yaml': `base:\n  - file: ${root}/motd\n    content: "v1\\n"\n    notify: announce\n` +
      `announce:\n  lazy: true\n  parts:\n    - exec: echo announced >> ${root}/announcements\n`,
  });
}

function announcements(root: string): number {
  return existsSync(join(root, 'announcements')) ? readFileSync(join(root, 'announcements'), 'utf8').split('\n').filter(Boolean).length : 0;
}

function agent(url: string, name: string, ...args: string[]): Proc {
  return new Proc([CAIRN, 'agent', '--store', url, '--name', name, '--work-dir', tempDir('cairn-agent-work-'), '--debounce', '0', ...args]);
}

/** A process that takes `key`'s lease (ttl seconds), prints "held", and waits to be killed. */
function leaseHolder(url: string, key: string, ttl: number): Proc {
  const index = pathToFileURL(join(import.meta.dirname, '../src/store/index.ts')).href;
  const script = join(tempDir('cairn-lease-'), 'hold.mts');
  writeFileSync(script, `import { openStore } from ${JSON.stringify(index)};\n` +
    `const store = await openStore(${JSON.stringify(url)});\n` +
    `const a = await store.lease(${JSON.stringify(key)}, 'the child ' + process.pid, ${ttl});\n` +
    `if (!('held' in a)) { console.log('refused ' + a.holder.toString()); process.exit(1); }\n` +
    `console.log('held');\nsetInterval(() => undefined, 1000);\n`);
  return new Proc(['--import', 'tsx', script]);
}

let keyCount = 0;
const uniqueKey = () => `/cairn/leases/test/${process.pid}-${keyCount++}`;
let nameCount = 0;
const uniqueName = () => `node${process.pid}x${nameCount++}`;

function leaseCases(backend: string, skip: string | undefined, storeUrl: () => Promise<string>) {
  describe(`agent lease on ${backend}`, { skip: skip ?? false }, () => {
    test('a lease is held by one taker at a time: another is refused with the holder\'s value, until it is released', async () => {
      const url = await storeUrl();
      const [one, two] = [await openStore(url), await openStore(url)];
      const key = uniqueKey();
      const first = await one.lease(key, 'first', 5);
      assert.ok('held' in first);
      const second = await two.lease(key, 'second', 5);
      assert.ok('holder' in second && second.holder.toString() === 'first', 'refused, naming the holder');
      await first.held.release();
      const third = await two.lease(key, 'third', 5);
      assert.ok('held' in third, 'free once released');
      assert.equal(third.held.lost.aborted, false);
      await third.held.release();
      await one.close();
      await two.close();
    });

    test('a live holder renews its lease: a taker that waits three times its TTL is still refused', async () => {
      const url = await storeUrl();
      const [one, two] = [await openStore(url), await openStore(url)];
      const key = uniqueKey();
      const held = await one.lease(key, 'alive', 2);
      assert.ok('held' in held);
      const waited = await two.lease(key, 'taker', 2, 6000);
      assert.ok('holder' in waited && waited.holder.toString() === 'alive', 'still the live holder\'s');
      assert.equal(held.held.lost.aborted, false, 'the holder did not lose it');
      await held.held.release();
      await one.close();
      await two.close();
    });

    test('a holder killed with SIGKILL keeps the key until its lease runs out, then a waiting taker gets it', async () => {
      const url = await storeUrl();
      const key = uniqueKey();
      const holder = leaseHolder(url, key, 2);
      await holder.waitFor(/^held$/m);
      await holder.kill('SIGKILL');
      const store = await openStore(url);
      const now = await store.lease(key, 'taker', 2);
      assert.ok('holder' in now && now.holder.toString() === `the child ${holder.child.pid}`, 'the dead holder\'s lease is still live');
      const later = await store.lease(key, 'taker', 2, HANG_MS);
      assert.ok('held' in later, 'taken once the dead holder\'s lease ran out');
      await later.held.release();
      await store.close();
    });

    test('two agents of one name: the second is refused with exit 3 naming the first, and every revision is converged once', async () => {
      const url = await storeUrl();
      const name = uniqueName();
      const root = tempDir('cairn-agent-root-');
      const site = agentSite(root, name);
      const pushed = await runCli(['push', '--site', site, '--store', url]);
      assert.equal(pushed.status, 0, pushed.stderr);
      const first = agent(url, name);
      await first.waitFor(/watching .* for new revisions/);
      assert.equal(announcements(root), 1);

      for (const args of [[], ['--once']]) {
        const second = agent(url, name, ...args);
        const { code } = await second.exited;
        assert.equal(code, 3, second.out);
        assert.match(second.out, new RegExp(`^cairn: another agent named ${name} is running against .*: pid ${first.child.pid} on host ${hostname()} \\(since [^)]+\\); two would converge every revision twice\\. Stop it first; if it is gone, its lease runs out within 15 s \\(--lease-wait SECONDS to wait for that\\)\\.$`, 'm'));
        assert.doesNotMatch(second.out, /converging/);
      }
      // A new revision: converged by the first agent alone, its handler run once.
      writeFileSync(join(site, 'states/base.yaml'), readFileSync(join(site, 'states/base.yaml'), 'utf8').replace('v1', 'v2'));
      const again = await runCli(['push', '--site', site, '--store', url]);
      assert.equal(again.status, 0, again.stderr);
      await first.waitFor(new RegExp(`revision ${/revision (\w+)/.exec(again.stdout)![1]}: 2 changed`));
      assert.equal(announcements(root), 2);

      // Stopped cleanly, the first lets go at once: the next agent of the name runs without waiting.
      await first.kill('SIGTERM');
      const next = await runCli(['agent', '--store', url, '--name', name, '--work-dir', tempDir('cairn-agent-work-'), '--once']);
      assert.equal(next.status, 0, next.stderr);
      assert.equal(announcements(root), 2, 'the revision was run already');
    });

    test('an agent killed with SIGKILL: a new one is refused while its lease lives, and with --lease-wait takes the name over once it ran out', async () => {
      const url = await storeUrl();
      const name = uniqueName();
      const root = tempDir('cairn-agent-root-');
      const site = agentSite(root, name);
      assert.equal((await runCli(['push', '--site', site, '--store', url])).status, 0);
      const crashed = agent(url, name, '--lease-ttl', '2');
      await crashed.waitFor(/watching .* for new revisions/);
      await crashed.kill('SIGKILL');

      const refused = agent(url, name);
      assert.equal((await refused.exited).code, 3, refused.out);
      assert.match(refused.out, new RegExp(`pid ${crashed.child.pid} on host .*its lease runs out within 2 s`));

      writeFileSync(join(site, 'states/base.yaml'), readFileSync(join(site, 'states/base.yaml'), 'utf8').replace('v1', 'v2'));
      const v2 = await runCli(['push', '--site', site, '--store', url]);
      assert.equal(v2.status, 0, v2.stderr);
      const successor = agent(url, name, '--lease-wait', '60');
      await successor.waitFor(/watching .* for new revisions/);
      assert.match(successor.out, new RegExp(`revision ${/revision (\w+)/.exec(v2.stdout)![1]}: 2 changed`), 'it converged the revision pushed while the name was held');
      assert.equal(announcements(root), 2);
      await successor.kill('SIGTERM');
    });

    test('an agent paused past its lease loses the name to a successor, and stops with exit 3 when it resumes', async () => {
      const url = await storeUrl();
      const name = uniqueName();
      const root = tempDir('cairn-agent-root-');
      assert.equal((await runCli(['push', '--site', agentSite(root, name), '--store', url])).status, 0);
      const paused = agent(url, name, '--lease-ttl', '2');
      await paused.waitFor(/watching .* for new revisions/);
      paused.child.kill('SIGSTOP');
      const successor = agent(url, name, '--lease-wait', '60');
      await successor.waitFor(/watching .* for new revisions/);
      paused.child.kill('SIGCONT');
      const { code } = await paused.exited;
      assert.equal(code, 3, paused.out);
      assert.match(paused.out, new RegExp(`stopping: the lease on /cairn/leases/agents/${name} .*; another agent named ${name} may be running`));
      assert.equal(successor.child.exitCode, null, 'the successor runs on');
      await successor.kill('SIGTERM');
    });
  });
}

leaseCases('SQLite', undefined, async () => `sqlite:${join(tempDir('cairn-lease-store-'), 'store.db')}`);

const etcdWhy = etcdUnavailable();
if (etcdWhy) process.stderr.write(`ETCD LEASE TESTS SKIPPED: ${etcdWhy}\n`);
let cluster: Promise<EtcdCluster> | undefined;
after(async () => {
  await (await cluster?.catch(() => undefined))?.stop();
});
leaseCases('etcd', etcdWhy, async () => (await (cluster ??= startEtcdCluster(1))).url);
