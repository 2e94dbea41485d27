/**
 * `cairn secret keygen | encrypt | decrypt` (DESIGN §4a). Recipients come from the site's
 * secrets.yaml:
 *
 *     admins: [age1…]          # every secret is also encrypted to these (the operators)
 *     recipients:
 *       web: [age1…]           # a group's or target's public keys
 *       db1: age1…
 */
import { chmodSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
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

/** Every group's and target's keys and the admins': whom a secret every target may use is for. */
function everyRecipient(site: string): string[] {
  const text = readFileSync(join(resolve(site), 'secrets.yaml'), 'utf8');
  const lines = new LineIndex(text);
  const doc = parseYaml(text, (offset, length) => ({ file: 'secrets.yaml', ...lines.lineCol(offset), length }), 'secrets.yaml');
  const map = (doc && typeof doc === 'object' ? doc : {}) as Record<string, unknown>;
  const recipients = (map.recipients && typeof map.recipients === 'object' ? map.recipients : {}) as Record<string, unknown>;
  return [...new Set([...Object.entries(recipients).flatMap(([name, keys]) => asKeys(keys, name)), ...asKeys(map.admins, 'admins')])];
}

/**
 * Whom a `!secret` is for follows from where it stands, as the targets that can use it do:
 * `vars/targets/T.yaml` and `targets: {T: {vars}}` → T; `vars/groups/G.yaml` and
 * `groups: {G: {vars}}` → G; anywhere else (vars/all.yaml, the site's or a role's or a
 * component's vars) → every target, so every recipient.
 */
function scopeOf(file: string, path: readonly (string | number)[]): string | undefined {
  const stem = /^vars\/(targets|groups)\/([^/]+)\.ya?ml$/.exec(file);
  if (stem) return stem[2];
  if ((file === 'cairn.yaml' || file === 'cairn.yml' || file === 'inventory.yaml' || file === 'inventory.yml')
    && (path[0] === 'targets' || path[0] === 'groups') && typeof path[1] === 'string' && path[2] === 'vars') return path[1];
  return undefined;
}

/** The site's YAML files that may hold vars, relative to the site. */
function varsFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const rel = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (!entry.name.startsWith('.') && entry.name !== 'node_modules') walk(rel);
      } else if (/\.ya?ml$/.test(entry.name) && rel !== 'secrets.yaml') out.push(rel);
    }
  };
  walk('');
  return out.sort();
}

/**
 * `cairn secret rekey`: every `!secret` of the site, decrypted with the operator's identity and
 * encrypted again to the recipients secrets.yaml lists now for where it stands (scopeOf); each
 * file is rewritten in place (comments and layout kept), atomically. Run after adding a target's
 * key, or removing one (then change the secrets too: a removed key may have kept a copy).
 */
export async function rekey(options: { site: string }): Promise<number> {
  const { isPair, isScalar, parseDocument, visit } = await import('yaml');
  const root = resolve(options.site);
  const everyone = everyRecipient(root);
  const ids = identities();
  const secretTag = { tag: '!secret', resolve: (s: string) => s };
  let count = 0;
  const rewritten: { abs: string; text: string }[] = [];
  for (const file of varsFiles(root)) {
    const abs = join(root, file);
    const text = readFileSync(abs, 'utf8');
    if (!text.includes('!secret')) continue;
    const doc = parseDocument(text, { customTags: [secretTag], keepSourceTokens: false });
    const found: { node: { value: unknown; type?: string }; recipients: string[] }[] = [];
    visit(doc, {
      Scalar(_key, node, ancestors) {
        if (node.tag !== '!secret') return;
        const path = ancestors.filter(isPair).map((p) => (isScalar(p.key) ? (p.key.value as string | number) : ''));
        const scope = scopeOf(file, path);
        found.push({ node: node as { value: unknown; type?: string }, recipients: scope === undefined ? everyone : recipientsFor(root, scope) });
      },
    });
    for (const { node, recipients } of found) {
      let plain: string;
      try {
        plain = await decryptText(String(node.value), ids);
      } catch (err) {
        throw inputError(`secret rekey: ${file}: a !secret this identity cannot open: ${(err as Error).message}`);
      }
      node.value = `${(await encryptText(plain, recipients)).trimEnd()}\n`;
      node.type = 'BLOCK_LITERAL';
      count++;
    }
    rewritten.push({ abs, text: doc.toString() });
  }
  // Written only once every secret opened: a file this identity cannot open leaves all as they were.
  for (const { abs, text } of rewritten) {
    // Atomic: a temp file beside it, renamed over it; a crash leaves the old file whole.
    const temp = join(dirname(abs), `.${basename(abs)}.cairn-rekey.${process.pid}`);
    writeFileSync(temp, text, { mode: statSync(abs).mode & 0o777 });
    renameSync(temp, abs);
  }
  writeOut(`rekeyed ${count} secret${count === 1 ? '' : 's'}\n`);
  return 0;
}
