/**
 * Alpine: `apk info -v` lists what is installed, `apk version -l '<'` what is behind, `apk add` and
 * `apk del` change the world file. apk never prompts. A fresh system (a container) often has no
 * package index yet: an install that finds no such package is retried once after `apk update`.
 */
import type { Executor, RunResult } from '../../executors/types.ts';
import { ApplyError } from '../type.ts';
import { toolError } from '../commands.ts';
import { addVersion, C_LOCALE, labelOf, mustRun, packageProvider, query, type PackageManager, type Versions } from './manager.ts';

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
};

export const apkProvider = packageProvider(apk);
