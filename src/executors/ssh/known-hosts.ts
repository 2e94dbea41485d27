/**
 * OpenSSH's known_hosts, read and appended the way `ssh` does: plain and hashed (`|1|salt|hmac`)
 * host names, `[host]:port` for other ports than 22, patterns with `*`, `?` and `!`, and
 * `@revoked` lines. Pure functions over the file's text, so they are tested without a server.
 */
import { createHash, createHmac } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface KnownKey {
  type: string;
  /** The key blob, base64, as in the file. */
  key: string;
  revoked: boolean;
  line: number;
}

/** How a host's name is written in known_hosts. */
export function hostEntryName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

function hashedMatches(entry: string, name: string): boolean {
  const [, magic, salt, hash] = entry.split('|');
  if (magic !== '1' || !salt || !hash) return false;
  return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
}

/**
 * Do OpenSSH host patterns (`*`, `?`, `!negation`, and in known_hosts hashed `|1|` names) name
 * `name`? A matching negation excludes it. Shared by known_hosts and ~/.ssh/config.
 */
export function hostPatternsMatch(patterns: string[], name: string): boolean {
  let matched = false;
  for (const p of patterns) {
    if (p.startsWith('|')) {
      if (hashedMatches(p, name)) matched = true;
    } else if (p.startsWith('!')) {
      if (globToRegExp(p.slice(1)).test(name)) return false;
    } else if (globToRegExp(p).test(name)) matched = true;
  }
  return matched;
}

/** The keys known_hosts lists for `host` on `port` (certificate authorities are not supported). */
export function keysFor(text: string, host: string, port: number): KnownKey[] {
  const name = hostEntryName(host, port);
  const out: KnownKey[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let revoked = false;
    if (fields[0]!.startsWith('@')) {
      const marker = fields.shift()!;
      if (marker === '@revoked') revoked = true;
      else return;
    }
    const [patterns, type, key] = fields;
    if (!patterns || !type || !key) return;
    if (revoked || hostPatternsMatch(patterns.split(','), name)) out.push({ type, key, revoked, line: i + 1 });
  });
  return out;
}

/** The key type named inside an SSH public key blob. */
export function keyType(blob: Buffer): string {
  const length = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + length).toString('latin1');
}

/** `SHA256:…`, the fingerprint `ssh` and `ssh-keygen -l` print. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

export type HostKeyVerdict =
  | { kind: 'known' }
  | { kind: 'unknown' }
  | { kind: 'changed'; line: number }
  | { kind: 'revoked'; line: number };

/** Checks a server's key against what known_hosts says about this host. */
export function verifyHostKey(text: string, host: string, port: number, blob: Buffer): HostKeyVerdict {
  const offered = blob.toString('base64');
  const entries = keysFor(text, host, port);
  const revoked = entries.find((e) => e.revoked && e.key === offered);
  if (revoked) return { kind: 'revoked', line: revoked.line };
  const forHost = entries.filter((e) => !e.revoked);
  if (forHost.some((e) => e.key === offered)) return { kind: 'known' };
  const type = keyType(blob);
  const sameType = forHost.find((e) => e.type === type);
  // A host known by a key of another type only: OpenSSH refuses too, rather than trust a new key.
  if (sameType ?? forHost[0]) return { kind: 'changed', line: (sameType ?? forHost[0])!.line };
  return { kind: 'unknown' };
}

/** Host key algorithms to offer, those this host is known by first (as `ssh` orders them). */
export function preferredHostKeyAlgorithms(text: string, host: string, port: number): string[] {
  const all = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
  const known = new Set(keysFor(text, host, port).filter((k) => !k.revoked).map((k) => k.type));
  const isKnown = (alg: string) => known.has(alg) || (alg.startsWith('rsa-sha2-') && known.has('ssh-rsa'));
  return [...all.filter(isKnown), ...all.filter((a) => !isKnown(a))];
}

export function readKnownHosts(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Records a host's key, as `ssh -o StrictHostKeyChecking=accept-new` does. */
export function addKnownHost(path: string, host: string, port: number, blob: Buffer): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const existing = readKnownHosts(path);
  const prefix = existing && !existing.endsWith('\n') ? '\n' : '';
  // One write with O_APPEND: targets accepted in parallel never interleave their lines.
  appendFileSync(path, `${prefix}${hostEntryName(host, port)} ${keyType(blob)} ${blob.toString('base64')}\n`, { mode: 0o600 });
}
