/**
 * Opening the selected targets before anything is compiled: an executor per target (the one its
 * settings name, from executors/registry.ts) and its facts, `--forks` at a time. A target that
 * cannot be reached is kept with its reason, so the run reports it (exit 3) while the others go on.
 *
 * A target with `executor: agent` is not opened here at all: its agent runs the whole run where
 * it is, through a master (master-client.ts). Its session carries the master client instead of an
 * executor, and the facts the agent last reported.
 */
import { openExecutor, type ExecutorOpenOptions } from '../executors/registry.ts';
import type { Executor } from '../executors/types.ts';
import type { SelectedTarget } from './site-compiler.ts';
import { MasterError, MasterUnreachable, type MasterClient } from './master-client.ts';

export interface Session {
  name: string;
  exec?: Executor;
  facts?: Record<string, unknown>;
  /** Why the target could not be reached. */
  error?: string;
  /** `executor: agent`: the master its agent is reached through (runs go there, not to an executor). */
  remote?: MasterClient;
}

export interface OpenOptions extends ExecutorOpenOptions {
  forks: number;
  /** `--facts FILE`'s facts per target, gathered from none. */
  factsOf?: Map<string, Record<string, unknown>>;
  /** The master for targets with `executor: agent`; throws an input error when none is configured. */
  master?: (target: string) => MasterClient;
}

async function openAgent(name: string, client: MasterClient, fixed: Record<string, unknown> | undefined): Promise<Session> {
  try {
    const info = await client.target(name);
    if (!info) return { name, error: `no agent named ${name} ever connected to master ${client.url} (enrol it: cairn agent enrol --name ${name} …)` };
    if (!info.connected) return { name, error: `agent ${name} is not connected to master ${client.url}` };
    return { name, remote: client, facts: fixed ?? info.facts };
  } catch (err) {
    if (err instanceof MasterUnreachable || err instanceof MasterError) return { name, error: err.message };
    throw err;
  }
}

async function open(target: SelectedTarget, options: OpenOptions): Promise<Session> {
  const { name, settings } = target;
  const fixed = options.factsOf?.get(name);
  if (settings.executor === 'agent' && options.master) return openAgent(name, options.master(name), fixed);
  const opened = await openExecutor(name, settings, { ...options, ...(fixed ? { fixedFacts: fixed } : {}), ...(target.via ? { via: target.via } : {}) });
  return 'unreachable' in opened ? { name, error: opened.unreachable } : { name, exec: opened.exec, facts: opened.facts };
}

/** Runs `fn` over `items`, at most `limit` at a time, keeping the results in order. */
export async function inParallel<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  }));
  return out;
}

export function openSessions(targets: SelectedTarget[], options: OpenOptions): Promise<Session[]> {
  // A missing master setting is the site's mistake (exit 2): said before any target is opened.
  const agent = targets.find((t) => t.settings.executor === 'agent');
  if (agent && options.master) options.master(agent.name);
  return inParallel(targets, options.forks, (t) => open(t, options));
}

export async function closeSessions(sessions: Session[]): Promise<void> {
  await Promise.all(sessions.map((s) => s.exec?.close()));
}
