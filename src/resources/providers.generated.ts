// Written by scripts/registry.mjs from the folders in src/resources/ (`npm run build` runs it): do not edit.
import type { Provider } from './type.ts';
import archiveProviders from './archive/providers.ts';
import authorizedKeyProviders from './authorized_key/providers.ts';
import cronProviders from './cron/providers.ts';
import directoryProviders from './directory/providers.ts';
import execProviders from './exec/providers.ts';
import fileProviders from './file/providers.ts';
import gitProviders from './git/providers.ts';
import groupProviders from './group/providers.ts';
import guestProviders from './guest/providers.ts';
import hostnameProviders from './hostname/providers.ts';
import lineProviders from './line/providers.ts';
import mountProviders from './mount/providers.ts';
import packageProviders from './package/providers.ts';
import packageRepositoryProviders from './package_repository/providers.ts';
import rebootProviders from './reboot/providers.ts';
import serviceProviders from './service/providers.ts';
import symlinkProviders from './symlink/providers.ts';
import sysctlProviders from './sysctl/providers.ts';
import transitionProviders from './transition/providers.ts';
import userProviders from './user/providers.ts';

/** Every type's providers, in the order they are tried. */
export const generatedProviders: Record<string, readonly Provider[]> = {
  archive: archiveProviders,
  authorized_key: authorizedKeyProviders,
  cron: cronProviders,
  directory: directoryProviders,
  exec: execProviders,
  file: fileProviders,
  git: gitProviders,
  group: groupProviders,
  guest: guestProviders,
  hostname: hostnameProviders,
  line: lineProviders,
  mount: mountProviders,
  package: packageProviders,
  package_repository: packageRepositoryProviders,
  reboot: rebootProviders,
  service: serviceProviders,
  symlink: symlinkProviders,
  sysctl: sysctlProviders,
  transition: transitionProviders,
  user: userProviders,
};
