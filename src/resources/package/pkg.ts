/**
 * FreeBSD: `pkg query` reads, `pkg version -R` says what the remote catalogue has newer, `pkg
 * install` / `pkg upgrade` / `pkg delete` with `-y`. pkg updates its catalogue by itself.
 */
import { addVersion, mustRun, packageProvider, query, type PackageManager, type Versions } from './manager.ts';

/** Never a prompt, even when pkg would bootstrap itself. */
const PKG_ENV = { ASSUME_ALWAYS_YES: 'yes' };

/** `pkg query '%n %v'` lines. */
export function parsePkgQuery(stdout: string): Versions {
  const versions: Versions = new Map();
  for (const line of stdout.split('\n')) {
    const [name, version, extra] = line.trim().split(' ');
    if (name && version && extra === undefined) addVersion(versions, name, version);
  }
  return versions;
}

/**
 * `pkg version -vRL=` lines for packages that are not current:
 * `name-version   <   needs updating (remote has 1.2.3)`. FreeBSD versions hold no `-`.
 */
export function parsePkgVersion(stdout: string): Map<string, string> {
  const upgrades = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^(\S+)-([^-\s]+)\s+<\s+needs updating \(remote has ([^)\s]+)\)/.exec(line.trim());
    if (m) upgrades.set(m[1]!, m[3]!);
  }
  return upgrades;
}

export const pkg: PackageManager = {
  name: 'pkg',
  serves: ['pkg'],

  async installed(exec, names) {
    // Exit 1 when some names are not installed; the others are listed.
    return parsePkgQuery(await query(exec, ['pkg', 'query', '%n %v', ...names], (code) => code <= 1));
  },

  async upgrades(exec, names) {
    // pkg version takes no list of names: it compares every installed package, once.
    const all = parsePkgVersion(await query(exec, ['pkg', 'version', '-vRL='], (code) => code === 0));
    return new Map([...all].filter(([name]) => names.includes(name)));
  },

  versionMatches: (installed, wanted) => installed === wanted,

  async install(exec, { name, version, upgrade }) {
    const spec = version !== undefined ? `${name}-${version}` : name;
    await mustRun(exec, ['pkg', upgrade ? 'upgrade' : 'install', '-y', spec], PKG_ENV);
  },

  async remove(exec, name) {
    await mustRun(exec, ['pkg', 'delete', '-y', name], PKG_ENV);
  },

  // `pkg lock`: a locked package is not upgraded, reinstalled or removed until unlocked.
  holds: {
    async list(exec) {
      const out = await query(exec, ['pkg', 'query', '-a', '%k %n'], (code) => code === 0);
      return new Set(out.split('\n').filter((l) => l.startsWith('1 ')).map((l) => l.slice(2).trim()));
    },
    async hold(exec, name) {
      await mustRun(exec, ['pkg', 'lock', '-y', name], PKG_ENV);
    },
    async release(exec, name) {
      await mustRun(exec, ['pkg', 'unlock', '-y', name], PKG_ENV);
    },
  },
};

export const pkgProvider = packageProvider(pkg);
