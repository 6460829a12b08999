/**
 * A client-side token bucket that paces sends to a service that throttles, on the model of the
 * AWS SDKs' "adaptive" retry mode: off until the first 429; then each throttle cuts the rate to
 * 0.7 × the rate measured at the time (CUBIC's multiplicative decrease), and every other answer
 * lets it grow back along the CUBIC curve `0.4 × (t − K)³ + lastMaxRate`, K = ∛(lastMaxRate × 0.3 / 0.4),
 * never above twice the measured send rate. The send rate is measured in half-second buckets,
 * smoothed 0.8 / 0.2. The fill rate never drops below 0.5 per second, the capacity below 1.
 *
 * Times are seconds passed in (from the Effect `Clock`), so `TestClock` drives it.
 *
 * @internal
 */

const BETA = 0.7
const SCALE = 0.4
const SMOOTH = 0.8
const MIN_FILL_RATE = 0.5
const MIN_CAPACITY = 1
const MEASURE_BUCKET = 0.5

/** The longest a caller waits before asking the bucket again (the rate may have grown meanwhile). */
export const recheckSeconds = 0.5

export class RateLimiter {
  private enabled = false
  private fillRate = MIN_FILL_RATE
  private maxCapacity = MIN_CAPACITY
  private capacity = 0
  private lastRefill: number | undefined
  private measuredRate = 0
  private lastMeasureBucket: number
  private requests = 0
  private lastMaxRate = 0
  private lastThrottle: number
  private timeWindow = 0

  constructor(now: number) {
    this.lastMeasureBucket = Math.floor(now)
    this.lastThrottle = now
  }

  /** The paced send rate per second, or `undefined` while the bucket is off (no throttle seen). */
  get rate(): number | undefined {
    return this.enabled ? this.fillRate : undefined
  }

  /**
   * Takes a token for one send at `now` and returns 0, or, when there is none, returns how many
   * seconds until one is due, taking nothing: the caller waits (at most `recheckSeconds`) and
   * asks again. Unlike the AWS SDK, a waiting caller does not book its token ahead, so a rate
   * that grows back while callers wait (or a burst that queued up behind a very low rate) is
   * not stuck with waits computed from the old rate.
   */
  acquire(now: number): number {
    if (!this.enabled) return 0
    this.refill(now)
    // A hair below 1 counts as 1: the float sum of refills should not leave a caller waiting nanoseconds.
    if (this.capacity >= 1 - 1e-9) {
      this.capacity -= 1
      return 0
    }
    return (1 - this.capacity) / this.fillRate
  }

  /** Updates the rate after an answer: `throttled` for a 429. */
  update(now: number, throttled: boolean): void {
    this.measure(now)
    let rate: number
    if (throttled) {
      const rateToUse = this.enabled ? Math.min(this.measuredRate, this.fillRate) : this.measuredRate
      this.lastMaxRate = rateToUse
      this.timeWindow = Math.cbrt((this.lastMaxRate * (1 - BETA)) / SCALE)
      this.lastThrottle = now
      rate = rateToUse * BETA
      this.enabled = true
    } else {
      this.timeWindow = Math.cbrt((this.lastMaxRate * (1 - BETA)) / SCALE)
      rate = SCALE * (now - this.lastThrottle - this.timeWindow) ** 3 + this.lastMaxRate
    }
    this.setRate(now, Math.min(rate, 2 * this.measuredRate))
  }

  private setRate(now: number, rate: number): void {
    this.refill(now)
    this.fillRate = Math.max(rate, MIN_FILL_RATE)
    this.maxCapacity = Math.max(rate, MIN_CAPACITY)
    this.capacity = Math.min(this.capacity, this.maxCapacity)
  }

  private refill(now: number): void {
    if (this.lastRefill === undefined) {
      this.lastRefill = now
      return
    }
    const elapsed = Math.max(0, now - this.lastRefill)
    this.capacity = Math.min(this.maxCapacity, this.capacity + elapsed * this.fillRate)
    this.lastRefill = Math.max(this.lastRefill, now)
  }

  private measure(now: number): void {
    const bucket = Math.floor(now / MEASURE_BUCKET) * MEASURE_BUCKET
    this.requests++
    if (bucket > this.lastMeasureBucket) {
      const current = this.requests / (bucket - this.lastMeasureBucket)
      this.measuredRate = current * SMOOTH + this.measuredRate * (1 - SMOOTH)
      this.requests = 0
      this.lastMeasureBucket = bucket
    }
  }
}
