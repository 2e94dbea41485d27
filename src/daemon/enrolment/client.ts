/**
 * The agent's side of enrolment and renewal (DESIGN §9): it fetches the master's CA and checks it
 * against the hash the operator gave (so a man in the middle cannot slip in its own CA), makes a
 * P-256 key that never leaves the machine, and sends a CSR (CN = its name, the enrolment token as
 * the CSR's challengePassword attribute) to `POST /v1/enrol`. The certificate, key and CA are kept
 * in the agent's folder:
 *
 *   DIR/enrolment.json      {master, name, serial, not_after, ca_hash}: written last, atomically,
 *                           so it always names a complete key and certificate pair
 *   DIR/key-SERIAL.pem      the private key (0600)
 *   DIR/cert-SERIAL.pem     its certificate
 *   DIR/ca.pem              the master's CA
 *
 * Renewal (`renewCertificate`) does the same over mutual TLS with the current certificate and a
 * new key, then switches enrolment.json to the new pair and removes the old one.
 */
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { z } from 'zod';
import { ExitCode } from '../../lib/errors.ts';
import { privateDir, PRIVATE_FILE } from '../../lib/private-files.ts';
import {
  EC_SIGNATURE, SERIAL_PATTERN, agentNameProblem, certificateHash, newKeyPair, normalSerial, privateKeyPem, x509,
} from '../pki/x509.ts';

export const DEFAULT_AGENT_DIR = '/var/lib/cairn/agent-tls';
const CA_HASH_PATTERN = /^sha256:[0-9a-f]{64}$/;
/** Renew when a certificate has less than this left (DESIGN §9: 30 days before expiry). */
export const RENEW_BEFORE_MS = 30 * 86_400_000;

/** Enrolment or renewal failed; `exitCode` 2 for the operator's input, 3 for the master or the network. */
export class EnrolmentError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
    this.name = 'EnrolmentError';
  }
}

const enrolmentRecord = z.object({
  master: z.string().url(),
  name: z.string(),
  serial: z.string().regex(SERIAL_PATTERN),
  not_after: z.string(),
  ca_hash: z.string().regex(CA_HASH_PATTERN),
});
export type EnrolmentRecord = z.infer<typeof enrolmentRecord>;

/** What an enrolled agent connects with (Node TLS options `key`, `cert`, `ca`). */
export interface AgentCredentials extends EnrolmentRecord {
  key: string;
  cert: string;
  ca: string;
  notAfter: Date;
}

const issuedAnswer = z.object({ certificate: z.string(), ca: z.string(), serial: z.string(), not_after: z.string() });

/** The master's URL checked: https, a host, nothing but an optional port. */
export function masterUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new EnrolmentError(`--master ${JSON.stringify(text)} is not a URL (write https://HOST:8641)`, ExitCode.invalidInput);
  }
  if (url.protocol !== 'https:' || url.hostname === '' || (url.pathname !== '/' && url.pathname !== '') || url.search || url.hash || url.username) {
    throw new EnrolmentError(`--master ${JSON.stringify(text)} must be https://HOST[:PORT] (the master's agent port, 8641 by default)`, ExitCode.invalidInput);
  }
  if (url.port === '') url.port = '8641';
  return url;
}

interface Answer {
  status: number;
  text: string;
}

function call(url: URL, path: string, tls: { ca?: string; cert?: string; key?: string }, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(new URL(path, url), {
      method: payload === undefined ? 'GET' : 'POST',
      // Without a CA (only for GET /v1/ca) anything answers; what it sends is checked against the hash.
      ...(tls.ca ? { ca: tls.ca } : { rejectUnauthorized: false }),
      ...(tls.cert ? { cert: tls.cert, key: tls.key } : {}),
      headers: payload === undefined ? {} : { 'content-type': 'application/json' },
      timeout: 30_000,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        if (text.length > 1_000_000) req.destroy(new Error('the answer is too large'));
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', (err) => reject(new EnrolmentError(`master ${url.origin} is unreachable: ${err.message}`, ExitCode.unreachable)));
    req.end(payload);
  });
}

