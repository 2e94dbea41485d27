/**
 * The byte stream a shell protocol runs over: the stdio of an `sh` somewhere (an ssh2 channel, a
 * local `chroot` or `nsenter` process). RemoteShell needs no more than this, so every transport
 * speaks the same protocol.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';

export interface ByteSource {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
}

export interface ShellStream {
  /** The shell's stdout, where the framed replies come. */
  readonly stdout: ByteSource;
  /** Kept apart from stdout: a reply's frame must never be split by an error message. */
  readonly stderr: ByteSource;
  /** Where the requests go. */
  readonly stdin: { write(text: string): unknown; end(): unknown };
  /**
   * `listener` runs once the shell is gone, after the last of its output was delivered; with an
   * error when the shell could not be started at all.
   */
  onClose(listener: (error?: Error) => void): void;
}

/**
 * A local process's stdio as a shell stream. A process that cannot start (no such program)
 * reports an error instead of closing, and a write to one that exited fails with EPIPE: both
 * count as the shell going, not as a crash of Cairn.
 */
export function childStream(child: ChildProcessWithoutNullStreams): ShellStream {
  child.stdin.on('error', () => undefined);
  return {
    stdout: child.stdout,
    stderr: child.stderr,
    stdin: child.stdin,
    onClose(listener) {
      child.once('close', () => listener());
      child.once('error', listener);
    },
  };
}
