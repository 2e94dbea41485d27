/**
 * A real, private libvirtd for tests (lab-guests.md B3b): the stock daemon with the QEMU driver,
 * started by the test in its own mount, network and PID namespaces. Its configuration, state and
 * logs are bind-mounted over /etc/libvirt, /run, /var/lib/libvirt, /var/log/libvirt and
 * /var/cache/libvirt inside that namespace only, and its socket sits in the test's folder, so it
 * shares nothing with another daemon on the machine (other tests, the host's own). Guests run
 * under qemu TCG (no /dev/kvm here); a guest with no OS sits in its firmware, which is enough for
 * define, start, ACPI shutdown (never answered: the timeout path), destroy, autostart, resize.
 * The PID namespace's init is a tiny reaper (perl): when the daemon ends, every qemu it started
 * ends with it, whatever a test left running.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Libvirtd {
  /** The connection URI: `qemu+unix:///system?socket=…`. */
  uri: string;
  /** The test's folder (its socket, the daemon's state, and room for the guests' files). */
  dir: string;
  /** `virsh -c uri args…`, synchronously; throws with virsh's words on a non-zero exit. */
  virsh(...args: string[]): string;
  /** Starts recording libvirt lifecycle events of `domain` (`virsh event --loop`). */
  events(domain: string): Promise<EventLog>;
  stop(): Promise<void>;
}

export interface EventLog {
  /** The events so far, as `Started Booted`, `Stopped Destroyed` … */
  lines(): string[];
  /** Resolves once the events so far satisfy `done` (a hang guard is the test's own timeout). */
  waitFor(done: (lines: string[]) => boolean): Promise<void>;
  stop(): void;
}

const TOOLS = ['/usr/sbin/libvirtd', '/usr/bin/qemu-system-x86_64', '/usr/bin/virsh', '/usr/bin/unshare', '/usr/bin/perl', '/usr/bin/qemu-img', '/usr/bin/genisoimage'];

/** Why a private libvirtd cannot run here, or undefined when it can. */
export function libvirtdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'a private libvirtd needs root (namespaces, bind mounts)';
  const missing = TOOLS.filter((t) => !existsSync(t));
  if (missing.length) return `missing ${missing.join(', ')} (scripts/install.sh installs them)`;
  return undefined;
}

const SENTINEL = 'cairn-test-sentinel';

const INIT = `my $p = fork // die "fork: $!";
if (!$p) { exec @ARGV or die "exec: $!" }
$SIG{TERM} = sub { kill 'TERM', $p };
while ((my $w = wait) != -1) { exit($? >> 8) if $w == $p }
`;

export async function startLibvirtd(): Promise<Libvirtd> {
  const dir = mkdtempSync('/tmp/cairn-lv-');
  for (const sub of ['etc/qemu', 'run', 'lib', 'log', 'cache', 'sock', 'guests']) mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(join(dir, 'etc/libvirtd.conf'), [
    `unix_sock_dir = "${dir}/sock"`, 'unix_sock_rw_perms = "0700"', 'auth_unix_rw = "none"', 'auth_unix_ro = "none"', '',
  ].join('\n'));
  // No virtlogd (the console goes to a file), qemu as root on the test's own files, no cgroups
  // (they would be the machine's, shared with everything else).
  writeFileSync(join(dir, 'etc/qemu.conf'), [
    'stdio_handler = "file"', 'user = "root"', 'group = "root"', 'dynamic_ownership = 0', 'remember_owner = 0', 'cgroup_controllers = [ ]', '',
  ].join('\n'));
  writeFileSync(join(dir, 'init.pl'), INIT);
  writeFileSync(join(dir, 'start.sh'), [
    'set -e',
    `mount --bind ${dir}/etc /etc/libvirt`,
    `mount --bind ${dir}/run /run`,
    `mount --bind ${dir}/lib /var/lib/libvirt`,
    `mount --bind ${dir}/log /var/log/libvirt`,
    `mount --bind ${dir}/cache /var/cache/libvirt`,
    'ip link set lo up',
    'exec /usr/sbin/libvirtd --config /etc/libvirt/libvirtd.conf',
    '',
  ].join('\n'));
  const log = openSync(join(dir, 'daemon.log'), 'a');
  const daemon: ChildProcess = spawn('unshare', ['-m', '-n', '-p', '--fork', '--kill-child=SIGTERM', '--mount-proc', '--propagation', 'private',
    'perl', join(dir, 'init.pl'), 'sh', join(dir, 'start.sh')], { stdio: ['ignore', log, log] });
  const exited = new Promise<void>((resolve) => daemon.once('exit', () => resolve()));
  const uri = `qemu+unix:///system?socket=${dir}/sock/libvirt-sock`;

  const virsh = (...args: string[]): string => {
    const r = spawnSync('virsh', ['-q', '-c', uri, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`virsh ${args.join(' ')} exited with ${r.status}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };

  // Ready when it answers: the daemon has no other readiness signal without systemd.
  let ready = false;
  while (!ready && daemon.exitCode === null) {
    ready = spawnSync('virsh', ['-c', uri, 'version'], { encoding: 'utf8' }).status === 0;
    if (!ready) await new Promise((r) => setTimeout(r, 100));
  }
  if (!ready) {
    const said = readFileSync(join(dir, 'daemon.log'), 'utf8');
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`the private libvirtd did not start:\n${said}`);
  }

  const recorders: EventLog[] = [];
  return {
    uri,
    dir,
    virsh,
    async events(domain) {
      const child = spawn('virsh', ['-c', uri, 'event', '--loop', '--event', 'lifecycle'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const seen: string[] = [];
      let sentinelSeen = false;
      const waiters: { done: (lines: string[]) => boolean; resolve: () => void }[] = [];
      let buffer = '';
      child.stdout!.on('data', (d: Buffer) => {
        buffer += d.toString();
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          // event 'lifecycle' for domain 'g1': Started Booted
          const m = /^event 'lifecycle' for domain '([^']*)': (.*)$/.exec(line);
          if (m?.[1] === SENTINEL) sentinelSeen = true;
          else if (m?.[1] === domain) seen.push(m[2]!);
        }
        for (const w of waiters.filter((x) => x.done(seen))) w.resolve();
      });
      // `virsh event` says nothing when it starts listening: it is once it reports a scratch
      // domain defined after it started (defined again until it does).
      const sentinel = join(dir, 'sentinel.xml');
      writeFileSync(sentinel, `<domain type='qemu'><name>${SENTINEL}</name><memory unit='MiB'>16</memory><vcpu>1</vcpu>` +
        "<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>");
      while (!sentinelSeen) {
        virsh('define', sentinel);
        virsh('undefine', SENTINEL);
        await new Promise((r) => setTimeout(r, 100));
      }
      const log: EventLog = {
        lines: () => [...seen],
        waitFor: (done) => (done(seen) ? Promise.resolve() : new Promise((resolve) => waiters.push({ done, resolve }))),
        stop: () => child.kill('SIGTERM'),
      };
      recorders.push(log);
      return log;
    },
    async stop() {
      for (const r of recorders) r.stop();
      // Ending the namespace's init (unshare itself ignores SIGTERM while it waits) ends the
      // daemon and the PID namespace, and with it every guest still running.
      const init = readFileSync(`/proc/${daemon.pid}/task/${daemon.pid}/children`, 'utf8').trim().split(/\s+/)[0];
      if (init) process.kill(Number(init), 'SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
