/**
 * Building blocks of the providers' `shell` traits (ShellProvider, `cairn export`): content as a
 * here-document or base64, and the checks and fixes of a path's mode, owner and group, through
 * the helpers the exported script's prelude defines (src/export/prelude.ts).
 */
import { sha256Hex } from '../lib/digest.ts';
import { shellQuote } from '../lib/shell.ts';

/** Content up to this size with a final newline is compared in the shell itself, with no fork. */
const INLINE_COMPARE_LIMIT = 4096;

const q = shellQuote;

/** Text a here-document can carry as is: valid UTF-8, no NUL, ending in a newline. */
function plainText(bytes: Buffer): boolean {
  if (bytes.length === 0 || bytes[bytes.length - 1] !== 0x0a || bytes.includes(0)) return false;
  return Buffer.from(bytes.toString('utf8'), 'utf8').equals(bytes);
}

/** A here-document delimiter that is no line of `text`. */
function delimiter(text: string): string {
  const lines = new Set(text.split('\n'));
  let n = 0;
  while (lines.has(`CAIRN_EOF${n || ''}`)) n++;
  return `CAIRN_EOF${n || ''}`;
}

/** A command that feeds `bytes` into `consumer` on stdin: a quoted here-document, or base64 decoded. */
export function feed(bytes: Buffer, consumer: string): string {
  if (plainText(bytes)) {
    const text = bytes.toString('utf8');
    const end = delimiter(text);
    return `${consumer} <<'${end}'\n${text}${end}\n`;
  }
  const b64 = (bytes.toString('base64').match(/.{1,76}/g) ?? []).join('\n');
  return `cairn_b64 <<'CAIRN_EOF' | ${consumer}\n${b64}\nCAIRN_EOF\n`;
}

/**
 * A command that writes `bytes` to `path` through `cairn_put` (atomic): small text as an argument
 * (no fork to read it), anything else on stdin.
 */
export function put(path: string, attrs: string, backup: boolean, bytes: Buffer): string {
  const head = `cairn_put ${q(path)} ${attrs} ${backup ? 1 : "''"}`;
  if (bytes.length === 0) return `${head} ''\n`;
  return bytes.length <= INLINE_COMPARE_LIMIT && plainText(bytes) ? `${head} ${q(bytes.toString('utf8'))}\n` : feed(bytes, head);
}

/**
 * A command that stages `bytes` for `path` (`cairn_stage`, the export's staged writes): the new
 * file goes into its folder's stage FOLDER, and the group's commit renames it into place.
 */
export function stagePut(folder: number, path: string, attrs: string, bytes: Buffer): string {
  const head = `cairn_stage ${folder} ${q(path)} ${attrs}`;
  if (bytes.length === 0) return `${head} ''\n`;
  if (!plainText(bytes)) {
    // Decoded by cairn_stage itself: a pipe would stage in a subshell.
    const b64 = (bytes.toString('base64').match(/.{1,76}/g) ?? []).join('\n');
    return `cairn_stage64 ${folder} ${q(path)} ${attrs} <<'CAIRN_EOF'\n${b64}\nCAIRN_EOF\n`;
  }
  return bytes.length <= INLINE_COMPARE_LIMIT ? `${head} ${q(bytes.toString('utf8'))}\n` : feed(bytes, head);
}

/** A command that prints a unified diff from `path` to `bytes` (`cairn_diff`, for --diff). */
export function diffTo(path: string, bytes: Buffer): string {
  return bytes.length <= INLINE_COMPARE_LIMIT && plainText(bytes) ? `cairn_diff ${q(path)} ${q(bytes.toString('utf8'))}` : feed(bytes, `cairn_diff ${q(path)}`);
}

/** `bytes` as the one word a helper compares in the shell itself (cairn_file_is), if it can be. */
export function inlineText(bytes: Buffer): string | undefined {
  return bytes.length <= INLINE_COMPARE_LIMIT && plainText(bytes) ? q(bytes.toString('utf8')) : undefined;
}

/** A command that returns 0 when `path` is a regular file holding exactly `bytes`. */
export function holds(path: string, bytes: Buffer): string {
  if (bytes.length <= INLINE_COMPARE_LIMIT && plainText(bytes)) return `cairn_file_is ${q(path)} ${q(bytes.toString('utf8'))}`;
  if (bytes.length === 0) return `{ [ -f ${q(path)} ] && [ ! -L ${q(path)} ] && [ ! -s ${q(path)} ]; }`;
  return `cairn_sha256_is ${q(path)} ${sha256Hex(bytes)}`;
}

/** The four words `cairn_attrs_ok` / `cairn_attrs` / `cairn_put` take after the path. */
export function attrWords(a: { mode?: unknown; owner?: unknown; group?: unknown }): string {
  const word = (v: unknown) => (v === undefined || v === null ? "''" : q(String(v)));
  return `${word(a.mode)} ${word(a.owner)} ${word(a.group)}`;
}

export function managesAttrs(a: { mode?: unknown; owner?: unknown; group?: unknown }): boolean {
  return a.mode !== undefined || a.owner !== undefined || a.group !== undefined;
}

/** `validate` with each `%` (not `%%`) the temp file, `$1` of the `sh -c` that cairn_put runs it in. */
export function validateCommand(command: string): string {
  return command.replace(/%%|%/g, (m) => (m === '%%' ? '%' : '"$1"'));
}

export { q as quote };
