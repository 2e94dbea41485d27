/**
 * One key in `~user/.ssh/authorized_keys`, the home taken from the run's batched reading of the
 * user database. The file is read once per user per run (every key of that user shares the
 * reading); a change writes it atomically, keeping its mode and owner, or creates it 0600 (and
 * `~/.ssh` 0700) owned by the user and the user's primary group.
 */
import { dirname } from 'node:path';
import { shellCommand } from '../../lib/shell.ts';
import type { Stat } from '../../executors/types.ts';
import { readAccounts, type PasswdEntry } from '../accounts.ts';
import { defineProvider, ApplyError, type ProviderContext, type Desired } from '../type.ts';
import type { authorizedKeyType } from './type.ts';
import { dropKey, findKey, keyLineOf, parseKeyLine, putKey } from './keys.ts';

type AuthorizedKeyAttributes = Desired<typeof authorizedKeyType>;

interface KeyFile {
  entry?: PasswdEntry;
  path?: string;
  text?: string;
  stat?: Stat;
}

function keyFile(ctx: ProviderContext, user: string): Promise<KeyFile> {
  return ctx.batch(`authorized_keys:${user}`, async () => {
    const entry = (await readAccounts(ctx)).users.get(user);
    if (!entry) return {};
    const path = `${entry.home.replace(/\/+$/, '')}/.ssh/authorized_keys`;
    const [bytes, stat] = await Promise.all([ctx.exec.readFile(path), ctx.exec.stat(path)]);
    return { entry, path, ...(bytes ? { text: bytes.toString('utf8') } : {}), ...(stat ? { stat } : {}) };
  });
}

function identity(desired: AuthorizedKeyAttributes): { type: string; body: string } {
  const key = parseKeyLine(desired.key);
  if (!key || key.options !== undefined) throw new ApplyError(`not a public key line: ${desired.key.slice(0, 40)}`);
  return key;
}

async function ensureSshDir(ctx: ProviderContext, entry: PasswdEntry, dir: string): Promise<void> {
  if (await ctx.exec.stat(dir)) return;
  try {
    await ctx.exec.mkdir(dir, { mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ApplyError(`the home of ${entry.name}, ${dirname(dir)}, does not exist`);
    throw err;
  }
  await ctx.exec.chown(dir, String(entry.uid), String(entry.gid));
}

export const sshAuthorizedKey = defineProvider<typeof authorizedKeyType>({
  type: 'authorized_key',
  name: 'openssh',
  suitable: () => true,

  // The key is known by its type and body; the file is edited atomically, its other lines kept
  // (resources/shell-prelude.ts: cairn_key_is, cairn_authorized_key).
  shell: {
    check(desired) {
      const { type, body } = identity(desired);
      const args = [desired.user, type, body, ...(typeof desired.options === 'string' ? [desired.options] : [])];
      const test = shellCommand(['cairn_key_is', ...args]);
      return desired.ensure === 'absent' ? `! ${test}` : test;
    },
    apply(desired) {
      const { type, body } = identity(desired);
      const line = desired.ensure === 'absent' ? [] : [keyLineOf(desired.key, typeof desired.options === 'string' ? desired.options : undefined)];
      return shellCommand(['cairn_authorized_key', desired.user, type, body, ...line]);
    },
  },

  async read(ctx, desired) {
    const { type, body } = identity(desired);
    const file = await keyFile(ctx, desired.user);
    const found = file.text === undefined ? undefined : findKey(file.text, type, body);
    if (!found) return undefined;
    return {
      key: desired.key, user: desired.user, ensure: 'present',
      ...(desired.options !== undefined ? { options: found.options ?? '' } : {}),
    };
  },

  async apply(ctx, action, desired) {
    const user = desired.user;
    const { type, body } = identity(desired);
    const file = await keyFile(ctx, user);
    if (!file.entry || !file.path) {
      if (action === 'destroy') return;
      throw new ApplyError(`no such user: ${user}`);
    }
    const before = file.text ?? '';
    const after = action === 'destroy'
      ? dropKey(before, type, body)
      : putKey(before, keyLineOf(desired.key, typeof desired.options === 'string' ? desired.options : undefined), type, body);
    if (file.stat && file.stat.type !== 'file') throw new ApplyError(`${file.path} is a ${file.stat.type}, not a file; not editing it`);
    if (file.stat) {
      await ctx.exec.writeFile(file.path, after, { mode: file.stat.mode, owner: String(file.stat.uid), group: String(file.stat.gid) });
      return;
    }
    await ensureSshDir(ctx, file.entry, dirname(file.path));
    await ctx.exec.writeFile(file.path, after, { mode: 0o600, owner: String(file.entry.uid), group: String(file.entry.gid) });
  },
});
