/**
 * Anthropic's official `@anthropic-ai/sdk` against `big3 sandbox` over 127.0.0.1: text,
 * streaming, token counting, tools, thinking, stop conditions, each error class as the SDK
 * classifies real ones, and the SDK's own retries honouring the sandbox's hints.
 *
 * Facts about the real API come from its public documentation (docs.claude.com: Messages,
 * streaming, errors, rate limits, extended thinking) and the SDK's source
 * (anthropics/anthropic-sdk-typescript); each test says which.
 */
import Anthropic, {
  APIError,
  AuthenticationError,
  BadRequestError,
  ContentTooLargeError,
  NotFoundError,
  OverloadedError,
  RateLimitError
} from "@anthropic-ai/sdk"
import { assert, describe, it, vi } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as ClaudeAgentSdk from "../src/agents/ClaudeAgentSdk.js"
import * as BigPromise from "../src/Promise.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Sandbox from "../src/Sandbox.js"

const model = "claude-sonnet-5-5"

const client = (sandbox: Sandbox.Service, options: { readonly maxRetries?: number; readonly apiKey?: string } = {}) =>
  new Anthropic({ apiKey: options.apiKey ?? "sandbox-key", baseURL: sandbox.url, maxRetries: options.maxRetries ?? 0 })

const call = <A>(f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: (error) => error })

/** The SDK's error for a call that must fail. */
const failure = <A>(f: () => Promise<A>) =>
  Effect.flatMap(Effect.flip(call(f)), (error) =>
    error instanceof APIError ? Effect.succeed(error) : Effect.dieMessage(`expected an APIError, got ${String(error)}`))

const ask = (text: string) => ({ model, max_tokens: 256, messages: [{ role: "user" as const, content: text }] })

