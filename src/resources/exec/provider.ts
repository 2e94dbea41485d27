import { commandLineArgv } from '../../lib/shell.ts';
import { outputTail } from '../commands.ts';
import { defineProvider, ApplyError, type ProviderContext, type Desired } from '../type.ts';
import type { execType } from './type.ts';
import type { CommandGuard, CommandLine, GuardedCommand, RunResult } from '../../executors/types.ts';
import { quote as q } from '../shell-fragments.ts';
import { shellCommand } from '../../lib/shell.ts';

type ExecAttributes = Desired<typeof execType>;

function argvOf(desired: ExecAttributes): string[] {
  return desired.argv ?? commandLineArgv(desired.command);
}

function options(desired: ExecAttributes): CommandLine['opts'] {
  return {
    ...(typeof desired.cwd === 'string' ? { cwd: desired.cwd } : {}),
    ...(desired.env ? { env: desired.env } : {}),
    ...(typeof desired.user === 'string' ? { user: desired.user } : {}),
    ...(typeof desired.timeout === 'number' ? { timeoutMs: desired.timeout * 1000 } : {}),
  };
}

/** The command and its guards, in the order they are asked: creates, unless, onlyif (each with the command's cwd, env, user and timeout). */
function guarded(desired: ExecAttributes): GuardedCommand {
  const opts = options(desired);
  const guards: CommandGuard[] = [];
  if (typeof desired.creates === 'string') guards.push({ exists: desired.creates });
  if (typeof desired.unless === 'string') guards.push({ unless: { argv: commandLineArgv(desired.unless), opts } });
  if (typeof desired.onlyif === 'string') guards.push({ onlyif: { argv: commandLineArgv(desired.onlyif), opts } });
  return { argv: argvOf(desired), opts, guards };
}

/** The command's result judged: an ApplyError unless it exited 0. */
function judge(desired: ExecAttributes, r: RunResult): void {
  if (r.timedOut) throw new ApplyError(`timed out after ${String(desired.timeout)} s`);
  if (r.code !== 0) {
    const output = outputTail(`${r.stdout}${r.stderr}`, 20);
    throw new ApplyError(`exited with ${r.code}${output ? `:\n${output}` : ''}`);
  }
}

async function runCommand(ctx: ProviderContext, desired: ExecAttributes): Promise<void> {
  const { argv, opts } = guarded(desired);
  judge(desired, await ctx.exec.run(argv, opts));
}

/** Why a guard says the command is not needed now, or undefined when it must run. */
async function notNeeded(ctx: ProviderContext, desired: ExecAttributes): Promise<string | undefined> {
  for (const guard of guarded(desired).guards) {
    if ('exists' in guard) {
      if (await ctx.exec.stat(guard.exists)) return `creates: ${guard.exists} exists`;
    } else if ('unless' in guard) {
      if ((await ctx.exec.run(guard.unless.argv, guard.unless.opts)).code === 0) return 'unless: exited 0';
    } else {
      const { code } = await ctx.exec.run(guard.onlyif.argv, guard.onlyif.opts);
      if (code !== 0) return `onlyif: exited ${code}`;
    }
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

  commands: {
    command: guarded,
    notNeeded: (desired) => ({ command: desired.command }),
    judge,
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

  shell: {
    check(desired) {
      const guards = shellGuards(desired);
      // No guard: a command always runs. In a subshell: guards run with the command's cwd and env.
      return guards.length === 0 ? 'return 1' : `{ ${guards.map((g) => g.test).join(' || ')}; } >/dev/null 2>&1`;
    },
    apply: (desired) => shellRun(desired),
    refresh(desired) {
      const guards = shellGuards(desired).map((g) => (g.onlyif !== undefined
        ? `${g.onlyif}; rc=$?\nif [ $rc -ne 0 ]; then echo "not run: onlyif: exited $rc"; return 100; fi\n`
        : `if ${g.test}; then echo ${q(`not run: ${g.why}`)}; return 100; fi\n`)).join('');
      return `${guards}${shellRun(desired)}`;
    },
  },
});

/** The guards as shell tests, each with why it says the command is not needed (notNeeded()). */
function shellGuards(desired: ExecAttributes): { test: string; why: string; onlyif?: string }[] {
  const out: { test: string; why: string; onlyif?: string }[] = [];
  if (typeof desired.creates === 'string') out.push({ test: `{ [ -e ${q(desired.creates)} ] || [ -L ${q(desired.creates)} ]; }`, why: `creates: ${desired.creates} exists` });
  if (typeof desired.unless === 'string') out.push({ test: `${shellInvocation(desired, desired.unless, false)} >/dev/null 2>&1`, why: 'unless: exited 0' });
  if (typeof desired.onlyif === 'string') {
    const run = `${shellInvocation(desired, desired.onlyif, false)} >/dev/null 2>&1`;
    out.push({ test: `! ${run}`, why: 'onlyif: exited non-zero', onlyif: run });
  }
  return out;
}

/** `command` (a shell line, or argv) with the part's cwd, env, user and timeout, as one shell command. */
function shellInvocation(desired: ExecAttributes, command: string | string[], timed: boolean): string {
  const env = Object.entries(desired.env ?? {}).map(([k, v]) => `${k}=${q(v)}`);
  // Plain words (a program and its arguments) run directly, as the provider runs them.
  const argv = Array.isArray(command) ? command : commandLineArgv(command);
  let line = `${env.length ? `env ${env.join(' ')} ` : ''}${shellCommand(argv)}`;
  if (typeof desired.user === 'string') line = `su -s /bin/sh -c ${q(line)} ${q(desired.user)}`;
  if (timed && typeof desired.timeout === 'number') line = `timeout ${desired.timeout} ${line}`;
  return typeof desired.cwd === 'string' ? `( cd ${q(desired.cwd)} && ${line} )` : line;
}

/** Runs the command; fails as the provider does: the exit code (or the timeout), after its output. */
function shellRun(desired: ExecAttributes): string {
  const timeout = typeof desired.timeout === 'number' ? `[ $rc -ne 124 ] || { echo ${q(`timed out after ${desired.timeout} s`)}; return 1; }\n` : '';
  return `${shellInvocation(desired, desired.argv ?? desired.command, true)}\nrc=$?\n${timeout}[ $rc -eq 0 ] || { echo "exited with $rc"; return 1; }`;
}
