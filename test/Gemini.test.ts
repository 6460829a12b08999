import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Tracer from "effect/Tracer"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Errors from "../src/Errors.js"
import * as Gemini from "../src/Gemini.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import { at } from "./support/json.js"

const apiKey = "fake-gemini-key-for-tests"

// ---------------------------------------------------------------------------------------------
// A scripted fake HttpClient
// ---------------------------------------------------------------------------------------------

type Reply =
  | { readonly status: number; readonly body?: unknown; readonly headers?: Record<string, string> }
  | { readonly hang: true }
  | { readonly transport: string }
  | { readonly resetMidBody: true }
  /** 200 `text/event-stream`: `events` written at once, then the body ends, stays open, or fails. */
  | { readonly events: ReadonlyArray<string>; readonly then?: "end" | "stall" | "reset" }

interface Seen {
  readonly method: string
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: unknown
  readonly at: number
  aborted: boolean
}

const ok = (body: unknown = Gemini.textResponse("hello")): Reply => ({ status: 200, body })

const googleError = (code: number, status: string, message: string, details?: ReadonlyArray<unknown>) => ({
  error: { code, status, message, ...(details === undefined ? {} : { details }) }
})

const retryInfo = (delay: string) => ({ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: delay })

const apiKeyInvalid: Reply = {
  status: 400,
  body: googleError(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [{
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    reason: "API_KEY_INVALID",
    domain: "googleapis.com"
  }])
}

const bodyOf = (request: HttpClientRequest.HttpClientRequest): unknown =>
  request.body._tag === "Uint8Array" ? JSON.parse(new TextDecoder().decode(request.body.body)) : undefined

const respond = (request: HttpClientRequest.HttpClientRequest, reply: Reply) => {
  if ("hang" in reply) return Effect.never
  if ("transport" in reply) {
    return Effect.fail(
      new HttpClientError.RequestError({ request, reason: "Transport", cause: new Error(reply.transport) })
    )
  }
  if ("events" in reply) {
    let pulls = 0
    const stream = new ReadableStream<Uint8Array>({
      // Events on the first read; the ending on the next, so a reset does not discard them.
      pull(controller) {
        if (pulls++ === 0 && reply.events.length > 0) {
          for (const event of reply.events) controller.enqueue(new TextEncoder().encode(event))
          return
        }
        if (reply.then === "reset") controller.error(new Error("socket hang up (ECONNRESET)"))
        else if (reply.then === "stall") return new Promise<void>(() => {})
        else controller.close()
      }
    })
    return Effect.succeed(
      HttpClientResponse.fromWeb(request, new Response(stream, { status: 200, headers: { "content-type": "text/event-stream" } }))
    )
  }
  if ("resetMidBody" in reply) {
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(`{"candidates":[`))
        controller.error(new Error("socket hang up (ECONNRESET)"))
      }
    })
    return Effect.succeed(
      HttpClientResponse.fromWeb(request, new Response(stream, { status: 200, headers: { "content-type": "application/json" } }))
    )
  }
  const text = typeof reply.body === "string" ? reply.body : JSON.stringify(reply.body ?? {})
  return Effect.succeed(
    HttpClientResponse.fromWeb(
      request,
      new Response(text, { status: reply.status, headers: { "content-type": "application/json", ...reply.headers } })
    )
  )
}

/** A fake client answering with `replies` in order, then 200s; records every request it sees. */
const fakeClient = (replies: ReadonlyArray<Reply>) => {
  const seen: Array<Seen> = []
  const client = HttpClient.make((request, url, signal) =>
    Effect.gen(function*() {
      const at = yield* Clock.currentTimeMillis
      const entry: Seen = {
        method: request.method,
        url: url.toString(),
        headers: { ...request.headers },
        body: bodyOf(request),
        at,
        aborted: false
      }
      signal.addEventListener("abort", () => {
        entry.aborted = true
      })
      seen.push(entry)
      return yield* respond(request, replies[seen.length - 1] ?? ok())
    })
  )
  return { client, seen }
}

const geminiLayer = (
  client: HttpClient.HttpClient,
  options: {
    readonly overrides?: ReliabilityConfig.Overrides
    readonly gemini?: Gemini.Options
  } = {}
) =>
  Gemini.layerWith({ apiKey: Redacted.make(apiKey), ...options.gemini }).pipe(
    Layer.provideMerge(CircuitBreaker.layer),
    Layer.provide(Layer.orDie(ReliabilityConfig.layerWith(options.overrides ?? { policies: { gemini: { jitter: "none" } } }))),
    Layer.provide(Layer.succeed(HttpClient.HttpClient, client))
  )

const prompt: Gemini.GenerateContentRequest = { contents: [Gemini.userTurn("open example.com")] }

