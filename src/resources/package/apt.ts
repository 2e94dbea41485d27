/**
 * Debian and Ubuntu: dpkg-query reads, apt-get installs and removes, apt-cache policy says what
 * `latest` is. Package lists are refreshed (`apt-get update`) only when an install shows they are
 * missing or stale, at most once per run and target.
 */
import type { Executor, RunResult } from '../../executors/types.ts';
import { ApplyError } from '../type.ts';
import { toolError } from '../commands.ts';
import { addVersion, C_LOCALE, labelOf, mustRun, packageProvider, query, type PackageManager, type PackageShell, type Versions } from './manager.ts';

/** Seconds apt-get waits for another apt or dpkg to release its lock, rather than failing at once. */
export const APT_LOCK_TIMEOUT = 300;

/** No prompts: debconf answers with defaults, changed configuration files keep the local version. */
export const APT_ENV = { ...C_LOCALE, DEBIAN_FRONTEND: 'noninteractive', APT_LISTCHANGES_FRONTEND: 'none' };
const APT_GET = [
  'apt-get', '-y', '-q',
  '-o', `DPkg::Lock::Timeout=${APT_LOCK_TIMEOUT}`,
  '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold',
];

export const DPKG_QUERY_FORMAT = '${Package}\\t${Status}\\t${Version}\\n';

/** `dpkg-query -W` lines: a package counts when its status (want ok state) says installed. */
export function parseDpkgQuery(stdout: string): Versions {
  const versions: Versions = new Map();
  for (const line of stdout.split('\n')) {
    const [name, status, version] = line.split('\t');
    if (!name || !status || !version) continue;
    const state = status.split(' ')[2];
    if (state === 'installed' || state === 'triggers-pending' || state === 'triggers-awaited') addVersion(versions, name, version);
  }
  return versions;
}

/** `apt-cache policy` blocks: name → { installed, candidate } ("(none)" left out). */
export function parseAptCachePolicy(stdout: string): Map<string, { installed?: string; candidate?: string }> {
  const policies = new Map<string, { installed?: string; candidate?: string }>();
  let current: { installed?: string; candidate?: string } | undefined;
  for (const line of stdout.split('\n')) {
    const head = /^(\S+):$/.exec(line);
    if (head) {
      current = {};
      policies.set(head[1]!, current);
      continue;
    }
    const field = /^ {2}(Installed|Candidate): (.+)$/.exec(line);
    if (!current || !field || field[2] === '(none)') continue;
    if (field[1] === 'Installed') current.installed = field[2]!;
    else current.candidate = field[2]!;
  }
  return policies;
}

/** apt-get's words for "the package lists do not know this (yet)": worth an `apt-get update`. */
const STALE_LISTS = /Unable to locate package|has no installation candidate|Version '[^']*' for '[^']*' was not found|Failed to fetch .*(404|Not Found)/;

/** One `apt-get update` per target and run, shared by every install that needs it. */
const updates = new WeakMap<Executor, Promise<RunResult>>();

function aptUpdate(exec: Executor, again = false): Promise<RunResult> {
  let pending = updates.get(exec);
  if (!pending || again) {
    pending = exec.run([...APT_GET, 'update'], { env: APT_ENV });
    updates.set(exec, pending);
  }
  return pending;
}

export const apt: PackageManager = {
  name: 'apt',
  serves: ['apt'],

  async installed(exec, names) {
    // Exit 1 means some names are unknown to dpkg: the others are still listed.
    const out = await query(exec, ['dpkg-query', '-W', `--showformat=${DPKG_QUERY_FORMAT}`, ...names], (code) => code <= 1);
    return parseDpkgQuery(out);
  },

  async upgrades(exec, names) {
    const out = await query(exec, ['apt-cache', 'policy', ...names], (code) => code === 0);
    const behind = new Map<string, string>();
    for (const [name, { installed, candidate }] of parseAptCachePolicy(out)) {
      if (installed !== undefined && candidate !== undefined && installed !== candidate) behind.set(name, candidate);
    }
    return behind;
  },

  versionMatches: (installed, wanted) => installed === wanted,

  async install(exec, { name, version }) {
    const argv = [...APT_GET, ...(version !== undefined ? ['--allow-downgrades'] : []), 'install', version !== undefined ? `${name}=${version}` : name];
    let r = await exec.run(argv, { env: APT_ENV });
    if (r.code !== 0 && STALE_LISTS.test(r.stderr)) {
      const update = await aptUpdate(exec);
      if (update.code !== 0) {
        throw new ApplyError(`${toolError(labelOf(argv), r).message}\n(apt-get update, tried because of it, failed too: ${toolError('apt-get update', update).message})`);
      }
      r = await exec.run(argv, { env: APT_ENV });
    }
    if (r.code !== 0 || r.timedOut) throw toolError(labelOf(argv), r);
  },

  async remove(exec, name) {
    await mustRun(exec, [...APT_GET, 'remove', name], APT_ENV);
  },

  async refreshIndex(exec) {
    // Also what a later install that finds stale lists would run: it shares this one.
    const r = await aptUpdate(exec, true);
    if (r.code !== 0 || r.timedOut) throw toolError('apt-get update (a package repository changed in this run)', r);
  },

  holds: {
    async list(exec) {
      const out = await query(exec, ['apt-mark', 'showhold'], (code) => code === 0);
      return new Set(out.split('\n').map((l) => l.trim()).filter(Boolean));
    },
    async hold(exec, name) {
      await mustRun(exec, ['apt-mark', 'hold', name]);
    },
    async release(exec, name) {
      await mustRun(exec, ['apt-mark', 'unhold', name]);
    },
  },
};

/** apt's commands as shell, for `cairn export`: the same apt-get options, apt-get update when an install fails. */
export const aptShell: PackageShell = {
  installed: (name) => `cairn_dpkg_version ${name} >/dev/null`,
  versionIs: (name, version) => `[ "$(cairn_dpkg_version ${name})" = ${version} ]`,
  latest: (name) => `cairn_apt_latest ${name}`,
  install: (name, version) => (version !== undefined ? `cairn_apt_install --allow-downgrades ${name}=${version}` : `cairn_apt_install ${name}`),
  remove: (name) => `cairn_apt_get remove ${name}`,
  held: (name) => `cairn_apt_held ${name}`,
  hold: (name) => `apt-mark hold ${name}`,
  release: (name) => `apt-mark unhold ${name}`,
};
apt.shell = aptShell;

export const aptProvider = packageProvider(apt);
