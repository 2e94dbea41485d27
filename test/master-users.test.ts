/**
 * Web UI users (src/daemon/master/users.ts): scrypt hashes with their salt and parameters, the
 * same path for an unknown user as for a wrong password, the failed-login throttle, and the
 * login route against a real master: refused, accepted, the role enforced, throttled; and
 * `cairn master user add|list|remove` with the password on stdin.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { masterParts } from '../src/cli/master.ts';
import { addUser, checkPassword, hashPassword, listUsers, LoginThrottle, removeUser, SCRYPT_PARAMS, verifyPassword } from '../src/daemon/master/users.ts';
import { MASTER_KEYS } from '../src/daemon/master/records.ts';
import { openStore } from '../src/store/index.ts';
import { CAIRN, tempDir } from './helpers/cli.ts';
import { call, startMaster } from './helpers/master.ts';

test('a password hash is scrypt with a random salt and its parameters; the password verifies, another does not', async () => {
  const a = await hashPassword('correct horse');
  const b = await hashPassword('correct horse');
  assert.equal(a.algorithm, 'scrypt');
  assert.deepEqual([a.N, a.r, a.p], [SCRYPT_PARAMS.N, SCRYPT_PARAMS.r, SCRYPT_PARAMS.p]);
  assert.notEqual(a.salt, b.salt, 'a fresh salt each time');
  assert.notEqual(a.hash, b.hash);
  assert.equal(await verifyPassword('correct horse', a), true);
  assert.equal(await verifyPassword('correct horsE', a), false);
  assert.equal(await verifyPassword('', a), false);
  // The parameters stored with a hash are the ones used to verify it (older, cheaper ones too).
  const cheap = { ...a, N: 2 ** 10 };
  assert.equal(await verifyPassword('correct horse', cheap), false, 'other parameters derive another key');
});

test('a store keeps the hash, never the password; an unknown user takes the same path as a wrong password', async (t) => {
  const dir = tempDir('cairn-users-');
  const store = await openStore(`sqlite:${join(dir, 'store.db')}`);
  t.after(() => store.close());
  await addUser(store, 'alice', 'operator', 'alice-password-1');
  const stored = (await store.get(MASTER_KEYS.user('alice')))!.value.toString('utf8');
  assert.equal(stored.includes('alice-password-1'), false);
  await assert.rejects(addUser(store, 'alice', 'admin', 'another-password'), /exists already/);
  await assert.rejects(addUser(store, 'Bob!', 'admin', 'another-password'), /user name/);
  await assert.rejects(addUser(store, 'bob', 'admin', 'short'), /at least 8/);

  let verified = 0;
  const counting: typeof verifyPassword = async (password, hash) => {
    verified++;
    return verifyPassword(password, hash);
  };
  assert.deepEqual(await checkPassword(store, 'alice', 'alice-password-1', counting), { name: 'alice', role: 'operator' });
  assert.equal(verified, 1);
  assert.equal(await checkPassword(store, 'alice', 'wrong-password', counting), undefined);
  assert.equal(verified, 2);
  assert.equal(await checkPassword(store, 'nobody', 'alice-password-1', counting), undefined);
  assert.equal(verified, 3, 'an unknown user still runs one scrypt verify (against a dummy hash)');
  assert.equal(await checkPassword(store, '../etc', 'alice-password-1', counting), undefined);
  assert.equal(verified, 4, 'so does a name that could never exist');

  await addUser(store, 'alice', 'admin', 'alice-password-2', true);
  assert.deepEqual((await listUsers(store)).map((u) => [u.name, u.role]), [['alice', 'admin']]);
  assert.equal(await removeUser(store, 'alice'), true);
  assert.equal(await removeUser(store, 'alice'), false);
  assert.deepEqual(await listUsers(store), []);
});

test('the login throttle refuses a name after 10 failures, an address after 50, within 10 minutes, until the failures leave the window', () => {
  let now = 1_000_000;
  const throttle = new LoginThrottle(() => now);
  for (let i = 0; i < LoginThrottle.USER_LIMIT - 1; i++) {
    throttle.failed('alice', '10.0.0.1');
    now += 1000;
  }
  assert.equal(throttle.retryAfter('alice', '10.0.0.1'), 0);
  throttle.failed('alice', '10.0.0.1');
  assert.equal(throttle.retryAfter('alice', '10.0.0.2'), 600 - 9, 'the name is held, from any address');
  assert.equal(throttle.retryAfter('bob', '10.0.0.1'), 0, 'ten failures do not hold the address');
  for (let i = 0; i < LoginThrottle.ADDRESS_LIMIT - LoginThrottle.USER_LIMIT; i++) throttle.failed(`user${i}`, '10.0.0.1');
  assert.equal(throttle.retryAfter('bob', '10.0.0.1'), 600 - 9, 'fifty do, for any name');
  assert.equal(throttle.retryAfter('bob', '10.0.0.2'), 0);
  now += (600 - 9) * 1000;
  assert.equal(throttle.retryAfter('alice', '10.0.0.1'), 0, 'the oldest failures have left the window');
});

test('route: POST /api/v1/login with a user and password: refused, accepted (session cookie), the role enforced, removal ends the session, throttled', async (t) => {
  const dir = tempDir('cairn-user-routes-');
  const store = await openStore(`sqlite:${join(dir, 'store.db')}`);
  const m = await startMaster({ store, ...(await masterParts(store)) });
  t.after(async () => {
    await m.stop();
    await store.close();
  });
  await addUser(store, 'vera', 'viewer', 'vera-password-1');
  const origin = `https://127.0.0.1:${m.master.apiPort}`;
  const login = (user: string, password: string) => call(m.apiUrl, 'POST', '/api/v1/login', { body: { user, password }, headers: { origin } });

  assert.equal((await call(m.apiUrl, 'POST', '/api/v1/login', { body: { user: 'vera', password: 'vera-password-1' } })).status, 403, 'no Origin');
  const wrong = await login('vera', 'not-her-password');
  assert.equal(wrong.status, 401);
  const unknown = await login('nobody', 'vera-password-1');
  assert.equal(unknown.status, 401);
  assert.deepEqual(unknown.json(), wrong.json(), 'the same answer for an unknown user and a wrong password');
  assert.equal((await call(m.apiUrl, 'POST', '/api/v1/login', { body: { user: 'vera', password: 'x', token: 'y' }, headers: { origin } })).status, 400);

  const ok = await login('vera', 'vera-password-1');
  assert.equal(ok.status, 200, ok.text);
  const setCookie = String(ok.headers['set-cookie']);
  for (const attribute of ['HttpOnly', 'Secure', 'SameSite=Strict']) assert.ok(setCookie.includes(attribute), setCookie);
  const cookie = setCookie.split(';')[0]!;
  assert.deepEqual((await call(m.apiUrl, 'GET', '/api/v1/whoami', { headers: { cookie } })).json(), { name: 'vera', role: 'viewer' });
  assert.equal((await call(m.apiUrl, 'GET', '/api/v1/targets', { headers: { cookie } })).status, 200);
  assert.equal((await call(m.apiUrl, 'POST', '/api/v1/runs', { body: { mode: 'apply', targets: ['web1'] }, headers: { cookie, origin } })).status, 403, 'a viewer starts no run');
  assert.equal((await call(m.apiUrl, 'GET', '/api/v1/certificates', { headers: { cookie } })).status, 403);
  // A new role applies to the session at once; removing the user ends it.
  await addUser(store, 'vera', 'admin', 'vera-password-1', true);
  assert.equal((await call(m.apiUrl, 'GET', '/api/v1/certificates', { headers: { cookie } })).status, 200);
  assert.equal(await removeUser(store, 'vera'), true);
  assert.equal((await call(m.apiUrl, 'GET', '/api/v1/whoami', { headers: { cookie } })).status, 401);

  // Throttled: after 10 failures for a name, even the right password is refused (429) before any check.
  await addUser(store, 'otto', 'operator', 'otto-password-1');
  for (let i = 0; i < LoginThrottle.USER_LIMIT; i++) assert.equal((await login('otto', `guess-${i}`)).status, 401);
  const held = await login('otto', 'otto-password-1');
  assert.equal(held.status, 429);
  assert.match(String(held.headers['retry-after']), /^\d+$/);
});

test('cairn master user add reads the password from stdin (never argv); list and remove', () => {
  const dir = tempDir('cairn-user-cli-');
  const store = `sqlite:${join(dir, 'store.db')}`;
  const cairn = (args: string[], input = '') => spawnSync(process.execPath, [CAIRN, 'master', 'user', ...args, '--store', store], { input, encoding: 'utf8' });
  const added = cairn(['add', 'carol', '--role', 'operator'], 'carol-password-1\n');
  assert.equal(added.status, 0, added.stderr);
  assert.equal(cairn(['add', 'carol', '--role', 'admin'], 'carol-password-2\n').status, 2, 'exists already');
  const short = cairn(['add', 'dave', '--role', 'viewer'], 'short\n');
  assert.equal(short.status, 2);
  assert.match(short.stderr, /at least 8 characters/);
  assert.equal(cairn(['add', 'Dave!', '--role', 'viewer'], 'long-enough-1\n').status, 2);
  const listed = cairn(['list', '--json']);
  assert.equal(listed.status, 0, listed.stderr);
  assert.deepEqual((JSON.parse(listed.stdout) as { name: string; role: string; password?: unknown }[]).map((u) => [u.name, u.role, u.password]), [['carol', 'operator', undefined]]);
  assert.equal(cairn(['remove', 'carol']).status, 0);
  assert.equal(cairn(['remove', 'carol']).status, 2);
});
