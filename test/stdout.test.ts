/**
 * The CLI's standard output (src/cli/output.ts): written straight to a pipe or a file, whole and
 * in order even when the reader is slow (a full pipe, blocking or not), and a reader that stops
 * early ends the command quietly with exit 0.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
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

test('a slow reader of a pipe gets the whole output, in order, as a file does', async () => {
  const expected = toFile(SHOW);
  assert.ok(expected.length > 256 * 1024, 'more than a pipe holds');
  const child = spawn(process.execPath, [CAIRN, ...SHOW], { stdio: ['ignore', 'pipe', 'inherit'] });
  const chunks: Buffer[] = [];
  child.stdout.pause();
  await sleep(300); // the pipe fills up while nobody reads
  for await (const chunk of child.stdout) chunks.push(chunk as Buffer);
  const code = await new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', resolve)));
  assert.equal(code, 0);
  assert.equal(Buffer.concat(chunks).toString('utf8'), expected);
});

test('a non-blocking pipe (left so by whoever started the command) still gets the whole output, in order', async () => {
  const expected = toFile(SHOW);
  // Node makes a child's standard descriptors blocking, so perl (in Debian's perl-base) sets
  // O_NONBLOCK and then runs the command: its writes fail with EAGAIN once the pipe is full.
  const nonBlocking = 'fcntl(STDOUT, F_SETFL, fcntl(STDOUT, F_GETFL, 0) | O_NONBLOCK) or die; exec @ARGV or die';
  const child = spawn('perl', ['-MFcntl', '-e', nonBlocking, process.execPath, CAIRN, ...SHOW], { stdio: ['ignore', 'pipe', 'inherit'] });
  const chunks: Buffer[] = [];
  child.stdout.pause();
  await sleep(300);
  for await (const chunk of child.stdout) chunks.push(chunk as Buffer);
  const code = await new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.on('exit', resolve)));
  assert.equal(code, 0);
  assert.equal(Buffer.concat(chunks).toString('utf8'), expected);
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
