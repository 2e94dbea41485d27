import { z } from 'zod';
import { namesPath } from '../../lib/shell.ts';
import { absolutePath, ensurePresence, fileMode, userName } from '../attributes.ts';
import { blame } from '../type.ts';
import { defineType, internal, update } from '../define.ts';

export const fileType = defineType({
  name: 'file',
  key: 'path',
  description: 'A regular file with content given inline, from a template, or copied from the site.',
  schema: z
    .strictObject({
      path: absolutePath.describe('absolute path of the file'),
      ensure: update(ensurePresence),
      content: update(z.string().optional().describe('the exact content')),
      template: z.string().optional().describe('a site path rendered with Eta, with the same `it` as state files'),
      source: z.string().optional().describe('a site path copied as is'),
      vars: z.record(z.string(), z.unknown()).optional().describe("laid over it.vars for this part's template only"),
      mode: update(fileMode.optional()),
      owner: update(userName.optional()),
      group: update(userName.optional()),
      backup: z.boolean().optional().describe('keep the old content beside it as <path>.cairn-bak'),
      validate: z.string().min(1)
        .refine(namesPath, 'a validate command names the file to check as % (e.g. "visudo -cf %"; %% is a literal %)')
        .optional()
        .describe('a command run on the new content before it replaces the old (% is the temp file); non-zero leaves the old file'),
      sensitive: z.boolean().optional().describe('true: the content is never shown; false: shown in diffs even when the file is not readable by others'),
      // Filled by resolve(): what `source` holds, so plans compare content without the site.
      source_base64: internal(z.string().optional().describe('internal: the content of `source`')),
      content_sha256: internal(update(z.string().optional().describe('internal: sha256 of the content of `source`'))),
    })
    .refine(
      (a) => [a.content, a.template, a.source].filter((v) => v !== undefined).length <= 1,
      { message: 'give only one of content, template and source' },
    ),
  // A backup is written beside the file: it is one of the paths the node acts on.
  reads: (a) => ({ paths: a.backup === true ? [String(a.path), `${String(a.path)}.cairn-bak`] : [String(a.path)] }),
  overlap: 'paths',
  stateful: false,
  // Implicit ordering (DESIGN §6): after the folder above it, and its owner and group, when they are in the run.
  autoRequires: [{ attribute: 'path', type: 'directory', parent: true }, { attribute: 'owner', type: 'user' }, { attribute: 'group', type: 'group' }],
  hiddenWhenSensitive: ['content', 'source_base64'],
  resolve(attributes, ctx) {
    const resolved = { ...attributes };
    if (typeof attributes.template === 'string') {
      const template = attributes.template;
      resolved.content = blame('template', () => ctx.renderTemplate(template, attributes.vars as Record<string, unknown> | undefined));
    } else if (typeof attributes.source === 'string') {
      const source = attributes.source;
      const { base64, sha256 } = blame('source', () => ctx.readSource(source));
      resolved.source_base64 = base64;
      resolved.content_sha256 = sha256;
    }
    return resolved;
  },
});

export default fileType;
