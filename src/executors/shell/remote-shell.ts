/**
 * One long-lived `sh` on the far side, fed requests on its stdin: a file operation or a batched
 * read costs one round trip on an open stream instead of a new channel or process and a new
 * shell. Each request is a shell fragment; its output (stdout and stderr merged) ends with a line
 * holding a per-shell random marker and the fragment's exit status. The stream is any transport's
 * (stream.ts): an ssh2 channel, a local process.
 *
 * Requests are pipelined (DESIGN §7): each is sent at once, without waiting for the replies to
 * those before it. The shell runs them one after another in the order sent, so a request sees
 * whatever the ones before it did, and the replies come back in that order.
 */
import { randomBytes } from 'node:crypto';
import { REMOTE_FUNCTIONS } from './remote-script.ts';
import type { ShellStream } from './stream.ts';

export interface ShellReply {
  code: number;
  output: Buffer;
}

/** The far side's shell went away (or never started): the target is lost for this run. */
export class ShellGone extends Error {}

export class RemoteShell {
  /** What the shell printed since the last reply: `length` bytes of `buffer`, grown by doubling. */
  private buffer: Buffer = Buffer.allocUnsafe(64 * 1024);
  private length = 0;
  private searchFrom = 0;
  /** The requests sent and not yet answered, oldest first: replies come in the order sent. */
  private readonly waiting: { resolve: (r: ShellReply) => void; reject: (e: Error) => void }[] = [];
  private head = 0;
  private drained?: { promise: Promise<void>; resolve: () => void };
  private stderr = '';
  private gone?: Error;
  private readonly marker: Buffer;
  /** Requests sent. */
  requests = 0;
  /**
   * Round trips: requests sent while no other was unanswered. One sent behind others rides on
   * their round trip (its reply comes right after theirs), so it does not count again.
   */
  exchanges = 0;
  /** Settles once the shell is gone (it exited, or its stream was lost). */
  readonly exited: Promise<void>;

  private constructor(private readonly stream: ShellStream, private readonly nonce: string) {
    this.marker = Buffer.from(`\n${nonce} `);
    stream.stdout.on('data', (d: Buffer) => this.onData(d));
    stream.stderr.on('data', (d: Buffer) => {
      if (this.stderr.length < 65536) this.stderr += d.toString();
    });
    stream.onClose((error) => this.fail(new ShellGone(this.stderr.trim() || error?.message || 'the remote shell exited')));
    this.exited = new Promise((resolve) => stream.onClose(() => resolve()));
  }

  /**
   * Takes over a stream to a running shell and defines Cairn's helper functions in it; `then` runs
   * in the same round trip, after them.
   */
  static async start(stream: ShellStream, then = ''): Promise<{ shell: RemoteShell; nonce: string; init: Buffer }> {
    const nonce = `cairn-${randomBytes(12).toString('hex')}`;
    const shell = new RemoteShell(stream, nonce);
    const reply = await shell.request(`__n=${nonce}\n${REMOTE_FUNCTIONS}\n${then}`);
    if (reply.code !== 0) throw new ShellGone(`the remote shell could not set up: ${reply.output.toString().trim()}`);
    return { shell, nonce, init: reply.output };
  }

  /**
   * Appends a chunk. A reply arrives in many small chunks (a batched read of 742 paths: about 180
   * of them, 70 KB), so joining them anew for each one copied megabytes: the buffer doubles instead.
   */
  private append(d: Buffer): void {
    if (this.length + d.length > this.buffer.length) {
      const bigger = Buffer.allocUnsafe(Math.max(2 * this.buffer.length, this.length + d.length));
      this.buffer.copy(bigger, 0, 0, this.length);
      this.buffer = bigger;
    }
    d.copy(this.buffer, this.length);
    this.length += d.length;
  }

  private onData(d: Buffer): void {
    this.append(d);
    // One chunk may end several pipelined replies.
    while (this.takeReply());
  }

  /** Answers the oldest request if its reply is complete; false when it is not (yet). */
  private takeReply(): boolean {
    const seen = this.buffer.subarray(0, this.length);
    const at = seen.indexOf(this.marker, this.searchFrom);
    if (at < 0) {
      this.searchFrom = Math.max(0, this.length - this.marker.length);
      return false;
    }
    const end = seen.indexOf(0x0a, at + this.marker.length);
    if (end < 0) {
      this.searchFrom = at;
      return false;
    }
    const code = Number(seen.subarray(at + this.marker.length, end).toString());
    // Copied out: the buffer is reused for what comes next.
    const output = Buffer.from(seen.subarray(0, at));
    // What came after the reply moves to the front; a buffer a large reply grew is not kept.
    const rest = seen.subarray(end + 1);
    if (this.buffer.length > 1 << 20) this.buffer = Buffer.allocUnsafe(Math.max(64 * 1024, rest.length));
    this.length = rest.copy(this.buffer, 0);
    this.searchFrom = 0;
    this.next()?.resolve({ code, output });
    return true;
  }

  /** The oldest unanswered request, taken off the queue. */
  private next(): { resolve: (r: ShellReply) => void; reject: (e: Error) => void } | undefined {
    if (this.head >= this.waiting.length) return undefined;
    const w = this.waiting[this.head++]!;
    if (this.head === this.waiting.length) {
      this.waiting.length = 0;
      this.head = 0;
      const drained = this.drained;
      this.drained = undefined;
      drained?.resolve();
    }
    return w;
  }

  private fail(err: Error): void {
    this.gone ??= err;
    for (let w = this.next(); w; w = this.next()) w.reject(err);
  }

  /** How many requests are sent and not yet answered. */
  get pending(): number {
    return this.waiting.length - this.head;
  }

  /** Settles once every request sent so far is answered (or the shell is gone). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    if (!this.drained) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.drained = { promise, resolve };
    }
    return this.drained.promise;
  }

  /**
   * Runs a shell fragment, sent at once behind any unanswered ones; its stdin is /dev/null, so it
   * can never eat the requests after it.
   */
  request(fragment: string): Promise<ShellReply> {
    if (this.gone) return Promise.reject(this.gone);
    this.requests++;
    if (this.pending === 0) this.exchanges++;
    return new Promise<ShellReply>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.stream.stdin.write(`{ ${fragment}\n} </dev/null 2>&1; printf '\\n%s %s\\n' "$__n" "$?"\n`);
    });
  }

  close(): void {
    this.stream.stdin.end();
  }
}
