/**
 * The basics of `~/.ssh/config` a user expects Cairn to honour: HostName, Port, User,
 * IdentityFile, ProxyJump and ConnectTimeout from `Host` blocks, the first value found winning, as
 * in OpenSSH. `Match` blocks and other keywords are ignored.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { hostPatternsMatch } from './known-hosts.ts';

export interface SshConfigEntry {
  hostName?: string;
  port?: number;
  user?: string;
  identityFiles: string[];
  /** As written: comma-separated hops, or `none`. */
  proxyJump?: string;
  /** Seconds. */
  connectTimeout?: number;
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
    else if (keyword === 'proxyjump') out.proxyJump ??= value;
    else if (keyword === 'connecttimeout') out.connectTimeout ??= Number(value);
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

export interface Hop {
  user?: string;
  host: string;
  port?: number;
}

/**
 * The hops of a ProxyJump value (`[user@]host[:port]`, comma-separated, or a list of such), in
 * the order they are connected; `none` is no hop at all. Throws an Error saying what is wrong.
 */
export function parseJump(spec: string | string[]): Hop[] {
  const parts = (Array.isArray(spec) ? spec : [spec]).flatMap((s) => s.split(',')).map((s) => s.trim());
  if (parts.length === 1 && parts[0] === 'none') return [];
  return parts.map((part) => {
    // ssh://user@host:port is ProxyJump's other spelling; [v6]:port keeps a v6 address whole.
    const m = /^(?:ssh:\/\/)?(?:([^@\s]+)@)?(\[[^\]\s]+\]|[^@:\s[\]]+)(?::(\d+))?$/.exec(part);
    const port = m?.[3] === undefined ? undefined : Number(m[3]);
    if (!m || (port !== undefined && (port < 1 || port > 65535))) throw new Error(`"${part}" is not a jump host: write [user@]host[:port]`);
    return { ...(m[1] ? { user: m[1] } : {}), host: m[2]!.replace(/^\[(.*)\]$/, '$1'), ...(port ? { port } : {}) };
  });
}
