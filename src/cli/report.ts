/** Human output of plan/apply: a line per node as it finishes, progress on a terminal, a summary. */
import type { NodeResult, TargetReport } from '../engine/engine.ts';

const LABEL: Record<NodeResult['status'], string> = {
  unchanged: 'ok', changed: 'changed', failed: 'FAILED', skipped: 'skipped', 'would-change': 'would change', unknown: 'unknown',
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
  const changed = planning ? `${c.changed} to change` : `${c.changed} changed`;
  return `${report.name}: ${changed}, ${c.unchanged} unchanged, ${c.failed} failed, ${c.skipped} skipped in ${seconds.toFixed(2)} s`;
}

/** On a terminal: one line per target, rewritten in place with live counts. */
export class Progress {
  private readonly counts = new Map<string, { done: number; total: number; changed: number; failed: number }>();
  constructor(private readonly out: NodeJS.WriteStream) {}

  start(target: string, total: number): void {
    this.counts.set(target, { done: 0, total, changed: 0, failed: 0 });
    this.draw(target);
  }

  node(target: string, r: NodeResult): void {
    const c = this.counts.get(target)!;
    c.done++;
    if (r.status === 'changed' || r.status === 'would-change') c.changed++;
    if (r.status === 'failed') c.failed++;
    if (c.done % 25 === 0 || r.status === 'failed') this.draw(target);
  }

  /** Redraws the target's line after other output scrolled it away. */
  redraw(target: string): void {
    this.draw(target);
  }

  private draw(target: string): void {
    const c = this.counts.get(target)!;
    this.out.write(`\r\x1b[K${target}: ${c.done}/${c.total} nodes, ${c.changed} changed, ${c.failed} failed`);
  }

  end(): void {
    this.out.write('\r\x1b[K');
  }
}
