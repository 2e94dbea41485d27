/**
 * Jails through iocage(8) (DESIGN §6; the seed puppet-iocage's provider, pyiocage.rb). Reading:
 * `list -Hl` and `list -Htl` (tab-separated; a stopped jail's JID is `None`, `-` in older
 * versions), `get all NAME` and `get all default` for properties, `fstab -Hl NAME`. Writing:
 * `create`, `set`, `fstab -a/-r`, `start`, `stop`, `destroy -f`, `exec NAME /bin/sh` for user data.
 *
 * iocage finds a jail by a unique prefix when no jail has the exact name (`get all web` reads
 * `web1`), so every command naming a jail runs only after `list` showed that exact name.
 */
import { isDeepStrictEqual } from 'node:util';
import { ApplyError, defineProvider, type ApplyOutcome, type Desired, type ProviderContext } from '../type.ts';
import { outputTail, toolError } from '../commands.ts';
import type { RunResult } from '../../executors/types.ts';
import { fstabLine, parseFstabEntry, parseFstabListLine, sameEntry, type FstabEntry } from './fstab.ts';
import type { jailType } from './type.ts';

type Jail = Desired<typeof jailType>;
type Ctx = ProviderContext<typeof jailType>;

/** One row of `list -Hl` / `list -Htl`. */
export interface ListRow {
  jid: number | undefined;
  name: string;
  boot: boolean;
  running: boolean;
  type: string;
  release: string;
  template: string | undefined;
}

/** `JID NAME BOOT STATE TYPE RELEASE IP4 IP6 TEMPLATE BASEJAIL`, tab-separated; JID `None`/`-` when stopped. */
export function parseList(text: string): ListRow[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((line) => {
    const f = line.split('\t');
    if (f.length < 10) throw new ApplyError(`iocage list -Hl printed a line that is not 10 tab-separated columns: ${JSON.stringify(line)}`);
    const [jid, name, boot, state, type, release, , , template] = f as string[];
    return {
      jid: /^\d+$/.test(jid!) ? Number(jid) : undefined, name: name!, boot: boot === 'on', running: state === 'up',
      type: type!, release: release!, template: template === '-' ? undefined : template,
    };
  });
}

/** `get all NAME`: `key:value` lines. */
export function parseProps(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const at = line.indexOf(':');
    if (at > 0) out.set(line.slice(0, at), line.slice(at + 1));
  }
  return out;
}

/** ioc_json.py truthy_props: stored as 0/1 whatever on/off/yes/no/true/false was given. */
const TRUTHY_PROPS = new Set(['bpf', 'template', 'nat', 'ip_hostname', 'host_time', 'basejail', 'dhcp', 'vnet', 'rtsold', 'jail_zfs', 'hostid_strict_check',
  'boot', 'exec_clean', 'mount_linprocfs', 'mount_procfs', 'allow_vmm', 'allow_tun', 'allow_socket_af', 'allow_quotas', 'allow_mount_zfs',
  'allow_mount_tmpfs', 'allow_mount_procfs', 'allow_mount_nullfs', 'allow_mount_fusefs', 'allow_mount_devfs', 'allow_mount_fdescfs',
  'allow_mount', 'allow_mlock', 'allow_chflags', 'allow_raw_sockets', 'allow_sysvipc', 'allow_set_hostname', 'mount_fdescfs',
  'mount_devfs', 'ip6_saddrsel', 'ip4_saddrsel']);
const truthy = (v: unknown) => (['1', 'on', 'yes', 'true'].includes(String(v).toLowerCase()) ? '1' : '0');

/** A property's value as iocage stores it. */
export function propValue(key: string, value: string | number | boolean): string {
  if (TRUTHY_PROPS.has(key)) return truthy(value);
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  return String(value);
}

const noSpaces = (s: string) => s.replace(/\s/g, '');

async function iocage(ctx: Ctx, args: string[], options: { stdin?: string; signal?: AbortSignal } = {}): Promise<RunResult> {
  return ctx.exec.run(['iocage', ...args], options);
}

/** Runs iocage; a non-zero exit is the node's error in iocage's own words. */
async function must(ctx: Ctx, args: string[], options: { stdin?: string; signal?: AbortSignal } = {}): Promise<RunResult> {
  const r = await iocage(ctx, args, options);
  if (r.code !== 0 || r.timedOut) throw toolError(`iocage ${args[0]}`, r);
  return r;
}

/** Every jail and template, once per reading of the run (the engine forgets batches after a change). */
async function listAll(ctx: Ctx): Promise<Map<string, ListRow>> {
  return ctx.batch('iocage:list', async () => {
    const jails = parseList((await must(ctx, ['list', '-Hl'])).stdout);
    const templates = parseList((await must(ctx, ['list', '-Htl'])).stdout);
    return new Map([...jails, ...templates].map((r) => [r.name, r]));
  });
}

