/**
 * Facts as plain data, the same keys whether read in-process (local) or by one shell script over
 * SSH (ssh/remote-script.ts): OS family, distribution, release, kernel, architecture, hostname,
 * CPUs, memory.
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
    hostname: raw.hostname,
    cpus: raw.cpus,
    memory_mb: raw.memoryMb,
  };
}
