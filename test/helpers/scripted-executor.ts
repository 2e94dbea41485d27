/**
 * CONTRACT TESTS ONLY. A stand-in executor for targets whose tools cannot run on this machine
 * (dnf, apk, pacman, FreeBSD's pkg and rc.d, OpenRC): it records every command a provider issues
 * and answers from a script of replies, which tests fill with real output captured on those
 * systems (test/fixtures/captured/). Files live in memory. Tests that use it must say in their
 * names that they are contract tests, never that they ran the tool.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildCatalog } from '../../src/catalog/catalog.ts';
import { compile } from '../../src/catalog/compile.ts';
import { Engine, type NodeResult } from '../../src/engine/engine.ts';
import type { Executor, RunOptions, RunResult, Stat, WriteOptions } from '../../src/executors/types.ts';
import { buildGraph } from '../../src/graph/build.ts';
import { Diagnostics } from '../../src/lib/errors.ts';
import { loadSite } from '../../src/site/load.ts';
import { makeSite } from './cli.ts';

export interface Reply {
  /** The command, as argv joined by spaces: a prefix (string) or a pattern. */
  when: string | RegExp;
  code?: number;
  stdout?: string;
  stderr?: string;
  /** Answer only this many times (then the next matching reply is used). */
  times?: number;
  /** Runs when the command is answered: a reply can change the scripted machine (files). */
  effect?: (exec: ScriptedExecutor, argv: string[], opts: RunOptions) => void;
}

/** A captured output file under test/fixtures/captured/. */
export function captured(path: string): string {
  return readFileSync(join(import.meta.dirname, '../fixtures/captured', path), 'utf8');
}

export class ScriptedExecutor implements Executor {
  /** Every command run, as argv, with its stdin when it had one. */
  readonly commands: { argv: string[]; stdin?: string; user?: string }[] = [];
  readonly files = new Map<string, { data: Buffer; mode: number; uid: number; gid: number }>();
  readonly dirs = new Set<string>(['/']);
  private readonly replies: Reply[];

  constructor(replies: Reply[] = [], readonly name = 'ssh', private readonly ids: { users?: Record<string, number>; groups?: Record<string, number> } = {}) {
    this.replies = replies.map((r) => ({ ...r }));
  }

  /** Adds replies tried before the existing ones. */
  reply(...replies: Reply[]): this {
    this.replies.unshift(...replies.map((r) => ({ ...r })));
    return this;
  }

  /** The commands run so far, each as argv joined by spaces. */
  get lines(): string[] {
    return this.commands.map((c) => c.argv.join(' '));
  }

  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const line = argv.join(' ');
    this.commands.push({ argv, ...(opts.stdin !== undefined ? { stdin: opts.stdin.toString() } : {}), ...(opts.user ? { user: opts.user } : {}) });
    const i = this.replies.findIndex((r) => (typeof r.when === 'string' ? line.startsWith(r.when) : r.when.test(line)));
    if (i < 0) throw new Error(`scripted executor: no reply for: ${line}`);
    const r = this.replies[i]!;
    if (r.times !== undefined && --r.times <= 0) this.replies.splice(i, 1);
    r.effect?.(this, argv, opts);
    return { code: r.code ?? 0, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  async readFile(path: string): Promise<Buffer | undefined> {
    return this.files.get(path)?.data;
  }

  async writeFile(path: string, data: string | Buffer, opts: WriteOptions = {}): Promise<void> {
    const old = this.files.get(path);
    this.files.set(path, {
      data: Buffer.from(data),
      mode: opts.mode ?? old?.mode ?? 0o644,
      uid: opts.owner !== undefined ? (await this.userId(opts.owner)) ?? 0 : old?.uid ?? 0,
      gid: opts.group !== undefined ? (await this.groupId(opts.group)) ?? 0 : old?.gid ?? 0,
    });
  }

  async stat(path: string): Promise<Stat | undefined> {
    const f = this.files.get(path);
    if (f) return { type: 'file', mode: f.mode, uid: f.uid, gid: f.gid, size: f.data.length };
    return this.dirs.has(path) ? { type: 'directory', mode: 0o755, uid: 0, gid: 0, size: 0 } : undefined;
  }

  async readLink(): Promise<string | undefined> {
    return undefined;
  }

  async sha256(path: string): Promise<string | undefined> {
    const f = this.files.get(path);
    return f ? createHash('sha256').update(f.data).digest('hex') : undefined;
  }

  async mkdir(path: string): Promise<void> {
    this.dirs.add(path);
  }

  async remove(path: string): Promise<void> {
    this.files.delete(path);
    this.dirs.delete(path);
  }

  async symlink(): Promise<void> {
    throw new Error('scripted executor: symlinks are not scripted');
  }

  async chmod(path: string, mode: number): Promise<void> {
    const f = this.files.get(path);
    if (f) f.mode = mode;
  }

  async chown(path: string, owner?: string, group?: string): Promise<void> {
    const f = this.files.get(path);
    if (!f) return;
    if (owner !== undefined) f.uid = (await this.userId(owner)) ?? f.uid;
    if (group !== undefined) f.gid = (await this.groupId(group)) ?? f.gid;
  }

  async userId(name: string): Promise<number | undefined> {
    if (/^\d+$/.test(name)) return Number(name);
    return { root: 0, ...this.ids.users }[name];
  }

  async groupId(name: string): Promise<number | undefined> {
    if (/^\d+$/.test(name)) return Number(name);
    return { root: 0, wheel: 0, ...this.ids.groups }[name];
  }

  async facts(): Promise<Record<string, unknown>> {
    return {};
  }

  async close(): Promise<void> {}
}

/** Facts of the systems the contract tests stand for (as `cairn facts` reports them there). */
export const FACTS: Record<string, Record<string, unknown>> = {
  debian: { kernel: 'linux', os_family: 'debian', distribution: 'debian', release: '12', init_system: 'systemd', package_manager: 'apt' },
  ubuntu: { kernel: 'linux', os_family: 'debian', distribution: 'ubuntu', release: '24.04', init_system: 'systemd', package_manager: 'apt' },
  rocky: { kernel: 'linux', os_family: 'redhat', distribution: 'rocky', release: '9.4', init_system: 'systemd', package_manager: 'dnf' },
  alpine: { kernel: 'linux', os_family: 'alpine', distribution: 'alpine', release: '3.20.3', init_system: 'openrc', package_manager: 'apk' },
  arch: { kernel: 'linux', os_family: 'arch', distribution: 'arch', release: 'rolling', init_system: 'systemd', package_manager: 'pacman' },
  freebsd: { kernel: 'freebsd', os_family: 'freebsd', distribution: 'freebsd', release: '14.1', init_system: 'rc.d', package_manager: 'pkg' },
};

/**
 * Compiles a one-target site (`cairn.yaml` runs `run`) with `facts` (built-in OS tables applied)
 * and runs the real engine in `mode` through `exec`.
 */
export async function runScripted(files: Record<string, string>, facts: Record<string, unknown>, exec: Executor, mode: 'plan' | 'apply' = 'apply'): Promise<NodeResult[]> {
  const d = new Diagnostics();
  const catalog = buildCatalog(await loadSite(makeSite(files), d), d);
  d.throwIfAny();
  const target = [...catalog.targets.values()][0]!;
  const run = compile(catalog, target, { facts });
  d.throwIfAny();
  return new Engine(run, buildGraph(run), exec, { mode }).execute();
}
