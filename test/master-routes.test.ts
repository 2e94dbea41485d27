/**
 * The master's two listeners are default-deny (DESIGN §9): every route of the table the CLI
 * builds is called without credentials and refused unless it is one of the open ones; anything
 * not in the table is 404; API roles and session cookies (with their Origin check) are enforced
 * by the router.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { masterParts } from '../src/cli/master.ts';
import { createApiToken, revokeApiToken } from '../src/daemon/master/tokens.ts';
import { openStore } from '../src/store/index.ts';
import { tempDir } from './helpers/cli.ts';
import { makeCertificates, opensslUnavailable } from './helpers/etcd.ts';
import { call, startMaster, type TestMaster } from './helpers/master.ts';
import { waitUntil } from './helpers/wait.ts';

const OPEN = new Set(['GET /v1/ca', 'POST /v1/enrol', 'GET /healthz', 'POST /api/v1/login', 'GET /', 'GET /ui', 'GET /ui/app.js', 'GET /ui/app.css']);

/** A master with the whole route table `cairn master` serves. */
async function fullMaster(): Promise<TestMaster> {
  const dir = tempDir('cairn-routes-');
  const store = await openStore(`sqlite:${join(dir, 'store.db')}`);
  const m = await startMaster({ store, ...(await masterParts(store)) });
  const stop = m.stop;
  return { ...m, stop: async () => { await stop(); await store.close(); } };
}

const filled = (path: string) => path.replace(/:[A-Za-z_]+/g, '0123456789abcdef');

test('every route of both listeners, called without credentials, is refused unless it is open', async (t) => {
  const m = await fullMaster();
  t.after(() => m.stop());
  const routes = m.master.routes;
  assert.ok(routes.length >= 14, 'the table holds the master\'s own routes at least');
  // Exactly these are open: a route made open by mistake fails here.
  assert.deepEqual(routes.filter((r) => r.auth === 'open').map((r) => `${r.method} ${r.path}`).sort(), [...OPEN].sort());
  for (const route of routes) {
    const base = route.listener === 'agent' ? m.agentUrl : m.apiUrl;
    const path = filled(route.path);
    const r = await call(base, route.method, path, route.method === 'GET' || route.method === 'DELETE' ? {} : { body: {}, headers: { origin: base } });
    const what = `${route.method} ${route.path} on the ${route.listener} port`;
    if (route.auth === 'open') {
      assert.ok(r.status !== 401 && r.status !== 403 && r.status !== 404, `${what} is open, got ${r.status}`);
    } else {
      assert.equal(r.status, 401, `${what} without credentials: ${r.status} ${r.text}`);
    }
    // A route never answers on the other listener.
    const other = route.listener === 'agent' ? m.apiUrl : m.agentUrl;
    const elsewhere = await call(other, route.method, path, route.method === 'POST' ? { body: {} } : {});
    assert.equal(elsewhere.status, 404, `${what} must not be served on the other port`);
  }
});

test('anything not in the table is 404 on both ports: unknown paths, other methods, traversal, bad params, upgrades', async (t) => {
  const m = await fullMaster();
  t.after(() => m.stop());
  const { token } = await createApiToken(m.store, 'root', 'admin');
  const admin = { authorization: `Bearer ${token}` };
  for (const [base, method, path] of [
    [m.agentUrl, 'GET', '/'], [m.agentUrl, 'GET', '/v1/nope'], [m.agentUrl, 'PUT', '/v1/ca'], [m.agentUrl, 'DELETE', '/v1/enrol'],
    [m.agentUrl, 'GET', '/v1/ca/'], [m.agentUrl, 'GET', '/v2/agent'], [m.apiUrl, 'GET', '/ui/other.js'], [m.apiUrl, 'GET', '/ui/../api/v1/tokens'], [m.apiUrl, 'POST', '/'], [m.apiUrl, 'GET', '/api/v1/nope'],
    [m.apiUrl, 'GET', '/api/v1/tokens/../certificates'], [m.apiUrl, 'DELETE', '/api/v1/tokens/..%2F..%2Fcertificates'],
    [m.apiUrl, 'DELETE', '/api/v1/tokens/a%20b'], [m.apiUrl, 'PATCH', '/api/v1/tokens'], [m.apiUrl, 'GET', '/v1/ca'],
  ] as const) {
    const r = await call(base, method, path, { headers: admin });
    assert.equal(r.status, 404, `${method} ${path}: ${r.status} ${r.text}`);
  }
  // A WebSocket upgrade anywhere but /v1/agent of the agent port is refused.
  for (const url of [`${m.apiUrl.replace('https', 'wss')}/v1/agent`, `${m.agentUrl.replace('https', 'wss')}/v1/other`]) {
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(url, { rejectUnauthorized: false });
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('error', () => resolve(-1));
    });
    assert.equal(status, 404, url);
  }
  // Without a certificate the agent upgrade is unauthorised.
  const status = await new Promise<number>((resolve) => {
    const ws = new WebSocket(`${m.agentUrl.replace('https', 'wss')}/v1/agent`, { rejectUnauthorized: false });
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', () => resolve(-1));
  });
  assert.equal(status, 401);
});

