/** `cairn show`: the compiled StateRun and its graph, for people (or as JSON). */
import type { StateRun } from '../catalog/staterun.ts';
import type { Graph, GraphNode } from '../graph/build.ts';
import { sensitiveMask, sensitiveValues } from '../graph/sensitive.ts';
import { tagFiltered } from '../graph/tags.ts';
import { formatPos } from '../lib/errors.ts';
import { tagFilter } from './tags.ts';
import { writeErr, writeOut } from './output.ts';
import { pushTo } from '../lib/multimap.ts';

export interface ShowOptions {
  site: string;
  target?: string[];
  var?: string[];
  facts?: string;
  json?: boolean;
  tags?: string[];
  skipTags?: string[];
}

/**
 * `cairn show`: never connects. A target's facts are those of `--facts FILE`; else a local
 * target's are this machine's, and any other's are assumed (a generic host from the OS tables),
 * which is said on stderr so a surprising run is not mistaken for the target's own.
 */
export async function show(options: ShowOptions, sources: Map<string, string>, local: () => Record<string, unknown>): Promise<number> {
  const { SiteCompiler, readFactsFile } = await import('./site-compiler.ts');
  const compiler = new SiteCompiler(options, sources);
  const file = options.facts ? await readFactsFile(options.facts, sources) : undefined;
  const selected = await compiler.select(options.target ?? []);
  const given = file?.factsFor(selected.map((t) => t.name));
  const assumed: string[] = [];
  let description = '';
  const inputs = [];
  for (const t of selected) {
    let facts = given?.get(t.name) ?? (t.settings.executor === 'local' ? local() : undefined);
    if (!facts) {
      ({ facts, description } = await compiler.assumedFacts(t.name));
      assumed.push(t.name);
    }
    inputs.push({ name: t.name, facts });
  }
  if (assumed.length) writeErr(`cairn: no facts for ${assumed.join(', ')}: compiled as ${description}; give real ones with --facts FILE (cairn facts --json > FILE)\n`);
  const results = await compiler.compile(inputs);
  const filter = tagFilter(options, results);
  // The nodes a run with these tags leaves out are marked, not hidden: what a tagged node
  // pulls in (its requisites) is easier to see beside what it does not.
  const leftOut = (graph: Graph) => (filter ? tagFiltered(graph, filter) : undefined);
  if (options.json) {
    const payload = results.map(({ run, graph }) => {
      const out = leftOut(graph);
      return { run, graph, ...(out ? { left_out_by_tags: graph.order.filter((id) => out.has(id)) } : {}) };
    });
    // A value rendered from a secret can also stand in a ref (an exec's command) or an edge:
    // masked as JSON writes it, escapes and all.
    const mask = sensitiveMask(results.flatMap(({ graph }) => sensitiveValues(graph)).map((v) => JSON.stringify(v).slice(1, -1)));
    const text = `${JSON.stringify(payload.length === 1 ? payload[0] : payload, hideSensitive, 2)}\n`;
    writeOut(mask ? mask(text) : text);
  } else {
    writeOut(results.map(({ run, graph }) => {
      const text = formatShow(run, graph, leftOut(graph));
      const mask = sensitiveMask(sensitiveValues(graph));
      return mask ? mask(text) : text;
    }).join('\n'));
  }
  return 0;
}

/** A part's or node's attributes rendered from a `!secret` print as '(sensitive)' (DESIGN §5.13). */
function hideSensitive(this: unknown, key: string, value: unknown): unknown {
  const sensitive = key === 'attributes' ? (this as { meta?: { sensitive?: string[] } }).meta?.sensitive : undefined;
  if (!sensitive?.length) return value;
  return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, sensitive.includes(k) ? '(sensitive)' : v]));
}

function brief(params: Record<string, unknown>): string {
  const entries = Object.entries(params);
  if (entries.length === 0) return '';
  return ` { ${entries.map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(', ')} }`;
}

function target(run: StateRun): string {
  const t = run.target;
  const where = t.executor === 'ssh'
    ? ` ${t.user ? `${String(t.user)}@` : ''}${String(t.host)}${t.port ? `:${String(t.port)}` : ''}`
    : '';
  return `target ${t.name} (${t.executor}${where}), state in ${t.state_dir}`;
}

