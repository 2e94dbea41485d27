/**
 * Rollouts on four real lab hosts over SSH (test/helpers/lab.ts), the second made to fail: its
 * target var `fail` makes an exec run `false`. Each host also gets a marker file, so a host the
 * rollout held back can be checked untouched.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Report } from './helpers/converge.ts';
import { makeSite, runCli } from './helpers/cli.ts';
import { labUnavailable, startLab, type Lab } from './helpers/lab.ts';

const MARK = '/etc/cairn-rollout';

const why = labUnavailable();
if (why) process.stderr.write(`\n*** LAB TESTS SKIPPED: rollouts: ${why} ***\n\n`);

describe('rollouts on four lab hosts, host 2 failing', { skip: why }, () => {
  let lab: Lab;
  before(async () => {
    lab = await startLab(4);
  });
  after(() => lab?.stop());

  const site = () => makeSite({
    'cairn.yaml': `targets:\n${lab.hosts.map((h, i) => {
      const settings = Object.entries(h.target).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`).join('');
      return `  ${h.name}:\n${settings}    run: [s]\n    vars: { fail: ${i === 1} }\n`;
    }).join('')}`,
    'states/s.yaml': 's:\n' +
      '  - exec: \'<%= it.vars.fail ? "false" : "true" %>\'\n    id: gate\n' +
      `  - file: ${MARK}\n    content: "<%= it.target.name %>\\n"\n    require: gate\n`,
  });

  const reset = () => Promise.all(lab.hosts.map((h) => h.sh(`rm -f ${MARK}`)));
  const marked = async () => Promise.all(lab.hosts.map(async (h) => (await h.sh(`test -e ${MARK}`)).code === 0));

  const apply = async (args: string[]) => {
    const r = await runCli(['apply', '--site', site(), '--json', ...args]);
    const report = JSON.parse(r.stdout) as Report;
    assert.deepEqual(report.targets.map((t) => t.name), lab.hosts.map((h) => h.name), 'batches go in the order of the site');
    return { status: r.status, stderr: r.stderr, targets: report.targets.map((t) => `${t.status}${t.status === 'skipped' ? ` (${(t as { reason?: string }).reason})` : ''}`) };
  };

  test('--serial 1 --max-fail 0: host 1 converged, host 2 failed, hosts 3 and 4 skipped and untouched; exit 1', async () => {
    await reset();
    const r = await apply(['--serial', '1', '--max-fail', '0']);
    assert.equal(r.status, 1, r.stderr);
    assert.deepEqual(r.targets, ['ok', 'failed', 'skipped (rollout stopped)', 'skipped (rollout stopped)']);
    assert.deepEqual(await marked(), [true, false, false, false]);
  });

  test('--serial 2 --max-fail 50%: 1 of 2 failed in the first batch is not more than 50%, so the second batch runs', async () => {
    await reset();
    const r = await apply(['--serial', '2', '--max-fail', '50%']);
    assert.equal(r.status, 1, r.stderr);
    assert.deepEqual(r.targets, ['ok', 'failed', 'ok', 'ok']);
    assert.deepEqual(await marked(), [true, false, true, true]);
  });
});
