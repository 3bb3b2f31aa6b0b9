/**
 * Small, fast, seedable PRNG (mulberry32) plus a seed mixer so that every
 * tree gets its own independent stream derived from (seed, treeIndex). That
 * makes a tree's fit independent of which worker fits it, so fitting trees
 * in parts and merging them gives the same forest as one full fit.
 */

/** mulberry32: 32-bit state, period 2^32, good enough for bagging and feature sampling. */
export class Mulberry32 {
  state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Next unsigned 32-bit integer. */
  nextU32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform integer in [0, n) for 1 <= n <= 2^21 (exact: u32 * n < 2^53). */
  nextInt(n: number): number {
    return Math.floor((this.nextU32() * n) / 4294967296);
  }
}

/** A 32-bit hash of (seed, index) (splitmix/murmur finaliser) used as a per-tree seed. */
export function treeSeed(seed: number, index: number): number {
  let h = (Math.imul((seed | 0) ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(index + 1, 0xc2b2ae35)) | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Normalises a user seed (any finite number) to a 32-bit integer. */
export function normaliseSeed(seed: number): number {
  if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
  // Fold the integer part and the fraction so that 1 and 1.5 differ.
  const int = Math.trunc(seed);
  const hi = Math.floor(int / 4294967296);
  const frac = Math.floor((seed - int) * 4294967296);
  return (int ^ Math.imul(hi, 0x27d4eb2f) ^ Math.imul(frac, 0x165667b1)) >>> 0;
}
