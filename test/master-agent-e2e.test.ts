/**
 * The agent executor end to end with real processes (DESIGN §7, §9): a `cairn master` on a
 * SQLite store, two agents enrolled with `cairn agent enrol` and running as `cairn agent
 * --master` processes, each converging its own temp root, and the CLI and the HTTP API driving
 * them: apply and plan through the CLI (the same report and lines as a local target), apply
 * through the API with live server-sent events resumed by Last-Event-ID, an ad-hoc command, a
 * cancelled run, a replaced connection (4409), the protocol's close codes on the real mTLS
 * listener, and an agent that is not connected (exit 3, naming it).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { cairnBin, tempDir } from './helpers/cli.ts';
import {
  api, builtCommandMissing, CairnProcess, enrolAgent, masterJson, readEvents, startAgent, startRunFollowing, startMaster, type RunningMaster, type SseEvent,
} from './helpers/master-processes.ts';
import { waitUntil } from './helpers/wait.ts';
import { openStore } from '../src/store/index.ts';

const HANG = { timeout: 180_000 };
const built = builtCommandMissing();

interface Report {
  targets: { name: string; status: string; error?: string; counts: Record<string, number>; nodes: { ref: string; status: string; action: string; reason?: string; ms: number }[] }[];
}

describe('agents through a master (real processes)', { skip: built }, () => {
  let dir: string;
  let master: RunningMaster;
  let operator: string;
  let viewer: string;
  const agents = new Map<string, CairnProcess>();
  let site: string;
  let gateSite: string;
  const root = (name: string) => join(dir, `root-${name}`);
  const tls = (name: string) => join(dir, `tls-${name}`);
  const work = (name: string) => join(dir, `work-${name}`);

  /** The CLI with the master's CA and the operator's token. */
  const cli = (args: string[]) => cairnBin([args[0]!, '--master-ca', master.caFile, ...args.slice(1)], dir, { CAIRN_TOKEN: operator });

  before(async () => {
    dir = tempDir('cairn-master-e2e-');
    master = await startMaster(dir);
    operator = masterJson<{ token: string }>(master, ['api-token', 'create', '--name', 'ops', '--role', 'operator']).token;
    viewer = masterJson<{ token: string }>(master, ['api-token', 'create', '--name', 'watcher', '--role', 'viewer']).token;
    for (const name of ['web1', 'web2']) {
      mkdirSync(root(name), { recursive: true });
      enrolAgent(master, name, tls(name));
      agents.set(name, await startAgent(master, tls(name), work(name)));
    }
    mkdirSync(root('local1'), { recursive: true });
    const target = (name: string, executor: string, run: string) =>
      `  ${name}:\n    executor: ${executor}\n    state_dir: ${join(dir, `state-${name}`)}\n    vars: { root: ${root(name)} }\n    run: [${run}]\n`;
    site = join(dir, 'site');
    mkdirSync(join(site, 'states'), { recursive: true });
    writeFileSync(join(site, 'cairn.yaml'), `master: ${master.apiUrl}\nvars:\n  greeting: hello\ntargets:\n${target('web1', 'agent', 'motd')}${target('web2', 'agent', 'motd')}${target('local1', 'local', 'motd')}`);
    writeFileSync(join(site, 'states/motd.yaml'), 'motd:\n  - file: <%= it.vars.root %>/motd\n    content: "<%= it.vars.greeting %>\\n"\n  - directory: <%= it.vars.root %>/conf.d\n');
    // A run that waits, part way, for the test to let it go: for cancelling one in flight.
    gateSite = join(dir, 'gate-site');
    mkdirSync(join(gateSite, 'states'), { recursive: true });
    writeFileSync(join(gateSite, 'cairn.yaml'), `targets:\n${target('web1', 'agent', 'gate')}`);
    writeFileSync(join(gateSite, 'states/gate.yaml'), 'gate:\n  - exec: "touch <%= it.vars.root %>/started; while [ ! -e <%= it.vars.root %>/go ]; do sleep 0.05; done"\n    id: wait\n' +
      '  - file: <%= it.vars.root %>/after-gate\n    content: "should not be written\\n"\n    require: wait\n');
  });

  after(async () => {
    for (const agent of agents.values()) await agent.stop();
    await master?.process.stop();
  });

  test('apply through the CLI: each agent converges its own root; the report and lines are those of a local target', HANG, async () => {
    const r = cli(['apply', '--site', site, '-t', 'web1', '-t', 'web2', '-t', 'local1', '--json']);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const report = JSON.parse(r.stdout) as Report;
    assert.deepEqual(report.targets.map((t) => [t.name, t.status, t.counts.changed]), [['web1', 'ok', 2], ['web2', 'ok', 2], ['local1', 'ok', 2]]);
    for (const name of ['web1', 'web2', 'local1']) assert.equal(readFileSync(join(root(name), 'motd'), 'utf8'), 'hello\n');
    // The agent's report is the engine's, as for a local run: same nodes, statuses and actions.
    const shape = (name: string) => report.targets.find((t) => t.name === name)!.nodes.map((n) => JSON.parse(JSON.stringify({ ...n, ms: 0 }).replaceAll(root(name), 'ROOT')) as unknown);
    assert.deepEqual(shape('web1'), shape('local1'));

    const again = cli(['apply', '--site', site, '-t', 'web1', '-t', 'local1']);
    assert.equal(again.status, 0, again.stderr);
    const lines = (name: string) => again.stdout.split('\n').filter((l) => l.startsWith(`${name}:`) || l.startsWith(`${name} `))
      .map((l) => l.replace(name, 'T').replaceAll(root(name), 'ROOT').replace(/\d+(\.\d+)?\s?m?s\b/g, 'TIME'));
    assert.ok(lines('web1').length > 0, again.stdout);
    assert.deepEqual(lines('web1'), lines('local1'));
    assert.match(again.stdout, /web1.*2 unchanged/);
  });

  test('plan through the CLI shows the change and changes nothing; --detailed-exitcode says 4', HANG, async () => {
    assert.equal(cli(['apply', '--site', site, '-t', 'web1']).status, 0);
    const r = cli(['plan', '--site', site, '-t', 'web1', '--var', 'greeting=changed', '--json', '--detailed-exitcode', '--diff']);
    assert.equal(r.status, 4, r.stderr);
    const t = (JSON.parse(r.stdout) as Report).targets[0]!;
    assert.deepEqual(t.nodes.filter((n) => n.status === 'would-change').map((n) => n.ref), [`file:${root('web1')}/motd`]);
    assert.equal(readFileSync(join(root('web1'), 'motd'), 'utf8'), 'hello\n');
  });

  test('cairn run through the master: the command runs on the agent, its output comes back', HANG, async () => {
    const r = cli(['run', '--site', site, '-t', 'web1', '--', 'sh', '-c', 'echo out-$((40+2)); echo err >&2; exit 3']);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /web1: FAILED \(exit 3\)\nout-42\n/);
    assert.match(r.stdout, /web1: stderr:\nerr\n/);
  });

  test('the API: targets with their facts, agents connected, roles enforced', HANG, async () => {
    const factsRun = await api(master, operator, 'POST', '/api/v1/runs', { mode: 'facts', targets: ['web1'] });
    assert.equal(factsRun.status, 202, JSON.stringify(factsRun.json));
    const factsId = (factsRun.json as { id: string }).id;
    const factsEvents = await readEvents(master, viewer, factsId, undefined, (e) => e.event === 'run' && e.data.state === 'finished');
    const outcome = factsEvents.find((e) => e.event === 'target' && e.data.phase === 'finished')!.data.outcome as { status: string; facts: Record<string, unknown> };
    assert.equal(outcome.status, 'ok');
    const agentsList = await api(master, viewer, 'GET', '/api/v1/agents');
    assert.equal(agentsList.status, 200);
    const byName = new Map((agentsList.json as { agents: { name: string; connected: boolean }[] }).agents.map((a) => [a.name, a.connected]));
    assert.equal(byName.get('web1'), true);
    assert.equal(byName.get('web2'), true);
    const target = await api(master, viewer, 'GET', '/api/v1/targets/web1');
    assert.equal(target.status, 200);
    const info = target.json as { connected: boolean; facts: Record<string, unknown>; last_runs: unknown[]; certificate: { serial: string; status: string } };
    const enrolment = JSON.parse(readFileSync(join(tls('web1'), 'enrolment.json'), 'utf8')) as { serial: string };
    assert.deepEqual([info.certificate.serial, info.certificate.status], [enrolment.serial, 'valid']);
    assert.equal(info.connected, true);
    assert.equal(typeof info.facts.hostname, 'string');
    assert.deepEqual(info.facts, outcome.facts, "a facts run's answer is what the master keeps");
    assert.equal((info.last_runs[0] as { id: string }).id, factsId);
    // What the CLI asks before it compiles: the same facts, without the history.
    const factsOnly = await api(master, viewer, 'GET', '/api/v1/targets/web1/facts');
    assert.deepEqual(factsOnly.json, { name: 'web1', connected: true, facts: info.facts });
    assert.equal((await api(master, viewer, 'GET', '/api/v1/targets/nosuch/facts')).status, 404);
    // A viewer may look but not run; nobody may do either without a token.
    const refused = await api(master, viewer, 'POST', '/api/v1/runs', { mode: 'facts', targets: ['web1'] });
    assert.equal(refused.status, 403);
    const anonymous = await api(master, '', 'GET', '/api/v1/runs');
    assert.equal(anonymous.status, 401);
    // cairn facts shows what the agent reported to the master.
    const facts = cli(['facts', '--site', site, '-t', 'web1', '--json']);
    assert.equal(facts.status, 0, facts.stderr);
    assert.deepEqual((JSON.parse(facts.stdout) as { targets: { name: string; facts: Record<string, unknown> }[] }).targets[0]!.facts, info.facts);
    const bad = await api(master, operator, 'POST', '/api/v1/runs', { mode: 'run', targets: ['web1'] });
    assert.equal(bad.status, 400);
    assert.match((bad.json as { error: string }).error, /argv/);
  });

  test('apply through the API from the pushed revision: live events, resumed after a drop with nothing lost or doubled', HANG, async () => {
    const pushed = cairnBin(['push', '--site', site, '--store', master.store]);
    assert.equal(pushed.status, 0, pushed.stderr);
    const started = await api(master, operator, 'POST', '/api/v1/runs', { mode: 'apply', targets: ['web2'], vars: { greeting: 'from the api' } });
    assert.equal(started.status, 202, JSON.stringify(started.json));
    const id = (started.json as { id: string }).id;
    // Drop the stream after the first node event, then resume from the last id seen.
    const first = await readEvents(master, viewer, id, undefined, (e) => e.event === 'node');
    const lastSeen = first.at(-1)!.id;
    const rest = await readEvents(master, viewer, id, lastSeen, (e) => e.event === 'run' && e.data.state === 'finished');
    const whole = await readEvents(master, viewer, id, undefined, (e) => e.event === 'run' && e.data.state === 'finished');
    const seqs = (events: SseEvent[]) => events.map((e) => e.id);
    assert.deepEqual([...seqs(first), ...seqs(rest)], seqs(whole));
    assert.deepEqual(seqs(whole), whole.map((_, i) => i + 1));
    assert.deepEqual(whole.map((e) => e.data), [...first, ...rest].map((e) => e.data));
    const motd = whole.find((e) => e.event === 'node' && (e.data.node as { ref: string }).ref === `file:${root('web2')}/motd`);
    assert.equal((motd?.data.node as { status: string } | undefined)?.status, 'changed');
    assert.equal(readFileSync(join(root('web2'), 'motd'), 'utf8'), 'from the api\n');

    const run = await api(master, viewer, 'GET', `/api/v1/runs/${id}`);
    const record = run.json as { state: string; revision: string; report: Report };
    assert.equal(record.state, 'finished');
    assert.match(record.revision, /^[0-9a-f]+$/);
    assert.equal(record.report.targets[0]!.status, 'ok');
    const revisions = await api(master, viewer, 'GET', '/api/v1/revisions');
    assert.equal((revisions.json as { revisions: { id: string }[] }).revisions[0]!.id, record.revision);
    const diff = await api(master, viewer, 'GET', `/api/v1/revisions/${record.revision}/diff`);
    assert.ok((diff.json as { files: { path: string; change: string }[] }).files.some((f) => f.path === 'states/motd.yaml' && f.change === 'added'));
  });

  test('a POST of a run that accepts text/event-stream is answered with its events (its id in Location), the same GET .../events gives', HANG, async () => {
    const finished = (e: SseEvent) => e.event === 'run' && e.data.state === 'finished';
    const started = await startRunFollowing(master, operator, { mode: 'facts', targets: ['web1', 'web2'] }, finished);
    assert.equal(started.status, 202);
    const id = /^\/api\/v1\/runs\/(r[0-9a-f-]+)$/.exec(started.location ?? '')?.[1];
    assert.ok(id, `Location ${started.location}`);
    assert.deepEqual(started.events.map((e) => e.id), started.events.map((_, i) => i + 1));
    assert.equal(started.events.filter((e) => e.event === 'target' && e.data.phase === 'finished').length, 2);
    assert.ok(finished(started.events.at(-1)!));
    const again = await readEvents(master, viewer, id, undefined, finished);
    assert.deepEqual(again.map((e) => e.data), started.events.map((e) => e.data));
    // Stored in seq order, the events queued together as one key (an array named after its
    // first seq), written in batches: the finished record and the run's last event in one
    // transaction.
    const store = await openStore(master.store);
    try {
      const stored = async () => store.list(`/cairn/master/run-events/${id}/`);
      const storedEvents = (kvs: { value: Buffer }[]) => kvs.flatMap((kv) => JSON.parse(kv.value.toString('utf8')) as unknown[]);
      await waitUntil(async () => storedEvents(await stored()).length === started.events.length, 'the run\'s events in the store');
      const kvs = await stored();
      assert.deepEqual(storedEvents(kvs), started.events.map((e) => e.data));
      assert.deepEqual(kvs.map((kv) => Number(kv.key.split('/').at(-1))), kvs.map((kv) => (JSON.parse(kv.value.toString('utf8')) as { seq: number }[])[0]!.seq));
      assert.ok(kvs.length < started.events.length, `${kvs.length} keys for ${started.events.length} events`);
      const record = await store.get(`/cairn/master/runs/${id}`);
      assert.equal((JSON.parse(record!.value.toString('utf8')) as { state: string }).state, 'finished');
      assert.equal(record!.modRevision, kvs.at(-1)!.modRevision);
    } finally {
      await store.close();
    }
    // A viewer may not start runs, stream or not.
    assert.equal((await startRunFollowing(master, viewer, { mode: 'facts', targets: ['web1'] }, finished)).status, 403);
  });

  test('?nodes=once (what the CLI asks): node results only in the node events, the target\'s outcome and the run\'s report without them; another value is 400 and starts nothing', HANG, async () => {
    const r = cli(['apply', '--site', site, '-t', 'web1', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const fromCli = (JSON.parse(r.stdout) as Report).targets[0]!;
    const list = async () => ((await api(master, viewer, 'GET', '/api/v1/runs')).json as { runs: { id: string; mode: string; targets: string[] }[] }).runs;
    const runs = await list();
    const id = runs.find((run) => run.mode === 'apply' && run.targets.includes('web1'))!.id;
    const finished = (e: SseEvent) => e.event === 'run' && e.data.state === 'finished';
    const full = await readEvents(master, viewer, id, undefined, finished);
    const lean = await readEvents(master, viewer, id, undefined, finished, '?nodes=once');
    assert.deepEqual(lean.map((e) => [e.id, e.event]), full.map((e) => [e.id, e.event]));
    const outcome = (events: SseEvent[]) => events.find((e) => e.event === 'target' && e.data.phase === 'finished')!.data.outcome as Record<string, unknown>;
    const { nodes, ...rest } = outcome(full) as { nodes: unknown[] };
    assert.ok(nodes.length > 0);
    assert.deepEqual(outcome(lean), rest);
    // The node events are the outcome's nodes, and what the CLI reported.
    assert.deepEqual(lean.filter((e) => e.event === 'node').map((e) => e.data.node), nodes);
    assert.deepEqual(fromCli.nodes.map((n) => n.ref), (nodes as { ref: string }[]).map((n) => n.ref));
    const report = lean.at(-1)!.data.report as { targets: Record<string, unknown>[] };
    assert.ok(report.targets.every((t) => !('nodes' in t)) && report.targets.length === 1);
    for (const e of full.filter((e) => e.event !== 'run' && !(e.event === 'target' && e.data.phase === 'finished'))) {
      assert.deepEqual(lean.find((l) => l.id === e.id)!.data, e.data);
    }

    assert.equal((await api(master, viewer, 'GET', `/api/v1/runs/${id}/events?nodes=twice`)).status, 400);
    const before = (await list()).length;
    const refused = await api(master, operator, 'POST', '/api/v1/runs?nodes=twice', { mode: 'facts', targets: ['web1'] });
    assert.equal(refused.status, 400);
    assert.match((refused.json as { error: string }).error, /nodes= takes only once/);
    assert.equal((await list()).length, before);
  });

  test('cancel a run in flight: the node running finishes, the rest is skipped, the run says cancelled', HANG, async () => {
    const apply = new CairnProcess(['apply', '--site', gateSite, '-t', 'web1', '--json', '--master', master.apiUrl, '--master-ca', master.caFile], { CAIRN_TOKEN: operator });
    await waitUntil(() => existsSync(join(root('web1'), 'started')), () => `the gated run to start: ${apply.stderr}`);
    const runs = (await api(master, viewer, 'GET', '/api/v1/runs')).json as { runs: { id: string; state: string }[] };
    const running = runs.runs.find((r) => r.state === 'running');
    assert.ok(running, JSON.stringify(runs));
    // Events are live: the target's start is streamed while the run is held at the gate.
    const live = await readEvents(master, viewer, running.id, undefined, (e) => e.event === 'target');
    assert.deepEqual(live.map((e) => [e.event, e.data.state ?? e.data.phase]), [['run', 'queued'], ['run', 'running'], ['target', 'started']]);
    assert.equal(((await api(master, viewer, 'GET', `/api/v1/runs/${running.id}`)).json as { state: string }).state, 'running');
    const cancelled = await api(master, operator, 'POST', `/api/v1/runs/${running.id}/cancel`);
    assert.equal(cancelled.status, 202);
    writeFileSync(join(root('web1'), 'go'), '');
    await apply.exited;
    // The stream dropped while the run was held, resumed after it ended: the rest, once each.
    const rest = await readEvents(master, viewer, running.id, live.at(-1)!.id, (e) => e.event === 'run' && e.data.state === 'finished');
    const whole = await readEvents(master, viewer, running.id, undefined, (e) => e.event === 'run' && e.data.state === 'finished');
    assert.deepEqual([...live, ...rest].map((e) => e.id), whole.map((e) => e.id));
    assert.deepEqual(whole.map((e) => e.id), whole.map((_, i) => i + 1));
    const report = JSON.parse(apply.stdout) as Report;
    const nodes = report.targets[0]!.nodes;
    assert.equal(nodes.find((n) => n.ref.startsWith('file:'))!.status, 'skipped', apply.stdout);
    assert.equal(nodes.find((n) => n.ref.startsWith('file:'))!.reason, 'run cancelled');
    assert.ok(!existsSync(join(root('web1'), 'after-gate')));
    const record = (await api(master, viewer, 'GET', `/api/v1/runs/${running.id}`)).json as { state: string; cancelled?: boolean };
    assert.deepEqual([record.state, record.cancelled], ['finished', true]);
    const again = await api(master, operator, 'POST', `/api/v1/runs/${running.id}/cancel`);
    assert.equal(again.status, 409);
  });

  test('an agent lost during a run: its target is unreachable, naming it; restarted, it serves again', HANG, async () => {
    rmSync(join(root('web1'), 'started'), { force: true });
    rmSync(join(root('web1'), 'go'), { force: true });
    const apply = new CairnProcess(['apply', '--site', gateSite, '-t', 'web1', '--json', '--master', master.apiUrl, '--master-ca', master.caFile], { CAIRN_TOKEN: operator });
    await waitUntil(() => existsSync(join(root('web1'), 'started')), () => `the gated run to start: ${apply.stderr}`);
    agents.get('web1')!.child.kill('SIGKILL');
    assert.equal(await apply.exited, 3, apply.stderr);
    const report = JSON.parse(apply.stdout) as Report;
    assert.equal(report.targets[0]!.status, 'unreachable');
    assert.match(report.targets[0]!.error!, /agent web1 is not connected/);
    writeFileSync(join(root('web1'), 'go'), '');
    agents.set('web1', await startAgent(master, tls('web1'), work('web1')));
    const r = cli(['apply', '--site', site, '-t', 'web1', '--json']);
    assert.equal(r.status, 0, r.stderr);
  });

  test('the master restarted: agents reconnect by themselves (back-off), and runs go through again', HANG, async () => {
    const ports = { api: Number(new URL(master.apiUrl).port), agent: Number(new URL(master.agentUrl).port) };
    const connections = (name: string) => agents.get(name)!.stdout.match(/connected to \S+ as /g)?.length ?? 0;
    const before = { web1: connections('web1'), web2: connections('web2') };
    assert.equal(await master.process.stop(), 0);
    await waitUntil(() => /disconnected from/.test(agents.get('web1')!.stdout) && /disconnected from/.test(agents.get('web2')!.stdout), 'the agents to see the master go');
    master = await startMaster(dir, ports);
    await waitUntil(() => connections('web1') > before.web1 && connections('web2') > before.web2, () => `the agents to reconnect:\n${agents.get('web1')!.stdout}`);
    assert.match(agents.get('web1')!.stdout, /reconnecting in \d+\.\d s/);
    const r = cli(['apply', '--site', site, '-t', 'web1', '-t', 'web2', '--json']);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as Report).targets.map((t) => t.status), ['ok', 'ok']);
  });

  test('cairn agent --master refuses, exit 2, a folder with no enrolment and a master URL that is not TLS', HANG, async () => {
    const none = cairnBin(['agent', '--master', master.agentUrl, '--dir', join(dir, 'never-enrolled')]);
    assert.equal(none.status, 2, none.stderr);
    assert.match(none.stderr, /holds no enrolment: run `cairn agent enrol` first/);
    const plain = cairnBin(['agent', '--master', master.agentUrl.replace('https:', 'http:'), '--dir', tls('web1'), '--work-dir', work('web1')]);
    assert.equal(plain.status, 2, plain.stderr);
    assert.match(plain.stderr, /the agent port is spoken to over TLS/);
  });

  test('the real mTLS listener closes an unknown message type with 4400 and another protocol version with 4426', HANG, async () => {
    enrolAgent(master, 'probe', tls('probe'));
    const enrolment = JSON.parse(readFileSync(join(tls('probe'), 'enrolment.json'), 'utf8')) as { serial: string };
    const credentials = {
      cert: readFileSync(join(tls('probe'), `cert-${enrolment.serial}.pem`)), key: readFileSync(join(tls('probe'), `key-${enrolment.serial}.pem`)), ca: readFileSync(join(tls('probe'), 'ca.pem')),
    };
    const url = `${master.agentUrl.replace('https:', 'wss:')}/v1/agent`;
    const closeCode = async (frame: unknown) => {
      const socket = new WebSocket(url, credentials);
      await once(socket, 'open');
      socket.send(JSON.stringify(frame));
      const [code] = await once(socket, 'close');
      return code as number;
    };
    assert.equal(await closeCode({ v: 1, type: 'exec', cmd: 'id' }), 4400);
    assert.equal(await closeCode({ v: 2, type: 'hello', agent_version: '9', facts: {}, boot_id: 'x' }), 4426);
    // Without a certificate there is no agent socket at all.
    const anonymous = new WebSocket(url, { ca: credentials.ca });
    const [err] = await once(anonymous, 'error');
    assert.match((err as Error).message, /401/);
  });

  test('a newer connection of the same name replaces the older (4409): the old agent stops, the new one serves', HANG, async () => {
    const old = agents.get('web1')!;
    const newer = await startAgent(master, tls('web1'), work('web1'));
    assert.equal(await old.exited, 3);
    assert.match(old.stderr, /another agent connected with the same name/);
    agents.set('web1', newer);
    const r = cli(['apply', '--site', site, '-t', 'web1', '--json']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as Report).targets[0]!.status, 'ok');
  });

  test('an agent that is not connected is unreachable, naming it: exit 3, the other targets converge', HANG, async () => {
    assert.equal(await agents.get('web2')!.stop(), 0);
    await waitUntil(async () => {
      const list = (await api(master, viewer, 'GET', '/api/v1/agents')).json as { agents: { name: string; connected: boolean }[] };
      return list.agents.find((a) => a.name === 'web2')?.connected === false;
    }, 'the master to see web2 go');
    writeFileSync(join(root('local1'), 'motd'), 'drifted\n');
    const r = cli(['apply', '--site', site, '-t', 'web2', '-t', 'local1', '--json']);
    assert.equal(r.status, 3, r.stderr);
    const report = JSON.parse(r.stdout) as Report;
    assert.deepEqual(report.targets.map((t) => [t.name, t.status]), [['web2', 'unreachable'], ['local1', 'ok']]);
    assert.match(report.targets[0]!.error!, /agent web2 is not connected to master https:\/\/127\.0\.0\.1:\d+/);
    assert.equal(readFileSync(join(root('local1'), 'motd'), 'utf8'), 'hello\n');
  });

  test('revoking an agent closes its socket (4401) and ends it; started again it never connects; the other agent goes on', HANG, async () => {
    const web2 = await startAgent(master, tls('web2'), work('web2'));
    agents.set('web2', web2);
    const revoked = cairnBin(['master', 'ca', 'revoke', 'web2', '--store', master.store]);
    assert.equal(revoked.status, 0, revoked.stderr);
    assert.equal(await web2.exited, 3);
    assert.match(web2.stderr, /the master refused this agent's certificate \(certificate revoked\)/);
    // Started again, it is cut off at each TLS handshake: it never connects, and keeps backing off.
    const again = new CairnProcess(['agent', '--master', master.agentUrl, '--dir', tls('web2'), '--work-dir', work('web2')]);
    agents.set('web2', again);
    await waitUntil(() => (again.stdout.match(/reconnecting in/g)?.length ?? 0) >= 2, () => `two refused attempts:\n${again.stdout}${again.stderr}`);
    assert.doesNotMatch(again.stdout, /connected to \S+ as/);
    assert.equal(((await api(master, viewer, 'GET', '/api/v1/targets/web2')).json as { connected: boolean }).connected, false);
    const r = cli(['apply', '--site', site, '-t', 'web1', '--json']);
    assert.equal(r.status, 0, r.stderr);
  });
});
