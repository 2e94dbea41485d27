/** Desired vs current → the action a node needs (DESIGN §5.8). Pure. */
import { isDeepStrictEqual } from 'node:util';
import type { Action, ChangeClass, Current, TypeBehaviour } from '../resources/type.ts';

export interface NodeDiff {
  action: Action;
  /** The attributes that differ. */
  changes: string[];
}

const STRENGTH: Record<ChangeClass, number> = { update: 1, reload: 2, rebuild: 3 };

export function diffNode(type: Pick<TypeBehaviour, 'changes' | 'createAction'>, desired: Record<string, unknown>, current: Current): NodeDiff {
  const wantAbsent = desired.ensure === 'absent';
  const isAbsent = current === undefined || current.ensure === 'absent';
  if (wantAbsent) return isAbsent ? { action: 'none', changes: [] } : { action: 'destroy', changes: ['ensure'] };
  if (isAbsent) return { action: type.createAction ?? 'create', changes: [] };
  // Something of another kind in the way (a directory where a file should be) is a change too.
  if (current.kind !== undefined) return { action: 'update', changes: ['kind'] };
  // Object.is first: for equal primitives (most attributes of a converged node) it is the same
  // answer, without the deep comparison's call or the module node:util loads for it.
  const changes = Object.keys(type.changes).filter((attr) =>
    desired[attr] !== undefined && !Object.is(desired[attr], current[attr]) && !isDeepStrictEqual(desired[attr], current[attr]));
  if (changes.length === 0) return { action: 'none', changes };
  const strongest = changes.reduce<ChangeClass>((best, attr) =>
    (STRENGTH[type.changes[attr]!] > STRENGTH[best] ? type.changes[attr]! : best), 'update');
  return { action: strongest, changes };
}
