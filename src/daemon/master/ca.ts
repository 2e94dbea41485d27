/**
 * The master's certificate authority (DESIGN §9): an ECDSA P-256 key and self-signed certificate
 * in the master's state folder (the key 0600, never in the store), which signs the master's own
 * server certificate, agents' client certificates (from their CSRs) and the CRL.
 *
 * From a CSR the CA takes only the public key (after checking the CSR's signature with it), the
 * requested name and the token it carries: every extension it asks for is ignored, and the
 * certificate gets exactly the extensions below (not a CA, digitalSignature, clientAuth, SAN =
 * the name).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { privateDir, PRIVATE_FILE } from '../../lib/private-files.ts';
import {
  CHALLENGE_PASSWORD, EC_KEY, EC_SIGNATURE, agentNameProblem, certificateHash, importPrivateKey, newKeyPair,
  normalSerial, privateKeyPem, randomSerial, x509,
} from '../pki/x509.ts';

const DAY_MS = 86_400_000;
export const CLIENT_CERT_DAYS = 90;
const CA_DAYS = 3650;
export const SERVER_CERT_DAYS = 90;
/** Certificates start a little in the past: a machine whose clock is slightly behind accepts them. */
const BACKDATE_MS = 5 * 60_000;

/** A CSR the CA will not sign; the message says why (sent to the agent). */
export class CsrRejected extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CsrRejected';
  }
}

/** What the CA reads from a CSR whose signature holds. */
export interface CheckedCsr {
  name: string;
  /** The challengePassword attribute (the enrolment token), when there is one. */
  token?: string;
  publicKey: x509.PublicKey;
}

export interface IssuedCertificate {
  pem: string;
  serial: string;
  name: string;
  notBefore: Date;
  notAfter: Date;
}

export interface CrlEntry {
  serial: string;
  revoked: Date;
}

export class CertificateAuthority {
  readonly hash: string;
  readonly pem: string;
  private constructor(readonly certificate: x509.X509Certificate, private readonly key: CryptoKey) {
    this.pem = certificate.toString('pem');
    this.hash = certificateHash(this.pem);
  }

  /**
   * The CA in `stateDir` (ca.pem, ca.key), made on first use. To let several masters share one
   * CA, copy both files into each master's state folder before starting it.
   */
  static async open(stateDir: string): Promise<{ ca: CertificateAuthority; created: boolean }> {
    try {
      return await CertificateAuthority.openOrCreate(stateDir);
    } catch (err) {
      // A state folder that cannot be made or written (permissions, a read-only disk): the
      // machine's fault, said with the folder's name.
      const code = (err as NodeJS.ErrnoException).code;
      if (typeof code === 'string' && !(err instanceof CaFileError)) throw new CaFileError(stateDir, (err as Error).message);
      throw err;
    }
  }

