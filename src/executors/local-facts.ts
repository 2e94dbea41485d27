/**
 * Facts about the machine Cairn runs on, read in-process (no command), with the same keys as the
 * facts an SSH target reports.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { factsFrom } from './facts.ts';

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export function localFacts(): Record<string, unknown> {
  return factsFrom({
    osRelease: readOr('/etc/os-release') || readOr('/usr/lib/os-release'),
    kernel: os.platform(),
    kernelRelease: os.release(),
    machine: os.arch(),
    hostname: os.hostname(),
    cpus: os.cpus().length,
    memoryMb: Math.round(os.totalmem() / 1048576),
  });
}
