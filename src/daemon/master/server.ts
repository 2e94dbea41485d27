/**
 * `cairn master` (DESIGN §9): two HTTPS listeners over one default-deny route table.
 *
 * - The agent port asks for a client certificate but lets a connection without one (or with one
 *   that does not verify) through, because `GET /v1/ca` and `POST /v1/enrol` are open; every
 *   other route, and the WebSocket upgrade of `GET /v1/agent`, needs a certificate the TLS layer
 *   verified against the CA, with clientAuth, whose serial is not in the revocation set. The
 *   caller's identity is read from that certificate and nothing else.
 * - The API port (loopback by default) authenticates API tokens and session cookies (api-auth.ts).
 *
 * Revocation takes effect at once: the set is checked at each handshake, upgrade and request, live
 * sockets of a revoked serial are closed with 4401, and the CRL the TLS layer also checks is
 * regenerated (and again well before its nextUpdate).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer } from 'ws';
import { inputError } from '../../lib/errors.ts';
import type { Store } from '../../store/types.ts';
import { AGENT_NAME_PATTERN, CLIENT_AUTH, normalSerial } from '../pki/x509.ts';
import { AgentSockets, refuseAgentSocket, type AgentSocketHandler } from './agent-sockets.ts';
import { CloseCode } from '../protocol.ts';
import { apiCaller } from './api-auth.ts';
import { CertificateAuthority } from './ca.ts';
import { masterRoutes } from './master-routes.ts';
import { MASTER_KEYS, enrolTokenRecord, readRecord, sessionRecord } from './records.ts';
import { RevocationSet } from './revocation.ts';
import { createRouter, type Caller } from './router.ts';
import type { AgentIdentity, Route } from './routes.ts';

export const DEFAULT_AGENT_LISTEN = '0.0.0.0:8641';
export const DEFAULT_API_LISTEN = '127.0.0.1:8640';
/** How long a CRL is valid, and how often a new one is made (well within that). */
const CRL_VALID_MS = 48 * 3_600_000;
const HOUSEKEEPING_MS = 3_600_000;
const CRL_REFRESH_MS = 12 * 3_600_000;
const SERVER_CERT_RENEW_MS = 30 * 86_400_000;
/** Largest WebSocket message (a compiled graph of a large site fits with room to spare). */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export interface MasterOptions {
  store: Store;
  /** Holds the CA (ca.pem, ca.key 0600): made on first start. */
  stateDir: string;
  /** host:port of the API listener (port 0: any free one). */
  listen?: string;
  /** host:port of the agent listener. */
  agentListen?: string;
  /** DNS names the server certificate is for (default: this host's name); `localhost` and the addresses are added. */
  names?: string[];
  /** More routes (the run API, …): added to the master's own; the table is fixed from then on. */
  routes?: Route[];
  /** Serves an authenticated agent WebSocket (default: closes it with 4503). */
  onAgentSocket?: AgentSocketHandler;
  log?: (line: string) => void;
  /** How long each CRL is valid and how often a new one is made (default 48 h and 12 h). */
  crl?: { validMs: number; refreshMs: number };
}

export interface Master {
  agentPort: number;
  apiPort: number;
  ca: CertificateAuthority;
  /** Whether the CA was made by this start (false: loaded from the state folder). */
  caCreated: boolean;
  /** The whole route table, both listeners. */
  routes: readonly Route[];
  /** The live agent sockets by certificate serial. */
  sockets: AgentSockets;
  isRevoked(serial: string): boolean;
  /** The CRL now served (PEM). */
  crl(): string;
  /** Closes agent sockets with 4503 and both listeners. */
  close(): Promise<void>;
}

interface ListenAddress {
  host: string;
  port: number;
}

/** `host:port` or `[v6]:port` of a listen option; bad text is an input error (exit 2). */
export function parseListen(text: string, option: string): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw inputError(`${option} ${JSON.stringify(text)} is not HOST:PORT`, undefined, `e.g. ${option} 127.0.0.1:8640 or ${option} [::1]:8640`);
  return { host: m[1] ?? m[2]!, port };
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

/** The names and addresses the server certificate must hold for agents and browsers to reach either listener. */
function serverNames(names: string[], listens: ListenAddress[]): { dns: string[]; ips: string[] } {
  const ips = new Set(['127.0.0.1', '::1']);
  const dns = new Set([...names, 'localhost']);
  for (const l of listens) {
    if (WILDCARDS.has(l.host)) {
      for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) ips.add(a.address.replace(/%.*$/, ''));
    } else if (/^[0-9.]+$/.test(l.host) || l.host.includes(':')) ips.add(l.host);
    else dns.add(l.host);
  }
  return { dns: [...dns], ips: [...ips] };
}

