/**
 * The real Gemini client (undici HttpClient) against the Sandbox over 127.0.0.1.
 *
 * Retry waits run on the TestClock while the HTTP is real: `driveClock` advances the clock only
 * when the client is parked on a retry wait (a pending sleep within the policy's `maxDelay`), and
 * otherwise lets real time pass for the I/O. The per-attempt timeout is set far beyond `maxDelay`
 * there, so it never fires by accident. The hang test runs on the live clock with a 200 ms
 * `gemini_api` timeout instead, which exercises the live timer path and real aborts.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Undici from "@effect/platform-node/Undici"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as Zlib from "node:zlib"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Errors from "../src/Errors.js"
import * as Gemini from "../src/Gemini.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Sandbox from "../src/Sandbox.js"

const sandboxKey = "sandbox-secret-7f3a9c51"

const geminiLayer = (
  sandbox: Sandbox.Service,
  overrides: ReliabilityConfig.Overrides,
  apiKey: string = sandboxKey
) =>
  Gemini.layerWith({ apiKey: Redacted.make(apiKey), baseUrl: sandbox.url }).pipe(
    Layer.provideMerge(CircuitBreaker.layer),
    Layer.provide(Layer.orDie(ReliabilityConfig.layerWith(overrides))),
    Layer.provide(NodeHttpClient.layerUndici)
  )

/** Exact waits on the TestClock; the attempt timeout far above any retry wait. */
const onTestClock: ReliabilityConfig.Overrides = {
  policies: { gemini: { jitter: "none" } },
  timeouts: { gemini_api: "10 minutes" }
}

/** One attempt per call, so each call is one request. */
const singleAttempt: ReliabilityConfig.Overrides = { policies: { gemini: { maxAttempts: 1 } } }

const prompt: Gemini.GenerateContentRequest = { contents: [Gemini.userTurn("open example.com")] }

const realPause = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 1)))

/**
 * Runs `self` on the TestClock while its HTTP is real: whenever a sleep is pending within
 * `maxWait` (a retry wait), jumps the clock to it; otherwise lets 1 ms of real time pass.
 */
const driveClock = <A, E>(self: Effect.Effect<A, E>, maxWait = 60_000) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(self)
    const giveUpAt = Date.now() + 20_000
    while (Date.now() < giveUpAt) {
      const exit = yield* Fiber.poll(fiber)
      if (Option.isSome(exit)) return exit.value
      const now = yield* Clock.currentTimeMillis
      const due = Chunk.toReadonlyArray(yield* TestClock.sleeps()).filter((at) => at > now && at <= now + maxWait)
      if (due.length > 0) yield* TestClock.adjust(Math.min(...due) - now)
      else yield* realPause
    }
    yield* Fiber.interrupt(fiber)
    return yield* Effect.dieMessage("the call did not finish within 20 s of real time")
  })

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure, got a success")
  const failure = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  if (failure === undefined) throw new Error(`expected a typed failure, got ${String(exit.cause)}`)
  return failure
}

const geminiRequests = (sandbox: Sandbox.Service) => sandbox.requestsFor("gemini")

