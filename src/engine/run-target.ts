/**
 * Running one compiled target through its executor, and what a run of several targets reports
 * (DESIGN §2: every consumer runs the same engine). The CLI, the store-watching agent and a
 * master all go through here, so a report means the same thing whoever produced it; what each
 * does around a run (printing, storing, streaming) stays with it, through `onResult`.
 */
import { isTargetFailure, UnreachableError, type Executor } from '../executors/types.ts';
import type { Compiled } from '../graph/codec.ts';
import { ExitCode } from '../lib/errors.ts';
import { Engine, summarize, type EngineOptions, type NodeResult, type TargetReport } from './engine.ts';
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
  signal?: AbortSignal;
  /** Each node's result as it finishes, in run order. */
  onResult?: (result: NodeResult) => void;
  /** Providers' log lines and progress (ProviderContext.log, .progress). */
  onLog?: EngineOptions['onLog'];
  onProgress?: EngineOptions['onProgress'];
  /**
   * A run the target ends part way (the target lost, its state storage refusing a write):
   * 'report' (the default) makes it an unreachable report carrying the nodes run so far, so the
   * other targets go on; 'throw' lets the error through, for a caller that must not record such
   * a run as done (the agent retries the revision when it restarts). Any other error is a bug
   * and always goes through: the command stops with its stack (exit 70).
   */
  errors?: 'report' | 'throw';
}

/** Plans or applies `compiled` through `exec` (which the caller opened and closes). */
export async function runTarget(compiled: Compiled, exec: Executor, options: RunTargetOptions): Promise<TargetReport> {
  const name = compiled.run.target.name;
  const engine = new Engine(compiled.run, compiled.graph, exec, {
    mode: options.mode,
    failFast: options.failFast ?? false,
    diff: options.diff ?? false,
    ...(options.facts ? { facts: options.facts } : {}),
    ...(options.stateStorage ? { stateStorage: options.stateStorage } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onResult ? { onResult: options.onResult } : {}),
    ...(options.onLog ? { onLog: options.onLog } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  let report: TargetReport;
  try {
    report = summarize(name, await engine.execute());
  } catch (err) {
    if (options.errors === 'throw') throw err;
    if (err instanceof UnreachableError) report = summarize(name, engine.results, err.reason);
    else if (isTargetFailure(err)) report = summarize(name, engine.results, (err as Error).message);
    else throw err;
  }
  if (exec.roundTrips !== undefined) report.round_trips = exec.roundTrips;
  return report;
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
 * A run's exit code (DESIGN §12): an unreachable target outranks a failed node, which outranks
 * pending changes (reported only when asked, with `--detailed-exitcode`).
 */
export function runExitCode(mode: 'plan' | 'apply', targets: readonly TargetReport[], detailedExitcode = false): number {
  if (targets.some((r) => r.status === 'unreachable')) return ExitCode.unreachable;
  if (targets.some((r) => r.status === 'failed')) return ExitCode.nodesFailed;
  if (mode === 'plan' && detailedExitcode && targets.some((r) => r.counts.changed > 0)) return ExitCode.changesPending;
  return ExitCode.ok;
}
