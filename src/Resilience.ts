/**
 * Timeouts, retries and the standard protection pipeline.
 *
 * - `withTimeout(operation)`: the operation's timeout from `ReliabilityConfig`; fails with
 *   `OperationTimeout`.
 * - `withRetry(policy)`: retries only errors with `retryable: true`, on a `Schedule` built from
 *   the policy (exponential, capped, jittered, bounded), honouring server hints and deadlines.
 * - `protect({ operation, policy, breaker, deadline })`: total deadline → retry → circuit breaker
 *   → per-attempt timeout → the call.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import * as ScheduleInterval from "effect/ScheduleInterval"
import * as CircuitBreaker from "./CircuitBreaker.js"
import type { CircuitOpen } from "./Errors.js"
import { formatDuration, OperationTimeout, operationTimeout } from "./Errors.js"
import { decide, describeDecision, errorTag, type RetryDecision } from "./internal/retryDecision.js"
import { attempt as runAttempt, timeoutFail } from "./internal/timeout.js"
import * as Metrics from "./Metrics.js"
import type { OperationId, RetryPolicy } from "./ReliabilityConfig.js"
import { ReliabilityConfig } from "./ReliabilityConfig.js"

export type { RetryPolicy } from "./ReliabilityConfig.js"

/** The same pipeline for plain `async` functions (also published as `big3/promise`). */
export * as promise from "./Promise.js"

// ---------------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------------

/**
 * Bounds `self` by the configured timeout of `operation`. On timeout `self` is interrupted (an
 * HTTP request is aborted) and the result is an `OperationTimeout` naming the operation and the
 * timeout ("agent_creation timed out after 60s").
 */
export const withTimeout = (operation: OperationId, options?: { readonly service?: string | undefined }) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | OperationTimeout, R | ReliabilityConfig> =>
  Effect.flatMap(ReliabilityConfig, (config) =>
    timeoutAfter(config.timeoutOf(operation), operation, options?.service)(self))

/** Bounds `self` by an explicit `timeout`, failing with `OperationTimeout` for `operation`. */
export const timeoutAfter = (timeout: Duration.DurationInput, operation: string, service?: string | undefined) => {
  const duration = Duration.decode(timeout)
  const labels = Metrics.labelsFor(service ?? operation, { operation })
  const onTimeout = () => {
    Metrics.timeouts.unsafeUpdate(1, labels)
    return operationTimeout({ operation, timeout: duration, service })
  }
  return <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | OperationTimeout, R> =>
    timeoutFail(self, duration, onTimeout)
}

export {
  backoffDelay,
  decide,
  type DecideInput,
  describeDecision,
  type RetryDecision,
  type StopReason
} from "./internal/retryDecision.js"

const logDecision = (label: string, decision: RetryDecision, error: unknown, quiet = false): Effect.Effect<void> => {
  const message = describeDecision(label, decision, error)
  if (quiet) return Effect.logDebug(message)
  if (decision._tag === "Retry") return Effect.logWarning(message)
  // A failure on the only attempt made is the caller's to report, not a retry incident.
  return decision.attempt === 1 ? Effect.logDebug(message) : Effect.logError(message)
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
): Effect.Effect<RetryDecision> =>
  Effect.gen(function*() {
    const random = policy.jitter === "none" ? 0.5 : yield* Random.next
    const decision = decide(policy, { attempt, error, now, random, deadlineAt: options.deadlineAt, budget: options.budget })
    const label = options.operation === undefined ? "" : `${options.operation} `
    yield* logDecision(label, decision, error, options.quiet)
    if (decision._tag === "Retry") {
      Metrics.retries.unsafeUpdate(1, Metrics.labelsFor(service, { reason: errorTag(error) }))
    } else if (decision.reason === "budget") {
      Metrics.budgetRejections.unsafeUpdate(1, Metrics.labelsFor(service))
    }
    return decision
  })

/**
 * Runs `self`, and on failure feeds the errors to `schedule` until it stops. The happy path pays
 * for one `catchAll`; the schedule's driver is only made after a failure.
 */
