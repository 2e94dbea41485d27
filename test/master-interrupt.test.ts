/**
 * Ctrl-C (SIGINT) and SIGTERM in the CLI for a target with `executor: agent` (DESIGN §9, §12),
 * with real processes: a `cairn master` on a SQLite store, a real `cairn agent --master`, and the
 * CLI as a process of its own, signalled while the agent's run waits at a gate the test holds.
 * The run is cancelled on the master: the agent finishes the node under way and starts no other,
 * the CLI says what it does and exits 1, as a local run interrupted does.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tempDir } from './helpers/cli.ts';
import { api, builtCommandMissing, CairnProcess, enrolAgent, masterJson, startAgent, startMaster, type RunningMaster } from './helpers/master-processes.ts';
import { waitUntil } from './helpers/wait.ts';

const HANG = { timeout: 180_000 };
const built = builtCommandMissing();

interface Report {
  targets: { name: string; status: string; nodes: { ref: string; status: string; reason?: string }[] }[];
}

interface RunRecord {
  id: string;
  state: string;
  cancelled?: boolean;
  report?: { targets: { name: string; status: string; stdout?: string }[] };
}

describe('interrupting the CLI for an agent target cancels the run on the master (real processes)', { skip: built }, () => {
  let dir: string;
  let master: RunningMaster;
  let operator: string;
  let agent: CairnProcess;
  let site: string;
  const root = () => join(dir, 'root-web1');

  before(async () => {
    dir = tempDir('cairn-master-interrupt-');
    master = await startMaster(dir);
    operator = masterJson<{ token: string }>(master, ['api-token', 'create', '--name', 'ops', '--role', 'operator']).token;
    enrolAgent(master, 'web1', join(dir, 'tls-web1'));
    agent = await startAgent(master, join(dir, 'tls-web1'), join(dir, 'work-web1'));
    mkdirSync(root(), { recursive: true });
    site = join(dir, 'site');
    mkdirSync(join(site, 'states'), { recursive: true });
    writeFileSync(join(site, 'cairn.yaml'), `master: ${master.apiUrl}\ntargets:\n  web1:\n    executor: agent\n    state_dir: ${join(dir, 'state-web1')}\n    run: [gate]\n`);
    // The first node says it started, then waits for the test to open its gate; the second must never run.
    writeFileSync(join(site, 'states/gate.yaml'), `gate:\n  - exec: "touch ${root()}/started; while [ ! -e ${root()}/go ]; do sleep 0.05; done"\n    id: wait\n` +
      `  - file: ${root()}/after-gate\n    content: "should not be written\\n"\n    require: wait\n`);
  });

  after(async () => {
    await agent?.stop();
    await master?.process.stop();
  });

  const cli = (args: string[]) => new CairnProcess([args[0]!, '--master-ca', master.caFile, ...args.slice(1)], { CAIRN_TOKEN: operator });
  const runs = async () => ((await api(master, operator, 'GET', '/api/v1/runs')).json as { runs: RunRecord[] }).runs;
  const cancelsSeen = () => agent.stdout.match(/cancelled by the master/g)?.length ?? 0;

  test('SIGINT in cairn apply: the run is cancelled on the master, the node under way finishes, no other starts, exit 1', HANG, async () => {
    const seen = cancelsSeen();
    const apply = cli(['apply', '--site', site, '-t', 'web1', '--json']);
    await waitUntil(() => existsSync(join(root(), 'started')), () => `the gated run to start: ${apply.stderr}`);
    apply.child.kill('SIGINT');
    await waitUntil(() => /cancelling run r\S+ on master https:\/\/127\.0\.0\.1:\d+/.test(apply.stderr), () => `the CLI to say it cancels: ${apply.stderr}`);
    // The agent has the cancel before the node under way is let go: the next node cannot start.
    await waitUntil(() => cancelsSeen() > seen, () => `the agent to be told: ${agent.stdout}`);
    writeFileSync(join(root(), 'go'), '');
    assert.equal(await apply.exited, 1, apply.stderr);
    assert.match(apply.stderr, /cairn: SIGINT: finishing the node under way .* SIGINT again ends at once/);
    const report = JSON.parse(apply.stdout) as Report;
    const file = report.targets[0]!.nodes.find((n) => n.ref.startsWith('file:'))!;
    assert.deepEqual([file.status, file.reason], ['skipped', 'run cancelled'], apply.stdout);
    assert.ok(!existsSync(join(root(), 'after-gate')), 'no node started after the interrupt');
    const runId = /cancelling run (r\S+) on master/.exec(apply.stderr)![1]!;
    const record = (await api(master, operator, 'GET', `/api/v1/runs/${runId}`)).json as RunRecord;
    assert.deepEqual([record.state, record.cancelled], ['finished', true]);
  });

  test('SIGTERM in cairn run: the agent stops the command, the master records the run cancelled, exit 1', HANG, async () => {
    const seen = cancelsSeen();
    const gate = join(dir, 'run-gate');
    const started = join(dir, 'run-started');
    const run = cli(['run', '--site', site, '-t', 'web1', '--', 'sh', '-c', `touch ${started}; while [ ! -e ${gate} ]; do sleep 0.05; done; echo done`]);
    await waitUntil(() => existsSync(started), () => `the command to start: ${run.stderr}`);
    run.child.kill('SIGTERM');
    assert.equal(await run.exited, 1, run.stderr + run.stdout);
    assert.match(run.stderr, /cairn: SIGTERM: cancelling the command on each target/);
    assert.match(run.stderr, /web1: cancelling run r\S+ on master https:\/\/127\.0\.0\.1:\d+: the agent stops the command/);
    await waitUntil(() => cancelsSeen() > seen, () => `the agent to say it was told: ${agent.stdout}`);
    assert.doesNotMatch(run.stdout, /^done$/m, 'the command was stopped before its gate opened');
    const runId = /cancelling run (r\S+) on master/.exec(run.stderr)![1]!;
    const record = (await api(master, operator, 'GET', `/api/v1/runs/${runId}`)).json as RunRecord;
    assert.deepEqual([record.state, record.cancelled, record.report!.targets[0]!.status], ['finished', true, 'failed']);
    assert.ok((await runs()).some((r) => r.id === runId));
    writeFileSync(gate, '');
  });
});