describe("Gemini over loopback", () => {
  it.scoped("answers text, and 503, 503, 200 succeeds on the 3rd request after waits of 2 s then 4 s", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      yield* sandbox.setPlan("gemini", [503, 503])
      const exit = yield* driveClock(
        Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(sandbox, onTestClock)))
      )
      assert.isTrue(Exit.isSuccess(exit))
      if (Exit.isSuccess(exit)) assert.strictEqual(Gemini.text(exit.value), "sandbox answer to: open example.com")
      const requests = yield* geminiRequests(sandbox)
      assert.deepStrictEqual(requests.map((request) => request.outcome), [503, 503, 200])
      assert.deepStrictEqual(requests.map((request) => request.time - requests[0]!.time), [0, 2_000, 6_000])
      assert.strictEqual(requests[0]?.path, `/v1beta/models/${Gemini.defaultModel}:generateContent`)
    }))

  it.scoped("400 fails after exactly one request with InvalidRequest", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      yield* sandbox.setPlan("gemini", [400, 400, 400])
      const exit = yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(sandbox, onTestClock))))
      const error = failureOf(exit)
      assert.strictEqual(error._tag, "InvalidRequest")
      assert.isFalse(error.retryable)
      assert.lengthOf(yield* geminiRequests(sandbox), 1)
    }))

  it.scoped("403 fails after exactly one request with Unauthorized", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      yield* sandbox.setPlan("gemini", [403, 403, 403])
      const exit = yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(sandbox, onTestClock))))
      const error = failureOf(exit)
      assert.strictEqual(error._tag, "Unauthorized")
      assert.isFalse(error.retryable)
      assert.lengthOf(yield* geminiRequests(sandbox), 1)
    }))

  it.scoped("a wrong key (400 API_KEY_INVALID) fails after exactly one request with Unauthorized", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      const exit = yield* driveClock(
        Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(sandbox, onTestClock, "wrong-key")))
      )
      const error = failureOf(exit)
      assert.strictEqual(error._tag, "Unauthorized")
      if (error._tag === "Unauthorized") assert.strictEqual(error.status, 400)
      assert.lengthOf(yield* geminiRequests(sandbox), 1)
    }))

  it.scoped("429 with RetryInfo 3s waits at least 3 s before the next request", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      yield* sandbox.setPlan("gemini", [{ status: 429, retryAfter: "3 seconds" }])
      const exit = yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(sandbox, onTestClock))))
      assert.isTrue(Exit.isSuccess(exit))
      const requests = yield* geminiRequests(sandbox)
      assert.deepStrictEqual(requests.map((request) => request.outcome), [429, 200])
      // The policy alone would wait 2 s (jitter off): the hint stretched it.
      assert.isAtLeast(requests[1]!.time - requests[0]!.time, 3_000)
    }))

  it.scoped("a rate limit that outlasts the attempts surfaces as RateLimited with its retryAfter", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      yield* sandbox.setPlan("gemini", [{ status: 429, retryAfter: "3 seconds" }])
      const error = yield* Gemini.generateContent(prompt).pipe(
        Effect.provide(geminiLayer(sandbox, singleAttempt)),
        Effect.flip
      )
      assert.strictEqual(error._tag, "RateLimited")
      const retryAfter = Errors.retryAfterOf(error)
      assert.strictEqual(retryAfter === undefined ? undefined : Duration.toMillis(retryAfter), 3_000)
    }))

  it.scopedLive("a hang is cut at gemini_api per attempt (200 ms here) and its connection is dropped", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      yield* sandbox.setPlan("gemini", [{ hang: true }, { hang: true }, { hang: true }])
      // An undici agent that remembers its sockets, to see that timed-out requests are aborted.
      const sockets: Array<Net.Socket> = []
      const connect = Undici.buildConnector({})
      const agent = new Undici.Agent({
        connect: (options, callback) =>
          connect(options, (error, socket) => {
            if (socket !== null) sockets.push(socket as Net.Socket)
            // undici's callback is typed as two overloads; forward the pair as received.
            ;(callback as (error: Error | null, socket: unknown) => void)(error, socket)
          })
      })
      yield* Effect.addFinalizer(() => Effect.promise(() => agent.destroy()))
      const layer = Gemini.layerWith({ apiKey: Redacted.make(sandboxKey), baseUrl: sandbox.url }).pipe(
        Layer.provideMerge(CircuitBreaker.layer),
        Layer.provide(Layer.orDie(ReliabilityConfig.layerWith({
          timeouts: { gemini_api: "200 millis" },
          policies: { gemini: { initialDelay: Duration.millis(10), jitter: "none" } }
        }))),
        Layer.provide(NodeHttpClient.layerUndiciWithoutDispatcher),
        Layer.provide(Layer.succeed(NodeHttpClient.Dispatcher, agent))
      )
      const error = yield* Gemini.generateContent(prompt).pipe(Effect.provide(layer), Effect.flip)
      assert.strictEqual(error._tag, "OperationTimeout")
      if (error._tag === "OperationTimeout") assert.strictEqual(error.operation, "gemini_api")
      const requests = yield* geminiRequests(sandbox)
      assert.deepStrictEqual(requests.map((request) => request.outcome), ["hang", "hang", "hang"])
      // Each timed-out attempt aborted its request, which destroys its connection (the sandbox
      // holds a hung request open forever). undici may open spare sockets; those carry nothing.
      const used = () => sockets.filter((socket) => socket.bytesWritten > 0)
      assert.lengthOf(used(), 3)
      for (let i = 0; i < 200 && !sockets.every((socket) => socket.destroyed); i++) yield* realPause
      assert.deepStrictEqual(used().map((socket) => socket.destroyed), [true, true, true])
      // The sandbox is free again: the next call is answered.
      const response = yield* Gemini.generateContent(prompt).pipe(Effect.provide(layer))
      assert.strictEqual(Gemini.text(response), "sandbox answer to: open example.com")
    }))

  it.scoped("a malformed body is a DecodeError after one request", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      yield* sandbox.setPlan("gemini", [{ malformed: true }, { malformed: true }])
      const exit = yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(sandbox, onTestClock))))
      const error = failureOf(exit)
      assert.strictEqual(error._tag, "DecodeError")
      assert.isFalse(error.retryable)
      assert.lengthOf(yield* geminiRequests(sandbox), 1)
    }))

  it.scoped("a reset connection is a NetworkError and is retried", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      yield* sandbox.setPlan("gemini", [{ reset: true }])
      const error = yield* Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(sandbox, singleAttempt)), Effect.flip)
      assert.strictEqual(error._tag, "NetworkError")
      yield* sandbox.setPlan("gemini", [{ reset: true }])
      const exit = yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(sandbox, onTestClock))))
      assert.isTrue(Exit.isSuccess(exit))
      const requests = yield* geminiRequests(sandbox)
      assert.deepStrictEqual(requests.map((request) => request.outcome), ["reset", "reset", 200])
    }))

  it.scoped("a stopped server (connection refused) is a NetworkError", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      yield* sandbox.stop
      const error = yield* Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(sandbox, singleAttempt)), Effect.flip)
      assert.strictEqual(error._tag, "NetworkError")
      assert.isTrue(error.retryable)
    }))

  it.scoped("a blocked prompt is PromptBlocked after one request", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      const exit = yield* driveClock(
        Gemini.generateContent({ contents: [Gemini.userTurn("please BLOCK_ME")] }).pipe(
          Effect.provide(geminiLayer(sandbox, onTestClock))
        )
      )
      const error = failureOf(exit)
      assert.strictEqual(error._tag, "PromptBlocked")
      if (error._tag === "PromptBlocked") assert.strictEqual(error.blockReason, "SAFETY")
      assert.lengthOf(yield* geminiRequests(sandbox), 1)
    }))

  it.scoped("declared tools come back as function calls", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      const response = yield* Gemini.generateContent({
        ...prompt,
        tools: [{ computerUse: { environment: "ENVIRONMENT_BROWSER" } }]
      }).pipe(Effect.provide(geminiLayer(sandbox, singleAttempt)))
      assert.deepStrictEqual(Gemini.functionCalls(response).map((call) => call.name), ["click_at"])
    }))

  it.scoped("5 failures open the breaker and the 6th call never reaches the sandbox", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      yield* sandbox.setPlan("gemini", [503, 503, 503, 503, 503, 503, 503])
      yield* Effect.gen(function*() {
        for (let call = 1; call <= 5; call++) {
          const error = yield* Effect.flip(Gemini.generateContent(prompt))
          assert.strictEqual(error._tag, "ServiceUnavailable")
        }
        const sixth = yield* Effect.flip(Gemini.generateContent(prompt))
        assert.strictEqual(sixth._tag, "CircuitOpen")
        assert.strictEqual(yield* CircuitBreaker.state("gemini"), "open")
      }).pipe(Effect.provide(geminiLayer(sandbox, singleAttempt)))
      assert.lengthOf(yield* geminiRequests(sandbox), 5)
    }))

  it.scoped("the key is in no URL, recorded header or captured log line", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      yield* sandbox.setPlan("gemini", [503, { status: 429, retryAfter: "1 second" }])
      const lines: Array<string> = []
      const capture = Logger.make((options) => {
        lines.push(Logger.stringLogger.log(options))
      })
      const logged = <A, E>(self: Effect.Effect<A, E>) =>
        self.pipe(
          Effect.tapErrorCause((cause) => Effect.logError("gemini call failed", cause)),
          Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
          Logger.withMinimumLogLevel(LogLevel.All)
        )
      const ok = yield* driveClock(logged(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(sandbox, onTestClock)))))
      assert.isTrue(Exit.isSuccess(ok))
      // A rejected key logs its failure too.
      const rejected = yield* driveClock(
        logged(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(sandbox, onTestClock, `${sandboxKey}-old`))))
      )
      assert.strictEqual(failureOf(rejected)._tag, "Unauthorized")
      const requests = yield* geminiRequests(sandbox)
      assert.lengthOf(requests, 4)
      assert.isAtLeast(lines.length, 3)
      for (const line of lines) assert.notInclude(line, sandboxKey)
      for (const request of requests) {
        assert.notInclude(request.path, sandboxKey)
        assert.notInclude(JSON.stringify(request.query), sandboxKey)
        assert.notInclude(JSON.stringify(request.headers), sandboxKey)
        assert.property(request.headers, "x-goog-api-key")
      }
    }))
})

