/**
 * `cairn run -t SEL -- CMD…`: one ad-hoc command on every selected target, through the same
 * executors (and `--forks`) as a converge, with its output kept per target.
 */
import { ExitCode, InputError } from '../lib/errors.ts';
import { commandLineArgv } from '../lib/shell.ts';
import { abortSignalOf } from '../lib/run-signal.ts';
import { UnreachableError, type Executor, type RunResult } from '../executors/types.ts';
import { closeSessions, inParallel, openSessions } from './sessions.ts';
import type { SelectedTarget } from './site-compiler.ts';
import { stdoutIsTTY, writeErr, writeOut } from './output.ts';
import { interruptible } from './interrupt.ts';
import { masterFor, MasterError, MasterUnreachable, type MasterClient, type MasterFlags } from './master-client.ts';

export interface AdHocOptions extends MasterFlags {
  site: string;
  target?: string[];
  forks: number;
  become?: boolean;
  json?: boolean;
  acceptNewHostKeys?: boolean;
}

export interface AdHocResult {
  name: string;
  status: 'ok' | 'failed' | 'unreachable';
  exit_code: number | null;
  stdout: string;
  stderr: string;
  error?: string;
}

/**
 * The argv to run: several words are run as they are (no shell, like Ansible's `command`), so
 * `grep 'a|b' f` passes `a|b` through untouched; a single word is a command line, run as `sh -c`
 * would run it (lib/shell.ts), so `'df -h | tail -1'` gets its pipe.
 */
export function adHocArgv(words: string[]): string[] {
  return words.length === 1 ? commandLineArgv(words[0]!) : words;
}

/**
 * `--become` for a local target: Cairn already running as root needs nothing; otherwise sudo, which
 * must not ask (-n): a password prompt would hang a run on many targets.
 */
function localBecome(argv: string[]): string[] {
  return process.getuid?.() === 0 ? argv : ['sudo', '-n', '--', ...argv];
}

/** Each line of `text` with the target's name in front, for output interleaved from several targets. */
function prefixed(name: string, text: string): string {
  const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
  return lines.map((l) => `${name}: ${l}\n`).join('');
}

/** Whole lines of a stream as they complete, the last partial one kept until its end or the stream's. */
class LineSplitter {
  private rest = '';
  constructor(private readonly emit: (text: string) => void) {}
  push(text: string): void {
    const all = this.rest + text;
    const cut = all.lastIndexOf('\n');
    if (cut < 0) {
      this.rest = all;
      return;
    }
    this.emit(all.slice(0, cut + 1));
    this.rest = all.slice(cut + 1);
  }

  end(): void {
    if (this.rest) this.emit(this.rest);
    this.rest = '';
  }
}

