/**
 * Who calls the API port: a bearer API token (`Authorization: Bearer cairn-api.…`) or a session
 * cookie a login made from one, or from a user's name and password (users.ts). Sessions live in the store (any master of the fleet accepts
 * them) under the sha256 of their id, and end with their token: revoking an API token logs out
 * its sessions at their next request.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Store } from '../../store/types.ts';
import { MASTER_KEYS, apiTokenRecord, readRecord, sessionRecord } from './records.ts';
import type { Caller } from './router.ts';
import { apiTokenUser } from './tokens.ts';
import { checkPassword, readUser } from './users.ts';

export const SESSION_COOKIE = 'cairn_session';
export const SESSION_HOURS = 12;
const SESSION_ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

function sessionKey(id: string): string {
  return MASTER_KEYS.session(createHash('sha256').update(id, 'utf8').digest('hex'));
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export async function apiCaller(store: Store, req: IncomingMessage): Promise<Caller> {
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    const m = /^Bearer\s+(\S+)$/i.exec(auth);
    const found = m ? await apiTokenUser(store, m[1]!) : undefined;
    return found ? { user: found.user, via: 'bearer' } : {};
  }
  const id = cookie(req, SESSION_COOKIE);
  if (id === undefined || !SESSION_ID_PATTERN.test(id)) return {};
  const session = readRecord(sessionRecord, await store.get(sessionKey(id)));
  if (!session || Date.parse(session.expires) <= Date.now()) return {};
  if ('user' in session) {
    // Removing the user (or a new role for them) takes effect at the session's next request.
    const user = await readUser(store, session.user);
    return user ? { user: { name: user.name, role: user.role }, via: 'cookie' } : {};
  }
  const token = readRecord(apiTokenRecord, await store.get(MASTER_KEYS.apiToken(session.token_id)));
  return token ? { user: { name: token.name, role: token.role }, via: 'cookie' } : {};
}

async function startSession(store: Store, holder: { token_id: string } | { user: string }): Promise<string> {
  const id = randomBytes(32).toString('base64url');
  const now = Date.now();
  const expires = new Date(now + SESSION_HOURS * 3_600_000);
  await store.put(sessionKey(id), JSON.stringify({ ...holder, created: new Date(now).toISOString(), expires: expires.toISOString() }));
  return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=${SESSION_HOURS * 3600}`;
}

/** Starts a session for the API token `token`; its Set-Cookie value, or undefined for a token that is not live. */
export async function login(store: Store, token: string): Promise<{ setCookie: string; name: string; role: string } | undefined> {
  const found = await apiTokenUser(store, token);
  if (!found) return undefined;
  return { setCookie: await startSession(store, { token_id: found.id }), name: found.user.name, role: found.user.role };
}

/** Starts a session for user `name` if `password` is theirs (users.ts); undefined otherwise. */
export async function passwordLogin(store: Store, name: string, password: string): Promise<{ setCookie: string; name: string; role: string } | undefined> {
  const user = await checkPassword(store, name, password);
  if (!user) return undefined;
  return { setCookie: await startSession(store, { user: user.name }), name: user.name, role: user.role };
}

/** Ends the request's session (if it has one); the Set-Cookie value that clears it. */
export async function logout(store: Store, req: IncomingMessage | { headers: IncomingMessage['headers'] }): Promise<string> {
  const id = cookie(req as IncomingMessage, SESSION_COOKIE);
  if (id !== undefined && SESSION_ID_PATTERN.test(id)) await store.delete(sessionKey(id));
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0`;
}
