#!/usr/bin/env node
// The master's benchmark (issue #22; DESIGN §9), run by `npm run bench` in a full run, alone by
// `npm run bench -- --master [--agents N]` or `node bench/master.mjs [--agents N] [--runs N]`:
//
//  (a) N protocol-level agents (default 2,000), each with its own certificate from the master's
//      CA through the real enrolment, connected from a few processes (bench/master-agents.mjs)
//      to one real `cairn master` on a SQLite store: the master's RSS and its CPU per connect,
//      then a `facts` run over all N through the API, timed from the POST to the run's last
//      event (every answer back). Targets: all connected, RSS ≤ 300 MiB, fan-out ≤ 3 s.
//  (b) A reconnect storm: the master stopped (SIGTERM: agents told 4503) and started again on
//      the same ports with the N agents reconnecting as real agents do (jittered back-off):
//      time until all are back, and how many were refused by an HTTP answer (none should be).
//  (c) One real `cairn agent` converging the standard workload (bench/site, 742 resources)
//      through the master: the median no-op `cairn apply` against the same site's no-op run as
//      a local target. Target: ≤ 1.3× (one round trip, not one per command).
//
// Prints the figures; writes nothing else (bench/RESULTS.md is run.mjs's).
import { execFileSync, fork, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..');
const cairnBin = join(repo, 'dist/cairn.cjs');
const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const MiB = 1024 * 1024;

const freePort = () => new Promise((done, fail) => {
  const s = createServer();
  s.once('error', fail);
  s.listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => done(port));
  });
});

/** The master process's resident set (bytes) and CPU time so far (seconds), from /proc. */
function usage(pid) {
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { rss, cpu: (Number(fields[11]) + Number(fields[12])) / TICKS };
}

