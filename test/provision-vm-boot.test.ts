/**
 * One real VM, end to end (DESIGN §6 guest, §10): `cairn apply` of a site whose host target has a
 * `guest` with a `debootstrap` profile (kind: guest) builds the image through the provisioner (a
 * kernel and initrd for direct kernel boot), and the `libvirt` provider defines and starts it on a
 * real, private libvirtd (helpers/libvirtd.ts) under qemu TCG. The guest's first boot runs the
 * exported script of the site's target `vm1`: the test reads the serial console's log until the
 * first-boot unit says the target converged, then stops the guest (ACPI), reads its disk, and
 * removes it (`ensure: absent`): no domain, files, loop device or mount is left.
 *
 * The root comes from the test lab's golden root (the builder's `cache`), and the kernel's packages
 * and initrd are kept by recipe in the same folder (`kernel-<key>`): only the first run on a
 * machine installs them from the mirror.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';
import { FIRST_BOOT_CONTENT, FIRST_BOOT_WEB_STATE } from './helpers/first-boot.ts';
import { LAB_SH, labUnavailable } from './helpers/lab.ts';
import { libvirtdUnavailable, startLibvirtd, type Libvirtd } from './helpers/libvirtd.ts';
import { waitUntil } from './helpers/wait.ts';

const missing = ['sfdisk', 'partx', 'mkfs.ext4', 'losetup', 'findmnt'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
const skip = libvirtdUnavailable() ?? labUnavailable() ?? (missing.length ? `missing ${missing.join(', ')} (scripts/install.sh installs them)` : undefined);
if (skip) process.stderr.write(`\n*** SKIP provision-vm-boot: ${skip} ***\n\n`);

/** Hang guards, never limits on speed: a cold kernel install and a TCG boot on a loaded machine take minutes. */
const BOOT_HANG_MS = 25 * 60_000;

/** The lab's golden root recipe: its cache folder (the root built once if missing) and its package list. */
function labRoot(): { cache: string; include: string } {
  const root = execFileSync('sh', [LAB_SH, 'root'], { encoding: 'utf8' }).trim();
  const include = /^INCLUDE=(\S+)$/m.exec(readFileSync(LAB_SH, 'utf8'))![1]!;
  return { cache: dirname(root), include };
}

let lv: Libvirtd;
before(async () => {
  if (!skip) lv = await startLibvirtd();
});
after(() => lv?.stop());

