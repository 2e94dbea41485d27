/**
 * What every package provider shares: the OS-agnostic name mapped through the OS tables, one
 * batched query of installed versions (and, for `latest`, one of pending upgrades) for all the
 * run's package nodes, and state reported in the desired's vocabulary. A package manager supplies
 * only its commands and parsers (apt.ts, dnf.ts, apk.ts, pacman.ts, pkg.ts).
 */
import type { Executor, RunResult } from '../../executors/types.ts';
import { must, toolError } from '../commands.ts';
import { osName, uses } from '../os.ts';
import { takePackageIndexChange, packageIndexChanged } from '../package-index.ts';
import { shellQuote } from '../../lib/shell.ts';
import { shellRefusal } from '../shell-prelude.ts';
import { ApplyError, type Current, type Provider, type ProviderContext, type Desired, type ShellProvider } from '../type.ts';
import type { packageType } from './type.ts';

type PackageAttributes = Desired<typeof packageType>;

/** Installed versions by package name (several when a package is installed for several arches). */
export type Versions = Map<string, string[]>;

export interface InstallRequest {
  name: string;
  /** An exact version to install (the part's `version`). */
  version?: string;
  /** The installed version, when the package is installed (an upgrade or a version change). */
  installed?: string;
  /** `ensure: latest`: bring an installed package up to the repositories' candidate. */
  upgrade: boolean;
}

export interface PackageManager {
  /** The provider's name (`provider: apt`). */
  name: string;
  /** The `package_manager` values (OS tables or facts) this manager serves. */
  serves: string[];
  /** Installed versions of `names`, with one command. */
  installed(exec: Executor, names: string[]): Promise<Versions>;
  /** The newer version the repositories offer for each of `names` that has one, with one command. */
  upgrades(exec: Executor, names: string[], installed: Versions): Promise<Map<string, string>>;
  /** Whether an installed version is the one a part asks for, as the part spells it. */
  versionMatches(installed: string, wanted: string): boolean;
  install(exec: Executor, request: InstallRequest): Promise<void>;
  remove(exec: Executor, name: string): Promise<void>;
  /**
   * Re-reads the repositories' indexes (apt-get update, apk update), run before the next install
   * after a `package_repository` changed; absent: the manager loads a new repository's index by
   * itself (dnf keeps one cache per repository URL).
   */
  refreshIndex?(exec: Executor): Promise<void>;
  /** The manager's own hold (apt-mark hold, dnf versionlock, apk's `name=version`, pkg lock). */
  holds?: Holds;
  /** Why this manager cannot hold a package, and what to do instead (when it has no `holds`). */
  noHold?: string;
  /** The same commands as POSIX sh, for `cairn export` (resources/shell-prelude.ts has their functions). */
  shell?: PackageShell;
}

/**
 * A package manager's commands as shell text, each for one package (its name and version already
 * quoted): tests that exit 0 when true, and actions. packageProvider composes them into a node's
 * check and apply, with the same decisions its `apply` makes.
 */
export interface PackageShell {
  installed(name: string): string;
  /** Installed at `version` as the part spells it (apk: with or without its release). */
  versionIs(name: string, version: string): string;
  /** Installed, at the version the repositories offer. */
  latest(name: string): string;
  /** Installs (at `version`); `upgrade`: brings an installed package to the candidate. */
  install(name: string, version: string | undefined, upgrade: boolean): string;
  remove(name: string): string;
  held(name: string): string;
  hold(name: string): string;
  release(name: string): string;
}

/** Holding a package at its installed version, so no upgrade moves it (`version:` pins, `hold:`). */
export interface Holds {
  /** The names held now, with one command (or one file read). */
  list(exec: Executor): Promise<Set<string>>;
  /** Holds `name` at the version installed. */
  hold(exec: Executor, name: string): Promise<void>;
  release(exec: Executor, name: string): Promise<void>;
  /** Installing an exact version holds it already (apk writes `name=version` to its world file). */
  installWithVersionHolds?: boolean;
}

/** Tools speak English here, so their output can be parsed and their errors matched. */
export const C_LOCALE = { LC_ALL: 'C' };

/** Options whose next word is their value, in the commands these providers run. */
const TAKES_VALUE = new Set(['-o', '-l', '--qf']);

/** What a failure message calls a command: the tool, its operation and its operands, without options. */
export function labelOf(argv: string[]): string {
  // pacman's operations are options (-S, -R, -Q): they stay.
  return argv.filter((w, i) => (!w.startsWith('-') || /^-[A-Z]$/.test(w)) && !TAKES_VALUE.has(argv[i - 1] ?? '')).join(' ');
}

/** Runs a package manager's command that must succeed; its failure names it and carries the tool's own error. */
export function mustRun(exec: Executor, argv: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return must(exec, argv, { env: { ...C_LOCALE, ...env }, label: labelOf(argv) });
}

