import { z } from 'zod';
import { defineType, rebuild, reload, writeOnly } from '../define.ts';
import { LIFECYCLE_REFRESH, lifecycleAttributes } from '../lifecycle.ts';
import { parseFstabEntry } from './fstab.ts';

/** iocage's own rule for a jail's name (iocage_cli/create.py). */
const JAIL_NAME = /^[a-zA-Z0-9._-]+$/;
const jailName = (what: string) => z.string().regex(JAIL_NAME, `${what} is letters, digits, '.', '_' and '-' (iocage's rule)`);

/** Properties with an attribute of their own, or that iocage sets itself. */
export const RESERVED_PROPERTIES = ['template', 'type', 'boot', 'ip4_addr', 'ip6_addr', 'release', 'state', 'host_hostuuid', 'jail_zfs_dataset', 'last_started'];

const noAddress = (a: string | undefined) => a === undefined || a === 'none' || a.trim() === '';
const on = (v: unknown) => v !== undefined && ['1', 'on', 'yes', 'true'].includes(String(v).toLowerCase());
/** iocage installs packages when the jail has an address, or gets one itself (dhcp, nat, ip_hostname). */
const hasAddress = (a: { ip4_addr?: string | undefined; ip6_addr?: string | undefined; properties?: Record<string, unknown> | undefined }) =>
  !noAddress(a.ip4_addr) || !noAddress(a.ip6_addr) || ['dhcp', 'nat', 'ip_hostname'].some((k) => on(a.properties?.[k]));

export const jailType = defineType({
  name: 'jail',
  key: 'name',
  description:
    'A FreeBSD jail managed with iocage (the seed puppet-iocage\'s rules): ip4_addr, ip6_addr, fstab, properties and type ' +
    'change with a restart (stop, change, start again if it was running: allow_reload); release, template, pkglist and ' +
    'user_data by destroying and creating it again, which a jail refuses unless allow_rebuild: true; state and boot in place.',
  schema: z.strictObject({
    name: jailName("a jail's name"),
    ...lifecycleAttributes,
    type: reload(z.enum(['jail', 'template']).default('jail').describe('jail (default) or template (a jail others are cloned from; it cannot run)')),
    release: rebuild(z.string().regex(/^[^\s=]+$/, 'a release is one word with no "=" (e.g. 13.2-RELEASE)').optional()
      .describe('the FreeBSD release it is created from (13.2-RELEASE; a patch level -pN is not compared)')),
    template: rebuild(jailName("a template's name").optional().describe('the template it is cloned from, instead of a release')),
    ip4_addr: reload(z.string().optional().describe('iocage\'s ip4_addr: `em0|10.0.0.5/24`, several comma-separated, or none')),
    ip6_addr: reload(z.string().optional().describe('iocage\'s ip6_addr, as ip4_addr')),
    fstab: reload(z.array(z.string().refine((e) => parseFstabEntry(e) !== undefined,
      'an fstab entry is `src dst [fs opts [dump pass]]`, absolute paths, fields without blanks')).optional()
      .describe('mounts, each `src dst [fs opts [dump pass]]` (default nullfs ro 0 0), dst inside the jail; exactly these, in this order')),
    properties: reload(z.record(z.string().regex(/^[a-zA-Z0-9_]+$/, 'a property name is letters, digits and _'),
      z.union([z.string(), z.number(), z.boolean()])).optional()
      .describe('iocage properties (`iocage get all`), e.g. allow_raw_sockets: 1; the ones listed are managed, others left as they are')),
    pkglist: rebuild(writeOnly(z.array(z.string().min(1)).optional()
      .describe('packages iocage installs when it creates the jail (needs an IP address); compared by hash, a change rebuilds'))),
  })
    .refine((a) => !(a.type === 'template' && a.state === 'running'), { message: 'a template cannot run: leave state out or set it to stopped', path: ['state'] })
    .refine((a) => !(a.type === 'template' && a.boot === true), { message: 'a template cannot boot: leave boot out or set it to false', path: ['boot'] })
    .refine((a) => !(a.type === 'template' && (a.fstab?.length ?? 0) > 0), { message: 'a template cannot have an fstab', path: ['fstab'] })
    .refine((a) => !(a.release !== undefined && a.template !== undefined), { message: 'release and template exclude each other: give one', path: ['template'] })
    .refine((a) => a.ensure === 'absent' || a.release !== undefined || a.template !== undefined, { message: 'a jail needs a release or a template', path: ['release'] })
    .refine((a) => (a.pkglist?.length ?? 0) === 0 || hasAddress(a), {
      message: 'a pkglist needs an IP address (ip4_addr, ip6_addr, or dhcp, nat or ip_hostname in properties): iocage installs the packages over the network',
      path: ['pkglist'],
    })
    .refine((a) => Object.keys(a.properties ?? {}).every((k) => !RESERVED_PROPERTIES.includes(k)), {
      message: `properties cannot set ${RESERVED_PROPERTIES.join(', ')}: they are attributes of their own or iocage's`, path: ['properties'],
    }),
  stateful: true,
  refresh: LIFECYCLE_REFRESH,
  // iocage runs jails: a folder (chroot) has nothing to run them.
  needs: ['running-system'],
  reads: () => ({ paths: [], commands: true }),
});

export default jailType;