test('a debootstrap guest (slow): cairn apply builds it with a kernel, a real libvirtd boots it under qemu TCG, its first boot converges its target; stopped, read, removed, nothing left', { skip, timeout: BOOT_HANG_MS + 10 * 60_000 }, async () => {
  const { cache, include } = labRoot();
  const root = tempDir('cairn-vm-boot-');
  const storage = join(lv.dir, 'guests');
  const builds = join(root, 'builds');
  const files = (guest: string) => makeSite({
    // host: this machine, which runs the guest; vm1: what runs inside it (only exported, never applied here).
    'cairn.yaml': [
      'targets:',
      '  host:', '    executor: local', `    state_dir: ${root}/state`, '    run: [vms]',
      '  vm1:', '    executor: local', '    run: [web]',
      '',
    ].join('\n'),
    'profiles/vm.yaml': [
      'script: debootstrap', 'kind: guest', 'system: { cpus: 1, memory: 512 }',
      'args:', `  cache: ${cache}`, `  include: ${include}`, '  target: vm1',
      'storage:', '  - size: 2G', '    filesystem: ext4', '    mountpoint: /',
      '',
    ].join('\n'),
    'states/vms.yaml': `vms:\n  - guest: vm1\n    uri: ${JSON.stringify(lv.uri)}\n    storage: ${storage}\n    profile: vm\n    shutdown_timeout: 5m\n${guest}`,
    'states/web.yaml': FIRST_BOOT_WEB_STATE,
  });
  const apply = (site: string, ...more: string[]) => runCli(['apply', '--site', site, '-t', 'host', ...more], { env: { CAIRN_BUILDS_DIR: builds } });

  const kernelEntries = () => readdirSync(cache).filter((e) => e.startsWith('kernel-'));
  const cachedBefore = kernelEntries();
  const site = files('');
  const created = await apply(site);
  assert.equal(created.status, 0, created.stdout + created.stderr);
  assert.equal(lv.virsh('domstate', 'vm1').trim(), 'running');

  // Direct kernel boot from the guest's folder, the console on ttyS0 logged there too.
  const folder = join(storage, 'vm1');
  // The kernel and initrd the guest boots are its recipe's cache entry (made by this build, or an earlier one).
  const entries = kernelEntries();
  assert.ok(entries.length - cachedBefore.length <= 1, `one cache entry at most per build: ${entries.join(', ')}`);
  const same = (a: string, b: string) => readFileSync(a).equals(readFileSync(b));
  const mine = entries.filter((e) => same(join(cache, e, 'initrd.img'), join(folder, 'vm1-initrd.img')) && same(join(cache, e, 'vmlinuz'), join(folder, 'vm1-vmlinuz')));
  assert.ok(mine.length >= 1, `the guest's kernel and initrd are a cache entry's: ${entries.join(', ')}`);
  assert.ok(readdirSync(join(cache, mine[0]!, 'debs')).some((f) => /^linux-image-.*\.deb$/.test(f)), 'the entry keeps the kernel package');
  process.stderr.write(`provision-vm-boot: the kernel came ${cachedBefore.includes(mine[0]!) ? 'from the cache' : 'from the mirror, now cached'} (${mine[0]})\n`);
  const xml = lv.virsh('dumpxml', 'vm1', '--inactive');
  assert.match(xml, new RegExp(`<kernel>${folder}/vm1-vmlinuz</kernel>`));
  assert.match(xml, new RegExp(`<initrd>${folder}/vm1-initrd.img</initrd>`));
  assert.match(xml, /<cmdline>root=\/dev\/vda1 ro console=ttyS0<\/cmdline>/);
  const consoleLog = join(folder, 'vm1-console.log');
  const consoleText = () => (existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8').replace(/\r/g, '') : '');

  await waitUntil(() => {
    const text = consoleText();
    if (/Kernel panic|You are in emergency mode|cairn-firstboot\.service: Failed/.test(text)) {
      throw new Error(`the guest did not come up:\n${text.split('\n').slice(-40).join('\n')}`);
    }
    return text.includes('cairn-firstboot: target vm1 converged');
  }, () => `the first boot's marker on the console (${consoleLog}); its end:\n${consoleText().split('\n').slice(-20).join('\n')}`, BOOT_HANG_MS);
  const text = consoleText();
  assert.match(text, /Linux version 6\.\d+\.\d+-\d+-amd64/);
  assert.match(text, /changed +directory:\/srv\/www \(create\)/);
  assert.match(text, /changed +file:\/srv\/www\/index\.html \(create\)/);
  assert.match(text, /vm1: 2 changed, 0 unchanged, 0 failed/);

  const again = await apply(site);
  assert.equal(again.status, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /0 changed/);

  // Stopped (ACPI: the guest's logind powers it off), its disk read: what the first boot made is on it.
  // An ACPI request is one event: it is sent once the boot is over (the serial getty's prompt), not
  // while logind is still starting and would miss it.
  await waitUntil(() => consoleText().includes('vm1 login:'), () => `the login prompt on the console; its end:\n${consoleText().split('\n').slice(-20).join('\n')}`, BOOT_HANG_MS);
  const stopped = await apply(files('    state: stopped\n'));
  assert.equal(stopped.status, 0, stopped.stdout + stopped.stderr);
  assert.equal(lv.virsh('domstate', 'vm1').trim(), 'shut off');
  assert.match(consoleText(), /reboot: Power down/, 'the guest powered itself off (ACPI), not destroyed');
  const mnt = tempDir('cairn-vm-boot-mnt-');
  const seen = execFileSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c',
    'mount -o loop,offset=1048576 "$1" "$2" && cat "$2/srv/www/index.html" && stat -c %a "$2/srv/www/index.html" && test -e "$2/var/lib/cairn/firstboot.done" && cat "$2/etc/hostname"',
    'sh', join(folder, 'vm1-vda.raw'), mnt], { encoding: 'utf8' });
  assert.equal(seen, `${FIRST_BOOT_CONTENT}640\nvm1\n`);

  const removed = await apply(files('    ensure: absent\n'));
  assert.equal(removed.status, 0, removed.stdout + removed.stderr);
  assert.equal(lv.virsh('list', '--all', '--name').trim(), '', 'no domain is left');
  assert.ok(!existsSync(folder), `${folder} is removed with the guest`);
  assert.deepEqual(readdirSync(storage), []);
  assert.deepEqual(existsSync(builds) ? readdirSync(builds) : [], [], 'no build work folder is left');
  const loops = execFileSync('losetup', ['-a'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(root) || l.includes(storage));
  assert.deepEqual(loops, [], 'no loop device is left');
  const mounts = execFileSync('findmnt', ['-rn', '-o', 'TARGET'], { encoding: 'utf8' }).split('\n').filter((m) => m.startsWith(root) || m.startsWith(storage) || m.startsWith(mnt));
  assert.deepEqual(mounts, [], 'no mount is left');
});
