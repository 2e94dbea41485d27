/**
 * The agents connected to this master (DESIGN §9): one session per agent name, from the
 * WebSocket the agent opened on the agent port. The name comes only from the agent's client
 * certificate (the listener hands it over); the agent's `hello` adds its version, facts and boot
 * id. A newer connection of the same name replaces the older one (closed with 4409); every
 * socket is pinged every HEARTBEAT_S and dropped when a ping goes unanswered until the next.
 *
 * Ops (facts, plan, apply, run) go out through `request`: at most `forks` in flight on this
 * master at once (the others wait their turn), each socket's send buffer respected (a frame
 * waits while more than HIGH_WATER bytes are still queued for the agent), and the op's node
 * events, log lines and result routed back by the op's id. An op whose agent goes away ends as
 * unreachable; cancelling one sends `cancel {re}` and waits for the agent's result.
 */
import type { WebSocket } from 'ws';
import { KEYS } from '../../store/documents.ts';
import type { Store } from '../../store/types.ts';
import {
  CloseCode, frameText, HEARTBEAT_S, messageText, parseAgentFrame,
  type Hello, type LogFrame, type OpFrame, type ResultFrame,
} from '../protocol.ts';
import type { NodeResult } from '../../engine/engine.ts';
import type { AgentOwners } from './owners.ts';

/** Who is at the other end of an agent socket: only what its certificate says. */
export interface AgentPeer {
  name: string;
}

/** What the store keeps of an agent that connected to a master: its facts outlive the socket. */
export interface AgentInfo {
  name: string;
  agent_version: string;
  boot_id: string;
  facts: Record<string, unknown>;
  /** When it last connected and, once gone, when it went (to any master). */
  connected_at: string;
  disconnected_at?: string;
}

export const RUN_KEYS = {
  agents: '/cairn/master/agents/',
  agent: (name: string) => `/cairn/master/agents/${name}`,
  runs: '/cairn/master/runs/',
  run: (id: string) => `/cairn/master/runs/${id}`,
  events: (id: string) => `/cairn/master/run-events/${id}/`,
  event: (id: string, seq: number) => `/cairn/master/run-events/${id}/${String(seq).padStart(10, '0')}`,
  report: KEYS.report,
};

/** A name as a certificate may carry it, and safe as a store key's last part. */
export const AGENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

/** Bytes queued on a socket beyond which the next frame waits for them to be written. */
const HIGH_WATER = 1 << 20;
/** How long a new socket may take to say hello. */
const HELLO_TIMEOUT_MS = 10_000;

export class AgentNotConnectedError extends Error {
  constructor(readonly agent: string) {
    super(`agent ${agent} is not connected to this master`);
    this.name = 'AgentNotConnectedError';
  }
}

/** An op's stream back: node results, log lines (with the agent's seq). */
export interface OpHandlers {
  onEvent?: (node: NodeResult, seq: number) => void;
  onLog?: (stream: LogFrame['stream'], data: string, ref: string | undefined, seq: number) => void;
}

interface PendingOp {
  handlers: OpHandlers;
  resolve: (result: ResultFrame) => void;
  reject: (err: Error) => void;
}

class Session {
  readonly ops = new Map<string, PendingOp>();
  alive = true;
  /** Settles when the last frame handed to ws has been written out. */
  private written: Promise<void> = Promise.resolve();
  readonly connectedAt = new Date();
  /** The facts last stored for it, as text: a result with the same facts writes nothing. */
  storedFacts: string;

  constructor(readonly name: string, readonly socket: WebSocket, readonly hello: Hello) {
    this.storedFacts = JSON.stringify(hello.facts);
  }

  async send(text: string): Promise<void> {
    while (this.socket.bufferedAmount > HIGH_WATER) await this.written;
    this.written = new Promise((resolve) => this.socket.send(text, () => resolve()));
  }
}

export interface AgentHubOptions {
  store: Store;
  /** Ops in flight at once on this master (`--forks`). */
  forks?: number;
  heartbeatS?: number;
  /** Several masters: claims each connection in the store, for the others to send it runs. */
  owners?: AgentOwners;
  log?: (line: string) => void;
}

export interface AgentSummary {
  name: string;
  connected: boolean;
  agent_version: string;
  boot_id: string;
  connected_at: string;
  disconnected_at?: string;
  ops_in_flight: number;
}

let opCounter = 0;

export class AgentHub {
  private readonly sessions = new Map<string, Session>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly forks: number;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private closing = false;
  /** Store writes not yet done: close() waits for them. */
  private readonly writes = new Set<Promise<void>>();
  private readonly log: (line: string) => void;

