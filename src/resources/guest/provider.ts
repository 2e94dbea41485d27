/**
 * The `libvirt` provider of `guest`: `virsh -c URI …`, one connection per command, through the
 * target's executor. A guest's files (the disks its profile built, the disks added for `disks`,
 * the NoCloud seed ISO with its user data, the definition it was defined from) live in
 * `<storage>/<name>/`; that folder is what `ensure: absent` removes with the domain, and nothing
 * else. A rebuild builds the new guest in `<storage>/<name>.cairn-new/` first and swaps only once
 * libvirt has accepted the new definition, keeping the old one until the new one is defined.
 */
import { posix } from 'node:path';
import { isTargetFailure } from '../../executors/types.ts';
import { nowMs, pauseFor } from '../../lib/clock.ts';
import { sha256Hex } from '../../lib/digest.ts';
import { must } from '../commands.ts';
import { ApplyError, defineProvider, type Current, type Desired, type ProviderContext } from '../type.ts';
import type { guestType } from './type.ts';
import { noSuchDomain, parseBlockList, parseDefinition, parseFields, parseInterfaces, Virsh, virshError, type BlockDevice } from './virsh.ts';

type Want = Desired<typeof guestType>;
type Have = Current<typeof guestType>;
type Ctx = ProviderContext<typeof guestType>;

/** Where Cairn records, in the domain's own definition, the profile it was built from. */
const METADATA_URI = 'https://cairn.invalid/guest/1';
/** The seed ISO's file name: a cdrom of that name is Cairn's, not one of `cdroms`. */
export const SEED_ISO = 'cairn-seed.iso';
/**
 * A file in a guest's folder while Cairn is making it (from the build until the guest is
 * defined and started): a folder that still has it belongs to a create that never finished.
 */
const MARKER = '.cairn-guest';
/** How often a shutdown is checked on. */
const SHUTDOWN_POLL_MS = 500;

const folderOf = (d: Want) => posix.join(d.storage, d.name);
const stagingOf = (d: Want) => `${folderOf(d)}.cairn-new`;
const previousOf = (d: Want) => `${folderOf(d)}.cairn-old`;

type RunState = 'running' | 'stopped' | 'paused';

/** libvirt's domain states (virsh domstate) in the type's words. */
function runState(text: string): RunState {
  if (text === 'shut off' || text === 'crashed') return 'stopped';
  if (text === 'paused' || text === 'pmsuspended') return 'paused';
  return 'running';
}

async function domstate(v: Virsh, name: string): Promise<RunState> {
  return runState((await v.must(['domstate', name])).trim());
}

async function capacity(v: Virsh, name: string, target: string): Promise<number> {
  const fields = parseFields(await v.must(['domblkinfo', name, target]));
  const bytes = Number(fields.Capacity);
  if (!Number.isFinite(bytes)) throw new ApplyError(`virsh domblkinfo ${name} ${target} gave no capacity`);
  return bytes;
}

async function blockDevices(v: Virsh, name: string, live: boolean): Promise<BlockDevice[]> {
  return parseBlockList(await v.must(['domblklist', name, '--details', ...(live ? [] : ['--inactive'])]));
}

const isSeed = (b: BlockDevice) => posix.basename(b.source) === SEED_ISO;
const cdromsOf = (blocks: BlockDevice[]) => blocks.filter((b) => b.device === 'cdrom' && b.source !== '-' && !isSeed(b));

