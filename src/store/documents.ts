/**
 * Cairn's documents in a store (DESIGN §8): sites pushed as content-addressed revisions, run
 * reports, agent registrations and the state agents keep between runs (pending notifications).
 *
 *   /cairn/blobs/<sha256>               a site file's bytes, written once, shared by revisions
 *   /cairn/site/revisions/<id>          a revision's manifest: { id, parent, created, files: path → sha256 }
 *   /cairn/site/head                    the id of the newest revision
 *   /cairn/reports/<target>             the target's last run report (JSON, as `--json` prints)
 *   /cairn/agents/<target>              an agent's registration: host, facts, version, last revision run
 *   /cairn/state/<target>/<file>        what a target keeps between runs (pending.json, metadata.json)
 *   /cairn/leases/agents/<target>       the running agent of that name (Store.lease: host, pid, start)
 *
 * A revision's id is the hash of its file list, so pushing an unchanged site makes no revision.
 * Blobs are written first (harmless if a push then fails: nothing refers to them); the manifest
 * and the head move together in one transaction that fails if another push landed meanwhile.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import type { Store } from './types.ts';
import { sha256Hex } from '../lib/digest.ts';

export const KEYS = {
  head: '/cairn/site/head',
  revision: (id: string) => `/cairn/site/revisions/${id}`,
  blob: (sha: string) => `/cairn/blobs/${sha}`,
  reports: '/cairn/reports/',
  report: (target: string) => `/cairn/reports/${target}`,
  agents: '/cairn/agents/',
  agent: (target: string) => `/cairn/agents/${target}`,
  state: (target: string, file: string) => `/cairn/state/${target}/${file}`,
  agentLease: (target: string) => `/cairn/leases/agents/${target}`,
};

export interface Manifest {
  version: 1;
  id: string;
  parent: string | null;
  created: string;
  /** Site-relative path → sha256 of its bytes. */
  files: Record<string, string>;
}

/** A document in the store that is not what Cairn wrote (a missing blob, a hash that differs, bad JSON). */
export class CorruptDocument extends Error {
  constructor(readonly key: string, reason: string) {
    super(`corrupt document ${key} in the store: ${reason}`);
    this.name = 'CorruptDocument';
  }
}

/**
 * Every file of a site, by site-relative path; dot folders (.cairn, .git) and node_modules are not
 * the site. A symbolic link that leads to a file or folder inside the site is followed, as the
 * site loader follows it (site/site-files.ts), so an agent compiles what `push` compiled; one
 * that leads out of the site, or to no file, is left out (the compile refuses it where it is read).
 */
export function siteFiles(root: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const realRoot = realpathSync(root);
  const inside = (real: string) => real === realRoot || real.startsWith(realRoot + sep);
  const walk = (dir: string, seen: Set<string>) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const abs = join(dir, entry.name);
      let real = abs;
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        try {
          real = realpathSync(abs);
          const s = statSync(real);
          isDir = s.isDirectory();
          isFile = s.isFile();
        } catch {
          continue;
        }
        if (!inside(real)) continue;
      }
      // A folder reached again through a link (a loop) is not walked twice.
      if (isDir && !seen.has(realpathSync(real))) walk(abs, new Set([...seen, realpathSync(real)]));
      else if (isFile) out.set(relative(root, abs), readFileSync(real));
    }
  };
  walk(root, new Set([realRoot]));
  return out;
}

/** A site's files, their hashes, and the id the site has as a revision. */
export function siteRevision(root: string): { files: Map<string, Buffer>; hashes: Record<string, string>; id: string } {
  const files = siteFiles(root);
  const hashes = Object.fromEntries([...files].map(([p, data]) => [p, sha256Hex(data)]));
  return { files, hashes, id: revisionId(hashes) };
}

export function revisionId(files: Record<string, string>): string {
  const sorted = Object.keys(files).sort().map((p) => `${p}\0${files[p]}\n`).join('');
  return sha256Hex(sorted).slice(0, 16);
}

function parseJson<T>(key: string, value: Buffer): T {
  try {
    return JSON.parse(value.toString('utf8')) as T;
  } catch (err) {
    throw new CorruptDocument(key, `not JSON (${(err as Error).message})`);
  }
}

/** The newest revision's manifest, or undefined when nothing was pushed yet. */
export async function headManifest(store: Store): Promise<{ manifest: Manifest; modRevision: number } | undefined> {
  const head = await store.get(KEYS.head);
  if (!head) return undefined;
  const id = head.value.toString('utf8').trim();
  return { manifest: await readManifest(store, id), modRevision: head.modRevision };
}

export async function readManifest(store: Store, id: string): Promise<Manifest> {
  const key = KEYS.revision(id);
  const kv = await store.get(key);
  if (!kv) throw new CorruptDocument(key, 'the head names a revision that is not in the store');
  const manifest = parseJson<Manifest>(key, kv.value);
  if (!manifest || typeof manifest.files !== 'object' || manifest.files === null) throw new CorruptDocument(key, 'no file list');
  return manifest;
}

