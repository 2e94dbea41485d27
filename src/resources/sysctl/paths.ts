/**
 * Where kernel parameters are kept across reboots, from the OS tables: shared by the provider,
 * which writes there, and the type, which announces the reading (both sides of a run).
 */
import { osPath } from '../os.ts';

/** Linux: Cairn's own file in the tables' sysctl.d. */
export function linuxConfPath(os: Record<string, unknown>): string {
  return `${osPath(os, 'sysctl_dir') ?? '/etc/sysctl.d'}/99-cairn.conf`;
}

/** FreeBSD: the one sysctl.conf. */
export function freebsdConfPath(os: Record<string, unknown>): string {
  return osPath(os, 'sysctl_conf') ?? '/etc/sysctl.conf';
}

/** The files a sysctl node may read: the one the tables name, or both defaults where they name neither. */
export function confPaths(os: Record<string, unknown>): string[] {
  const linux = osPath(os, 'sysctl_dir') !== undefined;
  const freebsd = osPath(os, 'sysctl_conf') !== undefined;
  if (linux !== freebsd) return [linux ? linuxConfPath(os) : freebsdConfPath(os)];
  return [linuxConfPath(os), freebsdConfPath(os)];
}
