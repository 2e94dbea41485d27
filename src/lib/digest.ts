/**
 * sha256 from node:crypto, loaded on first use (loading it costs a few milliseconds, which a run
 * that reads no file content does not pay). It is the content identity of every in-sync
 * decision: the content index, source files, store blobs.
 */
import type * as Crypto from 'node:crypto';

function crypto(): typeof Crypto {
  return process.getBuiltinModule('node:crypto');
}

export function sha256Hex(data: string | Uint8Array): string {
  const c = crypto();
  // One call without a Hash object where Node has it (20.12 and later).
  return typeof c.hash === 'function' ? c.hash('sha256', data, 'hex') : c.createHash('sha256').update(data).digest('hex');
}

/** A hash to feed piece by piece. */
export function sha256Stream(): Crypto.Hash {
  return crypto().createHash('sha256');
}
