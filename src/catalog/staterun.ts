/**
 * The compiled run model (DESIGN §1): a StateRun holds StateInvocations, each holding
 * StatePartInvocations. Plain JSON: it can be printed, stored, shipped to an agent or exported.
 */
import type { SourcePos } from '../lib/errors.ts';

export const REQUISITE_KINDS = ['require', 'before', 'notify', 'listen', 'onchanges', 'onfail'] as const;
export type RequisiteKind = (typeof REQUISITE_KINDS)[number];

export interface Requisite {
  kind: RequisiteKind;
  ref: string;
  pos?: SourcePos;
}

export interface PartMeta {
  id?: string;
  noop: boolean;
  provider?: string;
  allow_reload: boolean;
  allow_rebuild: boolean;
  tags: string[];
  /** Attributes whose value was rendered from a `!secret` (DESIGN §4a): never shown. */
  sensitive?: string[];
}

export interface PartInvocation {
  /** Position of the part within its invocation, 0-based. */
  index: number;
  type: string;
  /** `type:identity`, how references and reports name the node. */
  ref: string;
  /** Validated attributes, with site inputs resolved (templates rendered). */
  attributes: Record<string, unknown>;
  meta: PartMeta;
  requisites: Requisite[];
  pos?: SourcePos;
}

export interface StateInvocation {
  /** Position in the run, 0-based. */
  index: number;
  state: string;
  params: Record<string, unknown>;
  /** A lazy state (handler): its parts run only when notified. */
  lazy: boolean;
  /** A lazy state that runs once at the end of the whole run. */
  defer: boolean;
  /**
   * Where its state is declared in the site, as a rank: state files in the order the site loads
   * them, then position in the file. Handlers due together run in this order (DESIGN §5.3).
   */
  declared?: number;
  /** Why it is in the run: "role base", "target web1", "include by webstack", "notified". */
  via: string;
  pos?: SourcePos;
  /** States this invocation's state includes (a meta state); their invocations precede it. */
  includes: string[];
  /** Its state's tags and those of the states that include it (transitively); its parts' meta.tags hold them too. */
  tags?: string[];
  parts: PartInvocation[];
}

/** A target's `state_dir` when its settings name none. */
export { DEFAULT_STATE_DIR } from '../executors/types.ts';

export interface TargetInfo {
  name: string;
  executor: string;
  state_dir: string;
  [setting: string]: unknown;
}

export interface StateRun {
  version: 1;
  target: TargetInfo;
  vars: Record<string, unknown>;
  facts: Record<string, unknown>;
  /** The OS tables merged for this target's facts (`it.os`); providers map names through them. */
  os: Record<string, unknown>;
  invocations: StateInvocation[];
}
