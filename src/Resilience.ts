/**
 * Timeouts, retries and the standard protection pipeline.
 *
 * - `withTimeout(operation)`: the operation's timeout from `ReliabilityConfig`; fails with
 *   `OperationTimeout`.
 * - `withRetry(policy)`: retries only errors with `retryable: true`, on a `Schedule` built from
 *   the policy (exponential, capped, jittered, bounded), honouring server hints and deadlines.
 * - `makeProtect(options)` / `protect(options)`: the one pipeline every upstream call goes
 *   through: total deadline → retry → circuit breaker → per-attempt timeout → the call.
 *
 * Internals: `resilience/decision.ts` (the retry decision, shared with the Promise API),
 * `resilience/retry.ts` (the Schedule, withRetry, the driver), `resilience/attempt.ts` (one
 * attempt: breaker, timer, outcome) and `resilience/pipeline.ts` (makeProtect).
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { OperationTimeout } from "./Errors.js"
import { operationTimeout } from "./Errors.js"
import * as Metrics from "./Metrics.js"
import type { OperationId } from "./ReliabilityConfig.js"
import { ReliabilityConfig } from "./ReliabilityConfig.js"
import { timeoutFail } from "./resilience/attempt.js"

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

// ---------------------------------------------------------------------------------------------
// Retries and the pipeline (resilience/)
// ---------------------------------------------------------------------------------------------

export {
  backoffDelay,
  decide,
  type DecideInput,
  describeDecision,
  type RetryDecision,
  type StopReason
} from "./resilience/decision.js"
export { makeProtect, protect } from "./resilience/pipeline.js"
export type { CallOptions, ProtectOptions, Protector } from "./resilience/pipeline.js"
export { retryDriver, retryOnFailure, retrySchedule, withRetry } from "./resilience/retry.js"
export type { RetryDriver, RetryOptions, RetryStep } from "./resilience/retry.js"
