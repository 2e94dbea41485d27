/**
 * The master's CA (DESIGN §9): certificates it issues verify with OpenSSL, revoked ones fail
 * OpenSSL's CRL check, and from a CSR it takes only the key and the name: a CSR asking for CA
 * powers, serverAuth or extra names gets none of them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CertificateAuthority, CsrRejected } from '../src/daemon/master/ca.ts';
import { EC_SIGNATURE, newKeyPair, x509 } from '../src/daemon/pki/x509.ts';
import { tempDir } from './helpers/cli.ts';
import { opensslUnavailable } from './helpers/etcd.ts';

const noOpenssl = opensslUnavailable();
if (noOpenssl) console.log(`# SKIPPED OpenSSL cross-checks: ${noOpenssl}`);

function openssl(cwd: string, ...args: string[]): { code: number; out: string } {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

/** A CSR for `subject` (a bare name means CN=name). */
async function csr(subject: string, extensions: x509.Extension[] = [], attributes: x509.Attribute[] = []): Promise<string> {
  const keys = await newKeyPair();
  const name = subject.includes('=') ? subject : `CN=${subject}`;
  return (await x509.Pkcs10CertificateRequestGenerator.create({ name, keys, signingAlgorithm: EC_SIGNATURE, extensions, attributes })).toString('pem');
}

test('the CA is made once, its key 0600, and loaded again with the same hash', async () => {
  const dir = tempDir('cairn-ca-');
  const first = await CertificateAuthority.open(dir);
  assert.equal(first.created, true);
  assert.equal(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  const again = await CertificateAuthority.open(dir);
  assert.equal(again.created, false);
  assert.equal(again.ca.hash, first.ca.hash);
  assert.match(first.ca.hash, /^sha256:[0-9a-f]{64}$/);
});

test('a CA key that is not the certificate\'s is refused, naming the file', async () => {
  const a = tempDir('cairn-ca-');
  const b = tempDir('cairn-ca-');
  await CertificateAuthority.open(a);
  await CertificateAuthority.open(b);
  writeFileSync(join(a, 'ca.key'), (await import('node:fs')).readFileSync(join(b, 'ca.key')));
  await assert.rejects(CertificateAuthority.load(a), (err: Error) => err.message.includes(join(a, 'ca.key')) && /does not belong/.test(err.message));
});

test('an issued client certificate verifies with openssl verify, and fails -crl_check once revoked', { skip: noOpenssl }, async () => {
  const dir = tempDir('cairn-ca-');
  const { ca } = await CertificateAuthority.open(join(dir, 'state'));
  const issued = await ca.issueClient(await CertificateAuthority.checkCsr(await csr('web-1')));
  const other = await ca.issueClient(await CertificateAuthority.checkCsr(await csr('web-2')));
  writeFileSync(join(dir, 'ca.pem'), ca.pem);
  writeFileSync(join(dir, 'web-1.pem'), issued.pem);
  writeFileSync(join(dir, 'web-2.pem'), other.pem);
  for (const f of ['web-1.pem', 'web-2.pem']) {
    const r = openssl(dir, 'verify', '-CAfile', 'ca.pem', '-purpose', 'sslclient', f);
    assert.equal(r.code, 0, r.out);
  }
  writeFileSync(join(dir, 'empty.crl'), await ca.crl([], new Date(Date.now() + 3_600_000)));
  assert.equal(openssl(dir, 'verify', '-crl_check', '-CRLfile', 'empty.crl', '-CAfile', 'ca.pem', 'web-1.pem').code, 0);

  writeFileSync(join(dir, 'revoked.crl'), await ca.crl([{ serial: issued.serial, revoked: new Date() }], new Date(Date.now() + 3_600_000)));
  const revoked = openssl(dir, 'verify', '-crl_check', '-CRLfile', 'revoked.crl', '-CAfile', 'ca.pem', 'web-1.pem');
  assert.notEqual(revoked.code, 0);
  assert.match(revoked.out, /certificate revoked/);
  const untouched = openssl(dir, 'verify', '-crl_check', '-CRLfile', 'revoked.crl', '-CAfile', 'ca.pem', 'web-2.pem');
  assert.equal(untouched.code, 0, untouched.out);
  const text = openssl(dir, 'crl', '-in', 'revoked.crl', '-noout', '-text').out;
  assert.match(text, /Next Update/);
  assert.match(text, new RegExp(`Serial Number: ${issued.serial}`, 'i'));
});

test('a CSR asking for CA:true, serverAuth, certificate signing and extra names gets none of them', { skip: noOpenssl }, async () => {
  const dir = tempDir('cairn-ca-');
  const { ca } = await CertificateAuthority.open(join(dir, 'state'));
  const greedy = await csr('web-1', [
    new x509.BasicConstraintsExtension(true, 3, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.codeSigning, x509.ExtendedKeyUsage.clientAuth]),
    new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'master.example' }, { type: 'dns', value: 'web-2' }, { type: 'ip', value: '10.0.0.1' }]),
  ]);
  const issued = await ca.issueClient(await CertificateAuthority.checkCsr(greedy));
  const cert = new x509.X509Certificate(issued.pem);
  assert.deepEqual([...cert.extensions].map((e) => e.type).sort(), [
    '2.5.29.15', '2.5.29.17', '2.5.29.19', '2.5.29.35', '2.5.29.37',
  ].sort());
  assert.equal(cert.getExtension(x509.BasicConstraintsExtension)!.ca, false);
  assert.equal(cert.getExtension(x509.KeyUsagesExtension)!.usages, x509.KeyUsageFlags.digitalSignature);
  assert.deepEqual([...cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages], [x509.ExtendedKeyUsage.clientAuth]);
  assert.deepEqual(cert.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON(), [{ type: 'dns', value: 'web-1' }]);
  assert.equal(cert.subject, 'CN=web-1');
  assert.equal(cert.notAfter.getTime() - cert.notBefore.getTime(), 90 * 86_400_000 + 5 * 60_000);

  // OpenSSL agrees: fit for a TLS client, not for a server, and no CA.
  writeFileSync(join(dir, 'ca.pem'), ca.pem);
  writeFileSync(join(dir, 'greedy.pem'), issued.pem);
  assert.equal(openssl(dir, 'verify', '-CAfile', 'ca.pem', '-purpose', 'sslclient', 'greedy.pem').code, 0);
  assert.notEqual(openssl(dir, 'verify', '-CAfile', 'ca.pem', '-purpose', 'sslserver', 'greedy.pem').code, 0);
  const text = openssl(dir, 'x509', '-in', 'greedy.pem', '-noout', '-text').out;
  assert.match(text, /CA:FALSE/);
  assert.doesNotMatch(text, /master\.example|10\.0\.0\.1|Server Authentication|Code Signing|Certificate Sign/);
});

