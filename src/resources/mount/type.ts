import { z } from 'zod';
import { absolutePath } from '../attributes.ts';
import { osSection } from '../os.ts';
import { defineType, update } from '../define.ts';

const fstabWord = (what: string) => z.string().min(1).refine((v) => !/\s/.test(v), `${what} is one word with no blanks (fstab separates fields by blanks)`);

export const MOUNT_STATES = ['mounted', 'unmounted', 'present', 'absent'] as const;

export const mountType = defineType({
  name: 'mount',
  key: 'path',
  description:
    "A file system mounted at a path, as Ansible's mount module states it: `mounted` (the fstab entry, mounted now, the " +
    'mount point made), `unmounted` (not mounted now, fstab left alone), `present` (the fstab entry only), `absent` ' +
    '(unmounted, its entry gone, the empty mount point removed). The fstab is edited atomically and its other lines kept.',
  schema: z
    .strictObject({
      path: absolutePath.refine((p) => !/[\r\n]/.test(p), 'a mount point must be one line').describe('the mount point'),
      device: update(z.string().min(1).refine((v) => !/[\r\n]/.test(v), 'a device must be one line').optional()
        .describe('what to mount: a device, UUID=…, LABEL=…, a server:/export, a folder for a bind mount, `tmpfs` (required for mounted and present)')),
      fstype: update(fstabWord('fstype').optional().describe('the file system type: ext4, xfs, nfs, tmpfs, none (required for mounted and present)')),
      options: update(fstabWord('options').default('defaults').describe('mount options, comma-separated (default `defaults`)')),
      dump: update(z.number().int().min(0).default(0).describe("fstab's fifth field (dump frequency, default 0)")),
      pass: update(z.number().int().min(0).default(0).describe("fstab's sixth field (fsck order, default 0)")),
      ensure: update(z.enum(MOUNT_STATES).default('mounted').describe('mounted (default), unmounted, present or absent')),
    })
    .refine((a) => !(a.ensure === 'mounted' || a.ensure === 'present') || a.device !== undefined, {
      message: 'device is required for ensure mounted or present', path: ['device'],
    })
    .refine((a) => !(a.ensure === 'mounted' || a.ensure === 'present') || a.fstype !== undefined, {
      message: 'fstype is required for ensure mounted or present', path: ['fstype'],
    }),
  // The fstab (where the OS tables say), and the live mount table, read by a command.
  reads: (_attributes, os) => ({ paths: [String(osSection(os, 'mount').fstab ?? '/etc/fstab')], content: true, commands: true }),
  stateful: false,
  // Mounting is the running system's business; an offline root has only its fstab.
  needs: ['running-system'],
});

export default mountType;