export async function createMaster(options: MasterOptions): Promise<Master> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const { store } = options;
  const apiAt = parseListen(options.listen ?? DEFAULT_API_LISTEN, '--listen');
  const agentAt = parseListen(options.agentListen ?? DEFAULT_AGENT_LISTEN, '--agent-listen');
  const { ca, created } = await CertificateAuthority.open(options.stateDir);
  const names = serverNames(options.names?.length ? options.names : [hostname()], [apiAt, agentAt]);
  let server = await ca.issueServer(names.dns, names.ips);

  const crlTiming = options.crl ?? { validMs: CRL_VALID_MS, refreshMs: CRL_REFRESH_MS };
  if (!(crlTiming.refreshMs < crlTiming.validMs)) throw new Error('a new CRL must be made before the last one runs out');
  const shutdown = new AbortController();
  const sockets = new AgentSockets();
  let crlPem = '';
  // Set once both exist; the CRL and certificate refreshes reach them through here.
  const live: { agent?: Server; api?: Server } = {};

  const agentContext = () => ({ key: server.key, cert: server.cert, ca: ca.pem, crl: crlPem, minVersion: 'TLSv1.2' as const });
  const apiContext = () => ({ key: server.key, cert: server.cert, minVersion: 'TLSv1.2' as const });
  const regenerateCrl = async () => {
    crlPem = await ca.crl(revocations.list().map((r) => ({ serial: r.serial, revoked: new Date(r.revoked) })), new Date(Date.now() + crlTiming.validMs));
    live.agent?.setSecureContext(agentContext());
  };
  let crlQueue = Promise.resolve();
  const queueCrl = () => {
    crlQueue = crlQueue.then(regenerateCrl).catch((err: unknown) => log(`cannot regenerate the CRL: ${(err as Error).message}`));
  };
  const routes: Route[] = [...masterRoutes({ store, ca, crl: () => crlPem }), ...(options.routes ?? [])];
  checkRouteTable(routes);
  const revocations: RevocationSet = new RevocationSet(store, (record) => {
    const n = sockets.close(record.serial, CloseCode.unauthorised, 'certificate revoked');
    if (n > 0) log(`closed ${n} connection${n === 1 ? '' : 's'} of ${record.name} (certificate ${record.serial} revoked)`);
  }, queueCrl, log);
  await revocations.start(shutdown.signal);
  await crlQueue;

  const identityOf = (socket: TLSSocket): AgentIdentity | undefined => {
    if (!socket.authorized) return undefined;
    const cert = socket.getPeerCertificate();
    if (!cert || !cert.serialNumber) return undefined;
    if (!(cert.ext_key_usage ?? []).includes(CLIENT_AUTH)) return undefined;
    if (Date.parse(cert.valid_to) <= Date.now()) return undefined;
    const cn = cert.subject?.CN;
    if (typeof cn !== 'string' || !AGENT_NAME_PATTERN.test(cn) || cert.subjectaltname !== `DNS:${cn}`) return undefined;
    const serial = normalSerial(cert.serialNumber);
    if (revocations.has(serial)) return undefined;
    return { name: cn, serial };
  };

  const agentRouter = createRouter('agent', routes, async (req): Promise<Caller> => {
    const identity = identityOf(req.socket as TLSSocket);
    return identity ? { identity } : {};
  }, log, shutdown.signal);
  const apiRouter = createRouter('api', routes, (req) => apiCaller(store, req), log, shutdown.signal);

  const handler = options.onAgentSocket ?? refuseAgentSocket;
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  const refuseUpgrade = (socket: Duplex, status: number, text: string) => {
    socket.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
  };

  const agentServer = createServer({ ...agentContext(), requestCert: true, rejectUnauthorized: false }, (req: IncomingMessage, res: ServerResponse) => {
    void agentRouter.handle(req, res);
  });
  // A revoked certificate is cut off at the handshake (the CRL may lag the store by a moment).
  agentServer.on('secureConnection', (socket: TLSSocket) => {
    const serial = socket.getPeerCertificate()?.serialNumber;
    if (serial && revocations.has(serial)) socket.destroy();
  });
  agentServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/v1/agent') return refuseUpgrade(socket, 404, 'Not Found');
    const identity = identityOf(socket as TLSSocket);
    if (!identity) return refuseUpgrade(socket, 401, 'Unauthorized');
    if (shutdown.signal.aborted) return refuseUpgrade(socket, 503, 'Service Unavailable');
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(identity.serial, ws);
      // Revoked between the check above and now: the revocation's close has already run.
      if (revocations.has(identity.serial)) return ws.close(CloseCode.unauthorised, 'certificate revoked');
      try {
        handler(ws, identity);
      } catch (err) {
        log(`agent socket handler failed for ${identity.name}: ${(err as Error).stack ?? String(err)}`);
        ws.close(1011, 'internal error');
      }
    });
  });

  const apiServer = createServer(apiContext(), (req: IncomingMessage, res: ServerResponse) => {
    void apiRouter.handle(req, res);
  });
  apiServer.on('upgrade', (_req: IncomingMessage, socket: Duplex) => refuseUpgrade(socket, 404, 'Not Found'));

  live.agent = agentServer;
  live.api = apiServer;
  for (const s of [agentServer, apiServer]) {
    s.on('tlsClientError', () => undefined);
    s.headersTimeout = 20_000;
  }
  const listen = (s: Server, at: ListenAddress) => new Promise<number>((resolve, reject) => {
    s.once('error', reject);
    s.listen(at.port, at.host, () => {
      s.off('error', reject);
      resolve((s.address() as AddressInfo).port);
    });
  });
  let agentPort: number;
  let apiPort: number;
  try {
    agentPort = await listen(agentServer, agentAt);
    apiPort = await listen(apiServer, apiAt);
  } catch (err) {
    shutdown.abort();
    agentServer.close();
    apiServer.close();
    const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
    throw new ListenError(`cannot listen on ${e.address ?? ''}:${e.port ?? ''}: ${e.code ?? e.message}`);
  }

  let lastCrl = Date.now();
  // Each CRL is replaced well before its nextUpdate: the TLS layer would refuse every agent after it.
  const housekeeping = setInterval(() => {
    void (async () => {
      if (Date.now() - lastCrl >= crlTiming.refreshMs) {
        lastCrl = Date.now();
        queueCrl();
      }
      if (server.notAfter.getTime() - Date.now() < SERVER_CERT_RENEW_MS) {
        server = await ca.issueServer(names.dns, names.ips);
        live.agent?.setSecureContext(agentContext());
        live.api?.setSecureContext(apiContext());
      }
      for (const kv of await store.list(MASTER_KEYS.sessions)) {
        const s = readRecord(sessionRecord, kv);
        if (!s || Date.parse(s.expires) <= Date.now()) await store.delete(kv.key);
      }
      for (const kv of await store.list(MASTER_KEYS.enrolTokens)) {
        const t = readRecord(enrolTokenRecord, kv);
        if (t && Date.parse(t.expires) <= Date.now()) await store.txn([{ key: kv.key, target: 'modRevision', op: '=', value: kv.modRevision }], [{ delete: kv.key }]);
      }
    })().catch((err: unknown) => log(`housekeeping failed: ${(err as Error).message}`));
  }, Math.min(HOUSEKEEPING_MS, crlTiming.refreshMs));
  housekeeping.unref();

  let closing: Promise<void> | undefined;
  return {
    agentPort, apiPort, ca, caCreated: created, routes, sockets,
    isRevoked: (serial) => revocations.has(serial),
    crl: () => crlPem,
    close() {
      closing ??= (async () => {
        clearInterval(housekeeping);
        shutdown.abort();
        sockets.closeAll(CloseCode.shuttingDown, 'master shutting down');
        const closed = (s: Server) => new Promise<void>((resolve) => s.close(() => resolve()));
        const done = Promise.all([closed(agentServer), closed(apiServer), new Promise<void>((resolve) => wss.close(() => resolve()))]);
        agentServer.closeIdleConnections();
        apiServer.closeIdleConnections();
        // Whatever is still open (a stream, an agent that does not answer its close) ends shortly.
        const force = setTimeout(() => {
          for (const client of wss.clients) client.terminate();
          agentServer.closeAllConnections();
          apiServer.closeAllConnections();
        }, 2000);
        await done;
        clearTimeout(force);
        await crlQueue;
      })();
      return closing;
    },
  };
}