function errorOf(answer: Answer): string {
  try {
    const e = (JSON.parse(answer.text) as { error?: unknown }).error;
    if (typeof e === 'string') return e;
  } catch {
    // Not the master's JSON: say what came back.
  }
  return `HTTP ${answer.status}`;
}

/** `GET /v1/ca`, accepted only when its sha256 is `caHash`. */
export async function fetchCa(url: URL, caHash: string): Promise<string> {
  if (!CA_HASH_PATTERN.test(caHash)) {
    throw new EnrolmentError(`--ca-hash ${JSON.stringify(caHash)} is not sha256:<64 hex digits> (the master prints it at start and with \`cairn master ca hash\`)`, ExitCode.invalidInput);
  }
  const answer = await call(url, '/v1/ca', {});
  if (answer.status !== 200) throw new EnrolmentError(`master ${url.origin}: GET /v1/ca answered ${errorOf(answer)}`, ExitCode.unreachable);
  let hash: string;
  try {
    hash = certificateHash(answer.text);
  } catch (err) {
    throw new EnrolmentError(`master ${url.origin}: GET /v1/ca did not answer with a certificate (${(err as Error).message})`, ExitCode.unreachable);
  }
  if (hash !== caHash) {
    throw new EnrolmentError(`master ${url.origin} offers a CA whose hash is ${hash}, not the ${caHash} given: refusing to trust it ` +
      '(a wrong --ca-hash, or not your master)', ExitCode.unreachable);
  }
  return answer.text;
}

