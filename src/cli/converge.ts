/** `cairn plan` and `cairn apply` over the opened targets, `--forks` at a time. */
import { summarize, type TargetReport } from '../engine/engine.ts';
import { runExitCode, runTarget, type RunReport, type RunTargetOptions } from '../engine/run-target.ts';
import type { Compiled } from './compile-cache.ts';
import { closeSync, openSync, writeSync } from 'node:fs';
import { commandLines, logLine, nodeLine, Progress, summaryLine, timingLine } from './report.ts';
import { describe, inBatches, type RolloutOptions } from './rollout.ts';
import { inParallel, type Session } from './sessions.ts';
import { clearStatus, colourAllowed, stdoutIsTTY, stdoutStream, writeErr, writeOut } from './output.ts';
import { ExitCode } from '../lib/errors.ts';
import { nowMs } from '../lib/clock.ts';
import { tagFilter } from './tags.ts';
import type { ImageBuilder } from '../resources/type.ts';

export type { RunReport } from '../engine/run-target.ts';

/** The options of `cairn plan` and `cairn apply`, as commander parses them (cli/main.ts). */
export interface ConvergeOptions extends RolloutOptions {
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

/** `keep` receives the run's report at the end (to store it). */
export async function converge(mode: 'plan' | 'apply', sessions: Session[], compiled: Map<string, Compiled>, options: ConvergeOptions,
  keep?: (report: RunReport) => Promise<void>, imagesFor?: (target: string) => ImageBuilder | undefined): Promise<number> {
  // Checked before any target is touched: a misspelt tag changes nothing.
  const tags = tagFilter(options, compiled.values());
  const started = new Date();
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

  let reports: TargetReport[];
  try {
    let stopped: Awaited<ReturnType<typeof inBatches>>['stopped'];
    ({ reports, stopped } = await inBatches(sessions, options, (batch) => inParallel(batch, options.forks, async (session) => {
      const { name, exec } = session;
      const t0 = nowMs();
      let report: TargetReport;
      const unit = compiled.get(name);
      if (!exec || !unit) {
        report = summarize(name, [], session.error ?? 'not compiled');
      } else {
        progress?.start(name, unit.graph.order.length);
        report = await runTarget(unit, exec, {
          mode,
          failFast: options.failFast ?? false,
          diff: options.diff ?? false,
          ...(tags ? { tags } : {}),
          ...(session.facts ? { facts: session.facts } : {}),
          lockWaitMs: (options.lockWait ?? 0) * 1000,
          ...(imagesFor?.(name) ? { images: imagesFor(name)! } : {}),
          onNotice: (line) => writeErr(`${line}\n`),
          ...(progress ? { onStart: (ref: string) => progress.running(name, ref) } : {}),
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
            toLog(nodeLine(name, r, multi));
            toLog(timingLine(name, r, multi));
            if (options.json) {
              verbose(timingLine(name, r, multi), 2);
              return;
            }
            progress?.node(name, r);
            if (!progress || r.status !== 'unchanged') print(nodeLine(name, r, multi, colour));
            verbose(timingLine(name, r, multi), 2);
          },
        });
      }
      progress?.finish(name);
      const summary = summaryLine(report, (nowMs() - t0) / 1000, mode === 'plan');
      toLog(summary);
      if (!options.json) print(summary);
      return report;
    })));
    if (stopped && !options.json) {
      print(`rollout stopped: ${stopped.failed} of ${stopped.size} targets failed in batch ${stopped.batch}, more than --max-fail ${describe(options.maxFail!)}`);
      for (const r of reports.filter((t) => t.status === 'skipped')) print(summaryLine(r, 0, mode === 'plan'));
    }
  } finally {
    out?.flush();
    if (logFd !== undefined) closeSync(logFd);
  }

  const report: RunReport = { version: 1, mode, started: started.toISOString(), finished: new Date().toISOString(), targets: reports };
  if (options.json) writeOut(`${JSON.stringify(report, null, 2)}\n`);
  await keep?.(report);
  return runExitCode(mode, reports, options.detailedExitcode ?? false);
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
