/**
 * `cairn provision` (DESIGN §10, §12): builds one guest or container image through a profile,
 * with a progress bar on a terminal, plain lines otherwise, and one JSON event a line with
 * `--json`. SIGINT and SIGTERM stop the build, which then unwinds what it made.
 */
import { resolve } from 'node:path';
import { ExitCode, InputError, inputError } from '../lib/errors.ts';
import { parseArgOverrides } from '../provision/profile.ts';
import {
  BuildError, cleanBuild, DEFAULT_BUILDS_DIR, provision, type BuildEvent,
} from '../provision/provisioner.ts';
import type { ImageBuilder, ImageBuildRequest, ImageBuildResult } from '../resources/type.ts';
import { ApplyError } from '../resources/type.ts';
import { stdoutIsTTY, stdoutStream, writeErr, writeOut } from './output.ts';

export interface ProvisionOptions {
  site: string;
  profile?: string;
  arg?: string[];
  keepOnFailure?: boolean;
  json?: boolean;
  output?: string;
  builds?: string;
  clean?: string;
  verbose?: number;
}

export async function provisionCommand(name: string | undefined, options: ProvisionOptions, sources: Map<string, string>): Promise<number> {
  const buildsDir = resolve(options.builds ?? DEFAULT_BUILDS_DIR);
  const print = (line: string) => (options.json ? undefined : writeOut(`${line}\n`));
  const json = (event: object) => writeOut(`${JSON.stringify(event)}\n`);
  if (options.clean !== undefined) {
    if (name !== undefined || options.profile !== undefined) throw inputError('--clean NAME clears a build; it takes no other NAME nor --profile');
    const cleared = await cleanBuild(buildsDir, options.clean);
    if (options.json) json({ event: 'cleaned', name: options.clean, ...(cleared ?? { state: 'none', undone: [] }) });
    else if (!cleared) print(`no build of ${options.clean} is left in ${buildsDir}`);
    else {
      print(`${options.clean}: cleared the ${cleared.state} build`);
      for (const u of cleared.undone) print(`  undone: ${u}`);
    }
    return ExitCode.ok;
  }
  if (name === undefined) throw inputError('cairn provision needs the NAME of the guest or container to build (or --clean NAME)');
  if (options.profile === undefined) throw inputError('cairn provision needs --profile P (the site\'s profiles/P.yaml)');

  const bar = !options.json && stdoutIsTTY() ? new StepBar(stdoutStream()) : undefined;
  const show = (line: string) => (bar ? bar.print(line) : print(line));
  let failed = false;
  const onEvent = (e: BuildEvent) => {
    if (options.json) {
      json(e);
      return;
    }
    switch (e.event) {
      case 'cleared':
        show(`${e.name}: cleared what an interrupted build left${e.undone.length ? `: ${e.undone.join('; ')}` : ''}`);
        break;
      case 'start':
        show(`${e.name}: building with ${e.script} (profile ${e.profile}, uuid ${e.uuid})`);
        break;
      case 'step':
        bar?.step(e.step, e.index, e.total);
        if (!bar) show(`${name}: ${e.step}`);
        break;
      case 'progress':
        bar?.progress(e.done, e.total, e.what);
        break;
      case 'log':
        if ((options.verbose ?? 0) > 0) show(`  ${e.message}`);
        break;
      case 'action':
        if ((options.verbose ?? 0) > 0) show(`  + ${e.action}`);
        break;
      case 'undo':
        // After a success only mounts and loop devices go, as always: worth a line only with -v.
        if (failed || (options.verbose ?? 0) > 0) show(`  undone: ${e.action}`);
        break;
      case 'kept':
        show(`${name}: kept for debugging (cairn provision --clean ${name} removes it):`);
        for (const item of e.items) show(`  kept: ${item}`);
        break;
      case 'failed':
        failed = true;
        show(`${name}: failed${e.step ? ` in ${e.step}()` : ''}: ${e.message}`);
        break;
      case 'done':
        bar?.finish();
        show(`${name}: built${e.definition ? `; definition ${e.definition}` : ''}${e.disks.length ? `; disks ${e.disks.join(', ')}` : ''}${e.root ? `; root ${e.root}` : ''}`);
        break;
    }
  };

  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    show(`${name}: ${signal}: stopping the build and undoing what it made…`);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await provision({
      siteDir: resolve(options.site),
      profile: options.profile,
      name,
      outputDir: resolve(options.output ?? `/var/lib/cairn/images/${name}`),
      buildsDir,
      args: parseArgOverrides(options.arg ?? []),
      ...(options.keepOnFailure ? { keepOnFailure: true } : {}),
      signal: stop.signal,
      onEvent,
      sources,
    });
    return ExitCode.ok;
  } catch (err) {
    bar?.finish();
    if (err instanceof BuildError) {
      if (!options.json) writeErr(`cairn provision: ${name}: ${err.message}\n`);
      return ExitCode.nodesFailed;
    }
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** A bar for the build's steps, and the step's own progress when the script reports it. */
class StepBar {
  private line = '';
  private drawn = false;
  private current = { step: '', index: 0, total: 5 };
  constructor(private readonly out: NodeJS.WriteStream) {}

  step(step: string, index: number, total: number): void {
    this.current = { step, index, total };
    this.render(`${step}()`);
  }

  progress(done: number, total: number | undefined, what: string | undefined): void {
    const part = total ? ` ${Math.floor((100 * done) / total)}%` : ` ${done}`;
    this.render(`${this.current.step}()${part}${what ? ` ${what}` : ''}`);
  }

  print(text: string): void {
    this.erase();
    this.out.write(`${text}\n`);
    if (this.line) this.draw();
  }

  finish(): void {
    this.erase();
    this.line = '';
  }

  private render(detail: string): void {
    const width = 20;
    const filled = Math.round((width * (this.current.index - 1)) / this.current.total);
    this.line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] step ${this.current.index}/${this.current.total}: ${detail}`;
    this.erase();
    this.draw();
  }

  private erase(): void {
    if (this.drawn) this.out.write('\r\x1b[K');
    this.drawn = false;
  }

  private draw(): void {
    this.out.write(this.line.slice(0, (this.out.columns || 80) - 1));
    this.drawn = true;
  }
}

/**
 * The provisioner as `cairn apply` hands it to the lifecycle types (ProviderContext.images) for a
 * target run on this machine: builds through the site's profiles. A failed build fails the node.
 */
export function localImageBuilder(siteDir: string, buildsDir = DEFAULT_BUILDS_DIR): ImageBuilder {
  return {
    async build(request: ImageBuildRequest): Promise<ImageBuildResult> {
      try {
        const result = await provision({
          siteDir: resolve(siteDir),
          profile: request.profile,
          name: request.name,
          kind: request.kind,
          outputDir: resolve(request.outputDir),
          buildsDir,
          ...(request.args ? { args: request.args } : {}),
          ...(request.user_data !== undefined ? { user_data: request.user_data } : {}),
          signal: request.signal,
          onEvent: (e) => {
            if (e.event === 'log') request.log(e.message);
            else if (e.event === 'progress') request.progress({ done: e.done, ...(e.total !== undefined ? { total: e.total } : {}), ...(e.what ? { step: e.what } : {}) });
            else if (e.event === 'step') request.progress({ done: e.index - 1, total: e.total, step: `${e.step}()` });
            else if (e.event === 'undo' || e.event === 'cleared' || e.event === 'failed') request.log(JSON.stringify(e));
          },
        });
        return {
          ...(result.definition !== undefined ? { definition: result.definition } : {}),
          disks: result.disks,
          ...(result.root ? { root: result.root } : {}),
        };
      } catch (err) {
        if (err instanceof BuildError) throw new ApplyError(`build of ${request.name} (profile ${request.profile}) failed: ${err.message}`);
        if (err instanceof InputError) {
          const where = err.diagnostics.map((d) => `${d.message}${d.pos ? ` (${d.pos.file}:${d.pos.line}:${d.pos.col})` : ''}`).join('; ');
          throw new ApplyError(`build of ${request.name} (profile ${request.profile}): ${where}`);
        }
        throw err;
      }
    },
  };
}
