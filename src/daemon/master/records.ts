/**
 * What the master keeps in the store (DESIGN §8): the certificate inventory, revocations,
 * enrolment-token and API-token hashes, and API sessions. Every key is built here from a value
 * that has passed its pattern (a serial, an agent name, a token id): wire input never becomes a
 * key unchecked. Records are JSON, read back through their zod schemas.
 */
import { z } from 'zod';
import { AGENT_NAME_PATTERN, SERIAL_PATTERN } from '../pki/x509.ts';
import type { KeyValue } from '../../store/types.ts';

export const TOKEN_ID_PATTERN = /^[0-9a-f]{16}$/;
const SESSION_KEY_PATTERN = /^[0-9a-f]{64}$/;
/** A login name for the web UI (`cairn master user add NAME`). */
export const USER_NAME_PATTERN = /^[a-z][a-z0-9._-]{0,63}$/;

function checked(pattern: RegExp, what: string, value: string): string {
  if (!pattern.test(value)) throw new Error(`not a valid ${what} for a store key: ${JSON.stringify(value)}`);
  return value;
}

const ROOT = '/cairn/master';
export const MASTER_KEYS = {
  certificates: `${ROOT}/certificates/`,
  certificate: (serial: string) => `${ROOT}/certificates/${checked(SERIAL_PATTERN, 'serial', serial)}`,
  /** The newest certificate issued to a name (its serial): who holds the name. */
  holder: (name: string) => `${ROOT}/names/${checked(AGENT_NAME_PATTERN, 'agent name', name)}`,
  revoked: `${ROOT}/revoked/`,
  revocation: (serial: string) => `${ROOT}/revoked/${checked(SERIAL_PATTERN, 'serial', serial)}`,
  enrolTokens: `${ROOT}/enrol-tokens/`,
  enrolToken: (id: string) => `${ROOT}/enrol-tokens/${checked(TOKEN_ID_PATTERN, 'token id', id)}`,
  apiTokens: `${ROOT}/api-tokens/`,
  apiToken: (id: string) => `${ROOT}/api-tokens/${checked(TOKEN_ID_PATTERN, 'token id', id)}`,
  sessions: `${ROOT}/sessions/`,
  session: (hash: string) => `${ROOT}/sessions/${checked(SESSION_KEY_PATTERN, 'session', hash)}`,
  users: `${ROOT}/users/`,
  user: (name: string) => `${ROOT}/users/${checked(USER_NAME_PATTERN, 'user name', name)}`,
};

const isoDate = z.string().datetime({ offset: true });

export const certificateRecord = z.object({
  serial: z.string().regex(SERIAL_PATTERN),
  name: z.string().regex(AGENT_NAME_PATTERN),
  not_before: isoDate,
  not_after: isoDate,
  issued: isoDate,
  /** How it was obtained: with an enrolment token, or by renewing a certificate. */
  via: z.enum(['enrol', 'renew']),
  /** sha256 (hex) of the certificate's SubjectPublicKeyInfo: a renewal must bring another key. */
  key_sha256: z.string().regex(/^[0-9a-f]{64}$/),
  pem: z.string(),
});
export type CertificateRecord = z.infer<typeof certificateRecord>;

export const revocationRecord = z.object({
  serial: z.string().regex(SERIAL_PATTERN),
  name: z.string(),
  revoked: isoDate,
  /** When the certificate would have expired: after it, the entry can be cleaned away. */
  not_after: isoDate,
});
export type RevocationRecord = z.infer<typeof revocationRecord>;

export const enrolTokenRecord = z.object({
  id: z.string().regex(TOKEN_ID_PATTERN),
  name: z.string().regex(AGENT_NAME_PATTERN),
  /** sha256 (hex) of the token's secret part; the token itself is never stored. */
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  created: isoDate,
  expires: isoDate,
  uses_left: z.number().int().positive(),
  /** The name may already hold a valid certificate: it is revoked when this token is spent. */
  replace: z.boolean(),
});
export type EnrolTokenRecord = z.infer<typeof enrolTokenRecord>;

export const apiTokenRecord = z.object({
  id: z.string().regex(TOKEN_ID_PATTERN),
  name: z.string().min(1).max(100),
  role: z.enum(['viewer', 'operator', 'admin']),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  created: isoDate,
});
export type ApiTokenRecord = z.infer<typeof apiTokenRecord>;

/** A session made from an API token (token_id) or a user's password (user). */
export const sessionRecord = z.union([
  z.object({ token_id: z.string().regex(TOKEN_ID_PATTERN), created: isoDate, expires: isoDate }),
  z.object({ user: z.string().regex(USER_NAME_PATTERN), created: isoDate, expires: isoDate }),
]);
export type SessionRecord = z.infer<typeof sessionRecord>;

/** A web UI user: the scrypt hash of their password with its salt and parameters, never the password. */
export const userRecord = z.object({
  name: z.string().regex(USER_NAME_PATTERN),
  role: z.enum(['viewer', 'operator', 'admin']),
  password: z.object({
    algorithm: z.literal('scrypt'),
    N: z.number().int().positive(),
    r: z.number().int().positive(),
    p: z.number().int().positive(),
    salt: z.string().min(1),
    hash: z.string().min(1),
  }),
  created: isoDate,
});
export type UserRecord = z.infer<typeof userRecord>;

/** A stored record through its schema; undefined (never a crash) when it is not what Cairn wrote. */
export function readRecord<T>(schema: z.ZodType<T>, kv: KeyValue | undefined): T | undefined {
  if (!kv) return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(kv.value.toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function readRecords<T>(schema: z.ZodType<T>, kvs: KeyValue[]): T[] {
  return kvs.map((kv) => readRecord(schema, kv)).filter((r): r is T => r !== undefined);
}
