/**
 * The Realtime client against a bare `ws` server written here (not our sandbox): the GA shapes it
 * sends, the turn loop, and each way a connection can go wrong. Everything on 127.0.0.1; timeouts
 * on the `TestClock` (the sockets are real, the waits are not).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Errors from "../src/Errors.js"
import * as Metrics from "../src/Metrics.js"
import * as Realtime from "../src/Realtime.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import { toRealtimeError } from "../src/realtime/ServerError.js"
import { bareServer, realPause, type Received, type ServerConnection, serverEvents, waitFor, waitForTimer } from "./support/wsServer.js"

const client = (url: string, overrides: ReliabilityConfig.Overrides = {}, apiKey: string | null = "test-key") =>
  Realtime.layerWith({ url, ...(apiKey === null ? {} : { apiKey: Redacted.make(apiKey) }) }).pipe(
    Layer.provideMerge(CircuitBreaker.layer),
    Layer.provideMerge(ReliabilityConfig.layerWith({
      ...overrides,
      policies: { ...overrides.policies, network: { jitter: "none", initialDelay: "10 millis", ...overrides.policies?.["network"] } }
    }))
  )

/** An error as the tests compare it: its tag, whether it is retryable, its message. */
const summary = (error: { readonly _tag: string; readonly message: string }) =>
  ({ tag: error._tag, retryable: Errors.isRetryable(error), message: error.message })

/** `Realtime.connect()` to `url` in a fiber of its own, which ends with the error it failed with. */
const connectFailing = (url: string) => Effect.fork(Effect.flip(Realtime.connect().pipe(Effect.provide(client(url)))))

const listAgents: Realtime.FunctionTool = {
  type: "function",
  name: "list_agents",
  description: "List the agents",
  parameters: { type: "object", properties: {} }
}

/** Takes client events up to and including the next `response.create`. */
const untilResponseCreate = (connection: ServerConnection) =>
  Effect.gen(function*() {
    const events: Array<Received> = []
    while (true) {
      const event = yield* connection.next
      events.push(event)
      if (event.type === "response.create") return events
    }
  })

/** A client event without its `event_id` (ours are sequence numbers; tests compare the rest). */
const bare = (event: Received) => {
  const { event_id: _id, ...rest } = event
  return rest
}

const user = (text: string) => ({
  type: "conversation.item.create",
  item: { type: "message", role: "user", content: [{ type: "input_text", text }] }
})
const assistant = (text: string) => ({
  type: "conversation.item.create",
  item: { type: "message", role: "assistant", content: [{ type: "output_text", text }] }
})
const call = (callId: string, name: string, args: string) => ({
  type: "conversation.item.create",
  item: { type: "function_call", call_id: callId, name, arguments: args }
})
const output = (callId: string, text: string) => ({
  type: "conversation.item.create",
  item: { type: "function_call_output", call_id: callId, output: text }
})
const sessionUpdate = { type: "session.update", session: { type: "realtime", output_modalities: ["text"] } }

/** A function-call handler that counts runs per call id and answers "ran <name> #n". */
const countingHandler = Effect.map(Ref.make(new Map<string, number>()), (runs) => ({
  runs,
  handler: (functionCall: Realtime.FunctionCall) =>
    Ref.modify(runs, (current) => {
      const n = (current.get(functionCall.callId) ?? 0) + 1
      return [`ran ${functionCall.name} #${n}`, new Map(current).set(functionCall.callId, n)] as const
    })
}))

