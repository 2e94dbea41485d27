/**
 * What every service provider shares: the OS-agnostic name mapped to the init system's, one
 * batched reading of every service node in the run, and the same read / apply / refresh logic
 * over an init system's handful of commands (systemd, OpenRC, rc.d).
 */
import { outputTail } from '../commands.ts';
import type { RunResult } from '../../executors/types.ts';
import { osName } from '../os.ts';
import { ApplyError, type ApplyOutcome, type Provider, type ProviderContext, type Desired } from '../type.ts';
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
  /** Makes the init system look again for services that appeared (systemd: daemon-reload). */
  rescan?(ctx: ProviderContext): Promise<void>;
  /** A command that fails, in the tool's own words, for a service it does not know. */
  probe(ctx: ProviderContext, name: string): Promise<RunResult>;
}



/** The init system's name for the service a part names (`ssh-server` → `ssh` on Debian). */
export function serviceName(ctx: ProviderContext, desired: ServiceAttributes): string {
  const name = desired.name;
  return osName(ctx.os, 'services', name) ?? name;
}

/** This service's reading, from one batched reading of every service node of the run. */
async function statusOf(ctx: ProviderContext<typeof serviceType>, init: InitSystem, name: string): Promise<ServiceStatus> {
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
  const r = await init.probe(ctx, name);
  throw new ApplyError(outputTail(`${r.stdout}\n${r.stderr}`, 20) || `${init.name}: service ${name} not found`);
}

export function serviceProvider(init: InitSystem, suitable: Provider['suitable']): Provider<typeof serviceType> {
  return {
    type: 'service',
    name: init.name,
    suitable,

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
      if (!status.known && !status.problem && init.rescan) {
        // A unit file written earlier in this run may not be loaded yet.
        await init.rescan(ctx);
        status = (await init.readAll(ctx, [name])).get(name) ?? status;
      }
      if (!status.known) return unknown(ctx, init, name, desired, status);

      let changed = false;
      let startedOrStopped = false;
      if (desired.ensure === 'running' && !status.running) {
        await init.start(ctx, name, status);
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
      const name = serviceName(ctx, desired);
      const status = await statusOf(ctx, init, name);
      if (!status.known) {
        const r = await init.probe(ctx, name);
        throw new ApplyError(outputTail(`${r.stdout}\n${r.stderr}`, 20) || `${init.name}: service ${name} not found`);
      }
      if (!status.running && desired.ensure !== 'running') return { changed: false, reason: 'notified, but not running' };
      if (!status.running) await init.start(ctx, name, status);
      else if (desired.reload === true) await init.reload(ctx, name, status);
      else await init.restart(ctx, name, status);
    },
  };
}
