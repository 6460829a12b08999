/**
 * The learned per-attempt timeout of one operation: `clamp(p99 × multiplier, floor, configured)`
 * over the successful attempts of a sliding window, the configured timeout until `minSamples`
 * are in it. The configured timeout stays the ceiling: adaptation only ever cuts waiting short.
 *
 * Only successes are samples, so a latency that rises above the learned timeout would never be
 * seen: every attempt would be cut. A running share of attempts cut by the learned timeout
 * guards against that: when it passes `resetShare` the window is forgotten and the configured
 * timeout applies again until enough new samples (the new latency) are in.
 *
 * @internal
 */
import { LatencyWindow } from "./LatencyWindow.js"
import type { Buckets } from "./LatencyWindow.js"

export interface LearnerSettings {
  readonly configuredMillis: number
  readonly multiplier: number
  readonly floorMillis: number
  readonly minSamples: number
  readonly windowMillis: number
}

/** What a person is told when the timeout moves more than 2× or learning starts over. */
export interface Change {
  readonly kind: "moved" | "reset"
  readonly fromMillis: number
  readonly toMillis: number
  readonly p99Millis: number | undefined
  readonly samples: number
}

/** Smoothing of the share of attempts cut by the learned timeout (each attempt weighs 10%). */
const CUT_WEIGHT = 0.1
/** About four cuts in a row: far above a few percent of hung attempts, what a latency shift looks like. */
const RESET_SHARE = 0.3

export class Learner {
  private readonly window: LatencyWindow
  private timeout: number
  private p99: number | undefined
  private announced: number
  private cutShare = 0
  private pending: Change | undefined
  /** Bumped on every change of the timeout, so callers can cache what they derive from it. */
  version = 0

  constructor(readonly settings: LearnerSettings) {
    this.window = new LatencyWindow(settings.windowMillis)
    this.timeout = settings.configuredMillis
    this.announced = settings.configuredMillis
  }

  /** The per-attempt timeout at `now`, in milliseconds. */
  timeoutMillis(now: number): number {
    this.expire(now)
    return this.timeout
  }

  /** The timeout as of the last look, in milliseconds. */
  get currentMillis(): number {
    return this.timeout
  }

  /** Samples in the window at `now`. */
  samples(now: number): number {
    this.expire(now)
    return this.window.count(now)
  }

  /** The p99 of the window at its last refresh, in milliseconds. */
  get p99Millis(): number | undefined {
    return this.p99
  }

  /** A successful attempt that took `latencyMillis`. */
  success(now: number, latencyMillis: number): void {
    this.window.add(now, latencyMillis)
    this.cutShare *= 1 - CUT_WEIGHT
    this.refresh(now)
  }

  /** An attempt cut by a timeout of `timeoutMillis`. */
  timedOut(now: number, timeoutMillis: number): void {
    const byLearned = timeoutMillis < this.settings.configuredMillis
    this.cutShare = this.cutShare * (1 - CUT_WEIGHT) + (byLearned ? CUT_WEIGHT : 0)
    if (byLearned && this.cutShare > RESET_SHARE) {
      const samples = this.window.count(now)
      this.window.clear()
      this.cutShare = 0
      const from = this.timeout
      this.timeout = this.settings.configuredMillis
      this.p99 = undefined
      this.announced = this.timeout
      this.version++
      this.pending = { kind: "reset", fromMillis: from, toMillis: this.timeout, p99Millis: undefined, samples }
    }
  }

  /** The change to announce since the last call, if any. */
  takeChange(): Change | undefined {
    const change = this.pending
    this.pending = undefined
    return change
  }

  /** Seeds the window with a saved histogram (its samples count from `now`). */
  restore(now: number, buckets: Buckets): void {
    for (const [index, count] of buckets) this.window.addCount(now, index, count)
    this.refresh(now)
    // What was learned before is not news.
    this.pending = undefined
    this.announced = this.timeout
  }

  /** The window's histogram at `now`, for the store. */
  buckets(now: number): Buckets {
    this.expire(now)
    return this.window.buckets(now)
  }

  /**
   * Every read goes through here: the window reports expired slices once, so whichever read
   * sees them first (a summary, a save to the store) must refresh the timeout, or the next
   * attempt would keep a timeout learned from samples that are gone.
   */
  private expire(now: number): void {
    if (this.window.expire(now)) this.refresh(now)
  }

  private refresh(now: number): void {
    const { configuredMillis, floorMillis, minSamples, multiplier } = this.settings
    const samples = this.window.count(now)
    this.p99 = this.window.quantile(now, 0.99)
    const next = this.p99 === undefined || samples < minSamples
      ? configuredMillis
      : Math.min(configuredMillis, Math.max(floorMillis, Math.ceil(this.p99 * multiplier)))
    if (next === this.timeout) return
    this.timeout = next
    this.version++
    if (next > this.announced * 2 || next * 2 < this.announced) {
      this.pending = { kind: "moved", fromMillis: this.announced, toMillis: next, p99Millis: this.p99, samples }
      this.announced = next
    }
  }
}
