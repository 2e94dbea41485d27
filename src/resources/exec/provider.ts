import { commandLineArgv } from '../../lib/shell.ts';
import { outputTail } from '../commands.ts';
import { defineProvider, ApplyError, type ProviderContext, type Desired } from '../type.ts';
import type { execType } from './type.ts';

type ExecAttributes = Desired<typeof execType>;

function argvOf(desired: ExecAttributes): string[] {
  return desired.argv ?? commandLineArgv(desired.command);
}

function options(desired: ExecAttributes) {
  return {
    ...(typeof desired.cwd === 'string' ? { cwd: desired.cwd } : {}),
    ...(desired.env ? { env: desired.env } : {}),
    ...(typeof desired.user === 'string' ? { user: desired.user } : {}),
    ...(typeof desired.timeout === 'number' ? { timeoutMs: desired.timeout * 1000 } : {}),
  };
}

async function runCommand(ctx: ProviderContext, desired: ExecAttributes): Promise<void> {
  const r = await ctx.exec.run(argvOf(desired), options(desired));
  if (r.timedOut) throw new ApplyError(`timed out after ${String(desired.timeout)} s`);
  if (r.code !== 0) {
    const output = outputTail(`${r.stdout}${r.stderr}`, 20);
    throw new ApplyError(`exited with ${r.code}${output ? `:\n${output}` : ''}`);
  }
}

/** Why a guard says the command is not needed now, or undefined when it must run. */
async function notNeeded(ctx: ProviderContext, desired: ExecAttributes): Promise<string | undefined> {
  if (typeof desired.creates === 'string' && (await ctx.exec.stat(desired.creates))) return `creates: ${desired.creates} exists`;
  const guard = (cmd: string) => ctx.exec.run(commandLineArgv(cmd), options(desired));
  if (typeof desired.unless === 'string' && (await guard(desired.unless)).code === 0) return 'unless: exited 0';
  if (typeof desired.onlyif === 'string') {
    const { code } = await guard(desired.onlyif);
    if (code !== 0) return `onlyif: exited ${code}`;
  }
  return undefined;
}

export const shellExec = defineProvider<typeof execType>({
  type: 'exec',
  name: 'shell',
  suitable: () => true,

  /** In sync (nothing to run) when a guard says so; absent means "must run". */
  async read(ctx, desired) {
    return (await notNeeded(ctx, desired)) === undefined ? undefined : { command: desired.command };
  },

  async apply(ctx, _action, desired) {
    await runCommand(ctx, desired);
  },

  /**
   * A notification does not override the guards (DESIGN §5.3, as in Salt, Puppet and Ansible).
   * They are asked again, since a refresh is not handed the reading; it costs a command only
   * when a notified node's guard said no.
   */
  async refresh(ctx, desired) {
    const why = await notNeeded(ctx, desired);
    if (why !== undefined) return { changed: false, reason: `not run: ${why}` };
    await runCommand(ctx, desired);
  },
});
