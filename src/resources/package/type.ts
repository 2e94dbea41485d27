import { z } from 'zod';
import { defineType, update } from '../define.ts';

export const packageType = defineType({
  name: 'package',
  key: 'name',
  description: 'A system package; the name is OS-agnostic and mapped through the OS tables.',
  schema: z
    .strictObject({
      name: z
        .string()
        .min(1)
        .regex(/^[^-\s][^\s]*$/, 'a package name has no spaces and does not start with "-"')
        .describe('the package, by its OS-agnostic name (ssh-server) or as the OS names it'),
      ensure: update(z.enum(['present', 'absent', 'latest']).default('present').describe('present (default), absent, or latest (upgrade when the repositories have newer)')),
      version: update(z
        .string()
        .min(1)
        .regex(/^[^-\s][^\s]*$/, 'a version has no spaces and does not start with "-"')
        .optional()
        .describe('an exact version to install and hold, as the package manager spells it (apt: 2.10-3, dnf: 2.4.57 or 2.4.57-1.el9, apk: 1.2.3-r0)')),
    })
    .refine((a) => a.version === undefined || a.ensure === 'present', {
      message: 'version goes with ensure: present (latest and absent take no version)',
      path: ['version'],
    }),
  stateful: false,
  // Implicit ordering (DESIGN §6): after every package repository of the target (their index refresh comes first).
  autoRequires: [{ type: 'package_repository', every: true }],
});

export default packageType;
