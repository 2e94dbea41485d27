/**
 * The executors Cairn can open a target through, by the name a target's `executor:` setting
 * gives (DESIGN §7). Each is imported only when a target uses it, so a local run never loads
 * ssh2 (the CLI's bundle keeps a dynamic import as a chunk of its own).
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { inputError } from '../lib/errors.ts';
import type { NestedPlace } from './nested.ts';
import type { SshSettings } from './ssh/connect.ts';
import { DEFAULT_STATE_DIR, UnreachableError, type Executor } from './types.ts';

/** What an executor reads of a target's settings (the catalog's target settings have these). */
export interface ExecutorSettings extends Partial<SshSettings> {
  executor: string;
  state_dir?: string;
  /** The chroot executor's root file system. */
  root?: string;
  /** A nested target (DESIGN §6): the target it is reached through. */
  via?: string;
  /** The container executor's machine. */
  machine?: string;
  /** The jail executor's jail. */
  jail?: string;
}

/** The target a nested target is reached through, with its own settings (and its own `via`, for a chain). */
export interface ViaTarget {
  name: string;
  settings: ExecutorSettings;
  via?: ViaTarget;
}

export interface ExecutorOpenOptions {
  acceptNewHostKeys?: boolean;
  /** Facts to use instead of the target's own (`--facts FILE`): none are gathered. */
  fixedFacts?: Record<string, unknown>;
  /** This machine's facts, for local targets (read once however many targets ask). */
  localFacts: () => Record<string, unknown>;
  /**
   * Local targets keep a content index in their state_dir (executors/content-index.ts):
   * `save` for `apply` (plan changes nothing), `trust` false for `--checksum`.
   */
  contentIndex?: { trust: boolean; save: boolean };
  /** The target named by the settings' `via:`, resolved (catalog order checked it exists, with no cycle). */
  via?: ViaTarget;
}

/** An open target and its facts, or why it cannot be reached (reported, exit 3, while the others go on). */
export type Opened = { exec: Executor; facts: Record<string, unknown> } | { unreachable: string };

/** Opens target `name`; a target that cannot be reached is an answer, any other error a bug. */
/** Opens an executor and reads its facts (or takes the fixed ones); a target it cannot reach is `unreachable`, not an error. */
async function withFacts(open: () => Promise<Executor>, options: ExecutorOpenOptions): Promise<Opened> {
  try {
    const exec = await open();
    try {
      return { exec, facts: options.fixedFacts ?? (await exec.facts()) };
    } catch (err) {
      await exec.close();
      throw err;
    }
  } catch (err) {
    if (err instanceof UnreachableError) return { unreachable: err.reason };
    throw err;
  }
}

export type OpenExecutor = (name: string, settings: ExecutorSettings, options: ExecutorOpenOptions) => Promise<Opened>;

const EXECUTORS: Readonly<Record<string, OpenExecutor>> = {
  async local(_name, settings, options) {
    const { LocalExecutor } = await import('./local.ts');
    const contentIndex = options.contentIndex && { file: join(settings.state_dir ?? DEFAULT_STATE_DIR, 'content-index.json'), ...options.contentIndex };
    return { exec: new LocalExecutor(contentIndex ? { contentIndex } : {}), facts: options.fixedFacts ?? options.localFacts() };
  },

  async ssh(name, settings, options) {
    // A key file the site names and this machine lacks is the site's mistake, not the host's: exit
    // 2, nothing run, rather than one unreachable target per run. Checked before the first await:
    // the targets opened in the same batch of --forks have not started to connect yet.
    if (settings.identity_file !== undefined) {
      const path = settings.identity_file.replace(/^~(?=\/|$)/, homedir());
      if (!existsSync(path)) {
        throw inputError(`target ${name}: identity_file ${settings.identity_file} does not exist${path === settings.identity_file ? '' : ` (${path})`}`,
          undefined, 'Fix the path in the target\'s settings, or remove identity_file to use ~/.ssh/config, the default keys and ssh-agent');
      }
    }
    const { SshExecutor } = await import('./ssh/executor.ts');
    return withFacts(() => SshExecutor.open(name, { ...settings, host: settings.host ?? name }, {
      ...(options.acceptNewHostKeys ? { acceptNewHostKeys: true } : {}),
    }), options);
  },

  async chroot(name, settings, options) {
    // A site that names the chroot executor without a root is the site's mistake: exit 2.
    if (settings.root === undefined || settings.root === '') {
      throw inputError(`target ${name}: the chroot executor needs root: (the root file system to converge)`, undefined,
        'Set root: in the target\'s settings, or pass --root PATH');
    }
    if (settings.via !== undefined) return nested(name, settings, options, { kind: 'chroot', name: settings.root });
    const { openChroot } = await import('./chroot.ts');
    const root = settings.root;
    return withFacts(() => openChroot(name, root), options);
  },

  async container(name, settings, options) {
    if (!settings.machine) throw inputError(`target ${name}: the container executor needs machine: (the container's name on the target named by via:)`);
    return nested(name, settings, options, { kind: 'container', name: settings.machine });
  },

  async jail(name, settings, options) {
    if (!settings.jail) throw inputError(`target ${name}: the jail executor needs jail: (the jail's name on the target named by via:)`);
    return nested(name, settings, options, { kind: 'jail', name: settings.jail });
  },
};

/**
 * A nested target (DESIGN §6): the outer target is opened with its own settings (a connection of
 * its own, closed with this target's), and the nested shell started through it.
 */
async function nested(name: string, settings: ExecutorSettings, options: ExecutorOpenOptions, place: NestedPlace): Promise<Opened> {
  const via = options.via;
  if (settings.via === undefined || via === undefined) {
    throw inputError(`target ${name}: the ${place.kind} executor needs via: (the target the ${place.kind === 'chroot' ? 'root' : place.kind} is on)`);
  }
  const { fixedFacts: _fixed, contentIndex: _index, via: _via, ...rest } = options;
  const outer = await openExecutor(via.name, via.settings, { ...rest, ...(via.via ? { via: via.via } : {}) });
  if ('unreachable' in outer) return { unreachable: `via ${via.name}: ${outer.unreachable}` };
  const { openNested } = await import('./nested.ts');
  return withFacts(() => openNested(name, place, outer.exec, via.name), options);
}

/** The executor a target's settings name, if this version of Cairn has it. */
export function executorNamed(name: string): OpenExecutor | undefined {
  return Object.hasOwn(EXECUTORS, name) ? EXECUTORS[name] : undefined;
}

/**
 * Opens a target through the executor its settings name. `agent` is not one: its agent runs the
 * whole run where it is, reached through a master (cli/master-client.ts), so a command that needs
 * an executor on this machine (export) finds it unreachable.
 */
export async function openExecutor(name: string, settings: ExecutorSettings, options: ExecutorOpenOptions): Promise<Opened> {
  const open = executorNamed(settings.executor);
  if (settings.executor === 'agent') return { unreachable: `target ${name} is run by its agent through a master (cairn plan, apply, run and facts reach it with --master); this command cannot` };
  if (!open) return { unreachable: `the ${settings.executor} executor is not available in this version of Cairn` };
  return open(name, settings, options);
}
