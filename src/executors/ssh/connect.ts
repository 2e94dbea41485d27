/**
 * Opening an SSH connection the way a user of `ssh` expects: settings from the target, then
 * `~/.ssh/config`; the host key checked against known_hosts before anything is sent; key-file
 * and ssh-agent authentication. Every failure is an UnreachableError naming the target and host.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import type * as Ssh2Module from 'ssh2';
import type { AnyAuthMethod, Client as SshClient, ConnectConfig } from 'ssh2';
import { UnreachableError } from '../types.ts';
import { userSshConfig } from './config.ts';
import { addKnownHost, fingerprint, hostEntryName, keyType, preferredHostKeyAlgorithms, readKnownHosts, verifyHostKey } from './known-hosts.ts';
import { dynamicImport } from '../../lib/dynamic-import.ts';

export interface SshSettings {
  host: string;
  port?: number;
  user?: string;
  identity_file?: string;
  known_hosts?: string;
  become?: boolean;
  become_user?: string;
}

export interface ConnectOptions {
  /** Record the key of a host not yet in known_hosts instead of refusing it. */
  acceptNewHostKeys?: boolean;
  /** Seconds to wait for the TCP connection and handshake. */
  timeoutSeconds?: number;
}

export interface Resolved {
  host: string;
  port: number;
  user: string;
  identityFiles: string[];
  knownHosts: string;
  /** How reports name the endpoint: user@host:port. */
  endpoint: string;
}

function expandHome(path: string): string {
  return path.replace(/^~(?=\/|$)/, homedir());
}

export function resolveSettings(settings: SshSettings): Resolved {
  const config = userSshConfig(settings.host);
  const host = config.hostName ?? settings.host;
  const port = settings.port ?? config.port ?? 22;
  const user = settings.user ?? config.user ?? userInfo().username;
  const identityFiles = settings.identity_file ? [expandHome(settings.identity_file)]
    : config.identityFiles.length ? config.identityFiles
      : ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((f) => `${homedir()}/.ssh/${f}`).filter((f) => existsSync(f));
  const knownHosts = expandHome(settings.known_hosts ?? '~/.ssh/known_hosts');
  return { host, port, user, identityFiles, knownHosts, endpoint: `${user}@${host}:${port}` };
}

type Ssh2 = typeof Ssh2Module;

function authMethods(ssh2: Ssh2, target: string, r: Resolved): AnyAuthMethod[] {
  const methods: AnyAuthMethod[] = [];
  for (const file of r.identityFiles) {
    let key: Buffer;
    try {
      key = readFileSync(file);
    } catch (err) {
      throw new UnreachableError(target, `cannot read the identity file ${file}: ${(err as Error).message}`);
    }
    const parsed = ssh2.utils.parseKey(key);
    if (parsed instanceof Error) {
      const encrypted = /passphrase|encrypted/i.test(parsed.message);
      throw new UnreachableError(target, encrypted ? `the identity file ${file} is encrypted; load it into ssh-agent instead`
        : `the identity file ${file} is not a private key Cairn can read: ${parsed.message}`);
    }
    methods.push({ type: 'publickey', username: r.user, key });
  }
  if (process.env.SSH_AUTH_SOCK) methods.push({ type: 'agent', username: r.user, agent: process.env.SSH_AUTH_SOCK });
  return methods;
}

/** Connects and authenticates; the host key has been verified when this resolves. */
export async function connect(target: string, settings: SshSettings, options: ConnectOptions = {}): Promise<{ client: SshClient; resolved: Resolved }> {
  const r = resolveSettings(settings);
  // A CommonJS module: its named exports live on `default` when imported from ESM.
  const mod = await dynamicImport<Ssh2 & { default?: Ssh2 }>('ssh2');
  const ssh2 = mod.default ?? mod;
  const methods = authMethods(ssh2, target, r);
  if (methods.length === 0) {
    throw new UnreachableError(target, `no way to authenticate to ${r.endpoint}: set identity_file, or run an ssh-agent (SSH_AUTH_SOCK)`);
  }
  const known = readKnownHosts(r.knownHosts);
  const client = new ssh2.Client();
  let refusal: string | undefined;
  const hostVerifier = (blob: Buffer): boolean => {
    const verdict = verifyHostKey(known, r.host, r.port, blob);
    const name = hostEntryName(r.host, r.port);
    const fp = `${keyType(blob)} ${fingerprint(blob)}`;
    if (verdict.kind === 'known') return true;
    if (verdict.kind === 'unknown') {
      if (options.acceptNewHostKeys) {
        addKnownHost(r.knownHosts, r.host, r.port, blob);
        return true;
      }
      refusal = `the host key of ${name} is unknown (${fp}); it is not in ${r.knownHosts}. ` +
        'Check the fingerprint, then run again with --accept-new-host-keys to record it';
      return false;
    }
    refusal = verdict.kind === 'revoked'
      ? `the host key of ${name} (${fp}) is marked @revoked in ${r.knownHosts}:${verdict.line}; refusing to connect`
      : `HOST KEY CHANGED for ${name}: it now offers ${fp}, which does not match ${r.knownHosts}:${verdict.line}. ` +
        `Someone may be intercepting the connection, or the host was reinstalled. Refusing to connect; if the change is expected, ` +
        `remove the old key with: ssh-keygen -R '${name}' -f ${r.knownHosts}`;
    return false;
  };

  const remaining = [...methods];
  const config: ConnectConfig = {
    host: r.host,
    port: r.port,
    username: r.user,
    hostVerifier,
    readyTimeout: (options.timeoutSeconds ?? 15) * 1000,
    keepaliveInterval: 15000,
    algorithms: { serverHostKey: preferredHostKeyAlgorithms(known, r.host, r.port) as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] },
    authHandler: (_left, _partial, next) => next(remaining.shift() ?? (false as unknown as AnyAuthMethod)),
  };
  return new Promise((resolve, reject) => {
    client.once('ready', () => {
      client.removeAllListeners('error');
      client.on('error', () => undefined);
      resolve({ client, resolved: r });
    });
    client.once('error', (err: Error & { level?: string; code?: string }) => {
      client.end();
      let why: string;
      if (refusal) why = refusal;
      else if (err.level === 'client-authentication') {
        why = `authentication failed for ${r.endpoint} (tried ${[...r.identityFiles.map((f) => `key ${f}`), ...(process.env.SSH_AUTH_SOCK ? ['ssh-agent'] : [])].join(', ')})`;
      } else if (err.level === 'client-timeout') why = `cannot connect to ${r.endpoint}: timed out`;
      else why = `cannot connect to ${r.endpoint}: ${err.message}`;
      reject(new UnreachableError(target, why));
    });
    try {
      client.connect(config);
      // Small messages, each waiting for its answer (the handshake's, then every request's):
      // Nagle's algorithm would hold each back for a delayed ACK (~40 ms).
      client.setNoDelay(true);
    } catch (err) {
      reject(new UnreachableError(target, `cannot connect to ${r.endpoint}: ${(err as Error).message}`));
    }
  });
}
