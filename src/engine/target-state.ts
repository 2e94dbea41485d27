/**
 * What Cairn keeps on the target between runs, in its state directory (DESIGN §5.3): the
 * notifications not yet delivered. Written atomically through the executor after every change,
 * so a run that fails or is killed loses none.
 */
import type { Executor } from '../executors/types.ts';

export interface PendingNotification {
  /** The node to trigger (a graph node id). */
  node: string;
  /** The node whose change caused it, for reports. */
  from: string;
}

export class TargetState {
  private pending: PendingNotification[] = [];
  /** Hashes of write-only inputs by node ref (DESIGN §5.8). */
  private inputs: Record<string, string> = {};
  private readonly path: string;
  private readonly metadataPath: string;
  private dirReady = false;

  constructor(private readonly exec: Executor, private readonly dir: string) {
    this.path = `${dir.replace(/\/+$/, '')}/pending.json`;
    this.metadataPath = `${dir.replace(/\/+$/, '')}/metadata.json`;
  }

  /** The files this state lives in. */
  files(): string[] {
    return [this.path, this.metadataPath];
  }

  private async readJson<T>(path: string): Promise<Partial<T>> {
    const bytes = await this.exec.readFile(path);
    if (!bytes) return {};
    try {
      return JSON.parse(bytes.toString('utf8')) as Partial<T>;
    } catch {
      // A torn file cannot happen (writes are atomic); an edited one is treated as empty.
      return {};
    }
  }

  async load(): Promise<PendingNotification[]> {
    const data = await this.readJson<{ pending: PendingNotification[] }>(this.path);
    this.pending = Array.isArray(data.pending) ? data.pending : [];
    const meta = await this.readJson<{ inputs: Record<string, string> }>(this.metadataPath);
    this.inputs = meta.inputs && typeof meta.inputs === 'object' ? meta.inputs : {};
    return [...this.pending];
  }

  inputHash(ref: string): string | undefined {
    return this.inputs[ref];
  }

  async setInputHash(ref: string, hash: string | undefined): Promise<void> {
    if (this.inputs[ref] === hash) return;
    if (hash === undefined) delete this.inputs[ref];
    else this.inputs[ref] = hash;
    await this.ensureDir();
    await this.exec.writeFile(this.metadataPath, `${JSON.stringify({ version: 1, inputs: this.inputs }, null, 1)}\n`, { mode: 0o600 });
  }

  has(node: string): boolean {
    return this.pending.some((p) => p.node === node);
  }

  async add(node: string, from: string): Promise<void> {
    if (this.has(node)) return;
    this.pending.push({ node, from });
    await this.save();
  }

  async remove(node: string): Promise<void> {
    const before = this.pending.length;
    this.pending = this.pending.filter((p) => p.node !== node);
    if (this.pending.length !== before) await this.save();
  }

  private async ensureDir(): Promise<void> {
    if (!this.dirReady) {
      await this.exec.mkdir(this.dir, { parents: true, mode: 0o700 });
      this.dirReady = true;
    }
  }

  private async save(): Promise<void> {
    await this.ensureDir();
    await this.exec.writeFile(this.path, `${JSON.stringify({ version: 1, pending: this.pending }, null, 1)}\n`, { mode: 0o600 });
  }
}
