/**
 * `cairn export --target T --format sh|cloud-init` (DESIGN §11): the target's run compiled with
 * its facts (gathered as `plan` does, or `--facts FILE`) and written out as one POSIX script, or as
 * cloud-config user data that runs it. The script holds the run's values, secrets included.
 */
import { writeFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { formatPos, InputError, inputError } from '../lib/errors.ts';
import { writeErr, writeOut } from './output.ts';

export interface ExportOptions {
  site: string;
  target?: string[];
  var?: string[];
  facts?: string;
  format: string;
  output?: string;
  acceptNewHostKeys?: boolean;
}

/** The script as cloud-config: written to a root-only file, then run once by cloud-init. */
export function cloudInit(script: string, target: string): string {
  const path = `/var/lib/cairn/export-${target.replace(/[^A-Za-z0-9_.-]/g, '_')}.sh`;
  const body = script.split('\n').map((l) => (l === '' ? '' : `      ${l}`)).join('\n');
  return [
    '#cloud-config',
    `# Converges target ${target} with the script \`cairn export --format sh\` writes (DESIGN §11).`,
    'write_files:',
    `  - path: ${path}`,
    "    permissions: '0700'",
    '    owner: root:root',
    '    content: |',
    body.replace(/\n+$/, ''),
    'runcmd:',
    `  - [sh, ${path}]`,
    '',
  ].join('\n');
}

export async function exportTarget(options: ExportOptions, sources: Map<string, string>, localFacts: () => Record<string, unknown>): Promise<number> {
  if (options.format !== 'sh' && options.format !== 'cloud-init') throw inputError(`--format ${options.format}: expected sh or cloud-init`);
  const { SiteCompiler, readFactsFile } = await import('./site-compiler.ts');
  const compiler = new SiteCompiler(options, sources);
  const selected = await compiler.select(options.target ?? []);
  if (selected.length !== 1) {
    throw inputError(`export writes one target's script: ${options.target?.length ? `the selection names ${selected.length} targets (${selected.map((t) => t.name).join(', ') || 'none'})` : 'name it with --target'}`);
  }
  const { openSessions, closeSessions } = await import('./sessions.ts');
  const sessions = await openSessions(selected, {
    forks: 1,
    ...(options.acceptNewHostKeys ? { acceptNewHostKeys: true } : {}),
    ...(options.facts ? { factsOf: (await readFactsFile(options.facts, sources)).factsFor(selected.map((t) => t.name)) } : {}),
    localFacts,
    contentIndex: { trust: true, save: false },
  });
  await closeSessions(sessions);
  const session = sessions[0]!;
  if (!session.facts) {
    writeErr(`cairn: ${session.name}: UNREACHABLE: ${session.error ?? 'no facts'} (give its facts with --facts FILE to export without reaching it)\n`);
    return 3;
  }
  const [compiled] = await compiler.compile([{ name: session.name, facts: session.facts }]);
  const { exportScript } = await import('../export/script.ts');
  const { sensitiveValues } = await import('../graph/sensitive.ts');
  const script = exportScript({ run: compiled!.run, graph: compiled!.graph, facts: session.facts });
  const text = options.format === 'cloud-init' ? cloudInit(script, session.name) : script;
  const secret = sensitiveValues(compiled!.graph).length > 0;
  if (options.output) {
    // Atomic, and never readable by others: the script carries every value the run needs.
    const temp = join(dirname(options.output), `.${basename(options.output)}.cairn-${process.pid}`);
    try {
      writeFileSync(temp, text, { mode: 0o600 });
      renameSync(temp, options.output);
    } catch (err) {
      rmSync(temp, { force: true });
      throw err;
    }
  } else {
    writeOut(text);
  }
  if (secret) writeErr(`cairn: the exported script holds sensitive values (secrets) in the clear: keep it ${options.output ? `(${options.output}, mode 0600)` : ''} where only root can read it\n`);
  return 0;
}

/**
 * The script `cairn export --target T --format sh` writes, compiled with `facts` rather than facts
 * gathered from T (a guest being built has none yet: the provisioner passes its image's): what
 * a first-boot unit runs (DESIGN §10). Compiles the site at `site`; an unknown target is an input
 * error, as with `--target`.
 */
export async function exportScriptFor(site: { site: string; var?: string[] }, target: string, facts: Record<string, unknown>, sources: Map<string, string>): Promise<string> {
  try {
    const { SiteCompiler } = await import('./site-compiler.ts');
    const compiler = new SiteCompiler(site, sources);
    const selected = await compiler.select([target]);
    if (selected.length !== 1 || selected[0]!.name !== target) {
      throw inputError(`the first-boot target ${JSON.stringify(target)} is ${selected.length ? `a selection of ${selected.length} targets (${selected.map((t) => t.name).join(', ')})` : 'not a target of the site'}: name one target`);
    }
    const [compiled] = await compiler.compile([{ name: target, facts }]);
    const { exportScript } = await import('../export/script.ts');
    return exportScript({ run: compiled!.run, graph: compiled!.graph, facts });
  } catch (err) {
    // The build hears of it as text: every problem with its position.
    if (err instanceof InputError) throw new Error(err.diagnostics.map((d) => `${d.pos ? `${formatPos(d.pos)}: ` : ''}${d.message}`).join('\n'), { cause: err });
    throw err;
  }
}
