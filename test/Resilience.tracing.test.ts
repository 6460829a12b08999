import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import * as Tracer from "effect/Tracer"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Errors from "../src/Errors.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Resilience from "../src/Resilience.js"

/** A tracer that keeps every span it makes (Effect's own spans, recorded). */
const recordingTracer = () => {
  const builtIn = Context.get(DefaultServices.liveServices, Tracer.Tracer)
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind, options) => {
      const span = builtIn.span(name, parent, context, links, startTime, kind, options)
      spans.push(span)
      return span
    },
    context: (f) => f()
  })
  return { tracer, spans }
}

const services = Layer.provideMerge(
  CircuitBreaker.layer,
  ReliabilityConfig.layerWith({ policies: { gemini: { ...ReliabilityConfig.defaultPolicies.gemini, jitter: "none" } } })
)

const unavailable = new Errors.ServiceUnavailable({ service: "gemini", message: "gemini answered HTTP 503", status: 503 })

const attributesOf = (span: Tracer.Span) => Object.fromEntries(span.attributes)
const parentName = (span: Tracer.Span) =>
  Option.match(span.parent, { onNone: () => undefined, onSome: (parent) => parent._tag === "Span" ? parent.name : "external" })

describe("Resilience tracing", () => {
  it.effect("a protected call is one span with a child per attempt: number, outcome, error tag, retry delay, breaker state", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const failures = yield* Ref.make(0)
      const call = Effect.flatMap(Ref.getAndUpdate(failures, (n) => n + 1), (n) => n < 2 ? Effect.fail(unavailable) : Effect.succeed("ok"))
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "gemini", breaker: "gemini" })
      const fiber = yield* Effect.fork(Effect.withTracer(protect(call), tracer))
      yield* TestClock.adjust("2 seconds")
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(yield* Fiber.join(fiber), "ok")

      assert.deepStrictEqual(spans.map((span) => [span.name, parentName(span)]), [
        ["protect gemini_api", undefined],
        ["attempt gemini_api", "protect gemini_api"],
        ["attempt gemini_api", "protect gemini_api"],
        ["attempt gemini_api", "protect gemini_api"]
      ])
      assert.deepStrictEqual(spans.map(attributesOf), [
        { "big3.operation": "gemini_api", "big3.service": "gemini", "big3.attempts": 3, "big3.outcome": "success" },
        { "big3.operation": "gemini_api", "big3.attempt": 1, "big3.breaker.state": "closed", "big3.outcome": "failure", "big3.error.tag": "ServiceUnavailable" },
        { "big3.operation": "gemini_api", "big3.attempt": 2, "big3.breaker.state": "closed", "big3.retry.delay_ms": 2000, "big3.outcome": "failure", "big3.error.tag": "ServiceUnavailable" },
        { "big3.operation": "gemini_api", "big3.attempt": 3, "big3.breaker.state": "closed", "big3.retry.delay_ms": 4000, "big3.outcome": "success" }
      ])
      assert.isTrue(spans.every((span) => span.status._tag === "Ended"))
    }).pipe(Effect.provide(services)))

  it.effect("a call refused by an open breaker has one attempt span tagged CircuitOpen, with the breaker's state", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const once = { ...ReliabilityConfig.defaultPolicies.gemini, maxAttempts: 1 }
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: once, breaker: "gemini" })
      // Five failures open the gemini breaker (untraced: the built-in tracer).
      for (let i = 0; i < 5; i++) yield* Effect.exit(protect(Effect.fail(unavailable)))
      const exit = yield* Effect.exit(Effect.withTracer(protect(Effect.succeed(1)), tracer))
      assert.isTrue(exit._tag === "Failure")
      assert.deepStrictEqual(spans.map(attributesOf), [
        { "big3.operation": "gemini_api", "big3.service": "gemini", "big3.attempts": 1, "big3.outcome": "failure", "big3.error.tag": "CircuitOpen" },
        { "big3.operation": "gemini_api", "big3.attempt": 1, "big3.breaker.state": "open", "big3.outcome": "failure", "big3.error.tag": "CircuitOpen" }
      ])
    }).pipe(Effect.provide(services)))

  it.effect("no spans are made under Effect's built-in tracer or with tracing disabled", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recordingTracer()
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "gemini", breaker: "gemini" })
      yield* Effect.withTracerEnabled(Effect.withTracer(protect(Effect.succeed(1)), tracer), false)
      assert.deepStrictEqual(spans, [])
      // The built-in tracer: the call's own span (if any) is the caller's, not one of ours.
      const seen = yield* protect(Effect.currentSpan.pipe(Effect.option))
      assert.isTrue(Option.isNone(seen))
    }).pipe(Effect.provide(services)))
})
