import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Errors from "../src/Errors.js"

const millis = (duration: Duration.Duration | undefined) => duration === undefined ? undefined : Duration.toMillis(duration)

describe("Errors", () => {
  it("carries a literal retryable flag in the value", () => {
    const cases: ReadonlyArray<readonly [Errors.Big3Error, boolean]> = [
      [new Errors.NetworkError({ service: "gemini", message: "refused" }), true],
      [Errors.operationTimeout({ operation: "agent_creation", timeout: Duration.seconds(60) }), true],
      [new Errors.RateLimited({ service: "gemini", message: "slow down" }), true],
      [new Errors.QuotaExhausted({ service: "gemini", message: "daily quota gone" }), false],
      [new Errors.ServiceUnavailable({ service: "gemini", message: "503" }), true],
      [new Errors.InvalidRequest({ service: "gemini", message: "400" }), false],
      [new Errors.Unauthorized({ service: "gemini", message: "401" }), false],
      [new Errors.DecodeError({ service: "gemini", message: "bad body" }), false],
      [new Errors.CircuitOpen({ service: "gemini", message: "open", retryAfter: Duration.seconds(1) }), false],
      [new Errors.NotFound({ service: "agents", message: "no such agent" }), false]
    ]
    for (const [error, retryable] of cases) {
      assert.strictEqual(error.retryable, retryable, error._tag)
      assert.strictEqual(Errors.isRetryable(error), retryable, error._tag)
      assert.isTrue(Errors.isBig3Error(error))
    }
    assert.isFalse(Errors.isRetryable(new Error("plain")))
    assert.isFalse(Errors.isRetryable(undefined))
  })

  it("an OperationTimeout says which operation and how long", () => {
    const error = Errors.operationTimeout({ operation: "agent_creation", timeout: Duration.seconds(60) })
    assert.strictEqual(error.message, "agent_creation timed out after 60s")
    assert.strictEqual(error.operation, "agent_creation")
    assert.strictEqual(millis(error.timeout), 60_000)
  })

  it("maps HTTP statuses to the taxonomy", () => {
    const tagOf = (status: number, service = "gemini") => Errors.fromHttp({ service, status })._tag
    assert.strictEqual(tagOf(429), "RateLimited")
    for (const status of [408, 500, 502, 503, 504, 529]) assert.strictEqual(tagOf(status), "ServiceUnavailable")
    for (const status of [400, 404, 409, 413, 422]) assert.strictEqual(tagOf(status), "InvalidRequest")
    for (const status of [401, 403]) assert.strictEqual(tagOf(status), "Unauthorized")
    assert.strictEqual(tagOf(409, "anthropic"), "ServiceUnavailable")
  })

  it("reads Retry-After as seconds, as an HTTP date, and retry-after-ms", () => {
    const now = Date.parse("2026-11-29T12:00:00Z")
    const seconds = Errors.fromHttp({ service: "gemini", status: 429, headers: { "Retry-After": "3" } })
    assert.strictEqual(millis(Errors.retryAfterOf(seconds)), 3000)
    const date = Errors.fromHttp({
      service: "anthropic",
      status: 429,
      headers: { "retry-after": "Sun, 29 Nov 2026 12:00:05 GMT" },
      now
    })
    assert.strictEqual(millis(Errors.retryAfterOf(date)), 5000)
    const ms = Errors.fromHttp({ service: "anthropic", status: 429, headers: { "retry-after-ms": "1500", "retry-after": "9" } })
    assert.strictEqual(millis(Errors.retryAfterOf(ms)), 1500)
    const past = Errors.fromHttp({ service: "x", status: 503, headers: { "retry-after": "Sun, 29 Nov 2026 11:00:00 GMT" }, now })
    assert.strictEqual(millis(Errors.retryAfterOf(past)), 0)
  })

  it("reads a Gemini RetryInfo detail and an API_KEY_INVALID reason", () => {
    const rateLimited = Errors.fromHttp({
      service: "gemini",
      status: 429,
      body: JSON.stringify({
        error: {
          code: 429,
          message: "Resource has been exhausted (e.g. check quota).",
          status: "RESOURCE_EXHAUSTED",
          details: [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "3s" }]
        }
      })
    })
    assert.strictEqual(rateLimited._tag, "RateLimited")
    assert.strictEqual(millis(Errors.retryAfterOf(rateLimited)), 3000)
    assert.include(rateLimited.message, "RESOURCE_EXHAUSTED")

    const badKey = Errors.fromHttp({
      service: "gemini",
      status: 400,
      body: {
        error: {
          code: 400,
          message: "API key not valid. Please pass a valid API key.",
          status: "INVALID_ARGUMENT",
          details: [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "API_KEY_INVALID" }]
        }
      }
    })
    assert.strictEqual(badKey._tag, "Unauthorized")
    assert.isFalse(badKey.retryable)
  })

  it("a 429 whose QuotaFailure names a per-day quota is QuotaExhausted; a per-minute one stays RateLimited", () => {
    const body = (quotaId: string) => ({
      error: {
        code: 429,
        status: "RESOURCE_EXHAUSTED",
        message: "You exceeded your current quota",
        details: [
          {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            violations: [{ quotaId, quotaDimensions: { model: "gemini-2.5-pro" }, quotaValue: "50" }]
          },
          { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "13.5s" }
        ]
      }
    })
    const now = Date.parse("2026-11-29T12:00:00Z")
    const daily = Errors.fromHttp({ service: "gemini", status: 429, body: body("GenerateRequestsPerDayPerProjectPerModel"), now })
    assert.strictEqual(daily._tag, "QuotaExhausted")
    assert.isFalse(daily.retryable)
    assert.isTrue(Errors.isBig3Error(daily))
    assert.strictEqual(millis(Errors.retryAfterOf(daily)), 13_500)
    assert.strictEqual(
      daily.message,
      "gemini daily quota exhausted (GenerateRequestsPerDayPerProjectPerModel, model gemini-2.5-pro, limit 50): " +
        "retrying within minutes will not help; the server says it resets in 13.5s (at 2026-11-29T12:00:13.500Z)"
    )
    const perMinute = Errors.fromHttp({ service: "gemini", status: 429, body: body("GenerateRequestsPerMinutePerProjectPerModel"), now })
    assert.strictEqual(perMinute._tag, "RateLimited")
    assert.strictEqual(millis(Errors.retryAfterOf(perMinute)), 13_500)
  })

  // OpenAI answers an account out of credit or past its spending limit with a 429 too; only the
  // body tells it from a rate limit (type insufficient_quota, code insufficient_quota or a billing code).
  it("an OpenAI 429 whose body says insufficient_quota is QuotaExhausted; a rate_limit_exceeded 429 stays RateLimited", () => {
    const openAiError = (type: string, code: string | null, message: string) => ({ error: { message, type, param: null, code } })
    const quota = Errors.fromHttp({
      service: "openai_realtime",
      status: 429,
      headers: { "retry-after": "20" },
      body: JSON.stringify(openAiError("insufficient_quota", "insufficient_quota", "You exceeded your current quota, please check your plan and billing details."))
    })
    assert.strictEqual(quota._tag, "QuotaExhausted")
    assert.isFalse(quota.retryable)
    assert.isTrue(Errors.isBig3Error(quota))
    assert.isUndefined(Errors.retryAfterOf(quota))
    assert.deepStrictEqual(
      quota._tag === "QuotaExhausted" ? { quotaId: quota.quotaId, status: quota.status, message: quota.message } : undefined,
      {
        quotaId: "insufficient_quota",
        status: 429,
        message: "openai_realtime quota exhausted (insufficient_quota): the account is out of credit or past its spending " +
          "limit; retrying will not help until someone checks the plan and billing (openai_realtime answered HTTP 429: " +
          "insufficient_quota: You exceeded your current quota, please check your plan and billing details.)"
      }
    )
    // The type alone decides (older answers had code null; newer ones name the billing cause).
    const noCode = Errors.fromHttp({ service: "openai", status: 429, body: openAiError("insufficient_quota", null, "You exceeded your current quota") })
    assert.deepStrictEqual([noCode._tag, noCode._tag === "QuotaExhausted" ? noCode.quotaId : undefined], ["QuotaExhausted", "insufficient_quota"])
    const credit = Errors.fromHttp({ service: "openai", status: 429, body: openAiError("insufficient_quota", "credit_balance_exhausted", "You have no credits remaining.") })
    assert.deepStrictEqual([credit._tag, credit._tag === "QuotaExhausted" ? credit.quotaId : undefined], ["QuotaExhausted", "credit_balance_exhausted"])
    const rateLimited = Errors.fromHttp({
      service: "openai",
      status: 429,
      body: openAiError("requests", "rate_limit_exceeded", "Rate limit reached for requests")
    })
    assert.strictEqual(rateLimited._tag, "RateLimited")
    // Only a 429 says the quota is gone: the same body with another status keeps that status's meaning.
    assert.strictEqual(
      Errors.fromHttp({ service: "openai", status: 503, body: openAiError("insufficient_quota", "insufficient_quota", "m") })._tag,
      "ServiceUnavailable"
    )
  })

  it("honours Anthropic's x-should-retry", () => {
    assert.strictEqual(
      Errors.fromHttp({ service: "anthropic", status: 400, headers: { "x-should-retry": "true" } })._tag,
      "ServiceUnavailable"
    )
    assert.strictEqual(
      Errors.fromHttp({ service: "anthropic", status: 500, headers: { "x-should-retry": "false" } }).retryable,
      false
    )
  })

  it("puts the upstream's own error text in the message", () => {
    const error = Errors.fromHttp({
      service: "anthropic",
      status: 529,
      body: { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }
    })
    assert.strictEqual(error.message, "anthropic answered HTTP 529: overloaded_error: Overloaded")
    const observability = Errors.fromHttp({ service: "observability", status: 400, body: { error: "Missing required fields" } })
    assert.strictEqual(observability.message, "observability answered HTTP 400: Missing required fields")
  })
})