/** Forks `self`, advances the TestClock a second at a time until it is done, and returns its exit. */
const runTimed = <A, E>(self: Effect.Effect<A, E>, maxSeconds = 600) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(self)
    for (let second = 0; second < maxSeconds; second++) {
      if ((yield* Fiber.poll(fiber))._tag === "Some") break
      yield* TestClock.adjust("1 second")
    }
    return yield* Fiber.await(fiber)
  })

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error(`expected a failure, got ${JSON.stringify(exit.value)}`)
  const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  if (failure === undefined) throw new Error(`expected a typed failure, got ${String(exit.cause)}`)
  return failure
}

// ---------------------------------------------------------------------------------------------
// Request shape and secrets
// ---------------------------------------------------------------------------------------------

describe("Gemini request", () => {
  it.effect("posts to /v1beta/models/{model}:generateContent with the key header and the body", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([])
      const request: Gemini.GenerateContentRequest = {
        contents: [Gemini.userTurn("hi")],
        systemInstruction: { parts: [{ text: "be brief" }] },
        tools: [{ computerUse: { environment: "ENVIRONMENT_BROWSER" } }],
        generationConfig: { temperature: 0 }
      }
      const response = yield* Gemini.generateContent(request).pipe(
        Effect.provide(geminiLayer(client, { gemini: { baseUrl: "https://gemini.test/" } }))
      )
      assert.strictEqual(Gemini.text(response), "hello")
      assert.strictEqual(seen.length, 1)
      const [sent] = seen
      assert.strictEqual(sent?.method, "POST")
      assert.strictEqual(
        sent?.url,
        "https://gemini.test/v1beta/models/gemini-2.5-computer-use-preview-10-2025:generateContent"
      )
      assert.strictEqual(sent?.headers["x-goog-api-key"], apiKey)
      assert.strictEqual(sent?.headers["accept"], "application/json")
      assert.deepStrictEqual(sent?.body, {
        contents: [{ role: "user", parts: [{ text: "hi" }] }],
        systemInstruction: { parts: [{ text: "be brief" }] },
        tools: [{ computerUse: { environment: "ENVIRONMENT_BROWSER" } }],
        generationConfig: { temperature: 0 }
      })
      assert.isFalse(sent?.url.includes(apiKey))
    }))

  it.effect("request.model picks the model and is not sent in the body", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([])
      yield* Gemini.generateContent({ ...prompt, model: "models/gemini-2.5-flash" }).pipe(
        Effect.provide(geminiLayer(client))
      )
      assert.strictEqual(seen[0]?.url, "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent")
      assert.isFalse("model" in (seen[0]?.body as object))
    }))

  it.effect("GEMINI_BASE_URL, GEMINI_MODEL and GEMINI_API_KEY are read through Config", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([])
      const provider = ConfigProvider.fromMap(
        new Map([
          ["GEMINI_API_KEY", "env-key-42"],
          ["GEMINI_BASE_URL", "http://127.0.0.1:9999"],
          ["GEMINI_MODEL", "gemini-2.5-pro"]
        ])
      )
      const layer = Gemini.layer.pipe(
        Layer.provide(CircuitBreaker.layer),
        Layer.provide(ReliabilityConfig.layerDefault),
        Layer.provide(Layer.succeed(HttpClient.HttpClient, client)),
        Layer.provide(Layer.setConfigProvider(provider))
      )
      const model = yield* Effect.map(Gemini.Gemini, (gemini) => gemini.model).pipe(Effect.provide(layer))
      yield* Gemini.generateContent(prompt).pipe(Effect.provide(layer))
      assert.strictEqual(model, "gemini-2.5-pro")
      assert.strictEqual(seen[0]?.url, "http://127.0.0.1:9999/v1beta/models/gemini-2.5-pro:generateContent")
      assert.strictEqual(seen[0]?.headers["x-goog-api-key"], "env-key-42")
    }))

  it.effect("a missing GEMINI_API_KEY builds the layer; calls fail with Unauthorized and send nothing", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([])
      const layer = Gemini.layer.pipe(
        Layer.provide(CircuitBreaker.layer),
        Layer.provide(ReliabilityConfig.layerDefault),
        Layer.provide(Layer.succeed(HttpClient.HttpClient, client)),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map()))),
        Layer.orDie
      )
      const error = yield* Gemini.generateContent(prompt).pipe(Effect.provide(layer), Effect.flip)
      assert.strictEqual(error._tag, "Unauthorized")
      assert.isFalse(error.retryable)
      assert.include(error.message, "GEMINI_API_KEY is not set")
      assert.strictEqual(seen.length, 0)
    }))

  it.effect("a blank key counts as missing", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([])
      const error = yield* Gemini.generateContent(prompt).pipe(
        Effect.provide(geminiLayer(client, { gemini: { apiKey: Redacted.make("  ") } })),
        Effect.flip
      )
      assert.strictEqual(error._tag, "Unauthorized")
      assert.strictEqual(seen.length, 0)
    }))

  it.effect("a request that does not match the schema is InvalidRequest and is not sent", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([])
      // A JavaScript caller can pass what the types forbid; the deliberate cast stands for one.
      const bad = { contents: [{ role: "system", parts: [{ text: 1 }] }] } as unknown as Gemini.GenerateContentRequest
      const error = yield* Gemini.generateContent(bad).pipe(Effect.provide(geminiLayer(client)), Effect.flip)
      assert.strictEqual(error._tag, "InvalidRequest")
      assert.strictEqual(seen.length, 0)
    }))

  it.effect("a body that cannot be JSON-encoded is InvalidRequest and is not sent", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([])
      const request: Gemini.GenerateContentRequest = {
        contents: [{ role: "user", parts: [Gemini.functionResponsePart("count", { total: BigInt(1) })] }]
      }
      const error = yield* Gemini.generateContent(request).pipe(Effect.provide(geminiLayer(client)), Effect.flip)
      assert.strictEqual(error._tag, "InvalidRequest")
      assert.include(error.message, "BigInt")
      assert.strictEqual(seen.length, 0)
    }))

  it.effect("the key never reaches a log line, an error message or a span attribute", () =>
    Effect.gen(function*() {
      const lines: Array<string> = []
      const capture = Logger.make((options) => {
        lines.push(Logger.stringLogger.log(options))
      })
      const spans: Array<Tracer.Span> = []
      const tracer = yield* Effect.tracer
      const recording = Tracer.make({
        span: (...args) => {
          const span = tracer.span(...args)
          spans.push(span)
          return span
        },
        context: (f, fiber) => tracer.context(f, fiber)
      })
      // The upstream echoes the key in its error body: the client must scrub it.
      const echo: Reply = { status: 503, body: googleError(503, "UNAVAILABLE", `overloaded for key ${apiKey}`) }
      const { client, seen } = fakeClient([echo, echo, { transport: `connect ECONNREFUSED key=${apiKey}` }])
      const exit = yield* runTimed(
        Gemini.generateContent(prompt).pipe(
          Effect.tapErrorCause((cause) => Effect.logError("gemini call failed", cause)),
          Effect.provide(geminiLayer(client)),
          Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
          Logger.withMinimumLogLevel(LogLevel.All),
          Effect.withTracer(recording)
        )
      )
      const error = failureOf(exit)
      assert.strictEqual(error._tag, "NetworkError")
      assert.strictEqual(seen.length, 3)
      assert.isAbove(lines.length, 2)
      for (const line of lines) assert.notInclude(line, apiKey)
      assert.notInclude(error.message, apiKey)
      assert.notInclude(JSON.stringify(error), apiKey)
      const headerAttributes = spans.flatMap((span) =>
        Array.from(span.attributes).filter(([name]) => name === "http.request.header.x-goog-api-key")
      )
      assert.strictEqual(headerAttributes.length, 3)
      for (const [, value] of headerAttributes) assert.strictEqual(String(value), "<redacted>")
      for (const span of spans) {
        for (const [, value] of span.attributes) assert.notInclude(String(value), apiKey)
      }
    }))
})

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

