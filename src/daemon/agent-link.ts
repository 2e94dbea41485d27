/**
 * `cairn agent --master URL` (DESIGN §7, §9): this machine's end of the agent protocol. It keeps
 * one WebSocket to the master's agent port, authenticated by the client certificate enrolment
 * gave it, and answers the master's ops by running the engine here on the compiled run the op
 * carries (data decoded by graph/codec.ts: no site file, template or code comes over the wire).
 * Node results (up to a hundred to a frame) and log lines stream back as they happen; the run
 * lock and the pending notifications stay on this machine (the target's state_dir), as for any
 * local run.
 *
 * A lost connection is retried with jittered exponential back-off: attempt n waits a random
 * time in 0 … min(60 s, 2ⁿ s), and n starts again after a welcome. An op whose connection is
 * lost is cancelled (its result could not be delivered; the master reports the target
 * unreachable). The master closing with 4409 (a newer connection of this name), 4401 (this
 * certificate revoked) or 4426 (a protocol it does not speak) ends the agent: retrying would
 * fight the newer agent, or be refused again.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import type { NodeResult } from '../engine/engine.ts';
import { LockHeldError } from '../engine/run-lock.ts';
import { runTarget } from '../engine/run-target.ts';
import { LocalExecutor } from '../executors/local.ts';
import { localFacts } from '../executors/local-facts.ts';
import { CodecError, decodeCompiled, type Compiled } from '../graph/codec.ts';
import { ExitCode, inputError } from '../lib/errors.ts';
import { CAIRN_VERSION } from '../lib/version.ts';
import {
  AGENT_PATH, CloseCode, frameText, HEARTBEAT_S, MAX_FRAME_BYTES, messageText, parseMasterFrame,
  type AgentFrame, type OpFrame, type Outgoing,
} from './protocol.ts';

export interface AgentTls {
  /** PEM: this agent's certificate and key, and the master's CA. */
  cert: string | Buffer;
  key: string | Buffer;
  ca: string | Buffer;
}

export interface AgentLinkOptions {
  /** The master's agent port: `https://host:8641` or `wss://host:8641`. */
  master: string;
  /** Read again before each connection: a renewed certificate is used from the next one on. */
  tls: () => AgentTls;
  /** Where the agent keeps its content index. */
  workDir: string;
  signal: AbortSignal;
  log: (line: string) => void;
  /** Called before each connection: renews the certificate when it is due (30 days before expiry). */
  beforeConnect?: () => Promise<void>;
  /** Longest back-off between attempts, in seconds (default 60). */
  maxBackoffS?: number;
  /** Randomness for the back-off's jitter (tests pass a seeded one). */
  random?: () => number;
}

/**
 * How long a node result may wait for others to share its frame, and how many go in one: a
 * no-op run that never lets a timer fire still sends as it goes, for the master to pass on
 * while the run goes on.
 */
const EVENTS_FLUSH_MS = 10;
const EVENTS_PER_FRAME = 100;

/** The agent stopped for good: why, and the exit code. */
export class AgentStopped extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
    this.name = 'AgentStopped';
  }
}

/** The WebSocket URL of a master's agent port from what the user gave (`https://`, `wss://` or `host:port`). */
export function agentSocketUrl(master: string): string {
  const withScheme = /^[a-z]+:\/\//i.test(master) ? master : `wss://${master}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw inputError(`--master ${JSON.stringify(master)} is not a URL`, undefined, "give the master's agent port: https://HOST:8641");
  }
  if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'wss:') throw inputError(`--master ${master}: the agent port is spoken to over TLS (https:// or wss://), not ${url.protocol}//`, undefined, "give the master's agent port: https://HOST:8641");
  url.pathname = AGENT_PATH;
  url.search = '';
  return url.toString();
}

/**
 * The wait before reconnection attempt `attempt` (0 after a welcome): jittered exponential
 * back-off, a random time in 0 … min(maxS, 2^attempt) seconds, so a fleet that lost its master
 * at once does not come back at once.
 */
export function backoffMs(attempt: number, random: () => number, maxS = 60): number {
  return random() * Math.min(maxS, 2 ** attempt) * 1000;
}

/** This boot's id: an agent that rebooted says so in its hello. */
function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().slice(0, 64);
  } catch {
    return 'unknown';
  }
}

/** The largest compiled run (in characters of its text) the agent keeps decoded for the next run. */
const REUSE_DECODED_MAX_CHARS = 4 * 1024 * 1024;

export class AgentLink {
  private readonly ops = new Map<string, AbortController>();
  private readonly url: string;
  /** Set by the welcome: the name the master knows this agent by (its certificate's). */
  name?: string;
  private socket?: WebSocket;
  /**
   * The compiled run decoded last and its text: the same run sent again (a converged target's
   * next no-op, the usual case) is not decoded again. The engine only reads a compiled run
   * (test/agent-compiled-reuse.test.ts holds it to that), so runs may share one.
   */
  private lastDecoded?: { text: string; compiled: Compiled };

  constructor(private readonly options: AgentLinkOptions) {
    this.url = agentSocketUrl(options.master);
  }

