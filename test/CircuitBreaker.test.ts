import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Ref from "effect/Ref"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Errors from "../src/Errors.js"
import * as Metrics from "../src/Metrics.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Resilience from "../src/Resilience.js"

const unavailable = new Errors.ServiceUnavailable({ service: "gemini", message: "503", status: 503 })
const badRequest = new Errors.InvalidRequest({ service: "gemini", message: "400", status: 400 })

const consecutive = ReliabilityConfig.defaultBreakers.gemini
const ratio: ReliabilityConfig.BreakerSettings = {
  ...consecutive,
  mode: "ratio",
  failureRatio: 0.5,
  samplingWindow: Duration.seconds(30),
  minimumThroughput: 10,
  openDuration: Duration.seconds(30)
}

/** Drives a breaker directly: admit at `now`, report `outcome`. */
const call = (breaker: CircuitBreaker.Breaker, now: number, outcome: "ok" | "fail" | "bad") => {
  const ticket = breaker.tryAcquire(now)
  if (typeof ticket !== "number") return ticket
  if (outcome === "ok") breaker.onSuccess(ticket, now)
  else if (outcome === "fail") breaker.onFailure(ticket, now)
  else breaker.onExit(ticket, now, Effect.runSync(Effect.exit(Effect.fail(badRequest))))
  return undefined
}

describe("CircuitBreaker (consecutive failures)", () => {
  it("closed → open after 5 consecutive failures; a success in between resets the count", () => {
    const breaker = new CircuitBreaker.Breaker("test-consecutive-1", consecutive)
    for (let i = 0; i < 4; i++) call(breaker, 0, "fail")
    call(breaker, 0, "ok")
    for (let i = 0; i < 4; i++) call(breaker, 0, "fail")
    assert.strictEqual(breaker.state(0), "closed")
    call(breaker, 0, "fail")
    assert.strictEqual(breaker.state(0), "open")
    const refused = call(breaker, 1000, "ok")
    assert.strictEqual(refused?._tag, "CircuitOpen")
    assert.strictEqual(refused === undefined ? undefined : Duration.toMillis(refused.retryAfter), 59_000)
  })

  it("non-retryable failures do not count against it", () => {
    const breaker = new CircuitBreaker.Breaker("test-consecutive-2", consecutive)
    for (let i = 0; i < 20; i++) call(breaker, 0, "bad")
    assert.strictEqual(breaker.state(0), "closed")
  })

  it("open → half-open after 60 s, 3 trial calls, then closed after 3 successes", () => {
    const breaker = new CircuitBreaker.Breaker("test-consecutive-3", consecutive)
    for (let i = 0; i < 5; i++) call(breaker, 0, "fail")
    assert.strictEqual(breaker.state(59_999), "open")
    assert.strictEqual(breaker.state(60_000), "half-open")
    const tickets = [breaker.tryAcquire(60_000), breaker.tryAcquire(60_000), breaker.tryAcquire(60_000)]
    assert.isTrue(tickets.every((ticket) => typeof ticket === "number"))
    const fourth = breaker.tryAcquire(60_000)
    assert.strictEqual(typeof fourth === "number" ? "admitted" : fourth._tag, "CircuitOpen")
    for (const ticket of tickets) if (typeof ticket === "number") breaker.onSuccess(ticket, 60_001)
    assert.strictEqual(breaker.state(60_001), "closed")
    assert.deepStrictEqual(breaker.transitions.map((t) => t.to), ["open", "half-open", "closed"])
  })

  it("a failed trial re-opens it for another full period", () => {
    const breaker = new CircuitBreaker.Breaker("test-consecutive-4", consecutive)
    for (let i = 0; i < 5; i++) call(breaker, 0, "fail")
    call(breaker, 60_000, "fail")
    assert.strictEqual(breaker.state(60_000), "open")
    assert.strictEqual(breaker.state(119_999), "open")
    assert.strictEqual(breaker.state(120_000), "half-open")
  })

  it("outcomes of calls admitted before a state change do not count", () => {
    const breaker = new CircuitBreaker.Breaker("test-consecutive-5", consecutive)
    const early = breaker.tryAcquire(0)
    for (let i = 0; i < 5; i++) call(breaker, 0, "fail")
    assert.strictEqual(breaker.state(0), "open")
    if (typeof early === "number") breaker.onSuccess(early, 1)
    assert.strictEqual(breaker.state(1), "open")
  })
})

describe("CircuitBreaker (failure ratio)", () => {
  it("stays closed below the minimum throughput, opens at ratio ≥ 0.5 over 10+ calls", () => {
    const breaker = new CircuitBreaker.Breaker("test-ratio-1", ratio)
    for (let i = 0; i < 9; i++) call(breaker, i * 100, "fail")
    assert.strictEqual(breaker.state(1000), "closed", "9 calls are below the minimum throughput")
    call(breaker, 1000, "fail")
    assert.strictEqual(breaker.state(1000), "open")
  })

  it("stays closed while failures are under half", () => {
    const breaker = new CircuitBreaker.Breaker("test-ratio-2", ratio)
    for (let i = 0; i < 40; i++) call(breaker, i * 100, i % 3 === 0 ? "fail" : "ok")
    assert.strictEqual(breaker.state(4000), "closed")
  })

  it("old failures slide out of the 30 s window", () => {
    const breaker = new CircuitBreaker.Breaker("test-ratio-3", ratio)
    for (let i = 0; i < 9; i++) call(breaker, 0, "fail")
    // 40 s later the nine failures are outside the window: one more failure and 9 successes.
    for (let i = 0; i < 9; i++) call(breaker, 40_000, "ok")
    call(breaker, 40_000, "fail")
    assert.strictEqual(breaker.state(40_000), "closed")
  })

  it("half-open → closed after 3 successes, like the consecutive mode", () => {
    const breaker = new CircuitBreaker.Breaker("test-ratio-4", ratio)
    for (let i = 0; i < 10; i++) call(breaker, 0, "fail")
    assert.strictEqual(breaker.state(29_999), "open")
    for (let i = 0; i < 3; i++) call(breaker, 30_000, "ok")
    assert.strictEqual(breaker.state(30_000), "closed")
  })
})