async function csrFor(name: string, keys: CryptoKeyPair, token?: string): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${name}`,
    keys,
    signingAlgorithm: EC_SIGNATURE,
    ...(token !== undefined ? { attributes: [new x509.ChallengePasswordAttribute(token)] } : {}),
  });
  return csr.toString('pem');
}

function writeAtomic(path: string, text: string): void {
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, text, { mode: PRIVATE_FILE });
  renameSync(temp, path);
}

/** Keeps the new pair and switches enrolment.json to it; the files of other serials go. */
function keep(dir: string, record: EnrolmentRecord, keyPem: string, certPem: string, caPem: string): void {
  privateDir(dir);
  writeAtomic(join(dir, `key-${record.serial}.pem`), keyPem);
  writeAtomic(join(dir, `cert-${record.serial}.pem`), certPem);
  writeAtomic(join(dir, 'ca.pem'), caPem);
  writeAtomic(join(dir, 'enrolment.json'), `${JSON.stringify(record, null, 2)}\n`);
  for (const f of readdirSync(dir)) {
    const m = /^(?:key|cert)-([0-9A-F]+)\.pem$/.exec(f);
    if (m && m[1] !== record.serial) rmSync(join(dir, f), { force: true });
  }
}

function issued(url: URL, answer: Answer, what: string): z.infer<typeof issuedAnswer> {
  if (answer.status !== 200) {
    const code = answer.status >= 400 && answer.status < 500 && answer.status !== 401 ? ExitCode.invalidInput : ExitCode.unreachable;
    throw new EnrolmentError(`master ${url.origin} refused the ${what}: ${errorOf(answer)}`, code);
  }
  try {
    return issuedAnswer.parse(JSON.parse(answer.text));
  } catch (err) {
    throw new EnrolmentError(`master ${url.origin}: the ${what} answer is not what a master sends (${(err as Error).message})`, ExitCode.unreachable);
  }
}

export interface EnrolOptions {
  master: string;
  token: string;
  caHash: string;
  name: string;
  dir: string;
}

export async function enrolAgent(options: EnrolOptions): Promise<AgentCredentials> {
  const problem = agentNameProblem(options.name);
  if (problem) throw new EnrolmentError(`--name: ${problem}`, ExitCode.invalidInput);
  if (!/^cairn-enrol\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/.test(options.token)) {
    throw new EnrolmentError('--token is not an enrolment token (they look like cairn-enrol.<id>.<secret>; make one with `cairn master token create`)', ExitCode.invalidInput);
  }
  const url = masterUrl(options.master);
  const ca = await fetchCa(url, options.caHash);
  const keys = await newKeyPair();
  const answer = await call(url, '/v1/enrol', { ca }, { csr: await csrFor(options.name, keys, options.token) });
  const got = issued(url, answer, 'enrolment');
  return store(options.dir, url, options.name, got, keys, ca);
}

async function store(dir: string, url: URL, name: string, got: z.infer<typeof issuedAnswer>, keys: CryptoKeyPair, ca: string): Promise<AgentCredentials> {
  const cert = new x509.X509Certificate(got.certificate);
  // The answer must be a certificate of our own key and name, from the CA we trust.
  const ours = Buffer.from(cert.publicKey.rawData).equals(Buffer.from(await crypto.subtle.exportKey('spki', keys.publicKey)));
  const caCert = new x509.X509Certificate(ca);
  if (!ours || cert.subject !== `CN=${name}` || !(await cert.verify({ publicKey: caCert.publicKey, signatureOnly: true }))) {
    throw new EnrolmentError(`master ${url.origin} answered with a certificate that is not for this key and name, or not from its CA`, ExitCode.unreachable);
  }
  const record: EnrolmentRecord = {
    master: url.origin, name, serial: normalSerial(cert.serialNumber), not_after: cert.notAfter.toISOString(), ca_hash: certificateHash(ca),
  };
  const keyPem = await privateKeyPem(keys.privateKey);
  keep(dir, record, keyPem, got.certificate, ca);
  return { ...record, key: keyPem, cert: got.certificate, ca, notAfter: cert.notAfter };
}

/** The agent's credentials in `dir`; an EnrolmentError (exit 2) when it holds none. */
export function loadAgentCredentials(dir: string): AgentCredentials {
  const file = join(dir, 'enrolment.json');
  if (!existsSync(file)) throw new EnrolmentError(`${dir} holds no enrolment: run \`cairn agent enrol\` first`, ExitCode.invalidInput);
  let record: EnrolmentRecord;
  try {
    record = enrolmentRecord.parse(JSON.parse(readFileSync(file, 'utf8')));
    const key = readFileSync(join(dir, `key-${record.serial}.pem`), 'utf8');
    const cert = readFileSync(join(dir, `cert-${record.serial}.pem`), 'utf8');
    const ca = readFileSync(join(dir, 'ca.pem'), 'utf8');
    return { ...record, key, cert, ca, notAfter: new Date(record.not_after) };
  } catch (err) {
    throw new EnrolmentError(`${file}: the enrolment cannot be read (${(err as Error).message}); enrol again`, ExitCode.unreachable);
  }
}

/** Whether the certificate in `credentials` is due for renewal (30 days or less left). */
export function renewalDue(credentials: AgentCredentials, now = Date.now()): boolean {
  return credentials.notAfter.getTime() - now <= RENEW_BEFORE_MS;
}

/**
 * Renews the certificate in `dir` over mutual TLS with a new key (`POST /v1/renew`) and switches
 * the folder to it. `master` defaults to the one enrolled with. Returns the new credentials.
 */
export async function renewCertificate(dir: string, master?: string): Promise<AgentCredentials> {
  const current = loadAgentCredentials(dir);
  const url = masterUrl(master ?? current.master);
  const keys = await newKeyPair();
  const answer = await call(url, '/v1/renew', { ca: current.ca, cert: current.cert, key: current.key }, { csr: await csrFor(current.name, keys) });
  const got = issued(url, answer, 'renewal');
  return store(dir, url, current.name, got, keys, current.ca);
}
