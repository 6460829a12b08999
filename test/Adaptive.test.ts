import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Adaptive from "../src/Adaptive.js"
import { bucketOf, LatencyWindow, upperBoundOf } from "../src/adaptive/LatencyWindow.js"
import { RateLimiter } from "../src/adaptive/RateLimiter.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { formatDuration, OperationTimeout, RateLimited } from "../src/Errors.js"
import * as Metrics from "../src/Metrics.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Resilience from "../src/Resilience.js"
import * as Store from "../src/Store.js"
import { captureLogs } from "./support/capture.js"
import { seeded } from "./support/seeded.js"

/** Seeded log-normal latencies in whole ms: median 20 ms, p99 ≈ 80 ms. */
const seededLatencies = (seed: number) => {
  const random = seeded(seed)
  return { ...random, latency: (median: number) => Math.max(1, Math.round(random.lognormal(median, 0.596))) }
}

/** The exact p99 of `values` (nearest rank). */
const p99Of = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.ceil(0.99 * sorted.length) - 1]!
}

/** Timeouts may go down to 1 ms here, so floors of a few ms show what the learner does below 0.1 s. */
const configWith = (adaptive: ReliabilityConfig.AdaptiveOverride, timeout: number = 45) =>
  ReliabilityConfig.layerWith({
    timeouts: { gemini_api: timeout },
    timeoutBounds: { min: "1 millis" },
    policies: { once: { maxAttempts: 1 } },
    adaptive
  })

/** Config, breakers and the adaptive service, in memory. */
const adaptiveLayer = (adaptive: ReliabilityConfig.AdaptiveOverride, timeout?: number) =>
  Layer.mergeAll(Adaptive.layer, CircuitBreaker.layer).pipe(Layer.provideMerge(configWith(adaptive, timeout)))

/**
 * Runs one call per latency, all at once, each taking its latency on the `TestClock`: one
 * `TestClock.adjust` wakes each sleep at its own instant, so each call sees its own latency.
 */
const feedAtOnce = (protect: Resilience.Protector, latencies: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    const calls = yield* Effect.forEach(latencies, (millis) => Effect.fork(protect(Effect.sleep(Duration.millis(millis)))))
    yield* TestClock.adjust(Duration.millis(Math.max(...latencies)))
    yield* Effect.forEach(calls, Fiber.join, { discard: true })
  })

const currentTimeout = (operation: string) =>
  Effect.flatMap(Adaptive.Adaptive, (adaptive) =>
    Effect.map(adaptive.summaries, (all) => all.find((summary) => summary.operation === operation)))

describe("LatencyWindow", () => {
  it("reports a quantile as its bucket's upper bound, within 10% above the true value", () => {
    const random = seededLatencies(7)
    const window = new LatencyWindow(60_000)
    const values = Array.from({ length: 5000 }, () => random.latency(20))
    for (const value of values) window.add(1000, value)
    const truth = p99Of(values)
    assert.strictEqual(window.quantile(1000, 0.99), upperBoundOf(bucketOf(truth)))
    assert.isAtLeast(window.quantile(1000, 0.99)!, truth)
    assert.isAtMost(window.quantile(1000, 0.99)!, truth * 1.1)
    assert.strictEqual(window.count(1000), 5000)
  })

  it("forgets samples older than the window, slice by slice", () => {
    const window = new LatencyWindow(10_000)
    window.add(0, 500)
    window.add(5_000, 20)
    assert.strictEqual(window.count(9_999), 2)
    assert.strictEqual(window.count(10_000), 1)
    assert.strictEqual(window.quantile(10_000, 0.99), upperBoundOf(bucketOf(20)))
    assert.strictEqual(window.count(15_000), 0)
    assert.strictEqual(window.quantile(15_000, 0.99), undefined)
  })

  it("forgets samples stamped after now: the clock went back", () => {
    const window = new LatencyWindow(10_000)
    window.add(1_000_000, 500)
    assert.strictEqual(window.count(1_000_000), 1)
    assert.strictEqual(window.count(2_000), 0)
    assert.strictEqual(window.quantile(2_000, 0.99), undefined)
    window.add(2_000, 20)
    assert.deepStrictEqual(window.buckets(2_500), [[bucketOf(20), 1]])
  })

  it("keeps a fixed amount of memory however many samples arrive", () => {
    const window = new LatencyWindow(1000)
    for (let i = 0; i < 100_000; i++) window.add(i, i % 97)
    assert.strictEqual(window.count(99_999), 1000)
  })
})

