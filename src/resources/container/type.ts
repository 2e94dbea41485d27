import { z } from 'zod';
import { absolutePath, ensurePresence } from '../attributes.ts';
import { defineType, rebuild, reload, update, writeOnly } from '../define.ts';

/** Settings the `network` and `binds` attributes own: `properties` may not set them too. */
export const OWNED_SETTINGS: Readonly<Record<string, readonly string[]>> = {
  Network: ['Private', 'VirtualEthernet', 'Bridge', 'Zone'],
  Files: ['Bind'],
};

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const NETWORK = /^(private|host|veth|bridge:[A-Za-z0-9_.-]{1,15})$/;
const SECTION = /^[A-Z][A-Za-z]*$/;
const KEY = /^[A-Z][A-Za-z0-9]*$/;
const oneLine = z.union([z.string(), z.number(), z.boolean()])
  .transform((v) => (typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v)))
  .refine((v) => !/[\r\n]/.test(v), 'a setting is one line');

/** A `.nspawn` section's settings: one value, or a list for settings that may repeat. */
const settings = z.record(z.string().regex(KEY, 'a .nspawn setting is a word in CamelCase (PrivateUsers)'),
  z.union([oneLine, z.array(oneLine).min(1)]).transform((v) => (Array.isArray(v) && v.length === 1 ? v[0]! : v)));

/** The image a container is made from: a folder or disk image on the target, or a profile's build (§10). */
export const imageSchema = z.union([
  absolutePath.describe('a root folder (copied) or a raw disk image (copied as NAME.raw) on the target'),
  z.strictObject({
    profile: z.string().min(1).describe('a provisioning profile of the site that builds the image (DESIGN §10)'),
    args: z.record(z.string(), z.string()).optional().describe('override the profile\'s arguments'),
  }),
]);

export const containerType = defineType({
  name: 'container',
  key: 'name',
  description:
    'A system container run by systemd-nspawn and machined (`nspawn` provider): its image under /var/lib/machines, ' +
    'its settings in /etc/systemd/nspawn/NAME.nspawn, started, stopped, enabled with machinectl. ' +
    'network, binds and properties change with a restart (allow_reload); image and user_data replace it (allow_rebuild, ' +
    'off by default: a container holds state).',
  schema: z.strictObject({
    name: z.string().regex(NAME, 'a machine name is letters, digits, _ . - (at most 64, starting with a letter or digit)')
      .describe('the machine name (machinectl\'s)'),
    ensure: rebuild(ensurePresence),
    image: rebuild(imageSchema.optional().describe('where the root comes from (required unless absent): a root folder, a raw disk image, or { profile }')),
    state: update(z.enum(['running', 'stopped']).default('running').describe('running (default) or stopped')),
    boot: update(z.boolean().default(false).describe('start with the host (machinectl enable)')),
    network: reload(z.string().regex(NETWORK, 'network is private, host, veth or bridge:NAME').default('private')
      .describe('private (default: loopback only), host (the host\'s network), veth (a virtual link to the host), bridge:NAME')),
    binds: reload(z.array(z.string().min(1).refine((b) => b.startsWith('/') && !/[\r\n]/.test(b), 'a bind is SRC[:DST[:OPTIONS]] with an absolute SRC'))
      .default([]).describe('host folders bound into the container: SRC[:DST[:OPTIONS]] (Bind= in the .nspawn file)')),
    properties: reload(z.record(z.string().regex(SECTION, 'a .nspawn section is Exec, Files or Network'), settings).default({})
      .describe('other .nspawn settings by section: { Exec: { PrivateUsers: no } }')),
    user_data: rebuild(writeOnly(z.string().optional().describe('a shell script run once by /bin/sh at the first boot (compared by hash)'))),
  })
    .refine((a) => a.ensure === 'absent' || a.image !== undefined, { message: 'image is required', path: ['image'] })
    .superRefine((a, ctx) => {
      for (const [section, keys] of Object.entries(a.properties)) {
        if (!['Exec', 'Files', 'Network'].includes(section)) {
          ctx.addIssue({ code: 'custom', message: `.nspawn files have the sections Exec, Files and Network, not ${section}`, path: ['properties', section] });
        }
        for (const key of Object.keys(keys)) {
          if (OWNED_SETTINGS[section]?.includes(key)) {
            ctx.addIssue({ code: 'custom', message: `${section}.${key} is set by ${section === 'Files' ? 'binds' : 'network'}: use that attribute`, path: ['properties', section, key] });
          }
        }
      }
    }),
  refresh: 'restarts it when running (poweroff, start)',
  reads: () => ({ paths: [], commands: true }),
  stateful: true,
  needs: ['running-system'],
});

export default containerType;
