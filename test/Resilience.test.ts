import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Errors from "../src/Errors.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Resilience from "../src/Resilience.js"

const unavailable = new Errors.ServiceUnavailable({ service: "gemini", message: "gemini answered HTTP 503", status: 503 })
const badRequest = new Errors.InvalidRequest({ service: "gemini", message: "gemini answered HTTP 400", status: 400 })

const noJitter = (overrides: Partial<ReliabilityConfig.RetryPolicy> = {}): ReliabilityConfig.RetryPolicy => ({
  ...ReliabilityConfig.defaultPolicies.gemini,
  jitter: "none",
  ...overrides
})

/**
 * A call that records the clock time of each attempt and fails with `errors[i]` on attempt i
 * (succeeding once the list is exhausted).
 */
const scripted = <E>(errors: ReadonlyArray<E>) =>
  Effect.gen(function*() {
    const times = yield* Ref.make<ReadonlyArray<number>>([])
    const call = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const attempts = yield* Ref.updateAndGet(times, (list) => [...list, now])
      const error = errors[attempts.length - 1]
      if (error !== undefined) return yield* Effect.fail(error)
      return "ok"
    })
    return { call, times: Ref.get(times) }
  })

/** Forks `self`, advances the TestClock by `total` (sleeps on the way run in order), then awaits it. */
const runFor = <A, E, R>(self: Effect.Effect<A, E, R>, total: Duration.DurationInput) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(self)
    yield* TestClock.adjust(total)
    return yield* Fiber.await(fiber)
  })

const gaps = (times: ReadonlyArray<number>) => times.slice(1).map((time, i) => time - times[i]!)

const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

const config = ReliabilityConfig.layerWith({ policies: { gemini: { jitter: "none" } } })
const services = Layer.provideMerge(CircuitBreaker.layer, config)