describe("adaptive timeouts through the pipeline", () => {
  it.effect("stay at the configured timeout until the minimum sample count, then take p99 × multiplier", () =>
    Effect.gen(function*() {
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once" })
      yield* feedAtOnce(protect, Array.from({ length: 49 }, () => 100))
      assert.deepStrictEqual(yield* currentTimeout("gemini_api"), {
        operation: "gemini_api",
        samples: 49,
        learned: undefined,
        p99: Duration.millis(upperBoundOf(bucketOf(100))),
        configured: Duration.seconds(45)
      })
      yield* feedAtOnce(protect, [100])
      const learned = Math.ceil(upperBoundOf(bucketOf(100)) * 3)
      assert.deepStrictEqual((yield* currentTimeout("gemini_api"))?.learned, Duration.millis(learned))
    }).pipe(Effect.provide(adaptiveLayer({ gemini_api: "on", floor: 0.01 }))))

  it.effect("converge on 3 × the p99 of seeded latencies (median 20 ms, p99 ≈ 80 ms)", () =>
    Effect.gen(function*() {
      const random = seededLatencies(42)
      const latencies = Array.from({ length: 600 }, () => random.latency(20))
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once" })
      yield* feedAtOnce(protect, latencies)
      const truth = p99Of(latencies)
      const learned = Duration.toMillis((yield* currentTimeout("gemini_api"))!.learned!)
      assert.strictEqual(learned, Math.ceil(upperBoundOf(bucketOf(truth)) * 3))
      assert.isAtLeast(learned, 3 * truth)
      assert.isAtMost(learned, 3 * truth * 1.1 + 1)
    }).pipe(Effect.provide(adaptiveLayer({ gemini_api: "on", floor: 0.01 }))))

  it.effect("never go below the floor", () =>
    Effect.gen(function*() {
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once" })
      yield* feedAtOnce(protect, Array.from({ length: 60 }, () => 5))
      assert.deepStrictEqual((yield* currentTimeout("gemini_api"))?.learned, Duration.seconds(1))
    }).pipe(Effect.provide(adaptiveLayer({ gemini_api: "on" }))))

  it.effect("never go below BIG3_TIMEOUT_MIN: a floor under it is raised to it, with a warning naming the key", () => {
    const { layer, lines } = captureLogs()
    const env = new Map([["BIG3_ADAPTIVE_GEMINI_API", "on"], ["BIG3_ADAPTIVE_FLOOR", "0.001"], ["BIG3_TIMEOUT_MIN", "0.25"]])
    return Effect.gen(function*() {
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "default" })
      yield* feedAtOnce(protect, Array.from({ length: 60 }, () => 0))
      assert.deepStrictEqual((yield* currentTimeout("gemini_api"))?.learned, Duration.millis(250))
      assert.deepStrictEqual(lines.filter((line) => line.includes("BIG3_ADAPTIVE_FLOOR")), [
        "WARN BIG3_ADAPTIVE_FLOOR=1ms is below the minimum 250ms (BIG3_TIMEOUT_MIN); using 250ms"
      ])
    }).pipe(
      Effect.provide(Layer.mergeAll(Adaptive.layer, CircuitBreaker.layer).pipe(Layer.provideMerge(ReliabilityConfig.layer))),
      Effect.provide(layer),
      Effect.withConfigProvider(ConfigProvider.fromMap(env, { pathDelim: "_" }))
    )
  })

  it.effect("never go below BIG3_TIMEOUT_MIN set above the default floor", () =>
    Effect.gen(function*() {
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once" })
      yield* feedAtOnce(protect, Array.from({ length: 60 }, () => 5))
      assert.deepStrictEqual((yield* currentTimeout("gemini_api"))?.learned, Duration.seconds(5))
    }).pipe(Effect.provide(
      Layer.mergeAll(Adaptive.layer, CircuitBreaker.layer).pipe(Layer.provideMerge(ReliabilityConfig.layerWith({
        timeoutBounds: { min: 5 },
        policies: { once: { maxAttempts: 1 } },
        adaptive: { gemini_api: "on" }
      })))
    )))

  it.effect("never go above the configured timeout", () =>
    Effect.gen(function*() {
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once" })
      yield* feedAtOnce(protect, Array.from({ length: 20 }, () => 4000))
      assert.deepStrictEqual((yield* currentTimeout("gemini_api"))?.learned, Duration.seconds(5))
    }).pipe(Effect.provide(adaptiveLayer({ gemini_api: "on", minSamples: 20 }, 5))))

  it.effect("cut a hung attempt at the learned timeout, not the configured one", () =>
    Effect.gen(function*() {
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once" })
      yield* feedAtOnce(protect, Array.from({ length: 20 }, () => 100))
      const learned = Math.ceil(upperBoundOf(bucketOf(100)) * 3)
      const hung = yield* Effect.fork(protect(Effect.never))
      yield* TestClock.adjust(Duration.millis(learned - 1))
      assert.isNull(hung.unsafePoll())
      yield* TestClock.adjust(Duration.millis(1))
      const exit = yield* Fiber.await(hung)
      assert.deepStrictEqual(
        Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error instanceof OperationTimeout
          ? Duration.toMillis(exit.cause.error.timeout)
          : exit,
        learned
      )
    }).pipe(Effect.provide(adaptiveLayer({ gemini_api: "on", minSamples: 20, floor: 0.01 }))))

  it.effect("follow a latency shift down as old samples leave the window", () =>
    Effect.gen(function*() {
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once" })
      yield* feedAtOnce(protect, Array.from({ length: 30 }, () => 300))
      assert.deepStrictEqual((yield* currentTimeout("gemini_api"))?.learned, Duration.millis(Math.ceil(upperBoundOf(bucketOf(300)) * 3)))
      yield* TestClock.adjust("60 seconds")
      yield* feedAtOnce(protect, Array.from({ length: 30 }, () => 20))
      assert.deepStrictEqual((yield* currentTimeout("gemini_api"))?.learned, Duration.millis(Math.ceil(upperBoundOf(bucketOf(20)) * 3)))
    }).pipe(Effect.provide(adaptiveLayer({ gemini_api: "on", minSamples: 20, floor: 0.01, window: "60 seconds" }))))

  it.effect("go back to the configured timeout when the samples leave the window, even when a summary saw them leave first", () =>
    Effect.gen(function*() {
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once", service: "expiry-test" })
      const gauge = Metrics.adaptiveTimeout.pipe(Metric.tagged("service", "expiry-test"), Metric.tagged("operation", "gemini_api"))
      yield* feedAtOnce(protect, Array.from({ length: 20 }, () => 100))
      assert.deepStrictEqual((yield* currentTimeout("gemini_api"))?.learned, Duration.millis(Math.ceil(upperBoundOf(bucketOf(100)) * 3)))
      yield* TestClock.adjust("61 seconds")
      // What `big3 config` and the store's save read; the samples are gone.
      assert.strictEqual((yield* currentTimeout("gemini_api"))?.samples, 0)
      // An attempt of 2 s is within the configured 45 s, so it is not cut at the old learned ~330 ms.
      const call = yield* Effect.fork(protect(Effect.as(Effect.sleep("2 seconds"), "done")))
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(yield* Fiber.await(call), Exit.succeed("done"))
      assert.strictEqual((yield* Metric.value(gauge)).value, 45)
    }).pipe(Effect.provide(adaptiveLayer({ gemini_api: "on", minSamples: 20, floor: 0.01, window: "60 seconds" }))))

  it.effect("go back to the configured timeout when the clock is set back past the window", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_000_000_000)
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once" })
      yield* feedAtOnce(protect, Array.from({ length: 20 }, () => 100))
      assert.deepStrictEqual((yield* currentTimeout("gemini_api"))?.learned, Duration.millis(Math.ceil(upperBoundOf(bucketOf(100)) * 3)))
      // Wall time stepped back a day (NTP, a resumed VM): the samples are not from the last minute.
      yield* TestClock.setTime(1_000_000_000 - 86_400_000)
      const call = yield* Effect.fork(protect(Effect.as(Effect.sleep("2 seconds"), "done")))
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(yield* Fiber.await(call), Exit.succeed("done"))
      assert.strictEqual((yield* currentTimeout("gemini_api"))?.samples, 1)
    }).pipe(Effect.provide(adaptiveLayer({ gemini_api: "on", minSamples: 20, floor: 0.01, window: "60 seconds" }))))

  it.effect("follow a latency shift up: attempts cut again and again send it back to the configured timeout to relearn", () => {
    const { layer, lines } = captureLogs()
    return Effect.gen(function*() {
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once" })
      yield* feedAtOnce(protect, Array.from({ length: 20 }, () => 20))
      const low = Math.ceil(upperBoundOf(bucketOf(20)) * 3)
      assert.deepStrictEqual((yield* currentTimeout("gemini_api"))?.learned, Duration.millis(low))
      // The upstream now takes 500 ms: each attempt is cut at the learned timeout.
      const cut: Array<number> = []
      for (let i = 0; i < 4; i++) {
        const call = yield* Effect.fork(protect(Effect.sleep("500 millis")))
        yield* TestClock.adjust("500 millis")
        const exit = yield* Fiber.await(call)
        if (Exit.isFailure(exit)) cut.push(i)
      }
      assert.deepStrictEqual(cut, [0, 1, 2, 3])
      assert.deepStrictEqual(yield* currentTimeout("gemini_api"), {
        operation: "gemini_api",
        samples: 0,
        learned: undefined,
        p99: undefined,
        configured: Duration.seconds(45)
      })
      yield* feedAtOnce(protect, Array.from({ length: 20 }, () => 500))
      assert.deepStrictEqual(
        (yield* currentTimeout("gemini_api"))?.learned,
        Duration.millis(Math.ceil(upperBoundOf(bucketOf(500)) * 3))
      )
      const adaptiveLines = lines.filter((line) => line.includes("gemini_api:"))
      assert.deepStrictEqual(adaptiveLines, [
        `INFO gemini_api: adaptive timeout 45s → ${low}ms (p99 ${Math.round(upperBoundOf(bucketOf(20)))}ms over 20 samples)`,
        `WARN gemini_api: attempts kept being cut by the learned timeout ${low}ms; forgot 20 samples, back to the configured 45s until 20 new ones`,
        `INFO gemini_api: adaptive timeout 45s → ${formatDuration(Duration.millis(Math.ceil(upperBoundOf(bucketOf(500)) * 3)))} (p99 ${
          Math.round(upperBoundOf(bucketOf(500)))
        }ms over 20 samples)`
      ])
    }).pipe(Effect.provide(Layer.merge(adaptiveLayer({ gemini_api: "on", minSamples: 20, floor: 0.01 }), layer)))
  })

  it.effect("log nothing for moves within 2×", () => {
    const { layer, lines } = captureLogs()
    return Effect.gen(function*() {
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once" })
      yield* feedAtOnce(protect, Array.from({ length: 20 }, () => 100))
      yield* feedAtOnce(protect, Array.from({ length: 20 }, () => 150))
      assert.strictEqual(lines.filter((line) => line.includes("gemini_api:")).length, 1)
    }).pipe(Effect.provide(Layer.merge(adaptiveLayer({ gemini_api: "on", minSamples: 20, floor: 0.01 }), layer)))
  })

  it.effect("export the timeout in use as big3_adaptive_timeout_seconds{service,operation}", () =>
    Effect.gen(function*() {
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once", service: "gauge-test" })
      const gauge = Metrics.adaptiveTimeout.pipe(Metric.tagged("service", "gauge-test"), Metric.tagged("operation", "gemini_api"))
      assert.strictEqual((yield* Metric.value(gauge)).value, 45)
      yield* feedAtOnce(protect, Array.from({ length: 20 }, () => 100))
      assert.strictEqual((yield* Metric.value(gauge)).value, Math.ceil(upperBoundOf(bucketOf(100)) * 3) / 1000)
    }).pipe(Effect.provide(adaptiveLayer({ gemini_api: "on", minSamples: 20, floor: 0.01 }))))

  it.effect("leave operations that are not switched on at their configured timeout", () =>
    Effect.gen(function*() {
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once" })
      yield* feedAtOnce(protect, Array.from({ length: 60 }, () => 100))
      assert.deepStrictEqual(yield* currentTimeout("gemini_api"), undefined)
      const hung = yield* Effect.fork(protect(Effect.never))
      yield* TestClock.adjust("44 seconds")
      assert.isNull(hung.unsafePoll())
      yield* TestClock.adjust("1 second")
      assert.isTrue(Exit.isFailure(yield* Fiber.await(hung)))
    }).pipe(Effect.provide(adaptiveLayer({}))))
})

