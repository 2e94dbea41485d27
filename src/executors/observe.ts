/**
 * An executor that reports the commands run through it (`-v`/`-vv`), leaving the executor it
 * wraps untouched: every other method and property is the wrapped one's, so caches keyed on the
 * executor and counters such as roundTrips see one executor, as before.
 */
import { nowMs } from '../lib/clock.ts';
import type { Executor, RunOptions, RunResult } from './types.ts';

/** One finished command: its result, or the error it threw (the target lost, a timeout). */
export interface CommandRecord {
  argv: string[];
  opts?: RunOptions;
  result?: RunResult;
  error?: unknown;
  ms: number;
}

export function observeExecutor(exec: Executor, listener: (record: CommandRecord) => void): Executor {
  const run = async (argv: string[], opts?: RunOptions): Promise<RunResult> => {
    const start = nowMs();
    const ms = () => Math.round((nowMs() - start) * 10) / 10;
    const base = { argv, ...(opts ? { opts } : {}) };
    let result: RunResult;
    try {
      result = await exec.run(argv, opts);
    } catch (error) {
      listener({ ...base, error, ms: ms() });
      throw error;
    }
    listener({ ...base, result, ms: ms() });
    return result;
  };
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(exec, {
    get(target, prop) {
      if (prop === 'run') return run;
      // Commands run together are timed together: observed, each runs alone and is reported as it ran.
      if (prop === 'runGuarded') return undefined;
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      let fn = bound.get(prop);
      if (!fn) {
        fn = (value as (...args: unknown[]) => unknown).bind(target);
        bound.set(prop, fn);
      }
      return fn;
    },
  });
}