  constructor(private readonly options: AgentHubOptions) {
    this.forks = Math.max(1, options.forks ?? 50);
    this.log = options.log ?? (() => undefined);
    this.heartbeat = setInterval(() => this.ping(), (options.heartbeatS ?? HEARTBEAT_S) * 1000);
    this.heartbeat.unref();
  }

  /** The agent port's socket handler (server.ts's AgentSocketHandler). */
  readonly handle = (socket: WebSocket, peer: AgentPeer): void => {
    if (this.closing) {
      socket.close(CloseCode.shuttingDown, 'master shutting down');
      return;
    }
    if (!AGENT_NAME.test(peer.name)) {
      socket.close(CloseCode.unauthorised, 'certificate name is not a valid agent name');
      return;
    }
    const helloTimer = setTimeout(() => socket.close(CloseCode.badMessage, 'no hello'), HELLO_TIMEOUT_MS);
    let session: Session | undefined;
    socket.on('message', (data) => {
      const text = messageText(data);
      if (text === undefined) {
        socket.close(CloseCode.badMessage, 'frame too large');
        return;
      }
      const parsed = parseAgentFrame(text);
      if ('refused' in parsed) {
        socket.close(parsed.refused.code, parsed.refused.reason);
        return;
      }
      const frame = parsed.frame;
      if (!session) {
        if (frame.type !== 'hello') {
          socket.close(CloseCode.badMessage, `expected hello, got ${frame.type}`);
          return;
        }
        clearTimeout(helloTimer);
        session = this.open(peer.name, socket, frame);
        return;
      }
      if (frame.type === 'hello') {
        socket.close(CloseCode.badMessage, 'hello sent twice');
        return;
      }
      const op = session.ops.get(frame.re);
      // A frame for an op this master no longer waits for (it gave up on it): nothing to do.
      if (!op) return;
      if (frame.type === 'event') op.handlers.onEvent?.(frame.node as NodeResult, frame.seq);
      else if (frame.type === 'events') frame.nodes.forEach((node, i) => op.handlers.onEvent?.(node as NodeResult, frame.seq + i));
      else if (frame.type === 'log') op.handlers.onLog?.(frame.stream, frame.data, frame.ref, frame.seq);
      else {
        session.ops.delete(frame.re);
        const current = session;
        const facts = frame.facts && JSON.stringify(frame.facts);
        if (facts && facts !== current.storedFacts) {
          current.storedFacts = facts;
          // After the result is handed on: an op's answer reaches whoever waits before the store write.
          this.background(current.name, async () => {
            await new Promise((resolve) => setImmediate(resolve));
            await this.saveFacts(current, frame.facts!);
          });
        }
        op.resolve(frame);
      }
    });
    socket.on('pong', () => {
      if (session) session.alive = true;
    });
    socket.on('close', () => {
      clearTimeout(helloTimer);
      if (session) this.gone(session);
    });
    socket.on('error', (err) => this.log(`agent ${peer.name}: ${err.message}`));
  };

  private open(name: string, socket: WebSocket, hello: Hello): Session {
    const previous = this.sessions.get(name);
    const session = new Session(name, socket, hello);
    this.sessions.set(name, session);
    if (previous) {
      this.log(`agent ${name}: a newer connection replaces the one from ${previous.connectedAt.toISOString()}`);
      previous.socket.close(CloseCode.replaced, 'replaced by a newer connection of the same name');
      this.gone(previous);
    } else {
      this.log(`agent ${name} connected (cairn ${hello.agent_version})`);
    }
    void session.send(frameText({ type: 'welcome', name, heartbeat_s: this.options.heartbeatS ?? HEARTBEAT_S }));
    this.background(name, () => this.saveInfo({ name, agent_version: hello.agent_version, boot_id: hello.boot_id, facts: hello.facts, connected_at: session.connectedAt.toISOString() }));
    const owners = this.options.owners;
    if (owners) this.background(name, () => owners.claim(name));
    return session;
  }

  /** A session ended: its ops end unreachable; it leaves the table unless a newer one took its place. */
  private gone(session: Session): void {
    for (const [, op] of session.ops) op.reject(new AgentNotConnectedError(session.name));
    session.ops.clear();
    if (this.sessions.get(session.name) !== session) return;
    this.sessions.delete(session.name);
    this.log(`agent ${session.name} disconnected`);
    const owners = this.options.owners;
    if (owners) this.background(session.name, () => owners.release(session.name));
    this.background(session.name, async () => {
      const info = await this.readInfo(session.name);
      // Unless the agent came back (to any master) meanwhile.
      if (info && info.connected_at === session.connectedAt.toISOString()) await this.saveInfo({ ...info, disconnected_at: new Date().toISOString() });
    });
  }

