import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Errors from "../src/Errors.js"
import * as Metrics from "../src/Metrics.js"
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

  it.effect("with jitter each wait is scaled by 0.8 + 0.4 × a random draw (draws 0 and 0.75: 1.6 s, 4.4 s)", () =>
    Effect.gen(function*() {
      const { call, times } = yield* scripted([unavailable, unavailable, unavailable])
      yield* runFor(
        Resilience.withRetry(ReliabilityConfig.defaultPolicies.gemini)(call).pipe(Effect.withRandomFixed([0, 0.75])),
        "10 seconds"
      )
      // Without jitter these would be 2000 and 4000.
      assert.deepStrictEqual(gaps(yield* times), [1600, 4400])
    }))

  it.effect("jittered waits stay within maxDelay", () =>
    Effect.gen(function*() {
      const { call, times } = yield* scripted([unavailable, unavailable, unavailable])
      const policy = { ...ReliabilityConfig.defaultPolicies.gemini, maxDelay: Duration.seconds(3) }
      yield* runFor(Resilience.withRetry(policy)(call).pipe(Effect.withRandomFixed([0.999, 0.999])), "10 seconds")
      // 2 s × 1.1996 = 2399.2 ms, then 4 s × 1.1996 capped at 3 s.
      assert.deepStrictEqual(gaps(yield* times).map(Math.round), [2399, 3000])
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

  it.effect("a hint longer than maxDelay fails now with the server's error, and the log says when to come back", () =>
    Effect.gen(function*() {
      const { lines, layer } = captureLogs()
      const limited = new Errors.RateLimited({ service: "gemini", message: "429", retryAfter: Duration.minutes(5) })
      const { call, times } = yield* scripted([limited])
      const fiber = yield* Effect.fork(
        Resilience.withRetry(noJitter({ maxDelay: Duration.seconds(10) }), { operation: "gemini_api" })(call).pipe(
          Effect.provide(layer)
        )
      )
      // No clock time passes: the call fails before any wait.
      const exit = yield* Fiber.await(fiber)
      assert.deepStrictEqual(exit, Exit.fail(limited))
      assert.deepStrictEqual(yield* times, [0])
      assert.deepStrictEqual(lines, [
        "WARN gemini_api attempt 1/3 failed: RateLimited: 429; the server asks to wait 300s " +
        "(until 1970-01-01T00:05:00.000Z), longer than the policy's maxDelay of 10s; failing now"
      ])
    }))

  it.effect("a hint of a day (Retry-After: 86400) is not waited for 60 s and retried: one call, failed at once", () =>
    Effect.gen(function*() {
      const limited = Errors.fromHttp({ service: "gemini", status: 429, headers: { "retry-after": "86400" } })
      const { call, times } = yield* scripted([limited, limited, limited])
      const exit = yield* Fiber.await(yield* Effect.fork(Resilience.withRetry("gemini")(call)))
      assert.deepStrictEqual(exit, Exit.fail(limited))
      assert.deepStrictEqual(yield* times, [0])
    }).pipe(Effect.provide(config)))

  it.effect("an HTTP error whose message says the wait and its end: the line says it once", () =>
    Effect.gen(function*() {
      const { lines, layer } = captureLogs()
      const limited = Errors.fromHttp({ service: "gemini", status: 429, headers: { "retry-after": "300" }, now: 0 })
      const { call } = yield* scripted([limited])
      const exit = yield* Fiber.await(
        yield* Effect.fork(
          Resilience.withRetry(noJitter({ maxDelay: Duration.seconds(10) }), { operation: "gemini_api" })(call).pipe(
            Effect.provide(layer)
          )
        )
      )
      assert.deepStrictEqual(exit, Exit.fail(limited))
      assert.deepStrictEqual(lines, [
        "WARN gemini_api attempt 1/3 failed: RateLimited: gemini answered HTTP 429; it asks to wait 300s " +
        "(until 1970-01-01T00:05:00.000Z); that is longer than the policy's maxDelay of 10s; failing now"
      ])
    }))

  it.effect("a hint equal to maxDelay is waited", () =>
    Effect.gen(function*() {
      const limited = new Errors.RateLimited({ service: "gemini", message: "429", retryAfter: Duration.seconds(10) })
      const { call, times } = yield* scripted([limited])
      yield* runFor(Resilience.withRetry(noJitter({ maxDelay: Duration.seconds(10) }))(call), "20 seconds")
      assert.deepStrictEqual(gaps(yield* times), [10_000])
    }))

  it.effect("the retry driver stops on a hint beyond maxDelay too (the Realtime reconnect loop)", () =>
    Effect.gen(function*() {
      const driver = yield* Resilience.retryDriver(noJitter({ maxDelay: Duration.seconds(10) }))
      const limited = new Errors.RateLimited({ service: "realtime", message: "429", retryAfter: Duration.seconds(11) })
      const next = yield* driver.next(limited)
      assert.strictEqual(Option.isNone(next), true)
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
      // Plain values: deepStrictEqual does not tell Option.some from Option.none here.
      assert.deepStrictEqual(waits.map((wait) => Option.getOrUndefined(Option.map(wait, Duration.toMillis))), [2000, 4000, undefined])
      assert.strictEqual(yield* driver.attempt, 3)
      yield* driver.reset
      assert.strictEqual(Option.getOrUndefined(Option.map(yield* driver.next(unavailable), Duration.toMillis)), 2000)
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

describe("Resilience.makeProtect options", () => {
  it.effect("timeout: another operation id or a duration bounds each attempt instead of the operation's", () =>
    Effect.gen(function*() {
      const byId = yield* Resilience.makeProtect({ operation: "gemini_api", timeout: "db_query", policy: noJitter({ maxAttempts: 1 }) })
      const byDuration = yield* Resilience.makeProtect({ operation: "gemini_api", timeout: "250 millis", policy: noJitter({ maxAttempts: 1 }) })
      const first = yield* Effect.flip(yield* runFor(byId(Effect.never), "5 seconds"))
      assert.strictEqual(first._tag, "OperationTimeout")
      assert.strictEqual(first.message, "gemini_api timed out after 5s")
      const second = yield* Effect.flip(yield* runFor(byDuration(Effect.never), "250 millis"))
      assert.strictEqual(second.message, "gemini_api timed out after 250ms")
    }).pipe(Effect.provide(services)))

  it.effect("deadlineAt of a call: no retry waits past it; the call fails with its last error", () =>
    Effect.gen(function*() {
      const { call, times } = yield* scripted([unavailable, unavailable])
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "gemini" })
      // The first wait (2 s) ends before 3 s, the second (4 s) would end at 6 s: stop then.
      const exit = yield* runFor(protect(call, { deadlineAt: 3_000 }), "10 seconds")
      assert.strictEqual(Effect.runSync(Effect.flip(exit))._tag, "ServiceUnavailable")
      assert.deepStrictEqual(yield* times, [0, 2000])
    }).pipe(Effect.provide(services)))

  it.effect("quiet logs retries and the final failure at Debug", () =>
    Effect.gen(function*() {
      const { layer, lines } = captureLogs()
      const { call } = yield* scripted([unavailable, unavailable, unavailable])
      const loud = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "gemini" })
      const quiet = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "gemini", quiet: true })
      yield* runFor(quiet(call).pipe(Effect.provide(layer), Logger.withMinimumLogLevel(LogLevel.Debug)), "10 seconds")
      const levels = () => lines.filter((line) => line.includes("gemini_api attempt")).map((line) => line.split(" ")[0])
      assert.deepStrictEqual(levels(), ["DEBUG", "DEBUG", "DEBUG"])
      lines.length = 0
      const again = yield* scripted([unavailable, unavailable, unavailable])
      yield* runFor(loud(again.call).pipe(Effect.provide(layer), Logger.withMinimumLogLevel(LogLevel.Debug)), "10 seconds")
      assert.deepStrictEqual(levels(), ["WARN", "WARN", "ERROR"])
    }).pipe(Effect.provide(services)))

  it.effect("onAttempt sees every attempt's number; budget: false keeps a breaker's calls out of the budget", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const { call } = yield* scripted([unavailable, unavailable])
      const protect = yield* Resilience.makeProtect({
        operation: "gemini_api",
        policy: "gemini",
        breaker: "gemini",
        budget: false,
        onAttempt: (n) => seen.push(n)
      })
      const exit = yield* runFor(protect(call), "10 seconds")
      assert.strictEqual(exit._tag, "Success")
      assert.deepStrictEqual(seen, [1, 2, 3])
      const rejected = yield* Metric.value(Metrics.budgetRejections.pipe(Metric.tagged("service", "gemini")))
      assert.strictEqual(rejected.count, 0)
    }).pipe(Effect.provide(services)))

  it.effect("an attempt's FiberRef changes are kept, as with inline code (TestClock)", () =>
    Effect.gen(function*() {
      const ref = FiberRef.unsafeMake("outside")
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "gemini" })
      const call = Effect.zipRight(FiberRef.set(ref, "inside"), Effect.sleep("1 second"))
      const seen = yield* runFor(Effect.zipRight(protect(call), FiberRef.get(ref)), "1 second")
      assert.deepStrictEqual(seen, Exit.succeed("inside"))
    }).pipe(Effect.provide(services)))

  it.live("an attempt's FiberRef changes are kept on the live clock too: one code path for both clocks", () =>
    Effect.gen(function*() {
      const ref = FiberRef.unsafeMake("outside")
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "gemini" })
      yield* protect(Effect.zipRight(FiberRef.set(ref, "inside"), Effect.sleep("1 millis")))
      assert.strictEqual(yield* FiberRef.get(ref), "inside")
    }).pipe(Effect.provide(services)))

  it.effect("a timed-out attempt leaves the caller's fiber running: the call fails and the caller goes on", () =>
    Effect.gen(function*() {
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: noJitter({ maxAttempts: 1 }) })
      const caller = Effect.gen(function*() {
        const error = yield* Effect.flip(protect(Effect.never))
        yield* Effect.sleep("1 second")
        return error._tag
      })
      assert.deepStrictEqual(yield* runFor(caller, "46 seconds"), Exit.succeed("OperationTimeout"))
    }).pipe(Effect.provide(services)))

  it.effect("a timed-out attempt does not interrupt fibers the caller forked before it", () =>
    Effect.gen(function*() {
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: noJitter({ maxAttempts: 1 }) })
      const caller = Effect.gen(function*() {
        const background = yield* Effect.fork(Effect.never)
        const error = yield* Effect.flip(protect(Effect.never))
        // An interruption would reach it as a message: give it every chance to arrive.
        yield* Effect.repeatN(Effect.yieldNow(), 50)
        const alive = Option.isNone(yield* Fiber.poll(background))
        yield* Fiber.interrupt(background)
        return [error._tag, alive] as const
      })
      assert.deepStrictEqual(yield* runFor(caller, "46 seconds"), Exit.succeed(["OperationTimeout", true] as const))
    }).pipe(Effect.provide(services)))

  it.effect("interrupting the caller during an attempt interrupts the call; it is not taken for a timeout", () =>
    Effect.gen(function*() {
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "gemini" })
      const fiber = yield* Effect.fork(protect(Effect.never))
      yield* TestClock.adjust("10 seconds")
      const exit = yield* Fiber.interrupt(fiber)
      assert.isTrue(Exit.isInterrupted(exit))
    }).pipe(Effect.provide(services)))
})

describe("Resilience.protect", () => {
  it.effect("uses the ReliabilityConfig provided to each call, not the first one it saw", () =>
    Effect.gen(function*() {
      const protect = Resilience.protect({ operation: "gemini_api", policy: "gemini" })
      const registry = yield* CircuitBreaker.CircuitBreaker
      const withTimeout = (seconds: number) =>
        protect(Effect.never).pipe(
          Effect.provide(ReliabilityConfig.layerWith({
            timeouts: { gemini_api: seconds },
            policies: { gemini: { maxAttempts: 1 } }
          })),
          Effect.provideService(CircuitBreaker.CircuitBreaker, registry),
          Effect.flip
        )
      const first = yield* Effect.fork(withTimeout(10))
      const second = yield* Effect.fork(withTimeout(20))
      yield* TestClock.adjust("20 seconds")
      assert.strictEqual((yield* Fiber.join(first)).message, "gemini_api timed out after 10s")
      assert.strictEqual((yield* Fiber.join(second)).message, "gemini_api timed out after 20s")
    }).pipe(Effect.provide(services)))
})
