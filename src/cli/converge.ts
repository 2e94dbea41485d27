/** `cairn plan` and `cairn apply` over the opened targets, `--forks` at a time. */
import { summarize, type TargetReport } from '../engine/engine.ts';
import { runExitCode, runTarget, type RunReport, type RunTargetOptions } from '../engine/run-target.ts';
import type { Compiled } from './compile-cache.ts';
import { closeSync, openSync, writeSync } from 'node:fs';
import { commandLines, logLine, nodeLine, Progress, summaryLine, timingLine } from './report.ts';
import { describe, inBatches, ROLLOUT_STOPPED, type RolloutOptions } from './rollout.ts';
import { inParallel, type Session } from './sessions.ts';
import { clearStatus, colourAllowed, stdoutIsTTY, stdoutStream, writeErr, writeOut } from './output.ts';
import { ExitCode } from '../lib/errors.ts';
import { isoTime, nowMs } from '../lib/clock.ts';
import { tagFilter } from './tags.ts';
import type { ImageBuilder, ProgressUpdate } from '../resources/type.ts';
import type { MasterFlags } from './master-client.ts';
import { interruptible } from './interrupt.ts';

export type { RunReport } from '../engine/run-target.ts';

/** The options of `cairn plan` and `cairn apply`, as commander parses them (cli/main.ts). */
export interface ConvergeOptions extends RolloutOptions, MasterFlags {
  site: string;
  target?: string[];
  var?: string[];
  facts?: string;
  diff?: boolean;
  json?: boolean;
  failFast?: boolean;
  checksum?: boolean;
  forks: number;
  /** Seconds (`--lock-wait`). */
  lockWait?: number;
  detailedExitcode?: boolean;
  acceptNewHostKeys?: boolean;
  store?: string;
  storeConfig?: string;
  /** `-v` (1): commands and providers' log lines; `-vv` (2): their output and per-node timings too. */
  verbose?: number;
  /** `--log FILE`: the `-vv` stream, whatever the terminal shows. */
  log?: string;
  tags?: string[];
  skipTags?: string[];
  /** `--root PATH`: the selected target converges this root through the chroot executor. */
  root?: string;
}

/**
 * A nested target (`via:`) whose outer target runs in the same invocation (DESIGN §6): opened and
 * compiled only once the outer target's run is over, since what it runs in (a container, a jail)
 * may be made by that run.
 */
export interface AfterOuter {
  /** The outer target's name. */
  after: string;
  open(): Promise<{ session: Session; compiled?: Compiled }>;
}

/** Why a nested target does not run, given its outer target's report; undefined: it runs. */
function outerVerdict(mode: 'plan' | 'apply', outer: TargetReport | undefined, name: string): string | undefined {
  if (!outer) return `via ${name}: it was not run`;
  if (outer.status === 'ok') return undefined;
  return `via ${name}: ${name} ${outer.status === 'failed' ? `failed (${outer.counts.failed} failed)` : outer.status}${mode === 'apply' ? '' : ' in the plan'}`;
}

/** A target that was not run, saying why. */
function notRun(name: string, reason: string): TargetReport {
  return { name, status: 'skipped', counts: { changed: 0, unchanged: 0, failed: 0, skipped: 0 }, nodes: [], reason };
}

/**
 * `keep` receives the run's report at the end (to store it). `later`: nested targets run after
 * their outer target (their sessions in `sessions` are placeholders, `{ name }`).
 */