describe("@anthropic-ai/sdk against the sandbox", () => {
  // The SDK warns (console.warn) when a request names a model on its deprecation list, with the
  // model's end-of-life date: claude-sonnet-4-5 reached it on 2026-11-30.
  it.scopedLive("the agents' default model (CLAUDE_AGENT_MODEL unset) draws no deprecation warning and is answered", () =>
    Effect.gen(function*() {
      const settings = yield* Effect.withConfigProvider(ClaudeAgentSdk.config, ConfigProvider.fromMap(new Map()))
      const warn = vi.spyOn(console, "warn").mockImplementation(() => {})
      yield* Effect.addFinalizer(() => Effect.sync(() => warn.mockRestore()))
      const sandbox = yield* Sandbox.make()
      const message = yield* call(() => client(sandbox).messages.create({ ...ask("hi"), model: settings.model }))
      assert.strictEqual(message.model, settings.model)
      assert.deepStrictEqual(warn.mock.calls, [])
    }))

  // Messages API response shape; usage as documented (cache_creation breakdown, service_tier);
  // rate-limit headers on every answer (docs: "Rate limits" → response headers).
  it.scopedLive("messages.create answers text with full usage, a request id and rate-limit headers", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const { data, request_id, response } = yield* call(() =>
        client(sandbox).messages.create(ask("hello claude")).withResponse()
      )
      // Compared as plain JSON: the SDK's types list every field the API may send.
      const content: unknown = data.content
      assert.deepStrictEqual(content, [{ type: "text", text: "sandbox answer to: hello claude" }])
      assert.strictEqual(data.stop_reason, "end_turn")
      assert.strictEqual(data.stop_sequence, null)
      const usage: unknown = data.usage
      assert.deepStrictEqual(usage, {
        input_tokens: data.usage.input_tokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
        cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
        output_tokens: data.usage.output_tokens,
        service_tier: "standard"
      })
      assert.match(request_id ?? "", /^req_01[0-9A-Za-z]{22}$/)
      assert.strictEqual(response.headers.get("anthropic-ratelimit-requests-limit"), "4000")
      assert.strictEqual(response.headers.get("anthropic-ratelimit-requests-remaining"), "3999")
      assert.match(response.headers.get("anthropic-ratelimit-requests-reset") ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$/)
      for (const kind of ["tokens", "input-tokens", "output-tokens"]) {
        assert.isNotNull(response.headers.get(`anthropic-ratelimit-${kind}-remaining`), kind)
      }
    }))

  it.scopedLive("messages.stream yields the text deltas and the final message", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const { deltas, message } = yield* call(async () => {
        const stream = client(sandbox).messages.stream(ask("tell me about the sea and the sky"))
        const deltas: Array<string> = []
        stream.on("text", (delta) => deltas.push(delta))
        return { deltas, message: await stream.finalMessage() }
      })
      assert.isAtLeast(deltas.length, 2)
      assert.strictEqual(deltas.join(""), "sandbox answer to: tell me about the sea and the sky")
      const content: unknown = message.content
      assert.deepStrictEqual(content, [{ type: "text", text: "sandbox answer to: tell me about the sea and the sky" }])
      assert.strictEqual(message.usage.service_tier, "standard")
    }))

  it.scopedLive("messages.countTokens answers input_tokens", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const counted = yield* call(() =>
        client(sandbox).messages.countTokens({ model, messages: [{ role: "user", content: "hello claude" }] })
      )
      assert.deepStrictEqual(counted, { input_tokens: 3 })
    }))

  // Likewise every top-level body parameter of the SDK's (beta) MessageCountTokensParams.
  it.scopedLive("beta.messages.countTokens with every top-level parameter the SDK sends is answered", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const counted = yield* call(() =>
        client(sandbox).beta.messages.countTokens({
          model,
          messages: [{ role: "user", content: "hello claude" }],
          billing_policy: null,
          cache_control: { type: "ephemeral" },
          compaction: null,
          context_management: null,
          mcp_servers: [],
          output_config: {},
          output_format: null,
          speed: "standard",
          system: "be brief",
          thinking: { type: "disabled" },
          tool_choice: { type: "auto" },
          tools: [],
          betas: ["context-management-2025-06-27"],
          user_profile_id: "sandbox-profile",
          workspace_id: "sandbox-workspace"
        })
      )
      assert.strictEqual(typeof counted.input_tokens, "number")
    }))

  // Every top-level body parameter of the SDK's MessageCreateParams, beta ones included (betas,
  // user_profile_id and workspace_id travel as headers), is one the API knows.
  it.scopedLive("beta.messages.create with every top-level parameter the SDK sends is answered", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const message = yield* call(() =>
        client(sandbox).beta.messages.create({
          ...ask("all parameters"),
          billing_policy: null,
          cache_control: { type: "ephemeral" },
          compaction: null,
          container: null,
          context_management: null,
          diagnostics: null,
          fallback_credit_token: null,
          fallbacks: null,
          inference_geo: null,
          mcp_servers: [],
          metadata: { user_id: "sandbox-user" },
          output_config: {},
          output_format: null,
          service_tier: "auto",
          speed: "standard",
          stop_sequences: [],
          stream: false,
          system: "be brief",
          thinking: { type: "disabled" },
          thread: null,
          tool_choice: { type: "auto" },
          tools: [],
          betas: ["context-management-2025-06-27"],
          user_profile_id: "sandbox-profile",
          workspace_id: "sandbox-workspace"
        })
      )
      assert.strictEqual(message.stop_reason, "end_turn")
      const [request] = yield* sandbox.requestsFor("anthropic")
      assert.strictEqual(request?.headers["anthropic-beta"], "context-management-2025-06-27")
    }))

  // Tool use docs: with tool_choice {type:"tool"} the model calls that tool with input matching
  // its input_schema (required fields present).
  it.scopedLive("a forced tool_use carries the schema's required input", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const message = yield* call(() =>
        client(sandbox).messages.create({
          ...ask("weather in Oslo?"),
          tools: [{
            name: "get_weather",
            input_schema: {
              type: "object",
              properties: { city: { type: "string" }, days: { type: "integer" }, hourly: { type: "boolean" } },
              required: ["city", "days"]
            }
          }],
          tool_choice: { type: "tool", name: "get_weather" }
        })
      )
      assert.strictEqual(message.stop_reason, "tool_use")
      const [block] = message.content
      assert.strictEqual(block?.type, "tool_use")
      if (block?.type === "tool_use") {
        assert.strictEqual(block.name, "get_weather")
        assert.deepStrictEqual(block.input, { city: "sandbox", days: 1 })
        assert.match(block.id, /^toolu_01/)
      }
    }))

  // Messages API: stop_reason "max_tokens" when max_tokens is reached, "stop_sequence" (with the
  // matched sequence) when a custom stop sequence is generated.
  it.scopedLive("max_tokens and stop_sequences stop the answer", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const ai = client(sandbox)
      const short = yield* call(() => ai.messages.create({ ...ask("a question that needs a long answer"), max_tokens: 2 }))
      assert.strictEqual(short.stop_reason, "max_tokens")
      const shortContent: unknown = short.content
      assert.deepStrictEqual(shortContent, [{ type: "text", text: "sandbox " }])
      assert.strictEqual(short.usage.output_tokens, 2)
      const stopped = yield* call(() => ai.messages.create({ ...ask("count: one two STOP three"), stop_sequences: ["STOP", "two"] }))
      assert.strictEqual(stopped.stop_reason, "stop_sequence")
      assert.strictEqual(stopped.stop_sequence, "two")
      const stoppedContent: unknown = stopped.content
      assert.deepStrictEqual(stoppedContent, [{ type: "text", text: "sandbox answer to: count: one " }])
    }))

  // Extended thinking docs: with thinking enabled the answer starts with a signed thinking block,
  // streamed as thinking_delta then signature_delta.
  it.scopedLive("enabled thinking answers a signed thinking block first, also when streamed", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const ai = client(sandbox)
      const request = { ...ask("think first"), max_tokens: 4096, thinking: { type: "enabled" as const, budget_tokens: 2048 } }
      const message = yield* call(() => ai.messages.create(request))
      assert.deepStrictEqual(message.content.map((block) => block.type), ["thinking", "text"])
      const thinking = message.content[0]
      assert.isTrue(thinking?.type === "thinking" && thinking.signature.length > 0 && thinking.thinking.includes("think first"))
      const streamed = yield* call(() => ai.messages.stream(request).finalMessage())
      assert.deepStrictEqual(streamed.content.map((block) => block.type), ["thinking", "text"])
      const streamedThinking = streamed.content[0]
      assert.isTrue(streamedThinking?.type === "thinking" && streamedThinking.signature.length > 0)
      const tooSmall = yield* failure(() => ai.messages.create({ ...request, max_tokens: 2048 }))
      assert.instanceOf(tooSmall, BadRequestError)
    }))

  describe("errors, as the SDK classifies real ones", () => {
    // Errors docs: 404 not_found_error for a model that does not exist; 400 invalid_request_error;
    // 401 authentication_error; every error body has request_id and the request-id header.
    it.scopedLive("unknown model 404, empty messages 400, wrong key 401, each with its type and request id", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const ai = client(sandbox)
        const unknownModel = yield* failure(() => ai.messages.create({ ...ask("hi"), model: "claude-imaginary-9" }))
        assert.instanceOf(unknownModel, NotFoundError)
        assert.strictEqual(unknownModel.type, "not_found_error")
        assert.strictEqual(unknownModel.apiMessage, "model: claude-imaginary-9")
        assert.match(unknownModel.requestID ?? "", /^req_01/)
        const empty = yield* failure(() => ai.messages.create({ model, max_tokens: 16, messages: [] }))
        assert.instanceOf(empty, BadRequestError)
        assert.strictEqual(empty.type, "invalid_request_error")
        const wrongKey = yield* failure(() => client(sandbox, { apiKey: "wrong-key" }).messages.create(ask("hi")))
        assert.instanceOf(wrongKey, AuthenticationError)
        assert.strictEqual(wrongKey.type, "authentication_error")
      }))

    // The API validates the body strictly: a top-level field it does not know is a 400 naming it,
    // in pydantic's words (reports in public issues: "response_format: Extra inputs are not
    // permitted", with the request_id in the body).
    it.scopedLive("an unknown top-level field is a 400 'Extra inputs are not permitted' naming it, with its request id", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        // A variable, not a literal, so the SDK's types let the extra field through as a raw caller would.
        const request = { ...ask("hi"), response_format: { type: "json_object" } }
        const error = yield* failure(() => client(sandbox).messages.create(request))
        assert.instanceOf(error, BadRequestError)
        assert.strictEqual(error.type, "invalid_request_error")
        assert.strictEqual(error.apiMessage, "response_format: Extra inputs are not permitted")
        assert.match(error.requestID ?? "", /^req_01/)
        assert.deepStrictEqual(error.error, {
          type: "error",
          error: { type: "invalid_request_error", message: "response_format: Extra inputs are not permitted" },
          request_id: error.requestID
        })
      }))

    // count_tokens validates as strictly, against its own narrower list: a client that reuses its
    // Messages body is refused for max_tokens (reported in public issues of API proxies).
    it.scopedLive("count_tokens refuses an unknown top-level field, max_tokens included, as an extra input", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const withMaxTokens = ask("hi")
        const refused = yield* failure(() => client(sandbox).messages.countTokens(withMaxTokens))
        assert.instanceOf(refused, BadRequestError)
        assert.strictEqual(refused.type, "invalid_request_error")
        assert.strictEqual(refused.apiMessage, "max_tokens: Extra inputs are not permitted")
        assert.match(refused.requestID ?? "", /^req_01/)
        const withFormat = { model, messages: [{ role: "user" as const, content: "hi" }], response_format: {} }
        const beta = yield* failure(() => client(sandbox).beta.messages.countTokens(withFormat))
        assert.instanceOf(beta, BadRequestError)
        assert.strictEqual(beta.apiMessage, "response_format: Extra inputs are not permitted")
      }))

    // API version 2026-10-21 (the SDK's default since 1.0.0) removed temperature, top_p and top_k:
    // sent anyway they are extra inputs; under 2023-06-01 (Claude Code's version) they are accepted.
    it.scopedLive("temperature, top_p and top_k are accepted under anthropic-version 2023-06-01 only", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make()
        const sampled = { ...ask("hi"), temperature: 0.2, top_p: 0.9, top_k: 40 }
        const legacy = new Anthropic({
          apiKey: "sandbox-key",
          baseURL: sandbox.url,
          maxRetries: 0,
          defaultHeaders: { "anthropic-version": "2023-06-01" }
        })
        const accepted = yield* call(() => legacy.messages.create(sampled))
        assert.strictEqual(accepted.stop_reason, "end_turn")
        const withTemperature = { ...ask("hi"), temperature: 1 }
        const refused = yield* failure(() => client(sandbox).messages.create(withTemperature))
        assert.instanceOf(refused, BadRequestError)
        assert.strictEqual(refused.apiMessage, "temperature: Extra inputs are not permitted")
      }))

    // Errors docs: 413 request_too_large for a request over the size limit (32 MB; lowered here).
    it.scopedLive("a body over the size limit is a ContentTooLargeError of type request_too_large", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ maxRequestBytes: 1000 })
        const error = yield* failure(() => client(sandbox).messages.create(ask("x".repeat(2000))))
        assert.instanceOf(error, ContentTooLargeError)
        assert.strictEqual(error.type, "request_too_large")
        assert.match(error.requestID ?? "", /^req_01/)
      }))

    it.scopedLive("429 is a RateLimitError with retry-after and spent rate-limit headers; 529 an OverloadedError", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ plans: { anthropic: [{ status: 429, retryAfter: "7 seconds" }, 529] } })
        const ai = client(sandbox)
        const limited = yield* failure(() => ai.messages.create(ask("hi")))
        assert.instanceOf(limited, RateLimitError)
        assert.strictEqual(limited.type, "rate_limit_error")
        assert.strictEqual(limited.headers?.get("retry-after"), "7")
        assert.strictEqual(limited.headers?.get("anthropic-ratelimit-requests-remaining"), "0")
        const overloaded = yield* failure(() => ai.messages.create(ask("hi")))
        assert.instanceOf(overloaded, OverloadedError)
        assert.strictEqual(overloaded.status, 529)
        assert.strictEqual(overloaded.type, "overloaded_error")
      }))

    // Errors docs: "When contacting us about a specific request, please include the request ID".
    // big3's Promise API around the SDK: the failure it reports quotes it, and honours retry-after.
    it.scopedLive("big3.protect around the SDK: a 429 whose retry-after passes maxDelay fails at once, quoting its request-id", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ plans: { anthropic: [{ status: 429, retryAfter: "86400 seconds" }] } })
        const big3 = BigPromise.make({ config: yield* ReliabilityConfig.make({}) })
        const reported: Array<string> = []
        const error = yield* failure(() =>
          big3.protect(() => client(sandbox).messages.create(ask("hi")), {
            operation: "anthropic_api",
            policy: "anthropic",
            service: "anthropic",
            onRetry: (event) => reported.push(event.message)
          }))
        assert.instanceOf(error, RateLimitError)
        assert.match(error.requestID ?? "", /^req_01/)
        assert.strictEqual(reported.length, 1)
        assert.include(reported[0], `anthropic answered HTTP 429 (request-id ${error.requestID}); it asks to wait 86400s`)
        assert.strictEqual((yield* sandbox.requestsFor("anthropic")).length, 1)
      }))

    // Streaming docs: errors can arrive inside a 200 stream as `event: error` (e.g. overloaded_error).
    it.scopedLive("an error event inside a 200 stream ends the SDK's stream with that error type", () =>
      Effect.gen(function*() {
        const sandbox = yield* Sandbox.make({ plans: { anthropic: [{ midStream: "error", after: 3 }] } })
        const seen: Array<string> = []
        const error = yield* failure(async () => {
          const stream = await client(sandbox).messages.create({ ...ask("tell me a long story"), stream: true })
          for await (const event of stream) seen.push(event.type)
        })
        assert.strictEqual(error.type, "overloaded_error")
        assert.deepStrictEqual(seen, ["message_start", "content_block_start"])
        assert.deepStrictEqual((yield* sandbox.requestsFor("anthropic")).map((r) => [r.outcome, r.fault]), [[200, "midStream"]])
      }))
  })

  // The SDK retries 429/5xx (maxRetries, default 2) and waits what `retry-after` says
  // (anthropic-sdk-typescript client.ts `retryRequest`).
  it.scopedLive("the SDK's retries honour the sandbox's retry-after and get the answer", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ plans: { anthropic: [{ status: 429, retryAfter: "1 second" }, 529] } })
      const message = yield* call(() => client(sandbox, { maxRetries: 2 }).messages.create(ask("hi")))
      assert.strictEqual(message.stop_reason, "end_turn")
      const requests = yield* sandbox.requestsFor("anthropic")
      assert.deepStrictEqual(requests.map((r) => r.outcome), [429, 529, 200])
      assert.isAtLeast(requests[1]!.time - requests[0]!.time, 1000, "waited the 1 s retry-after")
    }))
})
