/**
 * Which nodes may be applied side by side (ResourceType.overlap): the engine starts nodes in run
 * order, and lets a node start while earlier ones are still finishing only when none of those
 * acts on its paths. Pure bookkeeping, no side effects.
 */

/** What a node in flight acts on: its paths, and whether it may create the folders above them. */
export interface Footprint {
  /** Each path with one trailing slash, so "at or above" is a prefix test. */
  readonly paths: string[];
  /** The folder each path is in, the same way. */
  readonly folders: string[];
  readonly parents: boolean;
}

function slashed(path: string): string {
  return `${path.replace(/\/+$/, '')}/`;
}

export function footprintOf(paths: string[], parents: boolean): Footprint {
  const slashedPaths = paths.map(slashed);
  return { paths: slashedPaths, folders: slashedPaths.map((p) => p.slice(0, p.lastIndexOf('/', p.length - 2) + 1) || '/'), parents };
}

/**
 * Two footprints touch when a path of one is at or above a path of the other, or when one may
 * create folders above its path and the other lives in a folder at or above that path (it may
 * be one of the folders about to be created).
 */
export function touches(a: Footprint, b: Footprint): boolean {
  for (let i = 0; i < a.paths.length; i++) {
    const p = a.paths[i]!;
    for (let j = 0; j < b.paths.length; j++) {
      const q = b.paths[j]!;
      if (p.startsWith(q) || q.startsWith(p)) return true;
      if (a.parents && p.startsWith(b.folders[j]!)) return true;
      if (b.parents && q.startsWith(a.folders[i]!)) return true;
    }
  }
  return false;
}

/** The nodes in flight, by id, with what each acts on. */
export class InFlight {
  private readonly running = new Map<string, { footprint: Footprint; done: Promise<void> }>();

  get size(): number {
    return this.running.size;
  }

  has(id: string): boolean {
    return this.running.has(id);
  }

  /** The node in flight whose footprint touches this one, if any. */
  blocking(footprint: Footprint): string | undefined {
    for (const [id, r] of this.running) if (touches(r.footprint, footprint)) return id;
    return undefined;
  }

  add(id: string, footprint: Footprint, done: Promise<void>): void {
    this.running.set(id, { footprint, done });
    void done.finally(() => this.running.delete(id));
  }

  /** Resolves when any node in flight has finished. */
  async any(): Promise<void> {
    await Promise.race([...this.running.values()].map((r) => r.done));
  }

  /** Resolves when every node in flight has finished. */
  async all(): Promise<void> {
    while (this.running.size > 0) await this.any();
  }
}