/** `leftOut`: the nodes a tag filter leaves out, marked as such. */
export function formatShow(run: StateRun, graph: Graph, leftOut?: Set<string>): string {
  const out: string[] = [target(run)];
  const varNames = Object.keys(run.vars);
  out.push(`vars: ${varNames.length ? varNames.join(', ') : '(none)'}`, '');

  // Invocations are numbered from 0 here as in the JSON (`index`, a node's `invocation`, the run
  // report's `invocation`), so a number read in one finds the same invocation in the other.
  out.push('invocations');
  const width = String(run.invocations.length - 1).length;
  for (const inv of run.invocations) {
    const flags = [inv.lazy ? (inv.defer ? 'handler, deferred' : 'handler') : '', inv.includes.length ? `includes ${inv.includes.join(', ')}` : '']
      .filter(Boolean).join('; ');
    out.push(`  ${String(inv.index).padStart(width)}. ${inv.state}${brief(inv.params)}  — ${inv.via}${flags ? ` (${flags})` : ''}, ${inv.parts.length} part${inv.parts.length === 1 ? '' : 's'}`);
  }

  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const incoming = new Map<string, string[]>();
  const outgoing = new Map<string, string[]>();
  for (const e of graph.edges) {
    const word = e.declared ?? e.kind;
    if (e.kind === 'stage') continue;
    const from = byId.get(e.from)!.ref;
    const to = byId.get(e.to)!.ref;
    if (e.kind === 'notify') pushTo(outgoing, e.from, `notifies ${to}`);
    else if (e.kind === 'transition') {
      // A type's reference attribute (a transition's prior_to) says how it reads here.
      const shown = graph.types[byId.get(e.from)!.type]?.shows?.[word] ?? word;
      pushTo(outgoing, e.from, `${shown} ${to}`);
    }
    else pushTo(incoming, e.to, `${e.kind === 'require' ? 'after' : e.kind} ${from}${word === 'auto' ? ' (auto)' : ''}`);
  }
  // Implicit requisites that would have closed a cycle were left out: said where they would have stood.
  for (const { from, to } of graph.dropped ?? []) {
    pushTo(incoming, to, `not after ${byId.get(from)!.ref} (auto, dropped: it would make a cycle)`);
  }
  const describe = (n: GraphNode, i: number, w: number) => {
    const inv = run.invocations[n.invocation]!;
    const stage = n.stage ? ` [stage ${n.stage.index} of ${n.stage.of}]` : '';
    const flags = [leftOut?.has(n.id) ? 'left out by tags' : '', n.meta.noop ? 'noop' : '', n.defer ? 'deferred to the end of the run' : '',
      n.meta.tags.length ? `tags ${n.meta.tags.join(', ')}` : ''].filter(Boolean).join(', ');
    const lines = [`  ${String(i + 1).padStart(w)}. ${n.ref}${stage}${flags ? ` (${flags})` : ''}   ${inv.state}#${n.invocation}  ${formatPos(n.pos)}`];
    const rel = [...(incoming.get(n.id) ?? []), ...(outgoing.get(n.id) ?? [])];
    if (rel.length) lines.push(`  ${' '.repeat(w)}    ${rel.join('; ')}`);
    return lines;
  };
  const skipped = leftOut ? `, ${graph.order.filter((id) => leftOut.has(id)).length} left out by tags` : '';
  out.push('', `run order (${graph.order.length} node${graph.order.length === 1 ? '' : 's'}${skipped})`);
  const w = String(Math.max(graph.order.length, graph.handlers.length)).length;
  graph.order.forEach((id, i) => out.push(...describe(byId.get(id)!, i, w)));
  if (graph.handlers.length) {
    out.push('', 'handlers (run only when notified: at the end of the notifying invocation, or of the run if deferred)');
    graph.handlers.forEach((id, i) => out.push(...describe(byId.get(id)!, i, w)));
  }
  return `${out.join('\n')}\n`;
}
