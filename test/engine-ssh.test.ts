/**
 * The same semantic suites as engine.test.ts, every target reached over SSH: a real OpenSSH
 * server on a loopback port, its own host key in a known_hosts file the site names, key
 * authentication as root. The files land on this machine, so the suites' assertions hold as is.
 */
import { after, test } from 'node:test';
import { useTargetSettings } from './helpers/converge.ts';
import { sshUnavailable, startSshd } from './helpers/sshd.ts';

const missing = sshUnavailable();
if (missing) {
  test(`SKIPPED: the engine suites over SSH: ${missing}`, { skip: missing }, () => {});
  process.stderr.write(`\n*** SKIPPED: the engine suites over SSH: ${missing} ***\n\n`);
} else {
  const sshd = await startSshd({ port: 22401 });
  after(() => sshd.stop());
  useTargetSettings({ executor: 'ssh', host: sshd.host, port: sshd.port, user: 'root', identity_file: sshd.identityFile, known_hosts: sshd.knownHosts });
  await import('./semantics.suite.ts');
}
