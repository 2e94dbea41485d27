/**
 * Facts about the machine Cairn runs on, read in-process (no command), with the same keys as the
 * facts an SSH target reports.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { factsFrom, PACKAGE_TOOLS } from './facts.ts';

const BIN_DIRS = ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/local/sbin'];

function initSystem(): string {
  if (existsSync('/run/systemd/system')) return 'systemd';
  if (existsSync('/run/openrc') || existsSync('/sbin/openrc')) return 'openrc';
  if (os.platform() === 'freebsd') return 'rc.d';
  return 'unknown';
}

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
    initSystem: initSystem(),
    packageTool: PACKAGE_TOOLS.find((tool) => BIN_DIRS.some((d) => existsSync(join(d, tool)))) ?? '',
    addresses: Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address)),
  });
}
