/**
 * Facts about the machine Cairn runs on, read in-process (no command). The full facts gatherer,
 * the same over SSH, comes with the system resource types; this covers what compiling needs.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

function osRelease(): Record<string, string> {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    return Object.fromEntries(text.split('\n').flatMap((line) => {
      const m = /^([A-Z_]+)=(.*)$/.exec(line);
      return m ? [[m[1]!, m[2]!.replace(/^"(.*)"$/, '$1')]] : [];
    }));
  } catch {
    return {};
  }
}

const FAMILY: Record<string, string> = { debian: 'debian', ubuntu: 'debian', rhel: 'redhat', fedora: 'redhat', centos: 'redhat', alpine: 'alpine', arch: 'arch' };

export function localFacts(): Record<string, unknown> {
  const rel = osRelease();
  const id = rel.ID ?? os.platform();
  const like = (rel.ID_LIKE ?? '').split(' ');
  const family = FAMILY[id] ?? like.map((l) => FAMILY[l]).find(Boolean) ?? os.platform();
  return {
    kernel: os.platform(),
    kernel_release: os.release(),
    os_family: family,
    distribution: id,
    release: rel.VERSION_ID ?? os.release(),
    architecture: os.arch() === 'x64' ? 'x86_64' : os.arch(),
    hostname: os.hostname(),
    cpus: os.cpus().length,
    memory_mb: Math.round(os.totalmem() / 1048576),
  };
}
