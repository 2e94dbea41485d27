import type { ShellContext } from '../../src/resources/type.ts';

/** The ShellContext `cairn export` gives a plain type's fragments: the target's OS tables; a fragment of a plain type never asks for other nodes. */
export function osContext(os: Record<string, unknown>): ShellContext {
  const none = (): never => {
    throw new Error('only a meta type (transition) asks for other nodes of the run');
  };
  return { os, related: none, wouldChange: none, willRun: none, refOf: none, applyWith: none };
}