async function defaults(ctx: Ctx): Promise<Map<string, string>> {
  return ctx.batch('iocage:defaults', async () => parseProps((await must(ctx, ['get', 'all', 'default'])).stdout));
}

async function fstabOf(ctx: Ctx, name: string): Promise<FstabEntry[]> {
  const r = await must(ctx, ['fstab', '-Hl', name]);
  return r.stdout.split('\n').filter((l) => l.trim() !== '').flatMap((l) => parseFstabListLine(l, name) ?? []);
}

const desiredFstab = (d: Jail): FstabEntry[] => (d.fstab ?? []).map((e) => parseFstabEntry(e)!);

type Current = Partial<Jail> & Record<string, unknown>;

async function read(ctx: Ctx, desired: Jail): Promise<Current | undefined> {
  const row = (await listAll(ctx)).get(desired.name);
  if (!row) return undefined;
  const current: Current = {
    name: row.name, ensure: 'present', state: row.running ? 'running' : 'stopped', boot: row.boot,
    type: row.type === 'template' ? 'template' : 'jail',
    // A release is compared without its patch level: 13.2-RELEASE is 13.2-RELEASE-p4 (puppet-iocage's start_with?).
    release: desired.release !== undefined && (row.release === desired.release || row.release.startsWith(`${desired.release}-p`)) ? desired.release : row.release,
    ...(row.template !== undefined ? { template: row.template } : {}),
  };
  if (desired.ensure === 'absent') return current;
  const props = parseProps((await must(ctx, ['get', 'all', row.name])).stdout);
  for (const attr of ['ip4_addr', 'ip6_addr'] as const) {
    const value = props.get(attr);
    const wanted = desired[attr];
    // iocage strips the blanks out of addresses.
    current[attr] = wanted !== undefined && value !== undefined && noSpaces(wanted) === value ? wanted : value;
  }
  if (desired.properties) {
    const known = await defaults(ctx);
    const seen: Record<string, string | number | boolean> = {};
    for (const [key, wanted] of Object.entries(desired.properties)) {
      // A jail's own value, else the default it inherits; neither: iocage has no such property.
      const value = props.get(key) ?? known.get(key);
      if (value === undefined) throw new ApplyError(`properties: ${key} is not an iocage property (\`iocage get all default\` does not list it)`);
      seen[key] = propValue(key, wanted) === propValue(key, value) ? wanted : value;
    }
    current.properties = seen;
  }
  if (desired.fstab) {
    const have = await fstabOf(ctx, row.name);
    const want = desiredFstab(desired);
    current.fstab = have.length === want.length && have.every((e, i) => sameEntry(e, want[i]!)) ? desired.fstab : have.map(fstabLine);
  }
  return current;
}

async function start(ctx: Ctx, name: string): Promise<void> {
  await must(ctx, ['start', name]);
}

/** `stop` of a stopped jail says so on stderr and exits 0: success either way. */
async function stop(ctx: Ctx, name: string): Promise<void> {
  await must(ctx, ['stop', name]);
}

/** The fstab made exactly `want`: entries not wanted removed, missing ones added, in order. */
async function syncFstab(ctx: Ctx, name: string, want: FstabEntry[]): Promise<void> {
  const have = await fstabOf(ctx, name);
  // The longest common prefix stays; everything after it is removed and added again in order.
  let keep = 0;
  while (keep < have.length && keep < want.length && sameEntry(have[keep]!, want[keep]!)) keep++;
  for (const e of have.slice(keep)) await must(ctx, ['fstab', '-r', name, fstabLine(e)]);
  for (const e of want.slice(keep)) await must(ctx, ['fstab', '-a', name, fstabLine(e)]);
}

/** `set k=v …` for what differs among ip4_addr, ip6_addr and properties. */
async function setChanged(ctx: Ctx, desired: Jail, current: Current | undefined): Promise<void> {
  const assignments: string[] = [];
  for (const attr of ['ip4_addr', 'ip6_addr'] as const) {
    const wanted = desired[attr];
    if (wanted !== undefined && wanted !== current?.[attr]) assignments.push(`${attr}=${noSpaces(wanted)}`);
  }
  const have = (current?.properties ?? {}) as Record<string, unknown>;
  for (const [key, wanted] of Object.entries(desired.properties ?? {})) {
    if (have[key] !== wanted) assignments.push(`${key}=${propValue(key, wanted)}`);
  }
  if (assignments.length) await must(ctx, ['set', ...assignments, desired.name]);
}