describe("Gemini response", () => {
  it.effect("decodes text, skipping thoughts, and keeps unknown fields", () =>
    Effect.gen(function*() {
      const body = {
        candidates: [{
          content: {
            role: "model",
            parts: [{ text: "thinking…", thought: true }, { text: "Hello", thoughtSignature: "c2ln" }, { text: " world" }]
          },
          finishReason: "STOP",
          safetyRatings: [{ category: "HARM_CATEGORY_HARASSMENT", probability: "NEGLIGIBLE" }],
          index: 0,
          citationMetadata: { citations: [] },
          somethingNew: { nested: true }
        }],
        usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 2, totalTokenCount: 5, trafficType: "ON_DEMAND" },
        modelVersion: "gemini-2.5-flash",
        responseId: "abc",
        sdkHttpResponse: { headers: {} }
      }
      const { client } = fakeClient([ok(body)])
      const response = yield* Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client)))
      assert.strictEqual(Gemini.text(response), "Hello world")
      assert.strictEqual(Gemini.finishReason(response), "STOP")
      assert.strictEqual(response.usageMetadata?.totalTokenCount, 5)
      assert.strictEqual(response.responseId, "abc")
      assert.deepStrictEqual(at(response.candidates?.[0], "somethingNew"), { nested: true })
      assert.deepStrictEqual(Gemini.modelTurn(response)?.parts[1], { text: "Hello", thoughtSignature: "c2ln" })
    }))

  it.effect("decodes function calls (computer use) with thoughtSignature and executableCode parts", () =>
    Effect.gen(function*() {
      const body = {
        candidates: [{
          content: {
            role: "model",
            parts: [
              { executableCode: { language: "PYTHON", code: "print(1)" } },
              { functionCall: { name: "click_at", args: { x: 10, y: 20 } }, thoughtSignature: "c2ln" },
              { functionCall: { name: "type_text_at", args: { x: 1, y: 2, text: "hi" }, id: "call-2" } }
            ]
          },
          finishReason: "STOP"
        }]
      }
      const { client } = fakeClient([ok(body)])
      const response = yield* Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client)))
      assert.deepStrictEqual(Gemini.functionCalls(response), [
        { name: "click_at", args: { x: 10, y: 20 } },
        { name: "type_text_at", args: { x: 1, y: 2, text: "hi" }, id: "call-2" }
      ])
      assert.strictEqual(Gemini.text(response), "")
    }))

  it.effect("a blocked prompt is PromptBlocked, not retryable, tried once", () =>
    Effect.gen(function*() {
      const body = {
        promptFeedback: {
          blockReason: "SAFETY",
          safetyRatings: [{ category: "HARM_CATEGORY_DANGEROUS_CONTENT", probability: "HIGH", blocked: true }]
        },
        usageMetadata: { promptTokenCount: 4, totalTokenCount: 4 },
        responseId: "blocked-1"
      }
      const { client, seen } = fakeClient([ok(body)])
      const error = yield* Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client)), Effect.flip)
      assert.instanceOf(error, Gemini.PromptBlocked)
      if (error._tag !== "PromptBlocked") return
      assert.strictEqual(error.blockReason, "SAFETY")
      assert.strictEqual(error.service, "gemini")
      assert.strictEqual(error.retryable, false)
      assert.isFalse(Errors.isRetryable(error))
      assert.strictEqual(error.responseId, "blocked-1")
      assert.strictEqual(error.safetyRatings?.[0]?.probability, "HIGH")
      assert.strictEqual(seen.length, 1)
    }))

  it.effect("a body that is not JSON is a DecodeError, tried once", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([{ status: 200, body: `{"candidates":[{"content":{"role":"model","parts":[{"text":"sa` }])
      const error = yield* Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client)), Effect.flip)
      assert.strictEqual(error._tag, "DecodeError")
      assert.isFalse(error.retryable)
      assert.strictEqual(seen.length, 1)
    }))

  it.effect("a key echoed in a body that is not JSON, or does not match the schema, is in no error message, not even its start", () =>
    Effect.gen(function*() {
      const keyStart = apiKey.slice(0, 6)
      const bodies = [
        // V8's JSON.parse message quotes the first characters of the text.
        `${apiKey} is not valid`,
        // A preview cut at 120 characters, in the middle of the key.
        `${"x".repeat(112)}${apiKey}`,
        // A schema issue quoting the value, cut at 500 characters in the middle of the key.
        JSON.stringify({ responseId: { a: `${"y".repeat(450)}${apiKey}` } })
      ]
      const messages: Array<string> = []
      for (const body of bodies) {
        const { client } = fakeClient([{ status: 200, body }])
        const error = yield* Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client)), Effect.flip)
        assert.strictEqual(error._tag, "DecodeError")
        messages.push(error.message)
      }
      for (const message of messages) assert.notInclude(message, keyStart, message)
      assert.strictEqual(messages[0], "gemini answered with a body that is not JSON (Unexpected token 'k'): <redacted> is not valid")
      assert.strictEqual(messages[1], `gemini answered with a body that is not JSON (Unexpected token 'x'): ${"x".repeat(112)}<redacte`)
      assert.strictEqual(
        messages[2],
        `gemini answered with a body that is not a GenerateContentResponse: responseId: Expected string, actual {"a":"${"y".repeat(450)}<redacte`
      )
    }))

  it.effect("JSON that does not match the schema is a DecodeError naming the path", () =>
    Effect.gen(function*() {
      const { client } = fakeClient([ok({ candidates: [{ content: { parts: [{ text: 42 }] } }] })])
      const error = yield* Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client)), Effect.flip)
      assert.strictEqual(error._tag, "DecodeError")
      assert.include(error.message, "candidates.0.content.parts.0.text")
    }))
})

