/**
 * The typed API for TypeScript state files:
 *
 *   import { state, file, exec } from 'cairn';
 *   export const motd = state({ parts: (it) => [file('/etc/motd', { content: `${it.vars.motd}\n` })] });
 *
 * Builders return the same part maps a YAML file holds, tagged with the call site, so errors point
 * into the .ts file.
 */
import type { SourcePos } from '../lib/errors.ts';
import { callSite, type Part } from './builder.ts';
/** The `it` a state's parts function receives. */
export interface Scope {
  // Users' variables are free-form; `any` lets a typed state file read them without casts.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  vars: Record<string, any>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  params: Record<string, any>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  facts: Record<string, any>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  os: Record<string, any>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  target: Record<string, any>;
  /** Every target of the site; `facts` only when known (this run's targets, or a store's last record). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  targets: { name: string; vars: Record<string, any>; groups: string[]; roles: string[]; facts?: Record<string, any> }[];
  /** Group name → the names of its targets. */
  groups: Record<string, string[]>;
}

export interface StateSpec {
  readonly kind: 'cairn-state';
  params?: Record<string, unknown>;
  lazy?: boolean;
  defer?: boolean;
  include?: string[];
  /** Every part of the state, and of the states it includes, carries these (`--tags`). */
  tags?: string[];
  parts: (it: Scope) => Part[];
  pos?: SourcePos;
}

export function state(spec: Omit<StateSpec, 'kind' | 'pos'> | ((it: Scope) => Part[])): StateSpec {
  const s = typeof spec === 'function' ? { parts: spec } : spec;
  return { kind: 'cairn-state', ...s, pos: callSite() };
}

export * from './builders.generated.ts';
export type { Attrs, Builder as PartBuilder, Meta, Part, TypeName } from './builder.ts';
export { Builder, BuildFailure, BuildInputError } from './provision.ts';
export type {
  ArgumentSpec, BuildContext, BuildNetwork, BuildSystem, BuildVolume, LoopDevice, MountOptions, RunOptions, RunOutput, VolumeSpec,
} from './provision.ts';
