/**
 * What a protection pipeline holds for adaptation: the learned timeout of its operation and the
 * pacer of its service, each updating its metric and saying what to log. Synchronous, so the
 * pipeline's hot path pays a few arithmetic operations per attempt.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import type * as MetricLabel from "effect/MetricLabel"
import { formatDuration } from "../Errors.js"
import * as Metrics from "../Metrics.js"
import type { Change } from "./Learner.js"
import { Learner } from "./Learner.js"
import type { LearnerSettings } from "./Learner.js"
import { RateLimiter, recheckSeconds } from "./RateLimiter.js"

const showMillis = (millis: number): string => formatDuration(Duration.millis(millis))

/** The log line of a change: more than 2× either way, or learning started over. */
export const describeChange = (operation: string, change: Change, minSamples: number): string =>
  change.kind === "reset"
    ? `${operation}: attempts kept being cut by the learned timeout ${showMillis(change.fromMillis)}; ` +
      `forgot ${change.samples} samples, back to the configured ${showMillis(change.toMillis)} until ${minSamples} new ones`
    : `${operation}: adaptive timeout ${showMillis(change.fromMillis)} → ${showMillis(change.toMillis)} ` +
      `(p99 ${change.p99Millis === undefined ? "unknown" : showMillis(change.p99Millis)} over ${change.samples} samples)`

/** A line to log: a reset is a warning (something changed upstream), a move is news. */
export interface Announcement {
  readonly warning: boolean
  readonly message: string
}

/** The learned timeout of one operation, shared by every pipeline of that operation in a runtime. */
export class AdaptiveTimeout {
  readonly learner: Learner
  private readonly labels: ReadonlyArray<MetricLabel.MetricLabel>
  private cachedVersion = -1
  private cached: Duration.Duration = Duration.zero

  constructor(readonly operation: string, readonly service: string, settings: LearnerSettings) {
    this.learner = new Learner(settings)
    this.labels = Metrics.labelsFor(service, { operation })
    this.publish()
  }

  /** The per-attempt timeout at `now` (ms of the Effect `Clock`). */
  timeout(now: number): Duration.Duration {
    const millis = this.learner.timeoutMillis(now)
    if (this.cachedVersion !== this.learner.version) {
      this.cachedVersion = this.learner.version
      this.cached = Duration.millis(millis)
      this.publish()
    }
    return this.cached
  }

  /** Records an attempt's outcome; returns what to log when the timeout moved a lot or learning started over. */
  settle(
    now: number,
    latencyMillis: number,
    outcome: "success" | "timeout" | "failure",
    timeout: Duration.Duration
  ): Announcement | undefined {
    if (outcome === "success") this.learner.success(now, latencyMillis)
    else if (outcome === "timeout") this.learner.timedOut(now, Duration.toMillis(timeout))
    const change = this.learner.takeChange()
    if (this.cachedVersion !== this.learner.version) this.timeout(now)
    return change === undefined ? undefined : {
      warning: change.kind === "reset",
      message: describeChange(this.operation, change, this.learner.settings.minSamples)
    }
  }

  private publish(): void {
    Metrics.adaptiveTimeout.unsafeUpdate(this.learner.currentMillis / 1000, this.labels)
  }
}

/** The 429 pacer of one service. */
export class Pacer {
  private readonly limiter: RateLimiter
  private readonly labels: ReadonlyArray<MetricLabel.MetricLabel>
  private lastRate: number | undefined

  constructor(readonly service: string, now: number) {
    this.limiter = new RateLimiter(now / 1000)
    this.labels = Metrics.labelsFor(service)
  }

  /** The paced rate per second, or `undefined` before the first throttle. */
  get rate(): number | undefined {
    return this.limiter.rate
  }

  /**
   * Takes a send token at `now` (ms) and returns 0, or returns how many milliseconds to wait
   * before asking again (at most half a second: the rate may grow meanwhile).
   */
  acquire(now: number): number {
    return Math.min(this.limiter.acquire(now / 1000), recheckSeconds) * 1000
  }

  /** Updates the rate after an answer; `throttled` for a 429. */
  settle(now: number, throttled: boolean): void {
    this.limiter.update(now / 1000, throttled)
    const rate = this.limiter.rate
    if (rate !== undefined && rate !== this.lastRate) {
      this.lastRate = rate
      Metrics.adaptiveRate.unsafeUpdate(rate, this.labels)
    }
  }
}
