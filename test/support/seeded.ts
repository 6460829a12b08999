/**
 * Seeded randomness for tests and benches that need the same "random" latencies on every run:
 * the sandbox's mulberry32 for uniform numbers and Box–Muller for normal ones.
 */
import { mulberry32 } from "../../src/sandbox/FaultPlan.js"

export const seeded = (seed: number) => {
  let state = seed | 0
  const next = () => {
    const [value, after] = mulberry32(state)
    state = after
    return value
  }
  const normal = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next())
  /** A log-normal value around `median` (`sigma` 0.596 puts the p99 at about 4 × the median). */
  const lognormal = (median: number, sigma: number) => median * Math.exp(sigma * normal())
  return { next, normal, lognormal }
}
