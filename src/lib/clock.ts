/**
 * Milliseconds from a monotonic clock. process.hrtime, not performance.now(): the first use of
 * `performance` loads Node's whole perf_hooks module, a measurable part of a converged run.
 */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
