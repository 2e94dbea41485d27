/**
 * Where a package repository and its key live on the target, from the OS tables: shared by the
 * providers, which write there, and the type, which announces the reading (both sides of a run).
 */
import { osPath } from '../os.ts';

/** A key given as a URL is downloaded by the target; anything else is a file of the site. */
export const KEY_URL = /^https?:\/\//;

export function isKeyUrl(key: string): boolean {
  return KEY_URL.test(key);
}

/** The last part of a key's site path or URL path (apk looks keys up by that file name). */
export function keyFileName(key: string): string {
  const path = isKeyUrl(key) ? new URL(key).pathname : key;
  return path.split('/').filter(Boolean).at(-1) ?? '';
}

/** apt: `<dir>/<name>.sources`. */
export function aptSourcesPath(os: Record<string, unknown>, name: string): string {
  return `${osPath(os, 'package_repository_dir') ?? '/etc/apt/sources.list.d'}/${name}.sources`;
}

/** apt: the key's file, `.asc` when ASCII-armoured, `.gpg` when binary (apt tells them apart by the name). */
export function aptKeyPath(os: Record<string, unknown>, name: string, armoured: boolean): string {
  return `${osPath(os, 'package_key_dir') ?? '/etc/apt/keyrings'}/${name}.${armoured ? 'asc' : 'gpg'}`;
}

/** dnf and yum: `<dir>/<name>.repo`. */
export function yumRepoPath(os: Record<string, unknown>, name: string): string {
  return `${osPath(os, 'package_repository_dir') ?? '/etc/yum.repos.d'}/${name}.repo`;
}

/** dnf and yum: the key the .repo file's gpgkey names. */
export function rpmKeyPath(os: Record<string, unknown>, name: string): string {
  return `${osPath(os, 'package_key_dir') ?? '/etc/pki/rpm-gpg'}/RPM-GPG-KEY-${name}`;
}

/** apk: the one list of repositories. */
export function apkRepositoriesPath(os: Record<string, unknown>): string {
  return osPath(os, 'package_repository_list') ?? '/etc/apk/repositories';
}

/** apk: a key under the file name of its source (the name its repository's signatures carry). */
export function apkKeyPath(os: Record<string, unknown>, fileName: string): string {
  return `${osPath(os, 'package_key_dir') ?? '/etc/apk/keys'}/${fileName}`;
}

/** The files a package_repository node reads, for the package manager the tables name. */
export function repositoryPaths(attributes: Record<string, unknown>, os: Record<string, unknown>): string[] {
  const name = String(attributes.name);
  const key = typeof attributes.key === 'string' ? attributes.key : undefined;
  switch (os.package_manager) {
    case 'apt': return [aptSourcesPath(os, name), aptKeyPath(os, name, true), aptKeyPath(os, name, false)];
    case 'dnf': case 'yum': return [yumRepoPath(os, name), rpmKeyPath(os, name)];
    case 'apk': return [apkRepositoriesPath(os), ...(key ? [apkKeyPath(os, keyFileName(key))] : [])];
    default: return [];
  }
}
