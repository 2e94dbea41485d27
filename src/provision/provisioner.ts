/**
 * One build (DESIGN §10), the parent's side: loads the profile, starts the script in its child
 * (provision/namespace.ts), runs the steps, carries out the script's privileged requests with each
 * one journalled and pushed on the undo stack, and on failure or interruption unwinds the stack in
 * reverse and then runs the script's cleanup(): a failed build leaves nothing behind, unless asked
 * to keep it (`keepOnFailure`).
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { InputError, inputError, type Diagnostic } from '../lib/errors.ts';
import { privateDir } from '../lib/private-files.ts';
import {
  clearBuild, command, describeAction, endNamespace, isOutput, Journal, JOURNAL, listBuilds, must, mountNamespaceOf, partitionsOf, processStart,
  undo, type Action,
} from './actions.ts';
import type { BuildContext, LoopDevice } from './builder.ts';
import { inNamespace, startChild } from './namespace.ts';
import { loadProfile, pathPos, resolveArguments, resolveScript, type Profile, type ScriptSource } from './profile.ts';
import { STEPS, type FromChild, type Request, type Step, type StepError } from './protocol.ts';

export type BuildEvent =
  | { event: 'cleared'; name: string; state: string; undone: string[] }
  | { event: 'start'; name: string; profile: string; script: string; uuid: string; workDir: string; namespace?: string }
  | { event: 'step'; step: Step; index: number; total: number }
  | { event: 'log'; message: string }
  | { event: 'progress'; done: number; total?: number; what?: string }
  | { event: 'action'; action: string }
  | { event: 'undo'; action: string }
  | { event: 'kept'; items: string[]; workDir: string }
  | { event: 'failed'; step?: Step; message: string }
  | { event: 'done'; definition?: string; disks: string[]; root?: string };

export interface ProvisionRequest {
  siteDir: string;
  profile: string;
  name: string;
  /** Default: the profile's `kind:`, else guest. */
  kind?: 'guest' | 'container';
  outputDir: string;
  /** Where builds keep their work folders and journals. */
  buildsDir: string;
  args?: Record<string, string>;
  /** Overrides the profile's `user_data:`. */
  user_data?: string;
  keepOnFailure?: boolean;
  signal?: AbortSignal;
  onEvent?: (event: BuildEvent) => void;
  /** Receives the profile's text for error snippets. */
  sources?: Map<string, string>;
  /**
   * A site target's exported script compiled with given facts (DESIGN §11), for scripts that
   * install a first-boot unit; the CLI hands it in (export/ ranks above provision/).
   */
  exportScript?: (target: string, facts: Record<string, unknown>) => Promise<string>;
}

export interface ProvisionResult {
  /** The definition create() returned. */
  definition?: string;
  /** Where it was written in the output folder. */
  definitionFile?: string;
  disks: string[];
  root?: string;
}

/** A build that failed or was stopped (exit 1); what it made is undone, or kept and listed. */
export class BuildError extends Error {
  override name = 'BuildError';
  constructor(message: string, readonly kept: string[] = []) {
    super(message);
  }
}

/** Where builds keep their work folders and journals: $CAIRN_BUILDS_DIR, else /var/lib/cairn/builds. */
export function defaultBuildsDir(): string {
  return process.env.CAIRN_BUILDS_DIR || '/var/lib/cairn/builds';
}
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * Clears what builds stopped by SIGKILL left in `buildsDir` (their journals say what), reporting
 * each; running and kept builds are left alone.
 */
export async function clearInterrupted(buildsDir: string, onEvent?: (e: BuildEvent) => void): Promise<void> {
  for (const build of listBuilds(buildsDir)) {
    if (build.state !== 'interrupted' && build.state !== 'committed') continue;
    const undone = await clearBuild(build);
    onEvent?.({ event: 'cleared', name: build.name, state: build.state, undone: undone.map(describeAction) });
  }
}

/** `cairn provision --clean NAME`: clears a kept or interrupted build; what it undid. */
export async function cleanBuild(buildsDir: string, name: string): Promise<{ state: string; undone: string[] } | undefined> {
  const build = listBuilds(buildsDir).find((b) => b.name === name);
  if (!build) return undefined;
  if (build.state === 'running') throw inputError(`the build of ${name} is still running (pid ${build.pid}): stop it first`);
  return { state: build.state, undone: (await clearBuild(build)).map(describeAction) };
}

