/**
 * Several masters on one etcd store (DESIGN §9 "Several masters"), with real processes: a real
 * 3-member etcd cluster, two `cairn master` processes sharing it (and the CA, copied as an
 * operator would), and real `cairn agent --master` processes enrolled with `cairn agent enrol`.
 * A run asked of master A for an agent connected to master B goes to B through a run-request
 * key; A's API and event stream report it live from the store, and `cairn apply` through A
 * converges it; cancelling it on A cancels it on
 * B; when A is killed mid-run the run goes on and B's API reports it; a killed master's claims on
 * its agents run out, so runs are no longer handed to it.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cairnBin, tempDir, CAIRN } from './helpers/cli.ts';
import { etcdUnavailable, startEtcdCluster, type EtcdCluster } from './helpers/etcd.ts';
import {
  api, enrolAgent, masterJson, readEvents, startAgent, startMaster, type CairnProcess, type RunningMaster,
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
  runs_on?: string;
  report?: { targets: { name: string; status: string; stdout: string; exit_code: number | null; error?: string }[] };
}

describe('several masters on one etcd cluster (real processes)', { skip }, () => {
  let dir: string;
  let cluster: EtcdCluster;
  let a: RunningMaster;
  let b: RunningMaster;
  let token: string;
  const agents: CairnProcess[] = [];
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

  test('a run mixing agents of both masters is refused with 409 naming where each is', HANG, async () => {
    const r = await api(a, token, 'POST', '/api/v1/runs', { mode: 'facts', targets: ['alpha', 'beta'] });
    assert.equal(r.status, 409, JSON.stringify(r.json));
    assert.match(JSON.stringify(r.json), /alpha on .*beta on|beta on .*alpha on/);
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

  test('master A killed mid-run: the run goes on on B, whose API reports it; A\'s claims run out', HANG, async () => {
    const posted = await api(a, token, 'POST', '/api/v1/runs', { mode: 'run', targets: ['alpha'], argv: gated('two') });
    assert.equal(posted.status, 202, JSON.stringify(posted.json));
    const { id } = posted.json as { id: string };
    await readEvents(b, token, id, undefined, (e) => e.event === 'log' && String(e.data.data).includes('started'));
    a.process.child.kill('SIGKILL');
    await a.process.exited;
    writeFileSync(gate('two'), '');
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
  });
});
