/**
 * Waiting for an outcome, not for a time: `waitUntil` checks a condition until it holds. Its
 * deadline only bounds a hang (a condition that never comes true fails the test with `what`);
 * it is never an assertion on speed, so it is generous.
 */
import { setTimeout as delay } from 'node:timers/promises';

export const HANG_MS = 60_000;

export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string | (() => string), hangMs = HANG_MS): Promise<void> {
  const deadline = performance.now() + hangMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`still waiting after ${hangMs / 1000} s: ${typeof what === 'function' ? what() : what}`);
    await delay(10);
  }
}
