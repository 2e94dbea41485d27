/**
 * A 64-bit fingerprint of bytes: MurmurHash3 (x86, 32-bit) run with two seeds, side by side.
 * Not a cryptographic hash: it tells apart inputs that differ by accident (a cache key, a file's
 * content between runs), and it is what a converged run computes instead of sha256, because
 * loading node:crypto alone costs about as much as checking every file of a small site.
 */
const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
const SEEDS = [0, 0x9747b28c] as const;

function mixBlock(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

function mixHash(h: number, k: number): number {
  h ^= mixBlock(k);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function finish(h: number, length: number, tail: number, tailLength: number): number {
  if (tailLength > 0) h ^= mixBlock(tail);
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** MurmurHash3_x86_32 of `bytes` with each seed (exported for its reference vectors). */
export function murmur3Pair(bytes: Uint8Array, seeds: readonly [number, number] = SEEDS): [number, number] {
  let a = seeds[0] | 0;
  let b = seeds[1] | 0;
  const length = bytes.length;
  const blocks = length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    const k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    a = mixHash(a, k);
    b = mixHash(b, k);
  }
  let tail = 0;
  const tailLength = length & 3;
  if (tailLength >= 3) tail ^= bytes[blocks + 2]! << 16;
  if (tailLength >= 2) tail ^= bytes[blocks + 1]! << 8;
  if (tailLength >= 1) tail ^= bytes[blocks]!;
  return [finish(a, length, tail, tailLength), finish(b, length, tail, tailLength)];
}

/** 16 hex digits. */
export function fingerprint(bytes: Uint8Array): string {
  const [a, b] = murmur3Pair(bytes);
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}
