/**
 * The agent protocol (src/daemon/protocol.ts, DESIGN §9): every frame type read as valid, and
 * refused with the right close code when out of shape, of an unknown type or another version;
 * then the master's socket handler (master/agents.ts) served over a real loopback WebSocket, to
 * show those codes on the wire, the hello/welcome exchange, an op's events and result, and a
 * newer connection of the same name replacing the older one (4409).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { AgentHub, AgentNotConnectedError } from '../src/daemon/master/agents.ts';
import {
  CloseCode, frameText, parseAgentFrame, parseMasterFrame, PROTOCOL_VERSION, type AgentFrame, type MasterFrame,
} from '../src/daemon/protocol.ts';
import { openStore, type Store } from '../src/store/index.ts';
import { waitUntil } from './helpers/wait.ts';
import { mulberry32 } from './helpers/random.ts';
import { backoffMs } from '../src/daemon/agent-link.ts';

const NODE = { ref: 'file:/etc/motd', id: 'n1', state: 'motd', invocation: 0, status: 'changed', action: 'update', changes: ['content'], ms: 3 };
const REPORT = { name: 'web1', status: 'ok', counts: { changed: 1, unchanged: 0, failed: 0, skipped: 0 }, nodes: [NODE] };

const VALID_AGENT: Record<AgentFrame['type'], Record<string, unknown>> = {
  hello: { v: 1, type: 'hello', agent_version: '0.1.0', facts: { os: 'debian' }, boot_id: 'b-1' },
  event: { v: 1, type: 'event', re: 'op-1', seq: 1, node: NODE },
  events: { v: 1, type: 'events', re: 'op-1', seq: 3, nodes: [NODE, { ...NODE, ref: 'file:/etc/issue', id: 'n2' }] },
  log: { v: 1, type: 'log', re: 'op-1', seq: 2, stream: 'stdout', data: 'hi\n' },
  result: { v: 1, type: 'result', re: 'op-1', ok: true, report: REPORT, facts: { os: 'debian' } },
};
const VALID_MASTER: Record<MasterFrame['type'], Record<string, unknown>> = {
  welcome: { v: 1, type: 'welcome', name: 'web1', heartbeat_s: 30 },
  op: { v: 1, type: 'op', id: 'op-1', op: 'apply', run: '{}\n[]', options: { diff: true } },
  cancel: { v: 1, type: 'cancel', re: 'op-1' },
};

/** Each frame type broken one way: a field missing, one of the wrong kind, one unknown. */
const INVALID_AGENT: [string, Record<string, unknown>][] = [
  ['hello without facts', { v: 1, type: 'hello', agent_version: '0.1.0', boot_id: 'b' }],
  ['hello with an unknown field', { ...VALID_AGENT.hello, name: 'someone-else' }],
  ['event with a negative seq', { ...VALID_AGENT.event, seq: -1 }],
  ['event with a node of an unknown status', { ...VALID_AGENT.event, node: { ...NODE, status: 'great' } }],
  ['events with no node', { ...VALID_AGENT.events, nodes: [] }],
  ['events with more nodes than a frame may carry', { ...VALID_AGENT.events, nodes: Array.from({ length: 1001 }, () => NODE) }],
  ['events with a node of an unknown action', { ...VALID_AGENT.events, nodes: [{ ...NODE, action: 'explode' }] }],
  ['log of an unknown stream', { ...VALID_AGENT.log, stream: 'stdin' }],
  ['log without re', { v: 1, type: 'log', seq: 1, stream: 'stdout', data: '' }],
  ['result with ok a string', { ...VALID_AGENT.result, ok: 'yes' }],
  ['result with a report of the wrong shape', { ...VALID_AGENT.result, report: { name: 'web1' } }],
];
const INVALID_MASTER: [string, Record<string, unknown>][] = [
  ['welcome without a name', { v: 1, type: 'welcome', heartbeat_s: 30 }],
  ['welcome with a zero heartbeat', { ...VALID_MASTER.welcome, heartbeat_s: 0 }],
  ['apply op without a run', { v: 1, type: 'op', id: 'op-2', op: 'apply', options: {} }],
  ['run op without argv', { v: 1, type: 'op', id: 'op-2', op: 'run', options: {} }],
  ['op of an unknown kind', { ...VALID_MASTER.op, op: 'reboot' }],
  ['op with an unknown option', { ...VALID_MASTER.op, options: { shell: 'rm -rf /' } }],
  ['cancel without re', { v: 1, type: 'cancel' }],
];

