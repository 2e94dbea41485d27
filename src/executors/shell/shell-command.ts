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
