import { dirname } from 'node:path';
import { createTwoFilesPatch } from 'diff';
import { sha256Hex } from '../../lib/digest.ts';
import { VALIDATE_FAILED, type WriteOptions } from '../../executors/types.ts';
import { hiddenContentDiff } from '../../lib/hidden-diff.ts';
import { outputTail } from '../commands.ts';
import { attributeDiff, convergeAttributes, pathAttributes, readPath, refuseOtherKind } from '../posix.ts';
import { defineProvider, ApplyError, type ProviderContext, type Desired } from '../type.ts';
import type { fileType } from './type.ts';
import { attrWords, diffTo, holds, inlineText, managesAttrs, put, quote as q, stagePut, validateCommand } from '../shell-fragments.ts';

type FileAttributes = Desired<typeof fileType>;

/** The bytes a file part wants, or undefined when it does not manage content. */
export function desiredBytes(desired: FileAttributes): Buffer | undefined {
  if (typeof desired.content === 'string') return Buffer.from(desired.content);
  if (typeof desired.source_base64 === 'string') return Buffer.from(desired.source_base64, 'base64');
  return undefined;
}

async function write(ctx: ProviderContext, path: string, bytes: Buffer, opts: WriteOptions) {
  try {
    await ctx.exec.writeFile(path, bytes, opts);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === VALIDATE_FAILED) {
      throw new ApplyError(`validate refused the new content (${path} left as it was): ${opts.validate ?? ''}\n${outputTail((err as Error).message, 12)}`);
    }
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new ApplyError(`the directory ${dirname(path)} does not exist (declare it with a directory part and require it)`);
    }
    throw err;
  }
}

