/**
 * Facts as plain data, the same keys whether read in-process (local) or by one shell script over
 * SSH: OS family, distribution, release, kernel, architecture, hostname, CPUs, memory.
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

/** The remote half: prints the raw facts in sections separated by the marker line in `$__n`. */
export const FACTS_SCRIPT = String.raw`cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null; printf '\n%s\n' "$__n"
uname -srm; printf '\n%s\n' "$__n"
uname -n; printf '\n%s\n' "$__n"
getconf _NPROCESSORS_ONLN 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null; printf '\n%s\n' "$__n"
if [ -r /proc/meminfo ]; then while read -r __k __v __u; do [ "$__k" = MemTotal: ] && echo $((__v / 1024)); done </proc/meminfo
else echo $(($(sysctl -n hw.physmem) / 1048576)); fi; printf '\n%s\n' "$__n"`;

export function parseFactsOutput(text: string, nonce: string): Record<string, unknown> {
  const [osRelease = '', uname = '', hostname = '', cpus = '', memory = ''] = text.split(`\n${nonce}\n`);
  const [kernel = '', kernelRelease = '', machine = ''] = uname.trim().split(/\s+/);
  return factsFrom({
    osRelease, kernel: kernel.toLowerCase(), kernelRelease, machine, hostname: hostname.trim(),
    cpus: Number(cpus.trim()) || 1, memoryMb: Number(memory.trim()) || 0,
  });
}
