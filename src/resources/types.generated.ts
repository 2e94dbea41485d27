// Written by scripts/registry.mjs from the folders in src/resources/ (`npm run build` runs it): do not edit.
import archiveType from './archive/type.ts';
import authorizedKeyType from './authorized_key/type.ts';
import cronType from './cron/type.ts';
import directoryType from './directory/type.ts';
import execType from './exec/type.ts';
import fileType from './file/type.ts';
import gitType from './git/type.ts';
import groupType from './group/type.ts';
import guestType from './guest/type.ts';
import hostnameType from './hostname/type.ts';
import lineType from './line/type.ts';
import mountType from './mount/type.ts';
import packageType from './package/type.ts';
import packageRepositoryType from './package_repository/type.ts';
import rebootType from './reboot/type.ts';
import serviceType from './service/type.ts';
import symlinkType from './symlink/type.ts';
import sysctlType from './sysctl/type.ts';
import transitionType from './transition/type.ts';
import userType from './user/type.ts';

/** Every resource type, by name. */
export const generatedTypes = {
  archive: archiveType,
  authorized_key: authorizedKeyType,
  cron: cronType,
  directory: directoryType,
  exec: execType,
  file: fileType,
  git: gitType,
  group: groupType,
  guest: guestType,
  hostname: hostnameType,
  line: lineType,
  mount: mountType,
  package: packageType,
  package_repository: packageRepositoryType,
  reboot: rebootType,
  service: serviceType,
  symlink: symlinkType,
  sysctl: sysctlType,
  transition: transitionType,
  user: userType,
} as const;
