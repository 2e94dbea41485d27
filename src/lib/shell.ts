/**
 * The one place that builds POSIX shell text (DESIGN §6): providers pass argument arrays, and
 * executors that must go through a remote `sh` turn them into words here.
 */

/** Characters that mean nothing to sh: a run of them is one word that stands for itself. */
const PLAIN = '[A-Za-z0-9_@%+=:,./-]+';
const PLAIN_WORD = new RegExp(`^${PLAIN}$`);
const PLAIN_WORDS = new RegExp(`^${PLAIN}( ${PLAIN})*$`);

/** One shell word that stands for exactly `value` (any bytes but NUL). */
export function shellQuote(value: string): string {
  if (PLAIN_WORD.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A command line that runs `argv` as is. */
export function shellCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

/**
 * A `printf` format that prints exactly `bytes`, NUL and all, with nothing but the shell's
 * builtin printf: `%` and `\` escaped, control and non-ASCII bytes (and a leading `-`) as octal escapes, quoted.
 */
export function printfFormat(bytes: Buffer): string {
  let out = '';
  for (const [i, byte] of bytes.entries()) {
    // A format starting with "-" would be an option to printf (a PEM key's "-----BEGIN").
    if (i === 0 && byte === 0x2d) out += '\\055';
    else if (byte === 0x25) out += '%%';
    else if (byte === 0x5c) out += '\\\\';
    else if (byte === 0x27) out += `'\\''`;
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else out += `\\${byte.toString(8).padStart(3, '0')}`;
  }
  return `'${out}'`;
}

/**
 * Names sh treats as its own before it looks in PATH: reserved words and the builtins of dash,
 * bash and BusyBox ash. A command that starts with one of them goes through sh.
 */
const SHELL_OWN_NAMES = new Set([
  'if', 'then', 'else', 'elif', 'fi', 'do', 'done', 'case', 'esac', 'while', 'until', 'for', 'in', 'function', 'select', 'time', 'coproc',
  '.', ':', 'alias', 'bg', 'bind', 'break', 'builtin', 'caller', 'cd', 'chdir', 'command', 'compgen', 'complete', 'compopt', 'continue',
  'declare', 'dirs', 'disown', 'echo', 'enable', 'eval', 'exec', 'exit', 'export', 'false', 'fc', 'fg', 'getopts', 'hash', 'help',
  'history', 'jobs', 'kill', 'let', 'local', 'logout', 'mapfile', 'popd', 'printf', 'pushd', 'pwd', 'read', 'readarray', 'readonly',
  'return', 'set', 'shift', 'shopt', 'source', 'suspend', 'test', 'times', 'trap', 'true', 'type', 'typeset', 'ulimit', 'umask',
  'unalias', 'unset', 'wait',
]);

/**
 * The words of a command line that `sh -c` would run as one program with exactly those words,
 * or undefined. It holds only characters that mean nothing to the shell (no quotes, `$`,
 * globs, `~`, redirections, separators or comments), separated by single spaces, and its first
 * word is a path or a name sh looks up in PATH (no assignment, job, reserved word or builtin). Such a
 * command can be run directly, without starting a shell to split it.
 */
export function plainCommandWords(command: string): string[] | undefined {
  if (!PLAIN_WORDS.test(command)) return undefined;
  const words = command.split(' ');
  const first = words[0]!;
  // `%1` names a job in bash.
  if (first.includes('=') || first.startsWith('%') || SHELL_OWN_NAMES.has(first)) return undefined;
  return words;
}

/** A command line as `sh -c` would run it: plain words (a program and its arguments) without starting sh first. */
export function commandLineArgv(command: string): string[] {
  return plainCommandWords(command) ?? ['/bin/sh', '-c', command];
}

/**
 * A `validate` command line (`visudo -cf %`) with each `%` replaced by `path`, quoted; `%%` is a
 * literal `%`.
 */
export function withPathFor(command: string, path: string): string {
  return command.replace(/%%|%/g, (m) => (m === '%%' ? '%' : shellQuote(path)));
}

/** Whether a `validate` command line names the file to check (a `%` that is not `%%`). */
export function namesPath(command: string): boolean {
  return command.replace(/%%/g, '').includes('%');
}
