/** lib/memory.ts: a full collection once the heap is large, nothing below the threshold, no gc() left in sight. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getHeapStatistics } from 'node:v8';
import { releaseGarbage } from '../src/lib/memory.ts';

test('a large heap of garbage is collected; the main context gets no gc()', () => {
  const made = (() => Array.from({ length: 400 }, (_, i) => Array.from({ length: 1000 }, (_, j) => `${i}:${j}:${'x'.repeat(64)}`)).length)();
  assert.equal(made, 400);
  const before = getHeapStatistics().used_heap_size;
  assert.ok(before > 48 * 1024 * 1024, `the test needs a heap over the threshold (${before >> 20} MiB)`);
  releaseGarbage();
  const after = getHeapStatistics().used_heap_size;
  assert.ok(after < before - 32 * 1024 * 1024, `${before >> 20} MiB -> ${after >> 20} MiB`);
  assert.equal((globalThis as { gc?: unknown }).gc, undefined);
});
