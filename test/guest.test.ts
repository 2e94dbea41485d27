/**
 * The `guest` type's `libvirt` provider against a REAL libvirtd (the stock daemon and QEMU driver,
 * started privately by this test: helpers/libvirtd.ts), every transition of DESIGN §6's table.
 * Why not the libvirt test driver: it keeps its state per connection (lab-guests.md B3d), and the
 * provider runs each virsh command on a connection of its own, as it must to work over SSH; a
 * define in one command is gone in the next. A real daemon keeps state across connections, and
 * guests with no OS (they sit in SeaBIOS under TCG) start, stop, resize and autostart for real.
 * An ACPI shutdown of such a guest powers it off at once (no OS took ACPI over, so QEMU acts on
 * the power button itself): the graceful path; a guest defined without ACPI ignores the request:
 * the timeout-then-destroy path.
 *
 * Builds go through the provisioner's seam (ProviderContext.images): here a builder of this test
 * ("test image builder") that makes what a profile's build makes (a qcow2 disk with qemu-img, a
 * domain definition) and records each build, since the provisioner is not wired into runs yet.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildCatalog } from '../src/catalog/catalog.ts';
import { compile } from '../src/catalog/compile.ts';
import type { TargetReport } from '../src/engine/engine.ts';
import { runTarget } from '../src/engine/run-target.ts';
import { LocalExecutor } from '../src/executors/local.ts';
import { buildGraph } from '../src/graph/build.ts';
import type { Compiled } from '../src/graph/codec.ts';
import { Diagnostics } from '../src/lib/errors.ts';
import type { ImageBuilder, ImageBuildRequest, ImageBuildResult } from '../src/resources/type.ts';
import { sizeBytes } from '../src/resources/guest/type.ts';
import { parseBlockList, parseDefinition, parseFields, parseInterfaces } from '../src/resources/guest/virsh.ts';
import { loadSite } from '../src/site/load.ts';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';
import { libvirtdUnavailable, startLibvirtd, type Libvirtd } from './helpers/libvirtd.ts';
import { READY, tinyLinux } from './helpers/tiny-linux.ts';

const MiB = 1024 ** 2;

/** What the test's profiles build: one qcow2 disk of `disk` bytes, and a definition. */
const PROFILES: Record<string, { disk: number; memoryMiB: number; bus?: string; acpi?: false }> = {
  tiny: { disk: 16 * MiB, memoryMiB: 64 },
  // No ACPI: an ACPI shutdown request is accepted and ignored.
  noacpi: { disk: 16 * MiB, memoryMiB: 64, acpi: false },
  tiny2: { disk: 24 * MiB, memoryMiB: 64 },
  // Debian's kernel and a busybox initramfs (helpers/tiny-linux.ts), booted directly.
  linux: { disk: 16 * MiB, memoryMiB: 128 },
  // A definition libvirt refuses (an unknown disk bus): a rebuild must leave the old guest.
  refused: { disk: 16 * MiB, memoryMiB: 64, bus: 'nosuchbus' },
};