  /** Stays connected until the signal aborts (exit 0) or the master ends this agent (AgentStopped). */
  async run(): Promise<number> {
    const { signal, log } = this.options;
    const random = this.options.random ?? Math.random;
    const maxBackoff = this.options.maxBackoffS ?? 60;
    let attempt = 0;
    while (!signal.aborted) {
      let welcomed = false;
      try {
        await this.options.beforeConnect?.();
        welcomed = await this.session();
      } catch (err) {
        if (err instanceof AgentStopped) throw err;
        log(`connection to ${this.url}: ${(err as Error).message}`);
      }
      if (signal.aborted) break;
      if (welcomed) attempt = 0;
      const delay = backoffMs(attempt, random, maxBackoff);
      attempt++;
      log(`reconnecting in ${(delay / 1000).toFixed(1)} s`);
      await sleep(delay, signal);
    }
    return ExitCode.ok;
  }

  /**
   * One connection, until it closes. Resolves whether the master welcomed it; throws
   * AgentStopped for a close that ends the agent.
   */
  private session(): Promise<boolean> {
    const { signal, log } = this.options;
    const tls = this.options.tls();
    return new Promise<boolean>((resolve, reject) => {
      const socket = new WebSocket(this.url, {
        cert: tls.cert, key: tls.key, ca: tls.ca,
        maxPayload: MAX_FRAME_BYTES,
        handshakeTimeout: 15_000,
      });
      this.socket = socket;
      let welcomed = false;
      let lastPing = Date.now();
      // A master that stopped pinging (a dead link that TCP has not noticed): drop and reconnect.
      const watchdog = setInterval(() => {
        if (welcomed && Date.now() - lastPing > HEARTBEAT_S * 2500) {
          log('the master sent no ping for too long; reconnecting');
          socket.terminate();
        }
      }, HEARTBEAT_S * 1000);
      watchdog.unref();
      const stop = () => socket.close(1000, 'agent stopping');
      signal.addEventListener('abort', stop, { once: true });
      /** Resolves once the frame is written out (at once when the socket is gone). */
      const send = (frame: Outgoing<AgentFrame>) => new Promise<void>((resolve) => {
        if (socket.readyState === WebSocket.OPEN) socket.send(frameText(frame), () => resolve());
        else resolve();
      });
      socket.on('open', () => {
        void send({ type: 'hello', agent_version: CAIRN_VERSION, facts: localFacts(), boot_id: bootId() });
      });
      socket.on('ping', () => {
        lastPing = Date.now();
      });
      socket.on('message', (data) => {
        const text = messageText(data as Buffer);
        const parsed = text === undefined ? { refused: { code: CloseCode.badMessage, reason: 'frame too large' } } : parseMasterFrame(text);
        if ('refused' in parsed) {
          log(`the master sent a frame this agent cannot read: ${parsed.refused.reason}`);
          socket.close(parsed.refused.code, parsed.refused.reason);
          return;
        }
        const frame = parsed.frame;
        if (frame.type === 'welcome') {
          welcomed = true;
          lastPing = Date.now();
          this.name = frame.name;
          log(`connected to ${this.url} as ${frame.name}`);
        } else if (frame.type === 'cancel') {
          const op = this.ops.get(frame.re);
          if (op && !op.signal.aborted) log(`op ${frame.re}: cancelled by the master: finishing the node under way, starting no other`);
          op?.abort();
        } else if (!welcomed) {
          socket.close(CloseCode.badMessage, 'op before welcome');
        } else {
          void this.answer(frame, send);
        }
      });
      // The upgrade answered 401: the certificate is revoked or expired (a master that is down or
      // restarting never says so): retrying cannot help.
      let refused = false;
      socket.on('unexpected-response', (_req, res) => {
        refused = res.statusCode === 401;
        log(`connection to ${this.url}: the master answered ${res.statusCode} ${res.statusMessage ?? ''}`.trimEnd());
        socket.terminate();
      });
      socket.on('error', (err) => log(`connection to ${this.url}: ${err.message}`));
      socket.on('close', (code, reasonBytes) => {
        clearInterval(watchdog);
        signal.removeEventListener('abort', stop);
        // Ops in flight cannot report any more: stopped, as for a run the user interrupts.
        for (const controller of this.ops.values()) controller.abort();
        this.ops.clear();
        const reason = reasonBytes.toString('utf8');
        if (refused) {
          reject(new AgentStopped(`the master refused this agent's certificate (HTTP 401: revoked or expired); enrol again (cairn agent enrol)`, ExitCode.unreachable));
          return;
        }
        if (signal.aborted) {
          resolve(welcomed);
          return;
        }
        if (code === CloseCode.replaced) reject(new AgentStopped(`the master closed this connection: another agent connected with the same name (${reason}); stopping`, ExitCode.unreachable));
        else if (code === CloseCode.unauthorised) reject(new AgentStopped(`the master refused this agent's certificate (${reason || 'revoked'}); enrol again (cairn agent enrol)`, ExitCode.unreachable));
        else if (code === CloseCode.unsupportedVersion) reject(new AgentStopped(`the master does not speak this agent's protocol (${reason}); upgrade cairn`, ExitCode.invalidInput));
        else {
          log(`disconnected from ${this.url} (${code}${reason ? `: ${reason}` : ''})`);
          resolve(welcomed);
        }
      });
    });
  }

