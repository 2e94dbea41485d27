/**
 * The CLI's standard output and error. When standard output is a pipe, a file, a socket or
 * /dev/null (a script, cron, a CI log), text is written straight to the descriptor: Node's
 * process.stdout would first load its stream modules, a measurable part of a converged run. A
 * terminal gets process.stdout (progress redraws need it), as does a pipe left non-blocking by
 * whoever made it.
 *
 * `cairn schema | head` closing the pipe early is not an error: the command just stops.
 */
import { fstatSync, statSync, writeSync } from 'node:fs';

/** Takes the CLI's text in place of the process's descriptors. */
export interface OutputSink {
  out(text: string): void;
  err(text: string): void;
}

/**
 * Set while tests run main() in the test's own process, whose descriptors belong to the test
 * runner; the real command never sets it.
 */
let sink: OutputSink | undefined;

/** Sends the CLI's output to `next` (undefined: the process's own again); returns the sink it replaces. */
export function redirectOutput(next: OutputSink | undefined): OutputSink | undefined {
  const previous = sink;
  sink = next;
  return previous;
}

/** Whether fd 1 is written with writeSync; decided on first use. */
let direct: boolean | undefined;

function isDirect(): boolean {
  if (direct === undefined) {
    try {
      const s = fstatSync(1);
      direct = s.isFIFO() || s.isFile() || s.isSocket() || (s.isCharacterDevice() && s.rdev === statSync('/dev/null').rdev);
    } catch {
      direct = false;
    }
  }
  return direct;
}

let streamReady = false;
/** Whether anything went through Node's streams, which may still hold it (a non-blocking pipe). */
let streamsUsed = false;

/** process.stdout, with the early-close rule above. */
export function stdoutStream(): NodeJS.WriteStream {
  streamsUsed = true;
  if (!streamReady) {
    streamReady = true;
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
  }
  return process.stdout;
}

/** A terminal (not merely a character device such as /dev/null). */
export function stdoutIsTTY(): boolean {
  if (sink) return false;
  return !isDirect() && stdoutStream().isTTY === true;
}

/**
 * Colour on a terminal unless NO_COLOR is set to anything but the empty string (no-color.org).
 */
export function colourAllowed(): boolean {
  const no = process.env.NO_COLOR;
  return (no === undefined || no === '') && stdoutIsTTY();
}

let statusShown = false;

/**
 * A transient line on a terminal's standard error while nothing else is printed yet (connecting,
 * compiling take seconds); the next output replaces it. Nothing when output is not a terminal.
 */
export function showStatus(text: string): void {
  // Standard output first: when it is not a terminal, process.stderr (and the stream modules
  // behind it) is never set up for a line that would not be shown.
  if (sink || !stdoutIsTTY() || process.stderr.isTTY !== true) return;
  streamsUsed = true;
  process.stderr.write(`\r\x1b[K${text}`);
  statusShown = true;
}

export function clearStatus(): void {
  if (!statusShown) return;
  statusShown = false;
  process.stderr.write('\r\x1b[K');
}

export function writeOut(text: string): void {
  clearStatus();
  if (sink) {
    sink.out(text);
    return;
  }
  if (!isDirect()) {
    stdoutStream().write(text);
    return;
  }
  const bytes = Buffer.from(text);
  let done = 0;
  try {
    while (done < bytes.length) done += writeSync(1, bytes, done);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EPIPE') process.exit(0);
    if (code !== 'EAGAIN') throw err;
    // Non-blocking: the stream waits for the reader. Everything after goes the same way, in order.
    direct = false;
    stdoutStream().write(bytes.subarray(done));
  }
}

/** Standard error (diagnostics): always Node's stream, which is synchronous for files and terminals. */
export function writeErr(text: string): void {
  clearStatus();
  if (sink) {
    sink.err(text);
    return;
  }
  streamsUsed = true;
  process.stderr.write(text);
}

/**
 * Whether the process may exit at once without losing output: nothing was left to Node's
 * streams, which may still be writing it out.
 */
export function outputSettled(): boolean {
  return !streamsUsed;
}
