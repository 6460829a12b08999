/**
 * Spans that cost nothing when nobody records them. Effect's built-in tracer keeps spans nowhere,
 * yet one of its spans costs tens of microseconds; so big3's hot paths make spans only when
 * tracing is enabled and another tracer is installed (`Telemetry.layer`'s OpenTelemetry one, or
 * an app's own).
 *
 * @internal
 */
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Tracer from "effect/Tracer"

const builtInTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

/** True when a span made in `fiber` would be recorded by someone. */
export const isTracing = (fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean =>
  fiber.getFiberRef(FiberRef.currentTracerEnabled) &&
  Context.get(fiber.currentDefaultServices, Tracer.Tracer) !== builtInTracer

/** `Effect.withSpan` without a stack trace (it costs more than the span), made only when recorded. */
export const withSpanWhenTraced = (name: string, attributes: Record<string, unknown> = {}) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((fiber) =>
    isTracing(fiber) ? Effect.withSpan(self, name, { attributes, captureStackTrace: false }) : self
  )
