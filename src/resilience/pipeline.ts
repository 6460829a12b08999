/**
 * The standard pipeline, built once by `makeProtect`: total deadline → retry → circuit breaker →
 * per-attempt timeout → the call. Every upstream call in big3 goes through a pipeline built here.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type { AdaptiveTimeout, Pacer } from "../adaptive/Handles.js"
import { Adaptive } from "../adaptive/Service.js"
import * as CircuitBreaker from "../CircuitBreaker.js"
import type { CircuitOpen } from "../Errors.js"
import { formatDuration, OperationTimeout, operationTimeout } from "../Errors.js"
import * as Metrics from "../Metrics.js"
import type { OperationId, RetryPolicy, Service as ConfigService } from "../ReliabilityConfig.js"
import { isOperationId, ReliabilityConfig } from "../ReliabilityConfig.js"
import { adaptedAttempt } from "./adaptive.js"
import { attemptIn as runAttempt, onOutcome, timeoutFail } from "./attempt.js"
import { retrying, retrySchedule } from "./retry.js"
import * as Tracing from "./tracing.js"

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

/** What every attempt of a pipeline shares: built once by `makeProtect`. */
interface Attempts {
  readonly operation: OperationId
  readonly labels: ReadonlyArray<MetricLabel.MetricLabel>
  readonly onAttempt: ((attempt: number) => void) | undefined
  /** No adaptation: the configured timeout, no pacing. */
  readonly plain: boolean
  readonly configured: Duration.Duration | undefined
  readonly onConfiguredTimeout: () => OperationTimeout
  readonly timeoutError: (timeout: Duration.Duration | undefined) => () => OperationTimeout
  readonly breaker: CircuitBreaker.Breaker | undefined
  readonly learned: AdaptiveTimeout | undefined
  readonly pacer: Pacer | undefined
}

/** One call's attempts: a class rather than closures, since one is made per call. */
class Call<A, E, R> {
  attempts = 0
  lastEndedAt: number | undefined = undefined
  constructor(
    readonly shared: Attempts,
    readonly self: Effect.Effect<A, E, R>,
    readonly clock: Clock.Clock,
    readonly traced: boolean
  ) {}

  /** Starts the next attempt in `fiber`, the fiber that runs it (admission and counting happen now). */
  attempt(fiber: Fiber.RuntimeFiber<unknown, unknown>): Effect.Effect<A, E | OperationTimeout | CircuitOpen, R> {
    const { clock, self, shared } = this
    const { breaker, configured, operation } = shared
    const attempts = ++this.attempts
    shared.onAttempt?.(attempts)
    Metrics.attempts.unsafeUpdate(1, shared.labels)
    const run = shared.plain
      ? runAttempt(fiber, clock, self, configured, shared.onConfiguredTimeout, breaker)
      : adaptedAttempt(
        (timeout) => runAttempt(fiber, clock, self, timeout, shared.timeoutError(timeout), breaker),
        clock,
        operation,
        configured,
        shared.learned,
        shared.pacer
      )
    if (!this.traced) return run
    const now = clock.unsafeCurrentTimeMillis()
    const spanned = Tracing.attempt(run, operation, {
      attempt: attempts,
      breakerState: breaker?.state(now),
      retryDelayMillis: this.lastEndedAt === undefined ? undefined : now - this.lastEndedAt
    })
    return Effect.ensuring(spanned, Effect.sync(() => (this.lastEndedAt = clock.unsafeCurrentTimeMillis())))
  }
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
    // The per-attempt timeout is looked up at each attempt, so that a learned (adaptive) timeout
    // can take the configured one's place without rebuilding the pipeline.
    const configured = attemptTimeoutOf(config, options)
    const adaptive = Option.getOrUndefined(yield* Effect.serviceOption(Adaptive))
    const builtAt = yield* Clock.currentTimeMillis
    const learned = configured === undefined ? undefined : adaptive?.timeoutFor(operation, configured, service, builtAt)
    const pacer = adaptive?.pacerFor(service, builtAt)
    const timeoutLabels = Metrics.labelsFor(service, { operation })
    const onTimeoutAfter = (timeout: Duration.Duration) => () => {
      Metrics.timeouts.unsafeUpdate(1, timeoutLabels)
      return operationTimeout({ operation, timeout, service })
    }
    const onConfiguredTimeout = onTimeoutAfter(configured ?? Duration.infinity)
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

    const plain = learned === undefined && pacer === undefined
    const timeoutError = (timeout: Duration.Duration | undefined) =>
      timeout === configured || timeout === undefined ? onConfiguredTimeout : onTimeoutAfter(timeout)
    const scheduleUntil = (deadlineAt: number | undefined) => () =>
      retrySchedule(policy, { service, operation, deadlineAt, budget, quiet })
    const scheduleWithoutDeadline = scheduleUntil(undefined)

    const attempts: Attempts = {
      operation,
      labels,
      onAttempt,
      plain,
      configured,
      onConfiguredTimeout,
      timeoutError,
      breaker,
      learned,
      pacer
    }

    return <A, E, R>(
      self: Effect.Effect<A, E, R>,
      options?: CallOptions
    ): Effect.Effect<A, E | OperationTimeout | CircuitOpen, R> =>
      Effect.withFiberRuntime((fiber) => {
        const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
        // Spans only when a tracer records them: otherwise the call pays for this check alone.
        const traced = Tracing.isTracing(fiber)
        const startedAt = clock.unsafeCurrentTimeMillis()
        budget?.recordCall(startedAt)
        const call = new Call(attempts, self, clock, traced)
        const relativeAt = deadlineMillis === undefined ? undefined : startedAt + deadlineMillis
        const deadlineAt = options?.deadlineAt === undefined
          ? relativeAt
          : relativeAt === undefined
          ? options.deadlineAt
          : Math.min(relativeAt, options.deadlineAt)
        // An attempt runs in the fiber that runs it: a deadline may move the attempts to a fiber of
        // their own. Without one, the first attempt starts now, in this fiber (this runs when the
        // call does), which spares a step per call.
        const next = Effect.withFiberRuntime<A, E | OperationTimeout | CircuitOpen, R>((running) => call.attempt(running))
        const retried = retrying(
          deadline === undefined ? call.attempt(fiber) : next,
          next,
          deadlineAt === undefined ? scheduleWithoutDeadline : scheduleUntil(deadlineAt)
        )
        const bounded = deadline === undefined || deadlineError === undefined
          ? retried
          : timeoutFail(retried, deadline, deadlineError)
        // Not onExit: cheaper, and an interrupted call has no outcome to count.
        const counted = onOutcome(bounded, (exit) => {
          Metrics.calls.unsafeUpdate(1, exit._tag === "Success" ? success : failure)
          Metrics.callDuration.unsafeUpdate((clock.unsafeCurrentTimeMillis() - startedAt) / 1000, labels)
          return exit
        })
        return traced ? Tracing.call(counted, operation, service, () => call.attempts) : counted
      })
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