describe('agent protocol frames', () => {
  for (const [type, frame] of Object.entries(VALID_AGENT)) {
    test(`agent → master: a valid ${type} is read as one`, () => {
      const parsed = parseAgentFrame(JSON.stringify(frame));
      assert.ok('frame' in parsed, JSON.stringify(parsed));
      assert.equal(parsed.frame.type, type);
    });
  }
  test('agent → master: a result whose report leaves out its nodes (they went as events) is read as one, a report of other wrong shape is not', () => {
    const { nodes: _sent, ...withoutNodes } = REPORT;
    const parsed = parseAgentFrame(JSON.stringify({ ...VALID_AGENT.result, report: withoutNodes }));
    assert.ok('frame' in parsed, JSON.stringify(parsed));
    assert.ok(parsed.frame.type === 'result' && parsed.frame.report && !('nodes' in parsed.frame.report));
    assert.ok('refused' in parseAgentFrame(JSON.stringify({ ...VALID_AGENT.result, report: { ...withoutNodes, counts: undefined } })));
  });
  for (const [type, frame] of Object.entries(VALID_MASTER)) {
    test(`master → agent: a valid ${type} is read as one`, () => {
      const parsed = parseMasterFrame(JSON.stringify(frame));
      assert.ok('frame' in parsed, JSON.stringify(parsed));
      assert.equal(parsed.frame.type, type);
    });
  }
  for (const [what, frame] of INVALID_AGENT) {
    test(`agent → master: ${what} is refused with 4400`, () => {
      const parsed = parseAgentFrame(JSON.stringify(frame));
      assert.ok('refused' in parsed);
      assert.equal(parsed.refused.code, CloseCode.badMessage);
      assert.ok(Buffer.byteLength(parsed.refused.reason) <= 123, 'a close reason fits a close frame');
    });
  }
  for (const [what, frame] of INVALID_MASTER) {
    test(`master → agent: ${what} is refused with 4400`, () => {
      const parsed = parseMasterFrame(JSON.stringify(frame));
      assert.ok('refused' in parsed);
      assert.equal(parsed.refused.code, CloseCode.badMessage);
    });
  }
  test('an unknown message type is refused with 4400, naming it', () => {
    const parsed = parseAgentFrame(JSON.stringify({ v: 1, type: 'exec', cmd: 'id' }));
    assert.ok('refused' in parsed);
    assert.equal(parsed.refused.code, 4400);
    assert.match(parsed.refused.reason, /unknown message type "exec"/);
  });
  test("a frame of the other direction is an unknown type (an agent cannot send op, nor the master hello)", () => {
    for (const parsed of [parseAgentFrame(JSON.stringify(VALID_MASTER.op)), parseMasterFrame(JSON.stringify(VALID_AGENT.hello))]) {
      assert.ok('refused' in parsed);
      assert.equal(parsed.refused.code, 4400);
    }
  });
  test('another protocol version is refused with 4426, whatever the frame', () => {
    for (const v of [2, 0, '1', undefined]) {
      const parsed = parseAgentFrame(JSON.stringify({ ...VALID_AGENT.hello, v }));
      assert.ok('refused' in parsed);
      assert.equal(parsed.refused.code, CloseCode.unsupportedVersion, `v: ${String(v)}`);
    }
  });
  test('text that is not a JSON object is refused with 4400', () => {
    for (const text of ['{', '[]', '"hello"', 'null']) {
      const parsed = parseAgentFrame(text);
      assert.ok('refused' in parsed, text);
      assert.equal(parsed.refused.code, 4400);
    }
  });
  test("the agent's back-off: attempt n waits a random time in 0 … min(60 s, 2^n s), spread over that range", () => {
    const random = mulberry32(22);
    for (let attempt = 0; attempt < 12; attempt++) {
      const cap = Math.min(60, 2 ** attempt) * 1000;
      const waits = Array.from({ length: 200 }, () => backoffMs(attempt, random));
      assert.ok(waits.every((w) => w >= 0 && w < cap), `attempt ${attempt}`);
      // Jittered: the waits cover the range rather than sit at its end.
      assert.ok(Math.min(...waits) < cap * 0.1 && Math.max(...waits) > cap * 0.9, `attempt ${attempt} spread`);
    }
  });

  test('frameText writes the version', () => {
    assert.deepEqual(JSON.parse(frameText({ type: 'cancel', re: 'op-9' })), { v: PROTOCOL_VERSION, type: 'cancel', re: 'op-9' });
  });
});

