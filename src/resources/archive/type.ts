import { z } from 'zod';
import { absolutePath, ensurePresence, fileMode, userName } from '../attributes.ts';
import { blame } from '../type.ts';
import { defineType, internal, update } from '../define.ts';
import { inputError } from '../../lib/errors.ts';
import { ARCHIVE_FORMATS, formatOf, isDownload } from './formats.ts';

const sha256 = z.string().regex(/^[0-9a-fA-F]{64}$/, 'a sha256 is 64 hex digits').transform((s) => s.toLowerCase());

export const archiveType = defineType({
  name: 'archive',
  key: 'path',
  description:
    'An archive (tar.gz, tgz, tar.xz, tar.bz2, tar, zip) unpacked into a folder: downloaded by the target itself ' +
    '(HTTP or HTTPS, checked against a required sha256) or sent from the site. The folder is replaced as a whole ' +
    'when the archive changes.',
  schema: z
    .strictObject({
      path: absolutePath.describe('the folder the archive is unpacked into (it holds nothing else)'),
      ensure: update(ensurePresence),
      source: z.string().min(1).optional().describe('an http(s):// URL the target downloads, or a site file sent to it'),
      sha256: update(sha256.optional().describe('the archive\'s sha256 (required for a download)')),
      format: update(z.enum(ARCHIVE_FORMATS).optional().describe(`${ARCHIVE_FORMATS.join(', ')}; default: from the source's name`)),
      strip_components: update(z.number().int().nonnegative().default(0).describe('leading folders dropped from each path (as tar --strip-components)')),
      creates: z.string().optional().describe('a path: nothing is done while it exists'),
      mode: update(fileMode.optional().describe('the mode of the folder itself')),
      owner: update(userName.optional().describe('owner of everything unpacked (chown -R)')),
      group: update(userName.optional().describe('group of everything unpacked (chown -R)')),
      // Filled by resolve(): a site file's bytes, so a run ships them without the site.
      source_base64: internal(z.string().optional().describe('internal: the content of a site file `source`')),
    })
    .refine((a) => a.ensure === 'absent' || a.source !== undefined, { message: 'source is required', path: ['source'] })
    // Reported at the part, not at a `sha256` key that is not there (that would say only "is required").
    .refine((a) => a.source === undefined || !isDownload(a.source) || a.sha256 !== undefined, {
      message: 'a download needs its sha256 (the target checks what it downloaded against it): add sha256: <64 hex digits>',
    }),
  reads: (a) => ({
    paths: [String(a.path), `${String(a.path)}/.cairn-archive`, ...(typeof a.creates === 'string' ? [a.creates] : [])],
  }),
  stateful: false,
  resolve(attributes, ctx) {
    const resolved = { ...attributes };
    const source = attributes.source;
    if (attributes.ensure === 'absent' || typeof source !== 'string') return resolved;
    if (!isDownload(source)) {
      const { base64, sha256: actual } = blame('source', () => ctx.readSource(source));
      if (attributes.sha256 !== undefined && attributes.sha256 !== actual) {
        blame('sha256', () => {
          throw inputError(`the site file '${source}' has sha256 ${actual}, not ${String(attributes.sha256)}`);
        });
      }
      resolved.source_base64 = base64;
      resolved.sha256 = actual;
    }
    if (attributes.format === undefined) {
      resolved.format = blame('source', () => {
        const format = formatOf(source);
        if (!format) throw inputError(`cannot tell the archive format of '${source}' from its name: add format: ${ARCHIVE_FORMATS.join(' | ')}`);
        return format;
      });
    }
    return resolved;
  },
});

export default archiveType;
