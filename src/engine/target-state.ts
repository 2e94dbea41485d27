/**
 * What Cairn keeps on the target between runs, in its state directory (DESIGN §5.3): the
 * notifications not yet delivered. Written atomically through the executor after every change,
 * so a run that fails or is killed loses none.
 */
import { TargetError, type Executor } from '../executors/types.ts';
import { killPoint } from '../lib/test-kill.ts';

export interface PendingNotification {
  /** The node to trigger (a graph node id). */
  node: string;
  /** The node whose change caused it, for reports. */
  from: string;
}

/**
 * Where a target's state is kept: its state directory through the executor (the default), or a
 * store, for agents (pending notifications then survive the loss of the machine's state dir).
 */
export interface StateStorage {
  /** Paths on the target the state is read from, announced with the run's other reads. */
  paths(): string[];
  read(file: StateFile): Promise<Buffer | undefined>;
  /** Atomic: a reader sees the old or the new content, never a mix. */
  write(file: StateFile, data: string): Promise<void>;
}

export type StateFile = 'pending.json' | 'metadata.json';

/** The state directory on the target (`state_dir`, default /var/lib/cairn), through its executor. */
export function stateDirStorage(exec: Executor, dir: string): StateStorage {
  const base = dir.replace(/\/+$/, '');
  let dirReady = false;
  return {
    paths: () => [`${base}/pending.json`, `${base}/metadata.json`],
    read: (file) => exec.readFile(`${base}/${file}`),
    async write(file, data) {
      if (!dirReady) {
        await exec.mkdir(base, { parents: true, mode: 0o700 });
        dirReady = true;
      }
      await exec.writeFile(`${base}/${file}`, data, { mode: 0o600 });
    },
  };
}

/**
 * A state file on the target holds what Cairn did not write: the run stops before it changes
 * anything, reported with this message (the target's error, as when its state cannot be read).
 */
export class DamagedStateError extends TargetError {}

function isNotification(p: unknown): p is PendingNotification {
  return p !== null && typeof p === 'object' && typeof (p as PendingNotification).node === 'string' && typeof (p as PendingNotification).from === 'string';
}

export class TargetState {
  private pending: PendingNotification[] = [];
  /** Hashes of write-only inputs by node ref (DESIGN §5.8). */
  private inputs: Record<string, string> = {};
  /**
   * Writes of each file, one after another: nodes the engine overlaps may change the state at
   * the same time, and a write that started earlier must not land last with older content.
   */
  private readonly writing = new Map<StateFile, Promise<void>>();

  /** `exclusive`: whether only this run writes the storage now (TargetState.update). */
  constructor(private readonly storage: StateStorage, private readonly exclusive: () => boolean = () => false) {}

  /** The files this state lives in, when they are on the target. */
  files(): string[] {
    return this.storage.paths();
  }

  /** Where `file` is, for messages: its path on the target, or its name when a store keeps it. */
  private where(file: StateFile): string {
    return this.storage.paths().find((p) => p.endsWith(`/${file}`)) ?? file;
  }

  /**
   * A state file's content, or undefined when there is none. Content Cairn did not write is an
   * error: reading it as empty would silently drop pending notifications (DESIGN §5.3) or make
   * every write-only input look changed.
   */
  private async readJson<T>(file: StateFile, parse: (data: Record<string, unknown>) => T | undefined, loses: string): Promise<T | undefined> {
    const bytes = await this.storage.read(file);
    if (!bytes) return undefined;
    let why: string;
    try {
      const data: unknown = JSON.parse(bytes.toString('utf8'));
      const parsed = data !== null && typeof data === 'object' && !Array.isArray(data) ? parse(data as Record<string, unknown>) : undefined;
      if (parsed !== undefined) return parsed;
      why = 'not the content Cairn writes there';
    } catch (err) {
      why = `not JSON: ${(err as Error).message}`;
    }
    throw new DamagedStateError(`${this.where(file)}: damaged (${why}); Cairn will not guess what it held. ` +
      `Fix it, or remove it to start afresh (${loses})`);
  }

  async load(): Promise<PendingNotification[]> {
    this.pending = await this.readPending();
    this.inputs = await this.readJson('metadata.json', ({ inputs }) =>
      inputs !== null && typeof inputs === 'object' && !Array.isArray(inputs) && Object.values(inputs).every((h) => typeof h === 'string')
        ? inputs as Record<string, string> : undefined,
    'removing it makes the next run apply every write-only input again') ?? {};
    return [...this.pending];
  }

  private async readPending(): Promise<PendingNotification[]> {
    return await this.readJson('pending.json', ({ pending }) =>
      Array.isArray(pending) && pending.every(isNotification) ? pending : undefined,
    'removing it drops the notifications it holds: their handlers will not run') ?? [];
  }

  inputHash(ref: string): string | undefined {
    return this.inputs[ref];
  }

  async setInputHash(ref: string, hash: string | undefined): Promise<void> {
    if (this.inputs[ref] === hash) return;
    if (hash === undefined) delete this.inputs[ref];
    else this.inputs[ref] = hash;
    await this.write('metadata.json', () => `${JSON.stringify({ version: 1, inputs: this.inputs }, null, 1)}\n`);
  }

  /** Queues a write of `file`, its content taken when its turn comes (so the last write is the newest). */
  private write(file: StateFile, content: () => string): Promise<void> {
    const next = (this.writing.get(file) ?? Promise.resolve()).then(async () => {
      const data = content();
      killPoint('before-state-write', file);
      await this.storage.write(file, data);
      killPoint('after-state-write', file);
    });
    this.writing.set(file, next.catch(() => undefined));
    return next;
  }

  has(node: string): boolean {
    return this.pending.some((p) => p.node === node);
  }

  async add(node: string, from: string): Promise<void> {
    await this.addAll([{ node, from }]);
  }

  /** Adds the notifications not pending yet, in one write; returns the nodes it added. */
  async addAll(entries: PendingNotification[]): Promise<string[]> {
    // Nothing to write when this run's own copy has them all: only this run removes entries.
    if (entries.every((e) => this.has(e.node))) return [];
    let added: string[] = [];
    await this.update((pending) => {
      added = [];
      for (const e of entries) {
        if (pending.some((p) => p.node === e.node)) continue;
        pending.push(e);
        added.push(e.node);
      }
      return added.length > 0;
    });
    return added;
  }

  async remove(node: string): Promise<void> {
    if (!this.has(node)) return;
    await this.update((pending) => {
      const at = pending.findIndex((p) => p.node === node);
      if (at >= 0) pending.splice(at, 1);
      return at >= 0;
    });
  }

  /**
   * Read, modify, write, one after another: each change starts from pending.json as it is on
   * the target now, never from the copy this run read at its start, unless the run writes it
   * alone (`exclusive`: it holds the run lock, and nothing else writes the state dir then; over
   * SSH a read saved is a round trip). A run without the lock, or state kept in a store that
   * another process writes, so cannot erase an entry it did not see. `change` edits the list and
   * says whether it changed it.
   */
  private update(change: (pending: PendingNotification[]) => boolean): Promise<void> {
    const next = (this.writing.get('pending.json') ?? Promise.resolve()).then(async () => {
      const pending = this.exclusive() ? [...this.pending] : await this.readPending();
      const changed = change(pending);
      this.pending = pending;
      if (!changed) return;
      const data = `${JSON.stringify({ version: 1, pending }, null, 1)}\n`;
      killPoint('before-state-write', 'pending.json');
      await this.storage.write('pending.json', data);
      killPoint('after-state-write', 'pending.json');
    });
    this.writing.set('pending.json', next.catch(() => undefined));
    return next;
  }
}
