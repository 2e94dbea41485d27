/**
 * Web UI users who log in with a name and password (`cairn master user add NAME --role R`). The
 * store keeps each password's scrypt hash (node:crypto) with its random salt and parameters, so
 * stronger parameters later still verify old hashes. A login for a name that does not exist
 * checks the password against a fixed dummy hash: an unknown user costs the same scrypt work as
 * a wrong password, and the answer is the same.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import type { Store } from '../../store/types.ts';
import { MASTER_KEYS, USER_NAME_PATTERN, readRecord, readRecords, userRecord, type UserRecord } from './records.ts';
import type { ApiUser } from './routes.ts';

/** scrypt's cost: N = 2^15, r = 8, p = 1 (32 MiB, OWASP's minimum for scrypt). */
export const SCRYPT_PARAMS = { N: 2 ** 15, r: 8, p: 1 } as const;
const KEY_BYTES = 32;
const MIN_PASSWORD = 8;

type PasswordHash = UserRecord['password'];

function derive(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  const options: ScryptOptions = { ...params, maxmem: 128 * params.N * params.r * 2 };
  return new Promise((resolve, reject) => scrypt(password.normalize('NFC'), salt, KEY_BYTES, options, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string): Promise<PasswordHash> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, SCRYPT_PARAMS);
  return { algorithm: 'scrypt', ...SCRYPT_PARAMS, salt: salt.toString('base64'), hash: key.toString('base64') };
}

/** Whether `password` is the one `stored` was made from (a constant-time compare). */
export async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  const expected = Buffer.from(stored.hash, 'base64');
  const key = await derive(password, Buffer.from(stored.salt, 'base64'), stored);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** Checked against when the user does not exist, so that case does the same work (made once, lazily). */
let dummy: Promise<PasswordHash> | undefined;

export function userNameProblem(name: string): string | undefined {
  return USER_NAME_PATTERN.test(name) ? undefined : 'a user name is 1-64 of a-z, 0-9, ".", "_", "-", starting with a letter';
}

export function passwordProblem(password: string): string | undefined {
  return [...password].length < MIN_PASSWORD ? `a password has at least ${MIN_PASSWORD} characters` : undefined;
}

export async function addUser(store: Store, name: string, role: ApiUser['role'], password: string, replace = false): Promise<UserRecord> {
  const problem = userNameProblem(name) ?? passwordProblem(password);
  if (problem) throw new RangeError(problem);
  const record: UserRecord = { name, role, password: await hashPassword(password), created: new Date().toISOString() };
  const key = MASTER_KEYS.user(name);
  const text = JSON.stringify(record);
  if (replace) await store.put(key, text);
  else if (!(await store.txn([{ key, target: 'exists', op: '=', value: false }], [{ put: key, value: text }])).succeeded) throw new RangeError(`user ${name} exists already (--replace sets a new password and role)`);
  return record;
}

export async function listUsers(store: Store): Promise<Omit<UserRecord, 'password'>[]> {
  return readRecords(userRecord, await store.list(MASTER_KEYS.users)).map(({ password: _password, ...rest }) => rest).sort((a, b) => a.name.localeCompare(b.name));
}

/** Removes user `name`; their sessions end at their next request. False when there was none. */
export async function removeUser(store: Store, name: string): Promise<boolean> {
  if (userNameProblem(name)) return false;
  const key = MASTER_KEYS.user(name);
  return (await store.txn([{ key, target: 'exists', op: '=', value: true }], [{ delete: key }])).succeeded;
}

export async function readUser(store: Store, name: string): Promise<UserRecord | undefined> {
  return USER_NAME_PATTERN.test(name) ? readRecord(userRecord, await store.get(MASTER_KEYS.user(name))) : undefined;
}

/**
 * The user `name` if `password` is theirs. Unknown names and wrong passwords take the same path
 * (one scrypt, one compare); `verify` is replaceable so a test can see that.
 */
export async function checkPassword(store: Store, name: string, password: string, verify = verifyPassword): Promise<ApiUser | undefined> {
  const user = await readUser(store, name);
  dummy ??= hashPassword(randomBytes(16).toString('base64'));
  const ok = await verify(password, user?.password ?? (await dummy));
  return ok && user ? { name: user.name, role: user.role } : undefined;
}

/**
 * Failed logins remembered per user name and per client address: after USER_LIMIT failures for a
 * name (or ADDRESS_LIMIT from one address: many people may share one) within WINDOW_MS, it is
 * refused (429) until its oldest failure leaves the window. Kept in memory: a master that
 * restarts forgets them, which costs an attacker a restart.
 */
export class LoginThrottle {
  static readonly USER_LIMIT = 10;
  static readonly ADDRESS_LIMIT = 50;
  static readonly WINDOW_MS = 10 * 60_000;
  private readonly failures = new Map<string, number[]>();

  constructor(private readonly now: () => number = Date.now) {}

  private recent(key: string): number[] {
    const cutoff = this.now() - LoginThrottle.WINDOW_MS;
    const kept = (this.failures.get(key) ?? []).filter((t) => t > cutoff);
    if (kept.length) this.failures.set(key, kept);
    else this.failures.delete(key);
    return kept;
  }

  private keys(user: string, address: string): [string, number][] {
    return [[`user:${user}`, LoginThrottle.USER_LIMIT], [`address:${address}`, LoginThrottle.ADDRESS_LIMIT]];
  }

  /** Seconds until `user` from `address` may try again, or 0 when they may now. */
  retryAfter(user: string, address: string): number {
    let wait = 0;
    for (const [key, limit] of this.keys(user, address)) {
      const times = this.recent(key);
      if (times.length >= limit) wait = Math.max(wait, Math.ceil((times[times.length - limit]! + LoginThrottle.WINDOW_MS - this.now()) / 1000));
    }
    return wait;
  }

  failed(user: string, address: string): void {
    for (const [key] of this.keys(user, address)) this.failures.set(key, [...this.recent(key), this.now()]);
  }
}
