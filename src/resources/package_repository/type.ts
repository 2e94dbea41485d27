import { z } from 'zod';
import { ensurePresence } from '../attributes.ts';
import { InputError } from '../../lib/errors.ts';
import { blame, ResolveError } from '../type.ts';
import { defineType, internal, update } from '../define.ts';
import { isKeyUrl, keyFileName, repositoryPaths } from './paths.ts';

/** One word or a list of them (`suites: bookworm` or `suites: [bookworm, bookworm-updates]`). */
const words = (what: string) => z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : [v]))
  .refine((list) => list.every((w) => /^[^\s#]+$/.test(w)), `each of ${what} is one word (no spaces or "#")`);

export const packageRepositoryType = defineType({
  name: 'package_repository',
  key: 'name',
  description:
    'A repository the package manager installs from: apt a deb822 /etc/apt/sources.list.d/<name>.sources with its ' +
    'key in /etc/apt/keyrings, dnf a /etc/yum.repos.d/<name>.repo with its key in /etc/pki/rpm-gpg, apk a line in ' +
    '/etc/apk/repositories with its key in /etc/apk/keys. A change makes the next package install on the target ' +
    'refresh the package index first.',
  schema: z
    .strictObject({
      name: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a repository name is letters, digits, ".", "_" and "-" (it names files)')
        .describe('the repository, by a name of its own (file names and the dnf repository id)'),
      ensure: update(ensurePresence),
      uri: update(z
        .string()
        .regex(/^[a-z][a-z0-9+.-]*:[^\s#]+$/, 'a repository URI such as https://deb.example.org/debian (no spaces)')
        .optional()
        .describe('where the repository is: apt URIs, dnf baseurl, the apk repositories line (required unless absent)')),
      suites: update(words('suites').optional().describe('apt: the suites (bookworm, or ./ for a flat repository)')),
      components: update(words('components').default([]).describe('apt: the components (main, contrib); none for a flat repository')),
      architectures: update(words('architectures').default([]).describe('apt: only these architectures (amd64); default: all of the host\'s')),
      description: update(z.string().regex(/^[^\r\n]*$/, 'a description is one line').optional().describe('dnf: the repository\'s name= (default: its name)')),
      enabled: update(z.boolean().default(true).describe('false: keep the repository written but disabled')),
      gpgcheck: update(z.boolean().default(true).describe('check signatures (false: apt Trusted: yes, dnf gpgcheck=0; apk always checks)')),
      key: z
        .string()
        .min(1)
        .refine((k) => !/^[a-z][a-z0-9+.-]*:\/\//.test(k) || isKeyUrl(k), 'a key URL is http:// or https://')
        .optional()
        .describe('the signing key: a site path (keys/example.asc), or an http(s) URL the target downloads (then key_sha256 is required)'),
      key_sha256: update(z
        .string()
        .regex(/^[0-9a-fA-F]{64}$/, 'a sha256 is 64 hex digits')
        .transform((hex) => hex.toLowerCase())
        .optional()
        .describe('the key\'s sha256: required with a key URL (checked before the key is put in place); with a site file, checked against it')),
      // Filled by resolve(): a site key's bytes, so plans and applies need no site.
      key_base64: internal(z.string().optional().describe('internal: the content of a site key')),
    })
    .refine((a) => a.ensure === 'absent' || a.uri !== undefined, { message: 'uri is required (where the repository is)', path: ['uri'] })
    .refine((a) => a.key === undefined || !isKeyUrl(a.key) || a.key_sha256 !== undefined, {
      message: 'a key downloaded from a URL needs key_sha256 (its sha256 in hex: `curl -fsSL URL | sha256sum`), so a changed key is never trusted',
      path: ['key_sha256'],
    })
    .refine((a) => a.key === undefined || keyFileName(a.key) !== '', { message: 'the key names no file', path: ['key'] })
    .refine((a) => a.key_sha256 === undefined || a.key !== undefined, { message: 'key_sha256 goes with key', path: ['key_sha256'] })
    .refine((a) => !(a.suites ?? []).some((s) => s.endsWith('/')) || a.components.length === 0, {
      message: 'a flat repository (a suite ending in "/") has no components',
      path: ['components'],
    }),
  reads: (attributes, os) => ({ paths: repositoryPaths(attributes, os), content: true }),
  stateful: false,
  resolve(attributes, ctx) {
    const key = attributes.key;
    if (typeof key !== 'string' || isKeyUrl(key)) return attributes;
    const { base64, sha256 } = blame('key', () => ctx.readSource(key));
    if (attributes.key_sha256 !== undefined && attributes.key_sha256 !== sha256) {
      throw new ResolveError('key_sha256', new InputError([{ message: `the key ${key} has sha256 ${sha256}, not the key_sha256 given` }]));
    }
    return { ...attributes, key_base64: base64, key_sha256: sha256 };
  },
});

export default packageRepositoryType;
