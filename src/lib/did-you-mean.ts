/**
 * "Did you mean" for a misspelt name. Every step that resolves a name the user wrote (an
 * attribute, a type, a reference, a state) offers the nearest valid one the same way.
 */
import { closest, distance } from 'fastest-levenshtein';

/** The nearest of `candidates` to `word`, if it is near enough to be a plausible typo. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  if (candidates.length === 0) return undefined;
  const best = closest(word, candidates as string[]);
  const limit = Math.max(2, Math.floor(word.length / 3));
  return distance(word, best) <= limit ? best : undefined;
}

export function didYouMean(word: string, candidates: readonly string[]): string {
  const n = nearest(word, candidates);
  return n ? ` (did you mean '${n}'?)` : '';
}