export async function provision(req: ProvisionRequest): Promise<ProvisionResult> {
  const emit = req.onEvent ?? (() => undefined);
  if (!NAME.test(req.name)) throw inputError(`'${req.name}' is no valid name for a build (letters, digits, '.', '_', '-'; at most 64)`);
  for (const [what, dir] of [['--site', req.siteDir], ['--output', req.outputDir], ['the builds folder', req.buildsDir]] as const) {
    if (!isAbsolute(dir)) throw inputError(`${what} ${dir}: expected an absolute path`);
  }
  const sources = req.sources ?? new Map<string, string>();
  const profile = loadProfile(req.siteDir, req.profile, sources);
  const script = resolveScript(req.siteDir, profile);

  await clearInterrupted(req.buildsDir, emit);
  const earlier = listBuilds(req.buildsDir).find((b) => b.name === req.name);
  if (earlier?.state === 'running') throw inputError(`a build of ${req.name} is running (pid ${earlier.pid})`);
  if (earlier?.state === 'kept') {
    throw inputError(`a failed build of ${req.name} is kept in ${earlier.workDir}`, undefined, `remove it with: cairn provision --clean ${req.name}`);
  }
  privateDir(req.buildsDir);
  const workDir = join(req.buildsDir, req.name);
  rmSync(workDir, { recursive: true, force: true });
  mkdirSync(workDir, { mode: 0o700 });
  const build = new Build(req, profile, script, workDir, emit);
  return build.run();
}

class Build {
  private readonly journal: Journal;
  private readonly stack: { seq: number; action: Action }[] = [];
  private seq = 0;
  private child: ChildProcess | undefined;
  private childPid: number | undefined;
  private childNs: string | undefined;
  private childExit: Promise<void> | undefined;
  /** The ending of each child under way: every caller waits for the one ending, never a second beside it. */
  private readonly endings = new WeakMap<ChildProcess, Promise<void>>();
  private stepWaiter: { resolve: (definition: string | undefined) => void; reject: (err: Error) => void } | undefined;
  private loadWaiter: { resolve: (m: FromChild) => void; reject: (err: Error) => void } | undefined;
  /** Privileged actions and the unwinding run one at a time, in order. */
  private queue: Promise<unknown> = Promise.resolve();
  private stopping: string | undefined;
  private ctx: BuildContext | undefined;
  private definition: string | undefined;
  private definitionFile: string | undefined;
  private volumes = 0;
  private readonly stderrTail: string[] = [];

  constructor(private readonly req: ProvisionRequest, private readonly profile: Profile, private readonly script: ScriptSource,
    private readonly workDir: string, private readonly emit: (e: BuildEvent) => void) {
    this.journal = new Journal(join(workDir, JOURNAL));
    this.journal.write({
      t: 'build', name: req.name, pid: process.pid, start: processStart(process.pid) ?? '', profile: req.profile,
      outputDir: req.outputDir, started: new Date().toISOString(),
    });
  }

