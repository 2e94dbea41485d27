/**
 * Several masters on one etcd store (DESIGN §9 "Several masters"), with real processes: a real
 * 3-member etcd cluster, two `cairn master` processes sharing it (and the CA, copied as an
 * operator would), and real `cairn agent --master` processes enrolled with `cairn agent enrol`.
 * A run asked of master A for an agent connected to master B goes to B through a run-request
 * key; A's API and event stream report it live from the store, and `cairn apply` through A
 * converges it; cancelling it on A cancels it on
 * B; a run over agents of both masters is split, each part run by the master holding its agents,
 * and reported as one run (cancelled as one too); when A is killed mid-run the run goes on and
 * B's API reports it, while the run A itself was running is recorded interrupted by B once A's
 * liveness runs out; a killed master's claims on its agents run out, so runs are no longer
 * handed to it.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cairnBin, tempDir, CAIRN } from './helpers/cli.ts';
import { etcdUnavailable, startEtcdCluster, type EtcdCluster } from './helpers/etcd.ts';
import {
  api, CairnProcess, enrolAgent, masterJson, readEvents, startAgent, startMaster, type RunningMaster,
} from './helpers/master-processes.ts';
import { waitUntil } from './helpers/wait.ts';

const HANG = { timeout: 180_000 };
const missing = !existsSync(CAIRN) ? `${CAIRN} is missing (npm run build makes it)` : etcdUnavailable();
const skip = missing ? `LOUD SKIP: ${missing}` : false;
if (skip) process.stderr.write(`\n*** ${skip} ***\n\n`);

interface Run {
  id: string;
  state: string;
  cancelled?: boolean;
  interrupted?: string;
  runs_on?: string;
  part_of?: string;
  parts?: { id: string; runs_on: string; targets: string[] }[];
  report?: { targets: { name: string; status: string; stdout: string; exit_code: number | null; error?: string }[] };
}

describe('several masters on one etcd cluster (real processes)', { skip }, () => {
  let dir: string;
  let cluster: EtcdCluster;
  let a: RunningMaster;
  let b: RunningMaster;
  let token: string;
  const agents: CairnProcess[] = [];
  /** The newest run of each target, once the runs are done (retention keeps them). */
  const newest: string[] = [];
  const gate = (name: string) => join(dir, `gate-${name}`);
  /** A command that says it started, waits for the test to open its gate, then says done. */
  const gated = (name: string) => ['sh', '-c', `echo started; while [ ! -e ${gate(name)} ]; do sleep 0.05; done; echo done`];
  const runOn = async (m: RunningMaster, id: string) => {
    const r = await api(m, token, 'GET', `/api/v1/runs/${id}`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return r.json as Run;
  };

  before(async () => {
    dir = tempDir('cairn-masters-');
    cluster = await startEtcdCluster(3);
    a = await startMaster(join(dir, 'a'), undefined, undefined, { store: cluster.url, stateDir: join(dir, 'a-state') });
    // The operator gives the second master the same CA (its key stays on the masters' disks).
    mkdirSync(join(dir, 'b-state'), { mode: 0o700 });
    for (const f of ['ca.pem', 'ca.key']) copyFileSync(join(dir, 'a-state', f), join(dir, 'b-state', f));
    b = await startMaster(join(dir, 'b'), undefined, undefined, { store: cluster.url, stateDir: join(dir, 'b-state') });
    assert.equal(b.caHash, a.caHash);
    token = masterJson<{ token: string }>(a, ['api-token', 'create', '--name', 'ops', '--role', 'operator']).token;
    // alpha is enrolled through B and connects to B; beta connects to A.
    enrolAgent(b, 'alpha', join(dir, 'tls-alpha'));
    agents.push(await startAgent(b, join(dir, 'tls-alpha'), join(dir, 'work-alpha')));
    enrolAgent(a, 'beta', join(dir, 'tls-beta'));
    agents.push(await startAgent(a, join(dir, 'tls-beta'), join(dir, 'work-beta')));
  });

  after(async () => {
    for (const agent of agents) await agent.stop();
    await a?.process.stop();
    await b?.process.stop();
    await cluster?.stop();
  });

  test('a run asked of master A for an agent on master B runs on B; A streams its events live and reports it', HANG, async () => {
    const targets = await api(a, token, 'GET', '/api/v1/targets/alpha');
    assert.equal((targets.json as { connected: boolean }).connected, true, 'A knows alpha is connected (to B)');
    const posted = await api(a, token, 'POST', '/api/v1/runs', { mode: 'run', targets: ['alpha'], argv: gated('one') });
    assert.equal(posted.status, 202, JSON.stringify(posted.json));
    const { id } = posted.json as { id: string };
    // Live through A: the command's first line arrives while it still waits at its gate.
    const first = await readEvents(a, token, id, undefined, (e) => e.event === 'log' && String(e.data.data).includes('started'));
    assert.equal((await runOn(a, id)).state, 'running');
    assert.equal((await runOn(b, id)).state, 'running');
    writeFileSync(gate('one'), '');
    // Resumed from the last event seen, through A again: the rest, none twice.
    const rest = await readEvents(a, token, id, first.at(-1)!.id, (e) => e.event === 'run' && e.data.state === 'finished');
    const all = [...first, ...rest];
    assert.deepEqual(all.map((e) => e.id), all.map((_, i) => i + 1), 'every event once, in order');
    assert.ok(rest.some((e) => e.event === 'log' && String(e.data.data).includes('done')));
    const onA = await runOn(a, id);
    const onB = await runOn(b, id);
    assert.equal(onA.state, 'finished');
    assert.deepEqual(onA, onB, 'both masters report the same run');
    assert.ok(onA.runs_on, 'the record names the master that ran it');
    assert.deepEqual(onA.report!.targets.map((t) => [t.name, t.status, t.exit_code, t.stdout]), [['alpha', 'ok', 0, 'started\ndone\n']]);
  });

  test('cairn apply through master A converges the agent connected to master B', HANG, async () => {
    const root = join(dir, 'root-alpha');
    mkdirSync(root);
    const site = join(dir, 'site');
    mkdirSync(join(site, 'states'), { recursive: true });
    writeFileSync(join(site, 'cairn.yaml'), `master: ${a.apiUrl}\ntargets:\n  alpha:\n    executor: agent\n    state_dir: ${join(dir, 'state-alpha')}\n    run: [motd]\n`);
    writeFileSync(join(site, 'states/motd.yaml'), `motd:\n  - file: ${root}/motd\n    content: "through A\\n"\n`);
    const r = cairnBin(['apply', '--master-ca', a.caFile, '--site', site, '-t', 'alpha', '--json'], dir, { CAIRN_TOKEN: token });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const report = JSON.parse(r.stdout) as { targets: { name: string; status: string; counts: { changed: number } }[] };
    assert.deepEqual(report.targets.map((t) => [t.name, t.status, t.counts.changed]), [['alpha', 'ok', 1]]);
    assert.equal(readFileSync(join(root, 'motd'), 'utf8'), 'through A\n');
  });

  /** The id a master runs under (its state folder's master-id). */
  const masterId = (state: string) => readFileSync(join(dir, state, 'master-id'), 'utf8').trim();

  test('a run over agents of both masters is split: each part on the master holding its agents, one run with every target', HANG, async () => {
    const posted = await api(a, token, 'POST', '/api/v1/runs', { mode: 'run', targets: ['alpha', 'beta'], argv: ['sh', '-c', 'echo "ran on $0"', 'agent'] });
    assert.equal(posted.status, 202, JSON.stringify(posted.json));
    const { id } = posted.json as { id: string };
    const events = await readEvents(a, token, id, undefined, (e) => e.event === 'run' && e.data.state === 'finished');
    assert.deepEqual(events.map((e) => e.id), events.map((_, i) => i + 1), 'one stream, every event once, in order');
    const finished = (phase: string) => events.filter((e) => e.event === 'target' && e.data.phase === phase).map((e) => e.data.target).sort();
    assert.deepEqual([finished('started'), finished('finished')], [['alpha', 'beta'], ['alpha', 'beta']]);
    const run = await runOn(a, id);
    assert.deepEqual(run.report!.targets.map((t) => [t.name, t.status, t.stdout]), [['alpha', 'ok', 'ran on agent\n'], ['beta', 'ok', 'ran on agent\n']]);
    // beta is A's own; alpha's part went to B, under an id of its own that B ran and recorded.
    assert.equal(run.parts?.length, 1, JSON.stringify(run));
    const part = run.parts![0]!;
    assert.deepEqual([part.runs_on, part.targets], [masterId('b-state'), ['alpha']]);
    const onB = await runOn(b, part.id);
    assert.deepEqual([onB.part_of, onB.runs_on, onB.state], [id, masterId('b-state'), 'finished']);
    // One run as the user sees it: the list shows the run, not its part, on either master.
    for (const m of [a, b]) {
      const ids = ((await api(m, token, 'GET', '/api/v1/runs')).json as { runs: Run[] }).runs.map((r) => r.id);
      assert.ok(ids.includes(id) && !ids.includes(part.id), JSON.stringify(ids));
    }
    assert.deepEqual(await runOn(b, id), run, 'both masters report the same run');
  });

  test('cancelling a split run cancels each part on its master', HANG, async () => {
    const posted = await api(b, token, 'POST', '/api/v1/runs', { mode: 'run', targets: ['alpha', 'beta'], argv: gated('split') });
    const { id } = posted.json as { id: string };
    await readEvents(b, token, id, undefined, (e, all) => all.filter((x) => x.event === 'log' && String(x.data.data).includes('started')).length === 2);
    const cancel = await api(a, token, 'POST', `/api/v1/runs/${id}/cancel`);
    assert.equal(cancel.status, 202, JSON.stringify(cancel.json));
    await readEvents(a, token, id, undefined, (e) => e.event === 'run' && e.data.state === 'finished');
    const run = await runOn(a, id);
    assert.equal(run.cancelled, true);
    assert.deepEqual(run.report!.targets.map((t) => [t.name, t.stdout.includes('done')]), [['alpha', false], ['beta', false]]);
    const part = await runOn(a, run.parts![0]!.id);
    assert.equal(part.cancelled, true, 'the part on the other master was cancelled there');
    writeFileSync(gate('split'), '');
  });

  test('cairn apply through master A over agents of both masters: one report with every target', HANG, async () => {
    const site = join(dir, 'site-both');
    mkdirSync(join(site, 'states'), { recursive: true });
    const target = (name: string) => `  ${name}:\n    executor: agent\n    state_dir: ${join(dir, `state-both-${name}`)}\n    run: [motd]\n`;
    writeFileSync(join(site, 'cairn.yaml'), `master: ${a.apiUrl}\ntargets:\n${target('alpha')}${target('beta')}`);
    writeFileSync(join(site, 'states/motd.yaml'), `motd:\n  - file: ${dir}/both-<%= it.target.name %>\n    content: "both\\n"\n`);
    const r = cairnBin(['apply', '--master-ca', a.caFile, '--site', site, '-t', 'alpha', '-t', 'beta', '--json'], dir, { CAIRN_TOKEN: token });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const report = JSON.parse(r.stdout) as { targets: { name: string; status: string; counts: { changed: number } }[] };
    assert.deepEqual(report.targets.map((t) => [t.name, t.status, t.counts.changed]), [['alpha', 'ok', 1], ['beta', 'ok', 1]]);
    for (const name of ['alpha', 'beta']) assert.equal(readFileSync(join(dir, `both-${name}`), 'utf8'), 'both\n');
  });

  test('cancelling on A a run that B runs cancels it on B', HANG, async () => {
    const posted = await api(a, token, 'POST', '/api/v1/runs', { mode: 'run', targets: ['alpha'], argv: gated('never') });
    const { id } = posted.json as { id: string };
    await readEvents(a, token, id, undefined, (e) => e.event === 'log' && String(e.data.data).includes('started'));
    const cancel = await api(a, token, 'POST', `/api/v1/runs/${id}/cancel`);
    assert.equal(cancel.status, 202, JSON.stringify(cancel.json));
    await waitUntil(async () => (await runOn(b, id)).state === 'finished', 'the cancelled run to end on B');
    const run = await runOn(a, id);
    assert.equal(run.cancelled, true);
    assert.notEqual(run.report!.targets[0]!.stdout, 'started\ndone\n');
  });

  test('master A killed mid-run: the run goes on on B, whose API reports it; A\'s own run ends interrupted; A\'s claims run out', HANG, async () => {
    const posted = await api(a, token, 'POST', '/api/v1/runs', { mode: 'run', targets: ['alpha'], argv: gated('two') });
    assert.equal(posted.status, 202, JSON.stringify(posted.json));
    const { id } = posted.json as { id: string };
    await readEvents(b, token, id, undefined, (e) => e.event === 'log' && String(e.data.data).includes('started'));
    // A run A runs itself (beta is A's agent), asked of B by the CLI and held at its gate when A dies.
    const site = join(dir, 'site-beta');
    mkdirSync(site);
    writeFileSync(join(site, 'cairn.yaml'), `master: ${b.apiUrl}\ntargets:\n  beta:\n    executor: agent\n`);
    const cli = new CairnProcess(['run', '--master-ca', b.caFile, '--site', site, '-t', 'beta', '--', ...gated('three')], { CAIRN_TOKEN: token });
    let ownId = '';
    await waitUntil(async () => {
      const runs = ((await api(b, token, 'GET', '/api/v1/runs')).json as { runs: (Run & { targets: string[] })[] }).runs;
      ownId = runs.find((r) => r.state !== 'finished' && r.targets.join() === 'beta')?.id ?? '';
      return ownId !== '';
    }, () => `the CLI's run to be asked for: ${cli.stderr}`);
    await readEvents(b, token, ownId, undefined, (e) => e.event === 'log' && String(e.data.data).includes('started'));
    const aId = masterId('a-state');
    a.process.child.kill('SIGKILL');
    await a.process.exited;
    // Once A's liveness record expires, B records A's run interrupted; B's own run is not disturbed.
    let ownRun: Run | undefined;
    await waitUntil(async () => (ownRun = await runOn(b, ownId)).state === 'finished', () => `B to record A's run interrupted: ${JSON.stringify(ownRun)}`);
    assert.equal(ownRun!.interrupted, `the master running it (${aId}) stopped before the run finished`);
    assert.deepEqual(ownRun!.report!.targets.map((t) => [t.name, t.status, t.error]), [['beta', 'unreachable', ownRun!.interrupted]]);
    const listed = ((await api(b, token, 'GET', '/api/v1/runs')).json as { runs: Run[] }).runs.find((r) => r.id === ownId);
    assert.equal(listed?.interrupted, ownRun!.interrupted);
    // The CLI following it through B says so: the target unreachable, with the reason; exit 3.
    assert.equal(await cli.exited, 3, cli.stderr + cli.stdout);
    assert.ok(cli.stdout.includes(`beta: UNREACHABLE: master ${b.apiUrl} could not be reached: ${ownRun!.interrupted}`), cli.stdout);
    assert.equal((await runOn(b, id)).state, 'running', 'the run B holds goes on');
    writeFileSync(gate('two'), '');
    writeFileSync(gate('three'), '');
    const events = await readEvents(b, token, id, undefined, (e) => e.event === 'run' && e.data.state === 'finished');
    assert.deepEqual(events.map((e) => e.id), events.map((_, i) => i + 1));
    const run = await runOn(b, id);
    assert.equal(run.state, 'finished');
    assert.deepEqual(run.report!.targets.map((t) => [t.name, t.status, t.stdout]), [['alpha', 'ok', 'started\ndone\n']]);
    // beta's connection was A's: once A's heartbeat runs out, B no longer counts it connected,
    // and a run for it is B's own (unreachable, naming it) instead of one handed to a dead master.
    await waitUntil(async () => ((await api(b, token, 'GET', '/api/v1/targets/beta')).json as { connected: boolean }).connected === false, 'A\'s claim on beta to run out');
    const facts = await api(b, token, 'POST', '/api/v1/runs', { mode: 'facts', targets: ['beta'] });
    const factsId = (facts.json as { id: string }).id;
    await waitUntil(async () => (await runOn(b, factsId)).state === 'finished', 'the facts run for beta to end');
    const report = (await runOn(b, factsId)).report!.targets[0]!;
    assert.equal(report.status, 'unreachable');
    assert.match(report.error ?? '', /agent beta is not connected/);
    newest.push(id, factsId);
  });

  test('retention over several masters: B started again with --keep-runs 1 keeps each target\'s newest run; split runs\' parts go with them', HANG, async () => {
    assert.equal(await b.process.stop(), 0);
    b = await startMaster(join(dir, 'b'), undefined, undefined, { store: cluster.url, stateDir: join(dir, 'b-state'), extraArgs: ['--keep-runs', '1'] });
    const { openStore } = await import('../src/store/index.ts');
    const store = await openStore(cluster.url);
    let left: string[] = [];
    try {
      // Every run but alpha's and beta's newest (the parts of the split runs among them) goes, with its events.
      await waitUntil(async () => {
        left = (await store.list('/cairn/master/runs/')).map((kv) => kv.key.split('/').at(-1)!).sort();
        return JSON.stringify(left) === JSON.stringify([...newest].sort());
      }, () => `only ${newest.join(', ')} to be left: ${left.join(', ')}\n${b.process.stderr}`);
      const events = new Set((await store.list('/cairn/master/run-events/')).map((kv) => kv.key.split('/').at(-2)!));
      assert.deepEqual([...events].sort(), [...newest].sort());
    } finally {
      await store.close();
    }
  });
});
