/** `--tags a,b` and `--skip-tags a,b` (DESIGN §4a): parsing, and checking them against the compiled runs. */
import { InvalidArgumentError } from 'commander';
import type { TagFilter } from '../graph/tags.ts';
import type { Compiled } from '../graph/codec.ts';
import { didYouMean } from '../lib/did-you-mean.ts';
import { Diagnostics } from '../lib/errors.ts';
import { TAG_NAME } from '../lib/tag-name.ts';

/** Commander's parser for a comma-separated list; repeating the option adds to it. */
export function tagList(value: string, previous: string[] = []): string[] {
  const tags = value.split(',').map((t) => t.trim());
  const bad = tags.find((t) => !TAG_NAME.test(t));
  if (bad !== undefined) {
    throw new InvalidArgumentError(bad === '' ? 'expected tag names separated by commas, with none empty' : `'${bad}' is not a tag name (letters, digits, '_', '-', '.')`);
  }
  return [...previous, ...tags];
}

export interface TagOptions {
  tags?: string[];
  skipTags?: string[];
}

/**
 * The filter the options ask for. A tag that no node of the selected targets carries is an
 * error, not a run of nothing: it is far more often a typo than a wish, and nothing has run yet.
 */
export function tagFilter(options: TagOptions, compiled: Iterable<Compiled>): TagFilter | undefined {
  if (!options.tags?.length && !options.skipTags?.length) return undefined;
  const used = new Set<string>();
  for (const { graph } of compiled) for (const n of graph.nodes) for (const t of n.meta.tags) used.add(t);
  const d = new Diagnostics();
  for (const [flag, tags] of [['--tags', options.tags], ['--skip-tags', options.skipTags]] as const) {
    for (const t of tags ?? []) {
      if (used.has(t)) continue;
      d.add(`${flag}: no part of the selected targets carries tag '${t}'${didYouMean(t, [...used])}`, undefined, {
        hint: used.size ? `tags in use: ${[...used].sort().join(', ')}` : 'no part or state of the selected targets has tags:',
      });
    }
  }
  d.throwIfAny();
  return { ...(options.tags?.length ? { only: options.tags } : {}), ...(options.skipTags?.length ? { skip: options.skipTags } : {}) };
}
