/**
 * A 64-bit fingerprint of bytes: MurmurHash3 (x86, 32-bit) run with two seeds, side by side.
 * Not a cryptographic hash, and not collision resistant: two blocks can be crafted to collide for
 * every seed. It only names things whose full value is compared afterwards (a compile-cache
 * entry's file, whose key is checked in full); whether content is in sync is always decided by
 * SHA-256 or by the bytes themselves (lib/digest.ts, executors/content-index.ts).
 */
const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const SEEDS = [0, 0x9747b28c] as const;

/** The last step of MurmurHash3: the tail block, the length, the avalanche. */
function finish(h: number, length: number, tail: number, tailLength: number): number {
  if (tailLength > 0) {
    let k = Math.imul(tail, C1);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, C2);
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * MurmurHash3_x86_32 of `bytes` with each seed (exported for its reference vectors). One loop
 * with the block mixing written out: a converged run calls it once per file, mostly before the
 * JIT has compiled it, where every function call counts.
 */
export function murmur3Pair(bytes: Uint8Array, seeds: readonly [number, number] = SEEDS): [number, number] {
  let a = seeds[0] | 0;
  let b = seeds[1] | 0;
  const length = bytes.length;
  const blocks = length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    a ^= k;
    a = (a << 13) | (a >>> 19);
    a = (Math.imul(a, 5) + 0xe6546b64) | 0;
    b ^= k;
    b = (b << 13) | (b >>> 19);
    b = (Math.imul(b, 5) + 0xe6546b64) | 0;
  }
  let tail = 0;
  const tailLength = length & 3;
  if (tailLength >= 3) tail ^= bytes[blocks + 2]! << 16;
  if (tailLength >= 2) tail ^= bytes[blocks + 1]! << 8;
  if (tailLength >= 1) tail ^= bytes[blocks]!;
  return [finish(a, length, tail, tailLength), finish(b, length, tail, tailLength)];
}

/** The two 32-bit halves (compared as numbers: no string to format per file). */
export function fingerprint(bytes: Uint8Array): [number, number] {
  return murmur3Pair(bytes);
}

/** 16 hex digits (a file name). */
export function fingerprintHex(bytes: Uint8Array): string {
  const pair = murmur3Pair(bytes);
  return hex8(pair[0]) + hex8(pair[1]);
}

function hex8(n: number): string {
  return (n + 0x100000000).toString(16).slice(1);
}