// ---------------------------------------------------------------------------------------------
// Streaming and quotas, over real HTTP
// ---------------------------------------------------------------------------------------------

/** As `onTestClock`, with the gap between chunks also far beyond any retry wait `driveClock` jumps. */
const streamOnTestClock: ReliabilityConfig.Overrides = {
  policies: { gemini: { jitter: "none" } },
  timeouts: { gemini_api: "10 minutes", http_request_long: "10 minutes" }
}

const streamTexts = (sandboxOrUrl: { readonly url: string }, overrides: ReliabilityConfig.Overrides = streamOnTestClock) =>
  Effect.gen(function*() {
    const emitted: Array<string> = []
    const layer = Gemini.layerWith({ apiKey: Redacted.make(sandboxKey), baseUrl: sandboxOrUrl.url }).pipe(
      Layer.provideMerge(CircuitBreaker.layer),
      Layer.provide(Layer.orDie(ReliabilityConfig.layerWith(overrides))),
      Layer.provide(NodeHttpClient.layerUndici)
    )
    const exit = yield* driveClock(
      Gemini.generateContentStream(prompt).pipe(
        Stream.runForEach((response) => Effect.sync(() => emitted.push(Gemini.text(response)))),
        Effect.provide(layer)
      )
    )
    return { emitted, exit }
  })

