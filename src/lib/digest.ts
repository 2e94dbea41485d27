/**
 * sha256 from node:crypto, loaded on first use: loading it costs about as much
 * as checking every file of a small site, and a converged run needs neither (it compares
 * fingerprints, lib/fingerprint.ts).
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
