/**
 * The basics of `~/.ssh/config` a user expects Cairn to honour: HostName, Port, User and
 * IdentityFile from `Host` blocks, the first value found winning, as in OpenSSH. `Match` blocks
 * and other keywords are ignored.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { hostPatternsMatch } from './known-hosts.ts';

export interface SshConfigEntry {
  hostName?: string;
  port?: number;
  user?: string;
  identityFiles: string[];
}

function expand(path: string, host: string, user: string | undefined): string {
  return path.replace(/^~(?=\/|$)/, homedir()).replace(/%d/g, homedir()).replace(/%h/g, host).replace(/%u/g, user ?? '').replace(/%%/g, '%');
}

/** What the config text says about `host` (the name as the user wrote it). */
export function sshConfigFor(text: string, host: string): SshConfigEntry {
  const out: SshConfigEntry = { identityFiles: [] };
  let active = true;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const m = /^(\S+?)\s*(?:=\s*|\s+)(.*)$/.exec(line);
    if (!m) continue;
    const keyword = m[1]!.toLowerCase();
    const value = m[2]!.replace(/^"(.*)"$/, '$1');
    if (keyword === 'host') {
      active = hostPatternsMatch(value.split(/\s+/), host);
      continue;
    }
    if (keyword === 'match') {
      active = false;
      continue;
    }
    if (!active) continue;
    if (keyword === 'hostname') out.hostName ??= value;
    else if (keyword === 'port') out.port ??= Number(value);
    else if (keyword === 'user') out.user ??= value;
    else if (keyword === 'identityfile') out.identityFiles.push(value);
  }
  out.identityFiles = out.identityFiles.map((f) => expand(f, host, out.user));
  if (out.hostName) out.hostName = out.hostName.replace(/%h/g, host);
  return out;
}

export function userSshConfig(host: string, path = `${homedir()}/.ssh/config`): SshConfigEntry {
  try {
    return sshConfigFor(readFileSync(path, 'utf8'), host);
  } catch {
    return { identityFiles: [] };
  }
}
