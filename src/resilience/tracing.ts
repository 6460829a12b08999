/**
 * Spans of the protection pipeline: one per protected call, with one child per attempt.
 *
 * Spans are made only when they go somewhere: tracing enabled and a tracer installed other than
 * Effect's built-in one, which records nowhere (`Telemetry.layer` installs an exporting one when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` is set; an app may install its own). A built-in span costs tens
 * of microseconds a call here; the check costs a map lookup (see `npm run bench`).
 *
 * Attributes: the call has `big3.operation`, `big3.service`, and at its end `big3.attempts`,
 * `big3.outcome` and `big3.error.tag`; an attempt has `big3.attempt` (1 for the first),
 * `big3.breaker.state` at its admission, `big3.retry.delay_ms` (the wait before it, from the
 * second on), and at its end `big3.outcome` ("success" or "failure") and `big3.error.tag`.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import type * as Tracer from "effect/Tracer"

export { isTracing } from "../internal/tracing.js"

/** The error's tag ("RateLimited"), "interrupted", or "defect"; undefined on success. */
const errorTagOf = <A, E>(exit: Exit.Exit<A, E>): string | undefined => {
  if (exit._tag === "Success") return undefined
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    const error: unknown = failure.value
    return Predicate.hasProperty(error, "_tag") && typeof error._tag === "string" ? error._tag : "failure"
  }
  return Cause.isInterruptedOnly(exit.cause) ? "interrupted" : "defect"
}

const outcomeOf = <A, E>(exit: Exit.Exit<A, E>): Record<string, unknown> => {
  const tag = errorTagOf(exit)
  return tag === undefined ? { "big3.outcome": "success" } : { "big3.outcome": "failure", "big3.error.tag": tag }
}

const spanOptions = (attributes: Record<string, unknown>): Tracer.SpanOptions => ({
  attributes,
  kind: "internal",
  // A stack trace per span costs more than the span itself.
  captureStackTrace: false
})

/** `self` as a protected call's span, `protect {operation}`. */
export const call = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  operation: string,
  service: string,
  attempts: () => number
): Effect.Effect<A, E, R> =>
  Effect.withSpan(
    Effect.onExit(self, (exit) => Effect.annotateCurrentSpan({ "big3.attempts": attempts(), ...outcomeOf(exit) })),
    `protect ${operation}`,
    spanOptions({ "big3.operation": operation, "big3.service": service })
  )

/** `self` as one attempt's span, `attempt {operation}`, a child of the call's. */
export const attempt = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  operation: string,
  details: {
    readonly attempt: number
    readonly breakerState: string | undefined
    readonly retryDelayMillis: number | undefined
  }
): Effect.Effect<A, E, R> => {
  const attributes: Record<string, unknown> = { "big3.operation": operation, "big3.attempt": details.attempt }
  if (details.breakerState !== undefined) attributes["big3.breaker.state"] = details.breakerState
  if (details.retryDelayMillis !== undefined) attributes["big3.retry.delay_ms"] = details.retryDelayMillis
  return Effect.withSpan(
    Effect.onExit(self, (exit) => Effect.annotateCurrentSpan(outcomeOf(exit))),
    `attempt ${operation}`,
    spanOptions(attributes)
  )
}
