/**
 * The mount type for real: a Debian bookworm lab host (util-linux mount, the kernel's
 * /proc/self/mountinfo), converged by the `cairn` command over SSH, and checked from inside the
 * host with the kernel's own mount table and the fstab. tmpfs and bind mounts are what a
 * container can mount (no block devices); both work in the nspawn guest as its root.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { NodeResult } from '../src/engine/engine.ts';
import { labUnavailable, startLab, type Lab, type LabHost, applyParts } from './helpers/lab.ts';

const why = labUnavailable();
if (why) {
  test(`LAB TESTS SKIPPED: mount on a lab host: ${why}`, { skip: why }, () => {});
  process.stderr.write(`\n*** LAB TESTS SKIPPED: ${why} ***\n\n`);
} else {
  let lab: Lab;
  let host: LabHost;

  const sh = (command: string) => host.must(command);

  /** Lines of the fstab Cairn did not write, which must survive every run. */
  const FSTAB_HEAD = '# /etc/fstab: static file system information.\n#\n# <file system> <mount point> <type> <options> <dump> <pass>\nproc /proc proc defaults 0 0\n';

  before(async () => {
    lab = await startLab(1);
    host = lab.hosts[0]!;
    await sh(`printf '%s' '${FSTAB_HEAD}' > /etc/fstab`);
  });
  after(() => lab?.stop());

  const apply = (parts: string[], expectStatus = 0) => applyParts(host, parts, expectStatus);
  const statuses = (nodes: NodeResult[]) => nodes.map((n) => `${n.status} ${n.ref}${n.error ? `: ${n.error}` : ''}`);

  /** The kernel's mount at `path` (the top one): mount id, root, options, fstype, source, super options. */
  const mounted = async (path: string) => {
    const lines = (await sh('cat /proc/self/mountinfo')).split('\n').map((l) => l.split(' ')).filter((f) => f[4] === path);
    const f = lines.at(-1);
    if (!f) return undefined;
    const sep = f.indexOf('-', 6);
    return { id: f[0]!, root: f[3]!, options: f[5]!, fstype: f[sep + 1]!, source: f[sep + 2]!, superOptions: f[sep + 3]! };
  };
  const fstab = () => sh('cat /etc/fstab');

  const tmpfs = (opts: { ensure?: string; device?: string; options?: string } = {}) => [
    '  - mount: /mnt/scratch',
    `    device: ${opts.device ?? 'tmpfs'}`,
    '    fstype: tmpfs',
    ...(opts.options ? [`    options: ${opts.options}`] : []),
    ...(opts.ensure ? [`    ensure: ${opts.ensure}`] : []),
  ];

  test('mount tmpfs: mounted (mount point made, fstab entry, mounted now), re-apply 0 changes, other fstab lines kept', async () => {
    assert.equal((await host.sh('test -e /mnt/scratch')).code, 1);
    assert.deepEqual(statuses(await apply(tmpfs({ options: 'size=1m,mode=0755' }))), ['changed mount:/mnt/scratch']);
    assert.equal(await fstab(), `${FSTAB_HEAD}tmpfs /mnt/scratch tmpfs size=1m,mode=0755 0 0\n`);
    const m = await mounted('/mnt/scratch');
    assert.equal(m?.fstype, 'tmpfs');
    assert.equal(m?.source, 'tmpfs');
    assert.match(m!.superOptions, /size=1024k/);
    assert.deepEqual(statuses(await apply(tmpfs({ options: 'size=1m,mode=0755' }))), ['unchanged mount:/mnt/scratch']);
  });

  test('mount tmpfs: an options change remounts in place (same tmpfs, new size); a device change unmounts and mounts', async () => {
    await sh('echo kept > /mnt/scratch/data');
    assert.deepEqual(statuses(await apply(tmpfs({ options: 'size=2m,mode=0755' }))), ['changed mount:/mnt/scratch']);
    const remounted = await mounted('/mnt/scratch');
    // A remount keeps the mount, and so what is in it (an unmount would have lost the tmpfs's content).
    assert.match(remounted!.superOptions, /size=2048k/);
    assert.equal(await sh('cat /mnt/scratch/data'), 'kept\n');
    assert.equal(await fstab(), `${FSTAB_HEAD}tmpfs /mnt/scratch tmpfs size=2m,mode=0755 0 0\n`);
    assert.deepEqual(statuses(await apply(tmpfs({ options: 'size=2m,mode=0755' }))), ['unchanged mount:/mnt/scratch']);

    assert.deepEqual(statuses(await apply(tmpfs({ device: 'scratchfs', options: 'size=2m,mode=0755' }))), ['changed mount:/mnt/scratch']);
    const swapped = await mounted('/mnt/scratch');
    assert.equal(swapped?.source, 'scratchfs');
    // A new tmpfs: the old one's content went with it (and nothing is stacked over it).
    assert.equal((await host.sh('test -e /mnt/scratch/data')).code, 1);
    assert.equal((await sh('cat /proc/self/mountinfo')).split('\n').filter((l) => l.split(' ')[4] === '/mnt/scratch').length, 1);
    assert.equal(await fstab(), `${FSTAB_HEAD}scratchfs /mnt/scratch tmpfs size=2m,mode=0755 0 0\n`);
  });

  test('mount tmpfs: unmounted keeps the fstab entry; mounted again; present writes only the entry; absent removes all', async () => {
    const entry = `${FSTAB_HEAD}scratchfs /mnt/scratch tmpfs size=2m,mode=0755 0 0\n`;
    const parts = (ensure: string) => tmpfs({ device: 'scratchfs', options: 'size=2m,mode=0755', ensure });
    assert.deepEqual(statuses(await apply(parts('unmounted'))), ['changed mount:/mnt/scratch']);
    assert.equal(await mounted('/mnt/scratch'), undefined);
    assert.equal(await fstab(), entry);
    assert.deepEqual(statuses(await apply(parts('unmounted'))), ['unchanged mount:/mnt/scratch']);
    // unmounted asks nothing of the fstab: a bare `mount: PATH` with `ensure: unmounted` is enough.
    assert.deepEqual(statuses(await apply(['  - mount: /mnt/scratch', '    ensure: unmounted'])), ['unchanged mount:/mnt/scratch']);

    assert.deepEqual(statuses(await apply(parts('mounted'))), ['changed mount:/mnt/scratch']);
    assert.equal((await mounted('/mnt/scratch'))?.source, 'scratchfs');
    assert.deepEqual(statuses(await apply(parts('mounted'))), ['unchanged mount:/mnt/scratch']);

    // present is about the fstab alone: mounted or not, it is in sync with its entry there.
    assert.deepEqual(statuses(await apply(parts('present'))), ['unchanged mount:/mnt/scratch']);
    const other = [
      '  - mount: /mnt/later',
      '    device: tmpfs',
      '    fstype: tmpfs',
      '    options: size=1m',
      '    dump: 0',
      '    pass: 2',
      '    ensure: present',
    ];
    assert.deepEqual(statuses(await apply(other)), ['changed mount:/mnt/later']);
    assert.equal(await fstab(), `${entry}tmpfs /mnt/later tmpfs size=1m 0 2\n`);
    assert.equal(await mounted('/mnt/later'), undefined);
    assert.equal((await host.sh('test -e /mnt/later')).code, 1);
    assert.deepEqual(statuses(await apply(other)), ['unchanged mount:/mnt/later']);

    const absent = ['  - mount: /mnt/scratch', '    ensure: absent', '  - mount: /mnt/later', '    ensure: absent'];
    assert.deepEqual(statuses(await apply(absent)), ['changed mount:/mnt/scratch', 'changed mount:/mnt/later']);
    assert.equal(await mounted('/mnt/scratch'), undefined);
    assert.equal(await fstab(), FSTAB_HEAD);
    // The (empty) mount point went with it, as Ansible's absent does.
    assert.equal((await host.sh('test -e /mnt/scratch')).code, 1);
    assert.deepEqual(statuses(await apply(absent)), ['unchanged mount:/mnt/scratch', 'unchanged mount:/mnt/later']);
  });

  test('mount: a file system mounted by hand without an entry and not in the fstab: the entry is added, the mount kept', async () => {
    await sh('mkdir -p /mnt/byhand && mount -t tmpfs -o size=1m byhand /mnt/byhand');
    const parts = ['  - mount: /mnt/byhand', '    device: byhand', '    fstype: tmpfs', '    options: size=1m'];
    const before = await mounted('/mnt/byhand');
    assert.deepEqual(statuses(await apply(parts)), ['changed mount:/mnt/byhand']);
    assert.equal((await mounted('/mnt/byhand'))?.id, before?.id);
    assert.match(await fstab(), /^byhand \/mnt\/byhand tmpfs size=1m 0 0$/m);
    assert.deepEqual(statuses(await apply(parts)), ['unchanged mount:/mnt/byhand']);
    assert.deepEqual(statuses(await apply(['  - mount: /mnt/byhand', '    ensure: absent'])), ['changed mount:/mnt/byhand']);
    assert.equal(await fstab(), FSTAB_HEAD);
  });

  test('mount bind: a folder bind-mounted, its files seen through it; bind,ro remounts it read-only; absent', async () => {
    await sh('mkdir -p /srv/shared && echo hello > /srv/shared/greeting');
    const bind = (options: string) => ['  - mount: /mnt/view', '    device: /srv/shared', '    fstype: none', `    options: ${options}`];
    assert.deepEqual(statuses(await apply(bind('bind'))), ['changed mount:/mnt/view']);
    const m = await mounted('/mnt/view');
    assert.equal(m?.root, '/srv/shared');
    assert.match(m!.options, /^rw/);
    assert.equal(await sh('cat /mnt/view/greeting'), 'hello\n');
    assert.equal(await fstab(), `${FSTAB_HEAD}/srv/shared /mnt/view none bind 0 0\n`);
    assert.deepEqual(statuses(await apply(bind('bind'))), ['unchanged mount:/mnt/view']);

    assert.deepEqual(statuses(await apply(bind('bind,ro'))), ['changed mount:/mnt/view']);
    const ro = await mounted('/mnt/view');
    assert.equal(ro?.id, m?.id);
    assert.match(ro!.options, /^ro/);
    assert.notEqual((await host.sh('touch /mnt/view/nope')).code, 0);
    assert.deepEqual(statuses(await apply(bind('bind,ro'))), ['unchanged mount:/mnt/view']);

    assert.deepEqual(statuses(await apply(['  - mount: /mnt/view', '    ensure: absent'])), ['changed mount:/mnt/view']);
    assert.equal(await mounted('/mnt/view'), undefined);
    assert.equal(await fstab(), FSTAB_HEAD);
    assert.equal(await sh('cat /srv/shared/greeting'), 'hello\n');
  });

  test('mount: a mount that fails fails its node with mount\'s own words, and nothing is mounted', async () => {
    const parts = ['  - mount: /mnt/broken', '    device: /dev/nosuchdisk', '    fstype: ext4'];
    const nodes = await apply(parts, 1);
    assert.equal(nodes[0]!.status, 'failed');
    assert.match(nodes[0]!.error!, /^mount \/mnt\/broken exited with 32: .*\/dev\/nosuchdisk/s);
    assert.equal(await mounted('/mnt/broken'), undefined);
    await apply(['  - mount: /mnt/broken', '    ensure: absent']);
    assert.equal(await fstab(), FSTAB_HEAD);
  });
}
