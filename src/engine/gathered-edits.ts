/**
 * Edits of one file gathered (FileEdits, resources/type.ts): the nodes that follow one another in
 * a run and edit the same file's text (`line`s) are read from one reading of the file, each on
 * the text the ones before it left, as if each had been applied alone in turn; the engine writes
 * the text after the last of them once (engine.ts, runEdits). Pure.
 */
import { ApplyError, type Action, type Current, type FileEdits, type TypeBehaviour } from '../resources/type.ts';
import { diffNode } from './diff.ts';

/** One node's turn on the text the nodes before it left: in sync, a change made, or (`error`) a change refused. */
export interface EditStep {
  action: Action;
  changes: string[];
  current: Current;
  error?: ApplyError;
}

/**
 * Each node's reading and decision, in order, on `text` (undefined: no file) as the nodes before
 * it changed it, and the text after all of them. A node whose edit is refused (ApplyError)
 * leaves the text as it was.
 */
export function gatherEdits(
  text: string | undefined,
  desired: readonly Record<string, unknown>[],
  edits: FileEdits,
  type: Pick<TypeBehaviour, 'name' | 'changes' | 'createAction'>,
): { steps: EditStep[]; text: string | undefined } {
  let now = text;
  const steps = desired.map((d): EditStep => {
    const current = edits.current(now, d);
    const { action, changes } = diffNode(type, d, current);
    if (action === 'none') return { action, changes, current };
    if (action !== 'create' && action !== 'update' && action !== 'destroy') {
      throw new Error(`the ${type.name} type's edits of a file change it by create, update or destroy, not ${action}`);
    }
    try {
      now = edits.edit(now, d, action);
    } catch (err) {
      if (!(err instanceof ApplyError)) throw err;
      return { action, changes, current, error: err };
    }
    return { action, changes, current };
  });
  return { steps, text: now };
}
