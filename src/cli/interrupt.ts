/**
 * Ctrl-C (SIGINT) or SIGTERM during a run: the first cancels it (no node starts after it, and a
 * provider in the middle of a long operation, creating a jail, say, stops and removes what it
 * half made: ProviderContext.signal); a second ends the process at once, as without Cairn.
 * `said` is what the first one prints (after `cairn: SIGNAL: `).
 */
import { writeErr } from './output.ts';

const LOCAL_RUN = 'finishing the node under way (a long operation stops early and cleans up) and starting no other';

export function interruptible(said = LOCAL_RUN): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const signals = ['SIGINT', 'SIGTERM'] as const;
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
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
  return { signal: controller.signal, dispose };
}
