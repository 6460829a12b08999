/**
 * The Claude Agent SDK adapter keeps the upstream's hint of when to come back: scripted SDK
 * message sequences fed through the real adapter (`makeClaudeAgentSdk` with a fake `query`).
 */
import type * as Sdk from "@anthropic-ai/claude-agent-sdk"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as nodePath from "node:path"
import * as Agents from "../src/Agents.js"
import type { QueryFunction } from "../src/agents/ClaudeAgentSdk.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import type { Big3Error } from "../src/Errors.js"
import * as Observability from "../src/Observability.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import { sdkAssistant, tempDir } from "./support/agents.js"

const session_id = "00000000-0000-4000-8000-00000000000a"
const uuid = "00000000-0000-4000-8000-000000000001"

const usage: Sdk.NonNullableUsage = {
  cache_creation: { ephemeral_1h_input_tokens: 0, ephemeral_5m_input_tokens: 0 },
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
  fallback_credit: null,
  inference_geo: "",
  input_tokens: 0,
  iterations: [],
  output_tokens: 0,
  output_tokens_details: { thinking_tokens: 0 },
  server_tool_use: { web_search_requests: 0, web_fetch_requests: 0 },
  service_tier: "standard",
  speed: "standard"
}

const assistant = (text: string, extra: { readonly error?: Sdk.SDKAssistantMessageError; readonly request_id?: string } = {}) =>
  sdkAssistant([{ type: "text", text, citations: null }], extra)

/** Claude Code's own retry of a failed API call, as Claude Code 2.1 reports it. */
const apiRetry = (attempt: number, retry_delay_ms: number, error_status: number | null, error: Sdk.SDKAssistantMessageError): Sdk.SDKAPIRetryMessage => ({
  type: "system",
  subtype: "api_retry",
  attempt,
  max_retries: 2,
  retry_delay_ms,
  error_status,
  error,
  uuid,
  session_id
})

const rateLimitEvent = (info: Sdk.SDKRateLimitInfo): Sdk.SDKRateLimitEvent => ({
  type: "rate_limit_event",
  rate_limit_info: info,
  uuid,
  session_id
})

/** The result of a turn that ended on an API error, as Claude Code 2.1 writes it. */
const apiErrorResult = (status: number, text: string): Sdk.SDKResultSuccess => ({
  type: "result",
  subtype: "success",
  duration_ms: 163,
  duration_api_ms: 0,
  is_error: true,
  api_error_status: status,
  num_turns: 1,
  result: text,
  stop_reason: "stop_sequence",
  total_cost_usd: 0,
  usage,
  modelUsage: {},
  permission_denials: [],
  terminal_reason: "api_error",
  uuid,
  session_id
})

const rejected429 = "API Error: Request rejected (429) · This request would exceed the rate limit for your organization. Please try again later."

/** A `query` that answers every call with `messages`, counting the calls. */
const scriptedQuery = (messages: ReadonlyArray<Sdk.SDKMessage>, calls: { count: number }): QueryFunction => () => {
  calls.count++
  const generator = (async function*() {
    yield* messages
  })()
  return { [Symbol.asyncIterator]: () => generator, close: () => {} }
}

const observabilityStub = Layer.mock(Observability.Observability, { emit: () => Effect.void, flush: Effect.void })

const backendOver = (messages: ReadonlyArray<Sdk.SDKMessage>, calls = { count: 0 }) =>
  Agents.makeClaudeAgentSdk({
    model: "claude-sonnet-5-5",
    permissionMode: "acceptEdits",
    maxRetries: 2,
    forwardHooks: false,
    query: scriptedQuery(messages, calls)
  }).pipe(Effect.provide(observabilityStub))

/** The error a command's run over `messages` fails with. */
// 2027-01-15T08:00:00.000Z
const now = 1_800_000_000_000

/** The error of a run over `messages`, run at `now` on the TestClock. */
const runFailure = (messages: ReadonlyArray<Sdk.SDKMessage>): Effect.Effect<Big3Error> =>
  Effect.zipRight(
    TestClock.setTime(now),
    Effect.flatMap(backendOver(messages), (backend) =>
      Stream.runDrain(backend.run({ sessionId: session_id, prompt: "work", cwd: "/nonexistent" })).pipe(
        Effect.flip,
        Effect.orDieWith(() => new Error("the run succeeded"))
      ))
  )

const retryAfterMillis = (error: Big3Error): number | undefined =>
  "retryAfter" in error && error.retryAfter !== undefined ? Duration.toMillis(error.retryAfter) : undefined

