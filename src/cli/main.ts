/** The `cairn` command (DESIGN §11). Commands import what they need lazily to keep start-up lean. */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ExitCode, InputError } from '../lib/errors.ts';
import { CAIRN_VERSION } from '../lib/version.ts';
import type { ConvergeOptions, RunReport } from './converge.ts';
import type { SelectedTarget } from './site-compiler.ts';
import type { AdHocOptions } from './run.ts';
import type { ShowOptions } from './show.ts';
import type { ExportOptions } from './export.ts';
import type { ProvisionOptions } from './provision.ts';
import type { ImageBuilder } from '../resources/type.ts';
import type { FactsOptions } from './facts.ts';
import { checkRollout, maxFailAmount, serialAmount } from './rollout.ts';
import { storeNamed } from './store-named.ts';
import { registerAgentEnrolment, registerMasterCommands } from './master.ts';
import { tagList } from './tags.ts';
import { showStatus, writeErr, writeOut } from './output.ts';

const sources = new Map<string, string>();

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function seconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number of seconds');
  return n;
}

/** `--forks`: a count of targets; anything else refused (exit 2) rather than quietly taken as 10. */
export function forks(value: string): number {
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number of targets, 1 or more');
  return n;
}

/** The facts of this machine, read once per command. */
let thisMachine: Record<string, unknown> | undefined;
async function localFactsOnce(): Promise<() => Record<string, unknown>> {
  const { localFacts } = await import('../executors/local-facts.ts');
  return () => (thisMachine ??= localFacts());
}

/** The commands `program()` registers (test/cli-commands.test.ts checks the list against them). */
export const COMMAND_NAMES = ['show', 'export', 'plan', 'apply', 'push', 'status', 'agent', 'master', 'facts', 'secret', 'run', 'provision', '__build-child', 'schema'] as const;
type CommandName = (typeof COMMAND_NAMES)[number];

/**
 * The command line, with every command; with `only`, with that command alone: setting up the
 * other commands' options (some 150) is a tenth of a converged run's own time, and a command
 * never looks at its siblings.
 */
