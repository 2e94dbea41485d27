/**
 * A resource type is data (DESIGN §6): its attributes as a zod schema, which attribute is its key,
 * what a change to each attribute needs, and how it is refreshed. The engine and the compiler work
 * from this description alone and have no branch for any particular type.
 */
import type { z } from 'zod';
import type { Executor } from '../executors/types.ts';
import { InputError } from '../lib/errors.ts';

/** What a change to an attribute needs (DESIGN §5.8). */
export type ChangeClass = 'update' | 'reload' | 'rebuild';

/** Pure, compile-time help a type may need from the site (templates, source files). */
export interface ResolveContext {
  /** Renders a site template with the invocation's `it`, `vars` laid over `it.vars`. */
  renderTemplate(path: string, vars: Record<string, unknown> | undefined): string;
  /** Reads a site file as is; returns its content as base64 and its sha256. */
  readSource(path: string): { base64: string; sha256: string };
}

/** A resolve failure, tied to the attribute whose value caused it (for the error's position). */
export class ResolveError extends Error {
  constructor(readonly attribute: string, override readonly cause: InputError) {
    super(cause.message);
  }
}

/** Runs `fn`, blaming `attribute` for any input error it throws. */
export function blame<T>(attribute: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof InputError) throw new ResolveError(attribute, err);
    throw err;
  }
}

export interface ResourceType<S extends z.ZodObject = z.ZodObject> {
  name: string;
  /** The attribute that holds the value written after the type name (`file: /etc/motd`). */
  key: string;
  description: string;
  schema: S;
  changes: Record<string, ChangeClass>;
  /** Stateful types (jails, containers, guests) refuse rebuilds unless allowed explicitly. */
  stateful: boolean;
  /** What a notification does to a non-lazy node of this type; undefined: nothing. */
  refresh?: string;
  /** The identity used in references, `type:<identity>`; defaults to the key attribute. */
  identity?(attributes: Record<string, unknown>): string;
  /**
   * Inputs that cannot be read back from the target (a guest's user data): compared through a
   * hash kept in the target's state directory, written only after the apply they describe.
   */
  writeOnly?: string[];
  /** How a node in sync is reported, when not `unchanged` (a transition: skipped, prior_to in sync). */
  inSync?: { status: 'skipped'; reason: string };
  /**
   * The executors this type can work through, when not all of them (DESIGN §7): a type that needs
   * Cairn itself on the machine lists `local` and `agent`, and fails over plain SSH at plan time.
   */
  runsOn?: string[];
  /** The action when a node is absent and must be made (`run` for commands). */
  createAction?: 'create' | 'run';
  /**
   * What reading the node depends on: paths (an earlier node that changes one of them, or a
   * folder above it, makes this reading provisional in a plan) and whether it runs commands
   * (then any changing requisite does), and whether it needs the files' bytes (`content`), not
   * just their kind, mode, owner and hash: remote executors fetch those up front.
   */
  reads?(attributes: Record<string, unknown>): Reads;
  /**
   * The node acts on nothing but the paths its `reads` names, through the executor's file
   * operations, and runs no command, so the engine may apply it while other such nodes on
   * unrelated paths are still finishing (their writes wait on the disk side by side).
   * `paths-and-parents`: it may also create the missing folders above its path.
   */
  overlap?: 'paths' | 'paths-and-parents';
  /** Turns site-relative inputs (templates, sources) into values the engine can compare. */
  resolve?(attributes: Record<string, unknown>, ctx: ResolveContext): Record<string, unknown>;

  // What the graph and the catalog read of a type, so neither needs a branch on its name.

  /**
   * Attributes that name other nodes (a reference, or a list of them), as a transition's
   * `resource` and `prior_to` do. Each named node gets an edge of `kind` from this node, declared
   * with the attribute's name: EngineServices.related() finds it under that word, and `says`
   * phrases it in a cycle report.
   */
  references?: Record<string, { kind: ReferenceKind; says(from: string, to: string): string }>;
  /**
   * Attributes a user never writes: resolve() fills them (a source's bytes and hash). Hints and
   * `cairn schema` leave them out.
   */
  internal?: string[];
}

/** The edges a type's references make: they order this node before the nodes it names. */
export type ReferenceKind = 'transition';

/** What reading a node depends on (ResourceType.reads), computed when the graph is built. */
export interface Reads {
  paths: string[];
  commands?: boolean;
  content?: boolean;
}

/**
 * What the engine needs of a type while it runs: plain data, kept in the compiled graph, so a
 * run loads no schema (and no zod) at all.
 */
