/**
 * Opening an SSH connection the way a user of `ssh` expects: settings from the target, then
 * `~/.ssh/config`; through jump hosts (ProxyJump) when asked; every host key on the way checked
 * against known_hosts before anything is sent; key-file and ssh-agent authentication. Every
 * failure is an UnreachableError naming the target and host (and the hop it happened at).
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import type { Duplex } from 'node:stream';
import type * as Ssh2Module from 'ssh2';
import type { AnyAuthMethod, Client as SshClient, ConnectConfig } from 'ssh2';
import { UnreachableError } from '../types.ts';
import { parseJump, userSshConfig, type Hop } from './config.ts';
import { addKnownHost, fingerprint, hostEntryName, keyType, preferredHostKeyAlgorithms, readKnownHosts, verifyHostKey } from './known-hosts.ts';

export interface SshSettings {
  host: string;
  port?: number;
  user?: string;
  identity_file?: string;
  known_hosts?: string;
  become?: boolean;
  become_user?: string;
  /** ProxyJump: `[user@]host[:port]` hops, comma-separated or a list; `none` for none. */
  jump?: string | string[];
  /** Seconds for each TCP connection and handshake. */
  connect_timeout?: number;
}

export interface ConnectOptions {
  /** Record the key of a host not yet in known_hosts instead of refusing it. */
  acceptNewHostKeys?: boolean;
  /** Seconds to wait for the TCP connection and handshake when neither the target nor ~/.ssh/config says. */
  timeoutSeconds?: number;
}

/** One machine to log in to: the target, or a jump host on the way. */
export interface Endpoint {
  host: string;
  port: number;
  user: string;
  identityFiles: string[];
  /** How reports name the endpoint: user@host:port. */
  endpoint: string;
}

export interface JumpHost extends Endpoint {
  /** How errors name the hop: the host as the user wrote it, and the port. */
  label: string;
}

export interface Resolved extends Endpoint {
  knownHosts: string;
  /** The hosts to go through, first one first. */
  jumps: JumpHost[];
  timeoutSeconds: number;
}

const DEFAULT_TIMEOUT_SECONDS = 15;

function expandHome(path: string): string {
  return path.replace(/^~(?=\/|$)/, homedir());
}

/** The file `identity_file` names, as Cairn will read it. */
export function identityPath(identityFile: string): string {
  return expandHome(identityFile);
}

export function resolveSettings(target: string, settings: SshSettings, options: ConnectOptions = {}): Resolved {
  const config = userSshConfig(settings.host);
  const host = config.hostName ?? settings.host;
  const port = settings.port ?? config.port ?? 22;
  const user = settings.user ?? config.user ?? userInfo().username;
  const identityFiles = settings.identity_file ? [expandHome(settings.identity_file)]
    : config.identityFiles.length ? config.identityFiles
      : ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((f) => `${homedir()}/.ssh/${f}`).filter((f) => existsSync(f));
  const knownHosts = expandHome(settings.known_hosts ?? '~/.ssh/known_hosts');
  let hops: Hop[] = [];
  const jump = settings.jump ?? config.proxyJump;
  if (jump !== undefined) {
    try {
      hops = parseJump(jump);
    } catch (err) {
      // The site's `jump` is checked when the site is loaded; only ~/.ssh/config's gets here.
      throw new UnreachableError(target, `ProxyJump in ~/.ssh/config: ${(err as Error).message}`);
    }
  }
  const jumps = hops.map((hop): JumpHost => {
    const c = userSshConfig(hop.host);
    const hopPort = hop.port ?? c.port ?? 22;
    const hopUser = hop.user ?? c.user ?? userInfo().username;
    const hopHost = c.hostName ?? hop.host;
    return {
      host: hopHost, port: hopPort, user: hopUser, identityFiles: c.identityFiles.length ? c.identityFiles : identityFiles,
      endpoint: `${hopUser}@${hopHost}:${hopPort}`, label: `${hop.host}:${hopPort}`,
    };
  });
  const timeoutSeconds = settings.connect_timeout ?? (config.connectTimeout && config.connectTimeout > 0 ? config.connectTimeout : undefined)
    ?? options.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  return { host, port, user, identityFiles, knownHosts, endpoint: `${user}@${host}:${port}`, jumps, timeoutSeconds };
}

