/**
 * The retry decision, shared by the retry `Schedule`, the retry driver and the Promise API, so
 * that all three wait, stop, log and count alike.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import type { RetryBudget } from "../CircuitBreaker.js"
import { asksToWait, describe, formatDuration, isRetryable, retryAfterOf } from "../Errors.js"
import * as Metrics from "../Metrics.js"
import type { RetryPolicy } from "../ReliabilityConfig.js"

/**
 * The base wait before retry number `retry` (1 for the first retry):
 * `min(initialDelay × factor^(retry-1), maxDelay)`, then scaled by `jitterFactor` (a number in
 * [0.8, 1.2], or 1 for no jitter) and capped again.
 */
export const backoffDelay = (policy: RetryPolicy, retry: number, jitterFactor = 1): Duration.Duration => {
  const initial = Duration.toMillis(policy.initialDelay)
  const max = Duration.toMillis(policy.maxDelay)
  const base = Math.min(initial * Math.pow(policy.factor, retry - 1), max)
  return Duration.millis(Math.min(base * (policy.jitter === "none" ? 1 : jitterFactor), max))
}

/**
 * Why retrying stopped. `hint`: the server asked for a wait longer than the policy's `maxDelay`;
 * waiting that long inside one call (or waiting less and asking again too early) helps no one,
 * so the call fails now with the server's error, whose `retryAfter` says when to come back.
 */
export type StopReason = "not-retryable" | "exhausted" | "budget" | "deadline" | "hint"

/** What to do after a failed attempt. */
export type RetryDecision =
  | { readonly _tag: "Retry"; readonly delay: Duration.Duration; readonly attempt: number; readonly maxAttempts: number }
  | {
    readonly _tag: "Stop"
    readonly reason: StopReason
    readonly attempt: number
    readonly maxAttempts: number
    readonly detail: string
  }

/** Inputs to one retry decision. */
export interface DecideInput {
  /** The attempt that just failed, counting from 1. */
  readonly attempt: number
  readonly error: unknown
  readonly now: number
  /** A random number in [0, 1). */
  readonly random: number
  /** Absolute deadline in ms (same clock as `now`), if an enclosing deadline applies. */
  readonly deadlineAt?: number | undefined
  readonly budget?: RetryBudget | undefined
}

/**
 * Decides whether to retry after a failure, and how long to wait. Pure apart from taking a
 * retry from the budget when it says yes.
 */
export const decide = (policy: RetryPolicy, input: DecideInput): RetryDecision => {
  const { attempt, error, now } = input
  const maxAttempts = policy.maxAttempts
  const stop = (reason: StopReason, detail: string): RetryDecision => ({
    _tag: "Stop",
    reason,
    attempt,
    maxAttempts,
    detail
  })
  if (!isRetryable(error)) return stop("not-retryable", "not retryable")
  if (attempt >= maxAttempts) return stop("exhausted", "giving up")
  let delay = backoffDelay(policy, attempt, 0.8 + 0.4 * input.random)
  const hint = retryAfterOf(error)
  if (hint !== undefined) {
    if (Duration.greaterThan(hint, policy.maxDelay)) {
      const maxDelay = `the policy's maxDelay of ${formatDuration(policy.maxDelay)}; failing now`
      // An HTTP error's message that says the wait and its end already (`fromHttp`) is not repeated.
      return stop(
        "hint",
        describe(error).includes(`${asksToWait(hint)} (until `)
          ? `that is longer than ${maxDelay}`
          : `the server ${asksToWait(hint, now)}, longer than ${maxDelay}`
      )
    }
    // Wait at least the server's hint.
    delay = Duration.max(delay, hint)
  }
  if (input.deadlineAt !== undefined) {
    const remaining = input.deadlineAt - now
    if (Duration.toMillis(delay) >= remaining) {
      return stop(
        "deadline",
        `${hint === undefined ? "the next wait" : "the server asks to wait"} ${formatDuration(delay)} but only ` +
          `${formatDuration(Duration.millis(Math.max(0, remaining)))} remain before the deadline; failing now`
      )
    }
  }
  if (input.budget !== undefined && !input.budget.tryRetry(now)) {
    return stop("budget", `the retry budget of ${input.budget.service} is spent; failing fast`)
  }
  return { _tag: "Retry", delay, attempt, maxAttempts }
}

/** The `_tag` of a tagged error ("ServiceUnavailable"), "Unknown" for anything else. */
export const errorTag = (error: unknown): string =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string" ? error._tag : "Unknown"

/**
 * Counts a decision in the metrics: a retry by the error that caused it, a refusal of the retry
 * budget. The one place both the Effect and the Promise pipelines count retries.
 */
export const count = (service: string, decision: RetryDecision, error: unknown): void => {
  if (decision._tag === "Retry") {
    Metrics.retries.unsafeUpdate(1, Metrics.labelsFor(service, { reason: errorTag(error) }))
  } else if (decision.reason === "budget") {
    Metrics.budgetRejections.unsafeUpdate(1, Metrics.labelsFor(service))
  }
}

/** How loud a decision is: retries warn, a final failure after retries is an error. */
export type Severity = "debug" | "warning" | "error"

/**
 * A retry warns; the final failure of a call that was retried is an error; a failure on the only
 * attempt made is the caller's to report, not a retry incident (debug), except a server's hint
 * beyond `maxDelay`, whose line says when to come back (warning). `quiet` paths (event delivery)
 * report outcomes in aggregate instead: debug.
 */
export const severityOf = (decision: RetryDecision, quiet: boolean): Severity =>
  quiet
    ? "debug"
    : decision._tag === "Retry"
    ? "warning"
    : decision.attempt > 1
    ? "error"
    : decision.reason === "hint"
    ? "warning"
    : "debug"

/** "4.0s" for waits of a second or more (as people read backoff), "250ms" below. */
const formatWait = (delay: Duration.Duration): string => {
  const millis = Duration.toMillis(delay)
  return millis >= 1000 ? `${(millis / 1000).toFixed(1)}s` : `${Math.round(millis)}ms`
}

/** The log line for a decision: "gemini_api attempt 2/3 failed: …; retrying in 4.0s". */
export const describeDecision = (label: string, decision: RetryDecision, error: unknown): string => {
  const prefix = `${label}attempt ${decision.attempt}/${decision.maxAttempts} failed: ${describe(error)}`
  return decision._tag === "Retry"
    ? `${prefix}; retrying in ${formatWait(decision.delay)}`
    : `${prefix}; ${decision.detail}`
}