describe("Resilience.withRetry", () => {
  it.effect("the gemini policy makes exactly 3 calls, waiting 2 s then 4 s (jitter off)", () =>
    Effect.gen(function*() {
      const { call, times } = yield* scripted([unavailable, unavailable, unavailable, unavailable])
      const exit = yield* runFor(Resilience.withRetry("gemini")(call), "20 seconds")
      assert.deepStrictEqual(exit._tag, "Failure")
      assert.deepStrictEqual(yield* times, [0, 2000, 6000])
    }).pipe(Effect.provide(config)))

  it.effect("succeeds on the third call after two transient failures", () =>
    Effect.gen(function*() {
      const { call, times } = yield* scripted([unavailable, unavailable])
      const exit = yield* runFor(Resilience.withRetry(noJitter())(call), "10 seconds")
      assert.deepStrictEqual(exit, Effect.runSync(Effect.exit(Effect.succeed("ok"))))
      assert.deepStrictEqual(gaps(yield* times), [2000, 4000])
    }))

  it.effect("with jitter each wait is within [0.8, 1.2] of 2 s and 4 s", () =>
    Effect.gen(function*() {
      for (let run = 0; run < 5; run++) {
        const { call, times } = yield* scripted([unavailable, unavailable, unavailable])
        yield* runFor(Resilience.withRetry(ReliabilityConfig.defaultPolicies.gemini)(call), "10 seconds")
        const [first, second] = gaps(yield* times)
        assert.isDefined(first)
        assert.isDefined(second)
        assert.isTrue(first! >= 1600 && first! <= 2400, `first wait ${first}`)
        assert.isTrue(second! >= 3200 && second! <= 4800, `second wait ${second}`)
      }
    }))

  it.effect("maxDelay caps every wait", () =>
    Effect.gen(function*() {
      const { call, times } = yield* scripted(Array.from({ length: 10 }, () => unavailable))
      const policy = noJitter({ maxAttempts: 6, maxDelay: Duration.seconds(5) })
      yield* runFor(Resilience.withRetry(policy)(call), "60 seconds")
      assert.deepStrictEqual(gaps(yield* times), [2000, 4000, 5000, 5000, 5000])
    }))

  it.effect("a non-retryable error is tried once", () =>
    Effect.gen(function*() {
      const { call, times } = yield* scripted([badRequest])
      const exit = yield* runFor(Resilience.withRetry(noJitter())(call), "10 seconds")
      assert.deepStrictEqual(Effect.runSync(Effect.either(exit)), Effect.runSync(Effect.either(Effect.fail(badRequest))))
      assert.strictEqual((yield* times).length, 1)
    }))

  it.effect("a Retry-After of 3 s delays the retry by at least 3 s", () =>
    Effect.gen(function*() {
      const limited = new Errors.RateLimited({ service: "gemini", message: "429", retryAfter: Duration.seconds(3) })
      const { call, times } = yield* scripted([limited])
      yield* runFor(Resilience.withRetry(noJitter({ initialDelay: Duration.seconds(1) }))(call), "10 seconds")
      assert.deepStrictEqual(gaps(yield* times), [3000])
    }))

  it.effect("a hint longer than maxDelay waits maxDelay", () =>
    Effect.gen(function*() {
      const limited = new Errors.RateLimited({ service: "gemini", message: "429", retryAfter: Duration.minutes(5) })
      const { call, times } = yield* scripted([limited])
      yield* runFor(Resilience.withRetry(noJitter({ maxDelay: Duration.seconds(10) }))(call), "20 seconds")
      assert.deepStrictEqual(gaps(yield* times), [10_000])
    }))

  it.effect("logs each retry with attempt n/N and the wait, and the final failure", () =>
    Effect.gen(function*() {
      const { lines, layer } = captureLogs()
      const { call } = yield* scripted([unavailable, unavailable, unavailable])
      yield* runFor(
        Resilience.withRetry(noJitter(), { operation: "gemini_api" })(call).pipe(Effect.provide(layer)),
        "10 seconds"
      )
      assert.deepStrictEqual(lines, [
        "WARN gemini_api attempt 1/3 failed: ServiceUnavailable: gemini answered HTTP 503; retrying in 2.0s",
        "WARN gemini_api attempt 2/3 failed: ServiceUnavailable: gemini answered HTTP 503; retrying in 4.0s",
        "ERROR gemini_api attempt 3/3 failed: ServiceUnavailable: gemini answered HTTP 503; giving up"
      ])
    }))

  it.effect("retryOnFailure is the same as a plain function", () =>
    Effect.gen(function*() {
      const { call, times } = yield* scripted([unavailable])
      const exit = yield* runFor(Resilience.retryOnFailure(call, { policy: noJitter() }), "5 seconds")
      assert.strictEqual(exit._tag, "Success")
      assert.deepStrictEqual(gaps(yield* times), [2000])
    }))
})

describe("Resilience.withTimeout", () => {
  it.effect("agent_creation fails at 60 s and not before", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Resilience.withTimeout("agent_creation")(Effect.never))
      yield* TestClock.adjust("59999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)), "still running at 59.999 s")
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(error._tag, "OperationTimeout")
      assert.strictEqual(error.message, "agent_creation timed out after 60s")
      assert.strictEqual(Duration.toMillis(error.timeout), 60_000)
    }).pipe(Effect.provide(ReliabilityConfig.layerDefault)))

  it.effect("interrupts the timed-out effect", () =>
    Effect.gen(function*() {
      const interrupted = yield* Ref.make(false)
      const fiber = yield* Effect.fork(
        Resilience.withTimeout("db_query")(Effect.never.pipe(Effect.onInterrupt(() => Ref.set(interrupted, true))))
      )
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.await(fiber)
      assert.isTrue(yield* Ref.get(interrupted))
    }).pipe(Effect.provide(ReliabilityConfig.layerDefault)))

  it.live("on the live clock, a fast effect passes and a slow one is cut", () =>
    Effect.gen(function*() {
      const fast = yield* Resilience.timeoutAfter("1 second", "fast_op")(Effect.succeed(1))
      assert.strictEqual(fast, 1)
      const interrupted = yield* Ref.make(false)
      const slow = Effect.sleep("5 seconds").pipe(Effect.onInterrupt(() => Ref.set(interrupted, true)))
      const error = yield* Effect.flip(Resilience.timeoutAfter("20 millis", "slow_op")(slow))
      assert.strictEqual(error.message, "slow_op timed out after 20ms")
      assert.isTrue(yield* Ref.get(interrupted))
    }))
})