test('credentials of the wrong kind do not pass: a foreign CA\'s client certificate, an API token on the agent port, an agent certificate on the API port', { skip: opensslUnavailable() }, async (t) => {
  const m = await fullMaster();
  t.after(() => m.stop());
  const foreign = makeCertificates(tempDir('cairn-foreign-'), 'web-1');
  const { readFileSync } = await import('node:fs');
  const stranger = { cert: readFileSync(foreign.clientCert, 'utf8'), key: readFileSync(foreign.clientKey, 'utf8') };
  assert.equal((await call(m.agentUrl, 'GET', '/v1/crl', stranger)).status, 401);
  const { token } = await createApiToken(m.store, 'root', 'admin');
  assert.equal((await call(m.agentUrl, 'GET', '/v1/crl', { headers: { authorization: `Bearer ${token}` } })).status, 401);
  const agent = await m.enrol('web-1');
  assert.equal((await call(m.agentUrl, 'GET', '/v1/crl', { cert: agent.cert, key: agent.key })).status, 200);
  assert.equal((await call(m.apiUrl, 'GET', '/api/v1/whoami', { cert: agent.cert, key: agent.key })).status, 401);
});

test('roles: viewer < operator < admin, enforced for every admin route', async (t) => {
  const m = await fullMaster();
  t.after(() => m.stop());
  const bearer = async (role: 'viewer' | 'operator' | 'admin') => ({ authorization: `Bearer ${(await createApiToken(m.store, `${role}-user`, role)).token}` });
  const tokens = { viewer: await bearer('viewer'), operator: await bearer('operator'), admin: await bearer('admin') };
  const order = ['viewer', 'operator', 'admin'] as const;
  for (const route of m.master.routes.filter((r) => r.listener === 'api' && r.auth !== 'open')) {
    for (const held of order) {
      const r = await call(m.apiUrl, route.method, filled(route.path), { headers: tokens[held], ...(route.method === 'POST' ? { body: {} } : {}) });
      const allowed = order.indexOf(held) >= order.indexOf(route.auth as (typeof order)[number]);
      if (allowed) assert.ok(r.status !== 401 && r.status !== 403, `${held} may ${route.method} ${route.path}: ${r.status} ${r.text}`);
      else assert.equal(r.status, 403, `${held} may not ${route.method} ${route.path}`);
    }
  }
  const who = await call(m.apiUrl, 'GET', '/api/v1/whoami', { headers: tokens.operator });
  assert.deepEqual(who.json(), { name: 'operator-user', role: 'operator' });
  assert.equal((await call(m.apiUrl, 'GET', '/api/v1/whoami', { headers: { authorization: 'Bearer cairn-api.0123456789abcdef.nope' } })).status, 401);
});

