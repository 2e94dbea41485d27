/** Human output of plan/apply: a line per node as it finishes, progress on a terminal, a summary. */
import type { NodeResult, TargetReport } from '../engine/engine.ts';

const LABEL: Record<NodeResult['status'], string> = {
  unchanged: 'unchanged', changed: 'changed', failed: 'FAILED', skipped: 'skipped', 'would-change': 'would change', unknown: 'unknown',
};

export function nodeLine(target: string, r: NodeResult, multiTarget: boolean): string {
  const action = r.action !== 'none' ? ` (${r.action}${r.changes?.length ? `: ${r.changes.join(', ')}` : ''})` : '';
  const reason = r.reason ? ` — ${r.reason}` : '';
  const prefix = multiTarget ? `${target}: ` : '';
  const lines = [`${prefix}${LABEL[r.status].padEnd(12)} ${r.ref}${action}${reason}`];
  if (r.error) lines.push(...r.error.split('\n').map((l) => `${prefix}${' '.repeat(13)}${l}`));
  if (r.diff) lines.push(r.diff.trimEnd());
  return lines.join('\n');
}

export function summaryLine(report: TargetReport, seconds: number, planning: boolean): string {
  const c = report.counts;
  if (report.status === 'unreachable') return `${report.name}: UNREACHABLE: ${report.error}`;
  if (report.status === 'locked') return `${report.error}`;
  if (report.status === 'skipped') return `${report.name}: skipped (${report.reason})`;
  const changed = planning ? `${c.changed} to change` : `${c.changed} changed`;
  const trips = report.round_trips !== undefined ? ` (${report.round_trips} round trips)` : '';
  return `${report.name}: ${changed}, ${c.unchanged} unchanged, ${c.failed} failed, ${c.skipped} skipped in ${seconds.toFixed(2)} s${trips}`;
}

/**
 * On a terminal: a block of lines at the bottom, one per target being converged, rewritten in
 * place with live counts; node lines and summaries scroll above it.
 */
export class Progress {
  private readonly counts = new Map<string, { done: number; total: number; changed: number; failed: number }>();
  private drawn = 0;
  constructor(private readonly out: NodeJS.WriteStream) {}

  start(target: string, total: number): void {
    this.counts.set(target, { done: 0, total, changed: 0, failed: 0 });
    this.redraw();
  }

  node(target: string, r: NodeResult): void {
    const c = this.counts.get(target);
    if (!c) return;
    c.done++;
    if (r.status === 'changed' || r.status === 'would-change') c.changed++;
    if (r.status === 'failed') c.failed++;
    if (c.done % 25 === 0 || r.status === 'failed') this.redraw();
  }

  /** Prints lines above the block. */
  print(text: string): void {
    this.erase();
    this.out.write(`${text}\n`);
    this.draw();
  }

  /** The target is done: its line leaves the block. */
  finish(target: string): void {
    this.erase();
    this.counts.delete(target);
    this.draw();
  }

  private erase(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A\r\x1b[J`);
    this.drawn = 0;
  }

  private draw(): void {
    for (const [target, c] of this.counts) {
      this.out.write(`${target}: ${c.done}/${c.total} nodes, ${c.changed} changed, ${c.failed} failed\n`);
    }
    this.drawn = this.counts.size;
  }

  private redraw(): void {
    this.erase();
    this.draw();
  }
}
