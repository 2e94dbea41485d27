/**
 * Facts about the machine Cairn runs on, read in-process (no command), with the same keys as the
 * facts an SSH target reports; or about a system held in a folder on it (`root`, as a chroot
 * executor converges): its release, init system and package tool from its files, the rest from
 * the running machine, as shell/remote-script.ts's factsScript does.
 */
import { existsSync, lstatSync } from 'node:fs';
import { arch, cpus, hostname, networkInterfaces, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { readTextOr } from '../lib/files.ts';
import { factsFrom, PACKAGE_TOOL_DIRS, PACKAGE_TOOLS, ROOT_INIT } from './facts.ts';

function initSystem(): string {
  if (existsSync('/run/systemd/system')) return 'systemd';
  if (existsSync('/run/openrc') || existsSync('/sbin/openrc')) return 'openrc';
  if (platform() === 'freebsd') return 'rc.d';
  return 'unknown';
}

/** Something is there, a dangling link included: a root's absolute links point outside it. */
function present(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function rootInitSystem(root: string): string {
  if (ROOT_INIT.systemd.some((p) => present(join(root, p)))) return 'systemd';
  if (present(join(root, ROOT_INIT.openrc))) return 'openrc';
  if (platform() === 'freebsd') return 'rc.d';
  return 'unknown';
}

export function localFacts(root?: string): Record<string, unknown> {
  // `/` is the running machine itself, read the live way.
  const dir = root?.replace(/\/+$/, '') || undefined;
  const at = (path: string) => (dir === undefined ? path : join(dir, path));
  const installed = dir === undefined ? existsSync : present;
  return factsFrom({
    osRelease: readTextOr(at('/etc/os-release')) || readTextOr(at('/usr/lib/os-release')),
    kernel: platform(),
    kernelRelease: release(),
    machine: arch(),
    hostname: hostname(),
    cpus: cpus().length,
    memoryMb: Math.round(totalmem() / 1048576),
    initSystem: dir === undefined ? initSystem() : rootInitSystem(dir),
    packageTool: PACKAGE_TOOLS.find((tool) => PACKAGE_TOOL_DIRS.some((d) => installed(at(join(d, tool))))) ?? '',
    addresses: Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address)),
  });
}