  private static async openOrCreate(stateDir: string): Promise<{ ca: CertificateAuthority; created: boolean }> {
    privateDir(stateDir);
    const certFile = join(stateDir, 'ca.pem');
    const keyFile = join(stateDir, 'ca.key');
    if (existsSync(certFile) || existsSync(keyFile)) return { ca: await CertificateAuthority.load(stateDir), created: false };
    const keys = await newKeyPair();
    const now = Date.now();
    const certificate = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: `CN=Cairn CA ${hostname().replace(/[^A-Za-z0-9.-]/g, '-')} ${randomBytes(4).toString('hex')}`,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + CA_DAYS * DAY_MS),
      keys,
      signingAlgorithm: EC_SIGNATURE,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    // The key first, so a crash between the two leaves a key without a certificate (refused on
    // the next start) rather than a certificate whose key is lost.
    writeAtomically(keyFile, await privateKeyPem(keys.privateKey));
    writeAtomically(certFile, certificate.toString('pem'));
    return { ca: new CertificateAuthority(certificate, keys.privateKey), created: true };
  }

  /** The CA of `stateDir`; an error naming the file when it is missing or damaged. */
  static async load(stateDir: string): Promise<CertificateAuthority> {
    const certFile = join(stateDir, 'ca.pem');
    const keyFile = join(stateDir, 'ca.key');
    let certificate: x509.X509Certificate;
    let key: CryptoKey;
    try {
      certificate = new x509.X509Certificate(readFileSync(certFile, 'utf8'));
    } catch (err) {
      throw new CaFileError(certFile, (err as Error).message);
    }
    try {
      key = await importPrivateKey(readFileSync(keyFile, 'utf8'));
    } catch (err) {
      throw new CaFileError(keyFile, (err as Error).message);
    }
    const ca = new CertificateAuthority(certificate, key);
    // A key that is not the certificate's would sign certificates nobody can verify.
    const probe = await x509.X509CertificateGenerator.create({
      serialNumber: '01', subject: 'CN=probe', issuer: certificate.subject, publicKey: certificate.publicKey,
      signingKey: key, signingAlgorithm: EC_SIGNATURE,
    });
    if (!(await probe.verify({ publicKey: certificate.publicKey, signatureOnly: true }))) {
      throw new CaFileError(keyFile, `this key does not belong to the certificate in ${certFile}`);
    }
    return ca;
  }

  /** The master's TLS certificate for both listeners: serverAuth, with these DNS names and IP addresses. */
  async issueServer(dnsNames: string[], ips: string[]): Promise<{ cert: string; key: string; notAfter: Date }> {
    const keys = await newKeyPair();
    const now = Date.now();
    const notAfter = new Date(now + SERVER_CERT_DAYS * DAY_MS);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: `CN=${dnsNames[0] ?? 'cairn-master'}`,
      issuer: this.certificate.subject,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter,
      publicKey: keys.publicKey,
      signingKey: this.key,
      signingAlgorithm: EC_SIGNATURE,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([
          ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
          ...ips.map((value) => ({ type: 'ip' as const, value })),
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(this.certificate.publicKey),
      ],
    });
    return { cert: `${cert.toString('pem')}\n`, key: await privateKeyPem(keys.privateKey), notAfter };
  }

  /**
   * Reads a CSR: its signature must verify with the key it carries (proof the requester holds
   * the private key), the key must be P-256, and its subject one CN that is a valid agent name.
   */
  static async checkCsr(csrPem: string): Promise<CheckedCsr> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch (err) {
      throw new CsrRejected(`the CSR cannot be read: ${(err as Error).message}`);
    }
    const algorithm = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
    if (algorithm.name !== 'ECDSA' || algorithm.namedCurve !== EC_KEY.namedCurve) {
      throw new CsrRejected(`the CSR's key must be ECDSA ${EC_KEY.namedCurve}`);
    }
    let valid: boolean;
    try {
      valid = await csr.verify();
    } catch {
      valid = false;
    }
    if (!valid) throw new CsrRejected("the CSR's signature does not verify with its own key");
    const fields = csr.subjectName.toJSON();
    const cns = fields.flatMap((rdn) => Object.entries(rdn)).filter(([type]) => type === 'CN').flatMap(([, values]) => values);
    if (fields.length !== 1 || cns.length !== 1) throw new CsrRejected(`the CSR's subject must be exactly one CN (it is ${JSON.stringify(csr.subject)})`);
    const name = cns[0]!;
    const problem = agentNameProblem(name);
    if (problem) throw new CsrRejected(`the CSR's CN: ${problem}`);
    const attribute = csr.getAttribute(CHALLENGE_PASSWORD);
    const token = attribute ? new x509.ChallengePasswordAttribute(attribute.rawData).password : undefined;
    return { name, publicKey: csr.publicKey, ...(token !== undefined ? { token } : {}) };
  }

  /** A client certificate for `name` with the CSR's key: only the extensions chosen here. */
  async issueClient(csr: CheckedCsr): Promise<IssuedCertificate> {
    // Whole seconds, as the certificate holds them: the inventory then says what the certificate says.
    const now = Math.floor(Date.now() / 1000) * 1000;
    const notBefore = new Date(now - BACKDATE_MS);
    const notAfter = new Date(now + CLIENT_CERT_DAYS * DAY_MS);
    const serial = randomSerial();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: `CN=${csr.name}`,
      issuer: this.certificate.subject,
      notBefore,
      notAfter,
      publicKey: csr.publicKey,
      signingKey: this.key,
      signingAlgorithm: EC_SIGNATURE,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: csr.name }]),
        await x509.AuthorityKeyIdentifierExtension.create(this.certificate.publicKey),
      ],
    });
    return { pem: `${cert.toString('pem')}\n`, serial: normalSerial(serial), name: csr.name, notBefore, notAfter };
  }

  /** The CRL listing `entries`, valid from now until `nextUpdate`. */
  async crl(entries: CrlEntry[], nextUpdate: Date): Promise<string> {
    const crl = await x509.X509CrlGenerator.create({
      issuer: this.certificate.subject,
      thisUpdate: new Date(Date.now() - BACKDATE_MS),
      nextUpdate,
      entries: entries.map((e) => ({ serialNumber: e.serial, revocationDate: e.revoked })),
      signingAlgorithm: EC_SIGNATURE,
      signingKey: this.key,
      extensions: [await x509.AuthorityKeyIdentifierExtension.create(this.certificate.publicKey)],
    });
    // OpenSSL reads only the X509 CRL label (the library writes CRL).
    return `${x509.PemConverter.encode(crl.rawData, 'X509 CRL')}\n`;
  }
}

/** The CA's certificate or key file cannot be used (exit 3: the master's environment). */
export class CaFileError extends Error {
  readonly exitCode = 3;
  constructor(readonly file: string, reason: string) {
    super(`the CA state ${file} cannot be used: ${reason}`);
    this.name = 'CaFileError';
  }
}

function writeAtomically(path: string, text: string): void {
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, text, { mode: PRIVATE_FILE, flag: 'wx' });
  renameSync(temp, path);
}
