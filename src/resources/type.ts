/**
 * A resource type is data (DESIGN §6): its attributes as a zod schema, which attribute is its key,
 * what a change to each attribute needs, and how it is refreshed. The engine and the compiler work
 * from this description alone and have no branch for any particular type.
 */
import type { z } from 'zod';
import { TargetError, type Executor, type ExecutorCapability, type GuardedCommand, type RunResult } from '../executors/types.ts';
import { InputError } from '../lib/errors.ts';

/** What a change to an attribute needs (DESIGN §5.8). */
export type ChangeClass = 'update' | 'reload' | 'rebuild';

/** Pure, compile-time help a type may need from the site (templates, source files). */
export interface ResolveContext {
  /** Renders a site template with the invocation's `it`, `vars` laid over `it.vars`. */
  renderTemplate(path: string, vars: Record<string, unknown> | undefined): string;
  /** Reads a site file as is; returns its content as base64 and its sha256. */
  readSource(path: string): { base64: string; sha256: string };
  /**
   * The entries of a site folder, recursively, each a path relative to it (folders before what
   * they hold, names sorted): what `renderTemplate` and `readSource` then read as `<path>/<entry>`.
   */
  readFolder(path: string): { path: string; kind: 'file' | 'directory' }[];
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

/**
 * What a type's folder writes (DESIGN §6). Per-attribute behaviour (change class, write-only,
 * sensitive, internal) is declared on the attribute's schema (resources/define.ts), not here.
 */
export interface TypeDefinition<S extends z.ZodObject = z.ZodObject, K extends string = string> {
  name: string;
  /** The attribute that holds the value written after the type name (`file: /etc/motd`). */
  key: K;
  description: string;
  schema: S;
  /** Stateful types (jails, containers, guests) refuse rebuilds unless allowed explicitly. */
  stateful: boolean;
  /** What a notification does to a non-lazy node of this type; undefined: nothing. */
  refresh?: string;
  /**
   * The identity used in references, `type:<identity>`; defaults to the key attribute. It must not
   * show an attribute of `context.sensitive` (refs are printed and stored on every run): a type
   * whose identity would show one names the node otherwise (its `id`) or refuses with an error.
   */
  identity?(attributes: Record<string, unknown>, context: IdentityContext): string | { error: string };
  /**
   * The attributes a part's `sensitive: true` makes sensitive (DESIGN §5.13); the type's schema
   * then has a `sensitive` boolean attribute, which is an input, never compared.
   */
  hiddenWhenSensitive?: string[];
  /** How a node in sync is reported, when not `unchanged` (a transition: skipped, prior_to in sync). */
  inSync?: { status: 'skipped'; reason: string };
  /**
   * What the type needs of the executor beyond files and commands (DESIGN §7); a node whose
   * executor lacks one fails at plan time, saying so.
   */
  needs?: ExecutorCapability[];
  /**
   * What a node needs of the executor when it sets an attribute (a service's `ensure`: starting
   * or stopping needs a running system, while `enable` works on the files of an offline root);
   * checked with `needs`, before any node runs.
   */
  attributeNeeds?: Record<string, ExecutorCapability[]>;
  /** The action when a node is absent and must be made (`run` for commands). */
  createAction?: 'create' | 'run';
  /**
   * What reading the node depends on: paths (an earlier node that changes one of them, or a
   * folder above it, makes this reading provisional in a plan) and whether it runs commands
   * (then any changing requisite does), and whether it needs the files' bytes (`content`), not
   * just their kind, mode, owner and hash: remote executors fetch those up front. `os`: the
   * target's OS tables, where a path is OS-specific.
   */
  reads?(attributes: Record<string, unknown>, os: Record<string, unknown>): Reads;
  /**
   * The node acts on nothing but the paths its `reads` names, through the executor's file
   * operations, and runs no command, so the engine may apply it while other such nodes on
   * unrelated paths are still finishing (their writes wait on the disk side by side).
   * `paths-and-parents`: it makes a folder at the first path its `reads` names (unless its
   * `ensure` is `absent`), and may also create the missing folders above it; where a requisite
   * of this kind that succeeded made the folder a node's path is in, that node creates none.
   */
  overlap?: 'paths' | 'paths-and-parents';
  /** Turns site-relative inputs (templates, sources) into values the engine can compare. */
  resolve?(attributes: Record<string, unknown>, ctx: ResolveContext): Record<string, unknown>;

