/**
 * Seeded fuzzing of sites (issue #27): a small valid site (test/helpers/fuzz-sites.ts) mutated
 * at random, then `show`, and `plan` or `apply` against a folder target. Whatever the mutation:
 * the exit code is 0, 1, 2 or 3 (never 70, a crash), no case hangs (each runs under a hang guard
 * in a worker process that is killed if a case does not finish), every exit-2 error names a
 * file:line:col (apart from the few errors that are about no place in a file, listed below), and
 * an exit-2 run changed nothing in the target's tree or state folder.
 *
 * CAIRN_FUZZ_CASES sets how many cases (default 300, for CI; `CAIRN_FUZZ_CASES=5000` for a long
 * run), CAIRN_FUZZ_SEED the seed (default 27), CAIRN_FUZZ_ONLY=N runs case N alone to reproduce it.
 */
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CaseDone, CaseStart } from './helpers/fuzz-worker.ts';

const CASES = Number(process.env.CAIRN_FUZZ_CASES) || 300;
const SEED = Number(process.env.CAIRN_FUZZ_SEED) || 27;
const ONLY = process.env.CAIRN_FUZZ_ONLY === undefined ? undefined : Number(process.env.CAIRN_FUZZ_ONLY);
/** A case that has not finished by then hangs: the worker is killed. Not a time limit on the work. */
const HANG_GUARD_MS = 60_000;

/**
 * Errors that are about no place in a file: the message names what is wrong instead (a target
 * or state that is missing from every file, a run list with nothing in it).
 */
const WITHOUT_POSITION = [
  /^error: no target, group or glob matches/,
  /^error: no targets/,
];

/** The exit-2 rule: each `error:` block carries `  --> file:line:col` unless it is one of the above. */
function unplacedErrors(stderr: string): string[] {
  return stderr.split(/\n(?=error: )/).filter((block) => block.startsWith('error: '))
    .filter((block) => !/\n {2}--> [^\n]+:\d+:\d+\n/.test(`${block}\n`) && !WITHOUT_POSITION.some((re) => re.test(block)))
    .map((block) => block.split('\n')[0]!);
}

interface Outcome { start: CaseStart; done?: CaseDone }

/** Runs cases [from, to) in a worker; resolves with each case's outcome, or rejects naming a case that hung. */
function runWorker(from: number, to: number): Promise<Outcome[]> {
  return new Promise((resolve, reject) => {
    const child = fork(join(import.meta.dirname, 'helpers/fuzz-worker.ts'), [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, FUZZ_SEED: String(SEED), FUZZ_FROM: String(from), FUZZ_TO: String(to), NO_COLOR: '1' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const outcomes: Outcome[] = [];
    let guard: NodeJS.Timeout | undefined;
    const watch = () => {
      clearTimeout(guard);
      guard = setTimeout(() => {
        const current = outcomes.at(-1);
        child.kill('SIGKILL');
        reject(new Error(`fuzz case ${current?.start.index ?? from} (seed ${SEED}) hung: ${JSON.stringify(current?.start.mutations)}`));
      }, HANG_GUARD_MS);
    };
    watch();
    child.on('message', (m: CaseStart | CaseDone) => {
      watch();
      if (m.kind === 'start') outcomes.push({ start: m });
      else outcomes.at(-1)!.done = m;
    });
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (code === 0) resolve(outcomes);
      else reject(new Error(`the fuzz worker exited ${code ?? signal} during case ${outcomes.at(-1)?.start.index ?? from}`));
    });
  });
}

test(`fuzzed sites: ${ONLY === undefined ? `${CASES} cases` : `case ${ONLY}`} (seed ${SEED}): exit 0–3, a position on exit 2, nothing changed on exit 2`, async (t) => {
  const outcomes = ONLY === undefined ? await runWorker(0, CASES) : await runWorker(ONLY, ONLY + 1);
  const problems: string[] = [];
  const tally = new Map<string, number>();
  for (const { start, done } of outcomes) {
    const where = `case ${start.index} ${JSON.stringify(start.mutations)}`;
    if (!done) {
      problems.push(`${where}: no result`);
      continue;
    }
    const runs = [{ name: 'show', ...done.show }, ...(done.run ? [{ name: done.run.command, ...done.run }] : [])];
    for (const r of runs) {
      tally.set(`${r.name} exit ${r.status}`, (tally.get(`${r.name} exit ${r.status}`) ?? 0) + 1);
      // A node that failed (exit 1) is allowed: worth a look, so it is listed.
      if (r.status === 1) t.diagnostic(`${where}: ${r.name} exit 1: ${'failed' in r ? r.failed : ''} ${r.stderr}`);
      if (![0, 1, 2, 3].includes(r.status ?? -1)) problems.push(`${where}: ${r.name} exited ${r.status}:\n${r.stderr}`);
      if (r.status === 2) {
        const unplaced = unplacedErrors(r.stderr);
        if (unplaced.length) problems.push(`${where}: ${r.name} exit 2 without a position: ${unplaced.join(' | ')}\n${r.stderr}`);
      }
    }
    if (done.run?.status === 2 && done.run.changed.length) problems.push(`${where}: ${done.run.command} exited 2 but changed:\n${done.run.changed.join('\n')}`);
  }
  t.diagnostic(`exits: ${JSON.stringify(Object.fromEntries([...tally].sort()))}`);
  assert.equal(outcomes.length, ONLY === undefined ? CASES : 1, 'every case ran');
  assert.deepEqual(problems, [], `${problems.length} problem(s); exits: ${JSON.stringify(Object.fromEntries(tally))}`);
  // The fuzzer must reach both sides: sites that still converge and sites that are refused.
  if (ONLY === undefined && CASES >= 100) {
    assert.ok((tally.get('show exit 0') ?? 0) > 0 && (tally.get('show exit 2') ?? 0) > 0, `exits: ${JSON.stringify(Object.fromEntries(tally))}`);
  }
});
