/**
 * The retry combinators: the retry `Schedule` of a policy, `withRetry` / `retryOnFailure`, and the
 * manual `retryDriver`, all deciding with `decision.ts`, logging each retry and the final failure
 * and counting them.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleInterval from "effect/ScheduleInterval"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import type { RetryPolicy } from "../ReliabilityConfig.js"
import { ReliabilityConfig } from "../ReliabilityConfig.js"
import * as Decision from "./decision.js"

const logDecision = (label: string, decision: Decision.RetryDecision, error: unknown, quiet = false): Effect.Effect<void> => {
  const message = Decision.describeDecision(label, decision, error)
  switch (Decision.severityOf(decision, quiet)) {
    case "warning":
      return Effect.logWarning(message)
    case "error":
      return Effect.logError(message)
    case "debug":
      return Effect.logDebug(message)
  }
}

// ---------------------------------------------------------------------------------------------
// The retry Schedule
// ---------------------------------------------------------------------------------------------

/** Options shared by the retry combinators. */
export interface RetryOptions {
  /** The service the metrics and logs name ("gemini"). */
  readonly service?: string | undefined
  /** The operation the logs name ("gemini_api"). */
  readonly operation?: string | undefined
  /** An absolute deadline, in ms of the Effect `Clock`: no wait will end past it. */
  readonly deadlineAt?: number | undefined
  /**
   * A retry budget to draw retries from. The budget is a share of calls, so whoever passes one
   * also counts each call with `budget.recordCall(now)` (`protect` does).
   */
  readonly budget?: CircuitBreaker.RetryBudget | undefined
  /**
   * Log retries and final failures at Debug rather than Warning / Error: for high-volume paths
   * (event delivery) that report outcomes in aggregate instead.
   */
  readonly quiet?: boolean | undefined
}

/** What the retry schedule outputs after each failure. */
export interface RetryStep {
  readonly attempt: number
  readonly delay: Duration.Duration
}

/**
 * The retry `Schedule` of a policy: fed each failure, it decides with `decide` (only retryable
 * errors, at most `maxAttempts - 1` retries, exponential capped jittered waits, at least a
 * server's hint, never past the deadline, within the budget), logs each retry and the final
 * failure, and counts retries by reason.
 */
export const retrySchedule = (policy: RetryPolicy, options: RetryOptions = {}): Schedule.Schedule<RetryStep, unknown> => {
  const service = options.service ?? options.operation ?? "default"
  return Schedule.makeWithState(0, (now, error: unknown, failed: number) =>
    Effect.map(decideAndReport(policy, options, service, failed + 1, error, now), (decision) =>
      decision._tag === "Stop"
        ? [decision.attempt, { attempt: decision.attempt, delay: Duration.zero }, ScheduleDecision.done] as const
        : [
          decision.attempt,
          { attempt: decision.attempt, delay: decision.delay },
          ScheduleDecision.continueWith(ScheduleInterval.after(now + Duration.toMillis(decision.delay)))
        ] as const))
}

/**
 * Decides after a failed attempt, logs the decision and counts it (retries by reason, budget
 * refusals): the one step shared by the retry Schedule and the retry driver.
 */
const decideAndReport = (
  policy: RetryPolicy,
  options: RetryOptions,
  service: string,
  attempt: number,
  error: unknown,
  now: number
): Effect.Effect<Decision.RetryDecision> =>
  Effect.gen(function*() {
    const random = policy.jitter === "none" ? 0.5 : yield* Random.next
    const decision = Decision.decide(policy, {
      attempt,
      error,
      now,
      random,
      deadlineAt: options.deadlineAt,
      budget: options.budget
    })
    const label = options.operation === undefined ? "" : `${options.operation} `
    yield* logDecision(label, decision, error, options.quiet)
    Decision.count(service, decision, error)
    return decision
  })

/**
 * Runs `first`, and on failure feeds the errors to `schedule` until it stops, running `again`
 * for each retry (`first` and `again` are one attempt, `first` possibly already started). The
 * happy path pays for one `catchAll`; the schedule's driver is only made after a failure.
 */
