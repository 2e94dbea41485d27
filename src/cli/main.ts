/** The `cairn` command (DESIGN §11). Commands import what they need lazily to keep start-up lean. */
import { Command, CommanderError, Option } from 'commander';
import { ExitCode, InputError } from '../lib/errors.ts';

const sources = new Map<string, string>();

export interface ConvergeOptions {
  site: string;
  target?: string[];
  var?: string[];
  facts?: string;
  diff?: boolean;
  json?: boolean;
  failFast?: boolean;
  forks: string;
  detailedExitcode?: boolean;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

async function compileFor(options: { site: string; target?: string[]; var?: string[]; facts?: string }, localFacts?: Record<string, unknown>) {
  const { Diagnostics } = await import('../lib/errors.ts');
  const { loadSite } = await import('../site/load.ts');
  const { buildCatalog, selectTargets } = await import('../catalog/catalog.ts');
  const { compile } = await import('../catalog/compile.ts');
  const { parseCliVars } = await import('../catalog/vars.ts');
  const { buildGraph } = await import('../graph/build.ts');
  const d = new Diagnostics();
  const site = await loadSite(options.site, d, sources);
  const catalog = buildCatalog(site, d);
  d.throwIfAny();
  const cliVars = parseCliVars(options.var ?? [], process.cwd());
  const selectors = options.target?.length ? options.target : ['*'];
  const targets = selectTargets(catalog, selectors);
  const fixedFacts = options.facts ? await readFacts(options.facts) : undefined;
  // This machine's facts, gathered once for all local targets.
  let local = localFacts;
  const results = [];
  const errors = new Diagnostics();
  for (const target of targets) {
    if (!fixedFacts && target.settings.executor === 'local') local ??= (await import('../executors/local-facts.ts')).localFacts();
    const facts = fixedFacts ?? (target.settings.executor === 'local' ? local! : {});
    const run = errors.collect(() => compile(catalog, target, { facts, cliVars }));
    const graph = run && errors.collect(() => buildGraph(run));
    if (run && graph) results.push({ run, graph });
  }
  errors.throwIfAny();
  return results;
}

async function readFacts(path: string): Promise<Record<string, unknown>> {
  const { readDataFile } = await import('../catalog/vars.ts');
  return readDataFile(path, '--facts') as Record<string, unknown>;
}

export function program(): Command {
  const cmd = new Command('cairn')
    .description('Describe how machines should be; Cairn converges them.')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  cmd.command('show')
    .description('print the compiled StateRun and its graph for a target, without touching it')
    .option('--site <dir>', 'the site folder', '.')
    .option('-t, --target <name>', 'a target, group or glob (repeatable; default: all)', collect)
    .option('--var <k=v>', 'set a variable (YAML scalar, or @file.yaml); repeatable', collect)
    .option('--facts <file>', 'use these facts (YAML/JSON) instead of gathering them')
    .option('--json', 'print JSON')
    .action(async (options: { site: string; target?: string[]; var?: string[]; facts?: string; json?: boolean }) => {
      const results = await compileFor(options);
      if (options.json) {
        const payload = results.map(({ run, graph }) => ({ run, graph }));
        process.stdout.write(`${JSON.stringify(payload.length === 1 ? payload[0] : payload, null, 2)}\n`);
      } else {
        const { formatShow } = await import('./show.ts');
        process.stdout.write(results.map(({ run, graph }) => formatShow(run, graph)).join('\n'));
      }
    });

  for (const mode of ['plan', 'apply'] as const) {
    const c = cmd.command(mode)
      .description(mode === 'plan' ? 'show what would change, changing nothing' : 'converge the targets')
      .option('--site <dir>', 'the site folder', '.')
      .option('-t, --target <name>', 'a target, group or glob (repeatable; default: all)', collect)
      .option('--var <k=v>', 'set a variable (YAML scalar, or @file.yaml); repeatable', collect)
      .option('--facts <file>', 'use these facts (YAML/JSON) instead of gathering them')
      .option('--diff', 'show unified diffs of file content')
      .option('--json', 'print one JSON report')
      .option('--fail-fast', 'stop a target at its first failure')
      .option('--forks <n>', 'targets in parallel', '10');
    if (mode === 'plan') c.option('--detailed-exitcode', 'exit 0 when in sync, 4 when changes are pending');
    c.action(async (options: ConvergeOptions) => {
      const { cachedCompile } = await import('./compile-cache.ts');
      const { localFacts } = await import('../executors/local-facts.ts');
      const facts = localFacts();
      const results = await cachedCompile({
        site: options.site,
        selectors: options.target ?? [],
        vars: options.var ?? [],
        ...(options.facts ? { factsFile: options.facts } : {}),
        localFacts: facts,
      }, () => compileFor(options, facts));
      const { converge } = await import('./converge.ts');
      process.exitCode = await converge(mode, results, options);
    });
  }

  cmd.command('schema')
    .description('print the JSON Schema of state files (or of cairn.yaml / inventory.yaml)')
    .addOption(new Option('--for <file>', 'which file kind').choices(['state', 'site', 'inventory']).default('state'))
    .action(async (options: { for: 'state' | 'site' | 'inventory' }) => {
      const { jsonSchema } = await import('./schema.ts');
      process.stdout.write(`${JSON.stringify(jsonSchema(options.for), null, 2)}\n`);
    });

  return cmd;
}

export async function main(argv: string[]): Promise<number> {
  try {
    process.exitCode = ExitCode.ok;
    await program().parseAsync(argv, { from: 'user' });
    return Number(process.exitCode ?? ExitCode.ok);
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.invalidInput;
    }
    if (err instanceof InputError) {
      const { formatDiagnostics } = await import('./diagnostics.ts');
      process.stderr.write(formatDiagnostics(err.diagnostics, sources));
      return err.exitCode;
    }
    process.stderr.write(`cairn: internal error: ${(err as Error).stack ?? String(err)}\n`);
    return 70;
  }
}
