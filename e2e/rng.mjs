// A small seeded PRNG (mulberry32), so that "random" tests and benchmark documents replay
// identically. No imports: the end-to-end tests (via harness.mjs) and bench/providers use it.

/** A function returning numbers in [0, 1), the same sequence for the same `seed`. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
