/**
 * Revocation (DESIGN §9): the serial written to the store reaches every master watching it; a
 * live WebSocket of that certificate is closed with 4401, a reconnect is refused at the handshake
 * or upgrade, its requests are refused, the CRL lists it; other agents carry on.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { WebSocket } from 'ws';
import type { AgentSocketHandler } from '../src/daemon/master/agent-sockets.ts';
import { revoke } from '../src/daemon/master/revocation.ts';
import { openStore } from '../src/store/index.ts';
import { tempDir } from './helpers/cli.ts';
import { etcdUnavailable, opensslUnavailable, startEtcdCluster } from './helpers/etcd.ts';
import { call, closed, connectAgent, startMaster } from './helpers/master.ts';
import { waitUntil } from './helpers/wait.ts';

/** A handler that answers each message with the agent's name, so a test can see a socket is served. */
const echo: AgentSocketHandler = (socket, identity) => {
  socket.on('message', (data) => socket.send(`${identity.name}:${String(data)}`));
};

function ask(ws: WebSocket, text: string): Promise<string> {
  return new Promise((resolve) => {
    ws.once('message', (data) => resolve(String(data)));
    ws.send(text);
  });
}

/** Whether a fresh connection with these credentials is refused (at the handshake or the upgrade). */
async function refused(agentUrl: string, creds: { cert: string; key: string; ca: string }): Promise<string | undefined> {
  try {
    const ws = await connectAgent(agentUrl, creds);
    ws.terminate();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

test('revoking a certificate closes its open WebSocket with 4401 and refuses it after; another agent carries on', async (t) => {
  const m = await startMaster({ onAgentSocket: echo });
  t.after(() => m.stop());
  const web = await m.enrol('web-1');
  const db = await m.enrol('db-1');
  const webSocket = await connectAgent(m.agentUrl, web);
  const dbSocket = await connectAgent(m.agentUrl, db);
  assert.equal(await ask(webSocket, 'hi'), 'web-1:hi');
  assert.equal(await ask(dbSocket, 'hi'), 'db-1:hi');

  const webClosed = closed(webSocket);
  assert.deepEqual(await revoke(m.store, web.serial), { revoked: [web.serial], already: [] });
  assert.deepEqual(await webClosed, { code: 4401, reason: 'certificate revoked' });

  assert.ok(await refused(m.agentUrl, web), 'a revoked certificate must not connect again');
  const crl = await call(m.agentUrl, 'GET', '/v1/crl', { ca: web.ca, cert: web.cert, key: web.key }).catch((err: Error) => err);
  assert.ok(crl instanceof Error || crl.status === 401, 'a revoked certificate makes no request');
  // The other agent's socket was not touched, and it still connects.
  assert.equal(await ask(dbSocket, 'still'), 'db-1:still');
  assert.equal(await refused(m.agentUrl, db), undefined);
  assert.deepEqual(await revoke(m.store, web.serial), { revoked: [], already: [web.serial] });
  dbSocket.close();
});

test('the CRL lists a revoked serial and OpenSSL rejects that certificate with it', { skip: opensslUnavailable() }, async (t) => {
  const m = await startMaster();
  t.after(() => m.stop());
  const web = await m.enrol('web-1');
  const db = await m.enrol('db-1');
  await revoke(m.store, 'web-1');
  await waitUntil(() => m.master.isRevoked(web.serial), 'the master to learn of the revocation');
  await waitUntil(async () => {
    const r = await call(m.agentUrl, 'GET', '/v1/crl', { ca: db.ca, cert: db.cert, key: db.key });
    return r.status === 200 && spawnSync('openssl', ['crl', '-noout', '-text'], { input: r.text, encoding: 'utf8' }).stdout.includes(web.serial);
  }, 'the CRL to list the revoked serial');
  const dir = tempDir('cairn-crl-');
  writeFileSync(join(dir, 'crl.pem'), (await call(m.agentUrl, 'GET', '/v1/crl', { ca: db.ca, cert: db.cert, key: db.key })).text);
  writeFileSync(join(dir, 'ca.pem'), m.master.ca.pem);
  writeFileSync(join(dir, 'web.pem'), web.cert);
  writeFileSync(join(dir, 'db.pem'), db.cert);
  const verify = (f: string) => spawnSync('openssl', ['verify', '-crl_check', '-CRLfile', 'crl.pem', '-CAfile', 'ca.pem', f], { cwd: dir, encoding: 'utf8' });
  assert.match(verify('web.pem').stdout + verify('web.pem').stderr, /certificate revoked/);
  assert.equal(verify('db.pem').status, 0);
  const next = spawnSync('openssl', ['crl', '-in', 'crl.pem', '-noout', '-nextupdate'], { cwd: dir, encoding: 'utf8' }).stdout;
  assert.ok(Date.parse(next.replace(/^nextUpdate=/, '')) > Date.now(), next);
});

for (const backend of ['sqlite', 'etcd'] as const) {
  const skip = backend === 'etcd' ? etcdUnavailable() : undefined;
  if (skip) console.log(`# SKIPPED revocation across masters on etcd: ${skip}`);
  test(`a revocation written through one master closes the socket held by another master of the same store (${backend})`, { skip }, async (t) => {
    const dir = tempDir('cairn-two-');
    let url = `sqlite:${join(dir, 'store.db')}`;
    if (backend === 'etcd') {
      const cluster = await startEtcdCluster(1);
      t.after(() => cluster.stop());
      url = cluster.url;
    }
    const a = await startMaster({ storeUrl: url, onAgentSocket: echo });
    t.after(() => a.stop());
    const bState = join(dir, 'b-state');
    cpSync(join(a.dir, 'state'), bState, { recursive: true });
    const bStore = await openStore(url);
    const b = await startMaster({ store: bStore, stateDir: bState, onAgentSocket: echo });
    t.after(async () => {
      await b.stop();
      await bStore.close();
    });
    const web = await a.enrol('web-1');
    const onB = await connectAgent(b.agentUrl, web);
    assert.equal(await ask(onB, 'x'), 'web-1:x');
    const gone = closed(onB);
    await revoke(a.store, web.serial);
    assert.equal((await gone).code, 4401);
    assert.ok(await refused(b.agentUrl, web));
  });
}

test('without an agent-protocol handler a socket is closed with 4503; shutting down closes sockets with 4503', async (t) => {
  const bare = await startMaster();
  t.after(() => bare.stop());
  const web = await bare.enrol('web-1');
  const ws = await connectAgent(bare.agentUrl, web);
  assert.equal((await closed(ws)).code, 4503);

  const served = await startMaster({ onAgentSocket: echo });
  const db = await served.enrol('db-1');
  const live = await connectAgent(served.agentUrl, db);
  const end = closed(live);
  await served.stop();
  assert.deepEqual(await end, { code: 4503, reason: 'master shutting down' });
});

test('the CRL is replaced before its nextUpdate: agents still connect after the first CRL would have run out', async (t) => {
  const { x509 } = await import('../src/daemon/pki/x509.ts');
  const m = await startMaster({ onAgentSocket: echo, crl: { validMs: 3000, refreshMs: 300 } });
  t.after(() => m.stop());
  const web = await m.enrol('web-1');
  const first = new x509.X509Crl(m.master.crl());
  const firstEnd = first.nextUpdate!.getTime();
  assert.ok(firstEnd > Date.now());
  await waitUntil(() => Date.now() > firstEnd, 'the first CRL to run out');
  const now = new x509.X509Crl(m.master.crl());
  assert.ok(now.nextUpdate!.getTime() > Date.now(), 'the CRL served now is current');
  const ws = await connectAgent(m.agentUrl, web);
  assert.equal(await ask(ws, 'late'), 'web-1:late');
  ws.close();
});