describe("Resilience.retryDriver", () => {
  it.effect("next gives the waits, then None; reset starts over", () =>
    Effect.gen(function*() {
      const driver = yield* Resilience.retryDriver(noJitter())
      const waits = [yield* driver.next(unavailable), yield* driver.next(unavailable), yield* driver.next(unavailable)]
      assert.deepStrictEqual(waits.map(Option.map(Duration.toMillis)), [Option.some(2000), Option.some(4000), Option.none()])
      assert.strictEqual(yield* driver.attempt, 3)
      yield* driver.reset
      assert.deepStrictEqual(Option.map(yield* driver.next(unavailable), Duration.toMillis), Option.some(2000))
      assert.isTrue(Option.isNone(yield* driver.next(badRequest)))
    }))
})

describe("Resilience.protect", () => {
  it.effect("retries through the breaker with a per-attempt timeout", () =>
    Effect.gen(function*() {
      const { call, times } = yield* scripted([unavailable])
      const started = yield* Ref.make(0)
      const hangingOnce = Effect.gen(function*() {
        const count = yield* Ref.getAndUpdate(started, (n) => n + 1)
        return count === 0 ? yield* Effect.never : yield* call
      })
      const protect = Resilience.protect({ operation: "gemini_api", policy: "gemini", breaker: "gemini" })
      const exit = yield* runFor(protect(hangingOnce), "60 seconds")
      // attempt 1 hangs and is cut at 45 s; attempt 2 fails (503); attempt 3 succeeds.
      assert.strictEqual(exit._tag, "Success")
      assert.deepStrictEqual(yield* times, [47_000, 51_000])
    }).pipe(Effect.provide(services)))

  it.effect("a hint beyond the deadline fails now with that error", () =>
    Effect.gen(function*() {
      const limited = new Errors.RateLimited({ service: "gemini", message: "429", retryAfter: Duration.seconds(30) })
      const { call, times } = yield* scripted([limited])
      const protect = Resilience.protect({ operation: "gemini_api", policy: "gemini", deadline: "10 seconds" })
      const fiber = yield* Effect.fork(protect(call))
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(error._tag, "RateLimited")
      assert.strictEqual((yield* times).length, 1)
    }).pipe(Effect.provide(services)))

  it.effect("the total deadline cuts a slow sequence of attempts", () =>
    Effect.gen(function*() {
      const protect = Resilience.protect({ operation: "gemini_api", policy: "gemini", deadline: "5 seconds" })
      const exit = yield* runFor(protect(Effect.never), "6 seconds")
      const error = Effect.runSync(Effect.flip(exit))
      assert.strictEqual(error._tag, "OperationTimeout")
      assert.include(error.message, "deadline of 5s")
    }).pipe(Effect.provide(services)))

  it.effect("5 failures open the breaker; the 6th call is refused without running", () =>
    Effect.gen(function*() {
      const calls = yield* Ref.make(0)
      const failing = Effect.zipRight(Ref.update(calls, (n) => n + 1), Effect.fail(unavailable))
      const protect = Resilience.protect({
        operation: "gemini_api",
        policy: noJitter({ maxAttempts: 1 }),
        breaker: "gemini"
      })
      for (let i = 0; i < 5; i++) yield* Effect.flip(protect(failing))
      const error = yield* Effect.flip(protect(failing))
      assert.strictEqual(error._tag, "CircuitOpen")
      assert.strictEqual(yield* Ref.get(calls), 5)
      assert.strictEqual(yield* CircuitBreaker.state("gemini"), "open")
    }).pipe(Effect.provide(services)))
})