export interface SiteDiff {
  added: string[];
  removed: string[];
  modified: string[];
}

export function diffFiles(before: Record<string, string>, after: Record<string, string>): SiteDiff {
  const paths = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  return {
    added: paths.filter((p) => !(p in before)),
    removed: paths.filter((p) => !(p in after)),
    modified: paths.filter((p) => p in before && p in after && before[p] !== after[p]),
  };
}

export interface PushResult {
  id: string;
  parent: string | null;
  /** False when the site is the stored head already: no revision was made. */
  created: boolean;
  diff: SiteDiff;
  /** Blobs of this site that were missing from the store or did not match their hash, written again. */
  repaired: number;
}

/** At most this many operations and bytes in one transaction (etcd: 128 operations, 1.5 MiB a request). */
const OPS_PER_TXN = 64;
const BYTES_PER_TXN = 1 << 20;

/**
 * Uploads a site as one revision (see the file comment); `dryRun` only compares. Every blob the
 * site needs is checked against its hash, also when the site is the head already: a blob that
 * is missing or was altered in the store is written again, so a push repairs it instead of
 * saying "unchanged" while agents fail on it.
 */
export async function pushSite(store: Store, root: string, options: { dryRun?: boolean } = {}): Promise<PushResult & { files: Map<string, Buffer>; previous?: Manifest }> {
  const { files, hashes, id } = siteRevision(root);
  const head = await headManifest(store);
  const parent = head?.manifest.id ?? null;
  const diff = diffFiles(head?.manifest.files ?? {}, hashes);
  const base = { id, parent, diff, files, ...(head ? { previous: head.manifest } : {}) };
  if (options.dryRun) return { ...base, created: false, repaired: 0 };

  // Blobs not stored as they should be, written before anything refers to them.
  const bySha = new Map([...files].map(([p, data]) => [hashes[p]!, data]));
  const missing: string[] = [];
  let repaired = 0;
  for (const sha of bySha.keys()) {
    const stored = await store.get(KEYS.blob(sha));
    if (stored && sha256Hex(stored.value) === sha) continue;
    missing.push(sha);
    if (stored || parent === id) repaired++;
  }
  let batch: string[] = [];
  let bytes = 0;
  const flush = async () => {
    if (batch.length) await store.txn([], batch.map((sha) => ({ put: KEYS.blob(sha), value: bySha.get(sha)! })));
    batch = [];
    bytes = 0;
  };
  for (const sha of missing) {
    const size = bySha.get(sha)!.length;
    if (batch.length === OPS_PER_TXN || (batch.length > 0 && bytes + size > BYTES_PER_TXN)) await flush();
    batch.push(sha);
    bytes += size;
  }
  await flush();
  if (parent === id) return { ...base, created: false, repaired };
  const manifest: Manifest = { version: 1, id, parent, created: new Date().toISOString(), files: hashes };
  const { succeeded } = await store.txn(
    [head ? { key: KEYS.head, target: 'modRevision', op: '=', value: head.modRevision } : { key: KEYS.head, target: 'exists', op: '=', value: false }],
    [{ put: KEYS.revision(id), value: JSON.stringify(manifest) }, { put: KEYS.head, value: id }],
  );
  if (!succeeded) throw new Error('another push landed while this one was being uploaded; run cairn push again');
  return { ...base, created: true, repaired };
}

/** A blob's bytes, checked against its hash. */
export async function readBlob(store: Store, sha: string, path: string): Promise<Buffer> {
  const key = KEYS.blob(sha);
  const kv = await store.get(key);
  if (!kv) throw new CorruptDocument(key, `missing (the content of ${path})`);
  if (sha256Hex(kv.value) !== sha) throw new CorruptDocument(key, `its content does not match its hash (the content of ${path})`);
  return kv.value;
}

/**
 * Writes a revision's files into `cacheDir/<id>` (once: a complete folder is reused) and returns
 * that folder. Written into a temp folder and renamed, so a folder that exists is complete.
 */
export async function materialize(store: Store, manifest: Manifest, cacheDir: string): Promise<string> {
  const dir = join(cacheDir, manifest.id);
  if (existsSync(dir)) return dir;
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  // One temp folder per call: two requests of one master may unpack the same revision at once.
  const temp = `${dir}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    for (const [path, sha] of Object.entries(manifest.files)) {
      if (path.split('/').includes('..') || path.startsWith('/')) throw new CorruptDocument(KEYS.revision(manifest.id), `a file path leaves the site: ${path}`);
      const abs = join(temp, path);
      mkdirSync(dirname(abs), { recursive: true });
      writeFileSync(abs, await readBlob(store, sha, path));
    }
    mkdirSync(temp, { recursive: true });
    renameSync(temp, dir);
  } catch (err) {
    rmSync(temp, { recursive: true, force: true });
    // Another call unpacked the same revision first (renaming onto it fails): use that one.
    if (existsSync(dir)) return dir;
    throw err;
  }
  return dir;
}
