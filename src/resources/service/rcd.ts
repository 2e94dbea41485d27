/**
 * FreeBSD rc.d: `service -e` lists every enabled script; rc.d has no status query for many
 * services at once, so one `sh` loop asks `service NAME onestatus` for each, in one round trip.
 * Commands use the `one…` forms, which work whether or not the service is enabled (plain
 * `start` refuses a service whose rcvar is not YES). Enabling sets the script's own rcvar
 * (`service NAME rcvar`: `mysql_enable` for mysql-server) with `sysrc`.
 */
import { must } from '../commands.ts';
import { posix } from 'node:path';
import { uses } from '../os.ts';
import type { ProviderContext } from '../type.ts';
import type { RunResult } from '../../executors/types.ts';
import { serviceProvider, type Health, type InitSystem, type ServiceStatus } from './core.ts';

const MARK = '@@cairn-service';

/**
 * Asks each service named after the script's `$0` for its status; every answer is framed by
 * marker lines carrying the name and the exit code, so outputs cannot run together.
 */
export const STATUS_LOOP = `for s do printf '${MARK} %s\\n' "$s"; service "$s" onestatus 2>&1; printf '${MARK}-rc %s\\n' "$?"; done`;

/** The status loop's output: service → its `onestatus` output and exit code. */
export function parseStatusLoop(text: string): Map<string, { output: string; code: number }> {
  const out = new Map<string, { output: string; code: number }>();
  let current: { name: string; lines: string[] } | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${MARK}-rc `)) {
      if (current) out.set(current.name, { output: current.lines.join('\n'), code: Number(line.slice(MARK.length + 4)) });
      current = undefined;
    } else if (line.startsWith(`${MARK} `)) current = { name: line.slice(MARK.length + 1), lines: [] };
    else current?.lines.push(line);
  }
  return out;
}

/** `service -e`: the paths of the enabled scripts → their names. */
export function parseEnabled(text: string): Set<string> {
  return new Set(text.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('/')).map((l) => posix.basename(l)));
}

/** `service NAME rcvar`: the variable that enables it (`sshd_enable="YES"` → `sshd_enable`). */
export function parseRcvar(text: string): string | undefined {
  return /^([A-Za-z_][A-Za-z0-9_]*)=/m.exec(text)?.[1];
}

export function statusFromRcd(answer: { output: string; code: number } | undefined, enabled: boolean): ServiceStatus {
  if (!answer || /does not exist in \/etc\/rc\.d/.test(answer.output)) {
    return { known: false, running: false, enabled: undefined, ...(answer ? { problem: answer.output.trim() } : {}) };
  }
  return { known: true, running: answer.code === 0, enabled };
}

/** `service NAME onestatus`: exit 0 when it runs ("sshd is running as pid 788."), else not. */
export function healthFromOnestatus(r: RunResult): Health {
  const detail = `${r.stdout}\n${r.stderr}`.trim() || `service onestatus exited with ${r.code}`;
  return { state: r.code === 0 ? 'up' : 'down', detail };
}

async function readAll(ctx: ProviderContext, names: string[]): Promise<Map<string, ServiceStatus>> {
  const enabled = parseEnabled((await must(ctx.exec, ['service', '-e'])).stdout);
  const answers = parseStatusLoop((await ctx.exec.run(['sh', '-c', STATUS_LOOP, 'sh', ...names])).stdout);
  return new Map(names.map((name) => [name, statusFromRcd(answers.get(name), enabled.has(name))]));
}

async function setRcvar(ctx: ProviderContext, name: string, value: 'YES' | 'NO'): Promise<void> {
  const rcvar = parseRcvar((await must(ctx.exec, ['service', name, 'rcvar'])).stdout) ?? `${name}_enable`;
  await must(ctx.exec, ['sysrc', `${rcvar}=${value}`]);
}

export const rcd: InitSystem = {
  name: 'rc.d',
  readAll,
  async start(ctx, name) {
    await must(ctx.exec, ['service', name, 'onestart']);
  },
  async stop(ctx, name) {
    await must(ctx.exec, ['service', name, 'onestop']);
  },
  async restart(ctx, name) {
    await must(ctx.exec, ['service', name, 'onerestart']);
  },
  async reload(ctx, name) {
    await must(ctx.exec, ['service', name, 'onereload']);
  },
  async enable(ctx, name) {
    await setRcvar(ctx, name, 'YES');
  },
  async disable(ctx, name) {
    await setRcvar(ctx, name, 'NO');
  },
  probe: (ctx, name) => ctx.exec.run(['service', name, 'onestatus']),
  health: async (ctx, name) => healthFromOnestatus(await ctx.exec.run(['service', name, 'onestatus'])),
};

export const rcdService = serviceProvider(rcd, uses('init_system', 'rc.d'));