export const retrying = <A, E, R, B, R2>(
  first: Effect.Effect<A, E, R>,
  again: Effect.Effect<A, E, R>,
  schedule: () => Schedule.Schedule<B, E, R2>
): Effect.Effect<A, E, R | R2> =>
  Effect.catchAll(first, (error) =>
    Effect.flatMap(Schedule.driver(schedule()), (driver) => {
      const loop = (error: E): Effect.Effect<A, E, R | R2> =>
        Effect.matchEffect(driver.next(error), {
          onFailure: () => Effect.fail(error),
          onSuccess: () => Effect.catchAll(again, loop)
        })
      return loop(error)
    }))

const resolvePolicy = (policy: string | RetryPolicy): Effect.Effect<RetryPolicy, never, ReliabilityConfig> =>
  typeof policy === "string" ? Effect.map(ReliabilityConfig, (config) => config.policyOf(policy)) : Effect.succeed(policy)

/**
 * Retries `self` with `policy` (a policy name from `ReliabilityConfig`, or a `RetryPolicy`).
 * Only errors with `retryable: true` are retried; each retry and the final failure are logged
 * ("attempt 2/3 failed: …; retrying in 4.0s").
 */
export function withRetry(
  policy: RetryPolicy,
  options?: RetryOptions
): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
export function withRetry(
  policy: string | RetryPolicy,
  options?: RetryOptions
): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R | ReliabilityConfig>
export function withRetry(policy: string | RetryPolicy, options: RetryOptions = {}) {
  const service = options.service ?? (typeof policy === "string" ? policy : undefined)
  return <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R | ReliabilityConfig> =>
    Effect.flatMap(resolvePolicy(policy), (resolved) =>
      retrying(self, self, () => retrySchedule(resolved, { ...options, service })))
}

/** `withRetry` as a plain function: `retryOnFailure(effect, { policy: "gemini" })`. */
export function retryOnFailure<A, E, R>(
  self: Effect.Effect<A, E, R>,
  options: RetryOptions & { readonly policy: RetryPolicy }
): Effect.Effect<A, E, R>
export function retryOnFailure<A, E, R>(
  self: Effect.Effect<A, E, R>,
  options: RetryOptions & { readonly policy?: string | RetryPolicy | undefined }
): Effect.Effect<A, E, R | ReliabilityConfig>
export function retryOnFailure<A, E, R>(
  self: Effect.Effect<A, E, R>,
  options: RetryOptions & { readonly policy?: string | RetryPolicy | undefined }
): Effect.Effect<A, E, R | ReliabilityConfig> {
  return withRetry(options.policy ?? "default", options)(self)
}

// ---------------------------------------------------------------------------------------------
// Manual control
// ---------------------------------------------------------------------------------------------

/**
 * Manual retry control for loops that cannot be one effect: after each failure call
 * `next(error)`; `Some(delay)` means wait that long and try again, `None` means stop (the
 * reason was logged). `attempt` is the number of failures seen; `reset` starts over.
 */
export interface RetryDriver {
  readonly next: (error: unknown) => Effect.Effect<Option.Option<Duration.Duration>>
  readonly attempt: Effect.Effect<number>
  readonly reset: Effect.Effect<void>
  readonly policy: RetryPolicy
}

/** A `RetryDriver` for `policy` (a name from `ReliabilityConfig`, or a `RetryPolicy`). */
export function retryDriver(policy: RetryPolicy, options?: RetryOptions): Effect.Effect<RetryDriver>
export function retryDriver(
  policy: string | RetryPolicy,
  options?: RetryOptions
): Effect.Effect<RetryDriver, never, ReliabilityConfig>
export function retryDriver(
  policy: string | RetryPolicy,
  options: RetryOptions = {}
): Effect.Effect<RetryDriver, never, ReliabilityConfig> {
  return Effect.map(resolvePolicy(policy), (resolved) => {
    let failed = 0
    const service = options.service ?? options.operation ?? (typeof policy === "string" ? policy : "default")
    return {
      policy: resolved,
      attempt: Effect.sync(() => failed),
      reset: Effect.sync(() => {
        failed = 0
      }),
      next: (error) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.map(
            decideAndReport(resolved, options, service, ++failed, error, now),
            (decision) => decision._tag === "Retry" ? Option.some(decision.delay) : Option.none()
          ))
    }
  })
}

