/**
 * `cairn secret keygen | encrypt | decrypt` (DESIGN §4a). Recipients come from the site's
 * secrets.yaml:
 *
 *     admins: [age1…]          # every secret is also encrypted to these (the operators)
 *     recipients:
 *       web: [age1…]           # a group's or target's public keys
 *       db1: age1…
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { decryptText, encryptText, KEY_FILE_VARIABLE, readIdentities, secretsIn } from '../catalog/secrets.ts';
import { inputError } from '../lib/errors.ts';
import { LineIndex } from '../lib/positions.ts';
import { isSecretValue } from '../lib/secret-value.ts';
import { parseYaml } from '../site/yaml.ts';
import { writeOut } from './output.ts';

export async function keygen(options: { out?: string }): Promise<number> {
  const { generateX25519Identity, identityToRecipient } = await import('age-encryption');
  const identity = await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  const text = `# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`;
  if (options.out) {
    try {
      // 'wx': an existing key is never overwritten; 0600: only its owner may read it.
      writeFileSync(options.out, text, { flag: 'wx', mode: 0o600 });
      chmodSync(options.out, 0o600);
    } catch (err) {
      throw inputError(`secret keygen: cannot write ${options.out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    writeOut(`public key: ${recipient}\n`);
  } else writeOut(text);
  return 0;
}

function asKeys(v: unknown, what: string): string[] {
  const keys = v === undefined || v === null ? [] : Array.isArray(v) ? v : [v];
  for (const k of keys) {
    if (typeof k !== 'string' || !k.startsWith('age1')) throw inputError(`secrets.yaml: ${what}: expected age public keys (age1…), found ${JSON.stringify(k)}`);
  }
  return keys as string[];
}

/** The recipients of a secret for `name`: its keys in secrets.yaml, then the admins'. */
export function recipientsFor(site: string, name: string): string[] {
  const file = join(resolve(site), 'secrets.yaml');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw inputError(`secret encrypt: no ${file}`, undefined, 'it maps targets and groups to their age public keys (recipients:) and lists the admins\' (admins:)');
  }
  const lines = new LineIndex(text);
  const doc = parseYaml(text, (offset, length) => ({ file: 'secrets.yaml', ...lines.lineCol(offset), length }), 'secrets.yaml');
  const map = (doc && typeof doc === 'object' ? doc : {}) as Record<string, unknown>;
  const recipients = (map.recipients && typeof map.recipients === 'object' ? map.recipients : {}) as Record<string, unknown>;
  if (!(name in recipients)) {
    throw inputError(`secret encrypt: secrets.yaml has no recipients for '${name}'`, undefined, `known: ${Object.keys(recipients).join(', ') || '(none)'}`);
  }
  return [...new Set([...asKeys(recipients[name], name), ...asKeys(map.admins, 'admins')])];
}

export async function encrypt(options: { site: string; for: string }, value: string | undefined): Promise<number> {
  const plain = value ?? readFileSync(0, 'utf8').replace(/\n$/, '');
  const armored = await encryptText(plain, recipientsFor(options.site, options.for));
  writeOut(`!secret |\n${armored.trimEnd().split('\n').map((l) => `  ${l}`).join('\n')}\n`);
  return 0;
}

function identities(): string[] {
  const keyFile = process.env[KEY_FILE_VARIABLE];
  if (!keyFile) throw inputError(`secret decrypt: ${KEY_FILE_VARIABLE} is not set`);
  try {
    return readIdentities(keyFile);
  } catch (err) {
    throw inputError(`secret decrypt: cannot read ${keyFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** `FILE:LINE` (the line of the value or of its key), or the `!secret` YAML or armored text on stdin. */
export async function decrypt(where: string | undefined): Promise<number> {
  let ciphertext: string;
  if (where) {
    const m = /^(.*):(\d+)$/.exec(where);
    if (!m) throw inputError(`secret decrypt: expected FILE:LINE, found '${where}'`);
    const [, file, lineText] = m;
    const line = Number(lineText);
    let text: string;
    try {
      text = readFileSync(file!, 'utf8');
    } catch (err) {
      throw inputError(`secret decrypt: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const lines = new LineIndex(text);
    const found = secretsIn(parseYaml(text, (offset, length) => ({ file: file!, ...lines.lineCol(offset), length })))
      // A block scalar's text starts on the line after its key.
      .find((s) => s.pos && (s.pos.line === line || s.pos.line === line + 1));
    if (!found) throw inputError(`secret decrypt: no !secret at ${file}:${line}`);
    ciphertext = found.ciphertext;
  } else {
    const text = readFileSync(0, 'utf8');
    const parsed = text.trimStart().startsWith('!secret') ? parseYaml(text, (offset, length) => ({ file: '<stdin>', line: 1, col: offset + 1, length })) : text;
    ciphertext = isSecretValue(parsed) ? parsed.ciphertext : String(parsed);
  }
  try {
    writeOut(`${await decryptText(ciphertext, identities())}\n`);
  } catch (err) {
    throw inputError(`secret decrypt: ${(err as Error).message}`);
  }
  return 0;
}
