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
import * as Metrics from "./Metrics.js"
import type { OperationId, RetryPolicy, Service as ConfigService } from "./ReliabilityConfig.js"
import { isOperationId, ReliabilityConfig } from "./ReliabilityConfig.js"
import { attempt as runAttempt, timeoutFail } from "./resilience/attempt.js"
import * as Decision from "./resilience/decision.js"

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
} from "./resilience/decision.js"

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

/** Options of `makeProtect` / `protect`. */
export interface ProtectOptions {
  /** The operation the logs and metrics name ("gemini_api"); its configured timeout bounds each attempt. */
  readonly operation: OperationId
  /**
   * The per-attempt timeout, when it is not the operation's own: another operation id (whose
   * configured timeout applies) or a duration. An infinite duration means no per-attempt timeout.
   */
  readonly timeout?: OperationId | Duration.DurationInput | undefined
  /** The retry policy: a name from `ReliabilityConfig` or a `RetryPolicy`. Default: "default". */
  readonly policy?: string | RetryPolicy | undefined
  /** The breaker name ("gemini"); omit for no breaker. */
  readonly breaker?: string | undefined
  /** A total deadline over all attempts and waits, from the start of each call. */
  readonly deadline?: Duration.DurationInput | undefined
  /** The service named in metrics and logs; default: the breaker name, else the operation. */
  readonly service?: string | undefined
  /** Draw retries from the service's retry budget (default: when there is a breaker). */
  readonly budget?: boolean | undefined
  /**
   * Log retries and final failures at Debug rather than Warning / Error: for high-volume paths
   * (event delivery) that report outcomes in aggregate instead.
   */
  readonly quiet?: boolean | undefined
  /** Called before each attempt with its number (1 for the first): for callers that count retries. */
  readonly onAttempt?: ((attempt: number) => void) | undefined
}

/** Options of one protected call. */
export interface CallOptions {
  /**
   * An absolute deadline in ms of the Effect `Clock`, enforced by the caller (an enclosing
   * timeout): no retry starts a wait that would end past it; the call fails at once with its
   * last error instead.
   */
  readonly deadlineAt?: number | undefined
}

/** A pipeline built by `makeProtect`: wraps any number of calls, each with optional `CallOptions`. */
export type Protector = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  options?: CallOptions
) => Effect.Effect<A, E | OperationTimeout | CircuitOpen, R>

/** The per-attempt timeout an option names, or `undefined` for none. */
const attemptTimeoutOf = (
  config: ConfigService,
  options: ProtectOptions
): Duration.Duration | undefined => {
  const given = options.timeout
  const timeout = given === undefined
    ? config.timeoutOf(options.operation)
    : typeof given === "string" && isOperationId(given)
    ? config.timeoutOf(given)
    : Duration.decode(given)
  return Duration.isFinite(timeout) ? timeout : undefined
}

/**
 * Builds the standard pipeline once: total deadline → retry → circuit breaker → per-attempt
 * timeout → the call. Reads configuration and the breaker when built, so each call pays only
 * for the pipeline itself. Every upstream call in big3 goes through a pipeline built here.
 */