export async function converge(mode: 'plan' | 'apply', sessions: Session[], compiled: Map<string, Compiled>, options: ConvergeOptions,
  keep?: (report: RunReport) => Promise<void>, later: Map<string, AfterOuter> = new Map(),
  imagesFor?: (target: string) => ImageBuilder | undefined): Promise<number> {
  // Checked before any target is touched: a misspelt tag changes nothing.
  const tags = tagFilter(options, compiled.values());
  const started = Date.now();
  const multi = sessions.length > 1;
  const tty = !options.json && stdoutIsTTY();
  clearStatus();
  let logFd: number | undefined;
  if (options.log) {
    try {
      logFd = openSync(options.log, 'w');
    } catch (err) {
      writeErr(`cairn: --log ${options.log}: ${(err as Error).message}\n`);
      return ExitCode.invalidInput;
    }
  }
  const progress = tty ? new Progress(stdoutStream()) : undefined;
  const out = progress ? undefined : new LineBuffer();
  const print = (text: string) => (progress ? progress.print(text) : out!.write(`${text}\n`));
  const colour = tty && colourAllowed();
  const level = options.verbose ?? 0;
  const toLog = (text: string) => {
    if (logFd !== undefined) writeSync(logFd, `${text}\n`);
  };
  // With --json, standard output is the report alone: the commands go to standard error.
  const verbose = (text: string, min: number) => {
    if (level >= min) {
      if (options.json) writeErr(`${text}\n`);
      else print(text);
    }
  };
  const watching = level > 0 || logFd !== undefined;
  const interrupt = interruptible();

  // Each target's report as it is done, for the nested targets that wait on it.
  const done = new Map<string, { report: Promise<TargetReport>; settle(r: TargetReport): void }>();
  for (const s of sessions) {
    let settle!: (r: TargetReport) => void;
    const report = new Promise<TargetReport>((resolve) => (settle = resolve));
    done.set(s.name, { report, settle });
  }
  let reports: TargetReport[];
  try {
    let stopped: Awaited<ReturnType<typeof inBatches>>['stopped'];
    ({ reports, stopped } = await inBatches(sessions, options, (batch) => inParallel(batch, options.forks, async (placeholder) => {
      const report = await runOne(placeholder);
      done.get(placeholder.name)?.settle(report);
      return report;
    })));
    if (stopped && !options.json) {
      print(`rollout stopped: ${stopped.failed} of ${stopped.size} targets failed in batch ${stopped.batch}, more than --max-fail ${describe(options.maxFail!)}`);
      for (const r of reports.filter((t) => t.status === 'skipped' && t.reason === ROLLOUT_STOPPED)) print(summaryLine(r, 0, mode === 'plan'));
    }
  } finally {
    interrupt.dispose();
    out?.flush();
    if (logFd !== undefined) closeSync(logFd);
  }

  /** One target's run; a nested one waits for its outer target, then is opened and compiled. */
  async function runOne(placeholder: Session): Promise<TargetReport> {
    const deferred = later.get(placeholder.name);
    if (!deferred) return runSession(placeholder, compiled.get(placeholder.name));
    const outer = await done.get(deferred.after)?.report;
    const verdict = outerVerdict(mode, outer, deferred.after);
    if (verdict !== undefined || interrupt.signal.aborted) {
      const report = notRun(placeholder.name, verdict ?? 'run cancelled');
      if (!options.json) print(summaryLine(report, 0, mode === 'plan'));
      return report;
    }
    const opened = await deferred.open();
    try {
      // A plan changes nothing: what the outer target's plan would make first cannot be reached yet.
      if (mode === 'plan' && !opened.session.exec && outer!.counts.changed > 0) {
        const report = notRun(placeholder.name, `via ${deferred.after}: after the changes its plan shows (${opened.session.error ?? 'not reachable yet'})`);
        if (!options.json) print(summaryLine(report, 0, true));
        return report;
      }
      return await runSession(opened.session, opened.compiled);
    } finally {
      await opened.session.exec?.close();
    }
  }

  async function runSession(session: Session, unit: Compiled | undefined): Promise<TargetReport> {
    const { name, exec, remote } = session;
    const t0 = nowMs();
    let report: TargetReport;
    if ((!exec && !remote) || !unit) {
      report = summarize(name, [], session.error ?? 'not compiled');
    } else {
      progress?.start(name, unit.graph.order.length);
      const runOptions: RunTargetOptions = {
        mode,
        failFast: options.failFast ?? false,
        diff: options.diff ?? false,
        ...(tags ? { tags } : {}),
        ...(session.facts ? { facts: session.facts } : {}),
        lockWaitMs: (options.lockWait ?? 0) * 1000,
        signal: interrupt.signal,
        ...(imagesFor?.(name) ? { images: imagesFor(name)! } : {}),
        onNotice: (line) => writeErr(`${line}\n`),
        ...(progress ? {
          onStart: (ref: string) => progress.running(name, ref),
          onProgress: (ref: string, update: ProgressUpdate) => progress.progress(name, ref, update),
        } : {}),
        ...(watching ? {
          onCommand: (c) => {
            verbose(commandLines(name, c, multi, level), 1);
            toLog(commandLines(name, c, multi, 2));
          },
          onLog: (ref, message) => {
            verbose(logLine(name, ref, message, multi), 1);
            toLog(logLine(name, ref, message, multi));
          },
        } satisfies Partial<RunTargetOptions> : {}),
        onResult: (r) => {
          // Lines only for where they go (a large site's run has a result per node).
          if (logFd !== undefined) {
            toLog(nodeLine(name, r, multi));
            toLog(timingLine(name, r, multi));
          }
          if (!options.json) {
            progress?.node(name, r);
            if (!progress || r.status !== 'unchanged') print(nodeLine(name, r, multi, colour));
          }
          if (level >= 2) verbose(timingLine(name, r, multi), 2);
        },
      };
      // A target with `executor: agent` runs where it is, through the master: one round trip.
      report = remote ? await remote.converge(unit, runOptions) : await runTarget(unit, exec!, runOptions);
    }
    progress?.finish(name);
    const summary = summaryLine(report, (nowMs() - t0) / 1000, mode === 'plan');
    toLog(summary);
    if (!options.json) print(summary);
    return report;
  }

  const report: RunReport = { version: 1, mode, started: isoTime(started), finished: isoTime(), targets: reports };
  if (options.json) writeOut(`${JSON.stringify(report, null, 2)}\n`);
  await keep?.(report);
  const code = runExitCode(mode, reports, options.detailedExitcode ?? false);
  // An interrupted run did not do all it was asked, even when no node failed.
  return interrupt.signal.aborted && (code === ExitCode.ok || code === ExitCode.changesPending) ? ExitCode.nodesFailed : code;
}

/**
 * Node lines for a file or pipe, written in blocks rather than one write each (a write to a
 * file or pipe is a system call): flushed when a block fills, whenever the run waits (a command,
 * the network: lines still appear as they happen), and at the end.
 */
class LineBuffer {
  private pending: string[] = [];
  private size = 0;
  private scheduled = false;
  write(text: string): void {
    this.pending.push(text);
    this.size += text.length;
    if (this.size >= 64 * 1024) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending = [];
    this.size = 0;
    writeOut(text);
  }
}
