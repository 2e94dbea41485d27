/** Renders input errors the way compilers do: message, position, the offending line, a caret. */
import { formatPos, type Diagnostic, type SourcePos } from '../lib/errors.ts';
import { LineIndex } from '../lib/positions.ts';

function snippet(pos: SourcePos | undefined, sources: Map<string, string>): string[] {
  if (!pos) return [];
  const text = sources.get(pos.file);
  if (text === undefined) return [];
  const line = new LineIndex(text).lineText(pos.line);
  const gutter = String(pos.line).length;
  const width = Math.max(1, Math.min(pos.length ?? 1, line.length - pos.col + 1));
  return [
    `${' '.repeat(gutter)} |`,
    `${pos.line} | ${line}`,
    `${' '.repeat(gutter)} | ${' '.repeat(Math.max(0, pos.col - 1))}${'^'.repeat(width)}`,
  ];
}

export function formatDiagnostics(diagnostics: readonly Diagnostic[], sources: Map<string, string>): string {
  const blocks = diagnostics.map((d) => {
    const lines = [`error: ${d.message}`];
    if (d.pos) lines.push(`  --> ${formatPos(d.pos)}`, ...snippet(d.pos, sources).map((l) => `  ${l}`));
    for (const r of d.related ?? []) {
      lines.push(`  note: ${r.message}${r.pos ? ` at ${formatPos(r.pos)}` : ''}`);
    }
    if (d.hint) lines.push(`  help: ${d.hint}`);
    return lines.join('\n');
  });
  const n = diagnostics.length;
  return `${blocks.join('\n\n')}\n\n${n} error${n === 1 ? '' : 's'}; nothing was run.\n`;
}