export function program(only?: CommandName): Command {
  const want = (name: CommandName) => only === undefined || only === name;
  const cmd = new Command('cairn')
    .description('Describe how machines should be; Cairn converges them.')
    .version(CAIRN_VERSION)
    .exitOverride()
    .configureOutput({ writeOut, writeErr });

  if (want('show')) {
    cmd.command('show')
      .description('print the compiled StateRun and its graph for a target, without touching it')
      .option('--site <dir>', 'the site folder', '.')
      .option('-t, --target <name>', 'a target, group or glob (repeatable; default: all)', collect)
      .option('--var <k=v>', 'set a variable (YAML scalar, or @file.yaml); repeatable', collect)
      .option('--facts <file>', "use these facts instead of gathering them: one target's (YAML/JSON), or `cairn facts --json`'s")
      .option('--json', 'print JSON')
      .option('--tags <a,b>', 'mark the nodes a run with these tags would leave out', tagList)
      .option('--skip-tags <a,b>', 'mark the nodes carrying these tags as left out', tagList)
      .action(async (options: ShowOptions) => {
        const { show } = await import('./show.ts');
        process.exitCode = await show(options, sources, await localFactsOnce());
      });
  }

  if (want('export')) {
    cmd.command('export')
      .description("write a target's run as one POSIX shell script (or cloud-config that runs it) that converges it with no Cairn")
      .option('--site <dir>', 'the site folder', '.')
      .option('-t, --target <name>', 'the target (exactly one)', collect)
      .option('--var <k=v>', 'set a variable (YAML scalar, or @file.yaml); repeatable', collect)
      .option('--facts <file>', "compile with these facts instead of gathering the target's: one target's (YAML/JSON), or `cairn facts --json`'s")
      .option('--format <format>', 'sh (a POSIX script) or cloud-init (#cloud-config user data running it)', 'sh')
      .option('-o, --output <file>', 'write it to this file (mode 0600: it holds every value of the run) instead of stdout')
      .option('--accept-new-host-keys', 'record the keys of SSH hosts not yet in known_hosts (a changed key is always refused)')
      .action(async (options: ExportOptions) => {
        const { exportTarget } = await import('./export.ts');
        process.exitCode = await exportTarget(options, sources, await localFactsOnce());
      });
  }

  for (const mode of (['plan', 'apply'] as const).filter(want)) {
    const c = cmd.command(mode)
      .description(mode === 'plan' ? 'show what would change, changing nothing' : 'converge the targets')
      .option('--site <dir>', 'the site folder', '.')
      .option('-t, --target <name>', 'a target, group or glob (repeatable; default: all)', collect)
      .option('--var <k=v>', 'set a variable (YAML scalar, or @file.yaml); repeatable', collect)
      .option('--facts <file>', "use these facts instead of gathering them: one target's (YAML/JSON), or `cairn facts --json`'s")
      .option('--diff', 'show unified diffs of file content')
      .option('--json', 'print one JSON report')
      .option('--fail-fast', 'stop a target at its first failure')
      .option('--tags <a,b>', 'run only the nodes carrying one of these tags, and what they require', tagList)
      .option('--skip-tags <a,b>', 'leave out the nodes carrying one of these tags', tagList)
      .option('--checksum', 'read every managed file, even one whose stat (inode, size, mtime, ctime) is as a past run verified it')
      .option('--forks <n>', 'targets in parallel', forks, 10)
      .option('--serial <n|n%>', 'roll out in batches of N targets, or N% of them (rounded up)', serialAmount)
      .option('--max-fail <n|n%>', "with --serial: stop when a batch's failed and unreachable targets exceed N, or N% of the batch", maxFailAmount)
      .option('--lock-wait <seconds>', "wait up to this long for another run's lock on a target (default: fail at once)", seconds, 0)
      .option('-v, --verbose', 'print the commands run on targets and how they ended; -vv: their output and per-node timings too', (_: string, n: number) => n + 1, 0)
      .option('--log <file>', 'write what -vv prints to this file, whatever the terminal shows')
      .option('--root <path>', 'converge this root file system through the chroot executor, as the one selected target (its executor becomes chroot with this root)');
    if (mode === 'plan') c.option('--detailed-exitcode', 'exit 0 when in sync, 4 when changes are pending');
    c.option('--accept-new-host-keys', 'record the keys of SSH hosts not yet in known_hosts (a changed key is always refused)');
    masterOptions(c);
    if (mode === 'apply') {
      c.option('--store <url>', "keep the run's report in this store (default: $CAIRN_STORE, the store config, or store: in cairn.yaml, when set)")
        .option('--store-config <file>', 'YAML with url: and credentials; default /etc/cairn/store.yaml');
    }
    c.action(async (options: ConvergeOptions) => {
      checkRollout(options);
      const { SiteCompiler, readFactsFile } = await import('./site-compiler.ts');
      const { openSessions, closeSessions } = await import('./sessions.ts');
      const compiler = new SiteCompiler(options, sources);
      const selected = outerFirst(withRoot(await compiler.select(options.target ?? []), options.root));
      // A nested target whose outer target runs too is opened once that one is done (DESIGN §6).
      const inRun = new Set(selected.map((t) => t.name));
      const waits = (t: SelectedTarget) => t.via !== undefined && inRun.has(t.via.name);
      const now = selected.filter((t) => !waits(t));
      if (!options.json) showStatus(`connecting to ${now.length} target${now.length === 1 ? '' : 's'}…`);
      // Load the engine while connections are being made: compiling its code fills time that
      // would otherwise be spent waiting on the network.
      const engineModule = import('./converge.ts');
      engineModule.catch(() => undefined);
      const { masterFor } = await import('./master-client.ts');
      const openOptions = {
        forks: options.forks,
        master: masterFor(options),
        ...(options.acceptNewHostKeys ? { acceptNewHostKeys: true } : {}),
        ...(options.facts ? { factsOf: (await readFactsFile(options.facts, sources)).factsFor(selected.map((t) => t.name)) } : {}),
        localFacts: await localFactsOnce(),
        contentIndex: { trust: options.checksum !== true, save: mode === 'apply' },
      };
      const sessions = await openSessions(now, openOptions);
      try {
        // Everything is compiled before any target is touched: invalid input changes nothing.
        const known = storeNamed(options)
          ? await (await import('./store-commands.ts')).knownFacts(options, (await compiler.allTargetNames()).filter((n) => !selected.some((t) => t.name === n)))
          : {};
        if (!options.json) showStatus('compiling…');
        const compiled = await compiler.compile(sessions.filter((s) => s.exec || s.remote).map((s) => ({ name: s.name, facts: s.facts ?? {} })), known);
        // Nested targets are compiled from their own facts once they can be reached; compiled now
        // from assumed facts, so that input errors in them stop the command before anything runs.
        const nested = selected.filter(waits);
        const assumed = [];
        for (const t of nested) assumed.push({ name: t.name, facts: (await compiler.assumedFacts(t.name)).facts });
        // Templates of a nested target see the facts of the targets opened before it (it.targets).
        const knownAll = { ...known, ...Object.fromEntries(sessions.filter((s) => s.exec).map((s) => [s.name, s.facts ?? {}])) };
        if (assumed.length) await compiler.compile(assumed, knownAll);
        const later = new Map(nested.map((t) => [t.name, {
          after: t.via!.name,
          open: async () => {
            const [session] = await openSessions([t], openOptions);
            if (!session!.exec) return { session: session! };
            try {
              const [unit] = await compiler.compile([{ name: t.name, facts: session!.facts ?? {} }], knownAll);
              return { session: session!, compiled: unit! };
            } catch (err) {
              await session!.exec.close();
              throw err;
            }
          },
        }]));
        const { converge } = await engineModule;
        let storeCode: number | undefined;
        const keep = mode === 'apply' && storeNamed(options)
          ? async (report: RunReport) => {
            const { keepReports } = await import('./store-commands.ts');
            storeCode = await keepReports(options, report);
          }
          : undefined;
        const placeholders = selected.map((t) => sessions.find((s) => s.name === t.name) ?? { name: t.name });
        const code = await converge(mode, placeholders, new Map(compiled.map((c) => [c.run.target.name, c])), options, keep, later, imagesOnThisMachine(options.site, selected));
        process.exitCode = code === 0 && storeCode !== undefined ? storeCode : code;
      } finally {
        await closeSessions(sessions);
      }
    });
  }

  const storeOption = (c: Command) => c
    .option('--store <url>', 'sqlite:<path> or etcd:<host:port,…> (default: $CAIRN_STORE, the store config, store: in cairn.yaml, else .cairn/store.db in the site)')
    .option('--store-config <file>', 'YAML with url: and credentials (ca, cert, key, user, password); default /etc/cairn/store.yaml');

  if (want('push')) {
    storeOption(cmd.command('push')
      .description('upload the site to the store as one revision (agents converge from it)')
      .option('--site <dir>', 'the site folder', '.')
      .option('--diff', 'show what changed since the stored revision, uploading nothing')
      .option('--json', 'print JSON'))
      .action(async (options: { site: string; store?: string; storeConfig?: string; diff?: boolean; json?: boolean }) => {
        const { push } = await import('./store-commands.ts');
        process.exitCode = await push(options, sources);
      });
  }

  if (want('status')) {
    storeOption(cmd.command('status')
      .description("list targets with their last run's revision, time and counts, from the store")
      .option('--site <dir>', 'the site folder (for its store setting)', '.')
      .option('--json', 'print JSON'))
      .action(async (options: { site: string; store?: string; storeConfig?: string; json?: boolean }) => {
        const { status } = await import('./store-commands.ts');
        process.exitCode = await status(options);
      });
  }

  if (want('agent')) {
    const agentCommand = storeOption(cmd.command('agent')
      .description("watch the store and converge this machine as target NAME whenever a new revision lands")
      // Not a requiredOption: commander would then demand it of `agent enrol` and `agent renew` too.
      .option('--name <target>', "this machine's target name in the site (required)")
      .option('--once', 'converge the newest revision, then exit')
      .option('--work-dir <dir>', 'where revisions are unpacked', '/var/lib/cairn/agent')
      .option('--debounce <ms>', 'wait this long after a change for more before converging', '500')
      .option('--lease-ttl <seconds>', 'how long the lease on the name outlives this agent if it dies (another agent of the name is refused meanwhile)', seconds, 15)
      .option('--lease-wait <seconds>', "wait up to this long for another agent's lease on the name to run out (default: refuse at once, exit 3)", seconds, 0)
      .option('--master <url>', "instead of the store: serve a master's runs over its agent port, https://HOST:8641 (default: the one enrolled with; needs cairn agent enrol first)")
      .option('--dir <dir>', 'with --master: the enrolment folder (key, certificate, CA)', '/var/lib/cairn/agent-tls'))
      .action(async (options: { name?: string; once?: boolean; workDir: string; debounce: string; leaseTtl: number; leaseWait: number; store?: string; storeConfig?: string; master?: string; dir: string }, command: Command) => {
        if (options.master !== undefined || command.getOptionValueSource('dir') === 'cli') {
          const { agentOverMaster } = await import('./agent-master.ts');
          process.exitCode = await agentOverMaster({ ...(options.master !== undefined ? { master: options.master } : {}), dir: options.dir, workDir: options.workDir });
          return;
        }
        if (options.name === undefined) {
          writeErr("error: required option '--name <target>' not specified\n");
          process.exitCode = ExitCode.invalidInput;
          return;
        }
        const { agent } = await import('./store-commands.ts');
        process.exitCode = await agent({ ...options, name: options.name });
      });
    // `agent enrol --name N`: the subcommand's options are its own, not taken by `agent`'s.
    registerAgentEnrolment(agentCommand.enablePositionalOptions());
  }

  if (want('master')) registerMasterCommands(cmd);

  if (want('facts')) {
    masterOptions(cmd.command('facts'))
      .description("print what targets report about themselves (OS, release, init system, package manager, addresses, …)")
      .option('--site <dir>', 'the site folder (without one: this machine)', '.')
      .option('-t, --target <name>', 'a target, group or glob (repeatable; default: all)', collect)
      .option('--json', 'print JSON')
      .option('--forks <n>', 'targets in parallel', forks, 10)
      .option('--accept-new-host-keys', 'record the keys of SSH hosts not yet in known_hosts (a changed key is always refused)')
      .action(async (options: FactsOptions) => {
        const { showFacts } = await import('./facts.ts');
        process.exitCode = await showFacts(options, sources, await localFactsOnce());
      });
  }

  if (want('secret')) {
    const secret = cmd.command('secret').description('age-encrypted `!secret` values in vars files (keys: secrets.yaml; identity: $CAIRN_SECRET_KEY_FILE)');
    secret.command('keygen')
      .description('print a new age identity and its public key')
      .option('--out <file>', 'write the identity to this file (mode 0600, never overwritten) and print only the public key')
      .action(async (options: { out?: string }) => {
        const { keygen } = await import('./secret.ts');
        process.exitCode = await keygen(options);
      });
    secret.command('encrypt')
      .description("print the `!secret` YAML of VALUE (or standard input) for a target's or group's recipients and the admins")
      .argument('[value]')
      .requiredOption('--for <name>', 'a target or group named in secrets.yaml')
      .option('--site <dir>', 'the site folder', '.')
      .action(async (value: string | undefined, options: { site: string; for: string }) => {
        const { encrypt } = await import('./secret.ts');
        process.exitCode = await encrypt(options, value);
      });
    secret.command('rekey')
      .description("encrypt every !secret of the site again to the recipients secrets.yaml lists now (with $CAIRN_SECRET_KEY_FILE's identity)")
      .option('--site <dir>', 'the site folder', '.')
      .action(async (options: { site: string }) => {
        const { rekey } = await import('./secret.ts');
        process.exitCode = await rekey(options);
      });
    secret.command('decrypt')
      .description('print the plaintext of the `!secret` at FILE:LINE (or on standard input)')
      .argument('[file:line]')
      .action(async (where: string | undefined) => {
        const { decrypt } = await import('./secret.ts');
        process.exitCode = await decrypt(where);
      });
  }

  if (want('run')) {
    masterOptions(cmd.command('run'))
      .description('run one command on every selected target (after --: argv as given, or one string with shell syntax through sh -c)')
      .argument('<command...>', 'the command and its arguments, after --')
      .option('--site <dir>', 'the site folder', '.')
      .option('-t, --target <name>', 'a target, group, glob or !exclusion (repeatable; default: all)', collect)
      .option('--forks <n>', 'targets in parallel', forks, 10)
      .option('--become', "run as root: an SSH target's become (sudo -n), locally sudo -n unless already root")
      .option('--json', 'print JSON')
      .option('--accept-new-host-keys', 'record the keys of SSH hosts not yet in known_hosts (a changed key is always refused)')
      .action(async (words: string[], options: AdHocOptions) => {
        const { adHoc } = await import('./run.ts');
        process.exitCode = await adHoc(words, options, sources, await localFactsOnce());
      });
  }

  if (want('provision')) {
    cmd.command('provision')
      .description('build a guest or container image through a profile of the site (profiles/P.yaml); --clean NAME clears a kept or interrupted build')
      .argument('[name]', 'the guest or container to build')
      .option('--site <dir>', 'the site folder', '.')
      .option('--profile <name>', "the profile (the site's profiles/<name>.yaml)")
      .option('--arg <k=v>', "override one of the profile's args (repeatable)", collect)
      .option('--keep-on-failure', 'keep what a failed build made (mounts, loop devices, volumes, definition, work folder) and list it')
      .option('--output <dir>', 'where the images and the definition go (default /var/lib/cairn/images/NAME)')
      .option('--builds <dir>', "where builds keep their work folders and journals (default $CAIRN_BUILDS_DIR, else /var/lib/cairn/builds)")
      .option('--clean <name>', 'clear the kept or interrupted build of NAME')
      .option('--json', 'print one JSON event a line')
      .option('-v, --verbose', "print the script's commands and log lines, and each action", (_: string, n: number) => n + 1, 0)
      .action(async (name: string | undefined, options: ProvisionOptions) => {
        const { provisionCommand } = await import('./provision.ts');
        process.exitCode = await provisionCommand(name, options, sources);
      });
  }

  if (want('__build-child')) {
    cmd.command('__build-child', { hidden: true })
      .description("a build's child process (started by cairn provision, never by hand)")
      .action(async () => {
        const { buildChild } = await import('../provision/child.ts');
        buildChild();
        // The child lives as long as its IPC channel: main() must not return before.
        await new Promise(() => undefined);
      });
  }

  if (want('schema')) {
    cmd.command('schema')
      .description('print the JSON Schema of state files (or of cairn.yaml / inventory.yaml)')
      .addOption(new Option('--for <file>', 'which file kind').choices(['state', 'site', 'inventory']).default('state'))
      .action(async (options: { for: 'state' | 'site' | 'inventory' }) => {
        const { jsonSchema } = await import('./schema.ts');
        writeOut(`${JSON.stringify(jsonSchema(options.for), null, 2)}\n`);
      });
  }

  // `cairn master token create --name N` and `cairn agent enrol --name N`: options after a
  // subcommand are that subcommand's, not its parent's (`master` and `agent` have a --name of
  // their own). Set last, so the other commands keep commander's default parsing.
  cmd.enablePositionalOptions();
  return cmd;
}