// ---------------------------------------------------------------------------------------------
// Error mapping
// ---------------------------------------------------------------------------------------------

describe("Gemini error mapping", () => {
  const once = <E>(reply: Reply, check: (error: Gemini.GeminiError) => E) =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([reply, reply, reply])
      const exit = yield* runTimed(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client))))
      check(failureOf(exit))
      return seen.length
    })

  it.effect("400 API_KEY_INVALID is Unauthorized, tried once", () =>
    Effect.gen(function*() {
      const attempts = yield* once(apiKeyInvalid, (error) => {
        assert.strictEqual(error._tag, "Unauthorized")
        assert.isFalse(error.retryable)
      })
      assert.strictEqual(attempts, 1)
    }))

  it.effect("400 is InvalidRequest, tried once", () =>
    Effect.gen(function*() {
      const attempts = yield* once(
        { status: 400, body: googleError(400, "INVALID_ARGUMENT", "Request contains an invalid argument.") },
        (error) => {
          assert.strictEqual(error._tag, "InvalidRequest")
          assert.include(error.message, "Request contains an invalid argument.")
        }
      )
      assert.strictEqual(attempts, 1)
    }))

  it.effect("403 is Unauthorized, tried once", () =>
    Effect.gen(function*() {
      const attempts = yield* once(
        { status: 403, body: googleError(403, "PERMISSION_DENIED", "The caller does not have permission") },
        (error) => assert.strictEqual(error._tag, "Unauthorized")
      )
      assert.strictEqual(attempts, 1)
    }))

  it.effect("429 with RetryInfo 3s is RateLimited with retryAfter 3s", () =>
    Effect.gen(function*() {
      const { client } = fakeClient([{
        status: 429,
        body: googleError(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted", [retryInfo("3s")])
      }])
      const error = yield* Gemini.generateContent(prompt).pipe(
        Effect.provide(geminiLayer(client, { overrides: { policies: { gemini: { maxAttempts: 1 } } } })),
        Effect.flip
      )
      assert.strictEqual(error._tag, "RateLimited")
      if (error._tag !== "RateLimited") return
      assert.isTrue(error.retryable)
      assert.strictEqual(error.status, 429)
      assert.isTrue(error.retryAfter !== undefined && Duration.equals(error.retryAfter, Duration.seconds(3)))
    }))

  it.effect("503 is ServiceUnavailable, retried to the policy's 3 attempts", () =>
    Effect.gen(function*() {
      const attempts = yield* once(
        { status: 503, body: googleError(503, "UNAVAILABLE", "The model is overloaded.") },
        (error) => {
          assert.strictEqual(error._tag, "ServiceUnavailable")
          assert.isTrue(error.retryable)
        }
      )
      assert.strictEqual(attempts, 3)
    }))

  it.effect("a transport error is NetworkError", () =>
    Effect.gen(function*() {
      const { client } = fakeClient([{ transport: "connect ECONNREFUSED 127.0.0.1:1" }])
      const error = yield* Gemini.generateContent(prompt).pipe(
        Effect.provide(geminiLayer(client, { overrides: { policies: { gemini: { maxAttempts: 1 } } } })),
        Effect.flip
      )
      assert.strictEqual(error._tag, "NetworkError")
      assert.isTrue(error.retryable)
      assert.include(error.message, "ECONNREFUSED")
    }))

  it.effect("a connection reset while reading the body is NetworkError, and is retried", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([{ resetMidBody: true }])
      const exit = yield* runTimed(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client))))
      assert.isTrue(Exit.isSuccess(exit))
      assert.strictEqual(seen.length, 2)
      const { client: client2 } = fakeClient([{ resetMidBody: true }])
      const error = yield* Gemini.generateContent(prompt).pipe(
        Effect.provide(geminiLayer(client2, { overrides: { policies: { gemini: { maxAttempts: 1 } } } })),
        Effect.flip
      )
      assert.strictEqual(error._tag, "NetworkError")
    }))
})

