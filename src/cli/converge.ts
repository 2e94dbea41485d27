/** `cairn plan` and `cairn apply` over the opened targets, `--forks` at a time. */
import { summarize, type TargetReport } from '../engine/engine.ts';
import { runExitCode, runTarget, type RunReport } from '../engine/run-target.ts';
import type { Compiled } from './compile-cache.ts';
import { nodeLine, Progress, summaryLine } from './report.ts';
import { inParallel, type Session } from './sessions.ts';
import { stdoutIsTTY, stdoutStream, writeErr, writeOut } from './output.ts';
import { nowMs } from '../lib/clock.ts';
import { tagFilter } from './tags.ts';

export type { RunReport } from '../engine/run-target.ts';

/** The options of `cairn plan` and `cairn apply`, as commander parses them (cli/main.ts). */
export interface ConvergeOptions {
  site: string;
  target?: string[];
  var?: string[];
  facts?: string;
  diff?: boolean;
  json?: boolean;
  failFast?: boolean;
  checksum?: boolean;
  forks: string;
  /** Seconds (`--lock-wait`). */
  lockWait?: number;
  detailedExitcode?: boolean;
  acceptNewHostKeys?: boolean;
  store?: string;
  storeConfig?: string;
  tags?: string[];
  skipTags?: string[];
}

/** `keep` receives the run's report at the end (to store it). */
export async function converge(mode: 'plan' | 'apply', sessions: Session[], compiled: Map<string, Compiled>, options: ConvergeOptions,
  keep?: (report: RunReport) => Promise<void>): Promise<number> {
  // Checked before any target is touched: a misspelt tag changes nothing.
  const tags = tagFilter(options, compiled.values());
  const started = new Date();
  const multi = sessions.length > 1;
  const tty = !options.json && stdoutIsTTY();
  const progress = tty ? new Progress(stdoutStream()) : undefined;
  const out = progress ? undefined : new LineBuffer();
  const print = (text: string) => (progress ? progress.print(text) : out!.write(`${text}\n`));

  let reports: TargetReport[];
  try {
    reports = await inParallel(sessions, Math.max(1, Number(options.forks) || 10), async (session) => {
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
          onNotice: (line) => writeErr(`${line}\n`),
          onResult: (r) => {
            if (options.json) return;
            progress?.node(name, r);
            if (progress && r.status === 'unchanged') return;
            print(nodeLine(name, r, multi));
          },
        });
      }
      progress?.finish(name);
      if (!options.json) print(summaryLine(report, (nowMs() - t0) / 1000, mode === 'plan'));
      return report;
    });
  } finally {
    out?.flush();
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