test('sessions: login sets a Secure HttpOnly SameSite=Strict cookie; writes with it need the API\'s own Origin; revoking the token ends it', async (t) => {
  const m = await fullMaster();
  t.after(() => m.stop());
  const { token, record } = await createApiToken(m.store, 'alice', 'admin');
  const origin = `https://127.0.0.1:${m.master.apiPort}`;
  assert.equal((await call(m.apiUrl, 'POST', '/api/v1/login', { body: { token } })).status, 403, 'login without Origin');
  assert.equal((await call(m.apiUrl, 'POST', '/api/v1/login', { body: { token }, headers: { origin: 'https://evil.example' } })).status, 403);
  assert.equal((await call(m.apiUrl, 'POST', '/api/v1/login', { body: { token: 'cairn-api.0123456789abcdef.x' }, headers: { origin } })).status, 401);
  const login = await call(m.apiUrl, 'POST', '/api/v1/login', { body: { token }, headers: { origin } });
  assert.equal(login.status, 200);
  const setCookie = String(login.headers['set-cookie']);
  for (const attribute of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/']) assert.ok(setCookie.includes(attribute), setCookie);
  const cookie = setCookie.split(';')[0]!;
  assert.ok(!cookie.includes(token));

  assert.deepEqual((await call(m.apiUrl, 'GET', '/api/v1/whoami', { headers: { cookie } })).json(), { name: 'alice', role: 'admin' });
  const body = { name: 'web-9' };
  assert.equal((await call(m.apiUrl, 'POST', '/api/v1/tokens', { body, headers: { cookie } })).status, 403, 'cookie write without Origin');
  assert.equal((await call(m.apiUrl, 'POST', '/api/v1/tokens', { body, headers: { cookie, origin: 'https://evil.example' } })).status, 403);
  const made = await call(m.apiUrl, 'POST', '/api/v1/tokens', { body, headers: { cookie, origin } });
  assert.equal(made.status, 201, made.text);
  assert.match((made.json() as { token: string }).token, /^cairn-enrol\./);

  assert.equal(await revokeApiToken(m.store, record.id), true);
  assert.equal((await call(m.apiUrl, 'GET', '/api/v1/whoami', { headers: { cookie } })).status, 401);
  assert.equal((await call(m.apiUrl, 'GET', '/api/v1/whoami', { headers: { authorization: `Bearer ${token}` } })).status, 401);
});

test('bodies are checked against the route\'s schema: unknown fields, wrong types, not JSON, wrong type, too large', async (t) => {
  const m = await fullMaster();
  t.after(() => m.stop());
  const { token } = await createApiToken(m.store, 'root', 'admin');
  const headers = { authorization: `Bearer ${token}` };
  const post = (body: unknown, extra: Record<string, string> = {}) => call(m.apiUrl, 'POST', '/api/v1/tokens', { body, headers: { ...headers, ...extra } });
  assert.match((await post({ name: '../x' })).text, /not a valid agent name/);
  assert.equal((await post({ name: 'ok', uses: 'many' })).status, 400);
  assert.equal((await post({ name: 'ok', admin: true })).status, 400);
  assert.equal((await post('{not json')).status, 400);
  assert.equal((await post({ name: 'ok' }, { 'content-type': 'text/plain' })).status, 415);
  assert.equal((await post({ name: 'x'.repeat(2 * 1024 * 1024) })).status, 413);
  assert.equal((await call(m.apiUrl, 'GET', '/api/v1/whoami', { headers, body: { a: 1 } })).status, 400, 'a body where none is taken');
  const ok = await post({ name: 'ok', ttl_s: 60, uses: 2 });
  assert.equal(ok.status, 201);
  const listed = await call(m.apiUrl, 'GET', '/api/v1/tokens', { headers });
  const tokens = listed.json() as { id: string; hash?: string; token?: string }[];
  assert.equal(tokens.length, 1);
  assert.equal(tokens[0]!.hash, undefined);
  assert.equal(tokens[0]!.token, undefined);
  assert.equal((await call(m.apiUrl, 'DELETE', `/api/v1/tokens/${tokens[0]!.id}`, { headers })).status, 200);
  assert.equal((await call(m.apiUrl, 'DELETE', `/api/v1/tokens/${tokens[0]!.id}`, { headers })).status, 404);
});

test('admin routes for certificates: list, revoke by serial (never by name), unknown serial 404', async (t) => {
  const m = await fullMaster();
  t.after(() => m.stop());
  const { token } = await createApiToken(m.store, 'root', 'admin');
  const headers = { authorization: `Bearer ${token}` };
  const web = await m.enrol('web-1');
  const cafe = await m.enrol('cafe');
  const list = async () => (await call(m.apiUrl, 'GET', '/api/v1/certificates', { headers })).json() as { serial: string; name: string; status: string; pem?: string }[];
  assert.deepEqual((await list()).map((c) => [c.name, c.status]).sort(), [['cafe', 'valid'], ['web-1', 'valid']]);
  assert.ok((await list()).every((c) => c.pem === undefined));
  const r = await call(m.apiUrl, 'POST', `/api/v1/certificates/${web.serial}/revoke`, { headers });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json(), { revoked: [web.serial], already: [] });
  // "cafe" is hex, but it is a name, not a serial: this route revokes serials only.
  assert.equal((await call(m.apiUrl, 'POST', '/api/v1/certificates/cafe/revoke', { headers })).status, 404);
  assert.equal((await call(m.apiUrl, 'POST', '/api/v1/certificates/web-1/revoke', { headers })).status, 400);
  assert.deepEqual(Object.fromEntries((await list()).map((c) => [c.serial, c.status])), { [web.serial]: 'revoked', [cafe.serial]: 'valid' });
  await waitUntil(() => m.master.isRevoked(web.serial), 'the master to learn of the revocation');
});

test('a route table that says something it cannot mean is refused at start', async () => {
  const { checkRouteTable } = await import('../src/daemon/master/server.ts');
  const handle = async () => ({ status: 204 });
  assert.throws(() => checkRouteTable([
    { method: 'GET', path: '/api/v1/x', listener: 'api', auth: 'viewer', handle },
    { method: 'GET', path: '/api/v1/x', listener: 'api', auth: 'admin', handle },
  ]), /there twice/);
  assert.throws(() => checkRouteTable([{ method: 'GET', path: '/v1/x', listener: 'agent', auth: 'admin', handle }]), /roles exist only on the API port/);
  assert.throws(() => checkRouteTable([{ method: 'GET', path: '/api/v1/x', listener: 'api', auth: 'certificate', handle }]), /only on the agent port/);
  assert.throws(() => checkRouteTable([{ method: 'GET', path: '/api/v1/../x', listener: 'api', auth: 'viewer', handle }]), /not a path/);
  assert.throws(() => checkRouteTable([{ method: 'GET', path: 'api/v1/x', listener: 'api', auth: 'viewer', handle }]), /not a path/);
  await assert.rejects(startMaster({ routes: [{ method: 'GET', path: '/v1/ca', listener: 'agent', auth: 'open', handle }] }), /\/v1\/ca is there twice/);
});
