/**
 * The Red Hat family: rpm reads, dnf (or yum on RHEL/CentOS 7) installs, removes and says which
 * installed packages have upgrades. dnf and yum refresh expired metadata by themselves.
 */
import type { Executor } from '../../executors/types.ts';
import { ApplyError } from '../type.ts';
import { toolError } from '../commands.ts';
import { addVersion, C_LOCALE, mustRun, packageProvider, query, type PackageManager, type Versions } from './manager.ts';

/** rpm expands `\t` and `\n` itself. EPOCH is "(none)" when the package has none. */
export const RPM_QUERY_FORMAT = '%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n';

/** `rpm -q --qf` lines as `[epoch:]version-release`, keyed by name and by name.arch. */
export function parseRpmQuery(stdout: string): Versions {
  const versions: Versions = new Map();
  for (const line of stdout.split('\n')) {
    const fields = line.split('\t');
    if (fields.length !== 5) continue; // "package nosuch is not installed"
    const [name, epoch, version, release, arch] = fields as [string, string, string, string, string];
    const evr = `${epoch === '(none)' || epoch === '0' || epoch === '' ? '' : `${epoch}:`}${version}-${release}`;
    addVersion(versions, name, evr);
    addVersion(versions, `${name}.${arch}`, evr);
  }
  return versions;
}

/** A part may give `version`, `version-release` or `epoch:version-release`. */
export function rpmVersionMatches(installed: string, wanted: string): boolean {
  const noEpoch = installed.replace(/^\d+:/, '');
  return wanted === installed || wanted === noEpoch || wanted === noEpoch.replace(/-[^-]*$/, '') || wanted === `0:${noEpoch}`;
}

/** `dnf repoquery --upgrades --qf '%{name}\t%{evr}'` lines (dnf 4 ends each with a newline). */
export function parseRepoquery(stdout: string): Map<string, string> {
  const upgrades = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const [name, evr] = line.trim().split('\t');
    if (name && evr) upgrades.set(name, evr);
  }
  return upgrades;
}

/**
 * `yum check-update` (exit 100 when there are updates): `name.arch  evr  repo` triples, which yum
 * wraps onto two lines when a name is long, so they are read as a stream of words; the
 * "Obsoleting Packages" section after them is not updates.
 */
export function parseCheckUpdate(stdout: string): Map<string, string> {
  const section = stdout.split(/^Obsoleting Packages/m)[0]!;
  const words = section.split(/\s+/).filter(Boolean);
  const upgrades = new Map<string, string>();
  for (let i = 0; i + 2 < words.length; i += 3) {
    const nameArch = words[i]!;
    const dot = nameArch.lastIndexOf('.');
    if (dot <= 0) break;
    upgrades.set(nameArch.slice(0, dot), words[i + 1]!);
  }
  return upgrades;
}

async function rpmInstalled(exec: Executor, names: string[]): Promise<Versions> {
  // rpm's exit status counts the names that are not installed.
  return parseRpmQuery(await query(exec, ['rpm', '-q', '--qf', RPM_QUERY_FORMAT, ...names], () => true));
}

/**
 * `dnf versionlock list` lines (dnf 4: `name-epoch:version-release.*`; yum: `epoch:name-version-release.*`;
 * dnf 5: a `Package name: name` line per entry) → the names locked; exclusions (`!name…`) are not holds.
 */
export function parseVersionlockList(stdout: string): Set<string> {
  const held = new Set<string>();
  for (const line of stdout.split('\n')) {
    const dnf5 = /^Package name: (\S+)$/.exec(line.trim());
    if (dnf5) {
      held.add(dnf5[1]!);
      continue;
    }
    const m = /^(?:\d+:)?(\S+?)-(?:\d+:)?[^-\s]+-[^-\s]+$/.exec(line.trim().replace(/\.\*$/, ''));
    if (m && !line.trim().startsWith('!')) held.add(m[1]!);
  }
  return held;
}

/** The words of dnf and yum for "no versionlock plugin here". */
const NO_VERSIONLOCK = /No such command: versionlock|Unknown argument "versionlock"/;

function rpmManager(tool: 'dnf' | 'yum'): PackageManager {
  /** `dnf versionlock …` that must succeed; without the plugin, an error that says which package brings it. */
  const versionlock = async (exec: Executor, args: string[]) => {
    const r = await exec.run([tool, 'versionlock', ...args], { env: C_LOCALE });
    if (r.code === 0 && !r.timedOut) return r;
    if (NO_VERSIONLOCK.test(`${r.stdout}${r.stderr}`)) {
      throw new ApplyError(`${tool} has no versionlock command here: holding a package needs its versionlock plugin ` +
        `(declare \`package: versionlock\` before it: ${tool === 'dnf' ? 'python3-dnf-plugin-versionlock' : 'yum-plugin-versionlock'}), or write hold: false`);
    }
    throw toolError(`${tool} versionlock ${args.join(' ')}`, r);
  };
  return {
    name: tool,
    serves: [tool],
    installed: rpmInstalled,

    async upgrades(exec, names) {
      if (tool === 'dnf') {
        const argv = ['dnf', 'repoquery', '-q', '--upgrades', '--latest-limit=1', '--qf', '%{name}\\t%{evr}', ...names];
        return parseRepoquery(await query(exec, argv, (code) => code === 0));
      }
      const out = await query(exec, ['yum', '-q', 'check-update', ...names], (code) => code === 0 || code === 100);
      return parseCheckUpdate(out);
    },

    versionMatches: rpmVersionMatches,

    async install(exec, { name, version, installed, upgrade }) {
      const spec = version !== undefined ? `${name}-${version}` : name;
      // dnf install moves an installed package to the version asked for, up or down; yum only up.
      const verb = upgrade ? 'upgrade' : 'install';
      await mustRun(exec, [tool, verb, '-y', spec]);
      if (tool === 'yum' && version !== undefined && installed !== undefined) {
        const now = (await rpmInstalled(exec, [name])).get(name) ?? [];
        if (!now.some((v) => rpmVersionMatches(v, version))) {
          throw new ApplyError(`yum install -y ${spec} left ${name} at ${now.join(', ') || 'nothing'}: yum install does not downgrade (run yum downgrade ${spec})`);
        }
      }
    },

    async remove(exec, name) {
      await mustRun(exec, [tool, 'remove', '-y', name]);
    },

    // Locks the installed version: an install or upgrade of another one is refused until released.
    holds: {
      async list(exec) {
        const r = await exec.run([tool, '-q', 'versionlock', 'list'], { env: C_LOCALE });
        // Without the plugin nothing can be locked: nothing is held.
        if (r.code !== 0 && NO_VERSIONLOCK.test(`${r.stdout}${r.stderr}`)) return new Set<string>();
        if (r.code !== 0 || r.timedOut) throw toolError(`${tool} versionlock list`, r);
        return parseVersionlockList(r.stdout);
      },
      async hold(exec, name) {
        await versionlock(exec, ['add', name]);
      },
      async release(exec, name) {
        await versionlock(exec, ['delete', name]);
      },
    },
  };
}

export const dnf = rpmManager('dnf');
export const yum = rpmManager('yum');
export const dnfProvider = packageProvider(dnf);
export const yumProvider = packageProvider(yum);
