import { afterEach, assert, beforeEach, describe, it, vi } from "@effect/vitest"
import { APIConnectionTimeoutError } from "@anthropic-ai/sdk"
import { ApiError } from "@google/genai"
import OpenAI from "openai"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ConfigError from "effect/ConfigError"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Errors from "../src/Errors.js"
import * as BigPromise from "../src/Promise.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"

// The Promise API runs on real timers; vitest's fake timers play the TestClock's part.
let big3: BigPromise.PromiseApi
beforeEach(() => {
  vi.useFakeTimers()
  big3 = BigPromise.make({ config: Effect.runSync(ReliabilityConfig.make({ policies: { gemini: { jitter: "none" } } })) })
})
afterEach(() => {
  vi.useRealTimers()
})

const quiet = { onRetry: () => {} }

/** A function that records when it was called and fails `failures` times with `error`. */
const flaky = (failures: number, error: unknown) => {
  const calls: Array<number> = []
  const fn = async (_signal: AbortSignal) => {
    calls.push(Date.now())
    if (calls.length <= failures) throw error
    return "ok"
  }
  return { fn, calls }
}

describe("Promise API", () => {
  it("withRetry waits 2 s then 4 s between three attempts of the gemini policy", async () => {
    const start = Date.now()
    const { fn, calls } = flaky(2, new Errors.ServiceUnavailable({ service: "gemini", message: "503" }))
    const result = big3.withRetry(fn, "gemini", quiet)
    await vi.advanceTimersByTimeAsync(6000)
    assert.strictEqual(await result, "ok")
    assert.deepStrictEqual(calls.map((t) => t - start), [0, 2000, 6000])
  })

  it("a plain error is not retried and is rethrown as is", async () => {
    const original = new TypeError("bug")
    const { fn, calls } = flaky(5, original)
    const result = big3.withRetry(fn, "gemini", quiet)
    const caught = await result.catch((error: unknown) => error)
    assert.strictEqual(caught, original)
    assert.strictEqual(calls.length, 1)
  })

  it("network error codes and HTTP-like statuses are classified", async () => {
    const reset = Object.assign(new Error("socket hang up"), { code: "ECONNRESET" })
    const { fn, calls } = flaky(1, reset)
    const result = big3.withRetry(fn, "gemini", quiet)
    await vi.advanceTimersByTimeAsync(2000)
    assert.strictEqual(await result, "ok")
    assert.strictEqual(calls.length, 2)
    assert.strictEqual(BigPromise.classifyDefault({ status: 429 }, "x")?._tag, "RateLimited")
    assert.strictEqual(BigPromise.classifyDefault({ statusCode: 400 }, "x")?._tag, "InvalidRequest")
  })

  it("withTimeout aborts the signal of the attempt that times out", async () => {
    let seen: AbortSignal | undefined
    const result = big3.withTimeout((signal) => {
      seen = signal
      return new Promise<string>(() => {})
    }, "agent_creation")
    const settled = result.catch((error: unknown) => error)
    await vi.advanceTimersByTimeAsync(59_999)
    assert.isFalse(seen?.aborted)
    await vi.advanceTimersByTimeAsync(1)
    const error = await settled
    assert.isTrue(seen?.aborted)
    assert.instanceOf(error, Errors.OperationTimeout)
    assert.strictEqual(error instanceof Errors.OperationTimeout ? error.message : "", "agent_creation timed out after 60s")
  })

  it("a function that takes no signal is still abandoned at its timeout, and retried", async () => {
    let attempts = 0
    const result = big3.protect(() => {
      attempts++
      return attempts === 1 ? new Promise<string>(() => {}) : Promise.resolve("ok")
    }, { operation: "gemini_api", policy: "gemini", breaker: "gemini-promise-nosignal", ...quiet })
    await vi.advanceTimersByTimeAsync(44_999)
    assert.strictEqual(attempts, 1)
    await vi.advanceTimersByTimeAsync(1 + 2_000)
    assert.strictEqual(await result, "ok")
    assert.strictEqual(attempts, 2)
  })

  it("protect retries a timed-out attempt, then succeeds", async () => {
    let attempts = 0
    const signals: Array<AbortSignal> = []
    const result = big3.protect((signal) => {
      signals.push(signal)
      attempts++
      return attempts === 1 ? new Promise<string>(() => {}) : Promise.resolve("ok")
    }, { operation: "gemini_api", policy: "gemini", breaker: "gemini-promise-1", ...quiet })
    await vi.advanceTimersByTimeAsync(45_000 + 2_000)
    assert.strictEqual(await result, "ok")
    assert.deepStrictEqual(signals.map((s) => s.aborted), [true, false])
  })

  it("protect opens the breaker after 5 failures and refuses the 6th call", async () => {
    const { fn, calls } = flaky(100, new Errors.ServiceUnavailable({ service: "gemini", message: "503" }))
    const options = {
      operation: "gemini_api",
      policy: { ...ReliabilityConfig.defaultPolicies.gemini, maxAttempts: 1 },
      breaker: "gemini-promise-2",
      ...quiet
    } as const
    for (let i = 0; i < 5; i++) await big3.protect(fn, options).catch(() => undefined)
    const error = await big3.protect(fn, options).catch((e: unknown) => e)
    assert.instanceOf(error, Errors.CircuitOpen)
    assert.strictEqual(calls.length, 5)
  })

  // @google/genai's ApiError has the status and, as its message, the JSON error body (js-genai
  // `throwErrorIfNotOK`): the RetryInfo wait and the QuotaFailure are read from there.
  const genaiError = (quotaId: string, retryDelay: string) =>
    new ApiError({
      status: 429,
      message: JSON.stringify({
        error: {
          code: 429,
          message: "You exceeded your current quota",
          status: "RESOURCE_EXHAUSTED",
          details: [
            { "@type": "type.googleapis.com/google.rpc.QuotaFailure", violations: [{ quotaId }] },
            { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay }
          ]
        }
      })
    })

  it("an @google/genai 429 waits its RetryInfo (3 s), not the policy's 2 s", async () => {
    const start = Date.now()
    const { fn, calls } = flaky(1, genaiError("GenerateRequestsPerMinutePerProjectPerModel", "3s"))
    const events: Array<string> = []
    const result = big3.protect(fn, { operation: "gemini_api", policy: "gemini", onRetry: (event) => events.push(event.message) })
    await vi.advanceTimersByTimeAsync(3000)
    assert.strictEqual(await result, "ok")
    assert.deepStrictEqual(calls.map((t) => t - start), [0, 3000])
    assert.deepStrictEqual(events, ["gemini_api attempt 1/3 failed: RateLimited: gemini_api answered HTTP 429; it asks to wait 3s; retrying in 3.0s"])
  })

  it("an @google/genai 429 for a per-day quota is not retried", async () => {
    const exhausted = genaiError("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "20s")
    const { fn, calls } = flaky(3, exhausted)
    const error = await big3.protect(fn, { operation: "gemini_api", policy: "gemini", ...quiet }).catch((e: unknown) => e)
    assert.strictEqual(error, exhausted)
    assert.strictEqual(calls.length, 1)
    assert.strictEqual(BigPromise.classifyDefault(exhausted, "gemini")?._tag, "QuotaExhausted")
  })

  it("an openai SDK RateLimitError whose type is insufficient_quota is not retried; a rate_limit_exceeded one is", async () => {
    const openAiError = (type: string, code: string, message: string) =>
      new OpenAI.RateLimitError(429, { message, type, param: null, code }, message, new Headers())
    const outOfCredit = openAiError("insufficient_quota", "insufficient_quota", "You exceeded your current quota, please check your plan and billing details.")
    const classified = BigPromise.classifyDefault(outOfCredit, "openai")
    assert.deepStrictEqual([classified?._tag, classified?.retryable], ["QuotaExhausted", false])
    assert.strictEqual(BigPromise.classifyDefault(openAiError("requests", "rate_limit_exceeded", "Rate limit reached"), "openai")?._tag, "RateLimited")
    const { fn, calls } = flaky(3, outOfCredit)
    const error = await big3.protect(fn, { operation: "openai_api", policy: "api", ...quiet }).catch((e: unknown) => e)
    assert.strictEqual(error, outOfCredit)
    assert.strictEqual(calls.length, 1)
  })

  it("the Anthropic SDK's own timeout (APIConnectionTimeoutError, no code) is retried as its SDK would", async () => {
    const { fn, calls } = flaky(1, new APIConnectionTimeoutError())
    const result = big3.withRetry(fn, "gemini", quiet)
    await vi.advanceTimersByTimeAsync(2000)
    assert.strictEqual(await result, "ok")
    assert.strictEqual(calls.length, 2)
    assert.strictEqual(BigPromise.classifyDefault(new APIConnectionTimeoutError(), "anthropic")?.message, "anthropic: request timed out")
  })

  it("a hint beyond the deadline fails at once with that error", async () => {
    const limited = new Errors.RateLimited({ service: "gemini", message: "429", retryAfter: Duration.seconds(30) })
    const { fn, calls } = flaky(1, limited)
    const error = await big3.protect(fn, { operation: "gemini_api", policy: "gemini", deadline: "10 seconds", ...quiet })
      .catch((e: unknown) => e)
    assert.strictEqual(error, limited)
    assert.strictEqual(calls.length, 1)
  })

  it("a hint longer than maxDelay (Retry-After: 86400) rejects at once with that error, saying when to come back", async () => {
    const limited = Errors.fromHttp({ service: "gemini", status: 429, headers: { "retry-after": "86400" } })
    const { fn, calls } = flaky(3, limited)
    const events: Array<string> = []
    const error = await big3.protect(fn, {
      operation: "gemini_api",
      policy: "gemini",
      onRetry: (event) => events.push(event.message)
    }).catch((e: unknown) => e)
    assert.strictEqual(error, limited)
    assert.strictEqual(calls.length, 1)
    assert.deepStrictEqual(events, [
      `gemini_api attempt 1/3 failed: RateLimited: gemini answered HTTP 429; it asks to wait 86400s; the server asks to wait 86400s ` +
      `(until ${new Date(calls[0]! + 86_400_000).toISOString()}), longer than the policy's maxDelay of 60s; failing now`
    ])
  })

  it("a negative, NaN or unreadable timeout or deadline rejects each call with InvalidRequest, never a 0 ms timeout", async () => {
    let ran = 0
    const fn = async () => {
      ran++
      return "ran"
    }
    // A caller without the types (plain JavaScript, parsed JSON) can pass any string.
    const parsed: { readonly deadline: Duration.DurationInput } = JSON.parse(`{ "deadline": "soon" }`)
    const cases = [
      [() => big3.withTimeout(fn, { timeout: -5, operation: "job" }), "timeout", "-5"],
      [() => big3.withTimeout(fn, { timeout: Number.NaN, operation: "job" }), "timeout", "NaN"],
      [() => big3.withTimeout(fn, { timeout: "-5 millis", operation: "job" }), "timeout", `"-5 millis"`],
      [() => big3.protect(fn, { operation: "gemini_api", deadline: Number.NaN }), "deadline", "NaN"],
      [() => big3.protect(fn, { operation: "gemini_api", deadline: parsed.deadline }), "deadline", `"soon"`]
    ] as const
    for (const [call, name, shown] of cases) {
      const error = await call().catch((e: unknown) => e)
      assert.instanceOf(error, Errors.InvalidRequest)
      assert.strictEqual(
        error instanceof Errors.InvalidRequest ? error.message : "",
        `${name} must be a duration of zero or more, such as 5000 (ms) or "5 seconds"; got ${shown}`
      )
    }
    assert.strictEqual(ran, 0)
    assert.strictEqual(await big3.withTimeout(fn, { timeout: 5000, operation: "job" }), "ran")
  })

  it("a 30-day timeout (over 2^31 ms) fires after 30 days, not after 1 ms", async () => {
    const day = 86_400_000
    let settled: unknown = "pending"
    const result = big3.withTimeout(() => new Promise<string>(() => {}), { timeout: "30 days", operation: "long_job" })
      .then((value) => (settled = value), (error: unknown) => (settled = error))
    await vi.advanceTimersByTimeAsync(1000)
    assert.strictEqual(settled, "pending")
    await vi.advanceTimersByTimeAsync(30 * day - 1001)
    assert.strictEqual(settled, "pending")
    await vi.advanceTimersByTimeAsync(1)
    await result
    assert.instanceOf(settled, Errors.OperationTimeout)
    assert.strictEqual(settled instanceof Errors.OperationTimeout ? settled.message : "", "long_job timed out after 2592000s")
  })

  it("a 30-day deadline does not cut the call after 1 ms", async () => {
    const { fn, calls } = flaky(1, new Errors.ServiceUnavailable({ service: "gemini", message: "503" }))
    const result = big3.protect(fn, { operation: "gemini_api", policy: "gemini", deadline: "30 days", ...quiet })
    await vi.advanceTimersByTimeAsync(2000)
    assert.strictEqual(await result, "ok")
    assert.strictEqual(calls.length, 2)
  })

  it("the caller's signal cancels the running attempt", async () => {
    const controller = new AbortController()
    let seen: AbortSignal | undefined
    const result = big3.protect((signal) => {
      seen = signal
      return new Promise<string>(() => {})
    }, { operation: "gemini_api", signal: controller.signal, ...quiet }).catch((e: unknown) => e)
    controller.abort(new Error("user cancelled"))
    const error = await result
    assert.isTrue(seen?.aborted)
    assert.strictEqual(error instanceof Error ? error.message : "", "user cancelled")
  })
})

describe("Promise API instances", () => {
  it("a configuration that fails to load is read again at the next call, not cached", async () => {
    const key = "BIG3_TIMEOUT_GEMINI_API"
    const before = process.env[key]
    try {
      process.env[key] = "soon"
      const first = await BigPromise.protect(async () => "ok", { operation: "gemini_api", ...quiet }).catch((e: unknown) => e)
      assert.isTrue(ConfigError.isConfigError(first))
      assert.include(String(first), "BIG3_TIMEOUT_GEMINI_API")
      process.env[key] = "30"
      assert.strictEqual(await BigPromise.protect(async () => "ok", { operation: "gemini_api", ...quiet }), "ok")
      // The same holds inside one instance that reads the environment itself.
      process.env[key] = "soon"
      const lazy = BigPromise.make()
      const refused = await lazy.withRetry(async () => "ok", "gemini", quiet).catch((e: unknown) => e)
      assert.isTrue(ConfigError.isConfigError(refused))
      process.env[key] = "30"
      assert.strictEqual(await lazy.withRetry(async () => "ok", "gemini", quiet), "ok")
    } finally {
      if (before === undefined) delete process.env[key]
      else process.env[key] = before
    }
  })

  it("two instances do not share breakers; one given the Effect registry shares it", async () => {
    const config = Effect.runSync(ReliabilityConfig.make())
    const breakers = Effect.runSync(Effect.provideService(CircuitBreaker.make, ReliabilityConfig.ReliabilityConfig, config))
    const first = BigPromise.make({ config, breakers })
    const second = BigPromise.make({ config })
    const sharing = BigPromise.make({ config, breakers })
    const { fn } = flaky(100, new Errors.ServiceUnavailable({ service: "gemini", message: "503" }))
    const options = {
      operation: "gemini_api",
      policy: { ...ReliabilityConfig.defaultPolicies.gemini, maxAttempts: 1 },
      breaker: "gemini",
      ...quiet
    } as const
    for (let i = 0; i < 5; i++) await first.protect(fn, options).catch(() => undefined)
    assert.strictEqual(breakers.get("gemini").state(Date.now()), "open")
    assert.instanceOf(await sharing.protect(async () => "ok", options).catch((e: unknown) => e), Errors.CircuitOpen)
    assert.strictEqual(await second.protect(async () => "ok", options), "ok")
  })

  it("a protector built once runs many calls with the same breaker", async () => {
    const gemini = big3.protector({ operation: "gemini_api", policy: "gemini", breaker: "gemini-protector", ...quiet })
    assert.deepStrictEqual(await Promise.all([gemini(async () => 1), gemini(async () => 2)]), [1, 2])
    const { fn, calls } = flaky(100, new Errors.ServiceUnavailable({ service: "gemini", message: "503" }))
    const once = big3.protector({
      operation: "gemini_api",
      policy: { ...ReliabilityConfig.defaultPolicies.gemini, maxAttempts: 1 },
      breaker: "gemini-protector",
      ...quiet
    })
    for (let i = 0; i < 6; i++) await once(fn).catch(() => undefined)
    assert.strictEqual(calls.length, 5)
    assert.instanceOf(await gemini(async () => 3).catch((e: unknown) => e), Errors.CircuitOpen)
  })
})
