/**
 * Running a target's tools from providers, and turning their failures into the node's error in
 * the tool's own words. Run side: no schema here.
 */
import type { Executor, RunResult } from '../executors/types.ts';
import { ApplyError } from './type.ts';

/** The last `lines` lines of a command's output: the part of a tool's own words worth showing. */
export function outputTail(text: string, lines = 10): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}

/** `label exited with N` (or timed out), then the tail of what it said: its stderr, else its stdout. */
export function toolError(label: string, r: RunResult, lines = 12): ApplyError {
  const said = r.stderr.trim() ? r.stderr : r.stdout;
  const what = r.timedOut ? 'timed out' : `exited with ${r.code}`;
  return new ApplyError(`${label} ${what}${said.trim() ? `:\n${outputTail(said, lines)}` : ''}`);
}

export interface MustOptions {
  env?: Record<string, string>;
  /**
   * What the error calls the command (`apt-get install nginx exited with 100: …`); without one
   * the error is the tool's output alone, for tools whose message names what failed already
   * (`Failed to start nosuch.service: …`).
   */
  label?: string;
}

/** Runs a command that must succeed; a non-zero exit or a time-out is an ApplyError. */
export async function must(exec: Executor, argv: string[], options: MustOptions = {}): Promise<RunResult> {
  const r = await exec.run(argv, options.env ? { env: options.env } : {});
  if (r.code === 0 && !r.timedOut) return r;
  if (options.label !== undefined) throw toolError(options.label, r);
  throw new ApplyError(outputTail(`${r.stdout}\n${r.stderr}`, 20) || `${argv.join(' ')} exited with ${r.code}`);
}
