/**
 * Which nodes may be applied side by side (ResourceType.overlap): the engine lets a node start
 * while others are still finishing only when none of those acts on its paths, and starts a node
 * ahead of earlier ones that are not free to run yet (DESIGN §5.1: among nodes free to run,
 * declaration order decides) only when it touches none of their paths either. Pure bookkeeping,
 * no side effects.
 */

/** What a node acts on: its paths, and whether it may create the folders above them. */
export interface Footprint {
  /** Each path with one trailing slash, so "at or above" is a prefix test. */
  readonly paths: string[];
  /** For each path, every folder above it and the path itself, slashed, from the root down. */
  readonly prefixes: string[][];
  /** The folder each path is in, slashed. */
  readonly folders: string[];
  readonly parents: boolean;
}

function slashed(path: string): string {
  return `${path.replace(/\/+$/, '')}/`;
}

export function footprintOf(paths: string[], parents: boolean): Footprint {
  const slashedPaths = paths.map(slashed);
  const prefixes = slashedPaths.map((p) => {
    const list: string[] = [];
    for (let i = p.indexOf('/'); i >= 0; i = p.indexOf('/', i + 1)) list.push(p.slice(0, i + 1));
    return list;
  });
  return { paths: slashedPaths, prefixes, folders: prefixes.map((list) => list[list.length - 2] ?? '/'), parents };
}

/** A multiset of strings. */
class Counts {
  private readonly counts = new Map<string, number>();

  add(key: string, by: 1 | -1): void {
    const n = (this.counts.get(key) ?? 0) + by;
    if (n === 0) this.counts.delete(key);
    else this.counts.set(key, n);
  }

  has(key: string): boolean {
    return this.counts.has(key);
  }

  hasAny(keys: string[]): boolean {
    for (const k of keys) if (this.counts.has(k)) return true;
    return false;
  }
}

/**
 * Footprints, indexed by path so that asking whether a footprint touches any of them costs the
 * depth of its paths, not their number. Two footprints touch when a path of one is at or above
 * a path of the other, or when one may create folders above its path and the other lives in a
 * folder at or above that path (it may be one of the folders about to be created).
 */
export class FootprintIndex {
  /** The paths held. */
  private readonly at = new Counts();
  /** Every path held and every folder above each. */
  private readonly atOrAbove = new Counts();
  /** The folders the paths held are in. */
  private readonly folders = new Counts();
  /** Like atOrAbove, for the footprints that may create folders above their paths. */
  private readonly atOrAboveMakingParents = new Counts();

  /** Whether a footprint held touches this one. */
  blocks(f: Footprint): boolean {
    for (let i = 0; i < f.paths.length; i++) {
      const prefixes = f.prefixes[i]!;
      // A path held at or above this one, or this one at or above a path held.
      if (this.at.hasAny(prefixes) || this.atOrAbove.has(f.paths[i]!)) return true;
      // This one may make a folder that a footprint held lives in.
      if (f.parents && this.folders.hasAny(prefixes)) return true;
      // A footprint held may make the folder this one lives in.
      if (this.atOrAboveMakingParents.has(f.folders[i]!)) return true;
    }
    return false;
  }

  add(f: Footprint): void {
    this.index(f, 1);
  }

  remove(f: Footprint): void {
    this.index(f, -1);
  }

  private index(f: Footprint, by: 1 | -1): void {
    for (let i = 0; i < f.paths.length; i++) {
      this.at.add(f.paths[i]!, by);
      this.folders.add(f.folders[i]!, by);
      for (const prefix of f.prefixes[i]!) {
        this.atOrAbove.add(prefix, by);
        if (f.parents) this.atOrAboveMakingParents.add(prefix, by);
      }
    }
  }
}

/** The nodes in flight, by id, with their footprints indexed (FootprintIndex). */
export class InFlight {
  private readonly running = new Set<string>();
  private readonly footprints = new FootprintIndex();
  private wake?: { promise: Promise<void>; resolve: () => void };
  /** The nodes finished since `takeFinished` last asked: only they can free a node that waits. */
  private finishedSince: { id: string; footprint: Footprint }[] = [];

  get size(): number {
    return this.running.size;
  }

  has(id: string): boolean {
    return this.running.has(id);
  }

  /** Whether a node in flight touches this footprint. */
  blocks(f: Footprint): boolean {
    return this.footprints.blocks(f);
  }

  /** `done` must not reject: the engine records a node's failure before it settles. */
  add(id: string, footprint: Footprint, done: Promise<void>): void {
    this.running.add(id);
    this.footprints.add(footprint);
    void done.then(() => {
      this.running.delete(id);
      this.footprints.remove(footprint);
      this.finishedSince.push({ id, footprint });
      const wake = this.wake;
      this.wake = undefined;
      wake?.resolve();
    });
  }

  get finishedSinceAsked(): boolean {
    return this.finishedSince.length > 0;
  }

  /** The nodes finished since the last call. */
  takeFinished(): { id: string; footprint: Footprint }[] {
    const finished = this.finishedSince;
    this.finishedSince = [];
    return finished;
  }

  /**
   * Resolves when a node in flight has finished, at once when one finished since `takeFinished`
   * last asked: it may free a node that waits, and the caller has not seen it yet (a node can
   * finish while the caller was between its last look and this call; waiting for the next one
   * then could wait for a node held until the waiting one starts: a run that never ends).
   */
  any(): Promise<void> {
    if (this.running.size === 0 || this.finishedSince.length > 0) return Promise.resolve();
    if (!this.wake) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.wake = { promise, resolve };
    }
    return this.wake.promise;
  }

  /** Resolves when every node in flight has finished. */
  async all(): Promise<void> {
    while (this.running.size > 0) await this.any();
  }
}

/**
 * Results in the order their nodes started: an overlapped node may finish before one that
 * started earlier, and its result waits for it.
 */
export class StartOrder<T> {
  private readonly queue: { id: string; result?: T }[] = [];
  private readonly waiting = new Map<string, { id: string; result?: T }>();

  /** From now on, `id`'s result waits for those held before it, and holds back those after. */
  hold(id: string): void {
    const slot = { id };
    this.queue.push(slot);
    this.waiting.set(id, slot);
  }

  isHeld(id: string): boolean {
    return this.waiting.has(id);
  }

  /** Records `id`'s result; returns every result now due, in start order. */
  release(id: string, result: T): T[] {
    const slot = this.waiting.get(id);
    if (!slot) return [result];
    this.waiting.delete(id);
    slot.result = result;
    const due: T[] = [];
    while (this.queue[0]?.result !== undefined) due.push(this.queue.shift()!.result!);
    return due;
  }
}