/** How targets with `executor: agent` reach their master (cli/master-client.ts). */
function masterOptions(c: Command): Command {
  return c
    .option('--master <url>', "the master's API for targets with executor: agent, https://HOST:8640 (default: $CAIRN_MASTER, else master: in cairn.yaml)")
    .option('--master-ca <file>', "the CA (PEM) the master's API certificate is checked against (default: $CAIRN_MASTER_CA, else the system's)")
    .option('--token-file <file>', 'a file holding the API token (default: $CAIRN_TOKEN, else $CAIRN_TOKEN_FILE)');
}

export async function main(argv: string[]): Promise<number> {
  // Commands report their code through process.exitCode; the caller gets it back as it was, so
  // main() can run more than once in one process (tests) without one run's code leaking into the
  // next, nor one run's sources and facts.
  const outer = process.exitCode;
  sources.clear();
  thisMachine = undefined;
  try {
    process.exitCode = ExitCode.ok;
    // `cairn apply …`: just that command; anything else (help, options first, a misspelt
    // command that commander suggests a name for) gets them all.
    await program(COMMAND_NAMES.find((name) => name === argv[0])).parseAsync(argv, { from: 'user' });
    return Number(process.exitCode ?? ExitCode.ok);
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.invalidInput;
    }
    if (err instanceof InputError) {
      const { formatDiagnostics } = await import('./diagnostics.ts');
      writeErr(formatDiagnostics(err.diagnostics, sources));
      return err.exitCode;
    }
    writeErr(`cairn: internal error: ${(err as Error).stack ?? String(err)}\n`);
    return 70;
  } finally {
    process.exitCode = outer;
  }
}