/** A stream from a bare server that must fail: what it emitted, its error, and how many requests it took. */
const failedStream = (server: { readonly url: string; readonly requests: () => number }) =>
  Effect.map(streamTexts(server), ({ emitted, exit }) => {
    const error = failureOf(exit)
    return { emitted, tag: error._tag, message: error.message, requests: server.requests() }
  })

/** One server-sent event carrying a text answer, as Gemini streams them. */
const event = (text: string) => `data: ${JSON.stringify(Gemini.textResponse(text))}\n\n`

/** An event before the last of an answer: Gemini writes `finishReason` only on the last one. */
const partialEvent = (text: string) =>
  `data: ${JSON.stringify({ candidates: [{ content: { role: "model", parts: [{ text }] }, index: 0 }] })}\n\n`

/**
 * A server written here, not ours: answers every request with `respond`, which is told the
 * request's number (1 for the first); `requests()` says how many came.
 */
const bareServer = (respond: (request: Http.IncomingMessage, response: Http.ServerResponse, number: number) => void) => {
  let requests = 0
  return Effect.acquireRelease(
    Effect.async<Http.Server>((resume) => {
      const server = Http.createServer((request, response) => {
        const number = ++requests
        request.resume()
        request.on("end", () => respond(request, response, number))
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map((server) => {
    const address = server.address()
    return {
      url: `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`,
      requests: () => requests
    }
  }))
}

describe("Gemini streaming and quotas over loopback", () => {
  it.scoped("streams the sandbox's SSE chunks; the answer is their text joined", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      const { emitted, exit } = yield* streamTexts(sandbox)
      assert.isTrue(Exit.isSuccess(exit))
      assert.deepStrictEqual(emitted, ["sandbox answer ", "to: open ", "example.com"])
      const [recorded] = yield* geminiRequests(sandbox)
      assert.strictEqual(recorded?.path, `/v1beta/models/${Gemini.defaultModel}:streamGenerateContent`)
      assert.deepStrictEqual(recorded?.query, { alt: "sse" })
    }))

  it.scoped("a 503 before the first chunk is retried after 2 s; then the stream", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey, plans: { gemini: [503] } })
      const { emitted, exit } = yield* streamTexts(sandbox)
      assert.isTrue(Exit.isSuccess(exit))
      assert.strictEqual(emitted.join(""), "sandbox answer to: open example.com")
      const requests = yield* geminiRequests(sandbox)
      assert.deepStrictEqual(requests.map((request) => [request.outcome, request.time - requests[0]!.time]), [[503, 0], [200, 2_000]])
    }))

  it.scoped("an error event after the first chunk ends the stream with ServiceUnavailable; nothing is retried", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey, plans: { gemini: [{ midStream: "error", after: 1 }] } })
      const { emitted, exit } = yield* streamTexts(sandbox)
      assert.deepStrictEqual(emitted, ["sandbox answer "])
      assert.strictEqual(failureOf(exit)._tag, "ServiceUnavailable")
      assert.lengthOf(yield* geminiRequests(sandbox), 1)
    }))

  it.scoped("a connection dropped after the first chunk ends the stream with NetworkError; nothing is retried", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey, plans: { gemini: [{ midStream: "reset", after: 1 }] } })
      const { emitted, exit } = yield* streamTexts(sandbox)
      assert.deepStrictEqual(emitted, ["sandbox answer "])
      assert.strictEqual(failureOf(exit)._tag, "NetworkError")
      assert.lengthOf(yield* geminiRequests(sandbox), 1)
    }))

  it.scoped("a stream the sandbox ends cleanly after the first chunk (no finishReason yet) ends with NetworkError; nothing is retried", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey, plans: { gemini: [{ midStream: "end", after: 1 }] } })
      const { emitted, exit } = yield* streamTexts(sandbox)
      assert.deepStrictEqual(emitted, ["sandbox answer "])
      const error = failureOf(exit)
      assert.strictEqual(error._tag, "NetworkError")
      assert.strictEqual(
        error.message,
        "gemini: the event stream ended without a finishReason; the connection was cut before the answer was complete"
      )
      assert.deepStrictEqual((yield* geminiRequests(sandbox)).map((request) => [request.outcome, request.fault]), [[200, "midStream"]])
    }))

  it.scoped("a per-day quota 429 (hint only in the body) fails at once; a per-minute one waits its RetryInfo", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: sandboxKey })
      yield* sandbox.setPlan("gemini", [{ status: 429, retryAfter: "13 seconds", quota: "day" }])
      const daily = failureOf(yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(sandbox, onTestClock)))))
      assert.strictEqual(daily._tag, "QuotaExhausted")
      assert.lengthOf(yield* geminiRequests(sandbox), 1)
      yield* sandbox.reset
      yield* sandbox.setPlan("gemini", [{ status: 429, retryAfter: "45.837906927 seconds" }])
      const exit = yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(geminiLayer(sandbox, onTestClock))))
      assert.isTrue(Exit.isSuccess(exit))
      const requests = yield* geminiRequests(sandbox)
      assert.deepStrictEqual(requests.map((request) => request.time - requests[0]!.time), [0, 45_838])
    }))

  it.scoped("a bare SSE server: LF endings, comments, an event split across writes, then the end", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        response.writeHead(200, { "content-type": "text/event-stream" })
        const whole = `: ping\n\n${event("Hello, ")}${event("world")}`
        response.write(whole.slice(0, 40))
        setTimeout(() => {
          response.write(whole.slice(40))
          response.end()
        }, 20)
      })
      const { emitted, exit } = yield* streamTexts(server, { ...streamOnTestClock, policies: { gemini: { maxAttempts: 1 } } })
      assert.isTrue(Exit.isSuccess(exit), String(exit))
      assert.deepStrictEqual(emitted, ["Hello, ", "world"])
    }))

  it.scoped("a bare server that ends the stream in the middle of an event: NetworkError after the chunks before it, not a short answer", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        response.writeHead(200, { "content-type": "text/event-stream" })
        // A clean end of the body (the chunked encoding is finished): only the SSE framing shows the cut.
        response.end(`${event("Hello, ")}${event("world").slice(0, 30)}`)
      })
      assert.deepStrictEqual(yield* failedStream(server), {
        emitted: ["Hello, "],
        tag: "NetworkError",
        message: "gemini: the event stream ended in the middle of an event (30 characters after the last complete one); " +
          "the connection was cut before the answer was complete",
        requests: 1
      })
    }))

  // The last chunk of a whole answer always carries a finishReason: a body that ends cleanly
  // without one was cut (a proxy closing it, say), and its function calls may be half of them.
  it.scoped("a bare server that ends the stream cleanly before any finishReason: NetworkError after the chunks before it, not a short answer", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        response.writeHead(200, { "content-type": "text/event-stream" })
        response.end(`${partialEvent("Hello, ")}${partialEvent("wor")}`)
      })
      assert.deepStrictEqual(yield* failedStream(server), {
        emitted: ["Hello, ", "wor"],
        tag: "NetworkError",
        message: "gemini: the event stream ended without a finishReason; the connection was cut before the answer was complete",
        requests: 1
      })
    }))

  it.scoped("a bare server whose first answer is an empty event stream is asked again, and the second answer is the stream", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response, number) => {
        response.writeHead(200, { "content-type": "text/event-stream" })
        response.end(number === 1 ? "" : `${partialEvent("Hello, ")}${event("world")}`)
      })
      const { emitted, exit } = yield* streamTexts(server)
      assert.isTrue(Exit.isSuccess(exit), String(exit))
      assert.deepStrictEqual(emitted, ["Hello, ", "world"])
      assert.strictEqual(server.requests(), 2)
    }))

  // A prompt blocked at input is one chunk with promptFeedback.blockReason, no candidates and
  // so no finishReason: a whole answer, refused, not a cut stream.
  it.scoped("a bare server's blocked prompt in a stream is PromptBlocked after one request, not a cut stream", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        response.writeHead(200, { "content-type": "text/event-stream" })
        response.end(`data: ${JSON.stringify({
          promptFeedback: { blockReason: "PROHIBITED_CONTENT" },
          usageMetadata: { promptTokenCount: 12, totalTokenCount: 12 },
          modelVersion: "gemini-2.5-flash"
        })}\r\n\r\n`)
      })
      const { emitted, exit } = yield* streamTexts(server)
      const error = failureOf(exit)
      assert.deepStrictEqual(emitted, [])
      assert.strictEqual(error._tag, "PromptBlocked")
      assert.strictEqual(error.message, "gemini blocked the prompt (PROHIBITED_CONTENT); change the prompt, retrying will not help")
      assert.strictEqual(server.requests(), 1)
    }))

  // Without `alt=sse` Gemini streams a JSON array (application/json). A 200 in JSON to our
  // `alt=sse` request means something on the way dropped the parameter: asking again cannot
  // help. It was read as a cut event stream and asked three times.
  it.scoped("a bare server that answers a stream request with JSON, not an event stream: DecodeError after one request", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        response.writeHead(200, { "content-type": "application/json; charset=UTF-8" })
        response.end(JSON.stringify([Gemini.textResponse("Hello")]))
      })
      assert.deepStrictEqual(yield* failedStream(server), {
        emitted: [],
        tag: "DecodeError",
        message: "gemini answered a stream request with application/json, not text/event-stream: something between " +
          "big3 and Gemini dropped the alt=sse parameter",
        requests: 1
      })
    }))

  // A captive portal or a misconfigured proxy at GEMINI_BASE_URL answers 200 with its own page:
  // asking again gets the same page. It was read as a cut event stream and asked three times.
  it.scoped("a bare server that answers a stream request with an HTML page: DecodeError naming status and content-type, after one request", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        response.writeHead(200, { "content-type": "text/html; charset=utf-8" })
        response.end("<html><head><title>Sign in to the network</title></head><body>Accept the terms</body></html>")
      })
      assert.deepStrictEqual(yield* failedStream(server), {
        emitted: [],
        tag: "DecodeError",
        message: "gemini answered a stream request with HTTP 200 and content-type \"text/html; charset=utf-8\", " +
          "not text/event-stream: something other than Gemini (a proxy or a captive portal at GEMINI_BASE_URL?) answered; not retried",
        requests: 1
      })
    }))

  it.scoped("the content-type of a stream answer that is not an event stream is named scrubbed of the key and cut short", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        response.writeHead(200, { "content-type": `text/plain; echo=${sandboxKey}; ${"x".repeat(200)}` })
        response.end("not an event stream")
      })
      const { message, requests } = yield* failedStream(server)
      assert.strictEqual(
        message,
        `gemini answered a stream request with HTTP 200 and content-type "text/plain; echo=<redacted>; ${"x".repeat(51)}"… (229 characters), ` +
          "not text/event-stream: something other than Gemini (a proxy or a captive portal at GEMINI_BASE_URL?) answered; not retried"
      )
      assert.strictEqual(requests, 1)
    }))

  // The same page for a plain generateContent: it was a DecodeError quoting the JSON parser's
  // complaint about "<html>", which did not say that something else had answered.
  it.scoped("a bare server that answers generateContent with an HTML page: DecodeError naming status and content-type, after one request", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        response.writeHead(200, { "content-type": "text/html; charset=utf-8" })
        response.end("<html><head><title>Sign in to the network</title></head><body>Accept the terms</body></html>")
      })
      const layer = Gemini.layerWith({ apiKey: Redacted.make(sandboxKey), baseUrl: server.url }).pipe(
        Layer.provideMerge(CircuitBreaker.layer),
        Layer.provide(Layer.orDie(ReliabilityConfig.layerWith(onTestClock))),
        Layer.provide(NodeHttpClient.layerUndici)
      )
      const error = failureOf(yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(layer))))
      assert.deepStrictEqual({ tag: error._tag, retryable: error.retryable, message: error.message, requests: server.requests() }, {
        tag: "DecodeError",
        retryable: false,
        message: "gemini answered with HTTP 200 and content-type \"text/html; charset=utf-8\", not application/json: " +
          "something other than Gemini (a proxy or a captive portal at GEMINI_BASE_URL?) answered; not retried",
        requests: 1
      })
    }))

  it.scoped("the content-type of a generateContent answer that is not JSON is named scrubbed of the key and cut short", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        response.writeHead(200, { "content-type": `text/plain; echo=${sandboxKey}; ${"x".repeat(200)}` })
        response.end("not json")
      })
      const layer = Gemini.layerWith({ apiKey: Redacted.make(sandboxKey), baseUrl: server.url }).pipe(
        Layer.provideMerge(CircuitBreaker.layer),
        Layer.provide(Layer.orDie(ReliabilityConfig.layerWith(onTestClock))),
        Layer.provide(NodeHttpClient.layerUndici)
      )
      const error = failureOf(yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(layer))))
      assert.strictEqual(
        error.message,
        `gemini answered with HTTP 200 and content-type "text/plain; echo=<redacted>; ${"x".repeat(51)}"… (229 characters), ` +
          "not application/json: something other than Gemini (a proxy or a captive portal at GEMINI_BASE_URL?) answered; not retried"
      )
      assert.strictEqual(server.requests(), 1)
    }))

  it.scoped("a bare server whose first event is cut is asked again, and the second answer is the stream", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response, number) => {
        response.writeHead(200, { "content-type": "text/event-stream" })
        response.end(number === 1 ? event("Hello").slice(0, 20) : event("Hello"))
      })
      const { emitted, exit } = yield* streamTexts(server)
      assert.isTrue(Exit.isSuccess(exit), String(exit))
      assert.deepStrictEqual(emitted, ["Hello"])
      assert.strictEqual(server.requests(), 2)
    }))

  it.scoped("an answer body past maxResponseBytes is a DecodeError after one request, and its download stops there", () =>
    Effect.gen(function*() {
      let written = 0
      let closed: (writtenAtClose: number) => void = () => {}
      const writtenAtClose = new Promise<number>((resolve) => {
        closed = resolve
      })
      const total = 64 * 1024 * 1024
      const server = yield* bareServer((_request, response) => {
        response.writeHead(200, { "content-type": "application/json" })
        const piece = Buffer.alloc(64 * 1024, 0x20)
        const pump = () => {
          while (written < total && !response.destroyed) {
            written += piece.length
            if (!response.write(piece)) return response.once("drain", pump)
          }
          response.end()
        }
        response.on("close", () => closed(written))
        pump()
      })
      const layer = Gemini.layerWith({ apiKey: Redacted.make(sandboxKey), baseUrl: server.url, maxResponseBytes: 256 * 1024 }).pipe(
        Layer.provideMerge(CircuitBreaker.layer),
        Layer.provide(Layer.orDie(ReliabilityConfig.layerWith(onTestClock))),
        Layer.provide(NodeHttpClient.layerUndici)
      )
      const error = failureOf(yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(layer))))
      assert.strictEqual(error._tag, "DecodeError")
      assert.strictEqual(error.message, "gemini answered with a body over the limit of 262144 bytes (cut off there); not retried")
      assert.strictEqual(server.requests(), 1)
      // The client closed the connection: the server never wrote the whole body.
      assert.isBelow(yield* Effect.promise(() => writtenAtClose), total)
    }))

  it.scoped("an answer whose content-length is past maxResponseBytes fails before its body is read", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        // Headers only: a client that waited for the body would hang here.
        response.writeHead(200, { "content-type": "application/json", "content-length": String(10 * 1024 * 1024) })
        response.flushHeaders()
      })
      const layer = Gemini.layerWith({ apiKey: Redacted.make(sandboxKey), baseUrl: server.url, maxResponseBytes: 1024 }).pipe(
        Layer.provideMerge(CircuitBreaker.layer),
        Layer.provide(Layer.orDie(ReliabilityConfig.layerWith(onTestClock))),
        Layer.provide(NodeHttpClient.layerUndici)
      )
      const error = failureOf(yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(layer))))
      assert.strictEqual(error.message, "gemini answered with a body over the limit of 1024 bytes (content-length 10485760); not retried")
    }))

  it.scoped("a bare server's per-day 429 is QuotaExhausted, sent once", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        response.writeHead(429, { "content-type": "application/json" })
        response.end(JSON.stringify({
          error: {
            code: 429,
            status: "RESOURCE_EXHAUSTED",
            message: "You exceeded your current quota",
            details: [{
              "@type": "type.googleapis.com/google.rpc.QuotaFailure",
              violations: [{ quotaId: "GenerateRequestsPerDayPerProjectPerModel-FreeTier" }]
            }]
          }
        }))
      })
      const { exit } = yield* streamTexts(server)
      assert.strictEqual(failureOf(exit)._tag, "QuotaExhausted")
      assert.strictEqual(server.requests(), 1)
    }))
})

