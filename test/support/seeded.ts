/**
 * Seeded randomness for tests and benches that need the same "random" latencies on every run:
 * mulberry32 for uniform numbers and Box–Muller for normal ones.
 */
export const seeded = (seed: number) => {
  let state = seed | 0
  const next = () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const normal = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next())
  /** A log-normal value around `median` (`sigma` 0.596 puts the p99 at about 4 × the median). */
  const lognormal = (median: number, sigma: number) => median * Math.exp(sigma * normal())
  return { next, normal, lognormal }
}
