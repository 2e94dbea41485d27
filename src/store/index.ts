/**
 * Opening a store from its URL. The back ends load lazily, so a command that never touches a store
 * never loads SQLite or gRPC.
 *
 *   sqlite:PATH                      one SQLite file (its folder is created); `sqlite://PATH` too,
 *                                    so `sqlite:///var/lib/cairn/store.db` is an absolute path
 *   etcd:HOST:PORT,HOST:PORT,…       an etcd cluster (port 2379 when left out; `etcd://…` too)
 *     etcd://USER:PASSWORD@HOSTS     etcd authentication
 *     etcd:HOSTS?ca=F&cert=F&key=F   TLS: CA file (turns TLS on), client certificate and key files
 *     …&user=U&password=P            authentication in the query
 *
 * Settings given in StoreOptions win over the URL, which wins over the environment
 * (CAIRN_STORE_CA, CAIRN_STORE_CERT, CAIRN_STORE_KEY, CAIRN_STORE_USER, CAIRN_STORE_PASSWORD).
 */
import { resolve } from 'node:path';
import { inputError } from '../lib/errors.ts';
import type { EtcdTarget } from './etcd.ts';
import type { Store, StoreOptions } from './types.ts';

export type { Change, Compare, KeyValue, Op, Store, StoreOptions, WatchOptions } from './types.ts';
export { StoreCompactedError, StoreCorruptError, StoreRefusedError, StoreUnreachableError } from './errors.ts';

export type StoreTarget =
  | { kind: 'sqlite'; url: string; path: string }
  | ({ kind: 'etcd'; url: string } & EtcdTarget);

const SETTINGS = ['ca', 'cert', 'key', 'user', 'password'] as const;

export async function openStore(url: string, options: StoreOptions = {}): Promise<Store> {
  const target = parseStoreUrl(url, options);
  if (target.kind === 'sqlite') {
    const { openSqliteStore } = await import('./sqlite.ts');
    return openSqliteStore(target.url, target.path, options);
  }
  const { openEtcdStore } = await import('./etcd.ts');
  return openEtcdStore(target.url, target, options);
}

/**
 * Reads a store URL and the settings that complete it. `url` in the result is the URL as given
 * without credentials (for messages). A malformed URL is an input error (exit 2).
 */
export function parseStoreUrl(url: string, options: StoreOptions = {}): StoreTarget {
  const colon = url.indexOf(':');
  const scheme = colon > 0 ? url.slice(0, colon) : '';
  const rest = url.slice(colon + 1).replace(/^\/\//, '');
  if (scheme === 'sqlite') {
    if (rest === '') throw inputError(`store URL ${url} names no file`, undefined, 'Write sqlite:PATH, e.g. sqlite:.cairn/store.db.');
    return { kind: 'sqlite', url, path: resolve(rest) };
  }
  if (scheme !== 'etcd') {
    throw inputError(`store URL ${JSON.stringify(url)} has no known scheme`, undefined,
      'Write sqlite:PATH or etcd:HOST:PORT,HOST:PORT.');
  }

  const [authority = '', queryText] = splitOnce(rest, '?');
  const query = new URLSearchParams(queryText ?? '');
  const at = authority.lastIndexOf('@');
  const userInfo = at >= 0 ? authority.slice(0, at) : undefined;
  const hostList = (at >= 0 ? authority.slice(at + 1) : authority).replace(/\/$/, '');
  const hosts = hostList.split(',').filter((h) => h !== '').map((h) => withPort(h, url));
  if (hosts.length === 0) throw inputError(`store URL ${url} names no etcd member`, undefined, 'Write etcd:HOST:PORT,HOST:PORT.');

  const fromUrl: Partial<Record<(typeof SETTINGS)[number], string>> = {};
  if (userInfo !== undefined) {
    const [user = '', password] = splitOnce(userInfo, ':');
    fromUrl.user = decodeURIComponent(user);
    if (password !== undefined) fromUrl.password = decodeURIComponent(password);
  }
  for (const name of SETTINGS) {
    const value = query.get(name);
    if (value !== null) fromUrl[name] = value;
  }
  const env = options.env ?? process.env;
  const target: StoreTarget = { kind: 'etcd', url: redact(url, userInfo !== undefined), hosts };
  for (const name of SETTINGS) {
    const value = options[name] ?? fromUrl[name] ?? env[`CAIRN_STORE_${name.toUpperCase()}`];
    if (value !== undefined && value !== '') target[name] = value;
  }
  if ((target.cert === undefined) !== (target.key === undefined)) {
    throw inputError(`store ${target.url}: a client certificate needs both cert and key`);
  }
  if (target.cert !== undefined && target.ca === undefined) {
    throw inputError(`store ${target.url}: a client certificate needs ca (the CA file that turns TLS on)`);
  }
  return target;
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const i = text.indexOf(separator);
  return i < 0 ? [text, undefined] : [text.slice(0, i), text.slice(i + 1)];
}

function withPort(host: string, url: string): string {
  const bare = host.replace(/^https?:\/\//, '');
  if (/^\[[^\]]+\]:\d+$/.test(bare) || /^[^:[\]]+:\d+$/.test(bare)) return bare;
  if (/^\[[^\]]+\]$/.test(bare) || /^[^:[\]]+$/.test(bare)) return `${bare}:2379`;
  throw inputError(`store URL ${url}: ${JSON.stringify(host)} is not HOST:PORT`);
}

/** The URL without its user information and password parameter (the rest as written). */
function redact(url: string, hasUserInfo: boolean): string {
  const out = hasUserInfo ? url.replace(/^(etcd:(?:\/\/)?)[^?]*@/, '$1') : url;
  const [base, query] = splitOnce(out, '?');
  if (query === undefined) return out;
  const kept = query.split('&').filter((p) => !/^password(=|$)/.test(p));
  return kept.length > 0 ? `${base}?${kept.join('&')}` : base;
}
