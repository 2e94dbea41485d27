/**
 * `directory` with `source` over SSH (directory-source.suite.ts): a real OpenSSH server on a
 * loopback port, key authentication as root; the files land on this machine, so the suite's
 * assertions hold as is. Also what the batched reads buy: a converged tree of many files costs
 * the round trips of a small one, and one changed file one write more.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { converge, scratchSite, useTargetSettings } from './helpers/converge.ts';
import { sshUnavailable, startSshd } from './helpers/sshd.ts';

const missing = sshUnavailable();
if (missing) {
  test(`SKIPPED: directory source over SSH: ${missing}`, { skip: missing }, () => {});
  process.stderr.write(`\n*** SKIPPED: directory source over SSH: ${missing} ***\n\n`);
} else {
  const sshd = await startSshd({ port: 22580 });
  after(() => sshd.stop());
  useTargetSettings({ executor: 'ssh', host: sshd.host, port: sshd.port, user: 'root', identity_file: sshd.identityFile, known_hosts: sshd.knownHosts });
  await import('./directory-source.suite.ts');

  const R = '<%= it.vars.root %>';
  const tree = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`www/d${i % 5}/f${i}.txt`, `file ${i}\n`]));
  const roundTrips = async (n: number) => {
    const s = scratchSite('s', { 'states/s.yaml': `s:\n  - directory: ${R}/www\n    source: www\n    file_mode: "0644"\n`, ...tree(n) });
    await converge(s, 'apply', [], 0);
    const converged = await converge(s, 'apply', [], 0);
    assert.deepEqual(converged.target.counts, { changed: 0, unchanged: 1, failed: 0, skipped: 0 });
    writeFileSync(join(s.site, 'www/d1/f1.txt'), 'changed\n');
    const one = await converge(s, 'apply', [], 0);
    assert.deepEqual(one.nodes[0]!.items, [`changed ${s.root}/www/d1/f1.txt (content)`]);
    return { converged: converged.target.round_trips!, one: one.target.round_trips! };
  };

  test('directory source (ssh): the hashes of every file come in the batched read: 200 files cost the round trips of 5', async () => {
    const small = await roundTrips(5);
    const large = await roundTrips(200);
    assert.equal(large.converged, small.converged);
    // The changed file is the one write.
    assert.equal(large.one, small.one);
    assert.equal(large.one, large.converged + 1);
  });
}
