/**
 * How V8 runs Cairn's code. Most runs are short (a converged run, one changed input): V8's
 * optimizing compiler (TurboFan) costs them more CPU on its background threads than the code it
 * makes saves, and its own code and work memory, with a young generation grown to 8 MiB, are a
 * fifth of such a run's resident size. So a run with something to do (`shortRun()`: a compile, or
 * a large compiled run from the cache) turns the optimizing compiler off and keeps the young
 * generation at its first size; a run that turns out long (a large compile) gets both back,
 * through `longWork()`. A run with almost nothing to do never loads node:v8 to set them.
 *
 * Only under the launcher (src/cli/launch.ts sets TIERING_BY_LAUNCHER): the flags are the
 * process's, and a process that runs Cairn in-process (tests, the API) keeps its own.
 */
export const TIERING_BY_LAUNCHER = Symbol.for('cairn.tieringByLauncher');

const SHORT_RUN_FLAGS = ['--no-opt', '--semi-space-growth-factor=1'];
/** V8's defaults. */
const LONG_RUN_FLAGS = ['--opt', '--semi-space-growth-factor=2'];

let phase: 'default' | 'short' | 'long' = 'default';

function setFlags(flags: string[]): void {
  const v8 = process.getBuiltinModule('node:v8');
  for (const flag of flags) v8.setFlagsFromString(flag);
}

/** The run has work to do: the short-run flags, unless it has already proved long. */
export function shortRun(): void {
  if (phase !== 'default' || !(globalThis as { [TIERING_BY_LAUNCHER]?: boolean })[TIERING_BY_LAUNCHER]) return;
  phase = 'short';
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
  if (phase !== 'short') return;
  phase = 'long';
  setFlags(LONG_RUN_FLAGS);
}
