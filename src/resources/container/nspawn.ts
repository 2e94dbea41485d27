/**
 * The `nspawn` provider of `container` (DESIGN §6): a machine of systemd-machined, run by the
 * stock `systemd-nspawn@NAME.service` (machinectl start/poweroff/enable/disable), its settings in
 * `/etc/systemd/nspawn/NAME.nspawn`, which Cairn writes whole, and its image under
 * `/var/lib/machines`: a root folder copied to `NAME`, a raw disk image copied to `NAME.raw`.
 * Copies, not `machinectl import-fs`/`import-raw`: those need systemd-importd (and its libcurl),
 * which many hosts lack, and a copy is as fast.
 *
 * What cannot be read back from the machine, where its image came from, is recorded in the
 * `.nspawn` file's first line. New images are built beside the live one, under a hidden name
 * machined does not list (`.NAME.cairn-new`), and renamed into place: an interrupted create or
 * rebuild leaves no machine, and a rebuild keeps the old one until the new one is complete.
 *
 * user_data is a shell script run once, at the first boot, by a one-shot unit put into the new
 * image (`cairn-user-data.service`), which renames the script away when it succeeded.
 */
import { isDeepStrictEqual } from 'node:util';
import { nowMs, pauseFor } from '../../lib/clock.ts';
import { outputTail, toolError } from '../commands.ts';
import { ApplyError, defineProvider, type Action, type Current, type Desired, type ProviderContext } from '../type.ts';
import type containerType from './type.ts';

type Container = typeof containerType;
type Ctx = ProviderContext<Container>;
type Want = Desired<Container>;
type Image = NonNullable<Want['image']>;

export const MACHINES = '/var/lib/machines';
export const NSPAWN_DIR = '/etc/systemd/nspawn';
/** The first line of a `.nspawn` file Cairn wrote; the rest of it is the image, as JSON. */
const HEADER = '# cairn container; image: ';
/** How long a machine may take to boot, or to power off before it is terminated. */
const START_MS = 180_000;
const STOP_MS = 90_000;
const POLL_MS = 200;

const USER_DATA_DIR = '/var/lib/cairn-user-data';
const USER_DATA_UNIT = 'cairn-user-data.service';

const nspawnPath = (name: string) => `${NSPAWN_DIR}/${name}.nspawn`;
const unitOf = (name: string) => `systemd-nspawn@${name}.service`;

/** The settings a `.nspawn` file holds, as the attributes say them. */
interface NspawnSettings {
  image?: Image;
  network: string;
  binds: string[];
  properties: Record<string, Record<string, string | string[]>>;
}

/** The `.nspawn` file for `desired`: sections in a fixed order, settings as given. */
export function nspawnFile(desired: Pick<Want, 'image' | 'network' | 'binds' | 'properties'>): string {
  const sections = new Map<string, [string, string][]>();
  const add = (section: string, key: string, value: string) => {
    const list = sections.get(section) ?? [];
    list.push([key, value]);
    sections.set(section, list);
  };
  for (const [section, keys] of Object.entries(desired.properties)) {
    for (const [key, value] of Object.entries(keys)) for (const v of Array.isArray(value) ? value : [value]) add(section, key, v);
  }
  for (const bind of desired.binds) add('Files', 'Bind', bind);
  const net = desired.network;
  if (net === 'private') {
    add('Network', 'Private', 'yes');
    add('Network', 'VirtualEthernet', 'no');
  } else if (net === 'host') {
    add('Network', 'Private', 'no');
    add('Network', 'VirtualEthernet', 'no');
  } else if (net === 'veth') add('Network', 'VirtualEthernet', 'yes');
  else add('Network', 'Bridge', net.slice('bridge:'.length));
  const order = ['Exec', 'Files', 'Network'];
  const text = [`${HEADER}${JSON.stringify(desired.image ?? null)}`];
  for (const section of [...sections.keys()].sort((a, b) => order.indexOf(a) - order.indexOf(b))) {
    text.push('', `[${section}]`, ...sections.get(section)!.map(([k, v]) => `${k}=${v}`));
  }
  return `${text.join('\n')}\n`;
}

