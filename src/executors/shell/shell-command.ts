/**
 * A command run by the long-lived shell itself rather than apart from it (SSH: a channel of its
 * own, for which sshd forks a session and the login shell starts, some milliseconds each, and
 * the command waits until every write sent before it is answered). As a request it is sent
 * behind those writes at once: the shell runs requests in the order sent.
 *
 * The command runs in a child of the shell, `/bin/sh -c` as sshd would run it (with the locale
 * the login gave, not the protocol's LC_ALL=C), its stdin from /dev/null or from a file of its
 * own input, its stdout and stderr in files of a private folder, new files each time, printed
 * back when it exits. It never sees the shell's pipes: it cannot read the requests after it or
 * garble a reply, and a daemon it leaves behind holding its output cannot keep the reply from
 * coming (on a channel, sshd waits for the daemon to close it). A timeout is timeout(1)'s on the
 * far side, which kills the command's process group and leaves the shell as it was.
 *
 * The folder, `.commands.cairn-tmp.TAG…` in /dev/shm or $TMPDIR, is made on the first command and goes
 * when the shell exits (the lock's EXIT trap, lock.ts, or its own when no lock is held); its
 * name is a temp name, so the sweep of a killed run's tag finds it (executor.ts, sweepTemps).
 */
import { printfFormat, shellQuote } from '../../lib/shell.ts';
import { OUTPUT_LIMIT, type RunResult } from '../types.ts';
import { END_SECTION, splitSections } from './remote-script.ts';

/** Bytes of stdin per printf command. */
const STDIN_CHUNK = 64 * 1024;

/** What the folder of a session's command files is called after `.` in its parent. */
export const COMMANDS_FOLDER = 'commands.cairn-tmp.';

/**
 * Where that folder may go, the first that takes it: a memory file system where there is one
 * (Linux), since every command makes two files and, on a disk's file system, making a file can
 * cost more than the command (ext4 on a virtual disk: about a millisecond each); else $TMPDIR.
 */
export const COMMAND_FOLDER_PARENTS = '/dev/shm "${TMPDIR:-/tmp}"';

/**
 * Sent with a session's first command. `__cairn_cmdd TAG` makes the folder (once, named by the
 * TAG of the call that made it); `__cairn_cmd N IN COMMAND` runs the command, its stdin from file
 * N.in when IN is 1, and prints its status ("-" when it did not start: a file could not be made),
 * its stdout and its stderr, a section each. A file with output is removed once printed (a
 * process); an empty one is left for the folder's removal. Each stream is printed up to
 * OUTPUT_LIMIT bytes, as much as a result keeps. It returns 1 when the command did not start.
 * `__cairn_try COMMAND` runs a guard as `__cairn_cmd` runs a command, its output dropped, and
 * returns its status.
 */
export const COMMAND_FUNCTIONS = String.raw`
__cairn_cmdd() {
  [ -z "$__cairn_cd" ] || return 0
  for __d in ${COMMAND_FOLDER_PARENTS}; do
    [ -d "$__d" ] && [ -w "$__d" ] && mkdir -m 0700 -- "$__d/.${COMMANDS_FOLDER}$1" 2>/dev/null && { __cairn_cd=$__d/.${COMMANDS_FOLDER}$1; break; }
  done
  [ -n "$__cairn_cd" ] || return 1
  [ -n "$__cairn_lockdir" ] || {
    trap '[ -z "$__cairn_cd" ] || rm -rf -- "$__cairn_cd"' EXIT
    trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM
  }
}
__cairn_cmd() {
  __f=$__cairn_cd/$1; __in=/dev/null; [ "$2" = 0 ] || __in=$__f.in
  { (
    if [ -n "$__lcs" ]; then LC_ALL=$__lc; else unset LC_ALL; fi
    exec /bin/sh -c "$3"
  ) <&5 >&3 2>&4 3>&- 4>&- 5<&-; echo "$?"; } 3>"$__f.out" 4>"$__f.err" 5<"$__in" || { echo -; ${END_SECTION}; return 1; }
  ${END_SECTION}
  __rm=$2
  [ ! -s "$__f.out" ] || { dd if="$__f.out" bs=${OUTPUT_LIMIT} count=1 2>/dev/null; __rm=1; }; ${END_SECTION}
  [ ! -s "$__f.err" ] || { dd if="$__f.err" bs=${OUTPUT_LIMIT} count=1 2>/dev/null; __rm=1; }; ${END_SECTION}
  [ "$__rm" = 0 ] || rm -f -- "$__f.out" "$__f.err" "$__f.in"
  return 0
}
__cairn_try() {
  ( if [ -n "$__lcs" ]; then LC_ALL=$__lc; else unset LC_ALL; fi
    exec /bin/sh -c "$1" ) </dev/null >/dev/null 2>&1
}`;

/**
 * The request that runs `command` (a command line, as a channel would run it) as the `n`th of
 * the session in the folder tagged `tag`, fed `stdin`; `define` sends the functions first.
 * `after`, if the command ran, runs right after its sections (a read of what it may have changed).
 */