describe("Realtime", () => {
  it.scopedLive("connects with the Bearer key and the model, then configures a GA realtime session", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      yield* Realtime.connect({ instructions: "be brief", tools: [listAgents] }).pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      assert.strictEqual(connection.headers["authorization"], "Bearer test-key")
      assert.strictEqual(connection.path, "/v1/realtime?model=gpt-realtime")
      assert.deepStrictEqual(yield* connection.next, {
        type: "session.update",
        event_id: "big3_1",
        session: {
          type: "realtime",
          output_modalities: ["text"],
          instructions: "be brief",
          tools: [listAgents],
          tool_choice: "auto"
        }
      })
    }))

  it.scopedLive("a turn sends the user message and one response.create, and returns the assistant's text", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const session = yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("hello"))
      const events = yield* untilResponseCreate(connection)
      assert.deepStrictEqual(events.map(bare), [sessionUpdate, user("hello"), { type: "response.create" }])
      yield* connection.send(serverEvents.sessionCreated())
      yield* connection.send({ type: "response.created", event_id: "e1", response: { id: "resp_1", status: "in_progress", output: [] } })
      yield* connection.send({ type: "response.output_text.delta", event_id: "e2", response_id: "resp_1", item_id: "i", output_index: 0, content_index: 0, delta: "hi " })
      yield* connection.send(serverEvents.textResponse("resp_1", "hi there"))
      assert.deepStrictEqual(yield* Fiber.join(turn), {
        text: "hi there",
        calls: [],
        skipped: [],
        responses: 1,
        status: "completed",
        error: undefined
      })
    }))

  it.scopedLive("function calls: each output goes back, then exactly one response.create for the round", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const { handler, runs } = yield* countingHandler
      const session = yield* Realtime.connect({ tools: [listAgents], onFunctionCall: handler }).pipe(
        Effect.provide(client(server.url))
      )
      const connection = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("list twice"))
      yield* untilResponseCreate(connection)
      yield* connection.send(serverEvents.callResponse("resp_1", [
        { callId: "call_A", name: "list_agents", arguments: "{}" },
        { callId: "call_B", name: "list_agents", arguments: "{}" }
      ]))
      const round = yield* untilResponseCreate(connection)
      assert.deepStrictEqual(
        round.map(bare).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
        [output("call_A", "ran list_agents #1"), output("call_B", "ran list_agents #1"), { type: "response.create" }]
          .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))
      )
      assert.strictEqual(round.at(-1)?.type, "response.create")
      yield* connection.send(serverEvents.textResponse("resp_2", "two lists"))
      const result = yield* Fiber.join(turn)
      assert.strictEqual(result.text, "two lists")
      assert.strictEqual(result.responses, 2)
      assert.deepStrictEqual(result.calls.map((c) => c.callId).sort(), ["call_A", "call_B"])
      assert.deepStrictEqual(Array.from((yield* Ref.get(runs)).entries()).sort(), [["call_A", 1], ["call_B", 1]])
      const stats = yield* session.stats
      assert.strictEqual(stats.responsesRequested, 2)
      assert.strictEqual(stats.maxResponsesInFlight, 1)
    }))

  it.scopedLive("missing OPENAI_API_KEY: Unauthorized, and no connection is attempted", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const exit = yield* Effect.exit(Realtime.connect().pipe(Effect.provide(client(server.url, {}, null))))
      assert.deepStrictEqual(
        Exit.mapBoth(exit, { onFailure: (error) => `${error._tag}: ${error.message}`, onSuccess: () => "connected" }),
        Exit.fail("Unauthorized: OPENAI_API_KEY is not set: set it to an OpenAI API key; no connection was attempted")
      )
      assert.strictEqual(server.upgrades(), 0)
    }))

  it.scopedLive("the key comes from OPENAI_API_KEY; a blank one counts as missing", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const exit = yield* Effect.exit(Realtime.connect().pipe(Effect.provide(client(server.url, {}, "  "))))
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual(server.upgrades(), 0)
    }))

  // Through the environment as `big3 voice` reads it: unset and blank alike fail before any
  // socket, so not even a TCP connection reaches the endpoint.
  it.scopedLive("OPENAI_API_KEY unset or blank in the environment: non-retryable Unauthorized naming it, no TCP connection", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const failures: Array<unknown> = []
      for (const key of [undefined, "", "   "]) {
        const environment = new Map([["OPENAI_REALTIME_URL", server.url], ...(key === undefined ? [] : [["OPENAI_API_KEY", key] as const])])
        const layer = Realtime.layer.pipe(
          Layer.provideMerge(CircuitBreaker.layer),
          Layer.provideMerge(ReliabilityConfig.layerWith({})),
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(environment)))
        )
        const error = yield* Effect.flip(Realtime.connect().pipe(Effect.provide(layer)))
        failures.push(summary(error))
      }
      const expected = {
        tag: "Unauthorized",
        retryable: false,
        message: "OPENAI_API_KEY is not set: set it to an OpenAI API key; no connection was attempted"
      }
      assert.deepStrictEqual(failures, [expected, expected, expected])
      assert.strictEqual(server.tcpConnections(), 0)
    }))

  it.scopedLive("an upgrade refused with 401 is Unauthorized with the server's message, not retried", () =>
    Effect.gen(function*() {
      const server = yield* bareServer({
        onUpgrade: () => ({
          status: 401,
          body: JSON.stringify({ error: { message: "Incorrect API key provided", type: "invalid_request_error", code: "invalid_api_key" } })
        })
      })
      const error = yield* Effect.flip(Realtime.connect().pipe(Effect.provide(client(server.url))))
      assert.strictEqual(error._tag, "Unauthorized")
      assert.strictEqual(error.message, "openai_realtime answered HTTP 401: invalid_request_error: Incorrect API key provided")
      assert.strictEqual(server.upgrades(), 1)
    }))

  it.scopedLive("an upgrade refused with 429 insufficient_quota is QuotaExhausted, not retried", () =>
    Effect.gen(function*() {
      const server = yield* bareServer({
        onUpgrade: () => ({
          status: 429,
          body: JSON.stringify({
            error: {
              message: "You exceeded your current quota, please check your plan and billing details.",
              type: "insufficient_quota",
              param: null,
              code: "insufficient_quota"
            }
          })
        })
      })
      const error = yield* Effect.flip(Realtime.connect().pipe(Effect.provide(client(server.url))))
      assert.deepStrictEqual({ tag: error._tag, retryable: Errors.isRetryable(error) }, { tag: "QuotaExhausted", retryable: false })
      assert.match(error.message, /^openai_realtime quota exhausted \(insufficient_quota\): .* retrying will not help until someone checks the plan and billing/)
      assert.strictEqual(server.upgrades(), 1)
    }))

  // The real API answers a wrong key after the upgrade, not with HTTP 401: one `error` event with
  // code invalid_api_key, then a close with code 3000 (see test/sdk.openai.test.ts).
  it.scopedLive("an invalid_api_key error event after the upgrade loses the session as Unauthorized, without reconnecting", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const session = yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("hi"))
      yield* connection.send(serverEvents.error("invalid_api_key", "Incorrect API key provided: test-key."))
      yield* connection.close(3000, "invalid_request_error.invalid_api_key")
      const error = yield* Effect.flip(Fiber.join(turn))
      assert.strictEqual(error._tag, "Unauthorized")
      assert.strictEqual(error.retryable, false)
      assert.strictEqual(error.message, "openai_realtime refused the API key: invalid_request_error (invalid_api_key): Incorrect API key provided: <redacted>.")
      assert.strictEqual((yield* Effect.flip(session.lost)).message, error.message)
      assert.strictEqual(server.upgrades(), 1)
      assert.deepStrictEqual((yield* session.stats).reconnects, [])
    }))

  // Out of credit, every later response would fail the same way until someone adds credit: the
  // session is lost at once with the non-retryable QuotaExhausted rather than failing turn after turn.
  it.scopedLive("an insufficient_quota error event during a turn loses the session as QuotaExhausted, without reconnecting", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const session = yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("hi"))
      yield* untilResponseCreate(connection)
      yield* connection.send(serverEvents.error(
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
        null,
        "insufficient_quota"
      ))
      const error = yield* Effect.flip(Fiber.join(turn))
      assert.deepStrictEqual(summary(error), {
        tag: "QuotaExhausted",
        retryable: false,
        message: "openai_realtime quota exhausted (insufficient_quota): the account is out of credit or past its spending limit; " +
          "retrying will not help until someone checks the plan and billing (openai_realtime reported insufficient_quota " +
          "(insufficient_quota): You exceeded your current quota, please check your plan and billing details.)"
      })
      assert.strictEqual((yield* Effect.flip(session.lost)).message, error.message)
      assert.strictEqual((yield* Effect.flip(session.send("again")))._tag, "QuotaExhausted")
      // Our side closes the connection; nobody dials again.
      assert.isTrue((yield* Deferred.await(connection.closed)).code > 0)
      assert.strictEqual(server.upgrades(), 1)
      assert.deepStrictEqual((yield* session.stats).reconnects, [])
    }))

  // How the API is seen to report it in practice: the response ends failed, its status_details
  // naming insufficient_quota, with no error event.
  it.scopedLive("a response.done failed for insufficient_quota loses the session as QuotaExhausted, without reconnecting", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const session = yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("hi"))
      yield* untilResponseCreate(connection)
      yield* connection.send({ type: "response.created", event_id: "e1", response: { id: "resp_1", status: "in_progress", output: [] } })
      yield* connection.send({
        type: "response.done",
        event_id: "e2",
        response: {
          object: "realtime.response",
          id: "resp_1",
          status: "failed",
          status_details: {
            type: "failed",
            error: {
              type: "insufficient_quota",
              code: "insufficient_quota",
              message: "You exceeded your current quota, please check your plan and billing details."
            }
          },
          output: [],
          usage: { total_tokens: 0, input_tokens: 0, output_tokens: 0 }
        }
      })
      const error = yield* Effect.flip(Fiber.join(turn))
      assert.deepStrictEqual(summary(error), {
        tag: "QuotaExhausted",
        retryable: false,
        message: "openai_realtime quota exhausted (insufficient_quota): the account is out of credit or past its spending limit; " +
          "retrying will not help until someone checks the plan and billing (openai_realtime reported insufficient_quota " +
          "(insufficient_quota): You exceeded your current quota, please check your plan and billing details.)"
      })
      assert.strictEqual((yield* Effect.flip(session.lost))._tag, "QuotaExhausted")
      assert.isTrue((yield* Deferred.await(connection.closed)).code > 0)
      assert.strictEqual(server.upgrades(), 1)
      assert.deepStrictEqual((yield* session.stats).reconnects, [])
    }))

  it.scopedLive("an insufficient_quota error before session.created fails connect as QuotaExhausted, without another attempt", () =>
    Effect.gen(function*() {
      const server = yield* bareServer({ greet: false })
      const connecting = yield* connectFailing(server.url)
      const connection = yield* server.nextConnection
      yield* connection.send(serverEvents.error("insufficient_quota", "You exceeded your current quota.", null, "insufficient_quota"))
      const error = yield* Fiber.join(connecting)
      assert.deepStrictEqual({ tag: error._tag, retryable: Errors.isRetryable(error) }, { tag: "QuotaExhausted", retryable: false })
      assert.strictEqual(server.upgrades(), 1)
    }))

  it.scopedLive("a server that echoes the key: the key reaches no error, event or turn", () =>
    Effect.gen(function*() {
      const server = yield* bareServer({
        onUpgrade: (n) =>
          n === 1
            ? { status: 401, body: JSON.stringify({ error: { message: "bad key test-key", type: "invalid_request_error" } }) }
            : "accept"
      })
      const refused = yield* Effect.flip(Realtime.connect().pipe(Effect.provide(client(server.url))))
      assert.strictEqual(refused.message, "openai_realtime answered HTTP 401: invalid_request_error: bad key <redacted>")
      const reported: Array<string> = []
      const session = yield* Realtime.connect({
        onEvent: (event) => Effect.sync(() => event._tag === "ServerError" && void reported.push(event.message))
      }).pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      const failed = yield* Effect.fork(session.send("hi"))
      yield* untilResponseCreate(connection)
      yield* connection.send(serverEvents.error("oops", "your key test-key is odd", null, "server_error"))
      assert.strictEqual((yield* Fiber.join(failed)).error, "server_error (oops): your key <redacted> is odd")
      const turn = yield* Effect.fork(session.send("hi again"))
      yield* untilResponseCreate(connection)
      yield* connection.send(serverEvents.textResponse("resp_2", "I know test-key"))
      assert.strictEqual((yield* Fiber.join(turn)).text, "I know <redacted>")
      assert.deepStrictEqual(reported, ["your key <redacted> is odd"])
    }))

  it.scopedLive("an upgrade refused with 503 is retried with policy network, then succeeds", () =>
    Effect.gen(function*() {
      const server = yield* bareServer({ onUpgrade: (n) => n < 3 ? { status: 503 } : "accept" })
      yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
      assert.strictEqual(server.upgrades(), 3)
      assert.strictEqual(server.connections.length, 1)
    }))

  it("server error events map to the taxonomy by their type and code: retryable only when trying again can help", () => {
    const mapped = [
      { type: "server_error", code: null },
      { type: "invalid_request_error", code: "rate_limit_exceeded" },
      { type: "rate_limit_exceeded", code: null },
      { type: "invalid_request_error", code: "invalid_api_key" },
      { type: "invalid_request_error", code: "session_expired" },
      { type: "invalid_request_error", code: "model_not_found" },
      { type: "insufficient_quota", code: "insufficient_quota" },
      { type: "insufficient_quota", code: null },
      { type: "invalid_request_error", code: "insufficient_quota" },
      { type: "something_new", code: null }
    ].map((error) => {
      const mappedError = toRealtimeError({ ...error, message: "m" })
      return `${error.type}/${error.code}: ${mappedError._tag} ${mappedError.retryable}`
    })
    assert.deepStrictEqual(mapped, [
      "server_error/null: ServiceUnavailable true",
      "invalid_request_error/rate_limit_exceeded: RateLimited true",
      "rate_limit_exceeded/null: RateLimited true",
      "invalid_request_error/invalid_api_key: Unauthorized false",
      "invalid_request_error/session_expired: SessionExpired true",
      "invalid_request_error/model_not_found: InvalidRequest false",
      "insufficient_quota/insufficient_quota: QuotaExhausted false",
      "insufficient_quota/null: QuotaExhausted false",
      "invalid_request_error/insufficient_quota: QuotaExhausted false",
      "something_new/null: InvalidRequest false"
    ])
  })

  // The real API opens every session with session.created; a bad model or key, or a refusal,
  // comes instead as an error event and/or a close before it.
  it.scopedLive("connect succeeds only once session.created has arrived, and sends nothing before it", () =>
    Effect.gen(function*() {
      const server = yield* bareServer({ greet: false })
      const connecting = yield* Effect.fork(Realtime.connect().pipe(Effect.provide(client(server.url))))
      const connection = yield* server.nextConnection
      yield* realPause(100)
      assert.isNull(connecting.unsafePoll())
      assert.deepStrictEqual(connection.received, [])
      yield* connection.send(serverEvents.sessionCreated())
      yield* Fiber.join(connecting)
      assert.deepStrictEqual(bare(yield* connection.next), sessionUpdate)
    }))

  it.scopedLive("an invalid_api_key error before session.created fails connect as Unauthorized, without another attempt", () =>
    Effect.gen(function*() {
      const server = yield* bareServer({ greet: false })
      const connecting = yield* connectFailing(server.url)
      const connection = yield* server.nextConnection
      yield* connection.send(serverEvents.error("invalid_api_key", "Incorrect API key provided: test-key."))
      yield* connection.close(3000, "invalid_request_error.invalid_api_key")
      const error = yield* Fiber.join(connecting)
      assert.deepStrictEqual(summary(error), {
        tag: "Unauthorized",
        retryable: false,
        message: "openai_realtime refused the API key: invalid_request_error (invalid_api_key): Incorrect API key provided: <redacted>."
      })
      assert.strictEqual(server.upgrades(), 1)
    }))

  it.scopedLive("an error before session.created fails the attempt with its type, code and message: server_error is retried, model_not_found is not", () =>
    Effect.gen(function*() {
      const server = yield* bareServer({ greet: false })
      const connecting = yield* connectFailing(server.url)
      const first = yield* server.nextConnection
      yield* first.send(serverEvents.error(null, "The server had an error while processing your request.", null, "server_error"))
      const second = yield* server.nextConnection
      yield* second.send(serverEvents.error("model_not_found", "The model 'gpt-nope' does not exist."))
      const error = yield* Fiber.join(connecting)
      assert.deepStrictEqual(summary(error), {
        tag: "InvalidRequest",
        retryable: false,
        message: "openai_realtime reported invalid_request_error (model_not_found): The model 'gpt-nope' does not exist."
      })
      // The failed attempts' sockets are closed, not left open.
      assert.isTrue((yield* Deferred.await(first.closed)).code > 0)
      assert.isTrue((yield* Deferred.await(second.closed)).code > 0)
      assert.strictEqual(server.upgrades(), 2)
    }))

  it.scopedLive("a close before session.created fails the attempt with the close code and reason", () =>
    Effect.gen(function*() {
      const server = yield* bareServer({ greet: false })
      const connecting = yield* connectFailing(server.url)
      yield* Effect.flatMap(server.nextConnection, (connection) => connection.close(1011, "overloaded"))
      yield* Effect.flatMap(server.nextConnection, (connection) => connection.close(1008, "model not allowed"))
      const error = yield* Fiber.join(connecting)
      assert.deepStrictEqual(summary(error), {
        tag: "InvalidRequest",
        retryable: false,
        message: "the Realtime socket closed (code 1008: model not allowed): the server refuses what was sent; not retried"
      })
      assert.strictEqual(server.upgrades(), 2)
    }))

  it.scoped("silence after the upgrade: the attempt times out after websocket_connect, the next one connects", () =>
    Effect.gen(function*() {
      const server = yield* bareServer({ greet: false })
      const connecting = yield* Effect.fork(Realtime.connect().pipe(Effect.provide(client(server.url))))
      const first = yield* server.nextConnection
      yield* waitForTimer(15_000)
      yield* TestClock.adjust(Duration.seconds(15))
      yield* waitForTimer(15_010)
      yield* TestClock.adjust(Duration.millis(10))
      const second = yield* server.nextConnection
      yield* second.send(serverEvents.sessionCreated())
      yield* Fiber.join(connecting)
      yield* Deferred.await(first.closed)
      assert.deepStrictEqual(bare(yield* second.next), sessionUpdate)
      assert.deepStrictEqual(first.received, [])
      assert.strictEqual(server.upgrades(), 2)
    }))

  it.scoped("connect: each attempt is bounded by websocket_connect, three attempts, then the cause", () =>
    Effect.gen(function*() {
      const server = yield* bareServer({ onUpgrade: () => "hang" })
      const layer = client(server.url, { timeouts: { openai_api: 600 }, policies: { network: { initialDelay: "1 second" } } })
      const connecting = yield* Effect.fork(Realtime.connect().pipe(Effect.provide(layer)))
      yield* waitFor("the first upgrade", () => server.upgrades() === 1)
      yield* waitForTimer(15_000)
      yield* TestClock.adjust(Duration.seconds(15))
      yield* waitForTimer(16_000)
      yield* TestClock.adjust(Duration.seconds(1))
      yield* waitFor("the second upgrade", () => server.upgrades() === 2)
      yield* waitForTimer(31_000)
      yield* TestClock.adjust(Duration.seconds(15))
      yield* waitForTimer(33_000)
      yield* TestClock.adjust(Duration.seconds(2))
      yield* waitFor("the third upgrade", () => server.upgrades() === 3)
      yield* waitForTimer(48_000)
      yield* TestClock.adjust(Duration.seconds(15))
      const error = yield* Effect.flip(Fiber.join(connecting))
      assert.strictEqual(error._tag, "OperationTimeout")
      assert.strictEqual(error.message, "websocket_connect timed out after 15s")
      assert.strictEqual(server.upgrades(), 3)
    }))

  it.scoped("connect: all attempts together are bounded by openai_api", () =>
    Effect.gen(function*() {
      const server = yield* bareServer({ onUpgrade: () => "hang" })
      const layer = client(server.url, { policies: { network: { initialDelay: "1 second" } } })
      const connecting = yield* Effect.fork(Realtime.connect().pipe(Effect.provide(layer)))
      yield* waitForTimer(15_000)
      yield* TestClock.adjust(Duration.seconds(15))
      yield* waitForTimer(16_000)
      yield* TestClock.adjust(Duration.seconds(1))
      yield* waitFor("the second upgrade", () => server.upgrades() === 2)
      yield* TestClock.adjust(Duration.seconds(14))
      const error = yield* Effect.flip(Fiber.join(connecting))
      assert.strictEqual(error._tag, "OperationTimeout")
      assert.strictEqual(error.message, "websocket_connect did not finish within its deadline of 30s")
      assert.strictEqual(server.upgrades(), 2)
    }))

  it.scopedLive("a dropped socket: reconnect, session.update again, replay the conversation, ask again", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const { handler, runs } = yield* countingHandler
      const events: Array<Realtime.SessionEvent> = []
      const session = yield* Realtime.connect({
        tools: [listAgents],
        onFunctionCall: handler,
        onEvent: (event) => Effect.sync(() => void events.push(event))
      }).pipe(Effect.provide(client(server.url)))
      const first = yield* server.nextConnection
      // Turn 1: a function call, then text.
      const turn1 = yield* Effect.fork(session.send("list the agents"))
      yield* untilResponseCreate(first)
      yield* first.send(serverEvents.callResponse("resp_1", [{ callId: "call_A", name: "list_agents", arguments: "{}" }]))
      yield* untilResponseCreate(first)
      yield* first.send(serverEvents.textResponse("resp_2", "there are none"))
      yield* Fiber.join(turn1)
      // Turn 2: the socket drops while the response is pending.
      const turn2 = yield* Effect.fork(session.send("and now?"))
      yield* untilResponseCreate(first)
      yield* first.drop
      const second = yield* server.nextConnection
      const replayed = yield* untilResponseCreate(second)
      assert.deepStrictEqual(replayed.map(bare), [
        { ...sessionUpdate, session: { ...sessionUpdate.session, tools: [listAgents], tool_choice: "auto" } },
        user("list the agents"),
        call("call_A", "list_agents", "{}"),
        output("call_A", "ran list_agents #1"),
        assistant("there are none"),
        user("and now?"),
        { type: "response.create" }
      ])
      yield* second.send(serverEvents.textResponse("resp_3", "still none"))
      const result = yield* Fiber.join(turn2)
      assert.strictEqual(result.text, "still none")
      assert.deepStrictEqual(Array.from((yield* Ref.get(runs)).entries()), [["call_A", 1]])
      assert.deepStrictEqual(
        events.flatMap((event) => event._tag === "Reconnected" ? [[event.reason, event.attempt, event.connection]] : []),
        [["dropped", 1, 2]]
      )
      assert.deepStrictEqual((yield* session.stats).reconnects, [{ reason: "dropped", attempt: 1 }])
    }))

  it.scopedLive("a call still running when the socket drops: its call and output follow the replay, run once", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const release = yield* Deferred.make<void>()
      let runs = 0
      const session = yield* Realtime.connect({
        onFunctionCall: () => Effect.zipRight(Effect.sync(() => runs++), Effect.as(Deferred.await(release), "built"))
      }).pipe(Effect.provide(client(server.url)))
      const first = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("build it"))
      yield* untilResponseCreate(first)
      yield* first.send(serverEvents.callResponse("resp_1", [{ callId: "call_B", name: "build", arguments: "{}" }]))
      yield* waitFor("the call to start", () => runs === 1)
      yield* first.drop
      const second = yield* server.nextConnection
      // The replay holds what is complete; nothing is asked while the call runs.
      assert.deepStrictEqual((yield* second.next).type, "session.update")
      assert.deepStrictEqual(bare(yield* second.next), user("build it"))
      yield* Deferred.succeed(release, undefined)
      assert.deepStrictEqual((yield* untilResponseCreate(second)).map(bare), [
        call("call_B", "build", "{}"),
        output("call_B", "built"),
        { type: "response.create" }
      ])
      yield* second.send(serverEvents.textResponse("resp_2", "built once"))
      assert.strictEqual((yield* Fiber.join(turn)).text, "built once")
      assert.strictEqual(runs, 1)
    }))

  it.scopedLive("session_expired: reconnect with the conversation, the turn completes", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const session = yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
      const first = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("long story"))
      yield* untilResponseCreate(first)
      yield* first.send(serverEvents.error("session_expired", "Your session hit the maximum duration of 60 minutes."))
      yield* first.close(1001, "Your session hit the maximum duration of 60 minutes.")
      const second = yield* server.nextConnection
      assert.deepStrictEqual((yield* untilResponseCreate(second)).map(bare), [sessionUpdate, user("long story"), { type: "response.create" }])
      yield* second.send(serverEvents.textResponse("resp_2", "the end"))
      assert.strictEqual((yield* Fiber.join(turn)).text, "the end")
      assert.deepStrictEqual((yield* session.stats).reconnects, [{ reason: "session_expired", attempt: 1 }])
    }))

  it.scoped("a pending response and no event for websocket_message: the socket is dead, replaced", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const session = yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
      const first = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("are you there?"))
      yield* untilResponseCreate(first)
      // Traffic resets the clock: an event at 20 s, then silence.
      yield* TestClock.adjust(Duration.seconds(20))
      yield* first.send({ type: "response.created", event_id: "e1", response: { id: "resp_1", status: "in_progress" } })
      yield* waitForTimer(50_000)
      yield* TestClock.adjust(Duration.seconds(29))
      assert.strictEqual(server.connections.length, 1)
      yield* TestClock.adjust(Duration.seconds(1))
      yield* waitForTimer(50_010)
      yield* TestClock.adjust(Duration.millis(10))
      const second = yield* server.nextConnection
      yield* untilResponseCreate(second)
      yield* second.send(serverEvents.textResponse("resp_2", "yes"))
      assert.strictEqual((yield* Fiber.join(turn)).text, "yes")
      assert.deepStrictEqual((yield* session.stats).reconnects, [{ reason: "stalled", attempt: 1 }])
    }))

  it.scoped("no silence is counted while the client's own function calls run", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const session = yield* Realtime.connect({
        onFunctionCall: () => Effect.as(Effect.sleep(Duration.minutes(5)), "slow answer")
      }).pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("do the slow thing"))
      yield* untilResponseCreate(connection)
      yield* connection.send(serverEvents.callResponse("resp_1", [{ callId: "call_S", name: "slow", arguments: "{}" }]))
      yield* waitForTimer(300_000)
      yield* TestClock.adjust(Duration.minutes(5))
      const round = yield* untilResponseCreate(connection)
      assert.deepStrictEqual(round.map(bare), [output("call_S", "slow answer"), { type: "response.create" }])
      yield* connection.send(serverEvents.textResponse("resp_2", "done slowly"))
      assert.strictEqual((yield* Fiber.join(turn)).text, "done slowly")
      assert.strictEqual((yield* session.stats).connections, 1)
    }))

  it.scopedLive("an error event about nothing of ours while idle is reported; the next turn goes on", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const reported: Array<string> = []
      const session = yield* Realtime.connect({
        onEvent: (event) => Effect.sync(() => event._tag === "ServerError" && void reported.push(`${event.code}: ${event.message}`))
      }).pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      yield* connection.send(serverEvents.error("server_error", "The server had an error while processing your request.", null, "server_error"))
      yield* waitFor("the error to be reported", () => reported.length === 1)
      const turn = yield* Effect.fork(session.send("hi"))
      yield* untilResponseCreate(connection)
      yield* connection.send(serverEvents.textResponse("resp_1", "hello"))
      assert.strictEqual((yield* Fiber.join(turn)).text, "hello")
      assert.deepStrictEqual(reported, ["server_error: The server had an error while processing your request."])
      assert.strictEqual((yield* session.stats).connections, 1)
    }))

  // The API sends errors tied to no client event (event_id null), e.g. a server_error in the
  // middle of a response; no response.done need follow. On the TestClock, so the silence bound
  // cannot end the wait: only the error can.
  it.scoped("an error without event_id while a response is pending ends the turn failed at once, with the server's words", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const reported: Array<string> = []
      const session = yield* Realtime.connect({
        onEvent: (event) => Effect.sync(() => event._tag === "ServerError" && void reported.push(`${event.code}: ${event.message}`))
      }).pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("hi"))
      yield* untilResponseCreate(connection)
      yield* connection.send({ type: "response.created", event_id: "e1", response: { id: "resp_1", status: "in_progress", output: [] } })
      yield* connection.send(serverEvents.error("server_error", "The server had an error while processing your request.", null, "server_error"))
      yield* waitFor("the turn to end", () => turn.unsafePoll() !== null)
      const ended = yield* Fiber.join(turn)
      assert.deepStrictEqual({ status: ended.status, error: ended.error }, {
        status: "failed",
        error: "server_error (server_error): The server had an error while processing your request."
      })
      assert.deepStrictEqual(reported, ["server_error: The server had an error while processing your request."])
      // The session goes on; a response.done for the failed response, coming late, is not the next turn's answer.
      const next = yield* Effect.fork(session.send("again"))
      yield* untilResponseCreate(connection)
      yield* connection.send(serverEvents.textResponse("resp_1", "late"))
      yield* connection.send(serverEvents.textResponse("resp_2", "ok"))
      assert.strictEqual((yield* Fiber.join(next)).text, "ok")
      assert.strictEqual((yield* session.stats).connections, 1)
    }))

  it.scoped("an invalid_request_error without event_id while a response is pending ends the turn failed at once", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const session = yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("hi"))
      yield* untilResponseCreate(connection)
      yield* connection.send(serverEvents.error("invalid_value", "Invalid value for 'session.tools'."))
      yield* waitFor("the turn to end", () => turn.unsafePoll() !== null)
      const ended = yield* Fiber.join(turn)
      assert.deepStrictEqual({ status: ended.status, error: ended.error }, {
        status: "failed",
        error: "invalid_request_error (invalid_value): Invalid value for 'session.tools'."
      })
    }))

  it.scopedLive("an error about our response.create fails that response: the turn ends failed, the session lives", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const session = yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("hi"))
      const events = yield* untilResponseCreate(connection)
      yield* connection.send(serverEvents.error(null, "Invalid value for 'response'.", String(events.at(-1)?.["event_id"])))
      const result = yield* Fiber.join(turn)
      assert.strictEqual(result.status, "failed")
      assert.strictEqual(result.error, "invalid_request_error: Invalid value for 'response'.")
      const next = yield* Effect.fork(session.send("again"))
      yield* untilResponseCreate(connection)
      yield* connection.send(serverEvents.textResponse("resp_2", "ok"))
      assert.strictEqual((yield* Fiber.join(next)).text, "ok")
    }))

  it.scopedLive("one response at a time: turns wait for each other; a refused response.create is sent once after the active one", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const session = yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      const turns = yield* Effect.fork(Effect.all([session.send("one"), session.send("two")], { concurrency: "unbounded" }))
      const firstRound = yield* untilResponseCreate(connection)
      const create = firstRound.at(-1)!
      // The server has a response of its own going: ours is refused.
      yield* connection.send(serverEvents.error(
        "conversation_already_has_active_response",
        "Conversation already has an active response in progress: resp_other. Wait until the response is finished before creating a new one.",
        String(create["event_id"])
      ))
      // A client that asked again at once would do it within this window.
      yield* realPause(100)
      assert.strictEqual(connection.received.filter((event) => event.type === "response.create").length, 1)
      yield* connection.send(serverEvents.textResponse("resp_other", "(from elsewhere)"))
      yield* connection.nextOf("response.create")
      yield* connection.send(serverEvents.textResponse("resp_1", "first"))
      const secondRound = yield* untilResponseCreate(connection)
      assert.deepStrictEqual(secondRound.map(bare), [user("two"), { type: "response.create" }])
      yield* connection.send(serverEvents.textResponse("resp_2", "second"))
      const [one, two] = yield* Fiber.join(turns)
      assert.strictEqual(one.text, "(from elsewhere)\nfirst")
      assert.strictEqual(two.text, "second")
      const stats = yield* session.stats
      assert.strictEqual(stats.responsesRequested, 3)
      assert.strictEqual(stats.maxResponsesInFlight, 1)
    }))

  it.scopedLive("no double run: a call_id sent again (same or new connection) is not run again", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const { handler, runs } = yield* countingHandler
      const session = yield* Realtime.connect({ onFunctionCall: handler }).pipe(Effect.provide(client(server.url)))
      const first = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("create it"))
      yield* untilResponseCreate(first)
      const created = serverEvents.callResponse("resp_1", [{ callId: "call_X", name: "create_agent", arguments: "{}" }])
      yield* first.send(created)
      yield* untilResponseCreate(first)
      // The answer is lost with the socket; the new session's model asks for the same call again.
      yield* first.drop
      const second = yield* server.nextConnection
      const replayed = yield* untilResponseCreate(second)
      assert.deepStrictEqual(replayed.slice(1).map(bare), [
        user("create it"),
        call("call_X", "create_agent", "{}"),
        output("call_X", "ran create_agent #1"),
        { type: "response.create" }
      ])
      // New responses (a response id names one response) that carry the same call again.
      const again = (responseId: string) => serverEvents.callResponse(responseId, [{ callId: "call_X", name: "create_agent", arguments: "{}" }])
      yield* second.send(again("resp_2"))
      yield* untilResponseCreate(second)
      yield* second.send(again("resp_3"))
      yield* untilResponseCreate(second)
      yield* second.send(serverEvents.textResponse("resp_4", "created once"))
      const result = yield* Fiber.join(turn)
      assert.strictEqual(result.text, "created once")
      assert.deepStrictEqual(result.skipped, ["call_X", "call_X"])
      assert.deepStrictEqual(Array.from((yield* Ref.get(runs)).entries()), [["call_X", 1]])
      const stats = yield* session.stats
      assert.strictEqual(stats.callsRun, 1)
      assert.strictEqual(stats.callsSkipped, 2)
    }))

  it.scopedLive("connections that keep dropping before any response: the session fails after the policy's attempts", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const session = yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
      const turn = yield* Effect.fork(session.send("hello?"))
      for (let i = 0; i < 3; i++) {
        const connection = yield* server.nextConnection
        yield* untilResponseCreate(connection)
        yield* connection.drop
      }
      const error = yield* Effect.flip(Fiber.join(turn))
      assert.strictEqual(error._tag, "NetworkError")
      assert.match(error.message, /^the Realtime socket closed \(code 1006/)
      assert.strictEqual(server.connections.length, 3)
      const next = yield* Effect.flip(session.send("anyone?"))
      assert.strictEqual(next._tag, "NetworkError")
    }))

  it.scoped("connections lost while idle after living websocket_message do not use up the attempts: the next turn still works", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const events: Array<string> = []
      const session = yield* Realtime.connect({
        onEvent: (event) => Effect.sync(() => event._tag === "Reconnected" && void events.push(`${event.reason} #${event.attempt}`))
      }).pipe(Effect.provide(client(server.url)))
      for (let i = 0; i < 4; i++) {
        const idle = yield* server.nextConnection
        yield* idle.next
        // Each lived websocket_message (30 s) before it was lost: a connection that proved the link.
        yield* TestClock.adjust(Duration.seconds(30))
        yield* idle.drop
        const backoffEnds = (yield* Clock.currentTimeMillis) + 10
        yield* waitForTimer(backoffEnds)
        yield* TestClock.adjust("10 millis")
      }
      const fifth = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("still there?"))
      yield* untilResponseCreate(fifth)
      yield* fifth.send(serverEvents.textResponse("resp_1", "yes"))
      assert.strictEqual((yield* Fiber.join(turn)).text, "yes")
      assert.deepStrictEqual(events, ["dropped #1", "dropped #1", "dropped #1", "dropped #1"])
    }))

  /** A turn during which the server reports `rateLimits`; then the metrics as Prometheus text. */
  const metricsAfterRateLimits = (eventId: string, rateLimits: ReadonlyArray<Readonly<Record<string, unknown>>>) =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const session = yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("hi"))
      yield* untilResponseCreate(connection)
      yield* connection.send({ type: "rate_limits.updated", event_id: eventId, rate_limits: rateLimits })
      yield* connection.send(serverEvents.textResponse("resp_1", "hello"))
      yield* Fiber.join(turn)
      return yield* Metrics.prometheus
    })

  it.scopedLive("rate_limits.updated feeds the rate limit gauges", () =>
    Effect.gen(function*() {
      const text = yield* metricsAfterRateLimits("event_rl", [
        { name: "requests", limit: 1000, remaining: 997, reset_seconds: 1.5 },
        { name: "tokens", limit: 50000, remaining: 41234, reset_seconds: 12 }
      ])
      const lines = text.split("\n").filter((line) => line.startsWith("big3_rate_limit") && line.includes("openai_realtime"))
      assert.deepStrictEqual(lines, [
        `big3_rate_limit_limit{service="openai_realtime",name="requests"} 1000`,
        `big3_rate_limit_limit{service="openai_realtime",name="tokens"} 50000`,
        `big3_rate_limit_remaining{service="openai_realtime",name="requests"} 997`,
        `big3_rate_limit_remaining{service="openai_realtime",name="tokens"} 41234`,
        `big3_rate_limit_reset_seconds{service="openai_realtime",name="requests"} 1.5`,
        `big3_rate_limit_reset_seconds{service="openai_realtime",name="tokens"} 12`
      ])
    }))

  it.scopedLive("rate_limits.updated with names of the server's invention adds no series beyond requests, tokens and other", () =>
    Effect.gen(function*() {
      const text = yield* metricsAfterRateLimits("event_rl_invented", [
        ...Array.from({ length: 500 }, (_, i) => ({ name: `invented_${i}`, limit: i })),
        { name: 'quote" and\nnewline', limit: 7 },
        { limit: 9 }
      ])
      const names = new Set(text.split("\n").filter((line) => line.startsWith("big3_rate_limit_limit{service=\"openai_realtime\""))
        .map((line) => /name="([^"]*)"/.exec(line)?.[1]))
      assert.deepStrictEqual([...names].filter((name) => name !== "requests" && name !== "tokens"), ["other"])
      assert.include(text.split("\n"), `big3_rate_limit_limit{service="openai_realtime",name="other"} 9`)
    }))

  it.scoped("closing is bounded by websocket_close: a peer that never answers the close frame is cut", () =>
    Effect.gen(function*() {
      const server = yield* bareServer({ onUpgrade: () => "deaf" })
      const scope = yield* Scope.make()
      yield* Realtime.connect().pipe(Effect.provide(client(server.url)), Scope.extend(scope))
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* waitForTimer(5_000)
      assert.isNull(closing.unsafePoll())
      yield* TestClock.adjust(Duration.seconds(5))
      yield* Fiber.join(closing)
      yield* waitFor("the socket to be cut", () => server.deafClosed() === 1)
    }))
})