export async function adHoc(words: string[], options: AdHocOptions, sources: Map<string, string>,
  localFacts: () => Record<string, unknown>): Promise<number> {
  if (words.length === 0 || words[0] === '') {
    throw new InputError([{ message: 'cairn run: no command given', hint: "put it after --: cairn run -t web -- uptime (or -- 'a | b' for a shell)" }]);
  }
  const { SiteCompiler } = await import('./site-compiler.ts');
  const selected: SelectedTarget[] = await new SiteCompiler({ site: options.site }, sources).select(options.target ?? []);
  const argv = adHocArgv(words);
  const sessions = await openSessions(
    // --become forces a target's own become setting; the SSH executor then starts its shell through sudo -n.
    options.become ? selected.map((t) => (t.settings.executor === 'local' ? t : { ...t, settings: { ...t.settings, become: true } })) : selected,
    { forks: options.forks, ...(options.acceptNewHostKeys ? { acceptNewHostKeys: true } : {}), localFacts, master: masterFor(options) });
  const streamed = !options.json && stdoutIsTTY();
  const results: AdHocResult[] = [];
  // Output for a pipe or file comes as whole blocks in selection order: the next target to print.
  let nextToPrint = 0;
  const printReady = () => {
    while (nextToPrint < sessions.length && results[nextToPrint]) writeOut(block(results[nextToPrint++]!));
  };
  // A command an agent runs goes on without this process unless the master is told: Ctrl-C
  // (or SIGTERM) cancels it there, and stops the other targets' commands as well.
  const interrupt = sessions.some((s) => s.remote) ? interruptible('cancelling the command on each target (an agent\'s through its master)') : undefined;
  // Each command is handed the signal itself: it is made now.
  const signal = interrupt && abortSignalOf(interrupt.signal);
  try {
    await inParallel(sessions, options.forks, async (session, i) => {
      const local = selected[i]!.settings.executor === 'local';
      results[i] = session.exec
        ? await runOne(session.name, session.exec, options.become && local ? localBecome(argv) : argv, streamed, signal)
        : session.remote ? await runRemote(session.name, session.remote, argv, options.become ?? false, streamed, signal)
        : { name: session.name, status: 'unreachable', exit_code: null, stdout: '', stderr: '', error: session.error ?? 'unreachable' };
      if (streamed) {
        const r = results[i];
        writeOut(r.status === 'unreachable' ? `${r.name}: UNREACHABLE: ${r.error}\n` : r.exit_code !== 0 ? `${r.name}: FAILED: exit ${r.exit_code}${r.error ? `: ${r.error}` : ''}\n` : '');
      } else if (!options.json) printReady();
    });
  } finally {
    interrupt?.dispose();
    await closeSessions(sessions);
  }
  if (options.json) writeOut(`${JSON.stringify({ version: 1, targets: results }, null, 2)}\n`);
  if (results.some((r) => r.status === 'unreachable')) return ExitCode.unreachable;
  // An interrupted command did not do all it was asked, even when it exited 0.
  return results.some((r) => r.status === 'failed') || interrupt?.signal.aborted ? ExitCode.nodesFailed : ExitCode.ok;
}

async function runOne(name: string, exec: Executor, argv: string[], streamed: boolean, signal?: AbortSignal): Promise<AdHocResult> {
  const lines = streamed ? new LineSplitter((text) => writeOut(prefixed(name, text))) : undefined;
  let r: RunResult;
  try {
    r = await exec.run(argv, { ...(signal ? { signal } : {}), ...(lines ? { onOutput: (_stream: 'stdout' | 'stderr', text: string) => lines.push(text) } : {}) });
  } catch (err) {
    // A target lost mid-command (the connection dropped) is unreachable, as in a converge.
    if (err instanceof UnreachableError) return { name, status: 'unreachable', exit_code: null, stdout: '', stderr: '', error: err.reason };
    throw err;
  } finally {
    lines?.end();
  }
  return { name, status: r.code === 0 ? 'ok' : 'failed', exit_code: r.code, stdout: r.stdout, stderr: r.stderr, ...(r.timedOut ? { error: 'timed out' } : {}) };
}

/** The command run by target `name`'s agent, through the master (`executor: agent`). */
async function runRemote(name: string, master: MasterClient, argv: string[], become: boolean, streamed: boolean, signal?: AbortSignal): Promise<AdHocResult> {
  const lines = streamed ? new LineSplitter((text) => writeOut(prefixed(name, text))) : undefined;
  const cancel = signal ? { signal, onCancel: (runId: string) => writeErr(`${name}: cancelling run ${runId} on master ${master.url}: the agent stops the command\n`) } : undefined;
  try {
    const r = await master.command(name, argv, become, lines ? (_stream, text) => lines.push(text) : undefined, cancel);
    return { name, status: r.code === 0 ? 'ok' : 'failed', exit_code: r.code, stdout: r.stdout, stderr: r.stderr, ...(r.error ? { error: r.error } : {}) };
  } catch (err) {
    if (err instanceof MasterUnreachable || err instanceof MasterError) return { name, status: 'unreachable', exit_code: null, stdout: '', stderr: '', error: err.message };
    throw err;
  } finally {
    lines?.end();
  }
}

/** A finished target's output for a pipe or file: a header line, then stdout and stderr as they were. */
function block(r: AdHocResult): string {
  if (r.status === 'unreachable') return `${r.name}: UNREACHABLE: ${r.error}\n`;
  const head = `${r.name}: ${r.status === 'ok' ? 'ok' : `FAILED`} (exit ${r.exit_code})\n`;
  const end = (text: string) => (text && !text.endsWith('\n') ? `${text}\n` : text);
  return head + end(r.stdout) + (r.stderr ? `${r.name}: stderr:\n${end(r.stderr)}` : '');
}
