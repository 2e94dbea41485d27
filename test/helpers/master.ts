/**
 * A real master on loopback (both listeners on port 0) over a real store, and the HTTPS and
 * WebSocket clients the master tests call it with.
 */
import { request } from 'node:https';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { createMaster, type Master, type MasterOptions } from '../../src/daemon/master/server.ts';
import { createEnrolToken } from '../../src/daemon/master/tokens.ts';
import { enrolAgent, type AgentCredentials } from '../../src/daemon/enrolment/client.ts';
import { openStore } from '../../src/store/index.ts';
import type { Store } from '../../src/store/types.ts';
import { tempDir } from './cli.ts';

export interface TestMaster {
  master: Master;
  store: Store;
  dir: string;
  agentUrl: string;
  apiUrl: string;
  /** Enrols `name` with a fresh token into a folder of its own; returns its credentials and that folder. */
  enrol(name: string): Promise<AgentCredentials & { dir: string }>;
  stop(): Promise<void>;
}

export async function startMaster(options: Partial<MasterOptions> & { storeUrl?: string } = {}): Promise<TestMaster> {
  const dir = tempDir('cairn-master-');
  const store = options.store ?? (await openStore(options.storeUrl ?? `sqlite:${join(dir, 'store.db')}`));
  const logs: string[] = [];
  const master = await createMaster({
    store, stateDir: join(dir, 'state'), listen: '127.0.0.1:0', agentListen: '127.0.0.1:0', log: (l) => logs.push(l), ...options,
  });
  const agentUrl = `https://127.0.0.1:${master.agentPort}`;
  return {
    master, store, dir, agentUrl, apiUrl: `https://127.0.0.1:${master.apiPort}`,
    async enrol(name) {
      const { token } = await createEnrolToken(store, { name, ttlSeconds: 600, uses: 1, replace: false });
      const agentDir = tempDir(`cairn-agent-${name}-`);
      return { ...(await enrolAgent({ master: agentUrl, token, caHash: master.ca.hash, name, dir: agentDir })), dir: agentDir };
    },
    async stop() {
      await master.close();
      if (!options.store) await store.close();
    },
  };
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json(): unknown;
}

export interface CallOptions {
  /** Trust anchor for the server certificate (default: none checked). */
  ca?: string;
  cert?: string;
  key?: string;
  headers?: Record<string, string>;
  body?: unknown;
}

/** One HTTPS request; a TLS connection the server cuts is a rejection (`error`). */
export function call(base: string, method: string, path: string, options: CallOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    const at = new URL(base);
    // The path goes out exactly as given (`..` and all), as a hostile client would send it.
    const req = request({
      host: at.hostname, port: at.port, path,
      method,
      agent: false,
      ...(options.ca ? { ca: options.ca } : { rejectUnauthorized: false }),
      ...(options.cert ? { cert: options.cert, key: options.key } : {}),
      headers: { ...(payload !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) as unknown }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** Opens the agent WebSocket with `creds`; resolves when open, rejects with the refusal. */
export function connectAgent(agentUrl: string, creds: { cert: string; key: string; ca: string }): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${agentUrl.replace(/^https/, 'wss')}/v1/agent`, { ca: creds.ca, cert: creds.cert, key: creds.key });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`refused: HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

/** The close code and reason of `ws`, when it closes. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}
