/**
 * Runs left `running` by a master killed with -9 (DESIGN §9), with real processes on a SQLite
 * store: a `cairn master`, a real `cairn agent --master` holding a run at a gate the test keeps
 * shut, the master SIGKILLed, and started again from the same state folder. The new master knows
 * its predecessor's id (the state folder's `master-id`) and records that master's unfinished
 * runs as interrupted at once, in the store, the API's run and list, and the run's event stream;
 * the agent, reconnected, runs the next run as usual.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tempDir } from './helpers/cli.ts';
import { api, builtCommandMissing, masterWithAgent, readEvents, startMaster, type CairnProcess, type RunningMaster } from './helpers/master-processes.ts';
import { waitUntil } from './helpers/wait.ts';

const HANG = { timeout: 180_000 };
const built = builtCommandMissing();

interface RunRecord {
  id: string;
  state: string;
  interrupted?: string;
  report?: { targets: { name: string; status: string; error?: string; stdout?: string; exit_code?: number | null }[] };
}

describe('a master killed with -9: its runs end interrupted when it starts again (real processes, SQLite)', { skip: built }, () => {
  let dir: string;
  let master: RunningMaster;
  let token: string;
  let agent: CairnProcess;

  before(async () => {
    dir = tempDir('cairn-master-interrupted-');
    ({ master, token, agent } = await masterWithAgent(dir));
  });

  after(async () => {
    await agent?.stop();
    await master?.process.stop();
  });

  test('the run a killed master was running is recorded interrupted at its restart; the agent serves the next run', HANG, async () => {
    const started = join(dir, 'started');
    const gate = join(dir, 'gate');
    const posted = await api(master, token, 'POST', '/api/v1/runs', { mode: 'run', targets: ['web1'], argv: ['sh', '-c', `touch ${started}; while [ ! -e ${gate} ]; do sleep 0.05; done; echo done`] });
    assert.equal(posted.status, 202, JSON.stringify(posted.json));
    const { id } = posted.json as { id: string };
    await waitUntil(() => existsSync(started), 'the command to start on the agent');
    assert.equal(((await api(master, token, 'GET', `/api/v1/runs/${id}`)).json as RunRecord).state, 'running');

    const ports = { api: Number(new URL(master.apiUrl).port), agent: Number(new URL(master.agentUrl).port) };
    const connections = () => agent.stdout.match(/connected to \S+ as /g)?.length ?? 0;
    const before = connections();
    master.process.child.kill('SIGKILL');
    await master.process.exited;
    master = await startMaster(dir, ports);
    await waitUntil(() => /previous master of this state folder \(\S+\) is gone/.test(master.process.stderr), () => `the master to say so: ${master.process.stderr}`);

    // Recorded at start, before anything else could end it: no wait for the old record to expire.
    const record = (await api(master, token, 'GET', `/api/v1/runs/${id}`)).json as RunRecord;
    assert.equal(record.state, 'finished', JSON.stringify(record));
    assert.match(record.interrupted ?? '', /^the master running it \(\S+\) stopped before the run finished$/);
    assert.deepEqual(record.report!.targets.map((t) => [t.name, t.status]), [['web1', 'unreachable']]);
    assert.equal(record.report!.targets[0]!.error, record.interrupted);
    // The list (what the web UI shows) says so too.
    const listed = ((await api(master, token, 'GET', '/api/v1/runs')).json as { runs: RunRecord[] }).runs.find((r) => r.id === id);
    assert.deepEqual([listed?.state, listed?.interrupted], ['finished', record.interrupted]);
    // A follower of the run's events sees it end.
    const events = await readEvents(master, token, id, undefined, (e) => e.event === 'run' && e.data.state === 'finished');
    assert.deepEqual(events.map((e) => e.id), events.map((_, i) => i + 1));
    assert.equal(events.at(-1)!.data.interrupted, record.interrupted);

    // The agent lost its master, stopped that command itself, and reconnects; the next run is undisturbed.
    writeFileSync(gate, '');
    await waitUntil(() => connections() > before, () => `the agent to reconnect: ${agent.stdout}`);
    const next = await api(master, token, 'POST', '/api/v1/runs', { mode: 'run', targets: ['web1'], argv: ['echo', 'after'] });
    const nextId = (next.json as { id: string }).id;
    await readEvents(master, token, nextId, undefined, (e) => e.event === 'run' && e.data.state === 'finished');
    const done = (await api(master, token, 'GET', `/api/v1/runs/${nextId}`)).json as RunRecord;
    assert.deepEqual(done.report!.targets.map((t) => [t.status, t.stdout]), [['ok', 'after\n']]);
    assert.equal(done.interrupted, undefined);
  });
});
