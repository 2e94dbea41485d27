/**
 * Revocation (DESIGN §9): revoking writes the serial under a store prefix every master watches.
 * Each master keeps the set in memory (the authoritative check at each TLS handshake, WebSocket
 * upgrade and request) and is told of each newly revoked serial, to close its live sockets and
 * regenerate its CRL.
 */
import { StoreCompactedError } from '../../store/errors.ts';
import type { Store } from '../../store/types.ts';
import { normalSerial, SERIAL_PATTERN } from '../pki/x509.ts';
import { MASTER_KEYS, certificateRecord, readRecord, readRecords, revocationRecord, type CertificateRecord, type RevocationRecord } from './records.ts';

export class RevocationSet {
  private readonly entries = new Map<string, RevocationRecord>();

  constructor(
    private readonly store: Store,
    /** Called for each serial newly revoked (also for those found when the watch restarts). */
    private readonly onRevoked: (record: RevocationRecord) => void,
    /** Called after any change of the set (a revocation, or entries cleaned away). */
    private readonly onChange: () => void,
    private readonly log: (line: string) => void,
  ) {}

  has(serial: string): boolean {
    return this.entries.has(normalSerial(serial));
  }

  list(): RevocationRecord[] {
    return [...this.entries.values()];
  }

  /**
   * Reads the set (a store that cannot be read fails the start) and keeps it current until
   * `signal` aborts, reading it again whenever the watch is lost.
   */
  async start(signal: AbortSignal): Promise<void> {
    const revision = await this.readAll();
    void this.follow(signal, revision + 1);
  }

  private async readAll(): Promise<number> {
    const revision = await this.store.revision();
    this.replace(readRecords(revocationRecord, await this.store.list(MASTER_KEYS.revoked)));
    return revision;
  }

  private async follow(signal: AbortSignal, fromRevision: number): Promise<void> {
    let from = fromRevision;
    let failures = 0;
    while (!signal.aborted) {
      try {
        for await (const change of this.store.watch(MASTER_KEYS.revoked, { signal, fromRevision: from })) {
          failures = 0;
          from = change.revision + 1;
          const serial = change.key.slice(MASTER_KEYS.revoked.length);
          if (change.type === 'delete') {
            if (this.entries.delete(serial)) this.onChange();
            continue;
          }
          const record = readRecord(revocationRecord, { key: change.key, value: change.value!, modRevision: 0, createRevision: 0, version: 0 });
          if (record) this.add(record);
        }
      } catch (err) {
        if (signal.aborted) return;
        failures++;
        if (!(err instanceof StoreCompactedError)) this.log(`revocation watch failed (${(err as Error).message}); reading the set again`);
        // Back off while the store is unreachable; the set in memory stays authoritative meanwhile.
        await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 100 * 2 ** Math.min(failures, 6))).unref());
        try {
          from = (await this.readAll()) + 1;
        } catch {
          // Still unreachable: the next round waits longer and tries again.
        }
      }
    }
  }

  private replace(records: RevocationRecord[]): void {
    const before = new Set(this.entries.keys());
    this.entries.clear();
    for (const r of records) this.entries.set(r.serial, r);
    for (const r of records) if (!before.has(r.serial)) this.onRevoked(r);
    this.onChange();
  }

  private add(record: RevocationRecord): void {
    const fresh = !this.entries.has(record.serial);
    this.entries.set(record.serial, record);
    if (fresh) {
      this.onRevoked(record);
      this.onChange();
    }
  }
}

/** Store operations that revoke `cert` (one txn branch). */
export function revokeOps(cert: Pick<CertificateRecord, 'serial' | 'name' | 'not_after'>, now = new Date()): { put: string; value: string }[] {
  const record: RevocationRecord = { serial: cert.serial, name: cert.name, revoked: now.toISOString(), not_after: cert.not_after };
  return [{ put: MASTER_KEYS.revocation(cert.serial), value: JSON.stringify(record) }];
}

/**
 * Revokes a certificate by serial, or every unexpired certificate of an agent name. Returns the
 * serials newly revoked; an argument that names neither a known serial nor a name holding
 * certificates is an empty list.
 */
export async function revoke(store: Store, serialOrName: string, by: 'serial' | 'serial-or-name' = 'serial-or-name'): Promise<{ revoked: string[]; already: string[] }> {
  const certificates = readRecords(certificateRecord, await store.list(MASTER_KEYS.certificates));
  let chosen: CertificateRecord[] = [];
  if (SERIAL_PATTERN.test(serialOrName)) chosen = certificates.filter((c) => c.serial === normalSerial(serialOrName));
  if (chosen.length === 0 && by === 'serial-or-name') {
    const now = Date.now();
    chosen = certificates.filter((c) => c.name === serialOrName && Date.parse(c.not_after) > now);
  }
  const revoked: string[] = [];
  const already: string[] = [];
  for (const cert of chosen) {
    const key = MASTER_KEYS.revocation(cert.serial);
    const r = await store.txn([{ key, target: 'exists', op: '=', value: false }], revokeOps(cert));
    (r.succeeded ? revoked : already).push(cert.serial);
  }
  return { revoked, already };
}

/**
 * Drops inventory entries of certificates that have expired (`cairn master ca clean`): their
 * certificate and revocation records (an expired certificate is refused anyway, so the CRL no
 * longer needs it). Returns the serials dropped.
 */
export async function cleanExpired(store: Store, now = Date.now()): Promise<string[]> {
  const dropped = new Set<string>();
  for (const kv of await store.list(MASTER_KEYS.certificates)) {
    const c = readRecord(certificateRecord, kv);
    if (c && Date.parse(c.not_after) <= now) {
      await store.txn([{ key: kv.key, target: 'modRevision', op: '=', value: kv.modRevision }], [{ delete: kv.key }]);
      dropped.add(c.serial);
    }
  }
  for (const kv of await store.list(MASTER_KEYS.revoked)) {
    const r = readRecord(revocationRecord, kv);
    if (r && Date.parse(r.not_after) <= now) {
      await store.delete(kv.key);
      dropped.add(r.serial);
    }
  }
  return [...dropped].sort();
}
