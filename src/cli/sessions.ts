/**
 * Opening the selected targets before anything is compiled: an executor per target (the one its
 * settings name, from executors/registry.ts) and its facts, `--forks` at a time. A target that
 * cannot be reached is kept with its reason, so the run reports it (exit 3) while the others go on.
 */
import { openExecutor, type ExecutorOpenOptions } from '../executors/registry.ts';
import type { Executor } from '../executors/types.ts';
import type { SelectedTarget } from './site-compiler.ts';

export interface Session {
  name: string;
  exec?: Executor;
  facts?: Record<string, unknown>;
  /** Why the target could not be reached. */
  error?: string;
}

export interface OpenOptions extends ExecutorOpenOptions {
  forks: number;
  /** `--facts FILE`'s facts per target, gathered from none. */
  factsOf?: Map<string, Record<string, unknown>>;
}

async function open(target: SelectedTarget, options: OpenOptions): Promise<Session> {
  const { name, settings } = target;
  const fixed = options.factsOf?.get(name);
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
  return inParallel(targets, options.forks, (t) => open(t, options));
}

export async function closeSessions(sessions: Session[]): Promise<void> {
  await Promise.all(sessions.map((s) => s.exec?.close()));
}
