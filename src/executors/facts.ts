/**
 * Facts as plain data, the same keys whether read in-process (local) or by one shell script over
 * SSH (shell/remote-script.ts): OS family, distribution, release, kernel, architecture, init system,
 * package manager, hostname, addresses, CPUs, memory.
 */

const FAMILY: Record<string, string> = {
  debian: 'debian', ubuntu: 'debian', rhel: 'redhat', fedora: 'redhat', centos: 'redhat', rocky: 'redhat', almalinux: 'redhat',
  alpine: 'alpine', arch: 'arch', freebsd: 'freebsd',
};

/** The fields of an os-release file. */
export function parseOsRelease(text: string): Record<string, string> {
  return Object.fromEntries(text.split('\n').flatMap((line) => {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    return m ? [[m[1]!, m[2]!.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1')]] : [];
  }));
}

export interface RawFacts {
  osRelease: string;
  /** `uname -s`, lower case: linux, freebsd. */
  kernel: string;
  kernelRelease: string;
  /** `uname -m`. */
  machine: string;
  hostname: string;
  cpus: number;
  memoryMb: number;
  /** `systemd`, `openrc`, `rc.d`, or `unknown`. */
  initSystem: string;
  /** The first package tool found, as a command name (`apt-get`, `dnf`, …); '' when none. */
  packageTool: string;
  /** Every address of the machine's interfaces, loopback included (filtered here). */
  addresses: string[];
}

/** Package tool → the package manager's name, as the OS tables and providers say it. */
const PACKAGE_MANAGER: Record<string, string> = { 'apt-get': 'apt', dnf: 'dnf', yum: 'yum', apk: 'apk', pacman: 'pacman', pkg: 'pkg', zypper: 'zypper' };

/** The package tools looked for, in this order (dnf before yum: Fedora and RHEL 8+ have both). */
export const PACKAGE_TOOLS = Object.keys(PACKAGE_MANAGER);

/** Where a package tool is looked for when the system is a folder (no PATH to search there). */
export const PACKAGE_TOOL_DIRS = ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/local/sbin'];

/**
 * The init system of a system that is a folder, not running (no /run to look at): the program
 * that would start as its process 1, where each init keeps it.
 */
export const ROOT_INIT = { systemd: ['/usr/lib/systemd/systemd', '/lib/systemd/systemd'], openrc: '/sbin/openrc' };

/** Loopback and link-local addresses say nothing about how to reach a machine. */
function isLocalOnly(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.toLowerCase().startsWith('fe80:');
}

/** The addresses in `ip -o addr`, `ifconfig` or `hostname -I` output, loopback and link-local left out. */
export function parseAddresses(text: string): string[] {
  const tagged = [...text.matchAll(/\binet6?\s+(?:addr:)?([0-9a-fA-F.:]+)/g)].map((m) => m[1]!);
  const found = tagged.length > 0 ? tagged : text.split(/\s+/).filter((w) => /^[0-9a-fA-F.:]+$/.test(w) && /[.:]/.test(w));
  return [...new Set(found.map((a) => a.split('%')[0]!.split('/')[0]!))]
    .filter((a) => !isLocalOnly(a));
}

export function factsFrom(raw: RawFacts): Record<string, unknown> {
  const rel = parseOsRelease(raw.osRelease);
  const id = rel.ID ?? raw.kernel;
  const like = (rel.ID_LIKE ?? '').split(' ');
  const family = FAMILY[id] ?? like.map((l) => FAMILY[l]).find(Boolean) ?? raw.kernel;
  return {
    kernel: raw.kernel,
    kernel_release: raw.kernelRelease,
    os_family: family,
    distribution: id,
    release: rel.VERSION_ID ?? raw.kernelRelease,
    architecture: raw.machine === 'x64' || raw.machine === 'amd64' ? 'x86_64' : raw.machine === 'arm64' ? 'aarch64' : raw.machine,
    init_system: raw.initSystem || 'unknown',
    package_manager: PACKAGE_MANAGER[raw.packageTool] ?? 'unknown',
    hostname: raw.hostname,
    addresses: {
      ipv4: raw.addresses.filter((a) => a.includes('.') && !isLocalOnly(a)),
      ipv6: raw.addresses.filter((a) => !a.includes('.') && !isLocalOnly(a)),
    },
    cpus: raw.cpus,
    memory_mb: raw.memoryMb,
  };
}
