/**
 * How V8 runs Cairn's code. Most runs are short (a converged run, one changed input): V8's
 * optimizing compiler (TurboFan) costs them more CPU on its background threads than the code it
 * makes saves, and its own code and work memory, with a young generation grown to 8 MiB, are a
 * fifth of such a run's resident size. So a run with something to do (`shortRun()`: a compile, or
 * a large compiled run from the cache) turns the optimizing compiler off and keeps the young
 * generation at its first size; a run that turns out long (a large compile) gets both back,
 * through `longWork()`. A run with almost nothing to do never loads node:v8 to set them.
 *
 * Only under the launcher, for the one-shot commands that compile (src/cli/launch.ts marks the
 * process for apply, plan, show and export; the agent and the master live on): the flags are the
 * process's, and a process that runs Cairn in-process (tests, the API) keeps its own. The state lives on the
 * global object, which the launcher and the bundle share (each has its own copy of this module):
 * V8 stamps a code cache with a hash of the flags it was made under and rejects it under others,
 * so the launcher puts V8's defaults back (`defaultFlags()`) before it makes one at exit.
 */
const TIERING = Symbol.for('cairn.tiering');

type Phase = 'default' | 'short' | 'long';
const state = globalThis as { [TIERING]?: Phase };

const SHORT_RUN_FLAGS = ['--no-opt', '--semi-space-growth-factor=1'];
/** V8's defaults. */
const DEFAULT_FLAGS = ['--opt', '--semi-space-growth-factor=2'];

function setFlags(flags: string[]): void {
  const v8 = process.getBuiltinModule('node:v8');
  for (const flag of flags) v8.setFlagsFromString(flag);
}

/** Called by the launcher: this process's V8 flags are Cairn's to set. */
export function tieringByLauncher(): void {
  state[TIERING] = 'default';
}

/**
 * Node's modules that a run with work to do nearly always needs, loaded before the flags change:
 * Node's code cache of its own modules is stamped with V8's flags as Cairn's is, and under other
 * flags each is compiled afresh (node:crypto's dozen: 4.5–6.5 ms instead of 2). Content hashes
 * (lib/digest.ts) load node:crypto in every compile and in every run with more than a few files.
 * Loaded here, not later under underDefaultFlags(): a scavenge during that load, under V8's
 * default growth factor, could double the young generation (a converged 742-file run then
 * peaked at 52.5 MiB instead of 50.8 about half the time on a busy machine).
 */
const SHORT_RUN_MODULES = ['node:crypto'] as const;

/** The run has work to do: the short-run flags, unless it has already proved long. */
export function shortRun(): void {
  if (state[TIERING] !== 'default') return;
  state[TIERING] = 'short';
  for (const name of SHORT_RUN_MODULES) process.getBuiltinModule(name);
  setFlags(SHORT_RUN_FLAGS);
}

/** YAML (rendered state files, vars) parsed in one run past which the run counts as long. */
const LONG_PARSE_BYTES = 256 * 1024;
let parsedBytes = 0;

/** Counts YAML text about to be parsed; past LONG_PARSE_BYTES, the run is a long one. */
export function parsingYaml(length: number): void {
  parsedBytes += length;
  if (parsedBytes > LONG_PARSE_BYTES) longWork();
}

/** Gives a long run V8's defaults back (once, and only when shortRun() changed them). */
export function longWork(): void {
  if (state[TIERING] !== 'short') return;
  state[TIERING] = 'long';
  setFlags(DEFAULT_FLAGS);
}

/** V8's defaults again, as the run started with (for a code cache made now); a no-op when unchanged. */
export function defaultFlags(): void {
  if (state[TIERING] === 'short') setFlags(DEFAULT_FLAGS);
  if (state[TIERING] !== undefined) state[TIERING] = 'default';
}

/** Runs `f` (the launcher reading a code cache) under V8's defaults, then puts the short-run flags back. */
export function underDefaultFlags<T>(f: () => T): T {
  if (state[TIERING] !== 'short') return f();
  setFlags(DEFAULT_FLAGS);
  try {
    return f();
  } finally {
    setFlags(SHORT_RUN_FLAGS);
  }
}
