// Protocol-level agents for bench/master.mjs: one process holds many agent connections, each
// with its own certificate, speaking the agent protocol (DESIGN §9) just enough: hello, then a
// result with facts for each `facts` op. Reconnects as `cairn agent --master` does (jittered
// exponential back-off, 0 … min(60 s, 2ⁿ s), n reset by a welcome).
//   node bench/master-agents.mjs AGENTS_JSON FROM TO AGENT_URL   (a child with an IPC channel)
// Tells its parent {connected, refused, errors} on every change of the welcomed count (at most
// every 50 ms) and when asked ('report').
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';

const [file, from, to, agentUrl] = process.argv.slice(2);
const agents = JSON.parse(readFileSync(file, 'utf8')).slice(Number(from), Number(to));
const url = `${agentUrl.replace(/^https/, 'wss')}/v1/agent`;
let connected = 0;
/** HTTP answers other than the upgrade (a master refusing for load would answer 503). */
let refused = 0;
/** Connections that failed below HTTP (the master down while it restarts). */
let errors = 0;
let stopping = false;
// Seeded, so two runs back off alike.
let seed = 0x2f6b1d3 ^ Number(from);
const random = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

let reportTimer;
const report = () => {
  reportTimer ??= setTimeout(() => {
    reportTimer = undefined;
    process.send({ connected, refused, errors });
  }, 50);
};

const facts = (name) => ({ hostname: name, os: { family: 'debian', name: 'debian', version: '12' }, kernel: 'Linux', cpus: 2 });

function connect(agent, attempt) {
  if (stopping) return;
  const ws = new WebSocket(url, { ca: agent.ca, cert: agent.cert, key: agent.key, perMessageDeflate: false });
  let welcomed = false;
  ws.on('open', () => ws.send(JSON.stringify({ v: 1, type: 'hello', agent_version: 'bench', facts: facts(agent.name), boot_id: 'bench' })));
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString('utf8'));
    if (frame.type === 'welcome') {
      welcomed = true;
      connected++;
      report();
    } else if (frame.type === 'op') {
      ws.send(JSON.stringify(frame.op === 'facts'
        ? { v: 1, type: 'result', re: frame.id, ok: true, facts: facts(agent.name) }
        : { v: 1, type: 'result', re: frame.id, ok: false, error: `a bench agent answers only facts, not ${frame.op}` }));
    }
  });
  ws.on('unexpected-response', (_req, res) => {
    refused++;
    process.stderr.write(`${agent.name}: the master answered ${res.statusCode} ${res.statusMessage ?? ''}\n`);
    res.resume();
    ws.terminate();
  });
  ws.on('error', () => {
    errors++;
  });
  ws.on('close', () => {
    if (welcomed) {
      connected--;
      report();
    }
    const next = welcomed ? 0 : attempt + 1;
    const delay = random() * Math.min(60, 2 ** (welcomed ? 0 : attempt)) * 1000;
    setTimeout(() => connect(agent, next), delay);
  });
}

for (const agent of agents) connect(agent, 0);
process.on('message', (m) => {
  if (m === 'report') process.send({ connected, refused, errors });
  if (m === 'stop') {
    stopping = true;
    process.exit(0);
  }
});
