/**
 * Ctrl-C (SIGINT) or SIGTERM during a run: the first cancels it (no node starts after it, and a
 * provider in the middle of a long operation, creating a jail, say, stops and removes what it
 * half made: ProviderContext.signal); a second ends the process at once, as without Cairn.
 * `said` is what the first one prints (after `cairn: SIGNAL: `).
 */
import { LazyAbort, type LazySignal } from '../lib/run-signal.ts';
import { writeErr } from './output.ts';

const LOCAL_RUN = 'finishing the node under way (a long operation stops early and cleans up) and starting no other';

/** `signal`: made when first asked for (lib/run-signal.ts); a run nobody interrupts never makes one. */
export function interruptible(said = LOCAL_RUN): { signal: LazySignal; dispose(): void } {
  const controller = new LazyAbort();
  const signals = ['SIGINT', 'SIGTERM'] as const;
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.aborted) {
      // What is left listening (the run lock's release, lock-dir.ts) or the default ends it.
      dispose();
      process.kill(process.pid, signal);
      return;
    }
    writeErr(`cairn: ${signal}: ${said}; ${signal} again ends at once\n`);
    controller.abort();
  };
  const dispose = () => {
    for (const s of signals) process.off(s, onSignal);
  };
  for (const s of signals) process.on(s, onSignal);
  return { signal: controller, dispose };
}
