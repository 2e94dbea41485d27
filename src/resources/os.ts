/**
 * What providers read from the OS tables (DESIGN §1, the transformation database): the
 * OS-specific name of an agnostic one, and which package manager and init system to use.
 */

function section(os: Record<string, unknown>, name: string): Record<string, unknown> {
  const s = os[name];
  return s && typeof s === 'object' && !Array.isArray(s) ? (s as Record<string, unknown>) : {};
}

/**
 * The OS-specific name for `name` in a section of the tables (`packages`, `services`): a site
 * names `ssh-server` once and gets `openssh-server` on Debian, `openssh` on Alpine. A name the
 * tables do not list is used as written; `null` when the tables map it to `false`: part of the
 * base system (sshd on FreeBSD), nothing to install.
 */
export function osName(os: Record<string, unknown>, table: 'packages' | 'services', name: string): string | null {
  const mapped = section(os, table)[name];
  if (mapped === false) return null;
  return typeof mapped === 'string' && mapped !== '' ? mapped : name;
}

/**
 * The package manager or init system to use on the target: the OS tables' choice (built in per
 * OS, overridable in the site's `os/`), else what the facts detected.
 */
export function osSetting(os: Record<string, unknown>, facts: Record<string, unknown>, key: 'package_manager' | 'init_system'): string | undefined {
  const chosen = os[key] ?? facts[key];
  return typeof chosen === 'string' && chosen !== '' && chosen !== 'unknown' ? chosen : undefined;
}

/** A provider's `suitable` for "the tables (or facts) name this package manager / init system". */
export function uses(key: 'package_manager' | 'init_system', ...values: string[]) {
  return (facts: Record<string, unknown>, os: Record<string, unknown>): boolean => values.includes(osSetting(os, facts, key) ?? '');
}

/** A path the OS tables name (`paths:` section: `sysctl_dir`, `sshd_config`), if they do. */
export function osPath(os: Record<string, unknown>, key: string): string | undefined {
  const path = section(os, 'paths')[key];
  return typeof path === 'string' && path !== '' ? path : undefined;
}

/** A section of the OS tables a type of its own reads (`mount`, `reboot`): {} when they have none. */
export function osSection(os: Record<string, unknown>, name: string): Record<string, unknown> {
  return section(os, name);
}

/** A command the OS tables give as an argument list (`reboot.command`), if they give one. */
export function osCommand(os: Record<string, unknown>, sectionName: string, key: string): string[] | undefined {
  const argv = section(os, sectionName)[key];
  return Array.isArray(argv) && argv.length > 0 && argv.every((a) => typeof a === 'string') ? (argv as string[]) : undefined;
}
