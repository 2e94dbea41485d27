/**
 * Memory given back between the steps of a large compile. V8 lets its old generation grow well
 * past what is live before it collects, and parsing a large state makes tens of megabytes of
 * short-lived objects that survive long enough to get there: a 10,000-resource site peaked at
 * 200 MiB with about 20 MiB live. A full collection at the point where a step's intermediate
 * data has just become garbage keeps the peak near what is live, for a few milliseconds per
 * step. Below the threshold (the standard 742-resource workload never reaches it) it does
 * nothing. It collects again only once the heap has doubled since the last collection left it:
 * a collection per step at a fixed threshold made a compile of thousands of invocations
 * quadratic (each full collection walks everything live, and what is live grows with the run).
 */
import type * as V8 from 'node:v8';

const THRESHOLD_BYTES = 40 * 1024 * 1024;

let fullCollection: (() => void) | undefined;
let v8: typeof V8 | undefined;
/** The heap in use that triggers the next collection. */
let nextAt = THRESHOLD_BYTES;

export function releaseGarbage(): void {
  // node:v8's heap statistics: process.memoryUsage() also reads the resident size from the
  // kernel, a fraction of a millisecond that adds up over thousands of state invocations.
  v8 ??= process.getBuiltinModule('node:v8');
  if (v8.getHeapStatistics().used_heap_size < nextAt) return;
  if (!fullCollection) {
    // V8 gives gc() to contexts made once the flag is set; the main context stays as it was.
    v8.setFlagsFromString('--expose-gc');
    fullCollection = process.getBuiltinModule('node:vm').runInNewContext('gc') as () => void;
  }
  fullCollection();
  nextAt = Math.max(THRESHOLD_BYTES, 2 * v8.getHeapStatistics().used_heap_size);
}

