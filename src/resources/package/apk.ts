/**
 * Alpine: `apk info -v` lists what is installed, `apk version -l '<'` what is behind, `apk add` and
 * `apk del` change the world file. apk never prompts. A fresh system (a container) often has no
 * package index yet: an install that finds no such package is retried once after `apk update`.
 */
import type { Executor, RunResult } from '../../executors/types.ts';
import { ApplyError } from '../type.ts';
import { toolError } from '../commands.ts';
import { addVersion, C_LOCALE, labelOf, mustRun, packageProvider, query, type PackageManager, type PackageShell, type Versions } from './manager.ts';

/** `name-version-rN`: apk versions always end in a release, so the name is what precedes them. */
const NAME_VERSION = /^(.+)-([^-\s]+-r\d+)$/;

/** `apk info -v` lines (every installed package). */
export function parseApkInfo(stdout: string): Versions {
  const versions: Versions = new Map();
  for (const line of stdout.split('\n')) {
    const m = NAME_VERSION.exec(line.trim());
    if (m) addVersion(versions, m[1]!, m[2]!);
  }
  return versions;
}

/** `apk version -l '<'` lines: `name-version-rN   < newer-version` (after an "Installed:" header). */
export function parseApkVersion(stdout: string): Map<string, string> {
  const upgrades = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const [installed, op, newer] = line.trim().split(/\s+/);
    const m = installed ? NAME_VERSION.exec(installed) : null;
    if (m && op === '<' && newer) upgrades.set(m[1]!, newer);
  }
  return upgrades;
}

/** apk's words for "the index does not know this": worth an `apk update`. */
const NO_INDEX = /\((no such package|missing)\)/;

const updates = new WeakMap<Executor, Promise<RunResult>>();

export const apk: PackageManager = {
  name: 'apk',
  serves: ['apk'],

  async installed(exec) {
    // apk lists every installed package at once; filtering here is cheaper than asking per name.
    return parseApkInfo(await query(exec, ['apk', 'info', '-v'], (code) => code === 0));
  },

  async upgrades(exec, names) {
    return parseApkVersion(await query(exec, ['apk', 'version', '-l', '<', ...names], (code) => code === 0));
  },

  /** `1.2.3-r0`, or `1.2.3` for any release of it. */
  versionMatches: (installed, wanted) => installed === wanted || installed.replace(/-r\d+$/, '') === wanted,

  async install(exec, { name, version, upgrade }) {
    const argv = ['apk', 'add', '--no-progress', ...(upgrade ? ['--upgrade'] : []), version !== undefined ? `${name}=${version}` : name];
    let r = await exec.run(argv, { env: C_LOCALE });
    if (r.code !== 0 && NO_INDEX.test(`${r.stdout}${r.stderr}`)) {
      let update = updates.get(exec);
      if (!update) updates.set(exec, (update = exec.run(['apk', 'update', '--no-progress'], { env: C_LOCALE })));
      const u = await update;
      if (u.code !== 0) throw new ApplyError(`${toolError(labelOf(argv), r).message}\n(apk update, tried because of it, failed too: ${toolError('apk update', u).message})`);
      r = await exec.run(argv, { env: C_LOCALE });
    }
    if (r.code !== 0 || r.timedOut) throw toolError(labelOf(argv), r);
  },

  async remove(exec, name) {
    await mustRun(exec, ['apk', 'del', '--no-progress', name]);
  },

  async refreshIndex(exec) {
    const r = await exec.run(['apk', 'update', '--no-progress'], { env: C_LOCALE });
    updates.set(exec, Promise.resolve(r));
    if (r.code !== 0 || r.timedOut) throw toolError('apk update (a package repository changed in this run)', r);
  },

  // apk's hold is its world file: `name=version` keeps the package at that version.
  holds: {
    async list(exec) {
      return parseApkWorld((await exec.readFile(APK_WORLD))?.toString('utf8') ?? '');
    },
    async hold(exec, name) {
      // The installed version as apk spells it (with its release): `name=1.36.1` would not match 1.36.1-r29.
      const at = (await apk.installed(exec, [name])).get(name)?.at(-1);
      if (at === undefined) throw new ApplyError(`${name} is not installed: there is no version to hold it at`);
      await mustRun(exec, ['apk', 'add', '--no-progress', `${name}=${at}`]);
    },
    async release(exec, name) {
      // The world's entry loses its version; what is installed stays.
      await mustRun(exec, ['apk', 'add', '--no-progress', name]);
    },
    installWithVersionHolds: true,
  },
};

/** The packages an admin (or `apk add`) asked for, one constraint each: `name`, `name=1.2-r0`, `name>1`. */
export const APK_WORLD = '/etc/apk/world';

/** The names the world file pins to one version (`name=version`, `name@tag=version`). */
export function parseApkWorld(text: string): Set<string> {
  const held = new Set<string>();
  for (const entry of text.split(/\s+/)) {
    const m = /^([^=<>~@!\s]+)(?:@\S+?)?=[^=<>~]/.exec(entry);
    if (m) held.add(m[1]!);
  }
  return held;
}

/**
 * apk's commands as shell, for `cairn export`: an install at a version writes `name=version` to
 * the world file, which is apk's hold; released, the entry loses its version.
 */
export const apkShell: PackageShell = {
  installed: (name) => `cairn_apk_version ${name} >/dev/null`,
  // `1.2.3-r0`, or `1.2.3` for any release of it.
  versionIs: (name, version) => `case $(cairn_apk_version ${name}) in ${version} | ${version}-r[0-9]*) true ;; *) false ;; esac`,
  latest: (name) => `cairn_apk_latest ${name}`,
  install: (name, version, upgrade) => `cairn_apk_add ${upgrade ? '--upgrade ' : ''}${version !== undefined ? `${name}=${version}` : name}`,
  remove: (name) => `apk del --no-progress ${name}`,
  held: (name) => `cairn_apk_held ${name}`,
  hold: (name) => `cairn_apk_hold ${name}`,
  release: (name) => `apk add --no-progress ${name}`,
};
apk.shell = apkShell;

export const apkProvider = packageProvider(apk);