/**
 * The table must say exactly what it means: each method and path once per listener, paths of
 * plain segments and `:params`, certificates only on the agent port and roles only on the API
 * port. A mistake here is a bug in Cairn, found at start rather than by a caller.
 */
export function checkRouteTable(routes: readonly Route[]): void {
  const seen = new Set<string>();
  for (const r of routes) {
    const id = `${r.listener} ${r.method} ${r.path}`;
    if (seen.has(id)) throw new Error(`route table: ${id} is there twice`);
    seen.add(id);
    if (r.path !== '/' && !/^(\/(?:[A-Za-z0-9][A-Za-z0-9._-]*|:[A-Za-z_][A-Za-z0-9_]*))+$/.test(r.path)) throw new Error(`route table: ${id}: not a path of plain segments and :params`);
    if (r.auth === 'certificate' && r.listener !== 'agent') throw new Error(`route table: ${id}: client certificates exist only on the agent port`);
    if (r.auth !== 'open' && r.auth !== 'certificate' && r.listener !== 'api') throw new Error(`route table: ${id}: roles exist only on the API port`);
  }
}

/** A listener's address cannot be bound (in use, not this machine's): exit 3. */
export class ListenError extends Error {
  readonly exitCode = 3;
  constructor(message: string) {
    super(message);
    this.name = 'ListenError';
  }
}

