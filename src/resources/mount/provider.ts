/**
 * Mounts through the fstab and the mount(8) of the target (Linux, FreeBSD): the entry is the
 * first fstab line for the mount point; what is mounted now is read from the kernel (Linux
 * /proc/self/mountinfo, FreeBSD `mount -p`, as the OS tables' `mount` section says). Mounting is
 * `mount PATH` once the entry is written, so the entry is what gets tested; an options change of a
 * mounted file system is the tables' remount with the new options (`mount -o remount,OPTIONS PATH`,
 * FreeBSD `mount -u -o OPTIONS PATH`: given explicitly, a bind mount's `ro` changes the bind and
 * not the file system under it), a device or type change an unmount and a mount.
 */
import { outputTail } from '../commands.ts';
import { osCommand, osSection } from '../os.ts';
import { ApplyError, defineProvider, type Current, type Desired, type ProviderContext } from '../type.ts';
import { findEntry, liveAt, parseMountinfo, parseMountP, withEntry, type FstabEntry, type LiveMount } from './fstab.ts';
import type { mountType } from './type.ts';

type Want = Desired<typeof mountType>;

interface Tables {
  fstab: string;
  live: string[];
  liveFormat: 'mountinfo' | 'fstab';
  remount: string[];
}

/** The tables' `mount` section; a target whose tables have none cannot be served (the node fails saying so). */
function tables(os: Record<string, unknown>): Tables | undefined {
  const s = osSection(os, 'mount');
  const live = osCommand(os, 'mount', 'live');
  const remount = osCommand(os, 'mount', 'remount');
  const format = s.live_format;
  if (typeof s.fstab !== 'string' || !live || !remount || (format !== 'mountinfo' && format !== 'fstab')) return undefined;
  return { fstab: s.fstab, live, liveFormat: format, remount };
}

function mustTables(os: Record<string, unknown>): Tables {
  const t = tables(os);
  if (!t) throw new ApplyError("the OS tables have no complete `mount` section (fstab, live, live_format, remount) for this target");
  return t;
}

/** What is mounted now, read once for every mount node until the target next changes. */
function liveMounts(ctx: ProviderContext, t: Tables): Promise<Map<string, LiveMount>> {
  return ctx.batch('mount:live', async () => {
    const r = await ctx.exec.run(t.live);
    if (r.code !== 0) throw new ApplyError(`${t.live.join(' ')} exited with ${r.code}: ${outputTail(r.stderr || r.stdout)}`);
    return t.liveFormat === 'mountinfo' ? parseMountinfo(r.stdout) : parseMountP(r.stdout);
  });
}

async function readFstab(ctx: ProviderContext, t: Tables): Promise<string | undefined> {
  return (await ctx.exec.readFile(t.fstab))?.toString('utf8');
}

function entryOf(want: Want): FstabEntry {
  return { device: want.device!, path: want.path, fstype: want.fstype!, options: want.options, dump: want.dump, pass: want.pass };
}

/** The entry's fields in the type's words; none when there is no entry (each then differs from what is asked). */
function fields(entry: FstabEntry | undefined) {
  return entry ? { device: entry.device, fstype: entry.fstype, options: entry.options, dump: entry.dump, pass: entry.pass } : {};
}

async function run(ctx: ProviderContext, argv: string[]): Promise<void> {
  const r = await ctx.exec.run(argv);
  if (r.code !== 0) throw new ApplyError(`${argv.join(' ')} exited with ${r.code}: ${outputTail(r.stderr || r.stdout) || 'no output'}`);
}

/** Writes `entry` for the path (or removes it), keeping every other line; false when the file already said so. */
async function writeEntry(ctx: ProviderContext, t: Tables, path: string, entry: FstabEntry | undefined): Promise<boolean> {
  const before = await readFstab(ctx, t);
  const after = withEntry(before ?? '', path, entry);
  if (after === (before ?? '')) return false;
  await ctx.exec.writeFile(t.fstab, after, before === undefined ? { mode: 0o644 } : {});
  return true;
}

export const fstabMount = defineProvider<typeof mountType>({
  type: 'mount',
  name: 'fstab',
  suitable: (facts, os) => (facts.kernel === 'linux' || facts.kernel === 'freebsd') && tables(os) !== undefined,

  async read(ctx, desired): Promise<Current<typeof mountType>> {
    const t = mustTables(ctx.os);
    const { entry, count } = findEntry((await readFstab(ctx, t)) ?? '', desired.path);
    const live = liveAt(await liveMounts(ctx, t), desired.path);
    // The provider's own notes for apply: never compared (no change class).
    const seen = { path: desired.path, live: live ?? null, entries: count };
    switch (desired.ensure) {
      case 'mounted': {
        const ensure = entry && live ? 'mounted' : entry ? 'present' : live ? 'unmounted' : 'absent';
        // Two entries for one mount point: the later ones go when the first is written.
        return { ...seen, ...fields(entry), ensure: count > 1 ? 'present' : ensure };
      }
      case 'present':
        return { ...seen, ...fields(entry), ensure: entry && count === 1 ? 'present' : entry ? 'unmounted' : 'absent' };
      case 'unmounted':
        // The fstab is not this state's business: its fields read as asked.
        return { ...seen, device: desired.device, fstype: desired.fstype, options: desired.options, dump: desired.dump, pass: desired.pass, ensure: live ? 'mounted' : 'unmounted' };
      case 'absent':
        return entry || live ? { ...seen, ...fields(entry), ensure: 'present' } : undefined;
    }
  },

  async apply(ctx, _action, desired, current) {
    const t = mustTables(ctx.os);
    const path = desired.path;
    const live = (current?.live ?? null) as LiveMount | null;
    switch (desired.ensure) {
      case 'present':
        await writeEntry(ctx, t, path, entryOf(desired));
        return;
      case 'unmounted':
        if (live) await run(ctx, ['umount', path]);
        return;
      case 'absent': {
        if (live) await run(ctx, ['umount', path]);
        await writeEntry(ctx, t, path, undefined);
        // Ansible removes the mount point too; only an empty one here: what is under it stays.
        const st = await ctx.exec.stat(path);
        if (st?.type === 'directory') {
          const r = await ctx.exec.run(['rmdir', path]);
          if (r.code !== 0) ctx.log(`kept the mount point ${path}: ${outputTail(r.stderr || r.stdout)}`);
        }
        return;
      }
      case 'mounted': {
        const st = await ctx.exec.stat(path);
        if (!st) await ctx.exec.mkdir(path, { parents: true, mode: 0o755 });
        else if (st.type !== 'directory') throw new ApplyError(`the mount point ${path} is a ${st.type}, not a directory`);
        const was = current?.device !== undefined ? { device: current.device, fstype: current.fstype } : undefined;
        const wrote = await writeEntry(ctx, t, path, entryOf(desired));
        if (!live) {
          await run(ctx, ['mount', path]);
        } else if (wrote) {
          // Another device or type: a remount cannot swap what is mounted.
          const swapped = was ? was.device !== desired.device || was.fstype !== desired.fstype : live.fstype !== desired.fstype;
          if (swapped) {
            await run(ctx, ['umount', path]);
            await run(ctx, ['mount', path]);
          } else {
            await run(ctx, t.remount.map((a) => a.replace('{options}', desired.options).replace('{path}', path)));
          }
        }
        return;
      }
    }
  },
});