  private ping(): void {
    for (const session of this.sessions.values()) {
      if (!session.alive) {
        this.log(`agent ${session.name}: no answer to the last ping; dropping the connection`);
        session.socket.terminate();
        continue;
      }
      session.alive = false;
      session.socket.ping();
    }
  }

  /** Runs a store update in the background; close() waits for it. A failure is logged: the agent still works. */
  private background(name: string, update: () => Promise<unknown>): void {
    const write = update().then(() => undefined, (err: unknown) => {
      this.log(`agent ${name}: could not record it in the store: ${(err as Error).message}`);
    });
    this.writes.add(write);
    void write.finally(() => this.writes.delete(write));
  }

  private async saveInfo(info: AgentInfo): Promise<void> {
    await this.options.store.put(RUN_KEYS.agent(info.name), JSON.stringify(info));
  }

  private async saveFacts(session: Session, facts: Record<string, unknown>): Promise<void> {
    const info = await this.readInfo(session.name);
    await this.saveInfo({ ...(info ?? { name: session.name, agent_version: session.hello.agent_version, boot_id: session.hello.boot_id, connected_at: session.connectedAt.toISOString() }), facts });
  }

  /** What the store knows of agent `name` (from its last hello or result), connected or not. */
  async readInfo(name: string): Promise<AgentInfo | undefined> {
    if (!AGENT_NAME.test(name)) return undefined;
    const kv = await this.options.store.get(RUN_KEYS.agent(name));
    if (!kv) return undefined;
    try {
      return JSON.parse(kv.value.toString('utf8')) as AgentInfo;
    } catch {
      return undefined;
    }
  }

  isConnected(name: string): boolean {
    return this.sessions.has(name);
  }

  /** Connected here, or to another master of the store that is alive. */
  async connectedToAny(name: string): Promise<boolean> {
    if (this.sessions.has(name)) return true;
    return (await this.options.owners?.ownerOf(name)) !== undefined;
  }

  /** Every agent the store knows, with whether it is connected here now. */
  async list(): Promise<AgentSummary[]> {
    const out: AgentSummary[] = [];
    for (const kv of await this.options.store.list(RUN_KEYS.agents)) {
      let info: AgentInfo;
      try {
        info = JSON.parse(kv.value.toString('utf8')) as AgentInfo;
      } catch {
        continue;
      }
      const session = this.sessions.get(info.name);
      out.push({
        name: info.name, connected: session !== undefined || (await this.connectedToAny(info.name)), agent_version: info.agent_version, boot_id: info.boot_id,
        connected_at: info.connected_at, ...(info.disconnected_at && !session ? { disconnected_at: info.disconnected_at } : {}),
        ops_in_flight: session?.ops.size ?? 0,
      });
    }
    return out;
  }

  /**
   * Sends an op to agent `name` and resolves with its result. Waits for a slot among `forks`
   * first; throws AgentNotConnectedError when the agent is not (or no longer) connected.
   * Aborting `signal` sends `cancel` to the agent: the result still comes from it.
   */
  async request(name: string, op: Omit<OpFrame, 'v' | 'type' | 'id'>, handlers: OpHandlers, signal?: AbortSignal): Promise<ResultFrame> {
    if (!this.sessions.has(name)) throw new AgentNotConnectedError(name);
    await this.slot();
    try {
      const session = this.sessions.get(name);
      if (!session) throw new AgentNotConnectedError(name);
      const id = `op-${process.pid}-${++opCounter}`;
      const result = new Promise<ResultFrame>((resolve, reject) => session.ops.set(id, { handlers, resolve, reject }));
      // Awaited below; a loss while the op is still being sent must not count as unhandled meanwhile.
      result.catch(() => undefined);
      const cancel = () => void session.send(frameText({ type: 'cancel', re: id }));
      signal?.addEventListener('abort', cancel, { once: true });
      try {
        await session.send(frameText({ type: 'op', id, ...op }));
        return await result;
      } finally {
        signal?.removeEventListener('abort', cancel);
      }
    } finally {
      this.release();
    }
  }

  private async slot(): Promise<void> {
    if (this.running < this.forks) {
      this.running++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }

  /**
   * Closes every agent socket with 4503 (agents reconnect elsewhere or later) and waits for them
   * to close (a peer that does not answer the close is cut off) and for the store's last writes.
   */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.heartbeat);
    await Promise.all([...this.sessions.values()].map(async (session) => {
      if (session.socket.readyState === session.socket.CLOSED) return;
      const closed = new Promise((resolve) => session.socket.once('close', resolve));
      session.socket.close(CloseCode.shuttingDown, 'master shutting down');
      const cutOff = setTimeout(() => session.socket.terminate(), 2000);
      await closed;
      clearTimeout(cutOff);
    }));
    while (this.writes.size > 0) await Promise.all([...this.writes]);
  }
}
