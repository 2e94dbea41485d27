/** `cairn plan` and `cairn apply` over the selected targets. */
import type { StateRun } from '../catalog/staterun.ts';
import { Engine, summarize, type TargetReport } from '../engine/engine.ts';
import { LocalExecutor } from '../executors/local.ts';
import type { Executor } from '../executors/types.ts';
import type { Graph } from '../graph/build.ts';
import { ExitCode } from '../lib/errors.ts';
import type { ConvergeOptions } from './main.ts';
import { nodeLine, Progress, summaryLine } from './report.ts';

function executorFor(run: StateRun): Executor | string {
  if (run.target.executor === 'local') return new LocalExecutor();
  return `the ${run.target.executor} executor is not available in this version of Cairn`;
}

export async function converge(mode: 'plan' | 'apply', compiled: { run: StateRun; graph: Graph }[], options: ConvergeOptions): Promise<number> {
  const started = new Date();
  const multi = compiled.length > 1;
  const tty = !options.json && process.stdout.isTTY === true;
  const progress = tty ? new Progress(process.stdout) : undefined;
  const forks = Math.max(1, Number(options.forks) || 10);
  const reports: TargetReport[] = new Array(compiled.length);

  const one = async (index: number) => {
    const { run, graph } = compiled[index]!;
    const name = run.target.name;
    const t0 = performance.now();
    const exec = executorFor(run);
    if (typeof exec === 'string') {
      reports[index] = summarize(name, [], exec);
    } else {
      progress?.start(name, graph.order.length);
      const engine = new Engine(run, graph, exec, {
        mode,
        failFast: options.failFast ?? false,
        diff: options.diff ?? false,
        onResult: (r) => {
          if (options.json) return;
          if (progress) {
            progress.node(name, r);
            if (r.status === 'unchanged') return;
            progress.end();
          }
          process.stdout.write(`${nodeLine(name, r, multi)}\n`);
          progress?.redraw(name);
        },
      });
      try {
        reports[index] = summarize(name, await engine.execute());
      } catch (err) {
        reports[index] = summarize(name, engine.results, (err as Error).message);
      } finally {
        await exec.close();
      }
      progress?.end();
    }
    if (!options.json) process.stdout.write(`${summaryLine(reports[index]!, (performance.now() - t0) / 1000, mode === 'plan')}\n`);
  };

  let next = 0;
  await Promise.all(Array.from({ length: Math.min(forks, compiled.length) }, async () => {
    while (next < compiled.length) await one(next++);
  }));

  if (options.json) {
    const report = { version: 1, mode, started: started.toISOString(), finished: new Date().toISOString(), targets: reports };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  }
  if (reports.some((r) => r.status === 'unreachable')) return ExitCode.unreachable;
  if (reports.some((r) => r.status === 'failed')) return ExitCode.nodesFailed;
  if (mode === 'plan' && options.detailedExitcode && reports.some((r) => r.counts.changed > 0)) return ExitCode.changesPending;
  return ExitCode.ok;
}
