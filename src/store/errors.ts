import { ExitCode } from '../lib/errors.ts';

/** The store cannot be reached (or opened): nothing was read or written. The CLI exits 3. */
export class StoreUnreachableError extends Error {
  readonly exitCode = ExitCode.unreachable;
  constructor(readonly url: string, reason: string) {
    super(`store ${url} is unreachable: ${reason}`);
    this.name = 'StoreUnreachableError';
  }
}

/**
 * The store's data is not what Cairn wrote: an SQLite file that is damaged or not a store, a
 * document that is not JSON, a head naming a revision that is not there. Like an unreachable
 * store it is the environment's fault, not the input's (exit code 3); the message names the
 * store (and its file) so the user knows what to repair or move aside.
 */
export class StoreCorruptError extends StoreUnreachableError {
  constructor(url: string, reason: string) {
    super(url, reason);
    this.message = `store ${url} is corrupt: ${reason}`;
    this.name = 'StoreCorruptError';
  }
}

/**
 * The store answered but refused the request: the user may not do it (a role without write
 * access), or it is larger than the store accepts. Nothing was written. The CLI exits 2.
 */
export class StoreRefusedError extends Error {
  readonly exitCode = ExitCode.invalidInput;
  constructor(readonly url: string, reason: string) {
    super(`store ${url} refused the request: ${reason}`);
    this.name = 'StoreRefusedError';
  }
}

/**
 * A watch asked for history the store no longer keeps. The caller should read the current state
 * (`list`) and watch on from `revision() + 1`.
 */
export class StoreCompactedError extends Error {
  constructor(
    readonly url: string,
    /** The first revision the watch wanted. */
    readonly fromRevision: number,
    /** The oldest revision still available, when the back end says. */
    readonly compactRevision?: number,
  ) {
    super(
      `store ${url}: cannot watch from revision ${fromRevision}: that history was compacted` +
        (compactRevision !== undefined ? ` (the oldest revision kept is ${compactRevision})` : ''),
    );
    this.name = 'StoreCompactedError';
  }
}