describe("Claude Code's retry hints", () => {
  it.effect("a 429 after Claude Code's own retries is RateLimited with its last retry delay as retryAfter", () =>
    Effect.gen(function*() {
      const error = yield* runFailure([
        apiRetry(1, 2057, 429, "rate_limit"),
        apiRetry(2, 3472, 429, "rate_limit"),
        assistant(rejected429, { error: "rate_limit", request_id: "req_01c0WyyHbiQzSU8PF9U4OlHB" }),
        apiErrorResult(429, rejected429)
      ])
      assert.strictEqual(error._tag, "RateLimited")
      assert.strictEqual(retryAfterMillis(error), 3472)
      assert.include(error.message, "it asks to wait 3.472s (until 2027-01-15T08:00:03.472Z)")
    }))

  it.effect("an overload after Claude Code's own retries is ServiceUnavailable with its last retry delay", () =>
    Effect.gen(function*() {
      const error = yield* runFailure([
        apiRetry(1, 1100, 529, "overloaded"),
        assistant("API Error: Repeated 529 Overloaded errors", { error: "overloaded" }),
        apiErrorResult(529, "API Error: Repeated 529 Overloaded errors")
      ])
      assert.strictEqual(error._tag, "ServiceUnavailable")
      assert.strictEqual(retryAfterMillis(error), 1100)
    }))

  it.effect("a rejected rate limit's resetsAt (Unix seconds) is the hint, before Claude Code's retry delay", () =>
    Effect.gen(function*() {
      const error = yield* runFailure([
        rateLimitEvent({ status: "allowed_warning", resetsAt: now / 1000 + 7200, rateLimitType: "five_hour" }),
        apiRetry(1, 2000, 429, "rate_limit"),
        rateLimitEvent({ status: "rejected", resetsAt: now / 1000 + 3600, rateLimitType: "five_hour" }),
        assistant(rejected429, { error: "rate_limit" }),
        apiErrorResult(429, rejected429)
      ])
      assert.strictEqual(error._tag, "RateLimited")
      assert.strictEqual(retryAfterMillis(error), 3_600_000)
      assert.include(error.message, "it asks to wait 3600s (until 2027-01-15T09:00:00.000Z)")
    }))

  it.effect("a retry that was followed by an answer lends no hint to a later failure; nor does a connection retry", () =>
    Effect.gen(function*() {
      const error = yield* runFailure([
        apiRetry(1, 5000, 429, "rate_limit"),
        assistant("working on it"),
        apiRetry(1, 700, null, "unknown"),
        assistant(rejected429, { error: "rate_limit" }),
        apiErrorResult(429, rejected429)
      ])
      assert.strictEqual(error._tag, "RateLimited")
      assert.strictEqual(retryAfterMillis(error), undefined)
      assert.notInclude(error.message, "asks to wait")
    }))

  it.effect("a reset already past is a zero wait", () =>
    Effect.gen(function*() {
      const error = yield* runFailure([
        rateLimitEvent({ status: "rejected", resetsAt: now / 1000 - 60 }),
        assistant(rejected429, { error: "rate_limit" }),
        apiErrorResult(429, rejected429)
      ])
      assert.strictEqual(retryAfterMillis(error), 0)
    }))

  it.effect("a turn's API error quotes the request-id of the answer that ended it, as Anthropic asks", () =>
    Effect.gen(function*() {
      const error = yield* runFailure([
        apiRetry(1, 1000, 429, "rate_limit"),
        assistant(rejected429, { error: "rate_limit", request_id: "req_01c0WyyHbiQzSU8PF9U4OlHB" }),
        apiErrorResult(429, rejected429)
      ])
      assert.strictEqual(
        error.message,
        `anthropic answered HTTP 429 (request-id req_01c0WyyHbiQzSU8PF9U4OlHB): ${rejected429}; ` +
          "it asks to wait 1s (until 2027-01-15T08:00:01.000Z)"
      )
      const unauthorized = yield* runFailure([
        assistant("Invalid API key", { error: "authentication_failed", request_id: "req_01aaaaaaaaaaaaaaaaaaaaaa" }),
        apiErrorResult(401, "Invalid API key")
      ])
      assert.strictEqual(unauthorized._tag, "Unauthorized")
      assert.include(unauthorized.message, "(request-id req_01aaaaaaaaaaaaaaaaaaaaaa)")
    }))

  it.live("a greeting whose limit resets in an hour fails Agents.create at once (longer than the policy's maxDelay), with one query", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const resetsAt = Math.floor((yield* Clock.currentTimeMillis) / 1000) + 3600
      const calls = { count: 0 }
      const config = ReliabilityConfig.layerWith({})
      const layer = Agents.layerWith({ agentsDir: nodePath.join(dir, "agents") }).pipe(
        Layer.provide(Layer.mergeAll(
          config,
          CircuitBreaker.layer.pipe(Layer.provide(config)),
          observabilityStub,
          Layer.effect(Agents.AgentBackend, backendOver([
            rateLimitEvent({ status: "rejected", resetsAt, rateLimitType: "five_hour" }),
            assistant(rejected429, { error: "rate_limit" }),
            apiErrorResult(429, rejected429)
          ], calls)),
          NodeFileSystem.layer,
          NodePath.layer,
          SqliteClient.layer({ filename: ":memory:" })
        ))
      )
      const error = yield* Effect.flip(Agents.create({ name: "limited", type: "claude_code" })).pipe(Effect.provide(layer))
      assert.strictEqual(error._tag, "RateLimited")
      assert.strictEqual(calls.count, 1)
      const hint = "retryAfter" in error && error.retryAfter !== undefined ? Duration.toSeconds(error.retryAfter) : undefined
      assert.isDefined(hint)
      assert.approximately(hint!, 3600, 2)
    }).pipe(Effect.scoped))
})
