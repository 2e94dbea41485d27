/**
 * The one place that builds POSIX shell text (DESIGN §6): providers pass argument arrays, and
 * executors that must go through a remote `sh` turn them into words here.
 */

/** One shell word that stands for exactly `value` (any bytes but NUL). */
export function shellQuote(value: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A command line that runs `argv` as is. */
export function shellCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}

/**
 * A `printf` format that prints exactly `bytes`, NUL and all, with nothing but the shell's
 * builtin printf: `%` and `\` escaped, control and non-ASCII bytes as octal escapes, quoted.
 */
export function printfFormat(bytes: Buffer): string {
  let out = '';
  for (const byte of bytes) {
    if (byte === 0x25) out += '%%';
    else if (byte === 0x5c) out += '\\\\';
    else if (byte === 0x27) out += `'\\''`;
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else out += `\\${byte.toString(8).padStart(3, '0')}`;
  }
  return `'${out}'`;
}
