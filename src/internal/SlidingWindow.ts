/**
 * Counts events in a sliding time window, in fixed buckets, so recording and summing cost a few
 * array operations and no allocation. Time is passed in (milliseconds from the Effect `Clock`),
 * which keeps it testable with `TestClock`.
 *
 * @internal
 */
export class SlidingWindow {
  private readonly bucketMillis: number
  private readonly counts: Array<Float64Array>
  private readonly stamps: Float64Array
  private readonly fields: number

  constructor(windowMillis: number, fields: number, buckets = 10) {
    this.bucketMillis = Math.max(1, windowMillis / buckets)
    this.fields = fields
    this.counts = Array.from({ length: fields }, () => new Float64Array(buckets))
    this.stamps = new Float64Array(buckets).fill(-Infinity)
  }

  /** Adds `amount` to `field` at time `now`. */
  add(now: number, field: number, amount = 1): void {
    const slot = Math.floor(now / this.bucketMillis)
    const index = slot % this.stamps.length
    if (this.stamps[index] !== slot) {
      this.stamps[index] = slot
      for (let f = 0; f < this.fields; f++) this.counts[f]![index] = 0
    }
    this.counts[field]![index]! += amount
  }

  /** The sum of `field` over the window ending at `now`. */
  sum(now: number, field: number): number {
    const current = Math.floor(now / this.bucketMillis)
    const oldest = current - this.stamps.length + 1
    const counts = this.counts[field]!
    let total = 0
    for (let index = 0; index < this.stamps.length; index++) {
      const stamp = this.stamps[index]!
      if (stamp >= oldest && stamp <= current) total += counts[index]!
    }
    return total
  }

  /** Forgets everything. */
  clear(): void {
    this.stamps.fill(-Infinity)
    for (const counts of this.counts) counts.fill(0)
  }
}
