/**
 * Opening the selected targets before anything is compiled: an executor per target (local, or a
 * verified SSH connection) and its facts, `--forks` at a time. A target that cannot be reached is
 * kept with its reason, so the run reports it (exit 3) while the others go on.
 */
import { join } from 'node:path';
import { DEFAULT_STATE_DIR } from '../catalog/staterun.ts';
import type { Executor } from '../executors/types.ts';
import type { SelectedTarget } from './site-compiler.ts';

export interface Session {
  name: string;
  exec?: Executor;
  facts?: Record<string, unknown>;
  /** Why the target could not be reached. */
  error?: string;
}

export interface OpenOptions {
  forks: number;
  acceptNewHostKeys?: boolean;
  /** `--facts FILE`: used instead of every target's own. */
  fixedFacts?: Record<string, unknown>;
  localFacts: () => Record<string, unknown>;
  /**
   * Local targets keep a content index in their state_dir (executors/content-index.ts):
   * `save` for `apply` (plan changes nothing), `trust` false for `--checksum`.
   */
  contentIndex?: { trust: boolean; save: boolean };
}

async function open(target: SelectedTarget, options: OpenOptions): Promise<Session> {
  const { name, settings } = target;
  if (settings.executor === 'local') {
    const { LocalExecutor } = await import('../executors/local.ts');
    const contentIndex = options.contentIndex && { file: join(settings.state_dir ?? DEFAULT_STATE_DIR, 'content-index.json'), ...options.contentIndex };
    return { name, exec: new LocalExecutor(contentIndex ? { contentIndex } : {}), facts: options.fixedFacts ?? options.localFacts() };
  }
  if (settings.executor === 'ssh') {
    const { SshExecutor } = await import('../executors/ssh/executor.ts');
    try {
      const exec = await SshExecutor.open(name, { ...settings, host: settings.host ?? name }, {
        ...(options.acceptNewHostKeys ? { acceptNewHostKeys: true } : {}),
      });
      try {
        return { name, exec, facts: options.fixedFacts ?? (await exec.facts()) };
      } catch (err) {
        await exec.close();
        throw err;
      }
    } catch (err) {
      const { UnreachableError } = await import('../executors/types.ts');
      if (err instanceof UnreachableError) return { name, error: err.reason };
      throw err;
    }
  }
  return { name, error: `the ${settings.executor} executor is not available in this version of Cairn` };
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
