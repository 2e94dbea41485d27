/**
 * Running one compiled target through its executor, and what a run of several targets reports
 * (DESIGN §2: every consumer runs the same engine). The CLI, the store-watching agent and a
 * master all go through here, so a report means the same thing whoever produced it; what each
 * does around a run (printing, storing, streaming) stays with it, through `onResult`.
 */
import { isTargetFailure, UnreachableError, type Executor } from '../executors/types.ts';
import type { Compiled } from '../graph/codec.ts';
import { ExitCode } from '../lib/errors.ts';
import type { RunSignal } from '../lib/run-signal.ts';
import { Engine, summarize, type EngineOptions, type NodeResult, type TargetReport } from './engine.ts';
import { acquireRunLock, gated, LockHeldError } from './run-lock.ts';
import type { StateStorage } from './target-state.ts';

export interface RunTargetOptions {
  mode: 'plan' | 'apply';
  failFast?: boolean;
  diff?: boolean;
  /** The target's facts as gathered now; default: those the run was compiled with. */
  facts?: Record<string, unknown>;
  /** Where pending notifications and input hashes are kept; default: the target's state_dir. */
  stateStorage?: StateStorage;
  /** Stopping the caller (a signal, a cancelled run): handed to providers as ProviderContext.signal. */
  signal?: RunSignal;
  /** Each node's result as it finishes, in run order. */
  onResult?: (result: NodeResult) => void;
  /** Providers' log lines and progress (ProviderContext.log, .progress). */
  onLog?: EngineOptions['onLog'];
  onProgress?: EngineOptions['onProgress'];
  /** A node's turn begins; each command run on the target, sensitive values masked (`-v`). */
  onStart?: EngineOptions['onStart'];
  onCommand?: EngineOptions['onCommand'];
  /** The provisioner, for the lifecycle types' builds (ProviderContext.images). */
  images?: EngineOptions['images'];
  /**
   * A run the target ends part way (the target lost, its state storage refusing a write):
   * 'report' (the default) makes it an unreachable report carrying the nodes run so far, so the
   * other targets go on; 'throw' lets the error through, for a caller that must not record such
   * a run as done (the agent retries the revision when it restarts). Any other error is a bug
   * and always goes through: the command stops with its stack (exit 70).
   */
  errors?: 'report' | 'throw';
  /** `--tags` / `--skip-tags` (DESIGN §4a). */
  tags?: EngineOptions['tags'];
  /** How long to wait for another run's lock on the target (`--lock-wait`), in ms; default 0. */
  lockWaitMs?: number;
  /** Lines about the run lock: a wait begun, a lock taken over from a run that is gone. */
  onNotice?: (line: string) => void;
}

/** Plans or applies `compiled` through `exec` (which the caller opened and closes). */
export async function runTarget(compiled: Compiled, exec: Executor, options: RunTargetOptions): Promise<TargetReport> {
  const name = compiled.run.target.name;
  const stateDir = compiled.run.target.state_dir;
  let locked = false;
  let locking: Promise<void> | undefined;
  const lock = () => (locking ??= acquireRunLock(name, exec, {
    mode: options.mode, stateDir, waitMs: options.lockWaitMs ?? 0,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onNotice ? { onNotice: options.onNotice } : {}),
    // The gate opens at the engine's first operation on the target, once it exists.
    writeFolders: () => engine.writeFolders(),
  }).then((taken) => {
    locked = taken;
  }));
  const lockedExec = !exec.tryLock ? exec : gated(exec, lock);
  // State kept elsewhere (a store) is read and written under the lock too: a run waiting for
  // the lock must not hold a copy of the pending notifications from before the run it waits for.
  const stateStorage = options.stateStorage && exec.tryLock ? lockedStorage(options.stateStorage, lock) : options.stateStorage;
  const engine: Engine = new Engine(compiled.run, compiled.graph, lockedExec, {
    mode: options.mode,
    failFast: options.failFast ?? false,
    diff: options.diff ?? false,
    ...(options.facts ? { facts: options.facts } : {}),
    ...(stateStorage ? { stateStorage } : { stateExclusive: () => locked }),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onResult ? { onResult: options.onResult } : {}),
    ...(options.onLog ? { onLog: options.onLog } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.onStart ? { onStart: options.onStart } : {}),
    ...(options.onCommand ? { onCommand: options.onCommand } : {}),
    ...(options.tags ? { tags: options.tags } : {}),
    ...(options.images ? { images: options.images } : {}),
  });
  let report: TargetReport;
  try {
    report = summarize(name, await engine.execute());
  } catch (err) {
    if (options.errors === 'throw') throw err;
    if (err instanceof LockHeldError) report = { name, status: 'locked', counts: { changed: 0, unchanged: 0, failed: 0, skipped: 0 }, nodes: [], error: err.message };
    else if (err instanceof UnreachableError) report = summarize(name, engine.results, err.reason);
    else if (isTargetFailure(err)) report = summarize(name, engine.results, (err as Error).message);
    else throw err;
  } finally {
    // Best effort: a lock left behind names a process that is gone, and the next run takes it over.
    if (locked) await exec.unlock?.(stateDir).catch(() => undefined);
  }
  if (exec.roundTrips !== undefined) report.round_trips = exec.roundTrips;
  return report;
}

/** `storage` whose every read and write first waits for the run lock (`lock`, taken once). */
function lockedStorage(storage: StateStorage, lock: () => Promise<void>): StateStorage {
  return {
    paths: () => storage.paths(),
    read: async (file) => {
      await lock();
      return storage.read(file);
    },
    write: async (file, data) => {
      await lock();
      await storage.write(file, data);
    },
  };
}

/** The JSON report (DESIGN §12): what `--json` prints and what a store keeps. */
export interface RunReport {
  version: 1;
  mode: 'plan' | 'apply';
  started: string;
  finished: string;
  targets: TargetReport[];
}

/**
 * A run's exit code (DESIGN §12): an unreachable target outranks one another run held (§5.11:
 * exit 2, it was not touched), which outranks a failed node, which outranks pending changes
 * (reported only when asked, with `--detailed-exitcode`).
 */
export function runExitCode(mode: 'plan' | 'apply', targets: readonly TargetReport[], detailedExitcode = false): number {
  if (targets.some((r) => r.status === 'unreachable')) return ExitCode.unreachable;
  if (targets.some((r) => r.status === 'locked')) return ExitCode.invalidInput;
  if (targets.some((r) => r.status === 'failed')) return ExitCode.nodesFailed;
  if (mode === 'plan' && detailedExitcode && targets.some((r) => r.counts.changed > 0)) return ExitCode.changesPending;
  return ExitCode.ok;
}
