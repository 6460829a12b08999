/**
 * Latencies of the last `window`, as a log-scale histogram over time slices: recording is O(1)
 * (a bucket index and two adds), a quantile is one scan of a fixed number of buckets, memory is
 * fixed (slices × buckets numbers) however many samples arrive. Buckets grow by 10%, so a
 * quantile is exact to within 10% and is reported as its bucket's upper bound (never below the
 * true value). Time is passed in (milliseconds of the Effect `Clock`), so `TestClock` drives it.
 *
 * Unlike `internal/SlidingWindow` (sums of a few counters), this keeps the whole window's
 * histogram up to date as slices expire, so a quantile does not sum every slice.
 *
 * @internal
 */

const GROWTH = 1.1
const LOG_GROWTH = Math.log(GROWTH)
/** Bucket 0 holds latencies below 1 ms; bucket i ≥ 1 holds [1.1^(i-1), 1.1^i) ms, up to ~17 minutes. */
export const bucketCount = 2 + Math.ceil(Math.log(1_000_000) / LOG_GROWTH)

/** The bucket of a latency in milliseconds. */
export const bucketOf = (millis: number): number =>
  millis < 1 ? 0 : Math.min(bucketCount - 1, 1 + Math.floor(Math.log(millis) / LOG_GROWTH))

/** The upper bound of bucket `index`, in milliseconds. */
export const upperBoundOf = (index: number): number => index === 0 ? 1 : GROWTH ** index

/** A histogram's non-empty buckets as `[index, count]` pairs: what the store keeps. */
export type Buckets = ReadonlyArray<readonly [index: number, count: number]>

export class LatencyWindow {
  private readonly sliceMillis: number
  private readonly slices: number
  private readonly counts: Float64Array
  private readonly sliceTotals: Float64Array
  private readonly stamps: Float64Array
  private readonly aggregate = new Float64Array(bucketCount)
  private total = 0

  constructor(windowMillis: number, slices = 10) {
    this.slices = slices
    this.sliceMillis = Math.max(1, windowMillis / slices)
    this.counts = new Float64Array(slices * bucketCount)
    this.sliceTotals = new Float64Array(slices)
    this.stamps = new Float64Array(slices).fill(-Infinity)
  }

  /** Records one latency at time `now`. */
  add(now: number, millis: number): void {
    this.addCount(now, bucketOf(millis), 1)
  }

  /** Adds `count` samples to bucket `index` at time `now` (restoring a saved histogram). */
  addCount(now: number, index: number, count: number): void {
    if (!(count > 0) || index < 0 || index >= bucketCount) return
    const slice = this.current(now)
    this.counts[slice * bucketCount + index]! += count
    this.sliceTotals[slice]! += count
    this.aggregate[index]! += count
    this.total += count
  }

  /** Samples in the window ending at `now`. */
  count(now: number): number {
    this.expire(now)
    return this.total
  }

  /**
   * The `q` quantile (0 < q ≤ 1) of the window ending at `now`, in milliseconds (its bucket's
   * upper bound), or `undefined` when the window is empty.
   */
  quantile(now: number, q: number): number | undefined {
    this.expire(now)
    if (this.total === 0) return undefined
    const rank = Math.max(1, Math.ceil(q * this.total))
    let seen = 0
    for (let index = 0; index < bucketCount; index++) {
      seen += this.aggregate[index]!
      if (seen >= rank) return upperBoundOf(index)
    }
    return upperBoundOf(bucketCount - 1)
  }

  /** The window's histogram, for the store. */
  buckets(now: number): Buckets {
    this.expire(now)
    const pairs: Array<readonly [number, number]> = []
    for (let index = 0; index < bucketCount; index++) {
      const count = this.aggregate[index]!
      if (count > 0) pairs.push([index, count])
    }
    return pairs
  }

  /** Forgets every sample. */
  clear(): void {
    this.counts.fill(0)
    this.sliceTotals.fill(0)
    this.stamps.fill(-Infinity)
    this.aggregate.fill(0)
    this.total = 0
  }

  /**
   * True when slices expired since the last look (the quantile may have moved). A slice stamped
   * after `now` expires too: the clock (wall time) went back, and its samples would otherwise
   * stay until the clock caught up again, however far ahead that is.
   */
  expire(now: number): boolean {
    const newest = Math.floor(now / this.sliceMillis)
    const oldest = newest - this.slices + 1
    let expired = false
    for (let slice = 0; slice < this.slices; slice++) {
      const stamp = this.stamps[slice]!
      if ((stamp < oldest || stamp > newest) && this.sliceTotals[slice]! > 0) {
        this.evict(slice)
        expired = true
      }
    }
    return expired
  }

  /** The slice of time `now`, emptied first when it last held an older stretch of time. */
  private current(now: number): number {
    const stamp = Math.floor(now / this.sliceMillis)
    const slice = stamp % this.slices
    if (this.stamps[slice] !== stamp) {
      this.evict(slice)
      this.stamps[slice] = stamp
    }
    return slice
  }

  private evict(slice: number): void {
    if (this.sliceTotals[slice]! > 0) {
      const base = slice * bucketCount
      for (let index = 0; index < bucketCount; index++) {
        const count = this.counts[base + index]!
        if (count > 0) {
          this.aggregate[index]! -= count
          this.counts[base + index] = 0
        }
      }
      this.total -= this.sliceTotals[slice]!
      this.sliceTotals[slice] = 0
    }
  }
}
