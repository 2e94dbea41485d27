/**
 * Arch: `pacman -Q` reads, `pacman -Qu` says what is behind the synced databases, `pacman -S
 * --needed` installs or upgrades, `pacman -R` removes, `--noconfirm` always. The databases are not
 * refreshed here (`pacman -Sy` without a full upgrade is a partial upgrade, which Arch does not
 * support): keep them fresh with a full system upgrade.
 */
import { addVersion, mustRun, packageProvider, query, type PackageManager, type Versions } from './manager.ts';

/** `pacman -Q` lines: `name version`. */
export function parsePacmanQuery(stdout: string): Versions {
  const versions: Versions = new Map();
  for (const line of stdout.split('\n')) {
    const [name, version, extra] = line.trim().split(/\s+/);
    if (name && version && extra === undefined) addVersion(versions, name, version);
  }
  return versions;
}

/** `pacman -Qu` lines: `name old -> new`, perhaps followed by `[ignored]`. */
export function parsePacmanUpgrades(stdout: string): Map<string, string> {
  const upgrades = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^(\S+) (\S+) -> (\S+)(?: \[ignored\])?$/.exec(line.trim());
    if (m && !line.includes('[ignored]')) upgrades.set(m[1]!, m[3]!);
  }
  return upgrades;
}

export const pacman: PackageManager = {
  name: 'pacman',
  serves: ['pacman'],

  async installed(exec, names) {
    // Exit 1: some names are not installed ("error: package 'x' was not found"); the rest are listed.
    return parsePacmanQuery(await query(exec, ['pacman', '-Q', ...names], (code) => code <= 1));
  },

  async upgrades(exec, names) {
    // Exit 1 also when nothing is out of date.
    return parsePacmanUpgrades(await query(exec, ['pacman', '-Qu', ...names], (code) => code <= 1));
  },

  /** `1.2.3-1` (with its epoch, as pacman prints it), or `1.2.3` for any package release. */
  versionMatches: (installed, wanted) => installed === wanted || installed.replace(/-[^-]*$/, '') === wanted,

  async install(exec, { name, version }) {
    // A version is a dependency expression pacman resolves against the sync databases.
    await mustRun(exec, ['pacman', '-S', '--noconfirm', '--needed', version !== undefined ? `${name}=${version}` : name]);
  },

  async remove(exec, name) {
    await mustRun(exec, ['pacman', '-R', '--noconfirm', name]);
  },

  noHold: 'pacman has no command to hold a package: list it in IgnorePkg in /etc/pacman.conf (a line part), and write hold: false',
};

export const pacmanProvider = packageProvider(pacman);
