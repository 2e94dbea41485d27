/**
 * The CLI's standard output (src/cli/output.ts): written straight to a pipe or a file, whole and
 * in order even when the reader is slow (a full pipe, blocking or not), and a reader that stops
 * early ends the command quietly with exit 0.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, createReadStream, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { CAIRN, tempDir } from './helpers/cli.ts';

function toFile(args: string[]): string {
  const file = join(tempDir('cairn-stdout-'), 'out');
  const fd = openSync(file, 'w');
  const r = spawnSync(process.execPath, [CAIRN, ...args], { stdio: ['ignore', fd, 'inherit'] });
  closeSync(fd);
  assert.equal(r.status, 0);
  return readFileSync(file, 'utf8');
}

/** The standard workload's compiled graph: about a megabyte of JSON. */
const SHOW = ['show', '--json', '--site', resolve(import.meta.dirname, '../bench/site'), '--var', 'root=/tmp/cairn-stdout-test'];

/**
 * Polls the pipe at `fifo` (a reader of its own, which reads nothing) until it holds as many bytes
 * as it can (FIONREAD = F_GETPIPE_SZ): from then on the writer is blocked, or refused with EAGAIN.
 */
const PIPE_FULL = 'open(my $f, "<", $ARGV[0]) or die "open: $!"; my $size = fcntl($f, 1032, 0) or die "F_GETPIPE_SZ: $!"; ' +
  'while (1) { my $n = pack("L", 0); ioctl($f, 0x541B, $n) or die "FIONREAD: $!"; last if unpack("L", $n) >= $size; select(undef, undef, undef, 0.01); }';

/**
 * Runs `argv` with its standard output on a pipe that nobody reads until it is full, then reads it
 * all: the command's output, its exit code.
 */
async function readOnceFull(argv: string[]): Promise<{ code: number | null; out: string }> {
  const fifo = join(tempDir('cairn-stdout-pipe-'), 'pipe');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  // A reader that never reads, so the write end opens at once.
  const idle = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeEnd = openSync(fifo, constants.O_WRONLY);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', writeEnd, 'inherit'] });
  closeSync(writeEnd);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const watcher = spawn('perl', ['-e', PIPE_FULL, fifo], { stdio: ['ignore', 'ignore', 'inherit'] });
    const full = new Promise<number | null>((resolve) => watcher.once('exit', (code) => resolve(code)));
    const first = await Promise.race([full.then((code) => `pipe full (perl exit ${code})`), exited.then((code) => `command exited ${code}`)]);
    if (first !== 'pipe full (perl exit 0)') watcher.kill();
    assert.equal(first, 'pipe full (perl exit 0)', 'the pipe fills up while nobody reads');
    const chunks: Buffer[] = [];
    for await (const chunk of createReadStream(fifo)) chunks.push(chunk as Buffer);
    return { code: await exited, out: Buffer.concat(chunks).toString('utf8') };
  } finally {
    closeSync(idle);
  }
}

test('a slow reader of a pipe gets the whole output, in order, as a file does', async () => {
  const expected = toFile(SHOW);
  assert.ok(expected.length > 256 * 1024, 'more than a pipe holds');
  const { code, out } = await readOnceFull([process.execPath, CAIRN, ...SHOW]);
  assert.equal(code, 0);
  assert.equal(out, expected);
});

test('a non-blocking pipe (left so by whoever started the command) still gets the whole output, in order', async () => {
  const expected = toFile(SHOW);
  // perl (in Debian's perl-base) sets O_NONBLOCK on the pipe and then runs the command: its
  // writes fail with EAGAIN once the pipe is full.
  const nonBlocking = 'fcntl(STDOUT, F_SETFL, fcntl(STDOUT, F_GETFL, 0) | O_NONBLOCK) or die; exec @ARGV or die';
  const { code, out } = await readOnceFull(['perl', '-MFcntl', '-e', nonBlocking, process.execPath, CAIRN, ...SHOW]);
  assert.equal(code, 0);
  assert.equal(out, expected);
});

test('a reader that stops early ends the command with exit 0', async () => {
  const child = spawn(process.execPath, [CAIRN, ...SHOW], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise((resolve) => child.stdout.once('data', resolve));
  child.stdout.destroy();
  const code = await new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', resolve)));
  assert.equal(code, 0, stderr);
  assert.equal(stderr, '');
});