export type TypeBehaviour = Pick<ResourceType, 'name' | 'changes' | 'createAction' | 'writeOnly' | 'inSync' | 'runsOn' | 'overlap'> & {
  /** Types the engine is handed directly (tests) may still compute their readings. */
  reads?: ResourceType['reads'];
};

export function behaviourOf(type: ResourceType): TypeBehaviour {
  const { name, changes, createAction, writeOnly, inSync, runsOn, overlap } = type;
  return {
    name, changes,
    ...(createAction ? { createAction } : {}), ...(writeOnly ? { writeOnly } : {}),
    ...(inSync ? { inSync } : {}), ...(runsOn ? { runsOn } : {}), ...(overlap ? { overlap } : {}),
  };
}

/** Keeps the exact schema type, so the TypeScript API can type each builder's attributes. */
export function defineType<S extends z.ZodObject>(type: ResourceType<S>): ResourceType<S> {
  for (const attr of Object.keys(type.changes)) {
    if (!(attr in type.schema.shape)) throw new Error(`type ${type.name}: change class for unknown attribute ${attr}`);
  }
  return type;
}

export function identityOf(type: ResourceType, attributes: Record<string, unknown>): string {
  return type.identity ? type.identity(attributes) : String(attributes[type.key]);
}

/** What the engine does to a node (DESIGN §11's report `action`). */
export type Action = 'none' | 'create' | 'update' | 'reload' | 'rebuild' | 'destroy' | 'refresh' | 'run';

/** Services of the engine that meta types (transition) use; plain resources ignore them. */
export interface EngineServices {
  /** Node ids linked from this node by edges declared with `word` (e.g. 'resource', 'prior_to'). */
  related(word: string): string[];
  /** Reads a node now: would applying it change anything? (noop nodes count as in sync.) */
  wouldChange(nodeId: string): Promise<boolean>;
  /** Applies a node with `attributes` laid over its declared ones, through the engine. */
  applyWith(nodeId: string, attributes: Record<string, unknown>): Promise<{ changed: boolean; failed?: string }>;
}

export interface ProviderContext {
  exec: Executor;
  facts: Record<string, unknown>;
  /** The target's OS tables merged (`it.os`): OS-specific names, package manager, init system. */
  os: Record<string, unknown>;
  engine: EngineServices;
  signal?: AbortSignal;
  /**
   * A reading shared by many nodes: `load` runs once per `key` until the target next changes (the
   * engine forgets every batch after an apply), so a run reads all its packages with one
   * `dpkg-query`, not one per package.
   */
  batch<T>(key: string, load: () => Promise<T>): Promise<T>;
  /** The desired attributes of every node of this node's type in the run: what a batch reads. */
  peers(): Record<string, unknown>[];
}

/** Current state in the same vocabulary as the desired attributes; undefined: absent. */
export type Current = Record<string, unknown> | undefined;

export interface Provider {
  type: string;
  name: string;
  /** Whether this provider fits the target, from its facts and OS tables (see resources/os.ts). */
  suitable(facts: Record<string, unknown>, os: Record<string, unknown>): boolean;
  /** Observes, with no side effects. */
  read(ctx: ProviderContext, desired: Record<string, unknown>): Promise<Current>;
  /**
   * Returns `{ changed: false }` when it found nothing to do after all (a transition whose
   * resource is already in the transitional state), so nothing reports a change it did not make;
   * `{ refreshed: true }` when the change already did what a pending notification asks (a service
   * started from stopped reads its new configuration: no restart right after).
   */
  apply(ctx: ProviderContext, action: Action, desired: Record<string, unknown>, current: Current): Promise<ApplyOutcome>;
  /** What a notification does; absent: nothing. `{ changed: false }` when it had nothing to do
   *  (a stopped service is not restarted), so the node does not report a change. */
  refresh?(ctx: ProviderContext, desired: Record<string, unknown>): Promise<void | { changed: false; reason: string }>;
  /** A unified diff of content for `--diff`, when the type has content. */
  diff?(desired: Record<string, unknown>, current: Current): string | undefined;
}

export type ApplyOutcome = void | { changed: false; reason: string } | { refreshed: true };

/** The last `lines` lines of a command's output: the part of a tool's own words worth showing. */
export function outputTail(text: string, lines = 10): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}

/** Thrown by providers for a failure the user should see as the node's error. */
export class ApplyError extends Error {}

/** `mode` as the user wrote it when the bits match, else the actual bits as "0644". */
export function modeAs(desired: unknown, actual: number): string {
  if (typeof desired === 'string' && parseInt(desired, 8) === actual) return desired;
  return `0${actual.toString(8).padStart(3, '0')}`;
}
