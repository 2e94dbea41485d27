/**
 * `cairn agent` under systemd on a real host (a lab host with systemd as PID 1): Cairn itself
 * installs the agent over SSH — the unit file from contrib/, the store config, the service
 * enabled and running — then every `cairn push` on this machine is converged by the agent on the
 * host, and stopping the unit ends the agent cleanly. The store is SQLite in a folder shared with
 * the host (its watch works between processes on one machine); Node.js and this checkout are
 * mounted read-only into the host.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CAIRN, cairnBin, makeSite } from './helpers/cli.ts';
import type { Report } from './helpers/converge.ts';
import { cairnBinds, labUnavailable, startLab, type Lab, type LabHost } from './helpers/lab.ts';

const REPO = resolve(import.meta.dirname, '..');
const why = labUnavailable();
if (why) process.stderr.write(`\n*** LAB TESTS SKIPPED: the agent under systemd: ${why} ***\n\n`);

describe('cairn agent as a systemd service on a real host', { skip: why }, () => {
  let lab: Lab;
  let host: LabHost;
  const shared = mkdtempSync(join(tmpdir(), 'cairn-agent-store-'));
  const url = `sqlite:${join(shared, 'store.db')}`;

  before(async () => {
    if (!existsSync(CAIRN)) execFileSync('flock', ['/tmp/cairn-build.lock', 'npm', 'run', 'build'], { cwd: REPO, stdio: 'inherit' });
    lab = await startLab(1, {
      binds: [
        ...cairnBinds(),
        { source: shared, target: '/srv/cairn-store' },
      ],
    });
    host = lab.hosts[0]!;
  });
  after(() => lab?.stop());

  /** The site pushed to the store: what the agent converges on its host (target node1). */
  const agentSite = makeSite({
    'cairn.yaml': 'targets:\n  node1: { executor: local, run: [app] }\n',
    'states/app.yaml': 'app:\n  - file: /etc/cairn-managed\n    content: "<%= it.vars.version %> on <%= it.facts.distribution %> <%= it.facts.init_system %>\\n"\n',
    'vars/all.yaml': 'version: v1\n',
  });

  async function waitForRevision(id: string): Promise<void> {
    const until = Date.now() + 20000;
    for (;;) {
      const r = cairnBin(['status', '--store', url, '--json']);
      const node = (JSON.parse(r.stdout) as { targets: { target: string; revision?: string }[] }).targets.find((t) => t.target === 'node1');
      if (node?.revision === id) return;
      if (Date.now() > until) throw new Error(`the agent never reported revision ${id}:\n${r.stdout}\n${(await host.sh('journalctl -u cairn-agent --no-pager | tail -30')).stdout}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  test('Cairn installs the agent over SSH; the agent converges each push; stopping the unit ends it cleanly', async () => {
    // 1. The agent's installation, as a site converged over SSH.
    const bootstrap = makeSite({
      'cairn.yaml': `targets:\n  lab: { ${Object.entries(host.target).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(', ')}, run: [cairn-agent] }\n`,
      'states/agent.yaml': [
        'cairn-agent:',
        '  - symlink: /usr/local/bin/cairn',
        '    target: /opt/cairn/dist/cairn.cjs',
        '  - directory: /etc/cairn',
        '  - file: /etc/cairn/store.yaml',
        '    content: "url: sqlite:/srv/cairn-store/store.db\\n"',
        '    mode: "0600"',
        '  - file: /etc/cairn/agent.env',
        '    content: "CAIRN_TARGET=node1\\n"',
        '  - file: /etc/systemd/system/cairn-agent.service',
        '    source: files/cairn-agent.service',
        '    notify: service:cairn-agent',
        '  - service: cairn-agent',
        '    ensure: running',
        '    enable: true',
        '',
      ].join('\n'),
    });
    mkdirSync(join(bootstrap, 'files'));
    cpSync(join(REPO, 'contrib/cairn-agent.service'), join(bootstrap, 'files/cairn-agent.service'));
    const installed = cairnBin(['apply', '--site', bootstrap, '--json']);
    assert.equal(installed.status, 0, installed.stderr + installed.stdout);
    assert.equal((JSON.parse(installed.stdout) as Report).targets[0]!.counts.failed, 0);
    assert.equal((await host.sh('systemctl is-active cairn-agent; systemctl is-enabled cairn-agent')).stdout, 'active\nenabled\n');
    const again = cairnBin(['apply', '--site', bootstrap, '--json']);
    assert.equal((JSON.parse(again.stdout) as Report).targets[0]!.counts.changed, 0, 'installing it again changes nothing');

    // 2. Pushes on this machine are converged by the agent on the host.
    const first = /revision (\w+)/.exec(cairnBin(['push', '--site', agentSite, '--store', url]).stdout)![1]!;
    await waitForRevision(first);
    assert.equal((await host.sh('cat /etc/cairn-managed')).stdout, 'v1 on debian systemd\n', 'compiled with the host\'s own facts');
    writeFileSync(join(agentSite, 'vars/all.yaml'), 'version: v2\n');
    const second = /revision (\w+)/.exec(cairnBin(['push', '--site', agentSite, '--store', url]).stdout)![1]!;
    await waitForRevision(second);
    assert.equal((await host.sh('cat /etc/cairn-managed')).stdout, 'v2 on debian systemd\n');

    // 3. systemctl stop: SIGTERM, the agent exits between runs, the unit ends without failure.
    const stop = await host.sh('systemctl stop cairn-agent; systemctl is-active cairn-agent; systemctl show -p Result --value cairn-agent');
    assert.equal(stop.stdout, 'inactive\nsuccess\n', stop.stdout + stop.stderr);
    const journal = (await host.sh('journalctl -u cairn-agent --no-pager -o cat')).stdout;
    assert.match(journal, new RegExp(`revision ${second}: 1 changed, 0 unchanged, 0 failed, 0 skipped`), journal);
  });
});
