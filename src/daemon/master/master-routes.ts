/**
 * The routes the master itself serves (the rest of the table comes from createMaster's caller):
 * enrolment, renewal, the CA and the CRL on the agent port; health, login (an API token or a
 * user's password) and the admin routes
 * for certificates and tokens on the API port.
 */
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Store } from '../../store/types.ts';
import { agentNameProblem } from '../pki/x509.ts';
import { login, logout, passwordLogin } from './api-auth.ts';
import type { CertificateAuthority } from './ca.ts';
import { enrol, renew } from './enrolment.ts';
import { MASTER_KEYS, certificateRecord, readRecords, revocationRecord } from './records.ts';
import { revoke } from './revocation.ts';
import { HttpError, type Route } from './routes.ts';
import { createEnrolToken, listEnrolTokens, revokeEnrolToken } from './tokens.ts';
import { LoginThrottle } from './users.ts';

export interface MasterContext {
  store: Store;
  ca: CertificateAuthority;
  /** The current CRL (PEM), never past its nextUpdate. */
  crl(): string;
}

const PEM_LIMIT = 16 * 1024;
const csrBody = z.object({ csr: z.string().min(1).max(PEM_LIMIT) }).strict();

function sendPem(res: ServerResponse, pem: string, type: string): undefined {
  res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(pem);
  return undefined;
}