describe("RateLimiter (AWS adaptive retry mode)", () => {
  it("does not pace before the first throttle", () => {
    const limiter = new RateLimiter(0)
    for (let i = 0; i < 100; i++) {
      assert.strictEqual(limiter.acquire(i / 100), 0)
      limiter.update(i / 100, false)
    }
    assert.strictEqual(limiter.rate, undefined)
  })

  it("after a throttle, lets sends through at the paced rate, below what was sent before", () => {
    const limiter = new RateLimiter(0)
    // 20 sends per second for 3 seconds, then a 429.
    for (let i = 0; i < 60; i++) limiter.update(i / 20, false)
    limiter.update(3, true)
    const rate = limiter.rate!
    assert.isBelow(rate, 20 * 0.7 + 1e-9)
    assert.isAbove(rate, 0.5)
    // A caller that sends whenever the bucket lets it, for 10 seconds (no answers, so the rate stays).
    let t = 3
    let granted = 0
    while (t < 13) {
      const wait = limiter.acquire(t)
      if (wait === 0) granted++
      else t += wait
    }
    // What the bucket held (at most `rate` tokens) plus `rate` per second.
    assert.isAtLeast(granted, Math.floor(rate * 10))
    assert.isAtMost(granted, Math.ceil(rate * 11) + 1)
  })

  it("cuts the rate again on each further throttle, never below 0.5 per second", () => {
    const limiter = new RateLimiter(0)
    for (let i = 0; i < 40; i++) limiter.update(i / 20, false)
    const rates: Array<number> = []
    for (let i = 0; i < 30; i++) {
      limiter.update(2 + i, true)
      rates.push(limiter.rate!)
    }
    for (let i = 1; i < rates.length; i++) assert.isAtMost(rates[i]!, rates[i - 1]!)
    assert.strictEqual(rates[rates.length - 1], 0.5)
  })

  it("grows the rate back while the upstream stops throttling", () => {
    const limiter = new RateLimiter(0)
    for (let i = 0; i < 60; i++) limiter.update(i / 20, false)
    limiter.update(3, true)
    const throttled = limiter.rate!
    let t = 3
    // The caller keeps sending as fast as the bucket lets it, and every answer is a success.
    for (let i = 0; i < 200; i++) {
      t += limiter.acquire(t)
      limiter.update(t, false)
    }
    assert.isAbove(limiter.rate!, throttled * 1.5)
  })
})