/**
 * Reload (DESIGN §6): stop, change, start again if it ran (or state says so). A change that fails
 * after the stop does not leave a jail that ran stopped: it is started again with what changed so
 * far, and the error says so.
 */
async function reloadJail(ctx: Ctx, desired: Jail, current: Current): Promise<void> {
  const wasRunning = current.state === 'running';
  const runAfter = desired.type !== 'template' && (desired.state !== undefined ? desired.state === 'running' : wasRunning);
  if (wasRunning) await stop(ctx, desired.name);
  try {
    // A template is turned back into a jail before it is changed, and a jail into a template after.
    if (current.type === 'template' && desired.type === 'jail') await must(ctx, ['set', 'template=no', desired.name]);
    await setChanged(ctx, desired, current);
    if (desired.fstab && !isDeepStrictEqual(desired.fstab, current.fstab)) await syncFstab(ctx, desired.name, desiredFstab(desired));
    if (desired.boot !== undefined && desired.boot !== current.boot) await must(ctx, ['set', `boot=${desired.boot ? 'on' : 'off'}`, desired.name]);
    if (current.type === 'jail' && desired.type === 'template') await must(ctx, ['set', 'template=yes', desired.name]);
  } catch (err) {
    if (!(err instanceof ApplyError) || !wasRunning) throw err;
    const again = await iocage(ctx, ['start', desired.name]);
    throw new ApplyError(`${err.message}\n${again.code === 0
      ? `jail ${desired.name} was started again with the changes made before this one`
      : `jail ${desired.name} is stopped: starting it again failed too (${outputTail(again.stderr || again.stdout, 3)})`}`);
  }
  if (runAfter) await start(ctx, desired.name);
}

/** The create command's properties: addresses and properties (boot and template come after user data). */
function createProps(desired: Jail): string[] {
  return [
    ...(desired.ip4_addr !== undefined ? [`ip4_addr=${noSpaces(desired.ip4_addr)}`] : []),
    ...(desired.ip6_addr !== undefined ? [`ip6_addr=${noSpaces(desired.ip6_addr)}`] : []),
    ...Object.entries(desired.properties ?? {}).map(([k, v]) => `${k}=${propValue(k, v)}`),
  ];
}

const interrupted = (ctx: Ctx) => (ctx.signal.aborted ? new ApplyError('interrupted') : undefined);

/**
 * Creates the jail as a whole or not at all: created from its release or template (packages
 * installed by iocage), its fstab, its user data run once inside it, then boot, template and
 * state. Any step that fails, or the run being interrupted, destroys what was made, and the
 * error says what is left.
 */
async function createJail(ctx: Ctx, desired: Jail): Promise<void> {
  const name = desired.name;
  const steps = 2 + (desired.fstab?.length ? 1 : 0) + (desired.user_data !== undefined ? 1 : 0);
  let done = 0;
  const step = (what: string) => ctx.progress({ done: done++, total: steps, step: what });
  let pkglistFile: string | undefined;
  let made = false;
  try {
    step(`creating ${name} from ${desired.template !== undefined ? `template ${desired.template}` : desired.release}`);
    if (desired.pkglist?.length) {
      pkglistFile = `/tmp/cairn-pkglist-${process.getBuiltinModule('node:crypto').randomUUID()}.json`;
      await ctx.exec.writeFile(pkglistFile, `${JSON.stringify({ pkgs: desired.pkglist })}\n`, { mode: 0o600 });
    }
    const source = desired.template !== undefined ? ['-t', desired.template] : ['-r', desired.release!];
    const r = await iocage(ctx, ['create', '-n', name, ...source, ...(pkglistFile ? ['-p', pkglistFile] : []), ...createProps(desired)], { signal: ctx.signal });
    // A refusal because the name is taken (iocage holds foo.bar and foo_bar for one name) made
    // nothing, and what holds the name is not this run's to remove.
    made = !/^Jail: .* already exists!$/m.test(r.stderr);
    const stopped = interrupted(ctx);
    if (stopped) throw stopped;
    if (r.code !== 0 || r.timedOut) throw toolError('iocage create', r);
    // iocage creates the jail but skips the packages when it has no address: a warning, exit 0.
    if (/You need an IP address for the jail to install packages/.test(r.stderr)) {
      throw new ApplyError(`iocage create made ${name} without its packages:\n${outputTail(r.stderr)}`);
    }
    if (desired.fstab?.length) {
      step('adding its fstab entries');
      for (const e of desiredFstab(desired)) await must(ctx, ['fstab', '-a', name, fstabLine(e)]);
    }
    if (desired.user_data !== undefined) {
      step('running its user data');
      await start(ctx, name);
      const run = await iocage(ctx, ['exec', name, '/bin/sh'], { stdin: desired.user_data, signal: ctx.signal });
      const halted = interrupted(ctx);
      if (halted) throw halted;
      if (run.code !== 0 || run.timedOut) throw toolError('its user data (iocage exec /bin/sh)', run);
    }
    step('setting boot, type and state');
    if (desired.boot) await must(ctx, ['set', 'boot=on', name]);
    const running = desired.user_data !== undefined;
    if (desired.type === 'template') {
      if (running) await stop(ctx, name);
      await must(ctx, ['set', 'template=yes', name]);
    } else if (desired.state === 'running' && !running) await start(ctx, name);
    else if (desired.state !== 'running' && running) await stop(ctx, name);
    ctx.progress({ done: steps, total: steps, step: 'created' });
  } catch (err) {
    if (!(err instanceof ApplyError) || !made) throw err;
    throw new ApplyError(`${err.message}\n${await removeHalfMade(ctx, name)}`);
  } finally {
    if (pkglistFile) await ctx.exec.remove(pkglistFile);
  }
}