/** Reads a `.nspawn` file back into the attributes' vocabulary (any file, Cairn's or not). */
export function parseNspawn(text: string): NspawnSettings {
  const found = new Map<string, Map<string, string[]>>();
  let section = '';
  let image: Image | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith(HEADER)) {
      try {
        image = (JSON.parse(line.slice(HEADER.length)) as Image | null) ?? undefined;
      } catch {
        image = undefined;
      }
      continue;
    }
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) {
      section = head[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0 || section === '') continue;
    const keys = found.get(section) ?? new Map<string, string[]>();
    found.set(section, keys);
    const key = line.slice(0, eq).trim();
    keys.set(key, [...(keys.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  const take = (s: string, k: string): string[] => {
    const values = found.get(s)?.get(k) ?? [];
    found.get(s)?.delete(k);
    return values;
  };
  const yes = (v: string[]) => v.length > 0 && /^(1|yes|true|on)$/i.test(v.at(-1)!);
  const bridge = take('Network', 'Bridge').at(-1);
  const veth = take('Network', 'VirtualEthernet');
  const priv = take('Network', 'Private');
  const zone = take('Network', 'Zone').at(-1);
  // Without a file, the stock unit's --network-veth applies; a file's VirtualEthernet=no turns it off.
  const network = bridge ? `bridge:${bridge}` : zone ? `zone:${zone}` : veth.length === 0 || yes(veth) ? 'veth' : yes(priv) ? 'private' : 'host';
  const binds = take('Files', 'Bind');
  const properties: NspawnSettings['properties'] = {};
  for (const [s, keys] of found) {
    for (const [k, values] of keys) (properties[s] ??= {})[k] = values.length === 1 ? values[0]! : values;
  }
  return { ...(image !== undefined ? { image } : {}), network, binds, properties };
}

async function run(ctx: Ctx, argv: string[], label = argv.slice(0, 3).join(' '), signal?: AbortSignal) {
  const r = await ctx.exec.run(argv, signal ? { signal } : {});
  if (r.code !== 0 || r.timedOut) throw toolError(label, r);
  return r;
}

/** machined's state of the machine: `running` while it is up (or on its way), else `stopped`. */
async function machineState(ctx: Ctx, name: string): Promise<'running' | 'stopped' | 'closing'> {
  const r = await ctx.exec.run(['machinectl', 'show', name, '-p', 'State', '--value']);
  if (r.code !== 0) return 'stopped';
  const state = r.stdout.trim();
  return state === 'closing' ? 'closing' : 'running';
}

async function isEnabled(ctx: Ctx, name: string): Promise<boolean> {
  const r = await ctx.exec.run(['systemctl', 'is-enabled', unitOf(name)]);
  return r.stdout.trim() === 'enabled';
}

/** Where the machine's image is: its root folder, its raw image, or neither. */
async function imageAt(ctx: Ctx, name: string): Promise<string | undefined> {
  for (const path of [`${MACHINES}/${name}`, `${MACHINES}/${name}.raw`]) if (await ctx.exec.stat(path)) return path;
  return undefined;
}

/** The tools the provider runs that the target lacks (read once per run until something changes). */
function missingTools(ctx: Ctx): Promise<string[]> {
  return ctx.batch('nspawn:tools', async () => {
    const r = await ctx.exec.run(['sh', '-c', 'for t in machinectl systemd-nspawn systemctl; do command -v $t >/dev/null 2>&1 || echo $t; done']);
    return r.stdout.trim().split('\n').filter(Boolean);
  });
}

async function requireTools(ctx: Ctx): Promise<void> {
  const missing = await missingTools(ctx);
  if (missing.length) throw new ApplyError(`${missing.join(', ')} not found on the target: the nspawn provider needs systemd-container (apt-get install systemd-container)`);
}

/** Starts the machine and waits for its system to be up (running or degraded), failing with its log. */
async function start(ctx: Ctx, name: string): Promise<void> {
  ctx.log(`machinectl start ${name}`);
  await run(ctx, ['machinectl', 'start', name], `machinectl start ${name}`);
  const deadline = nowMs() + START_MS;
  let last: string;
  for (;;) {
    const r = await ctx.exec.run(['systemctl', '-M', name, 'is-system-running', '--wait'], { timeoutMs: 30_000 });
    last = (r.stdout.trim() || r.stderr.trim()).split('\n').at(-1) ?? '';
    if (['running', 'degraded'].includes(last)) return;
    const unit = await ctx.exec.run(['systemctl', 'is-active', unitOf(name)]);
    if (unit.stdout.trim() === 'failed' || unit.stdout.trim() === 'inactive' || nowMs() > deadline || ctx.signal.aborted) {
      const log = await ctx.exec.run(['journalctl', '-u', unitOf(name), '-n', '15', '--no-pager', '-o', 'cat']);
      throw new ApplyError(`container ${name} did not come up (${unit.stdout.trim() || 'unknown'}; system: ${last || 'no answer'})` +
        `${log.stdout.trim() ? `:\n${outputTail(log.stdout, 15)}` : ''}`);
    }
    // Its bus is not there yet: the machine is still starting.
    await pauseFor(POLL_MS, ctx.signal);
  }
}

/** Powers the machine off and waits until machined has let it go; one that will not stop is terminated. */
async function poweroff(ctx: Ctx, name: string): Promise<void> {
  if ((await machineState(ctx, name)) === 'stopped') return;
  ctx.log(`machinectl poweroff ${name}`);
  await ctx.exec.run(['machinectl', 'poweroff', name]);
  const deadline = nowMs() + STOP_MS;
  while ((await machineState(ctx, name)) !== 'stopped') {
    if (nowMs() > deadline) {
      ctx.log(`${name} did not power off within ${STOP_MS / 1000} s: machinectl terminate`);
      await ctx.exec.run(['machinectl', 'terminate', name]);
      await run(ctx, ['systemctl', 'stop', unitOf(name)]);
      return;
    }
    await pauseFor(POLL_MS);
  }
}

async function setBoot(ctx: Ctx, name: string, boot: boolean): Promise<void> {
  ctx.log(`machinectl ${boot ? 'enable' : 'disable'} ${name}`);
  await run(ctx, ['machinectl', boot ? 'enable' : 'disable', name], `machinectl ${boot ? 'enable' : 'disable'} ${name}`);
}

/** The one-shot unit that runs user data at the first boot and puts the script away once it succeeded. */
const USER_DATA_SERVICE = [
  '[Unit]',
  'Description=Cairn user data (runs once, at the first boot)',
  `ConditionPathExists=${USER_DATA_DIR}/user-data`,
  'After=network.target',
  '',
  '[Service]',
  'Type=oneshot',
  'RemainAfterExit=yes',
  `ExecStart=/bin/sh ${USER_DATA_DIR}/user-data`,
  `ExecStartPost=/bin/mv ${USER_DATA_DIR}/user-data ${USER_DATA_DIR}/user-data.done`,
  '',
  '[Install]',
  'WantedBy=multi-user.target',
  '',
].join('\n');

async function placeUserData(ctx: Ctx, root: string, script: string): Promise<void> {
  await ctx.exec.mkdir(`${root}${USER_DATA_DIR}`, { parents: true, mode: 0o700 });
  await ctx.exec.writeFile(`${root}${USER_DATA_DIR}/user-data`, script, { mode: 0o700 });
  await ctx.exec.writeFile(`${root}/etc/systemd/system/${USER_DATA_UNIT}`, USER_DATA_SERVICE, { mode: 0o644 });
  await ctx.exec.mkdir(`${root}/etc/systemd/system/multi-user.target.wants`, { parents: true });
  await ctx.exec.symlink(`/etc/systemd/system/${USER_DATA_UNIT}`, `${root}/etc/systemd/system/multi-user.target.wants/${USER_DATA_UNIT}`);
}

/**
 * Builds the image of `desired` under a hidden name beside the live one, and returns where it is
 * and where it goes. Whatever fails (or is cancelled) removes what it made.
 */
async function buildImage(ctx: Ctx, desired: Want): Promise<{ staged: string; final: string }> {
  const name = desired.name;
  const image = desired.image;
  if (image === undefined) throw new ApplyError('image is required to create a container');
  await run(ctx, ['mkdir', '-p', MACHINES]);
  await sweep(ctx, name);
  let source: string;
  let kind: 'root' | 'raw';
  let buildDir: string | undefined;
  if (typeof image === 'string') {
    const st = await ctx.exec.stat(image);
    if (!st) throw new ApplyError(`image ${image} does not exist on the target`);
    if (st.type === 'directory') kind = 'root';
    else if (st.type === 'file') kind = 'raw';
    else throw new ApplyError(`image ${image} is neither a root folder nor a disk image`);
    source = image;
  } else {
    ({ source, kind, buildDir } = await buildFromProfile(ctx, name, image, desired.user_data));
  }
  const final = kind === 'root' ? `${MACHINES}/${name}` : `${MACHINES}/${name}.raw`;
  const staged = `${MACHINES}/.${name}${kind === 'raw' ? '.raw' : ''}.cairn-new`;
  try {
    if (kind === 'raw' && desired.user_data !== undefined) {
      throw new ApplyError('user_data needs a root folder image: a raw disk image cannot be written without mounting it');
    }
    ctx.log(`copying ${source} to ${staged}`);
    ctx.progress({ done: 0, step: `copying ${source}` });
    await copyStoppably(ctx, source, staged, `${MACHINES}/.${name}.cairn-copy.pid`);
    if (ctx.signal.aborted) throw new ApplyError('cancelled while copying the image');
    if (kind === 'root') {
      // The machine is named after its container, as machinectl's own pulls do.
      await ctx.exec.writeFile(`${staged}/etc/hostname`, `${name}\n`);
      if (desired.user_data !== undefined) await placeUserData(ctx, staged, desired.user_data);
    }
  } catch (err) {
    await ctx.exec.remove(staged);
    throw err;
  } finally {
    if (buildDir) await ctx.exec.remove(buildDir);
  }
  return { staged, final };
}

/**
 * Copies `source` to `target` on the target machine; a cancelled run kills the copy there. Not
 * every transport delivers a signal to a command (sshd does not), so the copy records its pid
 * and a command of its own kills it.
 */
async function copyStoppably(ctx: Ctx, source: string, target: string, pidFile: string): Promise<void> {
  if (ctx.signal.aborted) return;
  // The stop may come before the copy has started (its command is still on its way): the stop
  // leaves a mark, then kills the pid recorded; the copy records its pid, then looks for the
  // mark. Whichever comes first, the copy is either never started or killed.
  let stopping: Promise<unknown> | undefined;
  const stop = () => {
    stopping = ctx.exec.run(['sh', '-c', ': > "$1.stop"; kill -KILL "$(cat "$1" 2>/dev/null)" 2>/dev/null', 'cairn-stop', pidFile]).catch(() => undefined);
  };
  ctx.signal.addEventListener('abort', stop, { once: true });
  try {
    await run(ctx, ['sh', '-c', 'echo $$ > "$1" && { [ ! -e "$1.stop" ] || exit 137; } && exec cp -a --reflink=auto --sparse=always -- "$2" "$3"', 'cairn-copy', pidFile, source, target],
      `copying the image ${source}`, ctx.signal);
  } catch (err) {
    if (ctx.signal.aborted) throw new ApplyError('cancelled while copying the image (the copy was stopped)');
    throw err;
  } finally {
    ctx.signal.removeEventListener('abort', stop);
    // Its mark is removed after it, not before.
    await stopping;
    await ctx.exec.remove(pidFile);
    await ctx.exec.remove(`${pidFile}.stop`);
  }
}

/** Removes what an interrupted create or rebuild of `name` left (hidden, never a machine). */
async function sweep(ctx: Ctx, name: string): Promise<void> {
  for (const leftover of [`.${name}.cairn-new`, `.${name}.raw.cairn-new`, `.${name}.cairn-old`, `.${name}.raw.cairn-old`, `.${name}.cairn-build`, `.${name}.cairn-copy.pid`, `.${name}.cairn-copy.pid.stop`]) {
    await ctx.exec.remove(`${MACHINES}/${leftover}`);
  }
}

/** The profile's build (DESIGN §10), through the provisioner the run was given; it runs on this machine. */
async function buildFromProfile(ctx: Ctx, name: string, image: Exclude<Image, string>, userData: string | undefined): Promise<{ source: string; kind: 'root' | 'raw'; buildDir: string }> {
  if (!ctx.images) throw new ApplyError(`image: { profile: ${image.profile} } needs the provisioner, and this run has none (cairn apply gives it to local targets)`);
  if (ctx.exec.name !== 'local') {
    throw new ApplyError(`image: { profile: ${image.profile} } builds on the machine Cairn runs on: converge this container through the local executor, ` +
      'or build the image there and name its folder or disk image as image:');
  }
  const buildDir = `${MACHINES}/.${name}.cairn-build`;
  await run(ctx, ['mkdir', '-p', buildDir]);
  try {
    const built = await ctx.images.build({
      profile: image.profile, name, kind: 'container', outputDir: buildDir,
      ...(image.args ? { args: image.args } : {}), ...(userData !== undefined ? { user_data: userData } : {}),
      signal: ctx.signal, progress: (u) => ctx.progress(u), log: (m) => ctx.log(m),
    });
    if (built.root) return { source: built.root, kind: 'root', buildDir };
    if (built.disks[0]) return { source: built.disks[0], kind: 'raw', buildDir };
    throw new ApplyError(`profile ${image.profile} built neither a root folder nor a disk image`);
  } catch (err) {
    await ctx.exec.remove(buildDir);
    throw err;
  }
}

/** Puts the staged image in place of whatever is there (the old one is removed once the new one is in). */
async function swapIn(ctx: Ctx, desired: Want, staged: string, final: string): Promise<void> {
  const name = desired.name;
  const old = await imageAt(ctx, name);
  const aside = old ? `${MACHINES}/.${old.slice(MACHINES.length + 1)}.cairn-old` : undefined;
  if (old && aside) await run(ctx, ['mv', '-T', '--', old, aside]);
  try {
    await run(ctx, ['mkdir', '-p', NSPAWN_DIR]);
    await ctx.exec.writeFile(nspawnPath(name), nspawnFile(desired), { mode: 0o644 });
    await run(ctx, ['mv', '-T', '--', staged, final]);
  } catch (err) {
    if (old && aside) await ctx.exec.run(['mv', '-T', '--', aside, old]);
    throw err;
  }
  if (aside) await ctx.exec.remove(aside);
}

/** Brings state and boot to what is desired (start waits for the system to be up). */
async function converge(ctx: Ctx, desired: Want, current: { state?: string; boot?: boolean }): Promise<void> {
  if (desired.boot !== current.boot) await setBoot(ctx, desired.name, desired.boot);
  if (desired.state === 'running' && current.state !== 'running') await start(ctx, desired.name);
  if (desired.state === 'stopped' && current.state !== 'stopped') await poweroff(ctx, desired.name);
}

async function destroy(ctx: Ctx, name: string): Promise<void> {
  await poweroff(ctx, name);
  if (await isEnabled(ctx, name)) await setBoot(ctx, name, false);
  for (const path of [`${MACHINES}/${name}`, `${MACHINES}/${name}.raw`, nspawnPath(name)]) await ctx.exec.remove(path);
  await sweep(ctx, name);
}

export const nspawnContainer = defineProvider<Container>({
  type: 'container',
  name: 'nspawn',
  suitable: (facts) => facts.init_system === 'systemd',

  async read(ctx, desired) {
    // Without machined there is no machine (a plan before the run installs systemd-container
    // shows a create, after that package); applying then says what is missing.
    if ((await missingTools(ctx)).length) return undefined;
    const name = desired.name;
    if (!(await imageAt(ctx, name))) return undefined;
    const file = await ctx.exec.readFile(nspawnPath(name));
    const settings = parseNspawn(file?.toString() ?? '');
    const state = await machineState(ctx, name);
    return {
      name, ensure: 'present', state: state === 'stopped' ? 'stopped' : 'running', boot: await isEnabled(ctx, name),
      ...settings,
    };
  },

  async apply(ctx, action: Action, desired, current: Current<Container>) {
    await requireTools(ctx);
    const name = desired.name;
    switch (action) {
      case 'create': {
        const { staged, final } = await buildImage(ctx, desired);
        try {
          await swapIn(ctx, desired, staged, final);
        } catch (err) {
          await ctx.exec.remove(staged);
          await ctx.exec.remove(nspawnPath(name));
          throw err;
        }
        await converge(ctx, desired, { state: 'stopped', boot: await isEnabled(ctx, name) });
        return;
      }
      case 'destroy':
        await destroy(ctx, name);
        return;
      case 'reload':
        // Stop, change; the engine's refresh that follows a reload starts it again.
        await poweroff(ctx, name);
        await ctx.exec.writeFile(nspawnPath(name), nspawnFile(desired), { mode: 0o644 });
        if (desired.boot !== current?.boot) await setBoot(ctx, name, desired.boot);
        return;
      default:
        await converge(ctx, desired, current ?? {});
    }
  },

  /** Builds the new image first; only then stops the old machine and swaps. */
  async rebuild(ctx, desired, current) {
    await requireTools(ctx);
    const { staged, final } = await buildImage(ctx, desired);
    try {
      await poweroff(ctx, desired.name);
      await swapIn(ctx, desired, staged, final);
    } catch (err) {
      await ctx.exec.remove(staged);
      throw new ApplyError(`${(err as Error).message}\nthe old image of ${desired.name} was kept; it is stopped: start it with machinectl start ${desired.name}`);
    }
    await converge(ctx, desired, { state: 'stopped', boot: current?.boot ?? false });
  },

  async refresh(ctx, desired) {
    if (desired.ensure === 'absent' || desired.state !== 'running') return;
    await poweroff(ctx, desired.name);
    await start(ctx, desired.name);
  },

  diff(desired, current) {
    if (!current) return undefined;
    const lines: string[] = [];
    for (const attr of ['network', 'binds', 'properties', 'image'] as const) {
      if (desired[attr] !== undefined && !isDeepStrictEqual(desired[attr], current[attr])) {
        lines.push(`${attr}: ${JSON.stringify(current[attr] ?? null)} -> ${JSON.stringify(desired[attr])}`);
      }
    }
    return lines.length ? lines.join('\n') : undefined;
  },
});
