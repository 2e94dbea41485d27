/**
 * The X.509 toolkit shared by the master (its CA) and the agent (its key and CSR):
 * @peculiar/x509 on Node's WebCrypto. Keys are ECDSA P-256, signatures ECDSA with SHA-256.
 */
// tsyringe, which @peculiar/x509 finds its algorithm providers through, needs the Reflect metadata API.
import 'reflect-metadata';
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };

export const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const EC_SIGNATURE = { name: 'ECDSA', hash: 'SHA-256' } as const;
/** extendedKeyUsage OIDs. */
export const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
export const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
/** PKCS#9 challengePassword: where an agent's CSR carries its enrolment token. */
export const CHALLENGE_PASSWORD = '1.2.840.113549.1.9.7';

export async function newKeyPair(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey({ ...EC_KEY }, true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** PKCS#8 PEM of a private key (what Node's TLS takes as `key`). */
export async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

export async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(pem)[0];
  if (!der) throw new Error('no PEM block in the key file');
  return (await webcrypto.subtle.importKey('pkcs8', der, { ...EC_KEY }, false, ['sign'])) as CryptoKey;
}

/** `sha256:HEX` of a certificate's DER bytes: what operators hand agents as `--ca-hash`. */
export function certificateHash(pem: string): string {
  const cert = new x509.X509Certificate(pem);
  return `sha256:${createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex')}`;
}

/**
 * A serial number the way Cairn compares them: upper-case hex without leading zeros (as Node's
 * `getPeerCertificate().serialNumber` gives it, minus any zero padding).
 */
export function normalSerial(hex: string): string {
  return hex.replace(/^0+(?=.)/, '').toUpperCase();
}

/** 128 random bits, positive and with no leading zero byte (so every encoding of it agrees). */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString('hex').toUpperCase();
}

/** A serial as typed by a person or read from the wire: hex, 1–40 digits. */
export const SERIAL_PATTERN = /^[0-9A-Fa-f]{1,40}$/;

/**
 * An agent's name: its certificate's CN and SAN, its target name, and a segment of store keys.
 * Letters, digits, `.`, `_`, `-`; starts and ends with a letter or digit; at most 64 characters.
 */
export const AGENT_NAME_PATTERN = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$/;

/** Why `name` cannot be an agent's name, or undefined when it can. */
export function agentNameProblem(name: string): string | undefined {
  if (AGENT_NAME_PATTERN.test(name)) return undefined;
  return `${JSON.stringify(name)} is not a valid agent name: use 1–64 letters, digits, '.', '_' or '-', starting and ending with a letter or digit`;
}

/** The PEM of a DER buffer of the given kind. */
export function pem(der: ArrayBuffer | Uint8Array, label: 'CERTIFICATE' | 'X509 CRL' | 'CERTIFICATE REQUEST'): string {
  return x509.PemConverter.encode(der instanceof Uint8Array ? new Uint8Array(der).buffer : der, label);
}