describe("the master's agent socket handler over a loopback WebSocket", () => {
  let dir: string;
  let store: Store;
  let hub: AgentHub;
  let server: WebSocketServer;
  let url: string;
  /** The name the next connection is served as (what a certificate would say). */
  let nextName = 'web1';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cairn-agent-protocol-'));
    store = await openStore(`sqlite:${join(dir, 'store.db')}`);
    hub = new AgentHub({ store });
    server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    server.on('connection', (socket) => hub.handle(socket, { name: nextName }));
    await once(server, 'listening');
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await hub.close();
    server.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A connected socket, with every frame it receives collected. */
  async function connect(name: string) {
    nextName = name;
    const socket = new WebSocket(url);
    const frames: Record<string, unknown>[] = [];
    socket.on('message', (data) => frames.push(JSON.parse(String(data)) as Record<string, unknown>));
    const closed = once(socket, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason) }));
    await once(socket, 'open');
    return { socket, frames, closed };
  }

  test('an unknown message type closes the socket with 4400', async () => {
    const { socket, closed } = await connect('probe1');
    socket.send(JSON.stringify({ v: 1, type: 'exec', cmd: 'id' }));
    const { code, reason } = await closed;
    assert.equal(code, 4400);
    assert.match(reason, /unknown message type/);
  });

  test('a frame of another protocol version closes the socket with 4426', async () => {
    const { socket, closed } = await connect('probe2');
    socket.send(JSON.stringify({ ...VALID_AGENT.hello, v: 2 }));
    assert.equal((await closed).code, 4426);
  });

  test('anything before hello closes the socket with 4400', async () => {
    const { socket, closed } = await connect('probe3');
    socket.send(JSON.stringify(VALID_AGENT.event));
    assert.equal((await closed).code, 4400);
  });

  test('hello is answered by a welcome with the certificate name; an op streams events (one to a frame, or several) and ends with its result', async () => {
    const { socket, frames } = await connect('web1');
    socket.send(JSON.stringify({ ...VALID_AGENT.hello, facts: { os: 'debian', answer: 42 } }));
    await waitUntil(() => frames.length > 0, 'a welcome');
    assert.deepEqual(frames[0], { v: 1, type: 'welcome', name: 'web1', heartbeat_s: 30 });
    assert.equal(hub.isConnected('web1'), true);
    assert.deepEqual((await hub.readInfo('web1'))?.facts, { os: 'debian', answer: 42 });

    const events: number[] = [];
    const refs: string[] = [];
    const logs: string[] = [];
    const result = hub.request('web1', { op: 'run', argv: ['echo', 'hi'], options: {} }, {
      onEvent: (node, seq) => {
        events.push(seq);
        refs.push(node.ref);
      },
      onLog: (_stream, data) => logs.push(data),
    });
    await waitUntil(() => frames.length > 1, 'the op');
    const op = frames[1]!;
    assert.equal(op.type, 'op');
    assert.deepEqual(op.argv, ['echo', 'hi']);
    socket.send(JSON.stringify({ ...VALID_AGENT.log, re: op.id, seq: 1, data: 'hi\n' }));
    socket.send(JSON.stringify({ ...VALID_AGENT.event, re: op.id, seq: 2 }));
    // A frame of several node results: each handed over with its own seq, in order.
    socket.send(JSON.stringify({ ...VALID_AGENT.events, re: op.id, seq: 3 }));
    socket.send(JSON.stringify({ v: 1, type: 'result', re: op.id, ok: true, report: { exit_code: 0, stdout: 'hi\n', stderr: '' } }));
    const done = await result;
    assert.equal(done.ok, true);
    assert.deepEqual(events, [2, 3, 4]);
    assert.deepEqual(refs, ['file:/etc/motd', 'file:/etc/motd', 'file:/etc/issue']);
    assert.deepEqual(logs, ['hi\n']);
  });

  test('a newer connection of the same name replaces the older one with 4409, and the older one\'s ops end unreachable', async () => {
    const first = await connect('web2');
    first.socket.send(JSON.stringify(VALID_AGENT.hello));
    await waitUntil(() => first.frames.length > 0, 'the first welcome');
    const pending = hub.request('web2', { op: 'facts', options: {} }, {});
    const outcome = pending.then(() => 'answered', (err: unknown) => err);
    await waitUntil(() => first.frames.length > 1, 'the op on the first connection');
    const second = await connect('web2');
    second.socket.send(JSON.stringify(VALID_AGENT.hello));
    const { code } = await first.closed;
    assert.equal(code, 4409);
    assert.ok((await outcome) instanceof AgentNotConnectedError);
    await waitUntil(() => second.frames.length > 0, 'the second welcome');
    assert.equal(second.frames[0]!.type, 'welcome');
    assert.equal(hub.isConnected('web2'), true);
    second.socket.close();
    await second.closed;
    await waitUntil(() => !hub.isConnected('web2'), 'the hub to see the second connection go');
  });

  test('ops in flight are bounded by forks: with forks 1, the second op is sent only once the first has its result', async () => {
    const bounded = new AgentHub({ store, forks: 1 });
    const boundedServer = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    let name = '';
    boundedServer.on('connection', (socket) => bounded.handle(socket, { name }));
    await once(boundedServer, 'listening');
    const at = `ws://127.0.0.1:${(boundedServer.address() as AddressInfo).port}`;
    const open = async (n: string) => {
      name = n;
      const socket = new WebSocket(at);
      const frames: Record<string, unknown>[] = [];
      socket.on('message', (data) => frames.push(JSON.parse(String(data)) as Record<string, unknown>));
      await once(socket, 'open');
      socket.send(JSON.stringify(VALID_AGENT.hello));
      await waitUntil(() => frames.length > 0, `${n}'s welcome`);
      return { socket, frames };
    };
    try {
      const a = await open('fork-a');
      const b = await open('fork-b');
      const first = bounded.request('fork-a', { op: 'facts', options: {} }, {});
      const second = bounded.request('fork-b', { op: 'facts', options: {} }, {});
      await waitUntil(() => a.frames.length > 1, 'the first op');
      // The second waits for a slot: fork-b has had its welcome and nothing else, until fork-a
      // answers. A ping's pong comes back after every frame the master sent fork-b before it.
      b.socket.ping();
      await once(b.socket, 'pong');
      assert.equal(b.frames.length, 1);
      a.socket.send(JSON.stringify({ v: 1, type: 'result', re: a.frames[1]!.id, ok: true, facts: { os: 'a' } }));
      assert.deepEqual((await first).facts, { os: 'a' });
      await waitUntil(() => b.frames.length > 1, 'the second op, once the first is done');
      b.socket.send(JSON.stringify({ v: 1, type: 'result', re: b.frames[1]!.id, ok: true, facts: { os: 'b' } }));
      assert.deepEqual((await second).facts, { os: 'b' });
    } finally {
      await bounded.close();
      boundedServer.close();
    }
  });

  test('an agent that stops answering pings is dropped at the next heartbeat', async () => {
    const beating = new AgentHub({ store, heartbeatS: 0.05 });
    const beatingServer = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    beatingServer.on('connection', (socket) => beating.handle(socket, { name: 'silent' }));
    await once(beatingServer, 'listening');
    try {
      // A peer whose pongs never come (a machine gone without closing its connection).
      const socket = new WebSocket(`ws://127.0.0.1:${(beatingServer.address() as AddressInfo).port}`, { autoPong: false });
      const closed = once(socket, 'close');
      await once(socket, 'open');
      const welcome = once(socket, 'message');
      socket.send(JSON.stringify(VALID_AGENT.hello));
      assert.equal((JSON.parse(String((await welcome)[0])) as { type: string }).type, 'welcome');
      const [code] = await closed;
      assert.equal(code, 1006, 'cut off, not closed politely');
      await waitUntil(() => !beating.isConnected('silent'), 'the hub to drop it');
    } finally {
      await beating.close();
      beatingServer.close();
    }
  });

  test('an op for an agent that is not connected is refused, naming it', async () => {
    await assert.rejects(hub.request('nobody', { op: 'facts', options: {} }, {}), /agent nobody is not connected/);
  });
});
