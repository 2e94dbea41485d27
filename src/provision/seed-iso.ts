/**
 * A cloud-init NoCloud seed: an ISO 9660 image with the volume label `cidata` holding
 * `user-data`, `meta-data` and (when given) `network-config`, which cloud-init in the guest
 * finds by its label. Made with genisoimage, or xorriso's mkisofs emulation where that is what
 * the host has.
 */
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface SeedFiles {
  userData: string;
  /** cloud-init's instance id: a new one makes cloud-init run its once-per-instance modules again. */
  instanceId: string;
  hostname: string;
  /** A netplan-v2 style network configuration, when the guest should not just use DHCP. */
  networkConfig?: string;
}

export function metaData(files: SeedFiles): string {
  // JSON is YAML, and needs no escaping rules of its own here.
  return `instance-id: ${JSON.stringify(files.instanceId)}\nlocal-hostname: ${JSON.stringify(files.hostname)}\n`;
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(delimiter).concat(['/usr/bin', '/usr/sbin']).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The ISO tool on this host, or undefined when it has neither. */
export function isoTool(): 'genisoimage' | 'xorriso' | undefined {
  if (onPath('genisoimage')) return 'genisoimage';
  if (onPath('xorriso')) return 'xorriso';
  return undefined;
}

/**
 * Writes the seed's files into `dir` (which must be empty or new) and returns the command that
 * makes `output` from them: the caller runs it with its own runner (a build's `run`).
 */
export function seedIsoCommand(files: SeedFiles, dir: string, output: string): string[] {
  const tool = isoTool();
  if (!tool) throw new Error('making a seed ISO needs genisoimage or xorriso (scripts/install.sh installs both)');
  mkdirSync(dir, { recursive: true });
  const names = ['user-data', 'meta-data'];
  writeFileSync(join(dir, 'user-data'), files.userData);
  writeFileSync(join(dir, 'meta-data'), metaData(files));
  if (files.networkConfig !== undefined) {
    writeFileSync(join(dir, 'network-config'), files.networkConfig);
    names.push('network-config');
  }
  const paths = names.map((n) => join(dir, n));
  return tool === 'genisoimage'
    ? ['genisoimage', '-quiet', '-output', output, '-volid', 'cidata', '-joliet', '-rock', ...paths]
    : ['xorriso', '-as', 'mkisofs', '-quiet', '-o', output, '-V', 'cidata', '-J', '-r', ...paths];
}
