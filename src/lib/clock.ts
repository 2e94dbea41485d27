/**
 * Milliseconds from a monotonic clock. process.hrtime, not performance.now(): the first use of
 * `performance` loads Node's whole perf_hooks module, a measurable part of a converged run.
 */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Resolves after `ms`, or as soon as `signal` aborts (never rejects: the caller checks the signal). */
export function pauseFor(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
