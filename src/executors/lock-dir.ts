/**
 * The run lock in a target's state directory (DESIGN §5.11) on this machine's file system:
 * STATE_DIR/lock.d, made with mkdir(2), holding a `holder` file (pid, host, start, what runs).
 * mkdir is atomic (of two runs exactly one creates it), and a shell makes the same directory with
 * nothing but mkdir, so a local run, the agent and an SSH run from a workstation (shell/lock.ts)
 * all take one lock on one machine. Node has no flock(2), and a flock on a file would not exclude
 * the SSH runs' directory.
 *
 * A lock whose holder is gone (its pid is dead on this host) is taken over under a guard made
 * inside it (lock.d/takeover, mkdir again): whoever makes the guard reads the holder once more
 * and removes the lock only if it is still the dead one, so two runs that both found it stale
 * cannot remove each other's new lock.
 */
import { mkdirSync, readFileSync, rmSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { pidAlive, TEMP_TAG } from './temp-names.ts';
import type { LockAttempt, LockClaim, LockHolder } from './types.ts';

export const LOCK_DIR = 'lock.d';

/**
 * A line the shell's `read` can take apart, `pid host started what-runs…`, then `temps TAG`
 * (temp-names.ts) on a line of its own: a lock of an older version, which has only the first,
 * still reads, and the first line alone still tells two holders apart.
 */
export function formatHolder(h: LockHolder): string {
  return `${h.pid} ${h.host} ${h.started} ${h.by}\n${h.temps ? `temps ${h.temps}\n` : ''}`;
}

export function parseHolder(text: string): LockHolder | undefined {
  const [first = '', second = ''] = text.split('\n');
  const m = /^(\d+) (\S+) (\S+) ?(.*)$/.exec(first);
  if (!m) return undefined;
  const temps = /^temps (\S+)$/.exec(second)?.[1];
  return { pid: Number(m[1]), host: m[2]!, started: m[3]!, by: m[4]!, ...(temps && TEMP_TAG.test(temps) ? { temps } : {}) };
}

function sameHolder(a: LockHolder, b: LockHolder): boolean {
  return formatHolder(a) === formatHolder(b);
}


function readHolder(dir: string): LockHolder | undefined {
  try {
    return parseHolder(readFileSync(join(dir, 'holder'), 'utf8'));
  } catch {
    return undefined;
  }
}

function unwritable(err: unknown): boolean {
  return ['EACCES', 'EPERM', 'EROFS'].includes((err as NodeJS.ErrnoException).code ?? '');
}

/** The locks this process holds, by lock directory, released on the way out if a run cannot. */
const held = new Map<string, LockHolder>();

/** `temps`: what this process's temp files carry (temp-names.ts), recorded in the holder. */
export function tryLockDir(stateDir: string, claim: LockClaim, temps?: string): LockAttempt {
  const dir = join(stateDir, LOCK_DIR);
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    if (unwritable(err)) return { state: 'unwritable', reason: (err as Error).message };
    throw err;
  }
  let tookOver: LockHolder | undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if (unwritable(err)) return { state: 'unwritable', reason: (err as Error).message };
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // No holder yet: its creator is between mkdir and writing it.
      const holder = readHolder(dir);
      const alive = !holder ? 'yes' : holder.host !== hostname() ? 'unknown' : pidAlive(holder.pid) ? 'yes' : 'no';
      if (alive === 'no' && attempt === 1 && takeOver(dir, holder!)) {
        tookOver = holder;
        continue;
      }
      return { state: 'held', ...(holder ? { holder } : {}), alive, path: dir };
    }
    const mine: LockHolder = { pid: process.pid, host: hostname(), ...claim, ...(temps ? { temps } : {}) };
    // Written in place: a reader that catches it half written sees a holder that does not match
    // what it reads again under the takeover guard, and leaves the lock alone.
    writeFileSync(join(dir, 'holder'), formatHolder(mine), { mode: 0o600 });
    held.set(dir, mine);
    releaseOnExit();
    return { state: 'taken', ...(tookOver ? { tookOver } : {}) };
  }
}

function takeOver(dir: string, stale: LockHolder): boolean {
  try {
    mkdirSync(join(dir, 'takeover'));
  } catch (err) {
    // Gone meanwhile: try again. Guarded: another run is taking it over.
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
  const now = readHolder(dir);
  if (now && sameHolder(now, stale)) {
    rmSync(dir, { recursive: true, force: true });
    return true;
  }
  rmSync(join(dir, 'takeover'), { recursive: true, force: true });
  return false;
}

/** Removes the lock if this process still holds it (never one taken over from it). */
export function unlockDir(stateDir: string): void {
  const dir = join(stateDir, LOCK_DIR);
  const mine = held.get(dir);
  if (!mine) return;
  held.delete(dir);
  const now = readHolder(dir);
  if (now && sameHolder(now, mine)) removeLock(dir);
  if (held.size === 0) stopListening();
}

/**
 * The lock folder holds just its holder file unless a takeover was under way: two calls, and a
 * recursive removal (which loads and runs Node's rimraf, a cost of every converged run) only then.
 */
function removeLock(dir: string): void {
  try {
    unlinkSync(join(dir, 'holder'));
    rmdirSync(dir);
  } catch {
    rmSync(dir, { recursive: true, force: true });
  }
}

function releaseAll(): void {
  for (const dir of [...held.keys()]) unlockDir(join(dir, '..'));
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let listening = false;

/**
 * Ctrl-C or a kill while a lock is held: when nothing else in the process handles the signal,
 * its default was to end the process at once, skipping the run's own release; so the locks go
 * first and the signal is raised again. When something else handles it (the agent stops its run
 * gracefully), the run ends normally and releases the lock itself.
 */
function onSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) return;
  releaseAll();
  stopListening();
  process.kill(process.pid, signal);
}

function releaseOnExit(): void {
  if (listening) return;
  listening = true;
  for (const s of SIGNALS) process.on(s, onSignal);
  process.on('exit', releaseAll);
}

function stopListening(): void {
  if (!listening) return;
  listening = false;
  for (const s of SIGNALS) process.off(s, onSignal);
  process.off('exit', releaseAll);
}
