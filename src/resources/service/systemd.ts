/**
 * systemd: one `systemctl show` reads every unit of the run; a unit file changed on disk is
 * reloaded (daemon-reload) before the unit is started, restarted or reloaded.
 */
import { must, outputTail } from '../commands.ts';
import { uses } from '../os.ts';
import { type ProviderContext } from '../type.ts';
import { serviceProvider, type Health, type InitShell, type InitSystem, type ServiceStatus, type Verb } from './core.ts';

const PROPERTIES = 'Id,LoadState,ActiveState,SubState,UnitFileState,NeedDaemonReload';

/** `systemctl show` output: one `Key=value` block per unit, blank lines between, in argument order. */
export function parseShow(text: string): Record<string, string>[] {
  const blocks: Record<string, string>[] = [];
  let block: Record<string, string> | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      block = undefined;
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    if (!block) blocks.push((block = {}));
    block[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return blocks;
}

/**
 * Running: active, reloading, or activating on its way up. A unit waiting to be restarted after a
 * crash (activating/auto-restart) is not running: a start then reports the failure.
 */
function isRunning(p: Record<string, string>): boolean {
  const active = p.ActiveState ?? '';
  if (active === 'activating') return p.SubState !== 'auto-restart';
  return active === 'active' || active === 'reloading' || active === 'refreshing';
}

/**
 * Enabled at boot: `enabled`. Runtime-only links (`enabled-runtime`), `disabled`, `linked`,
 * `masked` and `bad` are not. `static`, `indirect`, `generated`, `transient` and `alias` units
 * cannot be enabled or disabled themselves (no [Install] section, or another unit decides), so
 * they are reported as asked and never flap.
 */
function isEnabled(state: string): boolean | undefined {
  if (state === 'enabled') return true;
  if (['enabled-runtime', 'disabled', 'linked', 'linked-runtime', 'masked', 'masked-runtime', 'bad'].includes(state)) return false;
  return undefined;
}

export function statusFromShow(p: Record<string, string>): ServiceStatus {
  // A masked unit is loaded as far as ensure and enable go: starting it fails with systemd's words.
  const known = p.LoadState === 'loaded' || p.LoadState === 'masked';
  return {
    known,
    running: known && isRunning(p),
    enabled: known ? isEnabled(p.UnitFileState ?? '') : undefined,
    stale: p.NeedDaemonReload === 'yes',
    ...(p.LoadState === 'error' || p.LoadState === 'bad-setting' ? { problem: `${p.Id ?? 'unit'}: LoadState=${p.LoadState}` } : {}),
  };
}

async function show(ctx: ProviderContext, names: string[]): Promise<Map<string, ServiceStatus>> {
  const out = new Map<string, ServiceStatus>();
  const r = await ctx.exec.run(['systemctl', 'show', `--property=${PROPERTIES}`, '--', ...names]);
  const blocks = r.code === 0 ? parseShow(r.stdout) : [];
  if (blocks.length === names.length) {
    names.forEach((name, i) => out.set(name, statusFromShow(blocks[i]!)));
    return out;
  }
  if (names.length === 1) {
    // systemctl refused the name itself (an invalid unit name): the apply reports its words.
    out.set(names[0]!, { known: false, running: false, enabled: undefined, problem: outputTail(`${r.stdout}\n${r.stderr}`, 20) || `systemctl show exited with ${r.code}` });
    return out;
  }
  // One bad name spoils the batch: read the units one by one, so the others still converge.
  for (const name of names) out.set(name, (await show(ctx, [name])).get(name)!);
  return out;
}

const HEALTH = 'ActiveState,SubState,Result,NRestarts,InvocationID,Type';

/**
 * A unit's state after Cairn started, restarted or reloaded it. `systemctl start` returns once a
 * Type=simple unit's process is forked, so a program that fails at once reads `active` first and
 * `failed` a moment later (core.ts watches it for a while); one with Restart= may already be back
 * up, which NRestarts shows (a start or restart by hand sets it to 0; a reload does not).
 */
export function healthFromShow(p: Record<string, string>, after: Verb): Health {
  const active = p.ActiveState ?? '';
  const detail = `ActiveState=${active}, SubState=${p.SubState ?? ''}, Result=${p.Result ?? ''}`;
  const restarts = Number(p.NRestarts ?? 0);
  const health = (state: Health['state'], why = detail): Health => ({ state, detail: why, ...(p.InvocationID ? { instance: p.InvocationID } : {}) });
  if (after !== 'reload' && restarts > 0) return health('down', `systemd restarted it ${restarts} time${restarts === 1 ? '' : 's'} already (${detail})`);
  if (active === 'active') return health('up');
  if (active === 'activating' && p.SubState !== 'auto-restart') return health('starting');
  if (active === 'reloading' || active === 'refreshing') return health('starting');
  // A oneshot unit without RemainAfterExit is done once its command succeeded.
  if (active === 'inactive' && p.Type === 'oneshot' && p.Result === 'success') return health('up');
  return health('down');
}

async function reloadIfStale(ctx: ProviderContext, status: ServiceStatus): Promise<void> {
  if (status.stale) await must(ctx.exec, ['systemctl', 'daemon-reload']);
}

export const systemd: InitSystem = {
  name: 'systemd',
  readAll: show,
  async start(ctx, name, status) {
    await reloadIfStale(ctx, status);
    await must(ctx.exec, ['systemctl', 'start', '--', name]);
  },
  async stop(ctx, name) {
    await must(ctx.exec, ['systemctl', 'stop', '--', name]);
  },
  async restart(ctx, name, status) {
    await reloadIfStale(ctx, status);
    await must(ctx.exec, ['systemctl', 'restart', '--', name]);
  },
  async reload(ctx, name, status) {
    await reloadIfStale(ctx, status);
    await must(ctx.exec, ['systemctl', 'reload', '--', name]);
  },
  async enable(ctx, name) {
    await must(ctx.exec, ['systemctl', 'enable', '--', name]);
  },
  async disable(ctx, name) {
    await must(ctx.exec, ['systemctl', 'disable', '--', name]);
  },
  // `systemctl is-enabled` and `enable`/`disable` work on the unit files when systemd is not
  // running (inside a chroot), as `systemctl --root` does.
  async readOffline(ctx, name) {
    const r = await ctx.exec.run(['systemctl', 'is-enabled', '--', name]);
    const state = r.stdout.trim().split('\n')[0] ?? '';
    if (state === '') {
      const said = outputTail(`${r.stdout}\n${r.stderr}`, 20);
      // An unknown unit: "Failed to get unit file state for x.service: No such file or directory".
      if (/No such file or directory/.test(said)) return { known: false, running: false, enabled: undefined };
      return { known: false, running: false, enabled: undefined, problem: said || `systemctl is-enabled exited with ${r.code}` };
    }
    return { known: true, running: false, enabled: isEnabled(state) };
  },
  async rescan(ctx) {
    await must(ctx.exec, ['systemctl', 'daemon-reload']);
  },
  probe: (ctx, name) => ctx.exec.run(['systemctl', 'status', '--no-pager', '--lines=0', '--', name]),
  async health(ctx, name, after) {
    const r = await must(ctx.exec, ['systemctl', 'show', `--property=${HEALTH}`, '--', name]);
    return healthFromShow(parseShow(r.stdout)[0] ?? {}, after);
  },
  async logTail(ctx, name) {
    // The journal may be out of reach (no rights to read it): the node fails with what systemd said anyway.
    const r = await ctx.exec.run(['journalctl', '-u', name, '-n', '20', '--no-pager', '-q']);
    return r.code === 0 ? outputTail(r.stdout, 20) : '';
  },
};

/** systemd's commands as shell, for `cairn export` (the functions are resources/shell-prelude.ts's). */
export const systemdShell: InitShell = {
  known: (name) => `cairn_systemd_known ${name}`,
  found: (name) => `cairn_systemd_unit ${name}`,
  running: (name) => `cairn_systemd_running ${name}`,
  enabled: (name, want) => `cairn_systemd_enabled ${name} ${want ? 'yes' : 'no'}`,
  act: (name, verb) => `cairn_systemd_do ${verb} ${name}`,
  stop: (name) => `systemctl stop -- ${name}`,
  enable: (name) => `systemctl enable -- ${name}`,
  disable: (name) => `systemctl disable -- ${name}`,
};

export const systemdService = serviceProvider(systemd, uses('init_system', 'systemd'), systemdShell);
