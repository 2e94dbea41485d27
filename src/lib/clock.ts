/**
 * Milliseconds from a monotonic clock. process.hrtime, not performance.now(): the first use of
 * `performance` loads Node's whole perf_hooks module, a measurable part of a converged run.
 */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * `new Date(ms).toISOString()`, built from the date's UTC fields. V8's toISOString first works out
 * the local time zone, which an ISO time in UTC never uses: ICU then reads /etc/localtime and sets
 * up its zone tables, some 0.25 ms and 0.75 MiB of resident memory (pages of its data in the
 * node binary), a part of what a converged run costs beyond Node's own start (the run lock's
 * claim and the run's report carry such times). Years outside 0-9999 take V8's own form.
 */
export function isoTime(ms: number = Date.now()): string {
  const d = new Date(ms);
  const year = d.getUTCFullYear();
  if (!(year >= 0 && year <= 9999)) return d.toISOString();
  const two = (n: number) => (n < 10 ? `0${n}` : `${n}`);
  return `${String(year).padStart(4, '0')}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}T${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}.${String(d.getUTCMilliseconds()).padStart(3, '0')}Z`;
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
