/**
 * A build's child process (DESIGN §10): it runs in its own mount namespace with `/` read-only and
 * without CAP_SYS_ADMIN (provision/namespace.ts sets that up before this starts), loads the builder
 * script and runs the steps the parent asks for. What needs privileges goes to the parent as a
 * request over the IPC channel.
 */
import { spawn } from 'node:child_process';
import { relative } from 'node:path';
import { Diagnostics } from '../lib/errors.ts';
import { importTypeScript } from '../site/typescript.ts';
import { Builder, BuildFailure, BuildInputError, type BuildContext, type BuildHost, type RunOptions, type RunOutput } from './builder.ts';
import { BUILTIN_SCRIPTS, type BuilderClass } from './builtins.ts';
import type { FromChild, Request, StepError, ToChild } from './protocol.ts';

function send(message: FromChild): void {
  process.send!(message);
}

let nextId = 1;
const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

function request<T>(req: Request): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
    send({ t: 'request', id, request: req });
  });
}

const stopping = new AbortController();

/** Runs a command with no shell; its output is kept for the error when it fails. */
function run(argv: string[], options: RunOptions = {}): Promise<RunOutput> {
  send({ t: 'log', message: `$ ${argv.join(' ')}` });
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(options.cwd ? { cwd: options.cwd } : {}),
      env: { ...process.env, ...options.env },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    if (options.input !== undefined) child.stdin!.end(options.input);
    child.on('error', (e) => reject(new Error(`${argv[0]}: ${e.message}`)));
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) resolve({ stdout, stderr });
      else {
        const tail = (stderr || stdout).trim().split('\n').slice(-10).join('\n');
        reject(new Error(`${argv.join(' ')} failed (${signal ? `signal ${signal}` : `exit ${code}`})${tail ? `:\n${tail}` : ''}`));
      }
    });
  });
}

const host: BuildHost = {
  run,
  mount: (source, target, options = {}) => request({ op: 'mount', source, target, ...options }),
  unmount: (target) => request({ op: 'unmount', target }),
  loop: (image) => request({ op: 'loop', image }),
  detach: (device) => request({ op: 'detach', device }),
  volume: (spec) => request({ op: 'volume', ...spec }),
  rootfs: () => request({ op: 'rootfs' }),
  exportScript: (target, facts) => request({ op: 'export', target, facts }),
  outputFile: (file) => request({ op: 'file', file }),
  keepInCache: (from, cache, entry) => request({ op: 'cache', from, cache, entry }),
  log: (message) => send({ t: 'log', message }),
  progress: (done, total, what) => send({ t: 'progress', done, ...(total !== undefined ? { total } : {}), ...(what ? { what } : {}) }),
  signal: stopping.signal,
};

let Script: BuilderClass | undefined;
let instance: Builder | undefined;

async function load(message: Extract<ToChild, { t: 'load' }>): Promise<void> {
  if ('builtin' in message.script) {
    Script = (await BUILTIN_SCRIPTS[message.script.builtin]!()).default;
    send({ t: 'loaded', label: message.script.builtin, ...(Script.arguments ? { arguments: Script.arguments } : {}) });
    return;
  }
  const d = new Diagnostics();
  const file = relative(message.siteDir, message.script.file);
  const mod = await importTypeScript(message.script.file, message.siteDir, d);
  const candidate = mod?.default;
  if (mod && !(typeof candidate === 'function' && candidate.prototype instanceof Builder)) {
    d.add(`${file} must \`export default\` a class that extends Builder (import { Builder } from 'cairn')`, { file, line: 1, col: 1 });
  }
  if (!d.empty) {
    send({ t: 'load-failed', diagnostics: d.items });
    return;
  }
  Script = candidate as BuilderClass;
  send({ t: 'loaded', label: file, ...(Script.arguments ? { arguments: Script.arguments } : {}) });
}

function stepError(err: unknown): StepError {
  if (err instanceof BuildInputError) return { kind: 'input', message: err.message, path: err.path };
  if (err instanceof BuildFailure) return { kind: 'failure', message: err.message };
  const e = err instanceof Error ? err : new Error(String(err));
  // Where in the script it happened: the first frame outside Node and this framework.
  const frame = (e.stack ?? '').split('\n').slice(1).map((l) => /\(?((?:file:\/\/)?\/[^()]+:\d+:\d+)\)?$/.exec(l.trim())?.[1])
    .find((f) => f !== undefined && !/\/src\/(provision|api)\//.test(f) && !f.includes('/dist/cairn'));
  return { kind: 'crash', message: `${e.message}${frame ? ` (at ${frame.replace(/^file:\/\//, '')})` : ''}`, ...(e.stack ? { stack: e.stack } : {}) };
}

async function step(message: Extract<ToChild, { t: 'step' }>): Promise<void> {
  try {
    // The class is the script's own: a concrete subclass, whatever TypeScript knows of it.
    instance ??= new (Script as unknown as new (ctx: BuildContext, host: BuildHost) => Builder)(message.ctx, host);
    const fn = instance[message.step] as ((this: Builder) => Promise<unknown>) | undefined;
    const result: unknown = fn ? await fn.call(instance) : undefined;
    if (message.step === 'create' && result !== undefined && typeof result !== 'string') {
      throw new BuildFailure(`create() must return the definition as text (libvirt XML or .nspawn settings), not ${typeof result}`);
    }
    send({ t: 'step-done', step: message.step, ...(typeof result === 'string' ? { definition: result } : {}) });
  } catch (err) {
    send({ t: 'step-failed', step: message.step, error: stepError(err) });
  }
}

/** The child's main loop: started by `cairn __build-child` (built) or child-main.ts (source). */
export function buildChild(): void {
  if (!process.send) throw new Error('a build child needs an IPC channel to its parent');
  process.on('message', (message: ToChild) => {
    if (message.t === 'reply') {
      const p = pending.get(message.id);
      pending.delete(message.id);
      if (message.error !== undefined) p?.reject(new Error(message.error));
      else p?.resolve(message.result);
    } else if (message.t === 'load') {
      load(message).catch((err: Error) => send({ t: 'load-failed', diagnostics: [{ message: `loading the script failed: ${err.stack ?? err.message}` }] }));
    } else {
      void step(message);
    }
  });
  // The parent gone means the build is over: nothing may go on in its name.
  process.on('disconnect', () => {
    stopping.abort();
    process.exit(1);
  });
}
