/**
 * Memory given back between the steps of a large compile. V8 lets its old generation grow well
 * past what is live before it collects, and parsing a large state makes tens of megabytes of
 * short-lived objects that survive long enough to get there: a 10,000-resource site peaked at
 * 200 MiB with about 20 MiB live. A full collection at the point where a step's intermediate
 * data has just become garbage keeps the peak near what is live, for a few milliseconds per
 * step. Below the threshold (the standard 742-resource workload never reaches it) it does
 * nothing.
 */
const THRESHOLD_BYTES = 40 * 1024 * 1024;

let fullCollection: (() => void) | undefined;

export function releaseGarbage(): void {
  // process.memoryUsage, not node:v8's heap statistics: loading node:v8 costs milliseconds.
  if (process.memoryUsage().heapUsed < THRESHOLD_BYTES) return;
  if (!fullCollection) {
    const v8 = process.getBuiltinModule('node:v8');
    // V8 gives gc() to contexts made once the flag is set; the main context stays as it was.
    v8.setFlagsFromString('--expose-gc');
    fullCollection = process.getBuiltinModule('node:vm').runInNewContext('gc') as () => void;
  }
  fullCollection();
}
