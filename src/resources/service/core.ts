/**
 * What every service provider shares: the OS-agnostic name mapped to the init system's, one
 * batched reading of every service node in the run, and the same read / apply / refresh logic
 * over an init system's handful of commands (systemd, OpenRC, rc.d).
 */
import { outputTail } from '../commands.ts';
import { offers, type RunResult } from '../../executors/types.ts';
import { osName } from '../os.ts';
import { shellQuote } from '../../lib/shell.ts';
import { ApplyError, type ApplyOutcome, type Provider, type ProviderContext, type Desired, type ShellProvider } from '../type.ts';
import type { serviceType } from './type.ts';

type ServiceAttributes = Desired<typeof serviceType>;

/** A service as its init system sees it. */
export interface ServiceStatus {
  /** Whether the init system knows the service (a loaded unit, an init script). */
  known: boolean;
  running: boolean;
  /**
   * Whether it starts at boot; `undefined` when that is not the init system's to change (a
   * static or indirect systemd unit): then any desired value is in sync, so it never flaps.
   */
  enabled: boolean | undefined;
  /** systemd: the unit file changed on disk since it was loaded (NeedDaemonReload=yes). */
  stale?: boolean;
  /** OpenRC: marked started but its daemon is gone; `start` would do nothing, so it restarts. */
  crashed?: boolean;
  /** OpenRC: the runlevels it is in (a disable removes it from each). */
  runlevels?: string[];
  /** Why the reading failed for this one service, in the tool's words (the apply reports it). */
  problem?: string;
}

/** The commands of one init system. `status` is the service's reading, for what they depend on. */
export interface InitSystem {
  name: string;
  /** Reads every service named, with as few commands as the init system allows. */
  readAll(ctx: ProviderContext, names: string[]): Promise<Map<string, ServiceStatus>>;
  start(ctx: ProviderContext, name: string, status: ServiceStatus): Promise<void>;
  stop(ctx: ProviderContext, name: string, status: ServiceStatus): Promise<void>;
  restart(ctx: ProviderContext, name: string, status: ServiceStatus): Promise<void>;
  reload(ctx: ProviderContext, name: string, status: ServiceStatus): Promise<void>;
  enable(ctx: ProviderContext, name: string, status: ServiceStatus): Promise<void>;
  disable(ctx: ProviderContext, name: string, status: ServiceStatus): Promise<void>;
  /**
   * A service's reading from the files alone, in a system that is not running (the chroot
   * executor): whether it is known and enabled; it never runs. Absent: this init system's
   * services cannot be read offline.
   */
  readOffline?(ctx: ProviderContext, name: string): Promise<ServiceStatus>;
  /** Makes the init system look again for services that appeared (systemd: daemon-reload). */
  rescan?(ctx: ProviderContext): Promise<void>;
  /** A command that fails, in the tool's own words, for a service it does not know. */
  probe(ctx: ProviderContext, name: string): Promise<RunResult>;
  /** How the service is doing, asked right after Cairn started, restarted or reloaded it (`after`). */
  health(ctx: ProviderContext, name: string, after: Verb): Promise<Health>;
  /** The last lines of the service's log, where the init system keeps one (systemd's journal). */
  logTail?(ctx: ProviderContext, name: string): Promise<string>;
}

export type Verb = 'start' | 'restart' | 'reload';

/** A service as the init system reports it after a start, restart or reload. */
export interface Health {
  /** `starting`: on its way up (wait for it); `down`: it died, or never came up. */
  state: 'up' | 'starting' | 'down';
  /** The init system's words for that state, quoted when the node fails. */
  detail: string;
  /** Changes whenever the init system starts the service again by itself (systemd's InvocationID). */
  instance?: string;
}

/**
 * How long a service must stay up after its start returned. A service whose program fails at once
 * (a bad option, a missing file) is "started" as far as the init system's start command is
 * concerned (systemd's Type=simple: as soon as it forked) and dies a few milliseconds later;
 * those failures come within a fraction of a second, and a site's nodes that require the
 * service must not run on a service that is not there.
 */
export const SETTLE_MS = 1000;
const POLL_MS = 200;
/** How long a service may stay on its way up (OpenRC's `starting`, systemd's `activating`) after the start command returned. */
const START_WAIT_MS = 30_000;

const PAST: Record<Verb, string> = { start: 'started', restart: 'restarted', reload: 'reloaded' };

/** The service's log tail after `message`, where the init system keeps a log. */
async function withLog(ctx: ProviderContext, init: InitSystem, name: string, message: string): Promise<ApplyError> {
  const log = init.logTail ? (await init.logTail(ctx, name)).trim() : '';
  return new ApplyError(log ? `${message}\n${log}` : message);
}

/**
 * Starts, restarts or reloads a service the init system knows, then confirms it runs. A start
 * that fails outright ("Job for … failed") says nothing of why: its log does.
 */