/** The first index where two lists differ (their common prefix's length). */
function firstDifference<T>(a: readonly T[], b: readonly T[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** A target name of the form `<prefix><letter>` that no device has. */
function freeTarget(prefix: string, used: Set<string>): string {
  for (let i = 0; i < 26; i++) {
    const name = `${prefix}${String.fromCharCode(97 + i)}`;
    if (!used.has(name)) {
      used.add(name);
      return name;
    }
  }
  throw new ApplyError(`no free ${prefix}* device name left`);
}

async function read(ctx: Ctx, d: Want): Promise<Have> {
  const v = new Virsh(ctx, d.uri);
  const info = await v.run(['dominfo', d.name]);
  if (info.code !== 0) {
    if (noSuchDomain(info)) return undefined;
    throw virshError(['dominfo', d.name], info);
  }
  const fields = parseFields(info.stdout);
  const state = runState(fields.State ?? '');
  // A running guest is read as it runs: a definition changed but not yet restarted into still
  // differs, so an interrupted reload is finished by the next run.
  const live = state !== 'stopped';
  const definition = parseDefinition(await v.must(['dumpxml', d.name, ...(live ? [] : ['--inactive'])]));
  const blocks = await blockDevices(v, d.name, live);
  const interfaces = parseInterfaces(await v.must(['domiflist', d.name, ...(live ? [] : ['--inactive'])]));
  const sizes: number[] = [];
  for (const disk of blocks.filter((b) => b.device === 'disk')) sizes.push(await capacity(v, d.name, disk.target));
  const meta = await v.run(['metadata', d.name, '--uri', METADATA_URI, '--config']);
  const recorded = meta.code === 0 ? /profile=["']([^"']*)["']/.exec(meta.stdout)?.[1] : undefined;
  // Disks that only have to grow are an update (disk_sizes); `disks` itself differs only where
  // growing cannot get there (another count, a smaller size): a rebuild.
  const growable = d.disks !== undefined && d.disks.length === sizes.length && d.disks.every((want, i) => want >= sizes[i]!);
  return {
    name: d.name,
    ensure: 'present',
    // `paused` is neither desired state, so a paused guest differs from both (and is resumed).
    state: state as Want['state'],
    boot: fields.Autostart === 'enable',
    ...(definition.cpus !== undefined ? { cpus: definition.cpus } : {}),
    ...(definition.memoryKiB !== undefined ? { memory: definition.memoryKiB / 1024 } : {}),
    networks: interfaces.map((i) => `${i.type}:${i.source}`),
    cdroms: cdromsOf(blocks).map((b) => b.source),
    disks: growable ? d.disks : sizes,
    disk_sizes: sizes,
    // A guest Cairn did not build (no record) is taken as built from the profile the site names.
    profile: recorded ?? d.profile,
  };
}

/**
 * Brings the persistent definition to the desired cpus, memory, networks and cdroms, with
 * `--config` edits against the definition as it is now (not the running guest's view, which a
 * half-done earlier reload may leave behind): it takes effect when the guest next starts.
 */
async function configure(v: Virsh, d: Want): Promise<void> {
  const name = d.name;
  const xml = await v.must(['dumpxml', name, '--inactive']);
  const definition = parseDefinition(xml);
  if (d.cpus !== undefined && definition.cpus !== d.cpus) {
    const maximum = Number(/<vcpu\b[^>]*>(\d+)<\/vcpu>/.exec(xml)?.[1] ?? 0);
    const steps = [['setvcpus', name, String(d.cpus), '--config', '--maximum'], ['setvcpus', name, String(d.cpus), '--config']];
    // The count may never exceed the maximum on the way: raise the maximum first, lower it last.
    for (const step of d.cpus > maximum ? steps : steps.reverse()) await v.must(step);
  }
  if (d.memory !== undefined && definition.memoryKiB !== d.memory * 1024) {
    const kib = `${d.memory * 1024}KiB`;
    const steps = [['setmaxmem', name, kib, '--config'], ['setmem', name, kib, '--config']];
    for (const step of d.memory * 1024 > (definition.memoryKiB ?? 0) ? steps : steps.reverse()) await v.must(step);
  }
  if (d.networks !== undefined) {
    const interfaces = parseInterfaces(await v.must(['domiflist', name, '--inactive']));
    const have = interfaces.map((i) => `${i.type}:${i.source}`);
    // Interfaces before the first difference stay as they are (and keep their MAC addresses).
    const keep = firstDifference(have, d.networks);
    for (const i of interfaces.slice(keep)) await v.must(['detach-interface', name, i.type, '--mac', i.mac, '--config']);
    for (const net of d.networks.slice(keep)) {
      const [kind, source] = net.split(':') as [string, string];
      await v.must(['attach-interface', name, kind, source, '--model', 'virtio', '--config']);
    }
  }
  if (d.cdroms !== undefined) {
    const blocks = await blockDevices(v, name, false);
    const cdroms = cdromsOf(blocks);
    const keep = firstDifference(cdroms.map((b) => b.source), d.cdroms);
    const used = new Set(blocks.map((b) => b.target));
    for (const b of cdroms.slice(keep)) {
      await v.must(['detach-disk', name, b.target, '--config']);
      used.delete(b.target);
    }
    for (const iso of d.cdroms.slice(keep)) await attachCdrom(v, name, iso, used);
  }
}

function attachCdrom(v: Virsh, name: string, iso: string, used: Set<string>): Promise<string> {
  return v.must(['attach-disk', name, iso, freeTarget('sd', used), '--type', 'cdrom', '--mode', 'readonly', '--targetbus', 'sata', '--config']);
}

async function imageInfo(ctx: Ctx, path: string): Promise<{ format: string; bytes: number }> {
  // -U: the image may be open by a running guest.
  const r = await must(ctx.exec, ['qemu-img', 'info', '-U', '--output=json', path], { label: `qemu-img info ${path}` });
  const info = JSON.parse(r.stdout) as { format: string; 'virtual-size': number };
  return { format: info.format, bytes: info['virtual-size'] };
}

async function resizeImage(ctx: Ctx, path: string, bytes: number): Promise<void> {
  const { format } = await imageInfo(ctx, path);
  await must(ctx.exec, ['qemu-img', 'resize', '-f', format, path, String(bytes)], { label: `qemu-img resize ${path}` });
}

/** Grows the disks `disk_sizes` asks more of: `blockresize` while the guest runs, else `qemu-img resize`. */
async function growDisks(ctx: Ctx, v: Virsh, d: Want, live: boolean): Promise<void> {
  if (d.disk_sizes === undefined) return;
  const disks = (await blockDevices(v, d.name, live)).filter((b) => b.device === 'disk');
  for (const [i, disk] of disks.entries()) {
    const want = d.disk_sizes[i];
    if (want === undefined) continue;
    const have = await capacity(v, d.name, disk.target);
    if (want < have) throw new ApplyError(`disk ${i + 1} (${disk.target}) of guest ${d.name} is ${have} bytes: it cannot shrink to ${want} in place`);
    if (want === have) continue;
    ctx.log(`growing ${disk.target} (${disk.source}) from ${have} to ${want} bytes`);
    if (live) await v.must(['blockresize', d.name, disk.target, `${want}B`]);
    else await resizeImage(ctx, disk.source, want);
  }
}

/** ACPI shutdown, waiting up to `shutdown_timeout` for the guest to power off; then destroy. */
async function stop(ctx: Ctx, v: Virsh, d: Want): Promise<void> {
  const r = await v.run(['shutdown', d.name]);
  const start = nowMs();
  const limit = d.shutdown_timeout * 1000;
  if (r.code !== 0) {
    if ((await domstate(v, d.name)) === 'stopped') return;
    // No graceful way to stop this guest (no ACPI, say): stopping it is destroying it.
    ctx.log(`guest ${d.name} refused the ACPI shutdown (${r.stderr.trim()}): destroying it`);
  }
  while (r.code === 0) {
    if (ctx.signal.aborted) throw new ApplyError(`cancelled while guest ${d.name} was shutting down`);
    if ((await domstate(v, d.name)) === 'stopped') return;
    const waited = nowMs() - start;
    if (waited >= limit) break;
    ctx.progress({ done: Math.round(waited / 1000), total: d.shutdown_timeout, step: 'waiting for the ACPI shutdown' });
    await pauseFor(Math.min(SHUTDOWN_POLL_MS, limit - waited), ctx.signal);
  }
  if (r.code === 0) ctx.log(`guest ${d.name} did not shut down within ${d.shutdown_timeout}s of the ACPI request: destroying it`);
  const destroyed = await v.run(['destroy', d.name]);
  if (destroyed.code !== 0 && (await domstate(v, d.name)) !== 'stopped') throw virshError(['destroy', d.name], destroyed);
}

async function setAutostart(v: Virsh, d: Want): Promise<void> {
  await v.must(['autostart', d.name, ...(d.boot ? [] : ['--disable'])]);
}

/** The profile's build, into `out` (emptied first: a folder of Cairn's own naming). */
async function build(ctx: Ctx, d: Want, out: string): Promise<{ definition: string; disks: string[] }> {
  if (!d.profile) {
    throw new ApplyError(`guest ${d.name} has no profile to build it from: set profile (profiles/<name>.yaml in the site)`);
  }
  if (!ctx.images) {
    throw new ApplyError(`guest ${d.name} must be built from profile ${d.profile}, but this run has no provisioner ` +
      `to build it with (DESIGN §10); build it with cairn provision and define it, or run where builds are available`);
  }
  await ctx.exec.remove(out);
  await ctx.exec.mkdir(out, { parents: true, mode: 0o700 });
  try {
    const built = await ctx.images.build({
      profile: d.profile, name: d.name, kind: 'guest', outputDir: out,
      ...(d.args ? { args: d.args } : {}), ...(d.user_data !== undefined ? { user_data: d.user_data } : {}),
      signal: ctx.signal, progress: (u) => ctx.progress(u), log: (m) => ctx.log(m),
    });
    if (!built.definition) throw new ApplyError(`profile ${d.profile} made no domain definition for guest ${d.name}`);
    const named = /<name>([^<]*)<\/name>/.exec(built.definition)?.[1];
    if (named !== d.name) throw new ApplyError(`profile ${d.profile} defined a domain named ${named ?? '(none)'}, not ${d.name}`);
    await ctx.exec.writeFile(posix.join(out, MARKER), `${d.name}\n`, { mode: 0o600 });
    return { definition: built.definition, disks: built.disks };
  } catch (err) {
    await ctx.exec.remove(out);
    if (ctx.signal.aborted && !isTargetFailure(err)) throw new ApplyError(`the build of guest ${d.name} was cancelled; nothing is left of it`);
    throw err;
  }
}

/** The NoCloud seed (cloud-init): user-data and meta-data on an ISO labelled `cidata`. */
async function writeSeed(ctx: Ctx, d: Want, folder: string): Promise<string> {
  const seed = posix.join(folder, 'seed');
  await ctx.exec.mkdir(seed, { parents: true, mode: 0o700 });
  const userData = posix.join(seed, 'user-data');
  const metaData = posix.join(seed, 'meta-data');
  // A new instance-id for new user data: cloud-init applies user data once per instance.
  const instance = `${d.name}-${sha256Hex(d.user_data ?? '').slice(0, 12)}`;
  await ctx.exec.writeFile(userData, d.user_data ?? '', { mode: 0o600 });
  await ctx.exec.writeFile(metaData, `instance-id: ${instance}\nlocal-hostname: ${d.name}\n`, { mode: 0o600 });
  const iso = posix.join(folder, SEED_ISO);
  await must(ctx.exec, ['genisoimage', '-quiet', '-output', iso, '-volid', 'cidata', '-joliet', '-rock', userData, metaData],
    { label: 'genisoimage (the user data seed ISO)' });
  await ctx.exec.remove(seed);
  return iso;
}

/**
 * Makes the guest from a finished build in `from`: the folder becomes `<storage>/<name>`, its
 * disks are grown (or added) to `disks`, the seed ISO is made, and the domain is defined,
 * configured, marked for autostart and started as asked. `done` says how far it got (what a
 * caller has to undo).
 */
async function install(ctx: Ctx, v: Virsh, d: Want, from: string, built: { definition: string; disks: string[] }, done: { moved: boolean; defined: boolean }): Promise<void> {
  const folder = folderOf(d);
  await must(ctx.exec, ['mv', '-T', from, folder], { label: `mv ${from} ${folder}` });
  done.moved = true;
  const moved = (p: string) => (p.startsWith(`${from}/`) ? folder + p.slice(from.length) : p);
  const xml = built.definition.split(`${from}/`).join(`${folder}/`);
  const disks = built.disks.map(moved);
  const wanted = d.disk_sizes ?? [];
  for (const [i, disk] of disks.entries()) {
    const want = wanted[i];
    if (want === undefined) continue;
    const { bytes } = await imageInfo(ctx, disk);
    if (want < bytes) {
      throw new ApplyError(`profile ${d.profile} makes disk ${i + 1} ${bytes} bytes, more than disks[${i}] (${want}): a disk cannot shrink`);
    }
    if (want > bytes) await resizeImage(ctx, disk, want);
  }
  const added: string[] = [];
  for (let i = disks.length; i < wanted.length; i++) {
    // A name of its own: a build may have named its disks disk1, disk2, …
    const path = posix.join(folder, `cairn-disk${i + 1}.qcow2`);
    await must(ctx.exec, ['qemu-img', 'create', '-q', '-f', 'qcow2', path, String(wanted[i])], { label: `qemu-img create ${path}` });
    added.push(path);
  }
  const seed = d.user_data !== undefined ? await writeSeed(ctx, d, folder) : undefined;
  const file = posix.join(folder, 'domain.xml');
  await ctx.exec.writeFile(file, xml, { mode: 0o600 });
  await v.must(['define', file]);
  done.defined = true;
  await configure(v, d);
  const used = new Set((await blockDevices(v, d.name, false)).map((b) => b.target));
  for (const path of added) {
    await v.must(['attach-disk', d.name, path, freeTarget('vd', used), '--driver', 'qemu', '--subdriver', 'qcow2', '--targetbus', 'virtio', '--config']);
  }
  if (seed) await attachCdrom(v, d.name, seed, used);
  await v.must(['metadata', d.name, '--uri', METADATA_URI, '--key', 'cairn', '--set', `<guest profile="${d.profile}"/>`, '--config']);
  await setAutostart(v, d);
  if (d.state === 'running') await v.must(['start', d.name]);
  // Made: from now on the folder is the guest's, never a leftover to clear.
  await ctx.exec.remove(posix.join(folder, MARKER));
}

/** Stops a running guest at once and removes its definition (and its NVRAM and saved state). */
async function undefine(v: Virsh, name: string): Promise<void> {
  if ((await domstate(v, name)) !== 'stopped') {
    const r = await v.run(['destroy', name]);
    if (r.code !== 0 && (await domstate(v, name)) !== 'stopped') throw virshError(['destroy', name], r);
  }
  await v.must(['undefine', name, '--nvram', '--managed-save', '--snapshots-metadata']);
}

async function create(ctx: Ctx, d: Want): Promise<void> {
  const v = new Virsh(ctx, d.uri);
  const folder = folderOf(d);
  if (await ctx.exec.stat(folder)) {
    const marker = await ctx.exec.readFile(posix.join(folder, MARKER));
    if (marker?.toString() === `${d.name}\n`) {
      // A create (or the swap of a rebuild) that was killed part way: that guest never was.
      ctx.log(`removing ${folder}, left by an interrupted create of ${d.name}`);
      await ctx.exec.remove(folder);
    }
  }
  if (await ctx.exec.stat(folder)) {
    throw new ApplyError(`guest ${d.name} does not exist, but ${folder} does: Cairn keeps a guest's files there, ` +
      'and will not build over a folder it did not make for this guest; move it away or remove it');
  }
  if (await ctx.exec.stat(previousOf(d))) {
    ctx.log(`${previousOf(d)} holds the files of a guest ${d.name} whose rebuild was killed part way: left for you to restore or remove`);
  }
  const built = await build(ctx, d, stagingOf(d));
  const done = { moved: false, defined: false };
  try {
    await install(ctx, v, d, stagingOf(d), built, done);
  } catch (err) {
    // A create that fails (or is cancelled) leaves nothing: no domain, no files.
    if (done.defined) await undefine(new Virsh(ctx, d.uri, false), d.name).catch(() => undefined);
    await ctx.exec.remove(folder);
    await ctx.exec.remove(stagingOf(d));
    throw err;
  }
}

async function destroy(ctx: Ctx, d: Want): Promise<void> {
  const v = new Virsh(ctx, d.uri);
  // Only a guest Cairn built (its record in the definition) has a folder Cairn made.
  const built = (await v.run(['metadata', d.name, '--uri', METADATA_URI, '--config'])).code === 0;
  await undefine(v, d.name);
  const folder = folderOf(d);
  if (!(await ctx.exec.stat(folder))) return;
  if (built) {
    await ctx.exec.remove(folder);
    ctx.log(`removed ${folder} (the disks, seed ISO and definition Cairn made for ${d.name})`);
  } else {
    ctx.log(`left ${folder} as it is: ${d.name} was not built by Cairn`);
  }
}

/** Changes in place: the definition (takes effect at the next start), disk growth, autostart, state. */
async function converge(ctx: Ctx, action: 'update' | 'reload', d: Want, current: NonNullable<Have>): Promise<void> {
  const v = new Virsh(ctx, d.uri);
  const state = current.state as RunState;
  await configure(v, d);
  await growDisks(ctx, v, d, state !== 'stopped');
  if (d.boot !== current.boot) await setAutostart(v, d);
  if (d.state === 'stopped') {
    if (state !== 'stopped') await stop(ctx, v, d);
  } else if (state === 'paused') {
    await v.must(['resume', d.name]);
  } else if (state === 'stopped' && action === 'update') {
    // For a reload the refresh that follows starts it, from the new definition.
    await v.must(['start', d.name]);
  }
}

/**
 * Build the new guest first, under a staging folder, and check libvirt accepts its definition
 * (defined once under a temporary name); only then stop and undefine the old one, keep its
 * folder aside, and make the new one. When that fails, the old guest is put back as it was.
 */
async function rebuild(ctx: Ctx, d: Want, current: Have): Promise<void> {
  const v = new Virsh(ctx, d.uri);
  const folder = folderOf(d);
  const staging = stagingOf(d);
  const previous = previousOf(d);
  const built = await build(ctx, d, staging);
  const probeName = `${d.name}-cairn-new`;
  const probe = posix.join(staging, 'probe.xml');
  try {
    await ctx.exec.writeFile(probe, built.definition.replace(/<name>[^<]*<\/name>/, `<name>${probeName}</name>`).replace(/<uuid>[^<]*<\/uuid>/, ''), { mode: 0o600 });
    await v.must(['define', probe]);
    await v.must(['undefine', probeName]);
    await ctx.exec.remove(probe);
  } catch (err) {
    await ctx.exec.remove(staging);
    throw new ApplyError(`the new definition of guest ${d.name} was refused, so the guest is left as it was: ${(err as Error).message}`);
  }

  const oldXml = await v.must(['dumpxml', d.name, '--inactive']);
  const wasRunning = current?.state !== 'stopped';
  const hadFolder = (await ctx.exec.stat(folder)) !== undefined;
  // How far the swap got, for putting the old guest back.
  const done = { undefined: false, movedAside: false, moved: false, defined: false };
  // The old definition, as a file to define it again from (kept only if that fails).
  const saved = `${previous}.xml`;
  try {
    if (wasRunning) await stop(ctx, v, d);
    await v.must(['undefine', d.name, '--managed-save', '--snapshots-metadata']);
    done.undefined = true;
    if (hadFolder) {
      await ctx.exec.remove(previous);
      await must(ctx.exec, ['mv', '-T', folder, previous], { label: `mv ${folder} ${previous}` });
      done.movedAside = true;
    }
    await install(ctx, v, d, staging, built, done);
  } catch (err) {
    const why = (err as Error).message;
    // Putting the old guest back goes on even when the run was cancelled.
    const back = new Virsh(ctx, d.uri, false);
    try {
      if (done.defined) await undefine(back, d.name);
      if (done.moved) await ctx.exec.remove(folder);
      await ctx.exec.remove(staging);
      if (done.movedAside) await must(ctx.exec, ['mv', '-T', previous, folder], { label: `mv ${previous} ${folder}` });
      done.movedAside = false;
      if (done.undefined) {
        await ctx.exec.writeFile(saved, oldXml, { mode: 0o600 });
        await back.must(['define', saved]);
        await ctx.exec.remove(saved);
      }
      if (wasRunning && (await domstate(back, d.name)) === 'stopped') await back.must(['start', d.name]);
    } catch (undo) {
      const kept = done.undefined ? await ctx.exec.writeFile(saved, oldXml, { mode: 0o600 }).then(() => true, () => false) : false;
      const restore = [
        ...(done.movedAside ? [`mv -T ${previous} ${folder}`] : []),
        ...(done.undefined ? [kept ? `virsh -c '${d.uri}' define ${saved}` : `virsh -c '${d.uri}' define <its definition, which could not be saved>`] : []),
        ...(wasRunning ? [`virsh -c '${d.uri}' start ${d.name}`] : []),
      ];
      throw new ApplyError(`rebuilding guest ${d.name} failed (${why}), and putting the old one back failed too ` +
        `(${(undo as Error).message}).${hadFolder ? ` The old guest's files are in ${done.movedAside ? previous : folder}.` : ''}` +
        `${done.undefined ? ` It is not defined${kept ? `; its definition is in ${saved}` : ''}.` : ''} To restore it: ${restore.join(' && ')}`);
    }
    throw new ApplyError(`rebuilding guest ${d.name} failed, and the old guest was put back as it was: ${why}`);
  }
  await ctx.exec.remove(previous);
}

export const libvirtGuest = defineProvider<typeof guestType>({
  type: 'guest',
  name: 'libvirt',
  // virsh runs wherever the target has it; a target without it fails the node with virsh's absence.
  suitable: () => true,
  read,
  async apply(ctx, action, desired, current) {
    if (action === 'create') await create(ctx, desired);
    else if (action === 'destroy') await destroy(ctx, desired);
    else if ((action === 'update' || action === 'reload') && current) await converge(ctx, action, desired, current);
    else throw new ApplyError(`guest ${desired.name}: cannot ${action}`);
  },
  rebuild,
  async refresh(ctx, desired) {
    if (desired.ensure === 'absent' || desired.state === 'stopped') return { changed: false, reason: 'the guest is to be stopped' };
    const v = new Virsh(ctx, desired.uri);
    const state = await domstate(v, desired.name);
    if (state === 'paused') await v.must(['resume', desired.name]);
    if (state !== 'stopped') await stop(ctx, v, desired);
    await v.must(['start', desired.name]);
  },
});
