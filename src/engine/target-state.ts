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
  private readonly path: string;
  private dirReady = false;

  constructor(private readonly exec: Executor, private readonly dir: string) {
    this.path = `${dir.replace(/\/+$/, '')}/pending.json`;
  }

  async load(): Promise<PendingNotification[]> {
    const bytes = await this.exec.readFile(this.path);
    if (!bytes) return [];
    try {
      const data = JSON.parse(bytes.toString('utf8')) as { pending?: PendingNotification[] };
      this.pending = Array.isArray(data.pending) ? data.pending : [];
    } catch {
      // A torn file cannot happen (writes are atomic); an edited one is treated as empty.
      this.pending = [];
    }
    return [...this.pending];
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

  private async save(): Promise<void> {
    if (!this.dirReady) {
      await this.exec.mkdir(this.dir, { parents: true, mode: 0o700 });
      this.dirReady = true;
    }
    await this.exec.writeFile(this.path, `${JSON.stringify({ version: 1, pending: this.pending }, null, 1)}\n`, { mode: 0o600 });
  }
}