// ---------------------------------------------------------------------------------------------
// Retries, timeouts and the breaker, on the TestClock
// ---------------------------------------------------------------------------------------------

describe("Gemini resilience", () => {
  const unavailable: Reply = { status: 503, body: googleError(503, "UNAVAILABLE", "The model is overloaded.") }

  it.effect("503, 503, 200 succeeds on the 3rd call after waits of 2 s then 4 s", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([unavailable, unavailable, ok(Gemini.textResponse("third time"))])
      const exit = yield* runTimed(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client))))
      assert.isTrue(Exit.isSuccess(exit))
      if (Exit.isSuccess(exit)) assert.strictEqual(Gemini.text(exit.value), "third time")
      assert.deepStrictEqual(seen.map((request) => request.at), [0, 2_000, 6_000])
    }))

  it.effect("429 with RetryInfo 3s waits at least 3 s before the next attempt", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([{
        status: 429,
        body: googleError(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted", [retryInfo("3s")])
      }])
      const exit = yield* runTimed(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client))))
      assert.isTrue(Exit.isSuccess(exit))
      assert.strictEqual(seen.length, 2)
      // The policy alone would wait 2 s; the server's hint makes it 3 s.
      assert.strictEqual(seen[1]!.at - seen[0]!.at, 3_000)
    }))

  it.effect("429 with Retry-After: 86400 fails at once with RateLimited (retryAfter 1 day), not after a 60 s wait and a retry", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([{
        status: 429,
        headers: { "retry-after": "86400" },
        body: googleError(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted")
      }, ok()])
      const fiber = yield* Effect.fork(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client))))
      // No clock time passes: the answer is a failure at once.
      const error = failureOf(yield* Fiber.await(fiber))
      assert.strictEqual(error._tag, "RateLimited")
      assert.strictEqual(Duration.toMillis(Errors.retryAfterOf(error) ?? Duration.zero), 86_400_000)
      assert.deepStrictEqual(seen.map((request) => request.at), [0])
    }))

  it.effect("a hang is cut at gemini_api (45 s) per attempt and its request is aborted", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([{ hang: true }, { hang: true }, { hang: true }])
      const exit = yield* runTimed(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client))))
      const error = failureOf(exit)
      assert.strictEqual(error._tag, "OperationTimeout")
      if (error._tag === "OperationTimeout") {
        assert.strictEqual(error.operation, "gemini_api")
        assert.isTrue(Duration.equals(error.timeout, Duration.seconds(45)))
      }
      // 45 s attempt, 2 s wait, 45 s attempt, 4 s wait, 45 s attempt.
      assert.deepStrictEqual(seen.map((request) => request.at), [0, 47_000, 96_000])
      assert.deepStrictEqual(seen.map((request) => request.aborted), [true, true, true])
    }))

  it.effect("a hang followed by an answer succeeds on the second attempt", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([{ hang: true }])
      const exit = yield* runTimed(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client))))
      assert.isTrue(Exit.isSuccess(exit))
      assert.deepStrictEqual(seen.map((request) => request.at), [0, 47_000])
    }))

  it.effect("interrupting a call aborts its request", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([{ hang: true }])
      const layer = geminiLayer(client)
      const fiber = yield* Effect.fork(Gemini.generateContent(prompt).pipe(Effect.provide(layer)))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(seen.length, 1)
      yield* Fiber.interrupt(fiber)
      assert.isTrue(seen[0]?.aborted)
    }))

  it.effect("5 failures open the breaker and the 6th call never reaches the HttpClient", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient(Array.from({ length: 10 }, () => unavailable))
      const layer = geminiLayer(client, { overrides: { policies: { gemini: { maxAttempts: 1, jitter: "none" } } } })
      yield* Effect.gen(function*() {
        for (let call = 1; call <= 5; call++) {
          const error = yield* Effect.flip(Gemini.generateContent(prompt))
          assert.strictEqual(error._tag, "ServiceUnavailable")
        }
        assert.strictEqual(yield* CircuitBreaker.state("gemini"), "open")
        const sixth = yield* Effect.flip(Gemini.generateContent(prompt))
        assert.strictEqual(sixth._tag, "CircuitOpen")
        assert.isFalse(sixth.retryable)
        assert.strictEqual(seen.length, 5)
        // After the breaker's 60 s, a trial call goes through again.
        yield* TestClock.adjust("60 seconds")
        yield* Effect.flip(Gemini.generateContent(prompt))
        assert.strictEqual(seen.length, 6)
      }).pipe(Effect.provide(layer))
    }))

  it.effect("non-retryable answers do not open the breaker", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient(Array.from({ length: 6 }, () => apiKeyInvalid))
      yield* Effect.gen(function*() {
        for (let call = 1; call <= 6; call++) {
          const error = yield* Effect.flip(Gemini.generateContent(prompt))
          assert.strictEqual(error._tag, "Unauthorized")
        }
      }).pipe(Effect.provide(geminiLayer(client)))
      assert.strictEqual(seen.length, 6)
    }))
})