  /**
   * Implicit ordering (DESIGN §6, Puppet's autorequire): the nodes of other types this node
   * requires when they are in the run. The graph builder reads these generically; an explicit
   * requisite between the two nodes wins, and an edge that would close a cycle is dropped.
   */
  autoRequires?: AutoRequire[];

  // What the graph and the catalog read of a type, so neither needs a branch on its name.

  /**
   * Attributes that name other nodes (a reference, or a list of them), as a transition's
   * `resource` and `prior_to` do. Each named node gets an edge of `kind` from this node, declared
   * with the attribute's name: EngineServices.related() finds it under that word, and `says`
   * phrases it in a cycle report.
   */
  references?: Record<string, {
    kind: ReferenceKind;
    says(from: string, to: string): string;
    /** The word `cairn show` puts before a node this attribute names ("puts", "before"). */
    shows: string;
  }>;
}

/** A type as the compiler and engine see it: its definition plus what its attributes declare. */
export interface ResourceType<S extends z.ZodObject = z.ZodObject, K extends string = string> extends TypeDefinition<S, K> {
  /** The compared attributes and what a change to each needs; the others are inputs, not compared. */
  changes: Record<string, ChangeClass>;
  /**
   * Inputs that cannot be read back from the target (a guest's user data): compared through a
   * hash kept in the target's state directory, written only after the apply they describe.
   */
  writeOnly: string[];
  /** Attributes whose values never appear in output, diffs, reports or logs (DESIGN §5.13). */
  sensitive: string[];
  /**
   * Attributes a user never writes: resolve() fills them (a source's bytes and hash). Hints and
   * `cairn schema` leave them out.
   */
  internal: string[];
}

export type { ExecutorCapability };

/**
 * What a node names that makes it require another node (ResourceType.autoRequires):
 * - `{ attribute, type }`: the node of `type` whose key equals the attribute's value (each value,
 *   for a list): a file's `owner` names a `user`, a service's `name` a `package`;
 * - `{ attribute, type, parent: true }`: the node of `type` whose key is the closest folder above
 *   the attribute's path (a file's `path`, its parent `directory`);
 * - `{ type, every: true }`: every node of `type` on the target (a package after every package
 *   repository).
 */
export type AutoRequire =
  | { attribute: string; type: string; parent?: true }
  | { type: string; every: true };

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
export type TypeBehaviour = Pick<ResourceType, 'name' | 'changes' | 'createAction' | 'inSync' | 'needs' | 'attributeNeeds' | 'overlap'> &
  Partial<Pick<ResourceType, 'writeOnly' | 'sensitive'>> & {
  /** For each reference attribute, the word `cairn show` puts before the node it names. */
  shows?: Record<string, string>;
  /** Types the engine is handed directly (tests) may still compute their readings. */
  reads?: ResourceType['reads'];
};

export function behaviourOf(type: ResourceType): TypeBehaviour {
  const { name, changes, createAction, writeOnly, sensitive, inSync, needs, attributeNeeds, overlap, references } = type;
  const shows = references && Object.fromEntries(Object.entries(references).map(([attr, r]) => [attr, r.shows]));
  return {
    name, changes,
    ...(createAction ? { createAction } : {}), ...(writeOnly.length ? { writeOnly } : {}),
    ...(sensitive.length ? { sensitive } : {}),
    ...(inSync ? { inSync } : {}), ...(needs?.length ? { needs } : {}),
    ...(attributeNeeds ? { attributeNeeds } : {}), ...(overlap ? { overlap } : {}),
    ...(shows ? { shows } : {}),
  };
}

/** What names a node besides its attributes: which of them are sensitive, and the part's `id`. */
export interface IdentityContext {
  sensitive: readonly string[];
  id?: string;
}

export function identityOf(type: ResourceType, attributes: Record<string, unknown>, context: IdentityContext = { sensitive: [] }): string | { error: string } {
  return type.identity ? type.identity(attributes, context) : String(attributes[type.key]);
}

/** What the engine does to a node (DESIGN §11's report `action`). */
export type Action = 'none' | 'create' | 'update' | 'reload' | 'rebuild' | 'destroy' | 'refresh' | 'run';

/** Services of the engine that meta types (transition) use; plain resources ignore them. */
export interface EngineServices {
  /** Node ids linked from this node by edges declared with `word` (e.g. 'resource', 'prior_to'). */
  related(word: string): string[];
  /** Reads a node now: would applying it change anything? */
  wouldChange(nodeId: string): Promise<boolean>;
  /**
   * Whether a node will get its turn in this run, as far as can be known now: not when it is
   * noop, the run is stopping, a requisite it depends on (or one of theirs) failed, or its
   * onchanges/onfail references have all run without meeting it.
   */
  willRun(nodeId: string): boolean;
  /** How reports name a node (`file:/etc/motd`). */
  refOf(nodeId: string): string;
  /** Applies a node with `attributes` laid over its declared ones, through the engine. */
  applyWith(nodeId: string, attributes: Record<string, unknown>): Promise<{ changed: boolean; failed?: string }>;
}

/** What the engine gives a provider; `T` types `peers()` as the provider's own attributes. */
export interface ProviderContext<T extends { schema: z.ZodType } = ResourceType> {
  exec: Executor;
  facts: Record<string, unknown>;
  /** The target's OS tables merged (`it.os`): OS-specific names, package manager, init system. */
  os: Record<string, unknown>;
  engine: EngineServices;
  /** Aborted when the run is cancelled: a long operation (a download, a build) stops early. */
  signal: AbortSignal;
  /**
   * The node runs because its lazy state was triggered (a handler's turn), not at a turn of its
   * own: a type whose work is an event rather than a state (a reboot) does it then.
   */
  triggered?: boolean;
  /** A line for the run's log, attributed to this node (shown with -v, kept by `--log`). */
  log(message: string): void;
  /** How far a long operation is, shown live while it runs; never part of the report. */
  progress(update: ProgressUpdate): void;
  /**
   * A reading shared by many nodes: `load` runs once per `key` until the target next changes (the
   * engine forgets every batch after an apply), so a run reads all its packages with one
   * `dpkg-query`, not one per package.
   */
  batch<T>(key: string, load: () => Promise<T>): Promise<T>;
  /** The desired attributes of every node of this node's type in the run: what a batch reads. */
  peers(): Desired<T>[];
  /**
   * Builds an image through a provisioning profile (DESIGN §10) for a `guest` or `container` on
   * create or rebuild. The provisioner sits above the engine, so whoever starts the run (the CLI)
   * hands it in; absent where no build can run for this target, and a type that needs one fails
   * the node saying so.
   */
  images?: ImageBuilder;
}

/** The provisioner as the lifecycle types see it (DESIGN §10): one build per call. */
export interface ImageBuilder {
  build(request: ImageBuildRequest): Promise<ImageBuildResult>;
}

export interface ImageBuildRequest {
  /** A profile of the site (`profiles/<name>.yaml`). */
  profile: string;
  /** The guest's or container's name: the build's `ctx.name`. */
  name: string;
  kind: 'guest' | 'container';
  /** The folder the build leaves its output in (disk images, a root folder). */
  outputDir: string;
  /** Override the profile's arguments, as `--arg k=v` does. */
  args?: Record<string, string>;
  user_data?: string;
  signal: AbortSignal;
  progress(update: ProgressUpdate): void;
  log(message: string): void;
}

export interface ImageBuildResult {
  /** The definition the build made: libvirt domain XML for a guest, `.nspawn` settings for a container. */
  definition?: string;
  /** Disk images in disk order (absolute paths in outputDir). */
  disks: string[];
  /** A container's root folder, when the build made one rather than a disk image. */
  root?: string;
}

export interface ProgressUpdate {
  /** Units done so far (bytes, steps), and how many there are when known. */
  done: number;
  total?: number;
  /** What is going on now ("downloading", "installing grub"). */
  step?: string;
}

/** The shape a type's providers see: the schema's parsed output (defaults applied). */
export type Desired<T extends { schema: z.ZodType }> = z.output<T['schema']>;

/** Current state in the same vocabulary as the desired attributes; undefined: absent. */
export type Current<T extends { schema: z.ZodType } = ResourceType> = (Partial<Desired<T>> & Record<string, unknown>) | undefined;

/**
 * A provider: a tiny required core (suitable, read, apply) and optional traits the engine and
 * `cairn export` look for (mgmt's model). `T` is the type it serves (`typeof fileType`, a type-only
 * import: a run loads no schema), so `desired` and `current` are typed from its schema.
 * Methods, not function properties: a provider of one type is usable where any provider is.
 */
export interface Provider<T extends { schema: z.ZodType } = ResourceType> {
  type: string;
  name: string;
  /** Whether this provider fits the target, from its facts and OS tables (see resources/os.ts). */
  suitable(facts: Record<string, unknown>, os: Record<string, unknown>): boolean;
  /** Observes, with no side effects. */
  read(ctx: ProviderContext<T>, desired: Desired<T>): Promise<Current<T>>;
  /**
   * Returns `{ changed: false }` when it found nothing to do after all (a transition whose
   * resource is already in the transitional state), so nothing reports a change it did not make;
   * `{ refreshed: true }` when the change already did what a pending notification asks (a service
   * started from stopped reads its new configuration: no restart right after), or a reload's
   * refresh (a jail stopped, changed and started again by the apply itself).
   */
  apply(ctx: ProviderContext<T>, action: Action, desired: Desired<T>, current: Current<T>): Promise<ApplyOutcome>;
  /**
   * Trait: replaces the thing in one step (build the new one, then swap), for a `rebuild`
   * action; without it the engine destroys, then creates.
   */
  rebuild?(ctx: ProviderContext<T>, desired: Desired<T>, current: Current<T>): Promise<void>;
  /** Trait: what a notification does; absent: nothing. `{ changed: false }` when it had nothing
   *  to do (a stopped service is not restarted), so the node does not report a change. */
  refresh?(ctx: ProviderContext<T>, desired: Desired<T>): Promise<void | { changed: false; reason: string }>;
  /**
   * Trait: the change item by item, when a node stands for many things (a directory copied from
   * the site: `created /srv/www/index.html`, `changed …`, `removed …`), for the report, under the
   * node. Called with the reading that decided the node's action.
   */
  items?(desired: Desired<T>, current: Current<T>): string[];
  /** Trait: a unified diff of content for `--diff`, when the type has content. */
  diff?(desired: Desired<T>, current: Current<T>): string | undefined;
  /** Trait: the same work as POSIX sh, for `cairn export` (DESIGN §11). */
  shell?: ShellProvider<T>;
  /** Trait: the node is an edit of one file's text, which the engine may gather with others (FileEdits). */
  edits?: FileEdits<T>;
  /** Trait: the node's apply is one guarded command, which the engine may send with others (GuardedCommands). */
  commands?: GuardedCommands<T>;
}

/**
 * A provider whose nodes each run one command unless a guard says it is not needed (an `exec`):
 * the engine sends the nodes that follow one another in the run with this provider to the
 * executor together (Executor.runGuarded), which asks each one's guards on the target right
 * before it would run, as `read` would have then. Each node still reads, decides and reports as
 * if applied alone, one after another; over SSH they cost one round trip instead of one each.
 * `read` and `apply` must be these: `read` asks `command(desired).guards` in order (undefined when
 * none says no), and `apply` runs the command and judges its result by `judge`.
 */
export interface GuardedCommands<T extends { schema: z.ZodType } = ResourceType> {
  command(desired: Desired<T>): GuardedCommand;
  /** What `read` returns when the guard at `index` said the command is not needed (in sync). */
  notNeeded(desired: Desired<T>, index: number): Current<T>;
  /** Throws the ApplyError `apply` would for the command's result; returns when it succeeded. */
  judge(desired: Desired<T>, result: RunResult): void;
}

/**
 * A provider whose nodes each edit a file's text (a `line`): the engine gathers the nodes that
 * follow one another in the run and edit one file with this provider (engine/gathered-edits.ts),
 * reads the file once, makes each node's edit on the text the one before it left, and writes the
 * file once. Each node still reads, decides and reports as if applied alone, one after another;
 * over SSH the file costs one round trip instead of one per node. `read` and `apply` must be
 * these, reading and writing the file through the executor: `current(text)` is what `read` finds
 * in a file holding `text` (undefined: there is no file), and `edit(text)` the text `apply` writes
 * over a file holding `text`, or an ApplyError. Its actions are create, update and destroy.
 */
export interface FileEdits<T extends { schema: z.ZodType } = ResourceType> {
  path(desired: Desired<T>): string;
  current(text: string | undefined, desired: Desired<T>): Current<T>;
  edit(text: string | undefined, desired: Desired<T>, action: Action): string;
}

/**
 * A provider's work written as POSIX sh fragments (dash and busybox ash), for a run exported as
 * one script (`cairn export`, DESIGN §11; src/export/). Values reach the fragments already quoted
 * (lib/shell.ts `shellQuote`). Each fragment becomes the body of a shell function:
 *
 * - `check` returns 0 when the node is in sync, anything else when it must change. It runs in the
 *   script's own shell (no fork), so a run that changes nothing costs only what the checks cost:
 *   prefer `test`, `read` and the script's helpers to commands. It may set `cairn_skip` to a
 *   reason, and the node is then skipped with it (a transition whose prior_to will not run).
 * - `apply(desired, action)` converges the node from whatever state `check` found, and returns
 *   non-zero on failure (its output's last lines are the node's error). The script calls it only
 *   when `check` failed. `action` is the one a plan would pick for an absent thing: `destroy` when
 *   `ensure` is absent, else the type's create action (`create`, or `run` for commands); which of
 *   create and update the report shows comes from `exists`. Returning 100 means it found nothing
 *   to do after all (the last line of its output is the reason): the node is `unchanged`.
 * - `refresh` is what a notification runs (DESIGN §5.3); 100 and a reason as for `apply`.
 * - `exists` returns 0 when the thing is there at all (an update, not a create, in the report).
 * - `diff` prints what would change, for `--diff` (content as a unified diff), after a failed check.
 *
 * Every fragment runs as a shell function in the script's own shell, so a converged run forks only
 * for the commands its checks run; `apply`, `refresh` and `diff` have their output captured. A
 * fragment that mentions `exit` becomes a subshell function (`name() ( … )`) instead, at the cost
 * of a fork, so `exit` ends only it. Otherwise a fragment must not `cd` or `exit` outside a
 * subshell of its own, and its scratch variables are plain lowercase names (the script's own
 * start with `cairn_` or `_`). Helpers the script's prelude (src/export/prelude.ts) defines:
 * `cairn_put PATH MODE OWNER GROUP BACKUP [TEXT]` (writes TEXT, else stdin, atomically: a temp file
 * in the same folder, then a rename; empty arguments leave that attribute alone, and a file it
 * replaces keeps its mode and owner; BACKUP `1` keeps the old content as PATH.cairn-bak;
 * `cairn_validate` set to a command runs it on the temp file, `$1`, first), `cairn_b64` (base64
 * on stdin → bytes), `cairn_file_is PATH TEXT` (a regular file holding exactly TEXT, which ends
 * in a newline; no fork), `cairn_sha256_is PATH HEX`, `cairn_attrs_ok PATH MODE OWNER GROUP` and
 * `cairn_attrs PATH MODE OWNER GROUP` (check and fix mode, owner and group; empty ones are not
 * managed), `cairn_not CMD…`, `cairn_mkdir DIR` (mkdir -p, making a following group's stage in
 * the same process), and for `stage` fragments `cairn_stage K PATH MODE OWNER GROUP [TEXT]`
 * (`cairn_stage64` for base64 on stdin), `cairn_lhas K PATH TEXT`, `cairn_lstage K PATH TEXT`. resources/shell-fragments.ts builds the usual calls.
 *
 * `ctx` is given to meta types (a transition), whose work is other nodes' turns.
 */
export interface ShellProvider<T extends { schema: z.ZodType } = ResourceType> {
  check(desired: Desired<T>, ctx?: ShellContext): string;
  apply(desired: Desired<T>, action: Action, ctx?: ShellContext): string;
  refresh?(desired: Desired<T>, ctx?: ShellContext): string;
  exists?(desired: Desired<T>, ctx?: ShellContext): string;
  diff?(desired: Desired<T>, ctx?: ShellContext): string;
  /**
   * `apply` runs in the script's own shell, output not captured (a meta type whose work is other
   * nodes' turns, which report themselves): it says why it did nothing in `cairn_reason`, and
   * why it failed in `cairn_error`.
   */
  inline?: boolean;
  /**
   * The node's write staged with its neighbours' (src/export/script.ts groups consecutive nodes
   * that have one, with no commands between them): `apply` leaves the new content staged
   * (`cairn_stage`, `cairn_lstage`) and `cairn_commit` puts a group's files in place after its
   * last node, one rename per file but one `mv` per folder, one rewrite per edited file.
   * Undefined when this node's write cannot be staged (it then runs as `apply` in the group).
   */
  stage?(desired: Desired<T>, ids: StageIds): StagedShell | undefined;
  /**
   * True when the node's fragments touch no path but its own (and read none but its own and a
   * link's target): no command, no listing of a folder. An empty stage folder of the staged
   * writes may then wait across the node for the next group (src/export/script.ts), and a
   * `mkdir` of the directory type make a following group's stage with the folder (cairn_mkdir).
   */
  ownPath?(desired: Desired<T>): boolean;
  /**
   * The node's whole turn in the common case, as one command (a helper of the script's prelude),
   * given the node's number: run in apply mode without --diff while nothing has failed, for a node
   * with nothing but requisites around it. It reports the node found in sync (`cairn_ok`) or
   * brings it there from nothing at its path and reports it (`cairn_result`); for anything else
   * it returns 1 having changed nothing, and the general turn runs (check, apply, the output of a
   * failure in its report). Straight-line code: no gate, no node function to load.
   */
  turn?(desired: Desired<T>, node: number): string | undefined;
}

/** Numbers the script's staging variables are named with (one per folder, one per edited file). */
export interface StageIds {
  folder(path: string): number;
  file(path: string): number;
}

/** A node's fragments when its write is staged (ShellProvider.stage). */
export interface StagedShell {
  /** The path it writes: a group holds at most one node a path. */
  path: string;
  /**
   * The folder whose stage it writes into, if it stages a whole file: the exporter stages such a
   * file only when another file of the group goes to the same folder (else a plain `apply`).
   */
  folder?: string;
  /**
   * The folder it makes, when it is a directory that can be made inside its parent's stage
   * (`cairn_sdir`): what the group puts in it then goes straight into it, and its parent's one
   * `mv` puts the whole new tree in place. A node of the group in that folder may require it.
   */
  makes?: string;
  /** It writes the whole entry at `path` (a directory, a link), not a file's content or lines. */
  entry?: boolean;
  /** The check, if not `check`'s (one reading the group's staged state). */
  check?: string;
  apply: string;
  /** ShellProvider.turn for the staged node: it stages the write (or queues the in-sync line). */
  turn?(node: number): string;
}

/** What the exporter offers a meta type's fragments: other nodes of the run, as shell commands. */
export interface ShellContext {
  /** The target's OS tables (`it.os`). */
  os: Record<string, unknown>;
  /** Handles of the nodes linked from this node by edges declared with `word` (EngineServices.related). */
  related(word: string): string[];
  /** A command that returns 0 when that node is out of sync now (its check fails). */
  wouldChange(handle: string): string;
  /** A command that returns 0 when that node will get its turn (EngineServices.willRun). */
  willRun(handle: string): string;
  /** How reports name it, quoted for the shell. */
  refOf(handle: string): string;
  /**
   * A command that runs that node's turn with `attributes` laid over its declared ones (reported
   * as its own line, reason `transition`): returns 0 changed, 1 unchanged, 2 failed.
   */
  applyWith(handle: string, attributes: Record<string, unknown>): string;
}

/** Declares a provider of one type, keeping its attribute types (`defineProvider<typeof fileType>({…})`). */
export function defineProvider<T extends { schema: z.ZodType }>(provider: Provider<T>): Provider<T> {
  return provider;
}

export type ApplyOutcome = void | { changed: false; reason: string } | { refreshed: true };

/**
 * Thrown by providers for a failure the user should see as the node's error. Any other error a
 * provider throws (a TypeError) is a bug: the run stops and says so with its stack (exit 70).
 */
export class ApplyError extends TargetError {}

/**
 * Thrown by a provider's read when the node is not to be applied this time, for a reason other
 * than being in sync (a transition whose prior_to node will not get its turn): the engine reports
 * it `skipped (<reason>)`, and it changes and notifies nothing.
 */
export class SkipNode extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'SkipNode';
  }
}

/** `mode` as the user wrote it when the bits match, else the actual bits as "0644". */
export function modeAs(desired: unknown, actual: number): string {
  if (typeof desired === 'string' && parseInt(desired, 8) === actual) return desired;
  return `0${actual.toString(8).padStart(3, '0')}`;
}
