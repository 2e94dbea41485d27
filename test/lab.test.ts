/**
 * Smoke test of the test lab (test/helpers/lab.ts): two real Debian hosts with systemd as PID 1,
 * converged by the `cairn` command over SSH (host keys verified), plus the guarantees the other
 * lab tests rely on: a healthy systemd, and apt installing from the local repository.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Report } from './helpers/converge.ts';
import { makeSite, runCli } from './helpers/cli.ts';
import { labUnavailable, startLab, type Lab } from './helpers/lab.ts';

const why = labUnavailable();
if (why) {
  test(`LAB TESTS SKIPPED: lab smoke test: ${why}`, { skip: why }, () => {});
  process.stderr.write(`\n*** LAB TESTS SKIPPED: ${why} ***\n\n`);
} else {
  let lab: Lab;
  before(async () => {
    lab = await startLab(2, { repo: true });
  });
  after(() => lab?.stop());

  const siteFor = (l: Lab) => {
    const targets = l.hosts.map((h) => {
      const settings = Object.entries(h.target).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`).join('');
      return `  ${h.name}:\n${settings}    run: [smoke]\n`;
    });
    return makeSite({
      'cairn.yaml': `targets:\n${targets.join('')}`,
      'states/smoke.yaml': [
        'smoke:',
        '  - file: /etc/cairn-smoke',
        '    mode: "0640"',
        '    content: |',
        '      converged by cairn',
        '      host <%= it.target.name %>',
        '',
      ].join('\n'),
    });
  };

  const apply = async (site: string) => {
    const r = await runCli(['apply', '--site', site, '--json']);
    assert.equal(r.status, 0, `cairn apply exit code; stderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
    return (JSON.parse(r.stdout) as Report).targets;
  };

  test('cairn apply converges two lab hosts over SSH, and a second run changes nothing', async () => {
    const site = siteFor(lab);
    const first = await apply(site);
    assert.deepEqual(first.map((t) => [t.name, t.status, t.counts.changed, t.counts.failed]).sort(),
      lab.hosts.map((h) => [h.name, 'ok', 1, 0]).sort());
    for (const h of lab.hosts) {
      const r = await h.sh('cat /etc/cairn-smoke; stat -c %a /etc/cairn-smoke');
      assert.equal(r.stdout, `converged by cairn\nhost ${h.name}\n640\n`, r.stderr);
    }
    const second = await apply(site);
    assert.deepEqual(second.map((t) => [t.status, t.counts.changed, t.counts.failed]), lab.hosts.map(() => ['ok', 0, 0]));
  });

  test('every lab host runs systemd with no failed units', async () => {
    for (const h of lab.hosts) {
      const state = (await h.sh('systemctl is-system-running')).stdout.trim();
      const failed = (await h.sh('systemctl --failed --no-legend --plain')).stdout.trim();
      assert.ok(state === 'running' || (state === 'degraded' && failed === ''), `${h.name}: ${state}; failed units:\n${failed}`);
      assert.equal(failed, '', `${h.name}: failed units`);
      assert.equal((await h.sh('hostname')).stdout.trim(), h.name);
    }
    const ids = await Promise.all(lab.hosts.map(async (h) => (await h.sh('cat /etc/machine-id')).stdout.trim()));
    assert.equal(new Set(ids).size, ids.length, 'each host has its own machine-id');
  });

  test('apt-get installs from the local repository inside a host', async () => {
    assert.ok(lab.packages.includes('hello') && lab.packages.includes('tree'), lab.packages.join(' '));
    const h = lab.hosts[0]!;
    const r = await h.sh('apt-get install -y -q hello && hello');
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /Hello, world!/);
    // the hosts have no other source: nothing reaches out to a mirror
    const sources = await h.sh('apt-get indextargets --format \'$(SITE)\' | sort -u');
    assert.equal(sources.stdout.trim(), 'file:/srv/repo');
  });
}