type Ssh2 = typeof Ssh2Module;

/** Why one hop of the way failed; connect() names the target (and the hop) around it. */
class HopFailure extends Error {}

function authMethods(ssh2: Ssh2, e: Endpoint): AnyAuthMethod[] {
  const methods: AnyAuthMethod[] = [];
  for (const file of e.identityFiles) {
    let key: Buffer;
    try {
      key = readFileSync(file);
    } catch (err) {
      throw new HopFailure(`cannot read the identity file ${file}: ${(err as Error).message}`);
    }
    const parsed = ssh2.utils.parseKey(key);
    if (parsed instanceof Error) {
      const encrypted = /passphrase|encrypted/i.test(parsed.message);
      throw new HopFailure(encrypted ? `the identity file ${file} is encrypted; load it into ssh-agent instead`
        : `the identity file ${file} is not a private key Cairn can read: ${parsed.message}`);
    }
    methods.push({ type: 'publickey', username: e.user, key });
  }
  if (process.env.SSH_AUTH_SOCK) methods.push({ type: 'agent', username: e.user, agent: process.env.SSH_AUTH_SOCK });
  if (methods.length === 0) {
    throw new HopFailure(`no way to authenticate to ${e.endpoint}: set identity_file, or run an ssh-agent (SSH_AUTH_SOCK)`);
  }
  return methods;
}

/**
 * Logs in to one endpoint, over `sock` (a channel forwarded by the hop before it) or a TCP
 * connection of its own; the host key has been verified when this resolves.
 */
function login(ssh2: Ssh2, e: Endpoint, known: string, knownHosts: string, timeoutSeconds: number, options: ConnectOptions, sock?: Duplex): Promise<SshClient> {
  const methods = authMethods(ssh2, e);
  const client = new ssh2.Client();
  let refusal: string | undefined;
  const hostVerifier = (blob: Buffer): boolean => {
    const verdict = verifyHostKey(known, e.host, e.port, blob);
    const name = hostEntryName(e.host, e.port);
    const fp = `${keyType(blob)} ${fingerprint(blob)}`;
    if (verdict.kind === 'known') return true;
    if (verdict.kind === 'unknown') {
      if (options.acceptNewHostKeys) {
        addKnownHost(knownHosts, e.host, e.port, blob);
        return true;
      }
      refusal = `the host key of ${name} is unknown (${fp}); it is not in ${knownHosts}. ` +
        'Check the fingerprint, then run again with --accept-new-host-keys to record it';
      return false;
    }
    refusal = verdict.kind === 'revoked'
      ? `the host key of ${name} (${fp}) is marked @revoked in ${knownHosts}:${verdict.line}; refusing to connect`
      : `HOST KEY CHANGED for ${name}: it now offers ${fp}, which does not match ${knownHosts}:${verdict.line}. ` +
        `Someone may be intercepting the connection, or the host was reinstalled. Refusing to connect; if the change is expected, ` +
        `remove the old key with: ssh-keygen -R '${name}' -f ${knownHosts}`;
    return false;
  };

  const remaining = [...methods];
  const config: ConnectConfig = {
    ...(sock ? { sock: sock as unknown as NonNullable<ConnectConfig['sock']> } : { host: e.host, port: e.port }),
    username: e.user,
    hostVerifier,
    readyTimeout: timeoutSeconds * 1000,
    keepaliveInterval: 15000,
    algorithms: { serverHostKey: preferredHostKeyAlgorithms(known, e.host, e.port) as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] },
    authHandler: (_left, _partial, next) => next(remaining.shift() ?? (false as unknown as AnyAuthMethod)),
  };
  return new Promise((resolve, reject) => {
    client.once('ready', () => {
      client.removeAllListeners('error');
      client.on('error', () => undefined);
      resolve(client);
    });
    client.once('error', (err: Error & { level?: string; code?: string }) => {
      // A connection that fails mid-handshake can report more than once (a host going down, or
      // coming up, resets it): the first says why, the others must not go unhandled.
      client.on('error', () => undefined);
      client.end();
      let why: string;
      if (refusal) why = refusal;
      else if (err.level === 'client-authentication') {
        why = `authentication failed for ${e.endpoint} (tried ${[...e.identityFiles.map((f) => `key ${f}`), ...(process.env.SSH_AUTH_SOCK ? ['ssh-agent'] : [])].join(', ')})`;
      } else if (err.level === 'client-timeout') why = `cannot connect to ${e.endpoint}: timed out after ${timeoutSeconds} s (connect_timeout)`;
      else why = `cannot connect to ${e.endpoint}: ${err.message}`;
      reject(new HopFailure(why));
    });
    try {
      client.connect(config);
      // Small messages, each waiting for its answer (the handshake's, then every request's):
      // Nagle's algorithm would hold each back for a delayed ACK (~40 ms).
      if (!sock) client.setNoDelay(true);
    } catch (err) {
      reject(new HopFailure(`cannot connect to ${e.endpoint}: ${(err as Error).message}`));
    }
  });
}

