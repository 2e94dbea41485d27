/**
 * OpenRC (Alpine, Gentoo): `rc-status --servicelist` gives every init script and its state,
 * `rc-update show` the runlevels each is in; two commands read every service of a run.
 */
import { must } from '../commands.ts';
import { uses } from '../os.ts';
import type { ProviderContext } from '../type.ts';
import type { RunResult } from '../../executors/types.ts';
import { serviceProvider, type Health, type InitShell, type InitSystem, type ServiceStatus } from './core.ts';

// Terminal colours, should a tool print them anyway.
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/**
 * `rc-status` lines ` sshd    [  started  ]` (or `[  started 09:25:13 (0) ]`): service → the
 * state word. Runlevel headers are skipped, so `rc-status -a` parses too.
 */
export function parseRcStatus(text: string): Map<string, string> {
  const states = new Map<string, string>();
  for (const line of text.replace(ANSI, '').split('\n')) {
    const m = /^\s+(\S+)\s+\[\s*(\S+)[^\]]*\]\s*$/.exec(line);
    if (m) states.set(m[1]!, m[2]!);
  }
  return states;
}

/** `rc-update show` lines `             sshd |      default`: service → its runlevels. */
export function parseRcUpdate(text: string): Map<string, string[]> {
  const levels = new Map<string, string[]>();
  for (const line of text.replace(ANSI, '').split('\n')) {
    const m = /^\s*(\S+)\s+\|(.*)$/.exec(line);
    if (m) levels.set(m[1]!, m[2]!.trim().split(/\s+/).filter(Boolean));
  }
  return levels;
}

/** Started at boot: in any runlevel but `shutdown` (the runlevel of services that run on the way down). */
const bootLevels = (levels: string[]) => levels.filter((l) => l !== 'shutdown');

export function statusFromOpenrc(state: string | undefined, levels: string[]): ServiceStatus {
  if (state === undefined) return { known: false, running: false, enabled: undefined };
  return {
    known: true,
    // `inactive`: started, waiting for something (a network link); `starting`: on its way up.
    running: state === 'started' || state === 'starting' || state === 'inactive',
    crashed: state === 'crashed' || state === 'unsupervised',
    enabled: bootLevels(levels).length > 0,
    runlevels: bootLevels(levels),
  };
}

/**
 * `rc-service NAME status`: ` * status: started` (exit 0), `stopped` (3), `starting` (8),
 * `inactive` (16: started, waiting for something), `crashed` (32: its daemon is gone),
 * `unsupervised` (64), as openrc-run's status function prints them; an init script with a status
 * function of its own may print anything, so its exit code decides then.
 */
export function healthFromRcService(r: RunResult): Health {
  const said = `${r.stdout}\n${r.stderr}`.replace(ANSI, '');
  const word = /status:\s*(\S+)/.exec(said)?.[1];
  const detail = said.trim() || `rc-service status exited with ${r.code}`;
  if (word === 'starting' || (word === undefined && r.code === 8)) return { state: 'starting', detail };
  if (word === 'started' || word === 'inactive' || (word === undefined && (r.code === 0 || r.code === 16))) return { state: 'up', detail };
  return { state: 'down', detail };
}

async function readAll(ctx: ProviderContext, names: string[]): Promise<Map<string, ServiceStatus>> {
  const states = parseRcStatus((await must(ctx.exec, ['rc-status', '--servicelist'])).stdout);
  const levels = parseRcUpdate((await must(ctx.exec, ['rc-update', 'show'])).stdout);
  return new Map(names.map((name) => [name, statusFromOpenrc(states.get(name), levels.get(name) ?? [])]));
}

export const openrc: InitSystem = {
  name: 'openrc',
  readAll,
  async start(ctx, name, status) {
    // A crashed service is still marked started: `start` would only say so.
    await must(ctx.exec, ['rc-service', name, status.crashed ? 'restart' : 'start']);
  },
  async stop(ctx, name) {
    await must(ctx.exec, ['rc-service', name, 'stop']);
  },
  async restart(ctx, name) {
    await must(ctx.exec, ['rc-service', name, 'restart']);
  },
  async reload(ctx, name) {
    await must(ctx.exec, ['rc-service', name, 'reload']);
  },
  async enable(ctx, name) {
    await must(ctx.exec, ['rc-update', 'add', name, 'default']);
  },
  async disable(ctx, name, status) {
    // Out of every runlevel it starts in, not just the current one, so it stays disabled.
    await must(ctx.exec, ['rc-update', 'del', name, ...(status.runlevels?.length ? status.runlevels : [])]);
  },
  probe: (ctx, name) => ctx.exec.run(['rc-service', name, 'status']),
  health: async (ctx, name) => healthFromRcService(await ctx.exec.run(['rc-service', name, 'status'])),
};

/** OpenRC's commands as shell, for `cairn export`: a disable takes the service out of every runlevel it starts in. */
export const openrcShell: InitShell = {
  known: (name) => `rc-service --exists ${name}`,
  found: (name) => `cairn_openrc_service ${name}`,
  running: (name) => `cairn_openrc_running ${name}`,
  enabled: (name, want) => `[ ${want ? '-n' : '-z'} "$(cairn_openrc_levels ${name})" ]`,
  act: (name, verb) => `cairn_openrc_do ${verb} ${name}`,
  stop: (name) => `rc-service ${name} stop`,
  enable: (name) => `rc-update add ${name} default`,
  disable: (name) => `rc-update del ${name} $(cairn_openrc_levels ${name})`,
};

export const openrcService = serviceProvider(openrc, uses('init_system', 'openrc'), openrcShell);