/** Runs a query whose exit status only says "some names are unknown" (dpkg-query, rpm -q, pacman -Q). */
export async function query(exec: Executor, argv: string[], okCodes: (code: number) => boolean): Promise<string> {
  const r = await exec.run(argv, { env: C_LOCALE });
  if (r.timedOut || !okCodes(r.code)) throw toolError(argv.slice(0, 2).join(' '), r);
  return r.stdout;
}

export function addVersion(versions: Versions, name: string, version: string): void {
  const list = versions.get(name);
  if (list) {
    if (!list.includes(version)) list.push(version);
  } else versions.set(name, [version]);
}

/** The names a batch reads: every package node's mapped name (base-system ones need no query). */
function peerNames(ctx: ProviderContext, which: (peer: Record<string, unknown>) => boolean): string[] {
  const names = new Set<string>();
  for (const peer of ctx.peers()) {
    if (typeof peer.name !== 'string' || !which(peer)) continue;
    const mapped = osName(ctx.os, 'packages', peer.name);
    if (mapped !== null) names.add(mapped);
  }
  return [...names].sort();
}

/**
 * One reading for all the run's packages: `load` runs once with every peer's name (gathered only
 * when the reading is taken, not at every node); a name no peer has (a transition's overlay) is
 * read on its own.
 */
async function batched<T>(ctx: ProviderContext, key: string, name: string, names: () => string[], load: (names: string[]) => Promise<Map<string, T>>): Promise<T | undefined> {
  const shared = await ctx.batch(key, async () => {
    const peers = names();
    const all = peers.includes(name) ? peers : [...peers, name];
    return { asked: new Set(all), found: await load(all) };
  });
  if (shared.asked.has(name)) return shared.found.get(name);
  return (await load([name])).get(name);
}

/** Why a part cannot have a package the OS tables map to false (part of the base system), if it cannot. */
function baseSystemRefusal(desired: PackageAttributes, os: string): string | undefined {
  const why = `${desired.name} is part of the base system on ${os} (the OS tables map it to false)`;
  if (desired.ensure === 'absent') return `${why}: it cannot be removed`;
  if (desired.version !== undefined) return `${why}: its version cannot be chosen`;
  if (desired.hold === true) return `${why}: it cannot be held`;
  return undefined;
}

function baseSystem(ctx: ProviderContext, desired: PackageAttributes): Current<typeof packageType> {
  const refusal = baseSystemRefusal(desired, String(ctx.facts.distribution ?? ctx.facts.os_family ?? 'this OS'));
  if (refusal) throw new ApplyError(refusal);
  // Nothing to install and nothing to ask: in sync as declared.
  return { name: desired.name, ensure: desired.ensure, ...(desired.hold !== undefined ? { hold: desired.hold } : {}) };
}

/** Whether a node's package is where the part wants it, as a shell test (`name`: the OS's, quoted). */
function shellInSync(sh: PackageShell, name: string, desired: PackageAttributes): string {
  if (desired.ensure === 'absent') return `! ${sh.installed(name)}`;
  const tests = [
    desired.ensure === 'latest' ? sh.latest(name) : desired.version !== undefined ? sh.versionIs(name, shellQuote(desired.version)) : sh.installed(name),
  ];
  if (desired.hold === true) tests.push(sh.held(name));
  else if (desired.hold === false) tests.push(`! ${sh.held(name)}`);
  return tests.join(' && ');
}

/**
 * `apply` as shell: what the TypeScript apply decides from its reading, decided by the script
 * from the target's state when it runs. A held package is released to be moved or removed, and
 * held again when its install fails.
 */
function shellConverge(sh: PackageShell, name: string, desired: PackageAttributes, manager: PackageManager): string {
  if (desired.ensure === 'absent') return `if ${sh.installed(name)}; then { ! ${sh.held(name)} || ${sh.release(name)}; } && ${sh.remove(name)}; fi`;
  const version = desired.version !== undefined ? shellQuote(desired.version) : undefined;
  const placed = desired.ensure === 'latest' ? sh.latest(name) : version !== undefined ? sh.versionIs(name, version) : sh.installed(name);
  const install = sh.install(name, version, desired.ensure === 'latest');
  const steps = [
    `if ! ${placed}; then\n  if ${sh.held(name)}; then ${sh.release(name)} && { ${install} || { ${sh.hold(name)}; false; }; }; else ${install}; fi\nfi`,
  ];
  if (desired.hold === true) {
    if (!manager.holds) return shellRefusal(manager.noHold ?? `${manager.name} cannot hold packages`);
    steps.push(`{ ${sh.held(name)} || ${sh.hold(name)}; }`);
  } else if (desired.hold === false) {
    steps.push(`{ ! ${sh.held(name)} || ${sh.release(name)}; }`);
  }
  return steps.join(' &&\n');
}