function cairn(args, env = {}, cwd = repo) {
  const r = spawnSync(process.execPath, [cairnBin, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env }, maxBuffer: 256 * MiB });
  if (r.status !== 0) throw new Error(`cairn ${args.join(' ')}: exit ${r.status}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** `cairn master` on `store`, until stop(); resolves once it listens. */
async function startMaster(store, stateDir, ports) {
  const child = spawn(process.execPath, [cairnBin, 'master', '--store', store, '--state', stateDir, '--listen', `127.0.0.1:${ports.api}`, '--agent-listen', `127.0.0.1:${ports.agent}`, '--name', 'localhost', '--forks', '500'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (err = (err + d).slice(-20_000)));
  const exited = new Promise((done) => child.once('exit', done));
  await new Promise((done, fail) => {
    const check = () => {
      if (/^API: /m.test(out)) return done();
      if (child.exitCode !== null) return fail(new Error(`cairn master ended: ${err}`));
      setTimeout(check, 20);
    };
    check();
  });
  return {
    pid: child.pid,
    caHash: /^CA (sha256:[0-9a-f]{64})/m.exec(out)[1],
    agentUrl: /^agents: (https:\/\/\S+)$/m.exec(out)[1],
    apiUrl: /^API: (https:\/\/\S+)$/m.exec(out)[1],
    caFile: join(stateDir, 'ca.pem'),
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function apiCall(master, token, method, path, body) {
  const text = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((done, fail) => {
    const req = request(new URL(path, master.apiUrl), { method, ca: readFileSync(master.caFile), headers: { authorization: `Bearer ${token}`, ...(text ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let data = '';
      res.setEncoding('utf8').on('data', (d) => (data += d)).on('end', () => done({ status: res.statusCode, json: JSON.parse(data) }));
    });
    req.on('error', fail);
    req.end(text);
  });
}

/** Resolves when run `id`'s event stream says it finished. */
function runFinished(master, token, id) {
  return new Promise((done, fail) => {
    const req = request(new URL(`/api/v1/runs/${id}/events`, master.apiUrl), { ca: readFileSync(master.caFile), headers: { authorization: `Bearer ${token}` } }, (res) => {
      let buffer = '';
      res.setEncoding('utf8').on('data', (d) => {
        buffer += d;
        if (/event: run\ndata: \{[^\n]*"state":"finished"/.test(buffer)) {
          req.destroy();
          done();
        }
        buffer = buffer.slice(-4096);
      });
    });
    req.on('error', (err) => {
      if (!req.destroyed) fail(err);
    });
    req.end();
  });
}

/** The agent processes: the welcomed count, HTTP refusals and connection errors, summed. */
function agentFleet(file, count, processes, agentUrl) {
  const per = Math.ceil(count / processes);
  const state = [];
  const waiters = new Set();
  const children = [];
  for (let i = 0; i < processes; i++) {
    const child = fork(join(here, 'master-agents.mjs'), [file, String(i * per), String(Math.min(count, (i + 1) * per)), agentUrl], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    state[i] = { connected: 0, refused: 0, errors: 0 };
    child.on('message', (m) => {
      state[i] = m;
      for (const w of waiters) w();
    });
    children.push(child);
  }
  const total = () => state.reduce((t, s) => ({ connected: t.connected + s.connected, refused: t.refused + s.refused, errors: t.errors + s.errors }), { connected: 0, refused: 0, errors: 0 });
  return {
    total,
    /** Resolves when `test(total())` holds. */
    until: (test) => new Promise((done) => {
      const w = () => {
        if (test(total())) {
          waiters.delete(w);
          done(total());
        }
      };
      waiters.add(w);
      w();
    }),
    /** Resolves once every process has reported its counts as they are now. */
    sync: () => Promise.all(children.map((c) => new Promise((done) => {
      c.once('message', done);
      c.send('report');
    }))),
    stop: () => Promise.all(children.map((c) => new Promise((done) => {
      c.once('exit', done);
      c.send('stop');
    }))),
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function timed(fn) {
  const t0 = performance.now();
  fn();
  return (performance.now() - t0) / 1000;
}

export async function masterBench({ agents = 2000, processes = 4, runs = 11 } = {}) {
  const work = mkdtempSync(join(tmpdir(), 'cairn-bench-master-'));
  const store = `sqlite:${join(work, 'store.db')}`;
  const stateDir = join(work, 'state');
  const ports = { api: await freePort(), agent: await freePort() };
  const figures = {};
  let master = await startMaster(store, stateDir, ports);
  let fleet;
  try {
    const token = JSON.parse(cairn(['master', 'api-token', 'create', '--name', 'bench', '--role', 'admin', '--store', store, '--json'])).token;

    // (a) N agents, each enrolled for real.
    process.stdout.write(`master: enrolling ${agents} agents…\n`);
    const enrolStart = performance.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'master-enrol.ts'), store, master.agentUrl, master.caHash, String(agents), work], { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'inherit', 'pipe'] });
    if (r.status !== 0) throw new Error(`enrolment failed: ${r.stderr}`);
    figures.enrol_s = (performance.now() - enrolStart) / 1000;
    process.stdout.write(`master: enrolled in ${figures.enrol_s.toFixed(1)} s; connecting…\n`);
    const before = usage(master.pid);
    const connectStart = performance.now();
    fleet = agentFleet(join(work, 'agents.json'), agents, processes, master.agentUrl);
    await fleet.until((t) => t.connected === agents);
    figures.connect_s = (performance.now() - connectStart) / 1000;
    const connectedUsage = usage(master.pid);
    figures.connected = fleet.total().connected;
    figures.rss_before_mib = before.rss / MiB;
    figures.rss_connected_mib = connectedUsage.rss / MiB;
    figures.cpu_per_connect_ms = ((connectedUsage.cpu - before.cpu) / agents) * 1000;

    process.stdout.write(`master: ${agents} connected; facts fan-out…\n`);
    const names = JSON.parse(readFileSync(join(work, 'agents.json'), 'utf8')).map((a) => a.name);
    const fanStart = performance.now();
    const posted = await apiCall(master, token, 'POST', '/api/v1/runs', { mode: 'facts', targets: names });
    if (posted.status !== 202) throw new Error(`POST /api/v1/runs: ${posted.status} ${JSON.stringify(posted.json)}`);
    await runFinished(master, token, posted.json.id);
    figures.fanout_s = (performance.now() - fanStart) / 1000;
    const run = (await apiCall(master, token, 'GET', `/api/v1/runs/${posted.json.id}`)).json;
    figures.fanout_ok = run.report.targets.filter((t) => t.status === 'ok').length;
    figures.rss_after_fanout_mib = usage(master.pid).rss / MiB;

    // (b) The reconnect storm.
    process.stdout.write('master: reconnect storm…\n');
    const stormStart = performance.now();
    await master.stop();
    // Answers of the old master while it shut down (503) are the restart, not the new one's refusals.
    await fleet.sync();
    const refusedBefore = fleet.total().refused;
    master = await startMaster(store, stateDir, ports);
    await fleet.until((t) => t.connected === agents);
    figures.storm_s = (performance.now() - stormStart) / 1000;
    figures.storm_refused = fleet.total().refused - refusedBefore;
    figures.storm_rss_mib = usage(master.pid).rss / MiB;
    await fleet.stop();
    fleet = undefined;

    process.stdout.write('master: the standard workload through a real agent…\n');
    // (c) One real agent converging the standard workload through the master, against local.
    const site = join(work, 'site');
    cpSync(join(repo, 'bench/site'), site, { recursive: true });
    const target = (name, executor) => `  ${name}:\n    executor: ${executor}\n    state_dir: ${join(work, `state-${name}`)}\n    vars: { root: ${join(work, `root-${name}`)} }\n    run: [workload]\n`;
    writeFileSync(join(site, 'cairn.yaml'), `master: ${master.apiUrl}\ntargets:\n${target('local', 'local')}${target('bench-agent', 'agent')}vars:\n  app_version: 1\n`);
    const enrolToken = JSON.parse(cairn(['master', 'token', 'create', '--name', 'bench-agent', '--store', store, '--json'])).token;
    cairn(['agent', 'enrol', '--master', master.agentUrl, '--token', enrolToken, '--ca-hash', master.caHash, '--name', 'bench-agent', '--dir', join(work, 'agent-tls')]);
    const agent = spawn(process.execPath, [cairnBin, 'agent', '--master', master.agentUrl, '--dir', join(work, 'agent-tls'), '--work-dir', join(work, 'agent-work')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let agentLog = '';
    agent.stdout.setEncoding('utf8').on('data', (d) => (agentLog = (agentLog + d).slice(-20_000)));
    agent.stderr.setEncoding('utf8').on('data', (d) => (agentLog = (agentLog + d).slice(-20_000)));
    try {
      await new Promise((done, fail) => {
        const check = () => (/connected to \S+ as /.test(agentLog) ? done() : agent.exitCode !== null ? fail(new Error(agentLog)) : setTimeout(check, 20));
        check();
      });
      const env = { CAIRN_TOKEN: token };
      const apply = (name) => cairn(['apply', '--master-ca', master.caFile, '--site', site, '-t', name], env, work);
      apply('local');
      apply('bench-agent');
      const local = [];
      const through = [];
      // The master's and the agent's CPU over the runs (idle during the local ones): on a loaded
      // machine a steadier figure than the wall time, and the one every part adds to it.
      const cpuBefore = { master: usage(master.pid).cpu, agent: usage(agent.pid).cpu };
      // Alternating, so both see the same machine.
      for (let i = 0; i < runs; i++) {
        local.push(timed(() => apply('local')));
        through.push(timed(() => apply('bench-agent')));
      }
      figures.noop_local_s = median(local);
      figures.noop_master_s = median(through);
      figures.noop_ratio = figures.noop_master_s / figures.noop_local_s;
      figures.noop_master_cpu_ms = ((usage(master.pid).cpu - cpuBefore.master) / runs) * 1000;
      figures.noop_agent_cpu_ms = ((usage(agent.pid).cpu - cpuBefore.agent) / runs) * 1000;
    } finally {
      agent.kill('SIGTERM');
    }
  } finally {
    await fleet?.stop();
    await master.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const f = (n, d = 2) => n.toFixed(d);
  const mark = (ok) => (ok ? 'ok' : 'MISSED');
  process.stdout.write([
    '',
    `Master with ${agents} protocol-level agents (${processes} processes), each enrolled with its own certificate (enrolment took ${f(figures.enrol_s, 1)} s):`,
    `  connected        ${figures.connected}/${agents} in ${f(figures.connect_s)} s  ${mark(figures.connected === agents)}`,
    `  master RSS       ${f(figures.rss_before_mib, 1)} MiB idle, ${f(figures.rss_connected_mib, 1)} MiB connected, ${f(figures.rss_after_fanout_mib, 1)} MiB after the fan-out (target ≤ 300)  ${mark(Math.max(figures.rss_connected_mib, figures.rss_after_fanout_mib) <= 300)}`,
    `  CPU per connect  ${f(figures.cpu_per_connect_ms)} ms (TLS handshake, upgrade, hello, store writes)`,
    `  facts fan-out    ${figures.fanout_ok}/${agents} answered in ${f(figures.fanout_s)} s (target ≤ 3 s)  ${mark(figures.fanout_ok === agents && figures.fanout_s <= 3)}`,
    `  reconnect storm  all ${agents} back ${f(figures.storm_s)} s after the master was stopped; ${figures.storm_refused} refused (target 0)  ${mark(figures.storm_refused === 0)}; RSS ${f(figures.storm_rss_mib, 1)} MiB`,
    `One real agent, the standard workload (742 resources), no-op apply, median of ${runs}:`,
    `  local ${f(figures.noop_local_s)} s, through the master ${f(figures.noop_master_s)} s: ${f(figures.noop_ratio)}× (target ≤ 1.3×)  ${mark(figures.noop_ratio <= 1.3)}`,
    `  CPU per run through the master: master ${f(figures.noop_master_cpu_ms, 0)} ms, agent ${f(figures.noop_agent_cpu_ms, 0)} ms (mean)`,
    '',
  ].join('\n'));
  return figures;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--agents');
  const agents = at >= 0 ? Number(args[at + 1]) : 2000;
  if (!(agents >= 1)) throw new Error('--agents N: a whole number, 1 or more');
  const atRuns = args.indexOf('--runs');
  const runs = atRuns >= 0 ? Number(args[atRuns + 1]) : 11;
  if (!(runs >= 1)) throw new Error('--runs N: a whole number, 1 or more');
  mkdirSync(tmpdir(), { recursive: true });
  await masterBench({ agents, runs });
}