// ---------------------------------------------------------------------------------------------
// Helpers and the test layer
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

/** One SSE event as Gemini writes it: `data: <GenerateContentResponse>` and a blank line. */
const sseEvent = (body: unknown) => `data: ${JSON.stringify(body)}\r\n\r\n`
const textChunk = (text: string) => sseEvent({ candidates: [{ content: { role: "model", parts: [{ text }] }, index: 0 }] })
/** The last event of a whole answer: Gemini writes the finishReason on it. */
const lastChunk = (text: string) => sseEvent(Gemini.textResponse(text))

/** Runs a stream on the TestClock (see `runTimed`), keeping what it emitted before it ended. */
const collectTimed = <A, E>(stream: Stream.Stream<A, E>, maxSeconds = 600) =>
  Effect.gen(function*() {
    const emitted: Array<A> = []
    const exit = yield* runTimed(Stream.runForEach(stream, (item) => Effect.sync(() => emitted.push(item))), maxSeconds)
    return { emitted, exit }
  })

const texts = (responses: ReadonlyArray<Gemini.GenerateContentResponse>) => responses.map(Gemini.text)

describe("Gemini.generateContentStream", () => {
  const unavailable: Reply = { status: 503, body: googleError(503, "UNAVAILABLE", "The model is overloaded.") }

  it.effect("posts to :streamGenerateContent?alt=sse and emits one response per event", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([{ events: [textChunk("Hel"), textChunk("lo "), lastChunk("there")] }])
      const { emitted, exit } = yield* collectTimed(Gemini.generateContentStream(prompt).pipe(Stream.provideLayer(geminiLayer(client))))
      assert.isTrue(Exit.isSuccess(exit))
      assert.deepStrictEqual(texts(emitted), ["Hel", "lo ", "there"])
      assert.strictEqual(
        seen[0]?.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-computer-use-preview-10-2025:streamGenerateContent?alt=sse"
      )
      assert.strictEqual(seen[0]?.headers["x-goog-api-key"], apiKey)
      assert.deepStrictEqual(seen[0]?.body, { contents: [{ role: "user", parts: [{ text: "open example.com" }] }] })
    }))

  it.effect("an event split across reads, LF endings and comment lines parse the same", () =>
    Effect.gen(function*() {
      const whole = `: keep-alive\n\ndata: ${JSON.stringify(Gemini.textResponse("split"))}\n\n`
      const { client } = fakeClient([{ events: [whole.slice(0, 30), whole.slice(30, 31), whole.slice(31)] }])
      const { emitted } = yield* collectTimed(Gemini.generateContentStream(prompt).pipe(Stream.provideLayer(geminiLayer(client))))
      assert.deepStrictEqual(texts(emitted), ["split"])
    }))

  it.effect("before the first chunk it retries as generateContent does: 503, 503, then the stream after 2 s and 4 s", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([unavailable, unavailable, { events: [lastChunk("third time")] }])
      const { emitted, exit } = yield* collectTimed(Gemini.generateContentStream(prompt).pipe(Stream.provideLayer(geminiLayer(client))))
      assert.isTrue(Exit.isSuccess(exit))
      assert.deepStrictEqual(texts(emitted), ["third time"])
      assert.deepStrictEqual(seen.map((request) => request.at), [0, 2_000, 6_000])
    }))

  it.effect("a first chunk that does not come within gemini_api (45 s) is a retried timeout, its request aborted", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([{ events: [], then: "stall" }, { events: [lastChunk("second")] }])
      const { emitted, exit } = yield* collectTimed(Gemini.generateContentStream(prompt).pipe(Stream.provideLayer(geminiLayer(client))))
      assert.isTrue(Exit.isSuccess(exit))
      assert.deepStrictEqual(texts(emitted), ["second"])
      assert.deepStrictEqual(seen.map((request) => [request.at, request.aborted]), [[0, true], [47_000, true]])
    }))

  it.effect("after the first chunk a dropped connection ends the stream with NetworkError, not retried", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([{ events: [textChunk("partial")], then: "reset" }])
      const { emitted, exit } = yield* collectTimed(Gemini.generateContentStream(prompt).pipe(Stream.provideLayer(geminiLayer(client))))
      assert.deepStrictEqual(texts(emitted), ["partial"])
      assert.strictEqual(failureOf(exit)._tag, "NetworkError")
      assert.strictEqual(seen.length, 1)
    }))

  it.effect("an error event after the first chunk ends the stream with the error its code maps to", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([{
        events: [textChunk("partial"), sseEvent(googleError(503, "UNAVAILABLE", "The model is overloaded."))]
      }])
      const { emitted, exit } = yield* collectTimed(Gemini.generateContentStream(prompt).pipe(Stream.provideLayer(geminiLayer(client))))
      assert.deepStrictEqual(texts(emitted), ["partial"])
      const error = failureOf(exit)
      assert.strictEqual(error._tag, "ServiceUnavailable")
      assert.strictEqual(error.message, "gemini answered HTTP 503: UNAVAILABLE: The model is overloaded.")
      assert.strictEqual(seen.length, 1)
    }))

  it.effect("a gap longer than http_request_long (30 s) ends the stream with OperationTimeout and aborts the request", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([{ events: [textChunk("first")], then: "stall" }])
      const { emitted, exit } = yield* collectTimed(Gemini.generateContentStream(prompt).pipe(Stream.provideLayer(geminiLayer(client))))
      assert.deepStrictEqual(texts(emitted), ["first"])
      const error = failureOf(exit)
      assert.strictEqual(error._tag, "OperationTimeout")
      if (error._tag === "OperationTimeout") {
        assert.strictEqual(error.operation, "http_request_long")
        assert.strictEqual(error.message, "http_request_long timed out after 30s")
      }
      assert.deepStrictEqual(seen.map((request) => request.aborted), [true])
    }))

  it.effect("a body that is not an event stream of responses is a DecodeError, tried once", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([{ events: ["data: {\"candidates\": [\r\n\r\n"] }])
      const { exit } = yield* collectTimed(Gemini.generateContentStream(prompt).pipe(Stream.provideLayer(geminiLayer(client))))
      assert.strictEqual(failureOf(exit)._tag, "DecodeError")
      assert.strictEqual(seen.length, 1)
    }))

  it.effect("stopping early aborts the request", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([{ events: [textChunk("one"), textChunk("two")], then: "stall" }])
      const first = yield* Gemini.generateContentStream(prompt).pipe(
        Stream.take(1),
        Stream.runCollect,
        Effect.provide(geminiLayer(client))
      )
      assert.deepStrictEqual(texts(Chunk.toReadonlyArray(first)), ["one"])
      assert.deepStrictEqual(seen.map((request) => request.aborted), [true])
    }))
})

