/** lib/clock.ts: isoTime is toISOString without the local time zone. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isoTime } from '../src/lib/clock.ts';

test('isoTime(ms) is new Date(ms).toISOString(), for every year, millisecond and the edges of the four-digit years', () => {
  const samples = [0, 1, 999, 1000, -1, Date.UTC(1999, 11, 31, 23, 59, 59, 999), Date.UTC(2026, 0, 1), Date.UTC(9999, 11, 31, 23, 59, 59, 999),
    Date.UTC(10000, 0, 1), Date.UTC(0, 0, 1) - 1, Date.UTC(-1, 5, 6, 7, 8, 9, 10), new Date('0000-01-01T00:00:00.000Z').getTime(), 8.64e15, -8.64e15];
  for (let i = 0; i < 2000; i++) samples.push(Math.floor((i * 7919.123456789 % 1) * 4.1e14) - 6.2e13);
  for (const ms of samples) assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
  assert.match(isoTime(), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.throws(() => isoTime(NaN), RangeError);
});
