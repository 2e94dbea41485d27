/**
 * Rollouts (DESIGN §12): `--serial N|N%` converges the targets in batches, and `--max-fail N|N%`
 * stops before the next batch when the last one's failures exceed it. As Ansible's `serial` and
 * `max_fail_percentage`: a percentage of the selected targets is rounded up (at least 1), failures
 * are counted per batch against that batch's size, and only more than the limit stops (`50%` lets
 * a batch of 2 with 1 failure go on).
 */
import { InvalidArgumentError } from 'commander';
import type { TargetReport } from '../engine/engine.ts';
import { InputError } from '../lib/errors.ts';

/** A count of targets, or a percentage of some number of targets. */
export type Amount = { count: number } | { percent: number };

function amount(value: string, min: number): Amount {
  const m = /^(\d+)(%?)$/.exec(value.trim());
  const n = m ? Number(m[1]) : NaN;
  if (!m || !Number.isSafeInteger(n) || n < min || (m[2] && n > 100)) {
    throw new InvalidArgumentError(`expected a whole number of targets (at least ${min}) or a percentage N% (${min}–100)`);
  }
  return m[2] ? { percent: n } : { count: n };
}

/** `--serial`: a batch of none would never end the rollout. */
export const serialAmount = (value: string): Amount => amount(value, 1);

/** `--max-fail`: 0 stops at the first failure. */
export const maxFailAmount = (value: string): Amount => amount(value, 0);

export interface RolloutOptions {
  serial?: Amount;
  maxFail?: Amount;
}

/** Refused before anything is opened: without batches there is no later batch to hold back. */
export function checkRollout(options: RolloutOptions): void {
  if (options.maxFail && !options.serial) {
    throw new InputError([{ message: '--max-fail needs --serial', hint: 'it stops a rollout between batches; give the batch size with --serial N or N%' }]);
  }
}

/** The targets in the order selected, cut into batches of `--serial` (all in one without it). */
export function batches<T>(items: readonly T[], serial: Amount | undefined): T[][] {
  if (items.length === 0) return [];
  const size = !serial ? items.length
    : 'count' in serial ? serial.count
    : Math.max(1, Math.ceil((items.length * serial.percent) / 100));
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Failed and unreachable both count: either way the batch did not converge. */
export function failures(batch: readonly TargetReport[]): number {
  return batch.filter((r) => r.status === 'failed' || r.status === 'unreachable').length;
}

/** Whether a batch's failures exceed `--max-fail` (strictly greater, compared in integers). */
export function exceeds(failed: number, batchSize: number, maxFail: Amount | undefined): boolean {
  if (!maxFail) return false;
  return 'count' in maxFail ? failed > maxFail.count : failed * 100 > maxFail.percent * batchSize;
}

export const ROLLOUT_STOPPED = 'rollout stopped';

/** A target of a batch the rollout did not reach: nothing was run on it. */
export function skippedReport(name: string): TargetReport {
  return { name, status: 'skipped', counts: { changed: 0, unchanged: 0, failed: 0, skipped: 0 }, nodes: [], reason: ROLLOUT_STOPPED };
}

/**
 * Runs the batches in order through `runBatch`; the reports are in the order of `items`, those of
 * the batches not run reported skipped. (main.ts loads this file at start-up: the parallel runner
 * comes from the caller, so that the executors are not loaded with it.)
 */
export async function inBatches<T extends { name: string }>(items: readonly T[], options: RolloutOptions,
  runBatch: (batch: T[]) => Promise<TargetReport[]>): Promise<{ reports: TargetReport[]; stopped?: { batch: number; failed: number; size: number } }> {
  const all = batches(items, options.serial);
  const reports: TargetReport[] = [];
  for (const [i, batch] of all.entries()) {
    const done = await runBatch(batch);
    reports.push(...done);
    const failed = failures(done);
    if (i + 1 < all.length && exceeds(failed, batch.length, options.maxFail)) {
      reports.push(...all.slice(i + 1).flat().map((item) => skippedReport(item.name)));
      return { reports, stopped: { batch: i + 1, failed, size: batch.length } };
    }
  }
  return { reports };
}

export function describe(amount: Amount): string {
  return 'count' in amount ? String(amount.count) : `${amount.percent}%`;
}
