/**
 * Issuing agents' certificates (DESIGN §9). Enrolment spends a token and records the certificate
 * in one store transaction, guarded by the token's and the name's revisions: of two agents racing
 * for one token (or for one name) exactly one gets a certificate; the other's freshly signed one is
 * thrown away unseen and its request is tried again against what the winner wrote.
 */
import { createHash } from 'node:crypto';
import type { Op, Store } from '../../store/types.ts';
import { CertificateAuthority, CsrRejected, type CheckedCsr, type IssuedCertificate } from './ca.ts';
import { MASTER_KEYS, certificateRecord, enrolTokenRecord, readRecord, type CertificateRecord } from './records.ts';
import { revokeOps } from './revocation.ts';
import { ENROL_TOKEN_PATTERN, secretMatches } from './tokens.ts';
import { HttpError, type AgentIdentity } from './routes.ts';

const ATTEMPTS = 8;

function keyHash(csr: CheckedCsr): string {
  return createHash('sha256').update(Buffer.from(csr.publicKey.rawData)).digest('hex');
}

function recordOf(issued: IssuedCertificate, via: CertificateRecord['via'], keySha256: string): CertificateRecord {
  return {
    serial: issued.serial, name: issued.name, not_before: issued.notBefore.toISOString(), not_after: issued.notAfter.toISOString(),
    issued: new Date().toISOString(), via, key_sha256: keySha256, pem: issued.pem,
  };
}

async function checkCsr(csrPem: string): Promise<CheckedCsr> {
  try {
    return await CertificateAuthority.checkCsr(csrPem);
  } catch (err) {
    if (err instanceof CsrRejected) throw new HttpError(400, err.message);
    throw err;
  }
}

/** The unexpired, unrevoked certificate `name` holds now, with the revision of its holder key. */
async function currentHolder(store: Store, name: string): Promise<{ modRevision: number; valid?: CertificateRecord }> {
  const holder = await store.get(MASTER_KEYS.holder(name));
  if (!holder) return { modRevision: 0 };
  const serial = holder.value.toString('utf8');
  const cert = readRecord(certificateRecord, await store.get(MASTER_KEYS.certificate(serial)));
  const live = cert && Date.parse(cert.not_after) > Date.now() && !(await store.get(MASTER_KEYS.revocation(cert.serial)));
  return { modRevision: holder.modRevision, ...(live ? { valid: cert } : {}) };
}

/** `POST /v1/enrol`: a certificate for the CSR's name, paid for with the token its challengePassword carries. */
export async function enrol(store: Store, ca: CertificateAuthority, csrPem: string): Promise<IssuedCertificate> {
  const csr = await checkCsr(csrPem);
  const refused = (why: string) => new HttpError(403, `enrolment of ${csr.name} refused: ${why}`);
  const m = csr.token === undefined ? null : ENROL_TOKEN_PATTERN.exec(csr.token);
  if (!m) throw refused('the CSR carries no enrolment token (as its challengePassword)');
  const [, id, secret] = m as unknown as [string, string, string];
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const kv = await store.get(MASTER_KEYS.enrolToken(id));
    const token = readRecord(enrolTokenRecord, kv);
    // One message for an unknown, spent or wrong token: the answer must not tell which ids exist.
    if (!kv || !token || !secretMatches(secret, token.hash)) throw refused('the token is unknown, revoked or already spent');
    if (Date.parse(token.expires) <= Date.now()) throw refused(`the token expired at ${token.expires}`);
    if (token.name !== csr.name) throw refused(`the token is for the name ${token.name}`);
    const holder = await currentHolder(store, csr.name);
    if (holder.valid && !token.replace) {
      throw new HttpError(409, `enrolment of ${csr.name} refused: the name holds a valid certificate (serial ${holder.valid.serial}, until ${holder.valid.not_after}); ` +
        'revoke it (cairn master ca revoke) or enrol with a token made with --replace');
    }
    const issued = await ca.issueClient(csr);
    const record = recordOf(issued, 'enrol', keyHash(csr));
    const ops: Op[] = [
      token.uses_left > 1
        ? { put: MASTER_KEYS.enrolToken(id), value: JSON.stringify({ ...token, uses_left: token.uses_left - 1 }) }
        : { delete: MASTER_KEYS.enrolToken(id) },
      { put: MASTER_KEYS.certificate(record.serial), value: JSON.stringify(record) },
      { put: MASTER_KEYS.holder(csr.name), value: record.serial },
      // A replaced certificate stops working now: the machine it was on is gone or reinstalled.
      ...(holder.valid ? revokeOps(holder.valid) : []),
    ];
    const r = await store.txn([
      { key: MASTER_KEYS.enrolToken(id), target: 'modRevision', op: '=', value: kv.modRevision },
      { key: MASTER_KEYS.holder(csr.name), target: 'modRevision', op: '=', value: holder.modRevision },
    ], ops);
    if (r.succeeded) return issued;
  }
  throw new HttpError(503, `enrolment of ${csr.name}: too many concurrent changes to its token or name; try again`);
}

/**
 * `POST /v1/renew`: a new certificate for the caller's own name, for a new key. The old
 * certificate stays valid until it expires (an agent whose answer was lost can try again).
 */
export async function renew(store: Store, ca: CertificateAuthority, identity: AgentIdentity, csrPem: string): Promise<IssuedCertificate> {
  const csr = await checkCsr(csrPem);
  if (csr.name !== identity.name) throw new HttpError(403, `a certificate for ${identity.name} can renew only ${identity.name}, not ${csr.name}`);
  const presented = readRecord(certificateRecord, await store.get(MASTER_KEYS.certificate(identity.serial)));
  if (!presented) throw new HttpError(403, `certificate ${identity.serial} is not in this CA's inventory`);
  const newKey = keyHash(csr);
  if (presented.key_sha256 === newKey) throw new HttpError(400, 'renewal needs a new key: the CSR has the key of the certificate it renews');
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const holder = await store.get(MASTER_KEYS.holder(identity.name));
    const issued = await ca.issueClient(csr);
    const record = recordOf(issued, 'renew', newKey);
    const r = await store.txn([
      { key: MASTER_KEYS.holder(identity.name), target: 'modRevision', op: '=', value: holder?.modRevision ?? 0 },
      { key: MASTER_KEYS.revocation(identity.serial), target: 'exists', op: '=', value: false },
    ], [
      { put: MASTER_KEYS.certificate(record.serial), value: JSON.stringify(record) },
      { put: MASTER_KEYS.holder(identity.name), value: record.serial },
    ]);
    if (r.succeeded) return issued;
    if (await store.get(MASTER_KEYS.revocation(identity.serial))) throw new HttpError(401, `certificate ${identity.serial} was revoked`);
  }
  throw new HttpError(503, `renewal of ${identity.name}: too many concurrent changes to its name; try again`);
}