export function commandRequest(command: string, n: number, tag: string, stdin: Buffer | undefined, define: boolean, after?: string): string {
  const steps = [`__cairn_cmdd ${shellQuote(tag)}`];
  if (stdin !== undefined) {
    const file = `"$__cairn_cd/${n}.in"`;
    if (stdin.length === 0) steps.push(`: > ${file}`);
    for (let at = 0; at < stdin.length; at += STDIN_CHUNK) steps.push(`printf ${printfFormat(stdin.subarray(at, at + STDIN_CHUNK))} ${at === 0 ? '>' : '>>'} ${file}`);
  }
  return `${define ? `${COMMAND_FUNCTIONS}\n` : ''}if ${steps.join(' && ')}; then __cairn_cmd ${n} ${stdin !== undefined ? 1 : 0} ${shellQuote(command)}${after !== undefined ? ` && { ${after}; }` : ''}; ` +
    `else echo -; ${END_SECTION}; fi`;
}

/**
 * The command's result from the request's output; 'not started' when it never ran (its files
 * could not be made), undefined when the output does not fit the request.
 */
export function parseCommandReply(output: Buffer, nonce: string): Pick<RunResult, 'code' | 'stdout' | 'stderr'> | 'not started' | undefined {
  const sections = splitSections(output, nonce);
  // The shell's own word comes before the status (a file it could not make, a job it saw killed).
  const status = sections[0]?.toString().trim().split('\n').pop();
  if (status === '-' && sections.length === 1) return 'not started';
  if (sections.length !== 3 || !/^\d+$/.test(status ?? '')) return undefined;
  return { code: Number(status), stdout: sections[1]!.toString(), stderr: sections[2]!.toString() };
}

/** A guarded command as the far side runs it: command lines, already made for the shell. */
export interface GuardedStep {
  command: string;
  guards: ({ exists: string } | { unless: string } | { onlyif: string })[];
}

/** Sections each guarded step's request prints: its verdict, then a command's status, stdout and stderr (empty when it did not run). */
export const GUARDED_STEP_SECTIONS = 4;

/**
 * The requests that run `steps` one after the other (the first as the session's `first`th
 * command), one request each, sent together: each step runs unless a guard, asked in order
 * right before it, says it is not needed: a path that exists (`__cairn_hidden`: the login user
 * cannot look), an `unless` that exits 0, an `onlyif` that does not. Each prints its verdict
 * (`run`, `gK`: guard K said no, `xK`: guard K's path is hidden, `stop`: the run was cancelled,
 * `-`: not started), then its command's sections, or three empty ones. No step starts once
 * `stop` exists (the caller makes it from beside the shell when the run is cancelled) or once
 * a command did not start (its files could not be made). `after` runs at the end of the last.
 */
export function guardedRequests(steps: readonly GuardedStep[], first: number, tag: string, stop: string, define: boolean, after?: string): string[] {
  const stopQuoted = shellQuote(stop);
  return steps.map((step, i) => {
    const lines = i > 0 ? [] : [`${define ? `${COMMAND_FUNCTIONS}\n` : ''}__cairn_halt=; __cairn_cmdd ${shellQuote(tag)} || __cairn_halt=-`];
    lines.push(`if [ -n "$__cairn_halt" ]; then __v=$__cairn_halt; elif [ -e ${stopQuoted} ]; then __v=stop; __cairn_halt=stop; else __v=run; fi`);
    step.guards.forEach((g, k) => {
      const test = 'exists' in g
        ? `if [ -e ${shellQuote(g.exists)} ] || [ -L ${shellQuote(g.exists)} ]; then __v=g${k}; elif __cairn_hidden ${shellQuote(g.exists)}; then __v=x${k}; fi`
        : 'unless' in g ? `! __cairn_try ${shellQuote(g.unless)} || __v=g${k}` : `__cairn_try ${shellQuote(g.onlyif)} || __v=g${k}`;
      lines.push(`[ $__v != run ] || { ${test}; }`);
    });
    lines.push(`echo $__v; ${END_SECTION}`);
    lines.push(`if [ $__v = run ]; then __cairn_cmd ${first + i} 0 ${shellQuote(step.command)} || { ${END_SECTION}; ${END_SECTION}; __cairn_halt=-; }; ` +
      `else ${END_SECTION}; ${END_SECTION}; ${END_SECTION}; fi`);
    if (i === steps.length - 1) {
      if (after !== undefined) lines.push(after);
      lines.push(`[ ! -e ${stopQuoted} ] || rm -f -- ${stopQuoted}`);
    }
    return lines.join('\n');
  });
}

/** What became of a step: its command ran, a guard said no (`hidden`: its path could not be looked at), it did not start, or the run was cancelled first. */
export type GuardedVerdict =
  | { ran: Pick<RunResult, 'code' | 'stdout' | 'stderr'> }
  | { guard: number; hidden: boolean }
  | 'not started'
  | 'cancelled';

/** A step's verdict from its request's sections (the first GUARDED_STEP_SECTIONS); undefined when they do not fit the request. */
export function parseGuardedReply(sections: readonly Buffer[]): GuardedVerdict | undefined {
  if (sections.length < GUARDED_STEP_SECTIONS) return undefined;
  // The shell's own word may come before a verdict or a status (a job it saw killed): the last line is ours.
  const [verdict = '', status = ''] = sections.slice(0, 2).map((b) => b.toString().trim().split('\n').pop() ?? '');
  if (verdict === 'stop') return 'cancelled';
  if (verdict === '-' || (verdict === 'run' && status === '-')) return 'not started';
  if (verdict === 'run' && /^\d+$/.test(status)) return { ran: { code: Number(status), stdout: sections[2]!.toString(), stderr: sections[3]!.toString() } };
  if (/^[gx]\d+$/.test(verdict)) return { guard: Number(verdict.slice(1)), hidden: verdict.startsWith('x') };
  return undefined;
}
