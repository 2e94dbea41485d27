/** Human output of plan/apply: a line per node as it finishes, progress on a terminal, a summary. */
import type { CommandEvent, NodeResult, TargetReport } from '../engine/engine.ts';
import { nowMs } from '../lib/clock.ts';
import type { ProgressUpdate } from '../resources/type.ts';

const LABEL: Record<NodeResult['status'], string> = {
  unchanged: 'unchanged', changed: 'changed', failed: 'FAILED', skipped: 'skipped', 'would-change': 'would change', unknown: 'unknown',
};

const COLOUR: Partial<Record<NodeResult['status'], string>> = {
  changed: '\x1b[33m', 'would-change': '\x1b[33m', failed: '\x1b[31m', unchanged: '\x1b[2m',
};

export function nodeLine(target: string, r: NodeResult, multiTarget: boolean, colour = false): string {
  const action = r.action !== 'none' ? ` (${r.action}${r.changes?.length ? `: ${r.changes.join(', ')}` : ''})` : '';
  const reason = r.reason ? ` — ${r.reason}` : '';
  const prefix = multiTarget ? `${target}: ` : '';
  const label = LABEL[r.status].padEnd(12);
  const paint = colour ? COLOUR[r.status] : undefined;
  const lines = [`${prefix}${paint ? `${paint}${label}\x1b[0m` : label} ${r.ref}${action}${reason}`];
  if (r.items) lines.push(...r.items.map((item) => `${prefix}${' '.repeat(13)}${item}`));
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

/** A word of argv as a shell would need it typed. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * `-v`: a command run on the target and how it ended; `-vv` (level 2): how long it took and its
 * output, a line each, under it.
 */
export function commandLines(target: string, c: CommandEvent, multiTarget: boolean, level: number): string {
  const prefix = multiTarget ? `${target}: ` : '';
  const end = c.error !== undefined ? `failed: ${c.error}` : c.timedOut ? `timed out (exit ${c.code})` : `exit ${c.code}`;
  const lines = [`${prefix}$ ${c.argv.map(shellWord).join(' ')} → ${end}${level >= 2 ? ` in ${c.ms.toFixed(1)} ms` : ''}`];
  if (level >= 2) {
    for (const [stream, text] of [['out', c.stdout], ['err', c.stderr]] as const) {
      if (text === '') continue;
      lines.push(...text.replace(/\n$/, '').split('\n').map((l) => `${prefix}  ${stream}| ${l}`));
    }
  }
  return lines.join('\n');
}

/** `-v`: a provider's log line (ProviderContext.log). */
export function logLine(target: string, ref: string, message: string, multiTarget: boolean): string {
  return `${multiTarget ? `${target}: ` : ''}${ref}: ${message}`;
}

/** `-vv`: how long a node's turn took. */
export function timingLine(target: string, r: NodeResult, multiTarget: boolean): string {
  return `${multiTarget ? `${target}: ` : ''}${`${r.ms.toFixed(1)} ms`.padStart(12)} ${r.ref}`;
}

/**
 * On a terminal: a block of lines at the bottom, one per target being converged, rewritten in
 * place with live counts; node lines and summaries scroll above it.
 */
export class Progress {
  private readonly counts = new Map<string, { done: number; total: number; changed: number; failed: number; node?: string; since: number; step?: string }>();
  private drawn = 0;
  private lastDraw = 0;
  /** Redraws the block while targets run, so the running node's time moves on a long node. */
  private ticker: NodeJS.Timeout | undefined;
  constructor(private readonly out: NodeJS.WriteStream, private readonly now: () => number = nowMs) {}

  start(target: string, total: number): void {
    this.counts.set(target, { done: 0, total, changed: 0, failed: 0, since: this.now() });
    this.ticker ??= setInterval(() => this.redraw(), 500).unref();
    this.redraw();
  }

  /** A node's turn begins: the target's line names it and how long it has been running. */
  running(target: string, ref: string): void {
    const c = this.counts.get(target);
    if (!c) return;
    c.node = ref;
    c.since = this.now();
    delete c.step;
    // Fast nodes come by the thousand: the ticker shows them often enough.
    if (this.now() - this.lastDraw >= 100) this.redraw();
  }

  /** How far the running node's long operation is (ProviderContext.progress): shown after it. */
  progress(target: string, ref: string, update: ProgressUpdate): void {
    const c = this.counts.get(target);
    if (!c || c.node !== ref) return;
    const amount = update.total !== undefined ? `${update.done}/${update.total}` : `${update.done}`;
    c.step = update.step ? `${update.step} (${amount})` : amount;
    if (this.now() - this.lastDraw >= 100) this.redraw();
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
    if (this.counts.size === 0 && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = undefined;
    }
    this.draw();
  }

  private erase(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A\r\x1b[J`);
    this.drawn = 0;
  }

  private draw(): void {
    const now = this.now();
    for (const [target, c] of this.counts) {
      const node = c.node ? ` — ${c.node} (${((now - c.since) / 1000).toFixed(1)} s)${c.step ? `: ${c.step}` : ''}` : '';
      const line = `${target}: ${c.done}/${c.total} nodes, ${c.changed} changed, ${c.failed} failed${node}`;
      // A line the terminal wraps would take two rows, and erasing counts one per target.
      const width = this.out.columns;
      this.out.write(`${width && line.length >= width ? `${line.slice(0, width - 2)}…` : line}\n`);
    }
    this.drawn = this.counts.size;
    this.lastDraw = now;
  }

  private redraw(): void {
    this.erase();
    this.draw();
  }
}