// ---------------------------------------------------------------------------------------------
// Content-Encoding, over real HTTP: undici hands the body over as sent, compressed or not
// ---------------------------------------------------------------------------------------------

/** A body compressed with the coding named by a `Content-Encoding` value. */
const encoders: Record<"gzip" | "deflate" | "br", (body: string) => Buffer> = {
  gzip: (body) => Zlib.gzipSync(body),
  deflate: (body) => Zlib.deflateSync(body),
  br: (body) => Zlib.brotliCompressSync(body)
}

const layerFor = (server: { readonly url: string }, options: Partial<Gemini.Options> = {}) =>
  Gemini.layerWith({ apiKey: Redacted.make(sandboxKey), baseUrl: server.url, ...options }).pipe(
    Layer.provideMerge(CircuitBreaker.layer),
    Layer.provide(Layer.orDie(ReliabilityConfig.layerWith(onTestClock))),
    Layer.provide(NodeHttpClient.layerUndici)
  )

describe("Gemini answers with a Content-Encoding it did not ask for", () => {
  it.scoped("requests ask for identity, so a fetch client (which decodes by itself) is not sent a body to decode twice", () =>
    Effect.gen(function*() {
      const asked: Array<string | undefined> = []
      // As Google's front ends do: compressed only when the request accepts gzip.
      const server = yield* bareServer((request, response) => {
        asked.push(request.headers["accept-encoding"])
        const body = JSON.stringify(Gemini.textResponse("answered once"))
        if (/gzip/.test(request.headers["accept-encoding"] ?? "")) {
          response.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" })
          response.end(encoders.gzip(body))
        } else {
          response.writeHead(200, { "content-type": "application/json" })
          response.end(body)
        }
      })
      const layer = Gemini.layerWith({ apiKey: Redacted.make(sandboxKey), baseUrl: server.url }).pipe(
        Layer.provideMerge(CircuitBreaker.layer),
        Layer.provide(Layer.orDie(ReliabilityConfig.layerWith(onTestClock))),
        Layer.provide(FetchHttpClient.layer)
      )
      const exit = yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(layer)))
      assert.isTrue(Exit.isSuccess(exit), String(exit))
      if (Exit.isSuccess(exit)) assert.strictEqual(Gemini.text(exit.value), "answered once")
      assert.deepStrictEqual(asked, ["identity"])
    }))

  it.scoped("a gzip, deflate or br answer from a bare server is decoded", () =>
    Effect.gen(function*() {
      const codings = ["gzip", "deflate", "br"] as const
      const server = yield* bareServer((_request, response, number) => {
        const coding = codings[number - 1] ?? "gzip"
        response.writeHead(200, { "content-type": "application/json", "content-encoding": coding })
        response.end(encoders[coding](JSON.stringify(Gemini.textResponse(`answered in ${coding}`))))
      })
      const texts: Array<string> = []
      for (const _coding of codings) {
        const exit = yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(layerFor(server))))
        assert.isTrue(Exit.isSuccess(exit), String(exit))
        if (Exit.isSuccess(exit)) texts.push(Gemini.text(exit.value))
      }
      assert.deepStrictEqual(texts, ["answered in gzip", "answered in deflate", "answered in br"])
      assert.strictEqual(server.requests(), 3)
    }))

  it.scoped("a gzip event stream from a bare server is decoded chunk by chunk", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        response.writeHead(200, { "content-type": "text/event-stream", "content-encoding": "gzip" })
        response.end(encoders.gzip(`${partialEvent("Hello, ")}${event("world")}`))
      })
      const { emitted, exit } = yield* streamTexts(server)
      assert.isTrue(Exit.isSuccess(exit), String(exit))
      assert.deepStrictEqual(emitted, ["Hello, ", "world"])
    }))

  it.scoped("a gzip error answer is read for its message", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        response.writeHead(400, { "content-type": "application/json", "content-encoding": "gzip" })
        response.end(encoders.gzip(JSON.stringify({
          error: { code: 400, status: "INVALID_ARGUMENT", message: "Invalid JSON payload received." }
        })))
      })
      const error = failureOf(yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(layerFor(server)))))
      assert.strictEqual(error._tag, "InvalidRequest")
      assert.strictEqual(error.message, "gemini answered HTTP 400: INVALID_ARGUMENT: Invalid JSON payload received.")
    }))

  it.scoped("an encoding big3 cannot decode is a DecodeError naming it, after one request", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        response.writeHead(200, { "content-type": "application/json", "content-encoding": "compress" })
        response.end(Buffer.from([0x1f, 0x9d, 0x90, 0x7b, 0x00]))
      })
      const error = failureOf(yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(layerFor(server)))))
      assert.strictEqual(error._tag, "DecodeError")
      assert.strictEqual(
        error.message,
        "gemini answered with content-encoding \"compress\", which big3 cannot decode (it reads gzip, deflate and br); not retried"
      )
      assert.strictEqual(server.requests(), 1)
    }))

  it.scoped("a gzip body cut short is a cut connection: asked again", () =>
    Effect.gen(function*() {
      const whole = encoders.gzip(JSON.stringify(Gemini.textResponse("whole")))
      const server = yield* bareServer((_request, response, number) => {
        response.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" })
        response.end(number === 1 ? whole.subarray(0, whole.length - 12) : whole)
      })
      const exit = yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(layerFor(server))))
      assert.isTrue(Exit.isSuccess(exit), String(exit))
      if (Exit.isSuccess(exit)) assert.strictEqual(Gemini.text(exit.value), "whole")
      assert.strictEqual(server.requests(), 2)
    }))

  it.scoped("a body that is not gzip under content-encoding gzip is a DecodeError, after one request", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        response.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" })
        response.end(JSON.stringify(Gemini.textResponse("plain")))
      })
      const error = failureOf(yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(layerFor(server)))))
      assert.strictEqual(error._tag, "DecodeError")
      assert.strictEqual(error.message, "gemini answered with a body that is not valid gzip (incorrect header check); not retried")
      assert.strictEqual(server.requests(), 1)
    }))

  it.scoped("maxResponseBytes bounds the decoded body, not the compressed one", () =>
    Effect.gen(function*() {
      const server = yield* bareServer((_request, response) => {
        response.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" })
        response.end(encoders.gzip(" ".repeat(4 * 1024 * 1024)))
      })
      const error = failureOf(
        yield* driveClock(Gemini.generateContent(prompt).pipe(Effect.provide(layerFor(server, { maxResponseBytes: 256 * 1024 }))))
      )
      assert.strictEqual(error.message, "gemini answered with a body over the limit of 262144 bytes (cut off there); not retried")
      assert.strictEqual(server.requests(), 1)
    }))
})