/** Destroys a jail a failed create left (if it did), and says what is left. */
async function removeHalfMade(ctx: Ctx, name: string): Promise<string> {
  const listed = [await iocage(ctx, ['list', '-Hl']), await iocage(ctx, ['list', '-Htl'])];
  const failed = listed.find((r) => r.code !== 0);
  if (failed) {
    return `what is left of jail ${name} is unknown: iocage list failed (${outputTail(failed.stderr || failed.stdout, 3)}); ` +
      `look with \`iocage list\` and remove it with \`iocage destroy -f ${name}\``;
  }
  if (!parseList(listed.map((r) => r.stdout).join('\n')).some((r) => r.name === name)) return `nothing of jail ${name} is left`;
  const r = await iocage(ctx, ['destroy', '-f', name]);
  if (r.code === 0) return `the half-made jail ${name} was destroyed: nothing of it is left`;
  return `the half-made jail ${name} is left, and destroying it failed too (${outputTail(r.stderr || r.stdout, 3)}): remove it with \`iocage destroy -f ${name}\``;
}

async function destroyJail(ctx: Ctx, name: string): Promise<void> {
  await must(ctx, ['destroy', '-f', name]);
}

async function apply(ctx: Ctx, action: string, desired: Jail, current: Current | undefined): Promise<ApplyOutcome> {
  if (action === 'destroy') return destroyJail(ctx, desired.name);
  if (action === 'create') return createJail(ctx, desired);
  if (!current) throw new ApplyError(`jail ${desired.name} is gone`);
  if (action === 'reload') {
    await reloadJail(ctx, desired, current);
    // Stopped and started again as the change needed: the engine's refresh would restart it twice.
    return { refreshed: true };
  }
  // update: boot and state, in place.
  if (desired.boot !== undefined && desired.boot !== current.boot) await must(ctx, ['set', `boot=${desired.boot ? 'on' : 'off'}`, desired.name]);
  if (desired.state !== undefined && desired.state !== current.state) {
    if (desired.state === 'running') await start(ctx, desired.name);
    else await stop(ctx, desired.name);
  }
  return undefined;
}

export const iocageJail = defineProvider<typeof jailType>({
  type: 'jail',
  name: 'iocage',
  suitable: (facts) => facts.kernel === 'freebsd' || facts.os_family === 'freebsd',
  read,
  apply,
  /**
   * Destroy, then create. A jail's name, addresses and mounts are its own, so the new one cannot
   * be built beside the old; when the create fails, the error says that the old one is gone, what
   * is left, and that the next run creates it (it reads as absent, needing no allow_rebuild).
   */
  async rebuild(ctx, desired) {
    ctx.progress({ done: 0, total: 2, step: `destroying ${desired.name}` });
    await destroyJail(ctx, desired.name);
    ctx.progress({ done: 1, total: 2, step: `creating ${desired.name} again` });
    try {
      await createJail(ctx, desired);
    } catch (err) {
      if (!(err instanceof ApplyError)) throw err;
      throw new ApplyError(`rebuilding jail ${desired.name}: the old jail was destroyed, but creating the new one failed:\n${err.message}\n` +
        `Fix the cause and apply again: ${desired.name} then reads as absent and is created (no allow_rebuild needed).`);
    }
    ctx.progress({ done: 2, total: 2, step: 'rebuilt' });
  },
  /** A notification restarts a running jail; a stopped one stays stopped. */
  async refresh(ctx, desired) {
    const row = (await listAll(ctx)).get(desired.name);
    if (!row?.running) return { changed: false, reason: `jail ${desired.name} is not running` };
    await stop(ctx, desired.name);
    await start(ctx, desired.name);
    return undefined;
  },
});
