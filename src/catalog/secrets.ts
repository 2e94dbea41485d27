/**
 * `!secret` values (DESIGN §4a): opened with the age identity in CAIRN_SECRET_KEY_FILE before a
 * compile, put in place of their markers by the compile, and remembered per compile so that any
 * attribute rendered from one is marked sensitive (§5.13). age-encryption is loaded only for a
 * site that has a secret.
 */
import { readFileSync } from 'node:fs';
import type { Diagnostics } from '../lib/errors.ts';
import { keyPosOf, posOf, recordPositions, type PosInfo } from '../lib/positions.ts';
import { isSecretValue, type SecretValue } from '../lib/secret-value.ts';
import type { Catalog } from './catalog.ts';

export const KEY_FILE_VARIABLE = 'CAIRN_SECRET_KEY_FILE';

/** Every `!secret` in the data under `value`. */
export function secretsIn(value: unknown, out: SecretValue[] = []): SecretValue[] {
  if (isSecretValue(value)) out.push(value);
  else if (Array.isArray(value)) for (const v of value) secretsIn(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) secretsIn(v, out);
  return out;
}

/** The vars layers of a site: wherever a `!secret` may be used. */
function varLayers(c: Catalog): unknown[] {
  return [
    ...[...c.components.values()].map((comp) => comp.defaults),
    ...c.allVars,
    ...[...c.roles.values()].map((r) => r.vars),
    ...[...c.groups.values()].flatMap((g) => [g.vars, g.varsFile?.doc]),
    ...[...c.targets.values()].map((t) => t.vars),
    ...[...c.targetVarsFiles.values()].map((f) => f.doc),
  ];
}

/** The identities in an age identity file: its `AGE-SECRET-KEY-1…` lines. */
export function readIdentities(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  return text.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('AGE-SECRET-KEY-'));
}

/** Decrypts one armored age ciphertext with `identities`. */
export async function decryptText(ciphertext: string, identities: string[]): Promise<string> {
  const { Decrypter, armor } = await import('age-encryption');
  const d = new Decrypter();
  for (const id of identities) d.addIdentity(id);
  return d.decrypt(armor.decode(ciphertext.trim()), 'text');
}

/** Encrypts `plain` to `recipients` (age1… public keys), armored. */
export async function encryptText(plain: string, recipients: string[]): Promise<string> {
  const { Encrypter, armor } = await import('age-encryption');
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  return armor.encode(await e.encrypt(plain));
}

/**
 * Opens every `!secret` of the site's vars with the key file named by CAIRN_SECRET_KEY_FILE,
 * leaving each value's plaintext or its problem on it. Nothing fails here: a value no target
 * uses need not open (an agent holds only its own key), so the compile reports those it reaches.
 */
export async function unlockSecrets(c: Catalog, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const found = varLayers(c).flatMap((layer) => secretsIn(layer)).filter((s) => s.plain === undefined && s.problem === undefined);
  if (found.length === 0) return;
  const keyFile = env[KEY_FILE_VARIABLE];
  let identities: string[] = [];
  let problem: string | undefined;
  if (!keyFile) problem = `cannot decrypt this secret: ${KEY_FILE_VARIABLE} is not set`;
  else {
    try {
      identities = readIdentities(keyFile);
      if (identities.length === 0) problem = `cannot decrypt this secret: ${keyFile} holds no AGE-SECRET-KEY-1… identity`;
    } catch (err) {
      problem = `cannot decrypt this secret: cannot read ${KEY_FILE_VARIABLE} ${keyFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
  }
  for (const s of found) {
    if (problem) {
      s.problem = problem;
      continue;
    }
    try {
      s.plain = await decryptText(s.ciphertext, identities);
    } catch (err) {
      s.problem = `cannot decrypt this secret with ${keyFile}: ${(err as Error).message}`;
    }
  }
}

/**
 * `vars` with every `!secret` replaced by its plaintext, each of which is added to `plain`; one
 * that did not open is an error at its position. Maps and lists holding a secret are copied
 * (positions with them), never changed: the catalog is shared by every target's compile.
 */
export function revealSecrets<T>(value: T, d: Diagnostics, plain: Set<string>): T {
  if (isSecretValue(value)) {
    if (value.plain !== undefined) {
      plain.add(value.plain);
      return value.plain as T;
    }
    d.add(value.problem ?? 'this secret was not decrypted (unlockSecrets was not called before compile)', value.pos,
      { hint: `encrypt it to this target's recipients in secrets.yaml (cairn secret encrypt --for …) and set ${KEY_FILE_VARIABLE}` });
    return value;
  }
  if (!value || typeof value !== 'object') return value;
  if (secretsIn(value).length === 0) return value;
  const copy: unknown = Array.isArray(value)
    ? value.map((v: unknown) => revealSecrets(v, d, plain))
    : Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revealSecrets(v, d, plain)]));
  copyPositions(value as object, copy as object);
  return copy as T;
}

function copyPositions(from: object, to: object): void {
  const keys = Array.isArray(from) ? from.map((_, i) => i) : Object.keys(from);
  const info: PosInfo = { keys: new Map(), values: new Map() };
  for (const k of keys) {
    const p = posOf(from, k);
    if (p) info.values.set(k, p);
    const kp = typeof k === 'string' ? keyPosOf(from, k) : undefined;
    if (kp) info.keys.set(k, kp);
  }
  const self = posOf(from);
  if (self) info.self = self;
  recordPositions(to, info);
}

/** Attributes whose value (at any depth) contains one of `plain`'s texts. */
export function attributesRevealing(attributes: Record<string, unknown>, plain: ReadonlySet<string>): string[] {
  if (plain.size === 0) return [];
  const reveals = (v: unknown): boolean => {
    if (typeof v === 'string') {
      for (const p of plain) if (p !== '' && v.includes(p)) return true;
      return false;
    }
    if (Array.isArray(v)) return v.some(reveals);
    if (v && typeof v === 'object') return Object.values(v).some(reveals);
    return false;
  };
  return Object.keys(attributes).filter((k) => reveals(attributes[k]));
}
