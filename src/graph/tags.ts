/** Which nodes of a graph `--tags` / `--skip-tags` leave out (DESIGN §4a): the engine skips them, `show` marks them. */
import type { Graph, GraphNode } from './build.ts';
import { pushTo } from '../lib/multimap.ts';

export interface TagFilter {
  /** Only nodes carrying one of these, and what they require (transitively). */
  only?: string[];
  /** Not nodes carrying one of these, even when a selected node requires them. */
  skip?: string[];
}

/**
 * The nodes a tag filter leaves out (DESIGN §4a). What a selected node requires, watches or
 * guards on comes along, or it would run without what it was written to follow. Skipping wins
 * over selecting, as Ansible's --skip-tags does, and a skipped node is no failure: what requires
 * it still runs. Handlers are never left out: one runs when a node that ran notifies it.
 */
export function tagFiltered(graph: Graph, filter: TagFilter | undefined): Set<string> {
  const out = new Set<string>();
  if (!filter?.only?.length && !filter?.skip?.length) return out;
  const carries = (n: GraphNode, tags: string[]) => n.meta.tags.some((t) => tags.includes(t));
  const candidates = graph.nodes.filter((n) => !n.lazy);
  if (filter.only?.length) {
    const requisites = new Map<string, string[]>();
    for (const e of graph.edges) if (e.kind !== 'notify') pushTo(requisites, e.to, e.from);
    const kept = new Set<string>();
    const keep = (id: string): void => {
      if (kept.has(id)) return;
      kept.add(id);
      for (const from of requisites.get(id) ?? []) keep(from);
    };
    for (const n of candidates) if (carries(n, filter.only)) keep(n.id);
    for (const n of candidates) if (!kept.has(n.id)) out.add(n.id);
  }
  if (filter.skip?.length) for (const n of candidates) if (carries(n, filter.skip)) out.add(n.id);
  return out;
}
