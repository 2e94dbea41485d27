/**
 * A reboot that waits: the boot id is read, the OS tables' reboot command runs, then the executor
 * reconnects (Executor.reconnect: same settings, same host-key checks) until the target answers
 * with another boot id, within the node's timeout. A connection that still reaches the old boot
 * (the host has not gone down yet) is let go and tried again. The run then goes on over the new
 * connection; a target that does not come back fails the node, and its executor stays lost, so
 * the run ends there for that target (reported unreachable) and the other targets go on.
 */
import { nowMs } from '../../lib/clock.ts';
import { UnreachableError, type Executor } from '../../executors/types.ts';
import { outputTail, toolError } from '../commands.ts';
import { osCommand, osSection } from '../os.ts';
import { ApplyError, defineProvider, type Desired, type ProviderContext } from '../type.ts';
import type { rebootType } from './type.ts';

type Want = Desired<typeof rebootType>;

/** Between a connection that still reached the old boot and the next try. */
const STILL_UP_PAUSE_MS = 1000;

function cannotWait(exec: Executor): ApplyError {
  return new ApplyError(`cannot reboot through the ${exec.name} executor: it cannot wait for its target to come back ` +
    '(rebooting the machine Cairn runs on would end the run). Reboot over ssh from another machine');
}

async function bootId(ctx: ProviderContext, argv: string[]): Promise<string> {
  const r = await ctx.exec.run(argv);
  const id = r.stdout.trim();
  if (r.code !== 0 || id === '') throw toolError(`${argv.join(' ')} (the boot id)`, r);
  return id;
}

function bootIdCommand(ctx: ProviderContext): string[] {
  const argv = osCommand(ctx.os, 'reboot', 'boot_id');
  if (!argv) throw new ApplyError('the OS tables give no reboot.boot_id command for this target: Cairn cannot tell that it rebooted');
  return argv;
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

async function reboot(ctx: ProviderContext, desired: Want): Promise<void> {
  const reconnect = ctx.exec.reconnect?.bind(ctx.exec);
  if (!reconnect) throw cannotWait(ctx.exec);
  const command = desired.command ?? osCommand(ctx.os, 'reboot', 'command');
  if (!command) throw new ApplyError('the OS tables give no reboot.command for this target: give the reboot a `command`');
  const idCommand = bootIdCommand(ctx);
  const before = await bootId(ctx, idCommand);
  const started = nowMs();
  const deadline = started + desired.timeout * 1000;
  ctx.log(`rebooting with ${command.join(' ')} (boot id ${before})`);
  ctx.progress({ done: 0, step: 'rebooting' });
  try {
    const r = await ctx.exec.run(command);
    // 255 without a status: the connection went down with the host, as it may.
    if (r.code !== 0 && !(r.code === 255 && /no exit status received$/.test(r.stderr))) {
      throw new ApplyError(`${command.join(' ')} exited with ${r.code}: ${outputTail(r.stderr || r.stdout) || 'no output'}`);
    }
  } catch (err) {
    if (!(err instanceof UnreachableError)) throw err;
  }
  ctx.progress({ done: 0, step: 'waiting for the target to come back' });
  for (;;) {
    let why: string;
    try {
      await reconnect({ timeoutMs: Math.max(0, deadline - nowMs()), signal: ctx.signal });
      const now = await bootId(ctx, idCommand);
      if (now !== before) {
        ctx.log(`back after ${Math.round((nowMs() - started) / 100) / 10} s (boot id ${now})`);
        return;
      }
      why = 'it still ran the boot it had before the reboot';
    } catch (err) {
      // Not reached (the executor is left unreachable), or lost again right after connecting.
      if (!(err instanceof UnreachableError)) throw err;
      why = err.reason;
    }
    if (nowMs() >= deadline || ctx.signal.aborted) {
      throw new ApplyError(`the target did not come back within ${desired.timeout} s (timeout) after ${command.join(' ')}: ${why}`);
    }
    // Still the old boot: the host has not gone down yet.
    await pause(Math.min(STILL_UP_PAUSE_MS, Math.max(0, deadline - nowMs())), ctx.signal);
  }
}

/** The file whose existence says a reboot is required, from the OS tables. */
function requiredFile(os: Record<string, unknown>): string | undefined {
  const file = osSection(os, 'reboot').required_file;
  return typeof file === 'string' && file !== '' ? file : undefined;
}

export const waitingReboot = defineProvider<typeof rebootType>({
  type: 'reboot',
  name: 'reconnect',
  suitable: (facts) => facts.kernel === 'linux' || facts.kernel === 'freebsd',

  async read(ctx, desired) {
    // A plan says so too: a reboot that cannot be waited for is never started.
    if (!ctx.exec.reconnect) throw cannotWait(ctx.exec);
    // A reboot in a lazy state (a handler) is what the state does when triggered.
    if (ctx.triggered) return undefined;
    if (desired.when === 'required') {
      const file = requiredFile(ctx.os);
      if (!file) throw new ApplyError('when: required needs the OS tables\' reboot.required_file, which this target\'s tables do not give');
      // Absent means "to do": it runs at its turn, as an exec does.
      if (await ctx.exec.stat(file)) return undefined;
    }
    return { ...desired };
  },

  async apply(ctx, _action, desired) {
    await reboot(ctx, desired);
  },

  async refresh(ctx, desired) {
    await reboot(ctx, desired);
  },
});
