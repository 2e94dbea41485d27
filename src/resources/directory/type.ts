import { z } from 'zod';
import { sha256Hex } from '../../lib/digest.ts';
import { InputError } from '../../lib/errors.ts';
import { absolutePath, ensurePresence, fileMode, userName } from '../attributes.ts';
import { blame, ResolveError } from '../type.ts';
import { defineType, internal, update } from '../define.ts';

/**
 * One entry of a directory copied from the site (`tree`), as the provider compares it: its kind,
 * a file's content hash, and the mode, owner and group the part asks for (absent: not managed).
 */
export interface TreeEntry {
  type: 'file' | 'directory';
  sha256?: string;
  mode?: string;
  owner?: string;
  group?: string;
}

export const directoryType = defineType({
  name: 'directory',
  key: 'path',
  description: 'A directory; with `source`, a folder of the site copied into it recursively.',
  schema: z.strictObject({
    path: absolutePath.describe('absolute path of the directory'),
    ensure: update(ensurePresence),
    mode: update(fileMode.optional().describe('octal permission bits of the directory (and, with source, of the folders it copies)')),
    owner: update(userName.optional().describe('owner of the directory (and, with source, of everything it copies)')),
    group: update(userName.optional().describe('group of the directory (and, with source, of everything it copies)')),
    parents: z.boolean().default(true).describe('create missing parent directories (default true)'),
    source: z.string().optional().describe('a folder of the site copied recursively into the directory, each file a change of its own'),
    purge: z.boolean().optional().describe('with source: remove what the source does not have (only inside the directory)'),
    template: z.boolean().optional().describe('with source: files ending .eta are rendered with Eta (the same `it` as state files) and written without .eta'),
    vars: z.record(z.string(), z.unknown()).optional().describe("with template: laid over it.vars for this part's templates only"),
    file_mode: fileMode.optional().describe('with source: octal permission bits of the files it copies (default: a new file follows the umask, an existing one keeps its mode)'),
    // Filled by resolve(): what `source` holds, so plans compare without the site.
    tree: internal(update(z.record(z.string(), z.custom<TreeEntry>()).optional().describe('internal: the entries of `source`, by path inside the directory'))),
    tree_content: internal(z.record(z.string(), z.string()).optional().describe('internal: the content of each file of `source` copied as is, base64')),
    // Text, not base64: a value rendered from a secret is found in it, and the node is marked sensitive (DESIGN §4a).
    tree_rendered: internal(z.record(z.string(), z.string()).optional().describe('internal: the content of each template of `source`, rendered')),
  }).refine((a) => a.source !== undefined || (a.purge === undefined && a.template === undefined && a.file_mode === undefined && a.vars === undefined), {
    message: 'purge, template, file_mode and vars go with source (a folder of the site to copy)',
  }).refine((a) => a.source === undefined || a.ensure !== 'absent', { message: 'source goes with ensure: present', path: ['source'] }),
  // Every entry copied is read (a remote target's batched read gives their hashes at once); purge lists the directory with find.
  reads: (a) => ({
    paths: [String(a.path), ...Object.keys((a.tree ?? {}) as Record<string, unknown>).map((rel) => `${String(a.path).replace(/\/+$/, '')}/${rel}`)],
    ...(a.purge === true ? { commands: true } : {}),
  }),
  overlap: 'paths-and-parents',
  stateful: false,
  // Implicit ordering (DESIGN §6): after the folder above it, and its owner and group, when they are in the run.
  autoRequires: [{ attribute: 'path', type: 'directory', parent: true }, { attribute: 'owner', type: 'user' }, { attribute: 'group', type: 'group' }],
  resolve(attributes, ctx) {
    if (typeof attributes.source !== 'string') return attributes;
    const source = attributes.source.replace(/\/+$/, '');
    const vars = attributes.vars as Record<string, unknown> | undefined;
    const managed = (mode: unknown) => ({
      ...(typeof mode === 'string' ? { mode } : {}),
      ...(attributes.owner !== undefined ? { owner: String(attributes.owner) } : {}),
      ...(attributes.group !== undefined ? { group: String(attributes.group) } : {}),
    });
    const tree: Record<string, TreeEntry> = {};
    const content: Record<string, string> = {};
    const renderedText: Record<string, string> = {};
    const made = new Map<string, string>();
    for (const entry of blame('source', () => ctx.readFolder(source))) {
      if (entry.kind === 'directory') {
        tree[entry.path] = { type: 'directory', ...managed(attributes.mode) };
        continue;
      }
      const rendered = attributes.template === true && entry.path.endsWith('.eta') && !entry.path.endsWith('/.eta') && entry.path !== '.eta';
      const rel = rendered ? entry.path.slice(0, -'.eta'.length) : entry.path;
      const earlier = made.get(rel);
      if (earlier !== undefined) {
        throw new ResolveError('source', new InputError([{
          message: `the site folder '${source}' has both ${earlier} and ${entry.path}, which are both ${rel} in the directory`,
          hint: 'remove one of them (a template ends in .eta and is written without it)',
        }]));
      }
      made.set(rel, entry.path);
      const sitePath = `${source}/${entry.path}`;
      let bytes: Buffer;
      if (rendered) {
        renderedText[rel] = blame('source', () => ctx.renderTemplate(sitePath, vars));
        bytes = Buffer.from(renderedText[rel]);
      } else {
        content[rel] = blame('source', () => ctx.readSource(sitePath)).base64;
        bytes = Buffer.from(content[rel], 'base64');
      }
      tree[rel] = { type: 'file', sha256: sha256Hex(bytes), ...managed(attributes.file_mode) };
    }
    return { ...attributes, tree, tree_content: content, ...(Object.keys(renderedText).length ? { tree_rendered: renderedText } : {}) };
  },
});

export default directoryType;