export const posixFile = defineProvider<typeof fileType>({
  type: 'file',
  name: 'posix',
  suitable: () => true,

  async read(ctx, desired) {
    const { current, stat } = await readPath(ctx, desired, 'file');
    if (!current || !stat) return current;
    const path = desired.path;
    // Not readable by others: its content is treated as sensitive (see diff).
    if ((stat.mode & 0o004) === 0) current.private = true;
    // Content is compared by hash where reading costs more than hashing (a remote target sends a
    // hash, not the file), else byte for byte; the bytes are fetched only when they differ (for
    // the diff).
    if (typeof desired.content === 'string') {
      const bytes = Buffer.from(desired.content);
      const same = ctx.exec.holds ? await ctx.exec.holds(path, bytes)
        : await ctx.exec.sha256(path) === sha256Hex(bytes);
      if (same) current.content = desired.content;
      else current.content = (await ctx.exec.readFile(path))?.toString('utf8');
    } else if (desired.content_sha256 !== undefined) {
      current.content_sha256 = await ctx.exec.sha256(path);
    }
    return current;
  },

  async apply(ctx, action, desired, current) {
    const path = desired.path;
    refuseOtherKind(current, path, 'file', action);
    if (action === 'destroy') {
      await ctx.exec.remove(path);
      return;
    }
    const attributes: WriteOptions = { ...pathAttributes(desired), ...(desired.validate !== undefined ? { validate: desired.validate } : {}) };
    const bytes = desiredBytes(desired);
    const contentChanged = !current || ('content' in current && current.content !== desired.content) ||
      ('content_sha256' in current && current.content_sha256 !== desired.content_sha256);
    if (bytes !== undefined && contentChanged) {
      if (desired.backup === true && current) {
        const old = await ctx.exec.readFile(path);
        // The old content is as private as the file it comes from: the backup (and its temp
        // file, which is never more open) takes the file's mode, owner and group.
        const stat = old && await ctx.exec.stat(path);
        if (old && stat) await ctx.exec.writeFile(`${path}.cairn-bak`, old, { mode: stat.mode, owner: String(stat.uid), group: String(stat.gid) });
      }
      await write(ctx, path, bytes, attributes);
      return;
    }
    if (!current) {
      await write(ctx, path, Buffer.alloc(0), attributes);
      return;
    }
    await convergeAttributes(ctx, path, desired, current);
  },

  diff(desired, current) {
    const attributes = attributeDiff(desired, current);
    const before = typeof current?.content === 'string' ? current.content : '';
    if (typeof desired.content !== 'string' || before === desired.content) return attributes;
    // A file others may not read (as it is, or as the part wants it) holds what its owner keeps
    // to itself: its content is sensitive (DESIGN §5.13) unless the part says `sensitive: false`.
    const wantedPrivate = desired.mode !== undefined && (parseInt(String(desired.mode), 8) & 0o004) === 0;
    if (desired.sensitive !== false && (wantedPrivate || current?.private === true)) {
      const hidden = hiddenContentDiff(before, desired.content);
      return attributes ? `${attributes}\n${hidden}` : hidden;
    }
    const path = desired.path;
    const patch = createTwoFilesPatch(current ? path : '/dev/null', path, before, desired.content, undefined, undefined, { context: 3 });
    return attributes ? `${attributes}\n${patch}` : patch;
  },

  shell: {
    check(desired) {
      const p = q(desired.path);
      if (desired.ensure === 'absent') return `[ ! -e ${p} ] && [ ! -L ${p} ]`;
      const bytes = desiredBytes(desired);
      const kind = bytes !== undefined ? holds(desired.path, bytes) : `{ [ -f ${p} ] && [ ! -L ${p} ]; }`;
      return managesAttrs(desired) ? `${kind} && cairn_attrs_ok ${p} ${attrWords(desired)}` : kind;
    },
    exists: (desired) => `[ -e ${q(desired.path)} ] || [ -L ${q(desired.path)} ]`,
    // A validate command is a command.
    ownPath: (desired) => desired.validate === undefined,
    apply(desired, action) {
      const p = q(desired.path);
      const otherKind = `cairn_other ${p} file ${q(action === 'destroy' ? 'not removing it' : 'remove it first')} || return 1\n`;
      if (action === 'destroy') return `${otherKind}rm -f ${p}`;
      const bytes = desiredBytes(desired);
      const validate = desired.validate !== undefined ? `cairn_validate=${q(validateCommand(desired.validate))}\n` : '';
      if (bytes !== undefined) {
        return `${otherKind}if ${holds(desired.path, bytes)}; then cairn_attrs ${p} ${attrWords(desired)}; return; fi\n${validate}${put(desired.path, attrWords(desired), desired.backup === true, bytes)}`;
      }
      return `${otherKind}if [ -f ${p} ]; then cairn_attrs ${p} ${attrWords(desired)}; return; fi\n${validate}${put(desired.path, attrWords(desired), false, Buffer.alloc(0))}`;
    },
    diff(desired) {
      const bytes = desiredBytes(desired);
      return bytes === undefined || desired.ensure === 'absent' ? ':' : diffTo(desired.path, bytes);
    },
    // Content written whole, with no validate command to run and no backup to keep, can wait in
    // its folder's stage for the group's commit. A path with a newline stays out (the commit
    // splits its lists of names on newlines).
    stage(desired, ids) {
      const bytes = desiredBytes(desired);
      if (desired.ensure === 'absent' || bytes === undefined || desired.validate !== undefined || desired.backup === true || desired.path.includes('\n')) return undefined;
      const p = q(desired.path);
      const folder = dirname(desired.path);
      const text = inlineText(bytes);
      const fast = text !== undefined && !managesAttrs(desired);
      return {
        path: desired.path,
        folder,
        // Small text, no mode or owner: the prelude's cairn_tf stages it where nothing was.
        ...(fast ? { turn: (node: number) => `cairn_tf ${node} ${ids.folder(folder)} ${p} ${text}` } : {}),
        apply: `cairn_other ${p} file 'remove it first' || return 1\nif ${holds(desired.path, bytes)}; then cairn_attrs ${p} ${attrWords(desired)}; return; fi\n${stagePut(ids.folder(folder), desired.path, attrWords(desired), bytes)}`,
      };
    },
  },
});