describe("adaptive pacing through the pipeline", () => {
  it.effect("after a 429 the next attempts of the service wait for tokens", () =>
    Effect.gen(function*() {
      let answered = 0
      const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once", service: "paced" })
      const times: Array<number> = []
      const call = (throttle: boolean) =>
        protect(
          Effect.flatMap(
            Effect.clockWith((clock) => clock.currentTimeMillis),
            (now) => {
              times.push(now)
              answered++
              return throttle ? Effect.fail(new RateLimited({ service: "paced", message: "slow down", status: 429 })) : Effect.void
            }
          )
        )
      // 10 sends per second for 2 seconds: no pacing yet.
      for (let i = 0; i < 20; i++) {
        yield* call(false)
        yield* TestClock.adjust("100 millis")
      }
      assert.deepStrictEqual(times.slice(0, 3), [0, 100, 200])
      yield* Effect.exit(call(true))
      const at = times[times.length - 1]!
      // A burst of 5 calls now: they go out spaced by the paced rate, not all at once.
      const burst = yield* Effect.fork(Effect.all(Array.from({ length: 5 }, () => call(false)), { concurrency: "unbounded" }))
      yield* TestClock.adjust("30 seconds")
      yield* Fiber.join(burst)
      const spaced = times.slice(-5).map((time) => time - at)
      for (let i = 1; i < spaced.length; i++) assert.isAbove(spaced[i]!, spaced[i - 1]!)
      assert.isAbove(spaced[4]!, 0)
      assert.strictEqual(answered, 26)
    }).pipe(Effect.provide(adaptiveLayer({ rate: { paced: "on" } }))))
})

