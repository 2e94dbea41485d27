/**
 * Run retention on a master (DESIGN §8, §9), with real processes: `cairn master --keep-runs N`
 * on a SQLite store keeps each target's newest N finished runs with their events and removes the
 * rest, after each run ends and at start; `--keep-days D` also removes finished runs older than
 * D days; a run still going is never removed, however old. What was removed is checked in the
 * store itself (records and events), not only through the API.
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openStore } from '../src/store/index.ts';
import { tempDir } from './helpers/cli.ts';
import { api, builtCommandMissing, masterWithAgent, readEvents, startMaster, type CairnProcess, type RunningMaster } from './helpers/master-processes.ts';
import { waitUntil } from './helpers/wait.ts';

const HANG = { timeout: 180_000 };
const built = builtCommandMissing();

interface RunRecord {
  id: string;
  state: string;
  finished?: string;
}

describe('a master keeps the newest runs of each target and removes the rest (real processes, SQLite)', { skip: built }, () => {
  let dir: string;
  let master: RunningMaster;
  let token: string;
  let agent: CairnProcess;
  const names = new Map<string, string>();
  let ports: { api: number; agent: number };

  before(async () => {
    dir = tempDir('cairn-master-retention-');
    ({ master, token, agent } = await masterWithAgent(dir, { extraArgs: ['--keep-runs', '2'] }));
    ports = { api: Number(new URL(master.apiUrl).port), agent: Number(new URL(master.agentUrl).port) };
  });

  after(async () => {
    await agent?.stop();
    await master?.process.stop();
  });

  /** Starts a run and waits until it has finished; `label` names it in the assertions. */
  const run = async (label: string, body: Record<string, unknown>, wait = true) => {
    const posted = await api(master, token, 'POST', '/api/v1/runs', body);
    assert.equal(posted.status, 202, JSON.stringify(posted.json));
    const { id } = posted.json as { id: string };
    names.set(id, label);
    if (wait) await readEvents(master, token, id, undefined, (e) => e.event === 'run' && e.data.state === 'finished');
    return id;
  };
  const listed = async () => ((await api(master, token, 'GET', '/api/v1/runs?limit=1000')).json as { runs: RunRecord[] }).runs.map((r) => names.get(r.id) ?? r.id).sort();
  /** Labels of the runs whose record, and of those whose events, are in the store. */
  const inStore = async () => {
    const store = await openStore(master.store);
    try {
      const records = (await store.list('/cairn/master/runs/')).map((kv) => names.get(kv.key.split('/').at(-1)!) ?? kv.key).sort();
      const events = [...new Set((await store.list('/cairn/master/run-events/')).map((kv) => names.get(kv.key.split('/').at(-2)!) ?? kv.key))].sort();
      return { records, events };
    } finally {
      await store.close();
    }
  };

  test('after each run: each target\'s newest 2 finished runs stay with their events; a run going is kept, removed once finished and old', HANG, async () => {
    const started = join(dir, 'started');
    const gate = join(dir, 'gate');
    // The oldest run, held going at a gate: never removed while it runs.
    await run('R0', { mode: 'run', targets: ['web1'], argv: ['sh', '-c', `touch ${started}; while [ ! -e ${gate} ]; do sleep 0.05; done`] }, false);
    await waitUntil(() => existsSync(started), 'the held run to start');
    for (const label of ['W1', 'W2', 'W3']) await run(label, { mode: 'facts', targets: ['web1'] });
    // ghost1 and ghost2 never connected: their runs end at once (unreachable), and count as runs.
    await run('G1', { mode: 'facts', targets: ['ghost1'] });
    await run('H1', { mode: 'facts', targets: ['ghost2'] });
    await run('G2', { mode: 'facts', targets: ['ghost1'] });
    await run('G3', { mode: 'facts', targets: ['ghost1'] });
    await run('B1', { mode: 'facts', targets: ['ghost1', 'ghost2'] });
    // Newest first per target: web1 keeps W3, W2 (R0 is going); ghost1 keeps B1, G3; ghost2 keeps B1, H1.
    const kept = ['B1', 'G3', 'H1', 'R0', 'W2', 'W3'];
    let now: string[] = [];
    await waitUntil(async () => JSON.stringify(now = await listed()) === JSON.stringify(kept), () => `the list to be ${kept.join(' ')}: ${now.join(' ')}`);
    assert.deepEqual(await inStore(), { records: kept, events: kept });
    const gone = [...names].find(([, label]) => label === 'G1')![0];
    assert.equal((await api(master, token, 'GET', `/api/v1/runs/${gone}`)).status, 404);
    assert.match(master.process.stderr, /removed \d+ old runs? \(keeping the newest 2 of each target\)/);

    // Let the held run end: web1 now has three finished runs, and R0 is the oldest of them.
    writeFileSync(gate, '');
    const r0 = [...names].find(([, label]) => label === 'R0')![0];
    await waitUntil(async () => !(now = await listed()).includes('R0'), () => `R0 to go once finished: ${now.join(' ')}`);
    assert.equal((await api(master, token, 'GET', `/api/v1/runs/${r0}`)).status, 404);
    assert.deepEqual((await inStore()).events, ['B1', 'G3', 'H1', 'W2', 'W3']);
  });

  test('at start: a smaller --keep-runs, and --keep-days removing what finished longer ago', HANG, async () => {
    assert.equal(await master.process.stop(), 0);
    // B1 finished ten days ago, as far as the store says.
    const store = await openStore(master.store);
    const b1 = [...names].find(([, label]) => label === 'B1')![0];
    const kv = (await store.get(`/cairn/master/runs/${b1}`))!;
    const record = JSON.parse(kv.value.toString('utf8')) as RunRecord;
    await store.put(kv.key, JSON.stringify({ ...record, finished: new Date(Date.now() - 10 * 86_400_000).toISOString() }));
    await store.close();

    master = await startMaster(dir, ports, undefined, { extraArgs: ['--keep-runs', '1', '--keep-days', '7'] });
    // web1 keeps W3; the newest run of ghost1 and of ghost2 is B1, which is older than 7 days: none of theirs is left.
    let left: string[] = [];
    await waitUntil(async () => JSON.stringify(left = (await inStore()).records) === JSON.stringify(['W3']), () => `only W3 to be left: ${left.join(' ')}`);
    assert.deepEqual(await inStore(), { records: ['W3'], events: ['W3'] });
    assert.deepEqual(await listed(), ['W3']);
  });
});
