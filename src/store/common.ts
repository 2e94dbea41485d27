/** Pieces both back ends share: byte ranges, argument checks and the queue behind a watch. */
import type { Change, Compare, Op } from './types.ts';

export function toBuffer(value: Buffer | string): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

/**
 * The first key after every key that starts with `prefix` (etcd's range end for a prefix), or
 * undefined when there is none (an empty prefix, or one made only of 0xff bytes).
 */
export function prefixEnd(prefix: Buffer): Buffer | undefined {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i] = end[i]! + 1;
      return end.subarray(0, i + 1);
    }
  }
  return undefined;
}

/** Rejects a malformed compare before it reaches a back end, with a message that names it. */
export function checkCompare(c: Compare): void {
  const what = `txn compare on ${JSON.stringify(c.key)}`;
  switch (c.target) {
    case 'value':
      if (typeof c.value !== 'string' && !Buffer.isBuffer(c.value)) throw new TypeError(`${what}: a value compares with a string or Buffer`);
      break;
    case 'modRevision':
    case 'version':
      if (typeof c.value !== 'number' || !Number.isSafeInteger(c.value)) throw new TypeError(`${what}: ${c.target} compares with an integer`);
      break;
    case 'exists':
      if (typeof c.value !== 'boolean') throw new TypeError(`${what}: exists compares with true or false`);
      if (c.op !== '=' && c.op !== '!=') throw new TypeError(`${what}: exists takes = or !=`);
      break;
    default:
      throw new TypeError(`${what}: unknown target ${JSON.stringify((c as { target: unknown }).target)}`);
  }
  if (!['=', '!=', '<', '>'].includes(c.op)) throw new TypeError(`${what}: unknown operator ${JSON.stringify(c.op)}`);
}

/** etcd refuses a txn that writes one key twice in a branch; the SQLite back end does the same. */
export function checkOps(ops: Op[]): void {
  const seen = new Set<string>();
  for (const op of ops) {
    const key = 'put' in op ? op.put : op.delete;
    if (seen.has(key)) throw new Error(`txn writes ${JSON.stringify(key)} more than once in one branch`);
    seen.add(key);
  }
}

/**
 * The queue between a back end's change source and the consumer of a watch: the source pushes
 * batches at any time, the consumer pulls one change at a time.
 */
export class ChangeQueue {
  private items: Change[] = [];
  private wake: (() => void) | undefined;
  private failure: { error: unknown } | undefined;
  private ended = false;

  push(changes: Change[]): void {
    if (this.ended || changes.length === 0) return;
    this.items.push(...changes);
    this.notify();
  }

  fail(error: unknown): void {
    if (this.ended) return;
    this.failure = { error };
    this.ended = true;
    this.notify();
  }

  /** Ends the watch now: changes not yet taken are dropped (the consumer asked to stop). */
  end(): void {
    this.items = [];
    this.ended = true;
    this.notify();
  }

  async *drain(): AsyncGenerator<Change> {
    for (;;) {
      const next = this.items.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.failure) throw this.failure.error;
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/** Compares two numbers (or Buffers bytewise) with a Compare operator. */
export function holds(op: Compare['op'], a: number | Buffer, b: number | Buffer): boolean {
  const order = typeof a === 'number' && typeof b === 'number' ? Math.sign(a - b) : Buffer.compare(a as Buffer, b as Buffer);
  switch (op) {
    case '=': return order === 0;
    case '!=': return order !== 0;
    case '<': return order < 0;
    case '>': return order > 0;
  }
}