describe("adaptive settings", () => {
  it.effect("are read from the environment, validated, and off by default", () =>
    Effect.gen(function*() {
      const defaults = yield* ReliabilityConfig.make()
      assert.deepStrictEqual(defaults.adaptive, ReliabilityConfig.defaultAdaptive)
      const env = new Map([
        ["BIG3_ADAPTIVE_GEMINI_API", "on"],
        ["BIG3_ADAPTIVE_OBSERVABILITY_BATCH", "off"],
        ["BIG3_ADAPTIVE_MULTIPLIER", "2.5"],
        ["BIG3_ADAPTIVE_FLOOR", "500 millis"],
        ["BIG3_ADAPTIVE_MIN_SAMPLES", "20"],
        ["BIG3_ADAPTIVE_RATE_GEMINI", "on"]
      ])
      const config = yield* ReliabilityConfig.load.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(env, { pathDelim: "_" })))
      assert.deepStrictEqual(config.adaptive, {
        operations: new Set(["gemini_api"]),
        multiplier: 2.5,
        floor: Duration.millis(500),
        minSamples: 20,
        window: Duration.minutes(5),
        rate: new Set(["gemini"])
      })
      const bad = yield* ReliabilityConfig.load.pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["BIG3_ADAPTIVE_GEMINI_API", "maybe"]]), { pathDelim: "_" })),
        Effect.flip
      )
      assert.include(String(bad), `BIG3_ADAPTIVE_GEMINI_API="maybe" (from the environment) is not valid: expected true or false`)
    }))

  it.effect("are read from the config file's adaptive section", () =>
    Effect.gen(function*() {
      const flat = yield* ReliabilityConfig.flattenConfigFile("big3.json", {
        adaptive: { gemini_api: "on", minSamples: 10, rate: { anthropic: true } }
      })
      assert.deepStrictEqual([...flat.values].map(([key, raw]) => [key, raw.value]), [
        ["BIG3_ADAPTIVE_GEMINI_API", "on"],
        ["BIG3_ADAPTIVE_MIN_SAMPLES", 10],
        ["BIG3_ADAPTIVE_RATE_ANTHROPIC", true]
      ])
      const bad = yield* Effect.flip(ReliabilityConfig.flattenConfigFile("big3.json", { adaptive: { gemini_apy: "on" } }))
      assert.include(String(bad), `unknown key "adaptive.gemini_apy" (did you mean "gemini_api"?)`)
    }))
})

