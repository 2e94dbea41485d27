/**
 * Lines of an OpenSSH authorized_keys file (sshd(8), "AUTHORIZED_KEYS FILE FORMAT"):
 * `[options] keytype base64-key [comment]`, options being comma-separated and possibly quoted
 * (`command="echo a b",no-pty`). A key is known by its type and body; its comment is not part of
 * its identity. Editing touches only the lines of that key; every other line stays as it was.
 */

export interface KeyLine {
  /** The options prefix as written, or undefined when the line has none. */
  options?: string;
  type: string;
  body: string;
  comment?: string;
}

const KEY_TYPE = /^(?:ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+|[a-z0-9-]+-cert-v0\d@openssh\.com)$/;
const KEY_BODY = /^[A-Za-z0-9+/]+={0,3}$/;

/** Type, body and comment from `rest` when it starts with a key, else undefined. */
function keyAt(rest: string): Omit<KeyLine, 'options'> | undefined {
  const m = /^(\S+)\s+(\S+)(?:\s+(.*))?$/.exec(rest.trim());
  if (!m || !KEY_TYPE.test(m[1]!) || !KEY_BODY.test(m[2]!)) return undefined;
  const comment = m[3]?.trim();
  return { type: m[1]!, body: m[2]!, ...(comment ? { comment } : {}) };
}

/** The options prefix: up to the first white space outside double quotes (`\"` escapes a quote). */
function optionsPrefix(line: string): { options: string; rest: string } | undefined {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (!quoted && (c === ' ' || c === '\t')) return { options: line.slice(0, i), rest: line.slice(i) };
  }
  return undefined;
}

/** A line's key, or undefined for blank lines, comments and lines that hold no key. */
export function parseKeyLine(line: string): KeyLine | undefined {
  const text = line.trim();
  if (text === '' || text.startsWith('#')) return undefined;
  const plain = keyAt(text);
  if (plain) return plain;
  const split = optionsPrefix(text);
  const key = split && keyAt(split.rest);
  return key && { options: split.options, ...key };
}

function sameKey(line: string, type: string, body: string): boolean {
  const k = parseKeyLine(line);
  return k !== undefined && k.type === type && k.body === body;
}

/** The first line holding the key (type + body), if any. */
export function findKey(text: string, type: string, body: string): KeyLine | undefined {
  for (const line of text.split('\n')) {
    if (sameKey(line, type, body)) return parseKeyLine(line);
  }
  return undefined;
}

/** `text` with `line` in place of the key's first line, or appended (on a line of its own) when the key is not there. */
export function putKey(text: string, line: string, type: string, body: string): string {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => sameKey(l, type, body));
  if (i >= 0) {
    lines[i] = line;
    return lines.join('\n');
  }
  const base = text === '' || text.endsWith('\n') ? text : `${text}\n`;
  return `${base}${line}\n`;
}

/** `text` without any line holding the key. */
export function dropKey(text: string, type: string, body: string): string {
  return text.split('\n').filter((l) => !sameKey(l, type, body)).join('\n');
}

/** The line a part writes: its options, then its key as given (comment included). */
export function keyLineOf(key: string, options: string | undefined): string {
  return options ? `${options} ${key.trim()}` : key.trim();
}
