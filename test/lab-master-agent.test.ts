/**
 * `cairn agent --master` under systemd on a real host (a lab host with systemd as PID 1): the
 * host enrols with `cairn agent enrol` against a master running on this machine, the agent runs
 * as contrib/cairn-agent-master.service, and `cairn apply` here converges the host through the
 * master (compiled here with the facts the agent reported: the host's own); stopping the unit
 * ends the agent cleanly. Node.js and this checkout are mounted read-only into the host.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CAIRN, cairnBin, tempDir } from './helpers/cli.ts';
import type { Report } from './helpers/converge.ts';
import { cairnBinds, labUnavailable, startLab, type Lab, type LabHost } from './helpers/lab.ts';
import { masterJson, startMaster, type RunningMaster } from './helpers/master-processes.ts';
import { waitUntil } from './helpers/wait.ts';

const REPO = resolve(import.meta.dirname, '..');
const why = labUnavailable();
if (why) process.stderr.write(`\n*** LAB TESTS SKIPPED: the agent of a master under systemd: ${why} ***\n\n`);

describe('cairn agent --master as a systemd service on a real host', { skip: why }, () => {
  let lab: Lab;
  let host: LabHost;
  let master: RunningMaster;
  const dir = tempDir('cairn-lab-master-');

  before(async () => {
    if (!existsSync(CAIRN)) execFileSync('flock', ['/tmp/cairn-build.lock', 'npm', 'run', 'build'], { cwd: REPO, stdio: 'inherit' });
    lab = await startLab(1, {
      binds: [
        ...cairnBinds(),
      ],
    });
    host = lab.hosts[0]!;
    // This machine, as the host sees it: the /30's first address.
    const here = host.address.replace(/\d+$/, (last) => String(Number(last) - 1));
    master = await startMaster(dir, { api: 0, agent: 0 }, here);
  });
  after(async () => {
    await master?.process.stop();
    await lab?.stop();
  });

  test('enrolled and run as a service, the host is converged through the master; stopping the unit ends it cleanly', { timeout: 600_000 }, async () => {
    const { token } = masterJson<{ token: string }>(master, ['token', 'create', '--name', 'node1']);
    const operator = masterJson<{ token: string }>(master, ['api-token', 'create', '--name', 'ops', '--role', 'operator']).token;
    const setup = await host.sh([
      'ln -sf /opt/cairn/dist/cairn.cjs /usr/local/bin/cairn',
      `cairn agent enrol --master ${master.agentUrl} --token ${token} --ca-hash ${master.caHash} --name node1`,
      `cp /opt/cairn/contrib/cairn-agent-master.service /etc/systemd/system/`,
      'systemctl daemon-reload && systemctl enable --now cairn-agent-master',
    ].join(' && '));
    assert.equal(setup.code, 0, setup.stdout + setup.stderr);
    let journal = '';
    await waitUntil(async () => (journal = (await host.sh('journalctl -u cairn-agent-master --no-pager -o cat')).stdout).includes('connected to'),
      () => `the agent to connect:\n${journal}`);

    const site = join(dir, 'site');
    mkdirSync(join(site, 'states'), { recursive: true });
    writeFileSync(join(site, 'cairn.yaml'), `master: ${master.apiUrl}\ntargets:\n  node1: { executor: agent, run: [app] }\n`);
    writeFileSync(join(site, 'states/app.yaml'), 'app:\n  - file: /etc/cairn-managed\n    content: "through the master on <%= it.facts.distribution %> <%= it.facts.init_system %>\\n"\n');
    const env = { CAIRN_TOKEN: operator };
    const first = cairnBin(['apply', '--site', site, '--master-ca', master.caFile, '--json'], dir, env);
    assert.equal(first.status, 0, first.stderr + first.stdout);
    assert.equal((JSON.parse(first.stdout) as Report).targets[0]!.counts.changed, 1);
    assert.equal((await host.sh('cat /etc/cairn-managed')).stdout, 'through the master on debian systemd\n', "compiled with the host's own facts");
    const again = cairnBin(['apply', '--site', site, '--master-ca', master.caFile, '--json'], dir, env);
    assert.equal((JSON.parse(again.stdout) as Report).targets[0]!.counts.changed, 0, 'converging it again changes nothing');

    const stop = await host.sh('systemctl stop cairn-agent-master; systemctl is-active cairn-agent-master; systemctl show -p Result --value cairn-agent-master');
    assert.equal(stop.stdout, 'inactive\nsuccess\n', stop.stdout + stop.stderr);
    const down = cairnBin(['apply', '--site', site, '--master-ca', master.caFile, '--json'], dir, env);
    assert.equal(down.status, 3, down.stderr);
    assert.match((JSON.parse(down.stdout) as Report).targets[0]!.error!, /agent node1 is not connected/);
  });
});
