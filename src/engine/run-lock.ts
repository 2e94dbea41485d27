/**
 * One run per target at a time (DESIGN §5.11), around the engine: the executor tries the lock in
 * the target's state directory (Executor.tryLock), and this waits for it, up to `--lock-wait`.
 *
 * Plans take the lock too, as Puppet's noop runs do: a plan writes nothing, but one that reads
 * while an apply changes the target reports a state that never existed (half the nodes before
 * the apply, half after, pending notifications read mid-way). A plan that cannot write the state
 * directory (a user without rights to /var/lib/cairn) still runs, unlocked, unless it finds the
 * lock held, as it did before there was a lock; an apply says so, a plan does not.
 *
 * The lock is taken at the run's first operation on the target rather than before the engine
 * starts: by then the engine has announced what it will read, and a remote executor reads the
 * first of it in the same round trip as it takes the lock.
 */
import type { Executor, LockAttempt, LockHolder } from '../executors/types.ts';
import { isoTime, nowMs, pauseFor } from '../lib/clock.ts';
import { abortSignalOf, type RunSignal } from '../lib/run-signal.ts';

export interface LockOptions {
  mode: 'plan' | 'apply';
  stateDir: string;
  /** How long to wait for another run's lock, in milliseconds (0: not at all). */
  waitMs: number;
  signal?: RunSignal;
  /** Lines for the user: a lock taken over from a run that is gone (a warning), a wait begun. */
  onNotice?: (line: string) => void;
  /**
   * The folders the run may write into, state_dir among them: where a run killed mid-write left
   * its temp files, removed when its lock is taken over. Asked only then.
   */
  writeFolders?: () => string[];
}

/** Another run holds the target's lock (exit 2: nothing was changed). */
export class LockHeldError extends Error {
  constructor(target: string, readonly holder: LockHolder | undefined, alive: 'yes' | 'no' | 'unknown', path: string, waited: boolean) {
    super(`${target}: ${heldMessage(holder, alive, path)}${waited ? '; waited for it in vain' : '; --lock-wait to wait'}`);
    this.name = 'LockHeldError';
  }
}

export function describeHolder(h: LockHolder): string {
  return `pid ${h.pid} on host ${h.host} (started ${h.started}${h.by ? `, ${h.by}` : ''})`;
}

function heldMessage(holder: LockHolder | undefined, alive: 'yes' | 'no' | 'unknown', path: string): string {
  if (!holder) return `another run is taking the lock (${path} has no holder yet; if no run is going, remove it)`;
  const base = `another run holds the lock since ${holder.started}: ${describeHolder(holder)}`;
  if (alive === 'unknown') return `${base}; it ran on another host, which Cairn cannot check from here: if that run is gone, remove ${path}`;
  if (alive === 'no') return `${base}; that process is gone but another run is taking the lock over: if none is, remove ${path}`;
  return base;
}

/** Takes the lock, polling with backoff up to `waitMs`; returns whether it was taken (a plan may go on without). */
export async function acquireRunLock(target: string, exec: Executor, options: LockOptions): Promise<boolean> {
  if (!exec.tryLock) return false;
  const claim = { started: isoTime(), by: `cairn ${options.mode}` };
  const deadline = nowMs() + options.waitMs;
  let pause = 50;
  for (let first = true; ; first = false) {
    const attempt: LockAttempt = await exec.tryLock(options.stateDir, claim);
    if (attempt.state === 'taken') {
      if (attempt.tookOver) {
        const removed = await sweepTemps(exec, attempt.tookOver, options);
        options.onNotice?.(`${target}: warning: took over the run lock of ${describeHolder(attempt.tookOver)}: that process is gone` +
          (removed > 0 ? `; removed ${removed} temp file${removed === 1 ? '' : 's'} it left` : ''));
      }
      return true;
    }
    if (attempt.state === 'unwritable') {
      if (options.mode === 'apply') {
        options.onNotice?.(`${target}: warning: running without the run lock: cannot write ${options.stateDir} (${attempt.reason}); give the target a state_dir this user can write`);
      }
      return false;
    }
    const left = deadline - nowMs();
    if (left <= 0 || options.signal?.aborted) throw new LockHeldError(target, attempt.holder, attempt.alive, attempt.path, options.waitMs > 0);
    if (first) options.onNotice?.(`${target}: waiting for the run lock: ${heldMessage(attempt.holder, attempt.alive, attempt.path)}`);
    await pauseFor(Math.min(pause, left), options.signal && abortSignalOf(options.signal));
    pause = Math.min(pause * 2, 2000);
  }
}

/**
 * The dead holder's temp files (a run killed mid-write leaves the writes in flight) in the folders
 * this run writes: the lock guarantees nothing of that run's is still in flight. Only the dead
 * run's own, by the tag its holder recorded, so a file that merely looks alike stays. A plan
 * sweeps too: once it has taken the lock over, no later run would know whose the files were.
 */
async function sweepTemps(exec: Executor, dead: LockHolder, options: LockOptions): Promise<number> {
  if (!dead.temps || !exec.sweepTemps) return 0;
  const folders = [...new Set([options.stateDir, ...(options.writeFolders?.() ?? [])])];
  return exec.sweepTemps(dead.temps, folders);
}


/** Operations that may come before the lock: announcing reads, and letting go. */
const UNGATED = new Set<PropertyKey>(['prefetch', 'close', 'tryLock', 'unlock']);

/**
 * `exec` with every operation on the target held until `gate` has run once (and failing as it
 * failed): the lock comes before the run's first reading, whoever makes it.
 */
export function gated(exec: Executor, gate: () => Promise<void>): Executor {
  let passed = false;
  let passing: Promise<void> | undefined;
  const pass = () => (passing ??= gate().then(() => {
    passed = true;
  }));
  const wrappers = new Map<PropertyKey, unknown>();
  return new Proxy(exec, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      let w = wrappers.get(prop);
      if (!w) {
        const fn = value as (...args: unknown[]) => unknown;
        w = UNGATED.has(prop) ? fn.bind(target)
          : (...args: unknown[]) => (passed ? fn.apply(target, args) : pass().then(() => fn.apply(target, args)));
        wrappers.set(prop, w);
      }
      return w;
    },
  });
}