describe("learned timeouts in the store", () => {
  it.live("are saved when the runtime closes and a new runtime starts from them", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "big3-adaptive-"))
      const store = Store.layer({ filename: path.join(dir, "big3.db") })
      const config = configWith({ gemini_api: "on", minSamples: 20, floor: 0.01 })
      const runtimeLayer = Layer.mergeAll(Adaptive.layerStore, CircuitBreaker.layer).pipe(
        Layer.provideMerge(Layer.merge(config, store))
      )
      const learn = Effect.gen(function*() {
        const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once" })
        for (let i = 0; i < 30; i++) yield* protect(Effect.sleep("2 millis"))
        return (yield* currentTimeout("gemini_api"))!
      })
      const first = yield* learn.pipe(Effect.provide(runtimeLayer))
      assert.strictEqual(first.samples, 30)
      const saved = yield* Adaptive.loadSaved.pipe(Effect.provide(store))
      assert.deepStrictEqual(saved.map((row) => [row.operation, row.samples, row.learnedMillis]), [[
        "gemini_api",
        30,
        Duration.toMillis(first.learned!)
      ]])
      // A new runtime: before any call of its own, it uses what was learned.
      const second = yield* Effect.gen(function*() {
        yield* Resilience.makeProtect({ operation: "gemini_api", policy: "once" })
        return (yield* currentTimeout("gemini_api"))!
      }).pipe(Effect.provide(runtimeLayer))
      assert.deepStrictEqual([second.samples, second.learned], [30, first.learned])
      fs.rmSync(dir, { recursive: true, force: true })
    }))
})