test('serials are random and distinct; the token travels as the challengePassword', async () => {
  const { ca } = await CertificateAuthority.open(tempDir('cairn-ca-'));
  const checked = await CertificateAuthority.checkCsr(await csr('db-1', [], [new x509.ChallengePasswordAttribute('cairn-enrol.0123456789abcdef.x')]));
  assert.equal(checked.token, 'cairn-enrol.0123456789abcdef.x');
  const serials = new Set<string>();
  for (let i = 0; i < 20; i++) serials.add((await ca.issueClient(checked)).serial);
  assert.equal(serials.size, 20);
  for (const s of serials) assert.match(s, /^[4-7][0-9A-F]{31}$/);
});

test('CSRs the CA refuses: bad signature, RSA key, several names, a name that is not an agent name, not a CSR', { skip: noOpenssl }, async () => {
  const dir = tempDir('cairn-ca-');
  const rejects = async (pem: string, message: RegExp) => {
    await assert.rejects(CertificateAuthority.checkCsr(pem), (err: Error) => err instanceof CsrRejected && message.test(err.message));
  };
  // A signature made with another key than the one in the CSR.
  const good = new x509.Pkcs10CertificateRequest(await csr('web-1'));
  const der = Buffer.from(good.rawData);
  der[der.length - 3]! ^= 0x01;
  await rejects(x509.PemConverter.encode(der, 'CERTIFICATE REQUEST'), /signature does not verify|cannot be read/);

  assert.equal(openssl(dir, 'req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rsa.key', '-subj', '/CN=web-1', '-out', 'rsa.csr').code, 0);
  await rejects((await import('node:fs')).readFileSync(join(dir, 'rsa.csr'), 'utf8'), /ECDSA P-256/);
  await rejects(await csr('CN=web-1, O=Evil'), /exactly one CN/);
  await rejects(await csr('CN=../../etc/passwd'), /not a valid agent name/);
  await rejects(await csr('CN=a b'), /not a valid agent name/);
  await rejects('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', /cannot be read/);
});

test('the server certificate is for serverAuth with the names and addresses given', async () => {
  const { ca } = await CertificateAuthority.open(tempDir('cairn-ca-'));
  const server = await ca.issueServer(['master.example', 'localhost'], ['127.0.0.1', '::1']);
  const cert = new x509.X509Certificate(server.cert);
  assert.deepEqual([...cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages], [x509.ExtendedKeyUsage.serverAuth]);
  assert.deepEqual(cert.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON().map((n) => n.value),
    ['master.example', 'localhost', '127.0.0.1', '::1']);
  assert.equal(await cert.verify({ publicKey: ca.certificate.publicKey, signatureOnly: true }), true);
});