async function act(ctx: ProviderContext, init: InitSystem, name: string, verb: Verb, status: ServiceStatus): Promise<void> {
  try {
    await init[verb](ctx, name, status);
  } catch (err) {
    if (err instanceof ApplyError) throw await withLog(ctx, init, name, err.message);
    throw err;
  }
  await confirmRunning(ctx, init, name, verb);
}

/**
 * Confirms the service is running after Cairn started, restarted or reloaded it (DESIGN §5.12):
 * up for SETTLE_MS, without the init system starting it again by itself in between (a unit with
 * Restart= that keeps dying looks up at every glance). One that died fails the node with the
 * init system's words and the last lines of its log.
 */
async function confirmRunning(ctx: ProviderContext, init: InitSystem, name: string, after: Verb): Promise<void> {
  const since = Date.now();
  let instance: string | undefined;
  let up = false;
  for (;;) {
    const health = await init.health(ctx, name, after);
    const cycled = health.state === 'up' && up && health.instance !== instance;
    if (health.state === 'down' || cycled) {
      const why = cycled ? `${init.name} started it again by itself (it keeps dying)` : health.detail;
      throw await withLog(ctx, init, name, `${name} is not running after it was ${PAST[after]}: ${why}`);
    }
    const elapsed = Date.now() - since;
    if (health.state === 'up') {
      if (!up) instance = health.instance;
      up = true;
      if (elapsed >= SETTLE_MS) return;
    } else if (elapsed >= START_WAIT_MS) {
      throw new ApplyError(`${name} is still starting ${START_WAIT_MS / 1000} s after it was ${PAST[after]}: ${health.detail}`);
    }
    if (ctx.signal.aborted) throw new ApplyError(`interrupted while checking that ${name} runs`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** The init system's name for the service a part names (`ssh-server` → `ssh` on Debian). */
export function serviceName(ctx: ProviderContext, desired: ServiceAttributes): string {
  const name = desired.name;
  return osName(ctx.os, 'services', name) ?? name;
}

/** This service's reading, from one batched reading of every service node of the run. */
async function statusOf(ctx: ProviderContext<typeof serviceType>, init: InitSystem, name: string): Promise<ServiceStatus> {
  if (!offers(ctx.exec, 'running-system')) {
    if (!init.readOffline) throw new ApplyError(`the ${init.name} provider cannot read services without a running system (the ${ctx.exec.name} executor)`);
    return init.readOffline(ctx, name);
  }
  // The names are gathered when the reading is taken, not at every node.
  const all = await ctx.batch(`service:${init.name}`, () => init.readAll(ctx, [...new Set([...ctx.peers().map((p) => serviceName(ctx, p)), name])]));
  return all.get(name) ?? (await init.readAll(ctx, [name])).get(name) ?? { known: false, running: false, enabled: undefined };
}

/** Fails with the tool's own words about a service it does not know. */
async function unknown(ctx: ProviderContext, init: InitSystem, name: string, desired: ServiceAttributes, status: ServiceStatus): Promise<never> {
  if (status.problem) throw new ApplyError(status.problem);
  // What was asked, done plainly, fails with the most telling message ("Failed to start …").
  if (desired.ensure === 'running') await init.start(ctx, name, status);
  else if (desired.ensure === 'stopped') await init.stop(ctx, name, status);
  else if (desired.enable === true) await init.enable(ctx, name, status);
  else if (desired.enable === false) await init.disable(ctx, name, status);
  if (!offers(ctx.exec, 'running-system')) throw new ApplyError(`${init.name}: service ${name} not found`);
  const r = await init.probe(ctx, name);
  throw new ApplyError(outputTail(`${r.stdout}\n${r.stderr}`, 20) || `${init.name}: service ${name} not found`);
}

/**
 * An init system's commands as shell text, for `cairn export`, each for one service (its name
 * already quoted): tests that exit 0 when true, and actions (resources/shell-prelude.ts has their
 * functions). serviceProvider composes them with the decisions its `apply` and `refresh` make.
 */
export interface InitShell {
  /** The init system knows the service (a test: no side effect, nothing said). */
  known(name: string): string;
  /** Makes sure the init system knows the service (looking again for new ones), else fails in its words. */
  found(name: string): string;
  running(name: string): string;
  /** `want`: whether it should start at boot; true when it is as wanted or that is not the init system's to change. */
  enabled(name: string, want: boolean): string;
  /** Starts, restarts or reloads, then makes sure it runs. */
  act(name: string, verb: Verb): string;
  stop(name: string): string;
  enable(name: string): string;
  disable(name: string): string;
}

/** The OS's name for a service, from the tables an exporter passes (`ssh-server` → `ssh` on Debian). */
function shellServiceName(os: Record<string, unknown>, desired: ServiceAttributes): string {
  return shellQuote(osName(os, 'services', desired.name) ?? desired.name);
}

function serviceShell(sh: InitShell): ShellProvider<typeof serviceType> {
  return {
    check(desired, ctx) {
      const os = ctx?.os ?? {};
      const name = shellServiceName(os, desired);
      const tests = [sh.known(name)];
      if (desired.ensure === 'running') tests.push(sh.running(name));
      else if (desired.ensure === 'stopped') tests.push(`! ${sh.running(name)}`);
      if (typeof desired.enable === 'boolean') tests.push(sh.enabled(name, desired.enable));
      return tests.join(' && ');
    },
    apply(desired, _action, ctx) {
      const os = ctx?.os ?? {};
      const name = shellServiceName(os, desired);
      const steps = [sh.found(name)];
      if (desired.ensure === 'running') steps.push(`{ ${sh.running(name)} || ${sh.act(name, 'start')}; }`);
      else if (desired.ensure === 'stopped') steps.push(`{ ! ${sh.running(name)} || ${sh.stop(name)}; }`);
      if (typeof desired.enable === 'boolean') {
        steps.push(`{ ${sh.enabled(name, desired.enable)} || ${desired.enable ? sh.enable(name) : sh.disable(name)}; }`);
      }
      return steps.join(' &&\n');
    },
    // As `refresh` below: a service meant to be stopped, or not running and not asked to run, is left alone.
    refresh(desired, ctx) {
      const os = ctx?.os ?? {};
      if (desired.ensure === 'stopped') return 'true';
      const name = shellServiceName(os, desired);
      const verb: Verb = desired.reload === true ? 'reload' : 'restart';
      const otherwise = desired.ensure === 'running' ? `else ${sh.act(name, 'start')}; ` : '';
      return `${sh.found(name)} &&\nif ${sh.running(name)}; then ${sh.act(name, verb)}; ${otherwise}fi`;
    },
  };
}

export function serviceProvider(init: InitSystem, suitable: Provider['suitable'], shell?: InitShell): Provider<typeof serviceType> {
  return {
    type: 'service',
    name: init.name,
    suitable,
    ...(shell ? { shell: serviceShell(shell) } : {}),

    /** Absent when the init system does not know the service: the apply then fails in its words. */
    async read(ctx, desired) {
      const status = await statusOf(ctx, init, serviceName(ctx, desired));
      if (!status.known) return undefined;
      return {
        name: desired.name,
        ensure: status.running ? 'running' : 'stopped',
        enable: status.enabled ?? desired.enable,
      };
    },

    async apply(ctx, _action, desired): Promise<ApplyOutcome> {
      const name = serviceName(ctx, desired);
      let status = await statusOf(ctx, init, name);
      if (!status.known && !status.problem && init.rescan && offers(ctx.exec, 'running-system')) {
        // A unit file written earlier in this run may not be loaded yet.
        await init.rescan(ctx);
        status = (await init.readAll(ctx, [name])).get(name) ?? status;
      }
      if (!status.known) return unknown(ctx, init, name, desired, status);

      let changed = false;
      let startedOrStopped = false;
      if (desired.ensure === 'running' && !status.running) {
        await act(ctx, init, name, 'start', status);
        changed = startedOrStopped = true;
      } else if (desired.ensure === 'stopped' && status.running) {
        await init.stop(ctx, name, status);
        changed = startedOrStopped = true;
      }
      if (typeof desired.enable === 'boolean' && status.enabled !== undefined && desired.enable !== status.enabled) {
        await (desired.enable ? init.enable(ctx, name, status) : init.disable(ctx, name, status));
        changed = true;
      }
      if (!changed) return { changed: false, reason: 'already as asked' };
      // Started from stopped, it reads its current configuration; stopped, there is nothing to
      // restart: a notification due in the same run needs no restart right after.
      return startedOrStopped ? { refreshed: true } : undefined;
    },

    /**
     * Restarts (or reloads, with `reload: true`) a running service. A service that should be
     * stopped, or is not running and not asked to run, is left alone: a notification never
     * starts what the site does not want running.
     */
    async refresh(ctx, desired) {
      if (desired.ensure === 'stopped') return { changed: false, reason: 'notified, but meant to be stopped' };
      if (!offers(ctx.exec, 'running-system')) return { changed: false, reason: `notified, but nothing runs through the ${ctx.exec.name} executor` };
      const name = serviceName(ctx, desired);
      const status = await statusOf(ctx, init, name);
      if (!status.known) {
        const r = await init.probe(ctx, name);
        throw new ApplyError(outputTail(`${r.stdout}\n${r.stderr}`, 20) || `${init.name}: service ${name} not found`);
      }
      if (!status.running && desired.ensure !== 'running') return { changed: false, reason: 'notified, but not running' };
      const verb: Verb = !status.running ? 'start' : desired.reload === true ? 'reload' : 'restart';
      await act(ctx, init, name, verb, status);
    },
  };
}