const services = (overrides: ReliabilityConfig.Overrides = {}) =>
  Layer.provideMerge(CircuitBreaker.layer, ReliabilityConfig.layerWith(overrides))

describe("CircuitBreaker service", () => {
  it.effect("one breaker is shared by concurrent fibers", () =>
    Effect.gen(function*() {
      const runs = yield* Ref.make(0)
      const failing = Effect.zipRight(
        Ref.update(runs, (n) => n + 1),
        Effect.zipRight(Effect.sleep("1 second"), Effect.fail(unavailable))
      )
      const guarded = CircuitBreaker.withBreaker("gemini")(failing)
      // 5 concurrent failures open the breaker for every fiber.
      const fiber = yield* Effect.fork(Effect.all(Array.from({ length: 5 }, () => Effect.either(guarded)), { concurrency: "unbounded" }))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      assert.strictEqual(yield* CircuitBreaker.state("gemini"), "open")
      const refused = yield* Effect.all(Array.from({ length: 20 }, () => Effect.flip(guarded)), { concurrency: "unbounded" })
      assert.isTrue(refused.every((error) => error._tag === "CircuitOpen"))
      assert.strictEqual(yield* Ref.get(runs), 5)
      // After the open period, only 3 of 10 concurrent callers get a trial slot.
      yield* TestClock.adjust("60 seconds")
      const trialRuns = yield* Ref.make(0)
      const slowOk = CircuitBreaker.withBreaker("gemini")(
        Effect.zipRight(Ref.update(trialRuns, (n) => n + 1), Effect.sleep("1 second"))
      )
      const trials = yield* Effect.fork(Effect.all(Array.from({ length: 10 }, () => Effect.either(slowOk)), { concurrency: "unbounded" }))
      yield* TestClock.adjust("1 second")
      const results = yield* Fiber.join(trials)
      assert.strictEqual(results.filter((r) => r._tag === "Right").length, 3)
      assert.strictEqual(yield* Ref.get(trialRuns), 3)
      assert.strictEqual(yield* CircuitBreaker.state("gemini"), "closed")
    }).pipe(Effect.provide(services())))

  it.effect("an interrupted trial call frees its half-open slot", () =>
    Effect.gen(function*() {
      const guarded = CircuitBreaker.withBreaker("gemini")
      for (let i = 0; i < 5; i++) yield* Effect.either(guarded(Effect.fail(unavailable)))
      yield* TestClock.adjust("60 seconds")
      const hung = yield* Effect.fork(guarded(Effect.never))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(hung)
      for (let i = 0; i < 3; i++) yield* guarded(Effect.void)
      assert.strictEqual(yield* CircuitBreaker.state("gemini"), "closed")
    }).pipe(Effect.provide(services())))
})

describe("Retry budget", () => {
  it("allows at least minRetries, then at most ratio × calls in the window", () => {
    const budget = new CircuitBreaker.RetryBudget("test-budget-1", ReliabilityConfig.defaultBudget)
    const granted = Array.from({ length: 5 }, () => budget.tryRetry(0))
    assert.deepStrictEqual(granted, [true, true, true, false, false])
    for (let i = 0; i < 50; i++) budget.recordCall(0)
    // 50 calls → 10 retries allowed in all; 3 are spent.
    const more = Array.from({ length: 10 }, () => budget.tryRetry(0)).filter(Boolean).length
    assert.strictEqual(more, 7)
    // After the 10 s window the budget is fresh again.
    assert.isTrue(budget.tryRetry(10_000))
  })

  it.effect("caps retries during a simulated outage of 1,000 calls", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const down = Effect.zipRight(Ref.update(attempts, (n) => n + 1), Effect.fail(unavailable))
      // No breaker, so that only the budget limits load; retries wait 10 ms.
      const protect = Resilience.protect({
        operation: "gemini_api",
        service: "outage",
        budget: true,
        policy: { ...ReliabilityConfig.defaultPolicies.gemini, jitter: "none", initialDelay: Duration.millis(10) }
      })
      // 1,000 calls spread over 10 s (one every 10 ms), all failing.
      const fiber = yield* Effect.fork(Effect.forEach(Array.from({ length: 1000 }), () =>
        Effect.zipRight(Effect.either(protect(down)), Effect.sleep("10 millis")), { discard: true }))
      yield* TestClock.adjust("20 seconds")
      yield* Fiber.join(fiber)
      const total = yield* Ref.get(attempts)
      const retries = total - 1000
      // Without a budget: 2 retries per call = 2,000. The budget allows ≤ 20% of calls (+3).
      assert.isAtMost(retries, 0.2 * 1000 + 3 + 20)
      assert.isAtLeast(retries, 150)
      const rejections = yield* Metric.value(Metrics.budgetRejections.pipe(Metric.tagged("service", "outage")))
      // Each call ends either with its 2 retries spent or with one refusal from the budget.
      assert.isAtLeast(rejections.count, 1000 - retries / 2)
      assert.isAtMost(rejections.count, 1000)
    }).pipe(Effect.provide(services())))
})
