/** The local executor: Node's fs and child_process, in-process (no process per file check). */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, constants as fsConstants } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { localFacts } from './local-facts.ts';
import type { Executor, RunOptions, RunResult, Stat, WriteOptions } from './types.ts';

const OUTPUT_LIMIT = 1 << 20;

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** A name for a temp file beside `path`, so the final rename stays on one file system. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.cairn-tmp.${process.pid}.${randomBytes(4).toString('hex')}`);
}

function idTable(text: string): Map<string, number> {
  const table = new Map<string, number>();
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[0]) table.set(f[0], Number(f[2]));
  }
  return table;
}

export class LocalExecutor implements Executor {
  readonly name = 'local';
  private users?: Map<string, number>;
  private groups?: Map<string, number>;

  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const uid = opts.user !== undefined ? await this.userId(opts.user) : undefined;
    if (opts.user !== undefined && uid === undefined) return { code: 127, stdout: '', stderr: `no such user: ${opts.user}` };
    return new Promise((resolve) => {
      const child = spawn(argv[0]!, argv.slice(1), {
        cwd: opts.cwd,
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
        stdio: [opts.stdin !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
        ...(uid !== undefined ? { uid } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      child.stdout!.on('data', (d: Buffer) => {
        if (stdout.length < OUTPUT_LIMIT) stdout += d.toString();
      });
      child.stderr!.on('data', (d: Buffer) => {
        if (stderr.length < OUTPUT_LIMIT) stderr += d.toString();
      });
      if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
      const timer = opts.timeoutMs ? setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, opts.timeoutMs) : undefined;
      child.on('error', (err) => {
        if (timer) clearTimeout(timer);
        resolve({ code: errno(err) === 'ENOENT' ? 127 : 126, stdout, stderr: stderr + String(err.message) });
      });
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        resolve({ code: code ?? (signal ? 128 + 9 : 1), stdout, stderr, ...(timedOut ? { timedOut } : {}) });
      });
    });
  }

  async readFile(path: string): Promise<Buffer | undefined> {
    try {
      return await fs.readFile(path);
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  async writeFile(path: string, data: string | Buffer, opts: WriteOptions = {}): Promise<void> {
    const existing = await this.stat(path);
    const temp = tempPathFor(path);
    const mode = opts.mode ?? (existing?.type === 'file' ? existing.mode : undefined);
    const handle = await fs.open(temp, fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY, mode ?? 0o666);
    try {
      await handle.writeFile(data);
      // open() applies the umask; an explicit or kept mode must be exact.
      if (mode !== undefined) await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      if (opts.owner !== undefined || opts.group !== undefined) await this.chown(temp, opts.owner, opts.group);
      else if (existing?.type === 'file') await fs.chown(temp, existing.uid, existing.gid).catch(() => undefined);
      await fs.rename(temp, path);
    } catch (err) {
      await fs.rm(temp, { force: true });
      throw err;
    }
  }

  async stat(path: string): Promise<Stat | undefined> {
    try {
      const s = await fs.lstat(path);
      const type = s.isSymbolicLink() ? 'symlink' : s.isFile() ? 'file' : s.isDirectory() ? 'directory' : 'other';
      return { type, mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, size: s.size };
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  async readLink(path: string): Promise<string | undefined> {
    try {
      return await fs.readlink(path);
    } catch (err) {
      if (['ENOENT', 'EINVAL', 'ENOTDIR'].includes(errno(err) ?? '')) return undefined;
      throw err;
    }
  }

  async mkdir(path: string, opts: { parents?: boolean; mode?: number } = {}): Promise<void> {
    await fs.mkdir(path, { recursive: opts.parents ?? false, ...(opts.mode !== undefined ? { mode: opts.mode } : {}) });
    if (opts.mode !== undefined) await fs.chmod(path, opts.mode);
  }

  async remove(path: string): Promise<void> {
    await fs.rm(path, { recursive: true, force: true });
  }

  async symlink(target: string, path: string): Promise<void> {
    const temp = tempPathFor(path);
    await fs.symlink(target, temp);
    try {
      await fs.rename(temp, path);
    } catch (err) {
      await fs.rm(temp, { force: true });
      throw err;
    }
  }

  async chmod(path: string, mode: number): Promise<void> {
    await fs.chmod(path, mode);
  }

  async chown(path: string, owner?: string, group?: string): Promise<void> {
    const uid = owner === undefined ? -1 : await this.userId(owner);
    const gid = group === undefined ? -1 : await this.groupId(group);
    if (uid === undefined) throw new Error(`no such user: ${owner}`);
    if (gid === undefined) throw new Error(`no such group: ${group}`);
    await fs.lchown(path, uid, gid);
  }

  async userId(name: string): Promise<number | undefined> {
    if (/^\d+$/.test(name)) return Number(name);
    this.users ??= idTable(await fs.readFile('/etc/passwd', 'utf8').catch(() => ''));
    return this.users.get(name);
  }

  async groupId(name: string): Promise<number | undefined> {
    if (/^\d+$/.test(name)) return Number(name);
    this.groups ??= idTable(await fs.readFile('/etc/group', 'utf8').catch(() => ''));
    return this.groups.get(name);
  }

  async facts(): Promise<Record<string, unknown>> {
    return localFacts();
  }

  async close(): Promise<void> {}
}