/**
 * A channel from `via` to the next endpoint's port, as `ssh -J` opens one (direct-tcpip). The
 * hop's sshd makes the TCP connection and may wait minutes on a host that never answers, so the
 * timeout is ours.
 */
function forward(via: SshClient, to: Endpoint, timeoutSeconds: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      settled = true;
      reject(new HopFailure(`cannot connect to ${to.endpoint}: timed out after ${timeoutSeconds} s (connect_timeout)`));
    }, timeoutSeconds * 1000);
    via.forwardOut('127.0.0.1', 0, to.host, to.port, (err, stream) => {
      clearTimeout(timer);
      if (settled) {
        stream?.destroy();
        return;
      }
      settled = true;
      if (err) reject(new HopFailure(`cannot connect to ${to.endpoint}: ${err.message}`));
      else resolve(stream);
    });
  });
}

/** Connects and authenticates; every host key on the way has been verified when this resolves. */
export async function connect(target: string, settings: SshSettings, options: ConnectOptions = {}): Promise<{ client: SshClient; resolved: Resolved }> {
  const r = resolveSettings(target, settings, options);
  // A CommonJS module: its named exports live on `default` when imported from ESM. The CLI's
  // bundle has it in a file of its own, run from its code cache (scripts/build.mjs, VENDOR_FILES).
  const mod = (await import('ssh2')) as Ssh2 & { default?: Ssh2 };
  const ssh2 = mod.default ?? mod;
  const known = readKnownHosts(r.knownHosts);
  const way: (Endpoint & { label?: string })[] = [...r.jumps, r];
  const clients: SshClient[] = [];
  for (const [i, e] of way.entries()) {
    // Reaching the next host is the hop before it's doing, and its failure is named after that hop.
    let at = i > 0 ? way[i - 1]! : e;
    try {
      const sock = i > 0 ? await forward(clients[i - 1]!, e, r.timeoutSeconds) : undefined;
      at = e;
      clients.push(await login(ssh2, e, known, r.knownHosts, r.timeoutSeconds, options, sock));
    } catch (err) {
      for (const c of clients.reverse()) c.end();
      if (!(err instanceof HopFailure)) throw err;
      throw new UnreachableError(target, `${at.label ? `jump ${at.label}: ` : ''}${err.message}`);
    }
  }
  const client = clients.at(-1)!;
  // The hops carry the target's connection: they go when it goes.
  if (clients.length > 1) client.once('close', () => clients.slice(0, -1).reverse().forEach((c) => c.end()));
  return { client, resolved: r };
}