  async run(): Promise<ProvisionResult> {
    const onAbort = () => this.stop('interrupted');
    if (this.req.signal?.aborted) {
      this.finishWorkDir();
      throw new BuildError('interrupted before it began');
    }
    this.req.signal?.addEventListener('abort', onAbort, { once: true });
    let failedStep: Step | undefined;
    try {
      if (!existsSync(this.req.outputDir)) {
        await this.act({ op: 'outdir', path: this.req.outputDir }, async () => {
          mkdirSync(this.req.outputDir, { recursive: true });
        });
      }
      const declared = await this.startAndLoad();
      let args: Record<string, string>;
      try {
        args = resolveArguments(this.profile, this.req.args ?? {}, declared.arguments, declared.label);
      } catch (err) {
        await this.abandon();
        throw err;
      }
      const uuid = randomUUID();
      this.ctx = {
        name: this.req.name,
        id: Number(/(\d+)$/.exec(this.req.name)?.[1] ?? 0),
        uuid,
        profile: this.req.profile,
        kind: this.req.kind ?? this.profile.kind ?? 'guest',
        system: this.profile.system,
        networks: this.profile.networks,
        storage: this.profile.storage,
        ...(this.req.user_data ?? this.profile.user_data) !== undefined ? { user_data: this.req.user_data ?? this.profile.user_data } : {},
        args,
        workDir: this.workDir,
        outputDir: this.req.outputDir,
        siteDir: this.req.siteDir,
      };
      this.emit({ event: 'start', name: this.req.name, profile: this.req.profile, script: declared.label, uuid, workDir: this.workDir, ...(this.childNs ? { namespace: this.childNs } : {}) });
      for (const step of STEPS) {
        failedStep = step;
        const definition = await this.step(step);
        if (step === 'create' && definition !== undefined) await this.writeDefinition(definition);
      }
      failedStep = undefined;
      // What was only for the build (mounts, loop devices) goes; the outputs stay.
      await this.unwind((a) => !isOutput(a));
      this.journal.write({ t: 'committed' });
      const result: ProvisionResult = {
        ...(this.definition !== undefined ? { definition: this.definition, definitionFile: this.definitionFile! } : {}),
        disks: this.stack.filter((e) => e.action.op === 'volume').map((e) => (e.action as { path: string }).path),
        ...(this.stack.some((e) => e.action.op === 'rootfs') ? { root: (this.stack.find((e) => e.action.op === 'rootfs')!.action as { path: string }).path } : {}),
      };
      await this.stopChild();
      this.finishWorkDir();
      this.emit({ event: 'done', ...(result.definitionFile ? { definition: result.definitionFile } : {}), disks: result.disks, ...(result.root ? { root: result.root } : {}) });
      return result;
    } catch (err) {
      if (err instanceof InputError && this.ctx === undefined) throw err;
      throw await this.fail(err as Error, failedStep);
    } finally {
      this.req.signal?.removeEventListener('abort', onAbort);
      // Whatever happened, the journal on disk says it; one left behind is the next build's to clear.
      this.journal.close();
    }
  }

  /** A failed build: kept, or unwound and cleaned up. Returns the error to throw. */
  private async fail(err: Error, step: Step | undefined): Promise<Error> {
    const reason = this.stopping ?? err.message;
    this.emit({ event: 'failed', ...(step ? { step } : {}), message: reason });
    if (this.req.keepOnFailure) {
      const kept = await this.keep();
      return err instanceof InputError ? err : new BuildError(`${step ? `${step}: ` : ''}${reason}`, kept);
    }
    const stopped = this.stopping !== undefined || !this.childAlive();
    if (stopped) await this.endChild();
    await this.unwind(() => true);
    if (step !== 'cleanup' && this.ctx) await this.cleanupAfterFailure();
    await this.endChild();
    this.finishWorkDir();
    return err instanceof InputError ? err : new BuildError(`${step ? `${step}: ` : ''}${reason}`);
  }

  /** cleanup() after the stack is unwound: in the child if it lives on, else in a fresh one. */
  private async cleanupAfterFailure(): Promise<void> {
    const wasStopping = this.stopping;
    this.stopping = undefined;
    try {
      if (!this.childAlive()) await this.startAndLoad();
      await this.step('cleanup');
    } catch (err) {
      this.emit({ event: 'log', message: `cleanup() failed too: ${(err as Error).message}` });
      await this.endChild();
      await this.unwind(() => true);
    } finally {
      this.stopping = wasStopping;
    }
  }