export function packageProvider(manager: PackageManager): Provider<typeof packageType> {
  const installedOf = (ctx: ProviderContext, name: string) =>
    batched(ctx, `package:${manager.name}:installed`, name, () => peerNames(ctx, () => true), (names) => manager.installed(ctx.exec, names));

  const upgradeOf = (ctx: ProviderContext, name: string) =>
    batched(ctx, `package:${manager.name}:upgrades`, name, () => peerNames(ctx, (p) => p.ensure === 'latest'), async (names) => {
      const installed = new Map<string, string[]>();
      for (const n of names) {
        const v = await installedOf(ctx, n);
        if (v) installed.set(n, v);
      }
      // Only installed packages can be behind; nothing to ask when none is.
      return installed.size ? manager.upgrades(ctx.exec, [...installed.keys()], installed) : new Map<string, string>();
    });

  const heldOf = (ctx: ProviderContext, name: string): Promise<boolean> =>
    manager.holds
      ? ctx.batch(`package:${manager.name}:holds`, () => manager.holds!.list(ctx.exec)).then((held) => held.has(name))
      : Promise.resolve(false);

  const sh = manager.shell;
  return {
    type: 'package',
    name: manager.name,
    suitable: uses('package_manager', ...manager.serves),
    ...(sh ? {
      shell: {
        check(desired, ctx) {
          const os = ctx?.os ?? {};
          const name = osName(os, 'packages', desired.name);
          if (name === null) return baseSystemRefusal(desired, 'this OS') ? 'false' : 'true';
          return shellInSync(sh, shellQuote(name), desired);
        },
        apply(desired, _action, ctx) {
          const os = ctx?.os ?? {};
          const name = osName(os, 'packages', desired.name);
          if (name === null) return shellRefusal(baseSystemRefusal(desired, 'this OS') ?? `${desired.name} is part of the base system`);
          return shellConverge(sh, shellQuote(name), desired, manager);
        },
      } satisfies ShellProvider<typeof packageType>,
    } : {}),

    async read(ctx, desired) {
      const name = osName(ctx.os, 'packages', desired.name);
      if (name === null) return baseSystem(ctx, desired);
      const versions = await installedOf(ctx, name);
      if (!versions?.length) return undefined;
      const wanted = typeof desired.version === 'string' ? desired.version : undefined;
      const current: Record<string, unknown> = { name: desired.name, ensure: 'present', version: versions.at(-1), hold: await heldOf(ctx, name) };
      if (wanted !== undefined && versions.some((v) => manager.versionMatches(v, wanted))) current.version = wanted;
      if (desired.ensure === 'latest') current.ensure = (await upgradeOf(ctx, name)) === undefined ? 'latest' : 'present';
      return current;
    },

    async apply(ctx, action, desired, current) {
      const name = osName(ctx.os, 'packages', desired.name);
      if (name === null) {
        baseSystem(ctx, desired);
        return;
      }
      const holds = manager.holds;
      let held = current?.hold === true;
      if (action === 'destroy') {
        // A held package is released first: apt refuses to remove it, dnf would keep a lock for nothing.
        if (held && holds) await holds.release(ctx.exec, name);
        return manager.remove(ctx.exec, name);
      }
      const wantHold = desired.hold === true;
      if (wantHold && !holds) throw new ApplyError(manager.noHold ?? `${manager.name} cannot hold packages`);
      const installed = current && current.ensure !== 'absent' && typeof current.version === 'string' ? current.version : undefined;
      const version = typeof desired.version === 'string' ? desired.version : undefined;
      const needsInstall = installed === undefined || (version !== undefined && current?.version !== version) ||
        (desired.ensure === 'latest' && current?.ensure !== 'latest');
      if (needsInstall) {
        if (takePackageIndexChange(ctx.exec) && manager.refreshIndex) {
          try {
            await manager.refreshIndex(ctx.exec);
          } catch (err) {
            // Still stale: the next install on this target tries again.
            packageIndexChanged(ctx.exec);
            throw err;
          }
        }
        // A hold keeps the package where it is: released to move it, held again after (also
        // when the install fails: the package stays where it was, and held).
        const wasHeld = held && holds !== undefined;
        if (wasHeld) {
          await holds.release(ctx.exec, name);
          held = false;
        }
        try {
          await manager.install(ctx.exec, {
            name,
            ...(version !== undefined ? { version } : {}),
            ...(installed !== undefined ? { installed } : {}),
            upgrade: desired.ensure === 'latest' && installed !== undefined,
          });
        } catch (err) {
          // The install's error is the node's: a failed re-hold must not replace it.
          if (wasHeld) await holds.hold(ctx.exec, name).catch(() => undefined);
          throw err;
        }
        if (version !== undefined && holds?.installWithVersionHolds) held = true;
      }
      if (wantHold && !held) await holds!.hold(ctx.exec, name);
      else if (desired.hold === false && held && holds) await holds.release(ctx.exec, name);
    },
  };
}