/** The test image builder: the provisioner's seam (ProviderContext.images), building for real. */
class TestImages implements ImageBuilder {
  readonly builds: ImageBuildRequest[] = [];
  /** For the `linux` profile: a kernel and initrd booted directly, the console to a file. */
  linux?: { kernel: string; initrd: string };
  /** Called when a build of the `slow` profile has begun (it then runs until cancelled). */
  onSlowBuild?: () => void;
  async build(request: ImageBuildRequest): Promise<ImageBuildResult> {
    this.builds.push(request);
    if (request.profile === 'slow') {
      writeFileSync(join(request.outputDir, 'disk1.qcow2'), 'half a disk');
      this.onSlowBuild?.();
      if (!request.signal.aborted) await new Promise((resolve) => request.signal.addEventListener('abort', resolve, { once: true }));
      throw new Error('build cancelled');
    }
    const profile = PROFILES[request.profile];
    if (!profile) throw new Error(`no profile ${request.profile}`);
    const disk = join(request.outputDir, 'disk1.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, String(profile.disk)]);
    const boot = request.profile === 'linux' && this.linux
      ? `<kernel>${this.linux.kernel}</kernel><initrd>${this.linux.initrd}</initrd><cmdline>console=ttyS0 panic=-1 quiet</cmdline>`
      : "<boot dev='hd'/>";
    const console = request.profile === 'linux' ? `<serial type='file'><source path='${join(request.outputDir, 'console.log')}'/><target port='0'/></serial>` : '';
    const definition = `<domain type='qemu'>
  <name>${request.name}</name>
  <description>built from profile ${request.profile}</description>
  <memory unit='MiB'>${profile.memoryMiB}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>${boot}</os>
  ${profile.acpi === false ? '' : '<features><acpi/></features>'}
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${disk}'/>
      <target dev='vda' bus='${profile.bus ?? 'virtio'}'/>
    </disk>
    ${console}
    <memballoon model='none'/>
  </devices>
</domain>
`;
    return { definition, disks: [disk] };
  }
}

test('virsh output as libvirt 9 prints it (-q): dominfo fields, domblklist --details, domiflist, the vcpu and memory of a definition', () => {
  const info = parseFields('Id:             1\nName:           t1\nState:          shut off\nCPU(s):         1\nMax memory:     65536 KiB\nAutostart:      enable\n');
  assert.deepEqual([info.State, info.Autostart, info['Max memory']], ['shut off', 'enable', '65536 KiB']);
  assert.deepEqual(parseBlockList(' file   disk     vda      /tmp/l3d/d1.qcow2\n file   cdrom    sda      /srv/iso/a b.iso\n file   cdrom    sdb      -\n'), [
    { type: 'file', device: 'disk', target: 'vda', source: '/tmp/l3d/d1.qcow2' },
    { type: 'file', device: 'cdrom', target: 'sda', source: '/srv/iso/a b.iso' },
    { type: 'file', device: 'cdrom', target: 'sdb', source: '-' },
  ]);
  assert.deepEqual(parseInterfaces(' -           bridge   br0      virtio   52:54:00:08:54:58\n vnet0       network  default  virtio   52:54:00:aa:bb:cc\n'), [
    { type: 'bridge', source: 'br0', model: 'virtio', mac: '52:54:00:08:54:58' },
    { type: 'network', source: 'default', model: 'virtio', mac: '52:54:00:aa:bb:cc' },
  ]);
  assert.deepEqual(parseDefinition("<domain type='qemu'>\n  <memory unit='KiB'>131072</memory>\n  <vcpu placement='static' current='1'>2</vcpu>\n"), { cpus: 1, memoryKiB: 131072 });
  assert.deepEqual(parseDefinition("  <memory unit='KiB'>65536</memory>\n  <vcpu placement='static'>2</vcpu>\n"), { cpus: 2, memoryKiB: 65536 });
});

test('guest sizes: binary units as profiles read them; anything else is not a size', () => {
  assert.deepEqual(['20G', '512M', '512MiB', '512 MB', '1.5G', '4096'].map(sizeBytes), [20 * 1024 ** 3, 512 * MiB, 512 * MiB, 512 * MiB, 1.5 * 1024 ** 3, 4096]);
  assert.deepEqual(['2GG', '512MX', '', 'G', '1.1G'].map(sizeBytes), [undefined, undefined, undefined, undefined, undefined]);
});

/** A hang guard per test (never a limit on how long a transition may take). */
const HANG = { timeout: 5 * 60_000 };

const why = libvirtdUnavailable();
if (why) process.stderr.write(`\n*** GUEST TESTS SKIPPED: ${why} ***\n\n`);

describe('guest (libvirt provider, real private libvirtd, qemu TCG)', { skip: why ?? false }, () => {
  let lv: Libvirtd;
  before(async () => {
    lv = await startLibvirtd();
  });
  after(() => lv?.stop());

  /** A site with one target (local executor) running `state`; the guest nodes it declares. */
  async function compiled(state: string): Promise<Compiled> {
    const root = tempDir('cairn-guest-');
    const site = makeSite({
      'cairn.yaml': `targets:\n  t1:\n    executor: local\n    state_dir: ${root}/state\n    run: [s]\n`,
      'states/s.yaml': state,
    });
    const d = new Diagnostics();
    const catalog = buildCatalog(await loadSite(site, d), d);
    d.throwIfAny();
    const run = compile(catalog, catalog.targets.get('t1')!, { facts: { os_family: 'debian' }, cliVars: {} });
    return { run, graph: buildGraph(run) };
  }

  /** One guest part's YAML: the test's daemon, storage and a 1s shutdown timeout unless given. */
  function guestPart(name: string, attrs: Record<string, unknown> = {}): string {
    const all: Record<string, unknown> = { uri: lv.uri, storage: join(lv.dir, 'guests'), profile: 'tiny', shutdown_timeout: '1s', ...attrs };
    return `  - guest: ${name}\n${Object.entries(all).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`).join('')}`;
  }
  const guest = guestPart;

  /** Plans or applies a site whose state `s` is `parts`; the state dir is kept between runs of one `Runner`. */
  function runner(images: ImageBuilder | null = new TestImages(), logs: string[] = [], signal?: AbortSignal, onProgress?: (step: string | undefined) => void) {
    const stateDir = tempDir('cairn-guest-state-');
    return async (parts: string, mode: 'plan' | 'apply' = 'apply'): Promise<TargetReport> => {
      const unit = await compiled(`s:\n${parts}`);
      unit.run.target.state_dir = stateDir;
      const exec = new LocalExecutor();
      try {
        return await runTarget(unit, exec, {
          mode, onLog: (_ref, line) => logs.push(line), onProgress: (_ref, update) => onProgress?.(update.step),
          ...(images ? { images } : {}), ...(signal ? { signal } : {}),
        });
      } finally {
        await exec.close();
      }
    };
  }

  const node = (r: TargetReport) => {
    assert.equal(r.nodes.length, 1, JSON.stringify(r));
    return r.nodes[0]!;
  };
  const domstate = (name: string) => lv.virsh('domstate', name).trim();
  const autostart = (name: string) => /Autostart:\s+enable/.test(lv.virsh('dominfo', name));
  const defined = (name: string) => lv.virsh('list', '--all', '--name').split('\n').map((l) => l.trim()).includes(name);
  const capacity = (name: string, target: string) => Number(/Capacity:\s+(\d+)/.exec(lv.virsh('domblkinfo', name, target))![1]);
  const folder = (name: string) => join(lv.dir, 'guests', name);
  /** The stop and start events among a domain's lifecycle events, in order. */
  const hasStarted = (lines: string[]) => lines.some((e) => e.startsWith('Started '));
  const stopsAndStarts = (lines: string[]) => lines.filter((l) => /^(Stopped|Started) /.test(l)).map((l) => l.split(' ')[0]);

  test('create: plan shows it without doing it; apply builds through the profile, defines, sizes the disk, autostarts and starts it; a re-run changes nothing', HANG, async () => {
    const images = new TestImages();
    const run = runner(images);
    const part = guest('g-create', { boot: true, cpus: 2, memory: '128M', disks: ['32M', '8M'] });

    const plan = node(await run(part, 'plan'));
    assert.equal(plan.status, 'would-change');
    assert.equal(plan.action, 'create');
    assert.equal(images.builds.length, 0, 'a plan builds nothing');
    assert.ok(!defined('g-create'), 'a plan defines nothing');

    const created = node(await run(part));
    assert.equal(created.status, 'changed', created.error);
    assert.equal(created.action, 'create');
    assert.equal(images.builds.length, 1);
    assert.deepEqual({ profile: images.builds[0]!.profile, name: images.builds[0]!.name, kind: images.builds[0]!.kind },
      { profile: 'tiny', name: 'g-create', kind: 'guest' });
    assert.equal(domstate('g-create'), 'running');
    assert.ok(autostart('g-create'));
    const xml = lv.virsh('dumpxml', 'g-create', '--inactive');
    assert.match(xml, /<vcpu placement='static'>2<\/vcpu>/);
    assert.match(xml, /<memory unit='KiB'>131072<\/memory>/);
    assert.equal(capacity('g-create', 'vda'), 32 * MiB, 'the profile\'s 16M disk grown to disks[0]');
    assert.equal(capacity('g-create', 'vdb'), 8 * MiB, 'disks[1]: a new empty disk');
    assert.match(xml, new RegExp(`<source file='${folder('g-create')}/cairn-disk2.qcow2'/>`));
    assert.match(xml, new RegExp(`<source file='${folder('g-create')}/disk1.qcow2'/>`), 'its disk lives in <storage>/<name>');
    assert.match(lv.virsh('metadata', 'g-create', '--uri', 'https://cairn.invalid/guest/1', '--config'), /profile="tiny"/);
    assert.ok(!existsSync(`${folder('g-create')}.cairn-new`), 'no staging folder left');

    const again = await run(part);
    assert.deepEqual(again.counts, { changed: 0, unchanged: 1, failed: 0, skipped: 0 });
    assert.equal(images.builds.length, 1, 'a converged guest is not built again');
  });

  test('update in place: state stopped (a guest without ACPI ignores the shutdown request: destroyed after shutdown_timeout), autostart off, then running again', HANG, async () => {
    const logs: string[] = [];
    const run = runner(new TestImages(), logs);
    const guest = (name: string, attrs: Record<string, unknown> = {}) => guestPart(name, { profile: 'noacpi', ...attrs });
    assert.equal(node(await run(guest('g-state', { boot: true }))).status, 'changed');
    const events = await lv.events('g-state');

    const stopped = node(await run(guest('g-state', { boot: false, state: 'stopped' })));
    assert.equal(stopped.status, 'changed', stopped.error);
    assert.equal(stopped.action, 'update');
    assert.deepEqual(stopped.changes?.sort(), ['boot', 'state']);
    assert.equal(domstate('g-state'), 'shut off');
    assert.ok(!autostart('g-state'));
    await events.waitFor((l) => l.some((e) => e.startsWith('Stopped ')));
    assert.deepEqual(stopsAndStarts(events.lines()), ['Stopped']);
    assert.ok(logs.includes('guest g-state did not shut down within 1s of the ACPI request: destroying it'), logs.join('\n'));

    const plan = node(await run(guest('g-state'), 'plan'));
    assert.equal(plan.status, 'would-change');
    assert.deepEqual(plan.changes, ['state']);
    assert.equal(domstate('g-state'), 'shut off', 'a plan starts nothing');

    const started = node(await run(guest('g-state')));
    assert.equal(started.status, 'changed', started.error);
    assert.equal(domstate('g-state'), 'running');
    await events.waitFor(hasStarted);
    assert.deepEqual(stopsAndStarts(events.lines()), ['Stopped', 'Started']);
    assert.equal((await run(guest('g-state'))).counts.unchanged, 1);
  });

  test('reload: cpus and memory change the definition, then the running guest is stopped and started (libvirt events in that order); refused with allow_reload: false', HANG, async () => {
    const run = runner();
    assert.equal(node(await run(guest('g-reload'))).status, 'changed');
    const refused = node(await run(guest('g-reload', { allow_reload: false, cpus: 2 })));
    assert.equal(refused.status, 'failed');
    assert.match(refused.error!, /changing cpus needs a restart; set allow_reload: true/);
    assert.match(lv.virsh('dumpxml', 'g-reload', '--inactive'), /<vcpu placement='static'>1<\/vcpu>/, 'refused: nothing changed');

    const plan = node(await run(guest('g-reload', { cpus: 2, memory: 96 }), 'plan'));
    assert.deepEqual([plan.status, plan.action, plan.changes?.sort()], ['would-change', 'reload', ['cpus', 'memory']]);

    const events = await lv.events('g-reload');
    const reloaded = node(await run(guest('g-reload', { cpus: 2, memory: 96 })));
    assert.equal(reloaded.status, 'changed', reloaded.error);
    assert.equal(reloaded.action, 'reload');
    await events.waitFor(hasStarted);
    assert.deepEqual(stopsAndStarts(events.lines()), ['Stopped', 'Started'], `stop, then start: ${events.lines().join(', ')}`);
    const live = lv.virsh('dumpxml', 'g-reload');
    assert.match(live, /<vcpu placement='static'>2<\/vcpu>/, 'the running guest has the new cpus');
    assert.match(live, /<memory unit='KiB'>98304<\/memory>/);
    assert.equal((await run(guest('g-reload', { cpus: 2, memory: 96 }))).counts.unchanged, 1);
  });

  test('reload on a stopped guest: networks and cdroms change its definition and it is not started', HANG, async () => {
    const run = runner();
    const iso = join(tempDir('cairn-guest-iso-'), 'tools.iso');
    const content = join(tempDir('cairn-guest-isodata-'), 'readme');
    writeFileSync(content, 'tools\n');
    execFileSync('genisoimage', ['-quiet', '-output', iso, '-volid', 'TOOLS', content]);
    assert.equal(node(await run(guest('g-devices', { state: 'stopped', networks: ['bridge:br-a'] }))).status, 'changed');
    assert.equal(domstate('g-devices'), 'shut off');
    const before = lv.virsh('domiflist', 'g-devices', '--inactive');
    assert.match(before, /bridge\s+br-a\s+virtio/);

    const changed = node(await run(guest('g-devices', { state: 'stopped', networks: ['bridge:br-a', 'bridge:br-b'], cdroms: [iso] })));
    assert.equal(changed.status, 'changed', changed.error);
    assert.equal(changed.action, 'reload');
    assert.deepEqual(changed.changes?.sort(), ['cdroms', 'networks']);
    assert.equal(domstate('g-devices'), 'shut off', 'a stopped guest stays stopped');
    const after = lv.virsh('domiflist', 'g-devices', '--inactive');
    assert.match(after, /bridge\s+br-a\s+virtio\s+(\S+)/);
    assert.equal(/br-a\s+virtio\s+(\S+)/.exec(after)![1], /br-a\s+virtio\s+(\S+)/.exec(before)![1], 'the interface kept keeps its MAC');
    assert.match(after, /bridge\s+br-b\s+virtio/);
    assert.match(lv.virsh('domblklist', 'g-devices', '--inactive', '--details'), new RegExp(`cdrom\\s+sd\\w\\s+${iso}`));

    const removed = node(await run(guest('g-devices', { state: 'stopped', networks: ['bridge:br-b'], cdroms: [] })));
    assert.equal(removed.status, 'changed', removed.error);
    assert.doesNotMatch(lv.virsh('domiflist', 'g-devices', '--inactive'), /br-a/);
    assert.doesNotMatch(lv.virsh('domblklist', 'g-devices', '--inactive', '--details'), /cdrom/);
    assert.equal((await run(guest('g-devices', { state: 'stopped', networks: ['bridge:br-b'], cdroms: [] }))).counts.unchanged, 1);
  });

  test('disks: growing is an update in place (blockresize while running, qemu-img resize when stopped); a smaller disk or another count is a rebuild', HANG, async () => {
    const run = runner();
    assert.equal(node(await run(guest('g-disk', { disks: ['16M'] }))).status, 'changed');
    const grown = node(await run(guest('g-disk', { disks: ['20M'] })));
    assert.deepEqual([grown.status, grown.action, grown.changes], ['changed', 'update', ['disk_sizes']], grown.error);
    assert.equal(domstate('g-disk'), 'running', 'grown while running, not restarted');
    assert.equal(capacity('g-disk', 'vda'), 20 * MiB);

    assert.equal(node(await run(guest('g-disk', { disks: ['20M'], state: 'stopped' }))).status, 'changed');
    const offline = node(await run(guest('g-disk', { disks: ['28M'], state: 'stopped' })));
    assert.equal(offline.status, 'changed', offline.error);
    const image = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', join(folder('g-disk'), 'disk1.qcow2')], { encoding: 'utf8' })) as { 'virtual-size': number };
    assert.equal(image['virtual-size'], 28 * MiB);

    const shrink = node(await run(guest('g-disk', { disks: ['24M'], state: 'stopped' }), 'plan'));
    assert.deepEqual([shrink.action, shrink.changes?.sort()], ['rebuild', ['disk_sizes', 'disks']]);
    const more = node(await run(guest('g-disk', { disks: ['28M', '8M'], state: 'stopped' }), 'plan'));
    assert.equal(more.action, 'rebuild');
  });

  test('rebuild: refused by default naming the attributes and allow_rebuild; done when allowed (built first, then swapped); a new definition libvirt refuses leaves the old guest running', HANG, async () => {
    const images = new TestImages();
    const run = runner(images);
    assert.equal(node(await run(guest('g-rebuild'))).status, 'changed');
    const uuid = lv.virsh('domuuid', 'g-rebuild').trim();

    const refused = node(await run(guest('g-rebuild', { profile: 'tiny2' })));
    assert.equal(refused.status, 'failed');
    assert.match(refused.error!, /changing profile means destroying and recreating guest:g-rebuild; set allow_rebuild: true/);
    assert.equal(images.builds.length, 1, 'refused: nothing built');
    assert.equal(lv.virsh('domuuid', 'g-rebuild').trim(), uuid);

    const plan = node(await run(guest('g-rebuild', { allow_rebuild: true, profile: 'tiny2' }), 'plan'));
    assert.deepEqual([plan.status, plan.action], ['would-change', 'rebuild']);
    assert.equal(images.builds.length, 1, 'a plan builds nothing');

    const badPart = guest('g-rebuild', { allow_rebuild: true, profile: 'refused' });
    const bad = node(await run(badPart));
    assert.equal(bad.status, 'failed');
    assert.match(bad.error!, /new definition of guest g-rebuild was refused, so the guest is left as it was/);
    assert.match(bad.error!, /nosuchbus/);
    assert.equal(lv.virsh('domuuid', 'g-rebuild').trim(), uuid, 'the old guest is still there');
    assert.equal(domstate('g-rebuild'), 'running');
    assert.ok(!existsSync(`${folder('g-rebuild')}.cairn-new`), 'the refused build is cleaned up');
    assert.ok(!defined('g-rebuild-cairn-new'));

    const part = guest('g-rebuild', { allow_rebuild: true, profile: 'tiny2' });
    const rebuilt = node(await run(part));
    assert.deepEqual([rebuilt.status, rebuilt.action], ['changed', 'rebuild'], rebuilt.error);
    assert.notEqual(lv.virsh('domuuid', 'g-rebuild').trim(), uuid, 'a new domain');
    assert.match(lv.virsh('dumpxml', 'g-rebuild', '--inactive'), /built from profile tiny2/);
    assert.equal(capacity('g-rebuild', 'vda'), 24 * MiB);
    assert.equal(domstate('g-rebuild'), 'running');
    assert.deepEqual(readdirSync(join(lv.dir, 'guests')).filter((f) => f.startsWith('g-rebuild')), ['g-rebuild'], 'no old or staging folder left');
    assert.equal((await run(part)).counts.unchanged, 1);
  });

  test('rebuild that fails after the old guest was taken down (the new one cannot start): the old guest is put back as it was, running', HANG, async () => {
    const run = runner();
    assert.equal(node(await run(guest('g-swap'))).status, 'changed');
    const uuid = lv.virsh('domuuid', 'g-swap').trim();
    // The new definition is fine for libvirt; starting it fails (no such bridge on this host).
    const failed = node(await run(guest('g-swap', { allow_rebuild: true, profile: 'tiny2', networks: ['bridge:nosuchbr'] })));
    assert.equal(failed.status, 'failed');
    assert.match(failed.error!, /rebuilding guest g-swap failed, and the old guest was put back as it was: virsh start g-swap exited with 1/);
    assert.equal(lv.virsh('domuuid', 'g-swap').trim(), uuid, 'the same domain');
    assert.equal(domstate('g-swap'), 'running');
    assert.equal(capacity('g-swap', 'vda'), 16 * MiB, 'its own disk, not the new build\'s');
    assert.doesNotMatch(lv.virsh('domiflist', 'g-swap'), /nosuchbr/);
    assert.deepEqual(readdirSync(join(lv.dir, 'guests')).filter((f) => f.startsWith('g-swap')), ['g-swap'], 'no staging, old or saved definition left');
    assert.deepEqual(readdirSync(folder('g-swap')).sort(), ['disk1.qcow2', 'domain.xml']);
    assert.equal((await run(guest('g-swap'))).counts.unchanged, 1);
  });

  test('an interrupted create (the run cancelled during the build) leaves no half guest: no domain, no folder', HANG, async () => {
    const images = new TestImages();
    const cancel = new AbortController();
    images.onSlowBuild = () => cancel.abort();
    const run = runner(images, [], cancel.signal);
    const cancelled = node(await run(guest('g-cancel', { profile: 'slow' })));
    assert.equal(cancelled.status, 'failed');
    assert.match(cancelled.error!, /the build of guest g-cancel was cancelled; nothing is left of it/);
    assert.ok(!defined('g-cancel'));
    assert.deepEqual(readdirSync(join(lv.dir, 'guests')).filter((f) => f.startsWith('g-cancel')), []);
  });

  test('a rebuild cancelled while the old guest shuts down leaves the old guest as it was, running', HANG, async () => {
    const cancel = new AbortController();
    const images = new TestImages();
    const run = runner(images, [], cancel.signal, (step) => {
      if (step === 'waiting for the ACPI shutdown') cancel.abort();
    });
    // No ACPI: the shutdown is never answered, so the run is still waiting when it is cancelled.
    assert.equal(node(await runner(images)(guest('g-cancel2', { profile: 'noacpi', shutdown_timeout: '5m' }))).status, 'changed');
    const uuid = lv.virsh('domuuid', 'g-cancel2').trim();
    const cancelled = node(await run(guest('g-cancel2', { allow_rebuild: true, profile: 'tiny2', shutdown_timeout: '5m' })));
    assert.equal(cancelled.status, 'failed');
    assert.match(cancelled.error!, /rebuilding guest g-cancel2 failed, and the old guest was put back as it was: cancelled while guest g-cancel2 was shutting down/);
    assert.equal(lv.virsh('domuuid', 'g-cancel2').trim(), uuid);
    assert.equal(domstate('g-cancel2'), 'running');
    assert.deepEqual(readdirSync(join(lv.dir, 'guests')).filter((f) => f.startsWith('g-cancel2')), ['g-cancel2']);
  });

  test('a folder left by a create that was killed part way is cleared by the next create; a folder Cairn did not make is refused', HANG, async () => {
    const images = new TestImages();
    const run = runner(images);
    mkdirSync(folder('g-left'), { recursive: true });
    writeFileSync(join(folder('g-left'), 'disk1.qcow2'), 'half a disk');
    writeFileSync(join(folder('g-left'), '.cairn-guest'), 'g-left\n');
    const made = node(await run(guest('g-left')));
    assert.equal(made.status, 'changed', made.error);
    assert.equal(capacity('g-left', 'vda'), 16 * MiB);
    assert.deepEqual(readdirSync(folder('g-left')).sort(), ['disk1.qcow2', 'domain.xml'], 'the marker is gone once the guest is made');

    mkdirSync(folder('g-theirs'), { recursive: true });
    writeFileSync(join(folder('g-theirs'), 'precious.img'), 'data');
    const refused = node(await run(guest('g-theirs')));
    assert.equal(refused.status, 'failed');
    assert.match(refused.error!, /guest g-theirs does not exist, but .*g-theirs does: .*will not build over a folder it did not make/);
    assert.deepEqual(readdirSync(folder('g-theirs')), ['precious.img']);
    assert.equal(images.builds.filter((b) => b.name === 'g-theirs').length, 0);
  });

  test('user_data: a NoCloud seed ISO (cidata) attached as a cdrom at create; a re-run does not apply it again; changed user_data is a rebuild', HANG, async () => {
    const images = new TestImages();
    const run = runner(images);
    const part = guest('g-seed', { user_data: '#cloud-config\nhostname: g-seed\n' });
    assert.equal(node(await run(part)).status, 'changed');
    const blocks = lv.virsh('domblklist', 'g-seed', '--inactive', '--details');
    const iso = join(folder('g-seed'), 'cairn-seed.iso');
    assert.match(blocks, new RegExp(`cdrom\\s+sd\\w\\s+${iso}`));
    assert.match(execFileSync('isoinfo', ['-d', '-i', iso], { encoding: 'utf8' }), /Volume id: cidata/);
    assert.equal(execFileSync('isoinfo', ['-R', '-x', '/user-data', '-i', iso], { encoding: 'utf8' }), '#cloud-config\nhostname: g-seed\n');
    assert.match(execFileSync('isoinfo', ['-R', '-x', '/meta-data', '-i', iso], { encoding: 'utf8' }), /^instance-id: g-seed-[0-9a-f]{12}\nlocal-hostname: g-seed\n$/);

    const again = await run(part);
    assert.deepEqual(again.counts, { changed: 0, unchanged: 1, failed: 0, skipped: 0 }, 'the seed is not a cdrom of `cdroms`, and the hash matches');
    assert.equal(images.builds.length, 1);

    const changed = node(await run(guest('g-seed', { user_data: '#cloud-config\nhostname: other\n' }), 'plan'));
    assert.deepEqual([changed.action, changed.changes], ['rebuild', ['user_data']]);
  });

  test('destroy: ensure absent stops, undefines and removes <storage>/<name>; plan shows it without doing it; absent stays absent', HANG, async () => {
    const run = runner();
    assert.equal(node(await run(guest('g-gone', { user_data: 'x' }))).status, 'changed');
    assert.ok(existsSync(folder('g-gone')));
    const plan = node(await run(guest('g-gone', { ensure: 'absent' }), 'plan'));
    assert.deepEqual([plan.status, plan.action], ['would-change', 'destroy']);
    assert.ok(defined('g-gone'));

    const gone = node(await run(guest('g-gone', { ensure: 'absent' })));
    assert.deepEqual([gone.status, gone.action], ['changed', 'destroy'], gone.error);
    assert.ok(!defined('g-gone'));
    assert.ok(!existsSync(folder('g-gone')), 'its disks, seed ISO and definition are removed');
    assert.equal((await run(guest('g-gone', { ensure: 'absent' }))).counts.unchanged, 1);
  });

  test('refresh when notified: a running guest is restarted (stop, then start)', HANG, async () => {
    const run = runner();
    const trigger = join(tempDir('cairn-guest-trigger-'), 'conf');
    const parts = (content: string) => `  - file: ${trigger}\n    content: ${JSON.stringify(content)}\n    notify: guest:g-notify\n${guest('g-notify')}`;
    const first = await run(parts('one'));
    assert.equal(first.counts.changed, 2, JSON.stringify(first.nodes));
    const events = await lv.events('g-notify');
    const second = await run(parts('two'));
    assert.equal(second.counts.failed, 0, JSON.stringify(second.nodes));
    const refreshed = second.nodes.find((n) => n.ref === 'guest:g-notify' && n.action === 'refresh');
    assert.equal(refreshed?.status, 'changed', JSON.stringify(second.nodes));
    await events.waitFor(hasStarted);
    assert.deepEqual(stopsAndStarts(events.lines()), ['Stopped', 'Started'], events.lines().join(', '));
  });

  test('(slow) a real Linux guest (Debian\'s kernel, a busybox initramfs) boots under TCG through libvirt, reads its user data from the seed cdrom, and stopping it is a graceful ACPI shutdown: it powers itself off, nothing is destroyed', HANG, async (t) => {
    const linux = tinyLinux();
    if ('unavailable' in linux) {
      process.stderr.write(`\n*** SLOW GUEST BOOT SKIPPED: ${linux.unavailable} ***\n\n`);
      t.skip(linux.unavailable);
      return;
    }
    const images = new TestImages();
    images.linux = linux;
    const logs: string[] = [];
    const run = runner(images, logs);
    const userData = '#cloud-config\nhostname: g-linux\n';
    const part = (state: string) => guest('g-linux', { profile: 'linux', state, shutdown_timeout: '5m', user_data: userData });
    const created = node(await run(part('running')));
    assert.equal(created.status, 'changed', created.error);
    const consoleLog = join(folder('g-linux'), 'console.log');
    // Up once /init says so on the serial console (it then watches the power button).
    for (let said = ''; !said.includes(READY);) {
      said = existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8') : '';
      assert.doesNotMatch(said, /CAIRN-GUEST-(NO-POWER-BUTTON|READ-FAILED|NO-SEED)/);
      if (!said.includes(READY)) await new Promise((r) => setTimeout(r, 200));
    }
    // The guest found the seed on its cdrom (SATA) and read the user data from it.
    assert.ok(readFileSync(consoleLog, 'utf8').replace(/\r/g, '').includes(`CAIRN-USER-DATA-BEGIN\n${userData}CAIRN-USER-DATA-END`),
      readFileSync(consoleLog, 'utf8'));
    assert.equal((await run(part('running'))).counts.unchanged, 1, 'the user data is not applied again');
    const events = await lv.events('g-linux');
    const stopped = node(await run(part('stopped')));
    assert.deepEqual([stopped.status, stopped.action], ['changed', 'update'], stopped.error);
    assert.equal(domstate('g-linux'), 'shut off');
    await events.waitFor((l) => l.some((e) => e.startsWith('Stopped ')));
    assert.ok(events.lines().includes('Shutdown Finished after guest request'), events.lines().join(', '));
    assert.ok(events.lines().includes('Stopped Shutdown'), events.lines().join(', '));
    assert.ok(!logs.some((l) => /did not shut down|destroying it/.test(l)), logs.join('\n'));
    assert.match(readFileSync(consoleLog, 'utf8'), /CAIRN-GUEST-POWEROFF/);
  });

  test('a create in a run with no provisioner (as for a target the CLI cannot build for) fails the node saying so, and defines nothing', HANG, async () => {
    const run = runner(null);
    const plan = node(await run(guest('g-nobuild'), 'plan'));
    assert.deepEqual([plan.status, plan.action], ['would-change', 'create']);
    const failed = node(await run(guest('g-nobuild')));
    assert.equal(failed.status, 'failed');
    assert.match(failed.error!, /guest g-nobuild must be built from profile tiny, but this run has no provisioner/);
    assert.ok(!defined('g-nobuild'));
    assert.ok(!existsSync(folder('g-nobuild')));
  });

  test('through the cairn CLI with the real provisioner (`noop` profiles: a definition only): created with an added disk, re-run 0 changes, stopped, rebuilt from another profile', HANG, async () => {
    const root = tempDir('cairn-guest-cli-');
    const files = (attrs: Record<string, unknown>) => makeSite({
      'cairn.yaml': `targets:\n  t1:\n    executor: local\n    state_dir: ${root}/state\n    run: [s]\n`,
      'profiles/bare.yaml': 'script: noop\nsystem:\n  cpus: 1\n  memory: 64\n  serial: false\n',
      'profiles/bare2.yaml': 'script: noop\nsystem:\n  cpus: 2\n  memory: 64\n  serial: false\n',
      'states/s.yaml': `s:\n${guest('g-real', { profile: 'bare', ...attrs })}`,
    });
    const site = files({ disks: ['8M'], memory: '96M' });
    const apply = await runCli(['apply', '--site', site]);
    assert.equal(apply.status, 0, apply.stdout + apply.stderr);
    assert.equal(domstate('g-real'), 'running');
    const xml = lv.virsh('dumpxml', 'g-real', '--inactive');
    assert.match(xml, /<memory unit='KiB'>98304<\/memory>/, 'memory from the guest, over the profile\'s');
    assert.match(xml, new RegExp(`<source file='${folder('g-real')}/cairn-disk1.qcow2'/>`), 'disks[0] added empty: the noop build has none');
    assert.equal(capacity('g-real', 'vda'), 8 * MiB);
    const again = await runCli(['apply', '--site', site]);
    assert.equal(again.status, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /0 changed/);
    const stop = await runCli(['apply', '--site', files({ disks: ['8M'], memory: '96M', state: 'stopped' })]);
    assert.equal(stop.status, 0, stop.stdout + stop.stderr);
    assert.equal(domstate('g-real'), 'shut off');
    const uuid = lv.virsh('domuuid', 'g-real').trim();
    const rebuilt = await runCli(['apply', '--site', files({ disks: ['8M'], memory: '96M', state: 'stopped', profile: 'bare2', allow_rebuild: true })]);
    assert.equal(rebuilt.status, 0, rebuilt.stdout + rebuilt.stderr);
    assert.notEqual(lv.virsh('domuuid', 'g-real').trim(), uuid);
    assert.match(lv.virsh('dumpxml', 'g-real', '--inactive'), /<vcpu placement='static'>2<\/vcpu>/, 'the new profile\'s cpus');
    assert.equal(domstate('g-real'), 'shut off', 'stopped, as it is to be');
    assert.deepEqual(readdirSync(join(lv.dir, 'guests')).filter((f) => f.startsWith('g-real')), ['g-real']);
  });

  test('an existing guest Cairn did not build is managed in place through the CLI (state, autostart) without a build; ensure absent undefines it and leaves the files it had', HANG, async () => {
    const xml = join(lv.dir, 'g-adopt.xml');
    writeFileSync(xml, `<domain type='qemu'><name>g-adopt</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><emulator>/usr/bin/qemu-system-x86_64</emulator><memballoon model='none'/></devices></domain>`);
    lv.virsh('define', xml);
    const root = tempDir('cairn-guest-cli-');
    const site = makeSite({
      'cairn.yaml': `targets:\n  t1:\n    executor: local\n    state_dir: ${root}/state\n    run: [s]\n`,
      'states/s.yaml': `s:\n${guest('g-adopt', { boot: true })}`,
    });
    const apply = await runCli(['apply', '--site', site]);
    assert.equal(apply.status, 0, apply.stdout + apply.stderr);
    assert.equal(domstate('g-adopt'), 'running');
    assert.ok(autostart('g-adopt'));
    const again = await runCli(['apply', '--site', site, '--json']);
    assert.equal(again.status, 0);
    assert.match(again.stdout, /"unchanged":\s*1/);

    // Its own files where Cairn would keep a guest's: ensure absent removes the domain, not them.
    mkdirSync(folder('g-adopt'), { recursive: true });
    writeFileSync(join(folder('g-adopt'), 'theirs.img'), 'data');
    const absent = makeSite({
      'cairn.yaml': `targets:\n  t1:\n    executor: local\n    state_dir: ${root}/state\n    run: [s]\n`,
      'states/s.yaml': `s:\n${guest('g-adopt', { ensure: 'absent' })}`,
    });
    const gone = await runCli(['apply', '--site', absent, '-v']);
    assert.equal(gone.status, 0, gone.stdout + gone.stderr);
    assert.ok(!defined('g-adopt'));
    assert.deepEqual(readdirSync(folder('g-adopt')), ['theirs.img']);
    assert.match(gone.stdout + gone.stderr, /left .*g-adopt as it is: g-adopt was not built by Cairn/);
  });
});