  private childAlive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null && this.child.connected;
  }

  private startAndLoad(): Promise<Extract<FromChild, { t: 'loaded' }>> {
    const child = startChild(this.workDir, [this.req.outputDir, this.req.siteDir]);
    this.child = child;
    this.childPid = child.pid;
    this.stderrTail.length = 0;
    const collect = (b: Buffer) => {
      for (const line of b.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        this.stderrTail.push(line);
        if (this.stderrTail.length > 20) this.stderrTail.shift();
        this.emit({ event: 'log', message: line });
      }
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    child.on('message', (m: FromChild) => this.onMessage(m));
    this.childExit = new Promise((resolveExit) => {
      child.on('exit', (code, signal) => {
        const why = this.stopping ?? `the script's process ended (${signal ? `signal ${signal}` : `exit ${code}`})${this.stderrTail.length ? `: ${this.stderrTail.slice(-5).join(' / ')}` : ''}`;
        this.stepWaiter?.reject(new Error(why));
        this.stepWaiter = undefined;
        this.loadWaiter?.reject(new Error(why));
        this.loadWaiter = undefined;
        resolveExit();
      });
    });
    child.on('error', (err) => {
      this.loadWaiter?.reject(err);
      this.stepWaiter?.reject(err);
    });
    return new Promise<FromChild>((resolveLoad, rejectLoad) => {
      this.loadWaiter = { resolve: resolveLoad, reject: rejectLoad };
      child.send({ t: 'load', script: this.script, siteDir: this.req.siteDir });
    }).then(async (m) => {
      if (m.t === 'load-failed') {
        await this.abandon();
        throw new InputError(m.diagnostics as Diagnostic[]);
      }
      return m as Extract<FromChild, { t: 'loaded' }>;
    });
  }

  private onMessage(m: FromChild): void {
    switch (m.t) {
      case 'loaded':
      case 'load-failed': {
        // The namespace exists once the child runs: the journal names it, for clearing after a SIGKILL.
        if (this.childPid !== undefined) {
          this.childNs = mountNamespaceOf(this.childPid);
          if (this.childNs) this.journal.write({ t: 'child', pid: this.childPid, ns: this.childNs });
        }
        this.loadWaiter?.resolve(m);
        this.loadWaiter = undefined;
        return;
      }
      case 'step-done':
        this.stepWaiter?.resolve(m.definition);
        this.stepWaiter = undefined;
        return;
      case 'step-failed':
        if (m.error.stack) this.emit({ event: 'log', message: m.error.stack });
        this.stepWaiter?.reject(stepFailure(m.error, this.profile));
        this.stepWaiter = undefined;
        return;
      case 'log':
        this.emit({ event: 'log', message: m.message });
        return;
      case 'progress':
        this.emit({ event: 'progress', done: m.done, ...(m.total !== undefined ? { total: m.total } : {}), ...(m.what ? { what: m.what } : {}) });
        return;
      case 'request': {
        const reply = (result: unknown, error?: string) => {
          if (this.child?.connected) this.child.send({ t: 'reply', id: m.id, ...(error !== undefined ? { error } : { result: result ?? null }) });
        };
        this.handle(m.request).then((r) => reply(r), (err: Error) => reply(undefined, err.message));
      }
    }
  }

  private step(step: Step): Promise<string | undefined> {
    if (this.stopping) return Promise.reject(new Error(this.stopping));
    if (!this.childAlive()) return Promise.reject(new Error('the script\'s process is gone'));
    this.emit({ event: 'step', step, index: STEPS.indexOf(step) + 1, total: STEPS.length });
    return new Promise((resolveStep, rejectStep) => {
      this.stepWaiter = { resolve: resolveStep, reject: rejectStep };
      this.child!.send({ t: 'step', step, ctx: this.ctx! });
    });
  }

  /** A signal: the script and everything it started are killed; run()'s failure path unwinds. */
  private stop(reason: string): void {
    if (this.stopping) return;
    this.stopping = reason;
    void this.endChild();
  }

  /**
   * Kills everything in the build's namespace and waits for the child to be gone. A signal's call
   * and the failure path's call share one ending: a second loop still looking for the old
   * namespace's processes after the first had finished could take a fresh child (for cleanup())
   * for one of them, since the kernel reuses a freed namespace's number.
   */
  private async endChild(): Promise<void> {
    const { child, childNs: ns, childExit: exit } = this;
    if (!child) return;
    let ending = this.endings.get(child);
    if (!ending) {
      ending = (async () => {
        if (ns) await endNamespace(ns, this.workDir);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exit;
      })();
      this.endings.set(child, ending);
    }
    await ending;
    if (this.child === child) this.child = undefined;
  }

  /** The build is over: the child goes, normally (its IPC channel closed), then anything left in its namespace. */
  private async stopChild(): Promise<void> {
    if (this.childAlive()) this.child!.disconnect();
    await this.endChild();
  }

  /** Before anything was built (bad arguments, a script that does not load): nothing to unwind but the child. */
  private async abandon(): Promise<void> {
    await this.endChild();
    await this.unwind(() => true);
    this.finishWorkDir();
  }

  private finishWorkDir(): void {
    this.journal.close();
    rmSync(this.workDir, { recursive: true, force: true });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Journals `action`, makes it (`make`), and pushes it; a failed `make` is undone as far as it went. */
  private async act(action: Action, make: (action: Action) => Promise<void>): Promise<void> {
    const seq = ++this.seq;
    this.journal.write({ t: 'do', seq, action });
    try {
      await make(action);
    } catch (err) {
      await undo(action, this.nsPid()).catch(() => undefined);
      this.journal.write({ t: 'undone', seq });
      throw err;
    }
    this.journal.write({ t: 'done', seq, action });
    this.stack.push({ seq, action });
    this.emit({ event: 'action', action: describeAction(action) });
  }

  private nsPid(): number | undefined {
    return this.childAlive() ? this.childPid : undefined;
  }

  /** Undoes, newest first, the entries `which` selects. */
  private unwind(which: (a: Action) => boolean): Promise<void> {
    return this.serial(async () => {
      const errors: string[] = [];
      for (let i = this.stack.length - 1; i >= 0; i--) {
        const entry = this.stack[i]!;
        if (!which(entry.action)) continue;
        try {
          await undo(entry.action, this.nsPid());
          this.journal.write({ t: 'undone', seq: entry.seq });
          this.stack.splice(i, 1);
          this.emit({ event: 'undo', action: describeAction(entry.action) });
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
      if (errors.length > 0) throw new BuildError(`undoing the build failed: ${errors.join('; ')}`);
    });
  }

  /** --keep-on-failure: the namespace is pinned to a file so its mounts outlive the child; everything is listed. */
  private async keep(): Promise<string[]> {
    await this.serial(async () => {
      if (this.childAlive() && this.childPid !== undefined && this.stack.some((e) => e.action.op === 'mount')) {
        const file = join(this.workDir, 'mount-namespace');
        await this.act({ op: 'namespace', file }, async () => {
          writeFileSync(file, '');
          await must(['mount', '--bind', `/proc/${this.childPid}/ns/mnt`, file]);
        }).catch((err: Error) => this.emit({ event: 'log', message: `the build's mounts cannot be kept: ${err.message}` }));
      }
    });
    await this.endChild();
    this.journal.write({ t: 'kept' });
    this.journal.close();
    const items = [...this.stack.map((e) => describeAction(e.action)), `work folder ${this.workDir}`];
    this.emit({ event: 'kept', items, workDir: this.workDir });
    return items;
  }

  private async writeDefinition(text: string): Promise<void> {
    const path = join(this.req.outputDir, `${this.req.name}.${text.trimStart().startsWith('<') ? 'xml' : 'nspawn'}`);
    // Checked before the action begins: a failed action is undone, and this file is not the build's.
    if (existsSync(path)) throw new Error(`${path} exists already: remove it, or build into another --output`);
    await this.serial(() => this.act({ op: 'definition', path }, async () => {
      writeFileSync(`${path}.tmp`, text, { mode: 0o644 });
      renameSync(`${path}.tmp`, path);
    }));
    this.definition = text;
    this.definitionFile = path;
  }

  private handle(request: Request): Promise<unknown> {
    return this.serial(async () => {
      if (this.stopping || !this.childAlive()) throw new Error('the build is stopping');
      const pid = this.childPid!;
      switch (request.op) {
        case 'export': {
          if (!this.req.exportScript) throw new Error(`cannot export target ${request.target}'s script: this build was started without the site's exporter`);
          return this.req.exportScript(request.target, request.facts);
        }
        case 'mount': {
          if (!isAbsolute(request.target)) throw new Error(`mount: ${request.target}: expected an absolute path`);
          const target = resolve(request.target);
          const argv = ['mount'];
          if (request.bind) argv.push(request.recursive ? '--rbind' : '--bind');
          if (request.type) argv.push('-t', request.type);
          if (request.options?.length) argv.push('-o', request.options.join(','));
          argv.push(request.source, target);
          await this.act({ op: 'mount', target, source: request.source }, async () => {
            const mk = await command(inNamespace(pid, ['mkdir', '-p', target]));
            if (mk.code !== 0) throw new Error(`mount: cannot make ${target}: ${mk.stderr.trim()}`);
            await must(inNamespace(pid, argv));
          });
          return null;
        }
        case 'unmount': {
          const target = resolve(request.target);
          const found = this.stack.filter((e) => e.action.op === 'mount' && (e.action.target === target || e.action.target.startsWith(`${target}/`)));
          if (found.length === 0) throw new Error(`unmount: nothing this build mounted is on ${target}`);
          for (const entry of found.reverse()) {
            await undo(entry.action, pid);
            this.journal.write({ t: 'undone', seq: entry.seq });
            this.stack.splice(this.stack.indexOf(entry), 1);
            this.emit({ event: 'undo', action: describeAction(entry.action) });
          }
          return null;
        }
        case 'loop': {
          const image = resolve(request.image);
          if (!existsSync(image) || !lstatSync(image).isFile()) throw new Error(`loop: ${image} is not a file`);
          const action: Action = { op: 'loop', image };
          const result: LoopDevice = { device: '', partitions: [] };
          await this.act(action, async () => {
            const device = (await must(['losetup', '-f', '--show', image])).trim();
            action.device = device;
            result.device = device;
            // The kernel here parses no partition tables (lab-guests B1a): partx adds them. An image
            // with no table has no partitions, and partx says so with a failure.
            await command(['partx', '-a', device]);
            result.partitions = partitionsOf(device);
          });
          return result;
        }
        case 'detach': {
          const entry = this.stack.find((e) => e.action.op === 'loop' && e.action.device === request.device);
          if (!entry) throw new Error(`detach: ${request.device} is no loop device of this build`);
          await undo(entry.action, pid);
          this.journal.write({ t: 'undone', seq: entry.seq });
          this.stack.splice(this.stack.indexOf(entry), 1);
          this.emit({ event: 'undo', action: describeAction(entry.action) });
          return null;
        }
        case 'volume': {
          const disk = request.disk ?? `vd${String.fromCharCode(97 + this.volumes)}`;
          this.volumes++;
          const file = request.file ?? `${this.req.name}-${disk}.${request.format}`;
          if (file !== basename(file) || file.startsWith('.')) throw new Error(`volume: ${file}: expected a file name`);
          if (!Number.isSafeInteger(request.size) || request.size <= 0) throw new Error(`volume: size ${request.size}: expected a number of bytes`);
          const path = join(this.req.outputDir, file);
          if (existsSync(path)) throw new Error(`volume: ${path} exists already: remove it, or build into another --output`);
          await this.act({ op: 'volume', path }, async () => {
            await must(['qemu-img', 'create', '-q', '-f', request.format, path, String(request.size)]);
            await this.writable(pid, path);
          });
          return path;
        }
        case 'file': {
          if (request.file !== basename(request.file) || request.file.startsWith('.')) throw new Error(`outputFile: ${request.file}: expected a file name`);
          const path = join(this.req.outputDir, request.file);
          if (existsSync(path)) throw new Error(`outputFile: ${path} exists already: remove it, or build into another --output`);
          await this.act({ op: 'file', path }, async () => {
            writeFileSync(path, '', { mode: 0o644, flag: 'wx' });
            await this.writable(pid, path);
          });
          return path;
        }
        case 'cache': {
          if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(request.entry)) throw new Error(`keepInCache: ${request.entry}: expected a plain entry name`);
          if (!isAbsolute(request.cache)) throw new Error(`keepInCache: ${request.cache}: expected an absolute path`);
          const from = resolve(request.from);
          if (!from.startsWith(`${this.workDir}/`) || !existsSync(from)) throw new Error(`keepInCache: ${from} is not in the build's work folder ${this.workDir}`);
          const cache = resolve(request.cache);
          const path = join(cache, request.entry);
          if (existsSync(path)) return path;
          mkdirSync(cache, { recursive: true, mode: 0o755 });
          const aside = join(cache, `.${request.entry}.tmp-${process.pid}`);
          await this.act({ op: 'cache', path: aside }, async () => {
            await must(['rm', '-rf', aside]);
            await must(['cp', '-a', '--', from, aside]);
          });
          try {
            renameSync(aside, path);
          } catch (err) {
            // Another build stored the same entry meanwhile: its copy stands, ours is undone with the build's.
            const code = (err as NodeJS.ErrnoException).code;
            if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
          }
          return path;
        }
        case 'rootfs': {
          const path = join(this.req.outputDir, `${this.req.name}.rootfs`);
          if (this.stack.some((e) => e.action.op === 'rootfs')) return path;
          if (existsSync(path)) throw new Error(`rootfs: ${path} exists already: remove it, or build into another --output`);
          await this.act({ op: 'rootfs', path }, async () => {
            mkdirSync(path, { mode: 0o755 });
            await this.writable(pid, path);
          });
          return path;
        }
      }
    });
  }

  /** Makes `path` writable in the child's read-only namespace: a bind onto itself, remounted rw (gone with the namespace). */
  private async writable(pid: number, path: string): Promise<void> {
    await must(inNamespace(pid, ['mount', '--bind', path, path]));
    await must(inNamespace(pid, ['mount', '-o', 'remount,bind,rw', path]));
  }
}

function stepFailure(error: StepError, profile: Profile): Error {
  if (error.kind === 'input') return new InputError([{ message: error.message, pos: pathPos(profile, error.path ?? []) }]);
  return new Error(error.message);
}