const retrying = <A, E, R, B, R2>(
  self: Effect.Effect<A, E, R>,
  schedule: () => Schedule.Schedule<B, E, R2>
): Effect.Effect<A, E, R | R2> =>
  Effect.catchAll(self, (first) =>
    Effect.flatMap(Schedule.driver(schedule()), (driver) => {
      const loop = (error: E): Effect.Effect<A, E, R | R2> =>
        Effect.matchEffect(driver.next(error), {
          onFailure: () => Effect.fail(error),
          onSuccess: () => Effect.catchAll(self, loop)
        })
      return loop(first)
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
      retrying(self, () => retrySchedule(resolved, { ...options, service })))
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

// ---------------------------------------------------------------------------------------------
// The standard pipeline
// ---------------------------------------------------------------------------------------------

/** Options of `protect`. */
export interface ProtectOptions {
  /** The per-attempt timeout's operation id ("gemini_api"). */
  readonly operation: OperationId
  /** The retry policy: a name from `ReliabilityConfig` or a `RetryPolicy`. Default: "default". */
  readonly policy?: string | RetryPolicy | undefined
  /** The breaker name ("gemini"); omit for no breaker. */
  readonly breaker?: string | undefined
  /** A total deadline over all attempts and waits. */
  readonly deadline?: Duration.DurationInput | undefined
  /** The service named in metrics and logs; default: the breaker name, else the operation. */
  readonly service?: string | undefined
  /** Draw retries from the service's retry budget (default true when there is a breaker). */
  readonly budget?: boolean | undefined
}

/**
 * Builds the standard pipeline once: total deadline → retry → circuit breaker → per-attempt
 * timeout → the call. Reads configuration and the breaker when built, so each call pays only
 * for the pipeline itself.
 */
export const makeProtect = (
  options: ProtectOptions
): Effect.Effect<Protector, never, ReliabilityConfig | CircuitBreaker.CircuitBreaker> =>
  Effect.gen(function*() {
    const config = yield* ReliabilityConfig
    const registry = yield* CircuitBreaker.CircuitBreaker
    const service = options.service ?? options.breaker ?? options.operation
    const policy = typeof options.policy === "object" ? options.policy : config.policyOf(options.policy ?? "default")
    const timeout = config.timeoutOf(options.operation)
    const timeoutLabels = Metrics.labelsFor(service, { operation: options.operation })
    const onTimeout = () => {
      Metrics.timeouts.unsafeUpdate(1, timeoutLabels)
      return operationTimeout({ operation: options.operation, timeout, service })
    }
    const breaker = options.breaker === undefined ? undefined : registry.get(options.breaker)
    const useBudget = options.budget ?? breaker !== undefined
    const budget = useBudget ? registry.budget(service) : undefined
    const deadline = options.deadline === undefined ? undefined : Duration.decode(options.deadline)
    const labels = Metrics.labelsFor(service)
    const success = Metrics.labelsFor(service, { outcome: "success" })
    const failure = Metrics.labelsFor(service, { outcome: "failure" })

    return <A, E, R>(
      self: Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | OperationTimeout | CircuitOpen, R> =>
      Effect.clockWith((clock) =>
        Effect.suspend(() => {
          const startedAt = clock.unsafeCurrentTimeMillis()
          budget?.recordCall(startedAt)
          const attempt = Effect.suspend(() => {
            Metrics.attempts.unsafeUpdate(1, labels)
            return runAttempt(self, timeout, onTimeout, breaker)
          })
          const deadlineAt = deadline === undefined ? undefined : startedAt + Duration.toMillis(deadline)
          const retried = retrying(
            attempt,
            () => retrySchedule(policy, { service, operation: options.operation, deadlineAt, budget })
          )
          const bounded = deadline === undefined
            ? retried
            : timeoutFail(retried, deadline, () =>
              new OperationTimeout({
                service,
                operation: options.operation,
                timeout: deadline,
                message: `${options.operation} did not finish within its deadline of ${formatDuration(deadline)}`
              }))
          // Effect.exit rather than onExit: cheaper, and an interrupted call has no outcome to count.
          return Effect.flatMap(Effect.exit(bounded), (exit) => {
            Metrics.calls.unsafeUpdate(1, exit._tag === "Success" ? success : failure)
            Metrics.callDuration.unsafeUpdate((clock.unsafeCurrentTimeMillis() - startedAt) / 1000, labels)
            return exit
          })
        })
      )
  })

/** A pipeline built by `makeProtect`. */
export type Protector = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | OperationTimeout | CircuitOpen, R>

// Pipelines built by `protect`, per breaker registry, keyed by their options, so that calling
// `protect({...})(effect)` in a loop does not rebuild the pipeline each time.
const protectors = new WeakMap<CircuitBreaker.Service, Map<string, Protector>>()

const cacheKey = (options: ProtectOptions): string | undefined =>
  typeof options.policy === "object"
    ? undefined
    : [
      options.operation,
      options.policy ?? "",
      options.breaker ?? "",
      options.deadline === undefined ? "" : Duration.toMillis(Duration.decode(options.deadline)),
      options.service ?? "",
      options.budget ?? ""
    ].join("\u0000")

/**
 * The standard pipeline around one effect: total deadline → retry (policy) → circuit breaker →
 * per-attempt timeout (operation) → the call. Fails with the call's own error, an
 * `OperationTimeout`, or `CircuitOpen`.
 */
export const protect = (options: ProtectOptions) =>
<A, E, R>(
  self: Effect.Effect<A, E, R>
): Effect.Effect<A, E | OperationTimeout | CircuitOpen, R | ReliabilityConfig | CircuitBreaker.CircuitBreaker> =>
  Effect.flatMap(CircuitBreaker.CircuitBreaker, (registry) => {
    const key = cacheKey(options)
    let cache = protectors.get(registry)
    const cached = key === undefined ? undefined : cache?.get(key)
    if (cached !== undefined) return cached(self)
    return Effect.flatMap(makeProtect(options), (built) => {
      if (key !== undefined) {
        if (cache === undefined) protectors.set(registry, cache = new Map())
        cache.set(key, built)
      }
      return built(self)
    })
  })
