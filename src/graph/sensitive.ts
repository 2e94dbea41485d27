/**
 * Sensitive values of a compiled run (DESIGN §5.13, §4a): the values of every node's sensitive
 * attributes (its type's, and those it rendered from a secret), to be shown as `(sensitive)`
 * wherever they would appear: a node's ref (an exec's ref is its command), a command line, a log
 * line, an error, `show`'s output. Pure, over plain data.
 */
import type { TypeBehaviour } from '../resources/type.ts';
import type { Graph } from './build.ts';

export function sensitiveValues(graph: Graph, typeOf: (name: string) => TypeBehaviour | undefined = (name) => graph.types[name]): string[] {
  const values: string[] = [];
  for (const node of graph.nodes) {
    for (const attr of new Set([...(typeOf(node.type)?.sensitive ?? []), ...(node.meta.sensitive ?? [])])) {
      const v = node.attributes[attr];
      if (typeof v === 'string' || typeof v === 'number') values.push(String(v));
      else if (v !== undefined && v !== null && typeof v !== 'boolean') values.push(JSON.stringify(v));
    }
  }
  return values;
}

/**
 * Replaces every value of `values` in a text by `(sensitive)`, longest first so that a value
 * containing another is not half shown; undefined when there is nothing to hide.
 */
export function sensitiveMask(values: Iterable<string>): ((text: string) => string) | undefined {
  const list = [...new Set(values)].filter((v) => v !== '').sort((a, b) => b.length - a.length);
  if (list.length === 0) return undefined;
  return (text) => list.reduce((t, v) => t.split(v).join('(sensitive)'), text);
}
