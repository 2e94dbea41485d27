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
      hold: update(z
        .boolean()
        .optional()
        .describe('held by the package manager so no upgrade moves it (apt-mark hold, dnf versionlock, apk name=version, pkg lock); default: true with a version, else false (a hold found is released)')),
    })
    .refine((a) => a.version === undefined || a.ensure === 'present', {
      message: 'version goes with ensure: present (latest and absent take no version)',
      path: ['version'],
    })
    .refine((a) => a.hold !== true || a.ensure === 'present', {
      message: 'hold goes with ensure: present (a held package is not upgraded or removed)',
      path: ['hold'],
    }),
  stateful: false,
  // The site owns the hold of every package it names: a pin holds, no pin releases (README, "Holds").
  resolve(attributes) {
    if (attributes.ensure === 'absent' || attributes.hold !== undefined) return attributes;
    return { ...attributes, hold: attributes.version !== undefined };
  },
  // Implicit ordering (DESIGN §6): after every package repository of the target (their index refresh comes first).
  autoRequires: [{ type: 'package_repository', every: true }],
});

export default packageType;