export const makeProtect = (
  options: ProtectOptions
): Effect.Effect<Protector, never, ReliabilityConfig | CircuitBreaker.CircuitBreaker> =>
  Effect.gen(function*() {
    const config = yield* ReliabilityConfig
    const registry = yield* CircuitBreaker.CircuitBreaker
    const operation = options.operation
    const service = options.service ?? options.breaker ?? operation
    const policy = typeof options.policy === "object" ? options.policy : config.policyOf(options.policy ?? "default")
    // Resolved per attempt, so that a learned (adaptive) timeout can take the configured one's place.
    const timeout = attemptTimeoutOf(config, options)
    const timeoutLabels = Metrics.labelsFor(service, { operation })
    const onTimeout = () => {
      Metrics.timeouts.unsafeUpdate(1, timeoutLabels)
      return operationTimeout({ operation, timeout: timeout ?? Duration.infinity, service })
    }
    const breaker = options.breaker === undefined ? undefined : registry.get(options.breaker)
    const useBudget = options.budget ?? breaker !== undefined
    const budget = useBudget ? registry.budget(service) : undefined
    const deadline = options.deadline === undefined ? undefined : Duration.decode(options.deadline)
    const deadlineMillis = deadline === undefined ? undefined : Duration.toMillis(deadline)
    const quiet = options.quiet ?? false
    const onAttempt = options.onAttempt
    const labels = Metrics.labelsFor(service)
    const success = Metrics.labelsFor(service, { outcome: "success" })
    const failure = Metrics.labelsFor(service, { outcome: "failure" })
    const deadlineError = deadline === undefined ? undefined : () =>
      new OperationTimeout({
        service,
        operation,
        timeout: deadline,
        message: `${operation} did not finish within its deadline of ${formatDuration(deadline)}`
      })

    return <A, E, R>(
      self: Effect.Effect<A, E, R>,
      call?: CallOptions
    ): Effect.Effect<A, E | OperationTimeout | CircuitOpen, R> =>
      Effect.clockWith((clock) =>
        Effect.suspend(() => {
          const startedAt = clock.unsafeCurrentTimeMillis()
          budget?.recordCall(startedAt)
          let attempts = 0
          const attempt = Effect.suspend(() => {
            attempts++
            onAttempt?.(attempts)
            Metrics.attempts.unsafeUpdate(1, labels)
            return runAttempt(self, timeout, onTimeout, breaker)
          })
          const relativeAt = deadlineMillis === undefined ? undefined : startedAt + deadlineMillis
          const deadlineAt = call?.deadlineAt === undefined
            ? relativeAt
            : relativeAt === undefined
            ? call.deadlineAt
            : Math.min(relativeAt, call.deadlineAt)
          const retried = retrying(
            attempt,
            () => retrySchedule(policy, { service, operation, deadlineAt, budget, quiet })
          )
          const bounded = deadline === undefined || deadlineError === undefined
            ? retried
            : timeoutFail(retried, deadline, deadlineError)
          // Effect.exit rather than onExit: cheaper, and an interrupted call has no outcome to count.
          return Effect.flatMap(Effect.exit(bounded), (exit) => {
            Metrics.calls.unsafeUpdate(1, exit._tag === "Success" ? success : failure)
            Metrics.callDuration.unsafeUpdate((clock.unsafeCurrentTimeMillis() - startedAt) / 1000, labels)
            return exit
          })
        })
      )
  })

/**
 * The standard pipeline around effects: total deadline → retry (policy) → circuit breaker →
 * per-attempt timeout (operation) → the call. Fails with the call's own error, an
 * `OperationTimeout`, or `CircuitOpen`.
 *
 * The pipeline is built from the `ReliabilityConfig` and `CircuitBreaker` of each call's context
 * and kept for the next call with the same pair, so `const p = protect(options)` used in a loop
 * builds it once; prefer `makeProtect` in a service's `make`.
 */
export const protect = (options: ProtectOptions) => {
  const built = new WeakMap<CircuitBreaker.Service, WeakMap<ConfigService, Protector>>()
  return <A, E, R>(
    self: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E | OperationTimeout | CircuitOpen, R | ReliabilityConfig | CircuitBreaker.CircuitBreaker> =>
    Effect.flatMap(CircuitBreaker.CircuitBreaker, (registry) =>
      Effect.flatMap(ReliabilityConfig, (config) => {
        let byConfig = built.get(registry)
        const found = byConfig?.get(config)
        if (found !== undefined) return found(self)
        return Effect.flatMap(makeProtect(options), (protector) => {
          if (byConfig === undefined) built.set(registry, byConfig = new WeakMap())
          byConfig.set(config, protector)
          return protector(self)
        })
      }))
}
