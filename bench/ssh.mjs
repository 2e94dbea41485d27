// The SSH variant of the benchmark: the standard workload converged over SSH on 1 and on 4 hosts
// (4 aliases of one loopback sshd, each with its own ROOT, as the peers' Ansible inventory does),
// first run and no-op, with the round trips Cairn's report counts and the CPU spent on the sshd
// side. The server is the peers' own private sshd (../shared/bench/peers/tools/sshd-start.sh,
// 127.0.0.1:2222, the same config Ansible was measured with). `--peers` adds Ansible over SSH.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const S = '/tmp/cmbench/ssh';
/** The slow link's relay: its port, and how long it holds each chunk each way. */
const SLOW_PORT = 2223;
const SLOW_DELAY_MS = 10;
const hostsLabel = (hosts) => (hosts === 'slow' ? '1 host over a 20 ms link' : `${hosts} host${hosts > 1 ? 's' : ''}`);

/** CPU seconds of the sshd listener's reaped children (every connection's processes). */
function sshdChildrenCpu() {
  const pid = readFileSync(join(S, 'sshd.bgpid'), 'utf8').trim();
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  // Fields 16 and 17 of /proc/PID/stat (cutime, cstime), counted here from field 3.
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

function startSshd(peers) {
  if (!existsSync('/usr/sbin/sshd')) throw new Error('the SSH variant needs openssh-server (scripts/install.sh installs it)');
  stopSshd(peers); // one left over from an earlier run would hold the port
  rmSync(join(S, 'known_hosts'), { force: true });
  const child = spawn('sh', [join(peers, 'tools/sshd-start.sh')], { stdio: 'ignore', detached: true });
  child.unref();
  // The script records the key (accept-new) once its own ssh got through.
  for (let i = 0; i < 100; i++) {
    if (existsSync(join(S, 'known_hosts')) && existsSync(`/proc/${readFileSync(join(S, 'sshd.bgpid'), 'utf8').trim()}`)) return;
    spawnSync('sleep', ['0.1']);
  }
  throw new Error('the private sshd did not start (see /tmp/cmbench/ssh/sshd.log)');
}

function stopSshd(peers) {
  spawnSync('sh', [join(peers, 'tools/sshd-stop.sh')], { stdio: 'ignore' });
}

export async function runSsh({ timed, setAside, emptyAside, runs, work, cairnBin, repo, peers, withPeers, median, stat, fmtMs }) {
  startSshd(peers);
  let relay;
  try {
    const site = join(work, 'ssh-site');
    mkdirSync(site, { recursive: true });
    cpSync(join(repo, 'bench/site/states'), join(site, 'states'), { recursive: true });
    cpSync(join(repo, 'bench/site/templates'), join(site, 'templates'), { recursive: true });
    const roots = [1, 2, 3, 4].map((i) => `/tmp/cmbench/roots/cairn-ssh-h${i}`);
    const states = [1, 2, 3, 4].map((i) => join(work, `ssh-state-h${i}`));
    writeFileSync(join(site, 'cairn.yaml'), `targets:\n${roots.map((root, i) => [
      `  h${i + 1}:`, '    host: 127.0.0.1', '    port: 2222', '    user: root', `    identity_file: ${S}/client_ed25519`,
      `    known_hosts: ${S}/known_hosts`, `    state_dir: ${states[i]}`, `    vars: { root: ${root} }`, '    run: [workload]', '',
    ].join('\n')).join('')}vars:\n  app_version: 1\n`);
    // A fifth alias, reached through a relay that delays each chunk 10 ms each way (delay-relay.mjs):
    // the 1-host runs over a link with 20 ms of round-trip time, where each round trip costs it.
    const slowRoot = '/tmp/cmbench/roots/cairn-ssh-slow';
    const slowState = join(work, 'ssh-state-slow');
    const slowKnownHosts = join(work, 'ssh-slow-known_hosts');
    writeFileSync(slowKnownHosts, `[127.0.0.1]:${SLOW_PORT} ${readFileSync(join(S, 'ssh_host_ed25519_key.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ')}\n`);
    writeFileSync(join(site, 'cairn.yaml'), `${readFileSync(join(site, 'cairn.yaml'), 'utf8').replace(/^vars:/m, [
      '  slow:', '    host: 127.0.0.1', `    port: ${SLOW_PORT}`, '    user: root', `    identity_file: ${S}/client_ed25519`,
      `    known_hosts: ${slowKnownHosts}`, `    state_dir: ${slowState}`, `    vars: { root: ${slowRoot} }`, '    run: [workload]', 'vars:',
    ].join('\n'))}`);
    relay = spawn('node', [join(repo, 'bench/delay-relay.mjs'), String(SLOW_PORT), '2222', String(SLOW_DELAY_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
    // What a first run on `hosts` starts from: their trees and state set aside (the others' stay, for the check below).
    const reset = (hosts) => (hosts === 'slow' ? [slowRoot, slowState] : [...roots.slice(0, hosts), ...states.slice(0, hosts)]).forEach(setAside);
    const cairnSsh = (hosts) => ['node', cairnBin, 'apply', '--site', site, '--json', '-t', hosts === 'slow' ? 'slow' : hosts === 1 ? 'h1' : 'h*'];

    const checks = [];
    const rows = [];
    await new Promise((ready, failed) => {
      relay.stdout.once('data', ready);
      relay.once('exit', () => failed(new Error('the delaying relay (bench/delay-relay.mjs) did not start')));
    });
    for (const hosts of [1, 4, 'slow']) {
      for (const [scenario, fresh] of [['first run', true], ['no-op', false]]) {
        const samples = [];
        for (let i = 0; i < runs; i++) {
          if (fresh) reset(hosts);
          const cpu0 = sshdChildrenCpu();
          const r = timed(cairnSsh(hosts));
          const report = JSON.parse(r.stdout);
          samples.push({ ...r, sshd: sshdChildrenCpu() - cpu0, trips: Math.max(...report.targets.map((t) => t.round_trips)) });
          const want = fresh ? 743 : 0;
          const bad = report.targets.filter((t) => t.counts.changed !== want || t.counts.failed > 0);
          if (i === 0) {
            checks.push(`${bad.length ? 'WRONG' : 'ok'}: Cairn over SSH, ${hostsLabel(hosts)}, ${scenario}: ${want} changes on each`);
            if (bad.length) process.exitCode = 1;
          }
        }
        rows.push({ tool: 'cairn', hosts, scenario, samples });
        emptyAside();
      }
    }
    const settings = (root) => readFileSync(join(root, 'd01/settings.conf'), 'utf8');
    const same = settings(roots[0]) === settings(roots[3]) && settings(slowRoot) === settings(roots[3]);
    checks.push(`${same ? 'ok' : 'WRONG'}: every SSH host has the same tree`);

    if (withPeers) {
      // Ansible over SSH, pipelining on, 4 hosts: one run each (minutes per run).
      const env = { ANSIBLE_CONFIG: join(peers, 'ansible/ansible.cfg') };
      mkdirSync('/tmp/cmbench/ansible', { recursive: true });
      const ansible = ['ansible-playbook', '-i', join(peers, 'ansible/inventory-ssh.ini'), join(peers, 'ansible/site.yml')];
      for (let i = 1; i <= 4; i++) setAside(`/tmp/cmbench/roots/ssh-h${i}`);
      for (const scenario of ['first run', 'no-op']) {
        const cpu0 = sshdChildrenCpu();
        const r = timed(ansible, env);
        rows.push({ tool: 'ansible', hosts: 4, scenario, samples: [{ ...r, sshd: sshdChildrenCpu() - cpu0, trips: undefined }] });
      }
    }

    const lines = ['', '## Over SSH (loopback sshd, 127.0.0.1:2222; N hosts = N aliases with their own ROOT; "1, 20 ms link": one host through a relay holding each chunk 10 ms each way)', ''];
    lines.push('| tool | hosts | scenario | wall, median (min–max) | cpu s (client) | cpu s (sshd side) | round trips per host | peak RSS MiB |', '| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |');
    for (const r of rows) {
      const s = r.samples;
      lines.push(`| ${r.tool}${s.length === 1 ? ' (1 run)' : ''} | ${r.hosts === 'slow' ? '1, 20 ms link' : r.hosts} | ${r.scenario} | ${stat(s, 'wall', fmtMs)} | ${median(s.map((x) => x.cpu)).toFixed(2)} | ${median(s.map((x) => x.sshd)).toFixed(2)} | ${r.tool === 'cairn' ? median(s.map((x) => x.trips)) : '–'} | ${Math.round(median(s.map((x) => x.rss)))} |`);
    }
    if (!withPeers) lines.push('', 'Ansible over SSH not run here (`--peers`); ../shared/bench/peers/RESULTS.md measured its 4-host no-op at 440.6 s on this kind of machine.');
    return { checks, lines };
  } finally {
    relay?.kill();
    stopSshd(peers);
  }
}