/**
 * The provisioner (DESIGN §10) for the lifecycle types of targets run on this machine (executor
 * local or chroot): builds through the site's profiles. Loaded only when a build is asked for.
 */
export function imagesOnThisMachine(site: string, selected: { name: string; settings: { executor: string; via?: string } }[]): (target: string) => ImageBuilder | undefined {
  // A nested target (via:) runs on its outer target's machine, even with the chroot executor.
  const here = new Set(selected.filter((t) => (t.settings.executor === 'local' || t.settings.executor === 'chroot') && t.settings.via === undefined).map((t) => t.name));
  const images: ImageBuilder = {
    build: async (request) => (await import('./provision.ts')).localImageBuilder(site).build(request),
  };
  return (target) => (here.has(target) ? images : undefined);
}

/**
 * `--root PATH`: the one selected target is converged as a root file system, through the chroot
 * executor (DESIGN §7). Several targets would converge the same root with different states: the
 * selection must name one.
 */
function withRoot<T extends { name: string; settings: { executor: string; root?: string; via?: string }; via?: unknown }>(selected: T[], root: string | undefined): T[] {
  if (root === undefined) return selected;
  if (selected.length !== 1) {
    throw new InputError([{
      message: `--root converges one root, but ${selected.length === 0 ? 'no target is' : `${selected.length} targets are`} selected${selected.length > 0 ? ` (${selected.slice(0, 5).map((t) => t.name).join(', ')}${selected.length > 5 ? ', …' : ''})` : ''}`,
      hint: 'select the target whose states the root gets with --target NAME',
    }]);
  }
  // The root is on this machine: a via the target has leads nowhere here.
  return selected.map(({ via: _via, ...t }) => ({ ...t, settings: { ...t.settings, executor: 'chroot', root, via: undefined } }) as T);
}

/**
 * The selection in its order, except that a nested target comes after the target it is reached
 * through (`via:`) when both are selected: it is opened once that one is done (DESIGN §6). The
 * catalog has refused cycles of vias.
 */
function outerFirst<T extends { name: string; via?: { name: string } }>(selected: T[]): T[] {
  const names = new Set(selected.map((t) => t.name));
  const placed = new Set<string>();
  const out: T[] = [];
  let rest = selected;
  while (rest.length > 0) {
    const ready = rest.filter((t) => !t.via || !names.has(t.via.name) || placed.has(t.via.name));
    for (const t of ready) {
      out.push(t);
      placed.add(t.name);
    }
    rest = rest.filter((t) => !placed.has(t.name));
    if (ready.length === 0) return [...out, ...rest];
  }
  return out;
}