export function masterRoutes(ctx: MasterContext): Route[] {
  const { store, ca } = ctx;
  const throttle = new LoginThrottle();
  return [
    // ── agent port ──────────────────────────────────────────────────────────────────────────
    {
      method: 'GET', path: '/v1/ca', listener: 'agent', auth: 'open',
      handle: async (_req, res) => sendPem(res, ca.pem, 'application/x-pem-file'),
    },
    {
      method: 'POST', path: '/v1/enrol', listener: 'agent', auth: 'open', body: csrBody,
      handle: async (req) => {
        const issued = await enrol(store, ca, (req.body as z.infer<typeof csrBody>).csr);
        return { status: 200, json: { certificate: issued.pem, ca: ca.pem, serial: issued.serial, not_after: issued.notAfter.toISOString() } };
      },
    },
    {
      // The WebSocket upgrade is served by the listener's upgrade handler; a plain GET gets told so.
      method: 'GET', path: '/v1/agent', listener: 'agent', auth: 'certificate',
      handle: async () => ({ status: 426, json: { error: 'this is a WebSocket endpoint' }, headers: { upgrade: 'websocket' } }),
    },
    {
      method: 'POST', path: '/v1/renew', listener: 'agent', auth: 'certificate', body: csrBody,
      handle: async (req) => {
        const issued = await renew(store, ca, req.identity!, (req.body as z.infer<typeof csrBody>).csr);
        return { status: 200, json: { certificate: issued.pem, ca: ca.pem, serial: issued.serial, not_after: issued.notAfter.toISOString() } };
      },
    },
    {
      method: 'GET', path: '/v1/crl', listener: 'agent', auth: 'certificate',
      handle: async (_req, res) => sendPem(res, ctx.crl(), 'application/x-pem-file'),
    },

    // ── API port ────────────────────────────────────────────────────────────────────────────
    {
      method: 'GET', path: '/healthz', listener: 'api', auth: 'open',
      handle: async () => ({ status: 200, json: { ok: true } }),
    },
    {
      method: 'POST', path: '/api/v1/login', listener: 'api', auth: 'open',
      body: z.union([
        z.object({ token: z.string().min(1).max(200) }).strict(),
        z.object({ user: z.string().min(1).max(64), password: z.string().min(1).max(1024) }).strict(),
      ]),
      handle: async (req) => {
        const body = req.body as { token: string } | { user: string; password: string };
        if ('token' in body) {
          const session = await login(store, body.token);
          if (!session) throw new HttpError(401, 'that API token is unknown or revoked');
          return { status: 200, json: { name: session.name, role: session.role }, headers: { 'set-cookie': session.setCookie } };
        }
        // Failures count per user name and per client address; a throttled one is refused before any check.
        const address = req.remoteAddress ?? '';
        const wait = throttle.retryAfter(body.user, address);
        if (wait > 0) throw new HttpError(429, `too many failed logins: try again in ${wait} s`, { 'retry-after': String(wait) });
        const session = await passwordLogin(store, body.user, body.password);
        if (!session) {
          throttle.failed(body.user, address);
          throw new HttpError(401, 'unknown user or wrong password');
        }
        return { status: 200, json: { name: session.name, role: session.role }, headers: { 'set-cookie': session.setCookie } };
      },
    },
    {
      method: 'POST', path: '/api/v1/logout', listener: 'api', auth: 'viewer',
      handle: async (req) => ({ status: 200, json: { ok: true }, headers: { 'set-cookie': await logout(store, req) } }),
    },
    {
      method: 'GET', path: '/api/v1/whoami', listener: 'api', auth: 'viewer',
      handle: async (req) => ({ status: 200, json: req.user }),
    },
    {
      method: 'GET', path: '/api/v1/certificates', listener: 'api', auth: 'admin',
      handle: async () => ({ status: 200, json: await certificateList(store) }),
    },
    {
      method: 'POST', path: '/api/v1/certificates/:serial/revoke', listener: 'api', auth: 'admin',
      handle: async (req) => {
        const serial = req.params.serial!;
        if (!/^[0-9A-Fa-f]{1,40}$/.test(serial)) throw new HttpError(400, `${JSON.stringify(serial)} is not a serial number`);
        const r = await revoke(store, serial, 'serial');
        if (r.revoked.length === 0 && r.already.length === 0) throw new HttpError(404, `no certificate with serial ${serial}`);
        return { status: 200, json: r };
      },
    },
    {
      method: 'GET', path: '/api/v1/tokens', listener: 'api', auth: 'admin',
      handle: async () => ({ status: 200, json: (await listEnrolTokens(store)).map(({ hash: _hash, ...rest }) => rest) }),
    },
    {
      method: 'POST', path: '/api/v1/tokens', listener: 'api', auth: 'admin',
      body: z.object({
        name: z.string().refine((n) => agentNameProblem(n) === undefined, { message: 'not a valid agent name' }),
        ttl_s: z.number().int().positive().max(366 * 86_400).default(3600),
        uses: z.number().int().positive().max(10_000).default(1),
        replace: z.boolean().default(false),
      }).strict(),
      handle: async (req) => {
        const b = req.body as { name: string; ttl_s: number; uses: number; replace: boolean };
        const { token, record } = await createEnrolToken(store, { name: b.name, ttlSeconds: b.ttl_s, uses: b.uses, replace: b.replace });
        const { hash: _hash, ...rest } = record;
        return { status: 201, json: { token, ...rest } };
      },
    },
    {
      method: 'DELETE', path: '/api/v1/tokens/:id', listener: 'api', auth: 'admin',
      handle: async (req) => {
        if (!(await revokeEnrolToken(store, req.params.id!))) throw new HttpError(404, `no enrolment token ${req.params.id}`);
        return { status: 200, json: { revoked: req.params.id } };
      },
    },
  ];
}

export interface CertificateListing {
  serial: string;
  name: string;
  not_before: string;
  not_after: string;
  issued: string;
  via: string;
  status: 'valid' | 'expired' | 'revoked';
  revoked?: string;
}

/** Every certificate of the inventory with its status, newest first. */
export async function certificateList(store: Store, now = Date.now()): Promise<CertificateListing[]> {
  const revoked = new Map(readRecords(revocationRecord, await store.list(MASTER_KEYS.revoked)).map((r) => [r.serial, r]));
  return readRecords(certificateRecord, await store.list(MASTER_KEYS.certificates))
    .map(({ pem: _pem, key_sha256: _key, ...c }) => {
      const r = revoked.get(c.serial);
      const status: CertificateListing['status'] = r ? 'revoked' : Date.parse(c.not_after) <= now ? 'expired' : 'valid';
      return { ...c, status, ...(r ? { revoked: r.revoked } : {}) };
    })
    .sort((a, b) => b.issued.localeCompare(a.issued) || a.serial.localeCompare(b.serial));
}