// ---------------------------------------------------------------------------------------------
// Quotas
// ---------------------------------------------------------------------------------------------

/** A 429 as Gemini writes it: no Retry-After header; Help, QuotaFailure and RetryInfo in the body. */
const quotaExceeded = (quotaId: string, retryDelay?: string): Reply => ({
  status: 429,
  body: googleError(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details.", [
    {
      "@type": "type.googleapis.com/google.rpc.Help",
      links: [{ description: "Learn more about Gemini API quotas", url: "https://ai.google.dev/gemini-api/docs/rate-limits" }]
    },
    {
      "@type": "type.googleapis.com/google.rpc.QuotaFailure",
      violations: [{
        quotaMetric: "generativelanguage.googleapis.com/generate_content_free_tier_requests",
        quotaId,
        quotaDimensions: { location: "global", model: "gemini-2.5-flash" },
        quotaValue: "250"
      }]
    },
    ...(retryDelay === undefined ? [] : [retryInfo(retryDelay)])
  ])
})

describe("Gemini quotas", () => {
  it.effect("a per-day quota fails at once with QuotaExhausted, saying when it resets", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([quotaExceeded("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "13.5s")])
      const exit = yield* runTimed(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client))))
      const error = failureOf(exit)
      assert.strictEqual(error._tag, "QuotaExhausted")
      if (error._tag === "QuotaExhausted") {
        assert.isFalse(error.retryable)
        assert.strictEqual(error.quotaId, "GenerateRequestsPerDayPerProjectPerModel-FreeTier")
        assert.strictEqual(Duration.toMillis(error.retryAfter ?? Duration.zero), 13_500)
        assert.strictEqual(
          error.message,
          "gemini daily quota exhausted (GenerateRequestsPerDayPerProjectPerModel-FreeTier, model gemini-2.5-flash, " +
            "limit 250): retrying within minutes will not help; the server says it resets in 13.5s (at 1970-01-01T00:00:13.500Z)"
        )
      }
      assert.strictEqual(seen.length, 1)
    }))

  it.effect("a per-day quota without RetryInfo says the server did not say when it resets", () =>
    Effect.gen(function*() {
      const { client } = fakeClient([quotaExceeded("GenerateRequestsPerDayPerProjectPerModel-FreeTier")])
      const error = failureOf(yield* runTimed(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client)))))
      assert.strictEqual(error._tag, "QuotaExhausted")
      assert.match(error.message, /the server did not say when it resets \(Gemini's daily quotas reset at midnight Pacific time\)$/)
    }))

  it.effect("a per-minute quota keeps waiting the body's RetryInfo (45.837906927s), with no Retry-After header", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([quotaExceeded("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "45.837906927s")])
      const exit = yield* runTimed(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(client))), 120)
      assert.isTrue(Exit.isSuccess(exit))
      assert.strictEqual(seen.length, 2)
      // Milliseconds are what the clock resolves: 45.837906927 s is 45,838 ms.
      assert.strictEqual(seen[1]!.at - seen[0]!.at, 45_838)
    }))

  it.effect("a stream's per-day quota fails before any chunk, not retried", () =>
    Effect.gen(function*() {
      const { client, seen } = fakeClient([quotaExceeded("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "60s")])
      const { emitted, exit } = yield* collectTimed(Gemini.generateContentStream(prompt).pipe(Stream.provideLayer(geminiLayer(client))))
      assert.lengthOf(emitted, 0)
      assert.strictEqual(failureOf(exit)._tag, "QuotaExhausted")
      assert.strictEqual(seen.length, 1)
    }))
})

describe("Gemini helpers", () => {
  it.effect("layerTest answers with a fixed response or a function of the request", () =>
    Effect.gen(function*() {
      const fixed = yield* Gemini.generateContent(prompt).pipe(
        Effect.provide(Gemini.layerTest(Gemini.functionCallResponse([{ name: "click_at", args: { x: 1, y: 2 } }])))
      )
      assert.deepStrictEqual(Gemini.functionCalls(fixed), [{ name: "click_at", args: { x: 1, y: 2 } }])
      const echoed = yield* Gemini.generateContent(prompt).pipe(
        Effect.provide(Gemini.layerTest((request) =>
          Effect.succeed(Gemini.textResponse(`echo: ${request.contents[0]?.parts[0]?.text}`))
        ))
      )
      assert.strictEqual(Gemini.text(echoed), "echo: open example.com")
    }))

  it("builds turns and parts", () => {
    assert.deepStrictEqual(Gemini.userTurn("look", Gemini.inlineDataPart("image/png", "iVBOR")), {
      role: "user",
      parts: [{ text: "look" }, { inlineData: { mimeType: "image/png", data: "iVBOR" } }]
    })
    assert.deepStrictEqual(Gemini.functionResponsePart("click_at", { url: "https://example.com" }, "c1"), {
      functionResponse: { name: "click_at", response: { url: "https://example.com" }, id: "c1" }
    })
  })
})