  /** Ends the current connection cleanly; the agent connects again at once (a renewed certificate). */
  reconnect(reason: string): void {
    this.socket?.close(1000, reason);
  }

  /** Runs one op and sends its events, log lines and result back. */
  private async answer(op: OpFrame, send: (frame: Outgoing<AgentFrame>) => Promise<void>): Promise<void> {
    const controller = new AbortController();
    this.ops.set(op.id, controller);
    let seq = 0;
    // Node results wait up to EVENTS_FLUSH_MS to go in one frame with those that follow (a frame
    // each cost the master more than the agent's no-op run); any other frame sends them first.
    let unsent: NodeResult[] = [];
    let flushTimer: NodeJS.Timeout | undefined;
    const flush = () => {
      clearTimeout(flushTimer);
      flushTimer = undefined;
      if (unsent.length === 0) return;
      void send({ type: 'events', re: op.id, seq: seq - unsent.length + 1, nodes: unsent });
      unsent = [];
    };
    const sent: NodeResult[] = [];
    const event = (node: NodeResult) => {
      seq++;
      sent.push(node);
      if (unsent.push(node) === 1) flushTimer = setTimeout(flush, EVENTS_FLUSH_MS);
      if (unsent.length >= EVENTS_PER_FRAME) flush();
    };
    const reply = (frame: Outgoing<AgentFrame>) => {
      flush();
      return send(frame);
    };
    const log = (stream: 'stdout' | 'stderr' | 'log' | 'notice', data: string, ref?: string) => reply({ type: 'log', re: op.id, seq: ++seq, stream, data, ...(ref !== undefined ? { ref } : {}) });
    try {
      if (op.op === 'facts') {
        reply({ type: 'result', re: op.id, ok: true, facts: localFacts() });
        return;
      }
      const exec = new LocalExecutor(op.op === 'run' ? {} : { contentIndex: { file: join(this.options.workDir, 'content-index.json'), trust: true, save: op.op === 'apply' } });
      try {
        if (op.op === 'run') {
          const argv = op.options.become && process.getuid?.() !== 0 ? ['sudo', '-n', '--', ...op.argv!] : op.argv!;
          const r = await exec.run(argv, { signal: controller.signal, onOutput: (stream, text) => log(stream, text) });
          reply({ type: 'result', re: op.id, ok: true, report: { exit_code: r.code, stdout: r.stdout, stderr: r.stderr, ...(r.timedOut ? { timed_out: true } : {}) } });
          return;
        }
        let compiled;
        try {
          const last = this.lastDecoded;
          compiled = last && last.text === op.run ? last.compiled : decodeCompiled(op.run!);
          // A large run is not kept between runs: its decoding is little beside its run, its memory is not.
          this.lastDecoded = op.run!.length <= REUSE_DECODED_MAX_CHARS ? { text: op.run!, compiled } : undefined;
        } catch (err) {
          if (!(err instanceof CodecError)) throw err;
          reply({ type: 'result', re: op.id, ok: false, error: err.message });
          return;
        }
        if (this.name !== undefined && compiled.run.target.name !== this.name) {
          reply({ type: 'result', re: op.id, ok: false, error: `the run is compiled for target ${compiled.run.target.name}, but this agent is ${this.name}` });
          return;
        }
        const facts = localFacts();
        const report = await runTarget(compiled, exec, {
          mode: op.op, facts, signal: controller.signal,
          diff: op.options.diff ?? false, failFast: op.options.fail_fast ?? false,
          ...(op.options.tags ? { tags: op.options.tags } : {}),
          lockWaitMs: (op.options.lock_wait_s ?? 0) * 1000,
          onNotice: (line) => log('notice', line),
          onLog: (ref, message) => log('log', message, ref),
          onResult: event,
        });
        // Its nodes went as events already, these very results in this order: the master puts
        // them back rather than reading them twice.
        const { nodes, ...withoutNodes } = report;
        const allSent = nodes.length === sent.length && nodes.every((node, i) => node === sent[i]);
        const written = reply({ type: 'result', re: op.id, ok: true, report: allSent ? withoutNodes : report, facts });
        this.options.log(`${op.op} ${op.id}: ${report.counts.changed} changed, ${report.counts.unchanged} unchanged, ${report.counts.failed} failed, ${report.counts.skipped} skipped`);
        // Out before the content index is saved (exec.close): TLS sends the run's last frames
        // only as the event loop turns, which that work would hold up.
        await written;
      } finally {
        await exec.close();
      }
    } catch (err) {
      if (err instanceof LockHeldError) reply({ type: 'result', re: op.id, ok: false, error: err.message });
      else {
        this.options.log(`op ${op.id} (${op.op}): ${(err as Error).stack ?? String(err)}`);
        reply({ type: 'result', re: op.id, ok: false, error: `internal error on the agent: ${(err as Error).message}` });
      }
    } finally {
      clearTimeout(flushTimer);
      this.ops.delete(op.id);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
