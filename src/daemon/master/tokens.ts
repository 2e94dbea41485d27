/**
 * Tokens (DESIGN §9). An enrolment token lets one agent name get its first certificate; an API
 * token lets a person or program use the API with a role. Both are `<kind>.<id>.<secret>`: the
 * store keeps the id and a sha256 of the secret (256 random bits, so a fast hash is enough), never
 * the token, which is printed once when it is made.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Store } from '../../store/types.ts';
import { agentNameProblem } from '../pki/x509.ts';
import {
  MASTER_KEYS, apiTokenRecord, enrolTokenRecord, readRecord, readRecords, type ApiTokenRecord, type EnrolTokenRecord,
} from './records.ts';
import type { ApiUser, Role } from './routes.ts';

export const ENROL_TOKEN_PATTERN = /^cairn-enrol\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;
export const API_TOKEN_PATTERN = /^cairn-api\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$/;

export function secretHash(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Whether `secret` hashes to `hash`, in constant time. */
export function secretMatches(secret: string, hash: string): boolean {
  const a = Buffer.from(secretHash(secret), 'hex');
  const b = Buffer.from(hash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

function newToken(kind: 'cairn-enrol' | 'cairn-api'): { token: string; id: string; hash: string } {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { token: `${kind}.${id}.${secret}`, id, hash: secretHash(secret) };
}

export interface EnrolTokenOptions {
  name: string;
  ttlSeconds: number;
  uses: number;
  replace: boolean;
}

export class TokenInputError extends Error {
  readonly exitCode = 2;
}

export async function createEnrolToken(store: Store, options: EnrolTokenOptions, now = new Date()): Promise<{ token: string; record: EnrolTokenRecord }> {
  const problem = agentNameProblem(options.name);
  if (problem) throw new TokenInputError(problem);
  if (!Number.isSafeInteger(options.uses) || options.uses < 1) throw new TokenInputError('--uses must be a whole number, 1 or more');
  if (!(options.ttlSeconds > 0)) throw new TokenInputError('--ttl must be longer than 0');
  const { token, id, hash } = newToken('cairn-enrol');
  const record: EnrolTokenRecord = {
    id, name: options.name, hash, created: now.toISOString(),
    expires: new Date(now.getTime() + options.ttlSeconds * 1000).toISOString(),
    uses_left: options.uses, replace: options.replace,
  };
  await store.put(MASTER_KEYS.enrolToken(id), JSON.stringify(record));
  return { token, record };
}

export async function listEnrolTokens(store: Store): Promise<EnrolTokenRecord[]> {
  return readRecords(enrolTokenRecord, await store.list(MASTER_KEYS.enrolTokens));
}

/** Deletes an enrolment token by id (or by the whole token); false when there was none. */
export async function revokeEnrolToken(store: Store, idOrToken: string): Promise<boolean> {
  const id = ENROL_TOKEN_PATTERN.exec(idOrToken)?.[1] ?? idOrToken;
  if (!/^[0-9a-f]{16}$/.test(id)) return false;
  const key = MASTER_KEYS.enrolToken(id);
  const r = await store.txn([{ key, target: 'exists', op: '=', value: true }], [{ delete: key }]);
  return r.succeeded;
}

export async function createApiToken(store: Store, name: string, role: Role, now = new Date()): Promise<{ token: string; record: ApiTokenRecord }> {
  if (name.trim() === '' || name.length > 100) throw new TokenInputError('an API token needs a --name of 1–100 characters');
  const { token, id, hash } = newToken('cairn-api');
  const record: ApiTokenRecord = { id, name, role, hash, created: now.toISOString() };
  await store.put(MASTER_KEYS.apiToken(id), JSON.stringify(record));
  return { token, record };
}

export async function listApiTokens(store: Store): Promise<ApiTokenRecord[]> {
  return readRecords(apiTokenRecord, await store.list(MASTER_KEYS.apiTokens));
}

export async function revokeApiToken(store: Store, idOrToken: string): Promise<boolean> {
  const id = API_TOKEN_PATTERN.exec(idOrToken)?.[1] ?? idOrToken;
  if (!/^[0-9a-f]{16}$/.test(id)) return false;
  const key = MASTER_KEYS.apiToken(id);
  const r = await store.txn([{ key, target: 'exists', op: '=', value: true }], [{ delete: key }]);
  return r.succeeded;
}

/** The API user a bearer token stands for, with its record's id; undefined for any token that is not live. */
export async function apiTokenUser(store: Store, token: string): Promise<{ user: ApiUser; id: string } | undefined> {
  const m = API_TOKEN_PATTERN.exec(token);
  if (!m) return undefined;
  const record = readRecord(apiTokenRecord, await store.get(MASTER_KEYS.apiToken(m[1]!)));
  if (!record || !secretMatches(m[2]!, record.hash)) return undefined;
  return { user: { name: record.name, role: record.role }, id: record.id };
}
