/**
 * The Realtime client against the sandbox's `/v1/realtime` endpoint over loopback: scripted
 * function calls, and each fault plan (refused and hung upgrades, a dropped socket, a stall,
 * `session_expired`, `error` events). Timeouts on the `TestClock`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Errors from "../src/Errors.js"
import * as Realtime from "../src/Realtime.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Sandbox from "../src/Sandbox.js"
import { at, each } from "./support/json.js"
import { waitForTimer, waitUntil } from "./support/wsServer.js"

const client = (sandbox: Sandbox.Service, apiKey = "sandbox-key") =>
  Realtime.layerWith({ url: sandbox.realtime.url, apiKey: Redacted.make(apiKey) }).pipe(
    Layer.provideMerge(CircuitBreaker.layer),
    Layer.provideMerge(ReliabilityConfig.layerWith({ policies: { network: { jitter: "none", initialDelay: "10 millis" } } }))
  )

const listAgents: Realtime.FunctionTool = {
  type: "function",
  name: "list_agents",
  description: "List the agents",
  parameters: { type: "object", properties: {} }
}

const script: ReadonlyArray<Sandbox.RealtimeRule> = [
  { when: "agents", calls: [{ name: "list_agents" }], text: "The agents are: {output}" }
]

/** Client event types a connection received. */
const typesOf = (connection: Sandbox.RealtimeConnection | undefined) => each(connection?.received, "type")

/** Runs one turn with a handler that answers `list_agents` with "alpha, beta" and counts runs. */
const agentsTurn = (sandbox: Sandbox.Service) =>
  Effect.gen(function*() {
    const runs: Array<string> = []
    const session = yield* Realtime.connect({
      tools: [listAgents],
      onFunctionCall: (call) => Effect.sync(() => (runs.push(call.callId), "alpha, beta"))
    }).pipe(Effect.provide(client(sandbox)))
    return { session, runs }
  })

describe("Realtime against the sandbox", () => {
  it.scopedLive("a scripted turn: a function call, its output, then the text answer", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ realtimeScript: script })
      const { runs, session } = yield* agentsTurn(sandbox)
      const turn = yield* session.send("which agents are there?")
      assert.strictEqual(turn.text, "The agents are: alpha, beta")
      assert.strictEqual(turn.responses, 2)
      assert.deepStrictEqual(turn.calls.map((call) => [call.name, call.arguments, call.output]), [["list_agents", "{}", "alpha, beta"]])
      assert.strictEqual(runs.length, 1)
      const [connection] = yield* sandbox.realtime.connections
      assert.strictEqual(connection?.headers["authorization"], "<redacted>")
      assert.deepStrictEqual(connection?.query, { model: "gpt-realtime" })
      assert.deepStrictEqual(typesOf(connection), [
        "session.update",
        "conversation.item.create",
        "response.create",
        "conversation.item.create",
        "response.create"
      ])
      assert.deepStrictEqual(at(connection?.received[3], "item"), { type: "function_call_output", call_id: runs[0], output: "alpha, beta" })
    }))

  it.scopedLive("the default model echoes the message", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const session = yield* Realtime.connect().pipe(Effect.provide(client(sandbox)))
      assert.strictEqual((yield* session.send("ping")).text, "sandbox answer to: ping")
    }))

  // As the real API: the upgrade succeeds, then an invalid_api_key error event and close 3000.
  it.scopedLive("a wrong key: connect fails as Unauthorized after one connection, no session opens", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const error = yield* Effect.flip(Realtime.connect().pipe(Effect.provide(client(sandbox, "wrong-key"))))
      assert.strictEqual(error._tag, "Unauthorized")
      assert.strictEqual(
        error.message,
        "openai_realtime refused the API key: invalid_request_error (invalid_api_key): Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
      )
      assert.deepStrictEqual((yield* sandbox.realtime.connections).map((connection) => connection.outcome), ["unauthorized"])
    }))

  it.scopedLive("an upgrade refused with 503, then 429, then accepted: connected on the third attempt", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ realtimePlan: [{ status: 503 }, { status: 429 }] })
      const session = yield* Realtime.connect().pipe(Effect.provide(client(sandbox)))
      assert.strictEqual((yield* session.send("hi")).text, "sandbox answer to: hi")
      assert.deepStrictEqual((yield* sandbox.realtime.connections).map((connection) => connection.outcome), [503, 429, "open"])
    }))

  it.scopedLive("an upgrade refused with 429 insufficient_quota fails connect as QuotaExhausted after one attempt", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ realtimePlan: [{ status: 429, code: "insufficient_quota" }] })
      const error = yield* Effect.flip(Realtime.connect().pipe(Effect.provide(client(sandbox))))
      assert.deepStrictEqual({ tag: error._tag, retryable: Errors.isRetryable(error) }, { tag: "QuotaExhausted", retryable: false })
      assert.match(error.message, /^openai_realtime quota exhausted \(insufficient_quota\): .*checks the plan and billing/)
      assert.deepStrictEqual((yield* sandbox.realtime.connections).map((connection) => connection.outcome), [429])
    }))

  it.scopedLive("an insufficient_quota error event in the middle of a response loses the session as QuotaExhausted; no reconnect", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ realtimePlan: [{ errorAfter: 6, code: "insufficient_quota" }] })
      const session = yield* Realtime.connect().pipe(Effect.provide(client(sandbox)))
      const error = yield* Effect.flip(session.send("still there?"))
      assert.deepStrictEqual({ tag: error._tag, retryable: error.retryable }, { tag: "QuotaExhausted", retryable: false })
      assert.match(error.message, /reported insufficient_quota \(insufficient_quota\): You exceeded your current quota/)
      assert.strictEqual((yield* sandbox.realtime.connections).length, 1)
      assert.deepStrictEqual((yield* session.stats).reconnects, [])
    }))

  it.scoped("a hung upgrade times out after websocket_connect; the next attempt connects", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ realtimePlan: [{ hang: true }] })
      const connecting = yield* Effect.fork(Realtime.connect().pipe(Effect.provide(client(sandbox))))
      yield* waitForTimer(15_000)
      yield* TestClock.adjust(Duration.seconds(15))
      yield* waitForTimer(15_010)
      yield* TestClock.adjust(Duration.millis(10))
      yield* Fiber.join(connecting)
      assert.deepStrictEqual((yield* sandbox.realtime.connections).map((connection) => connection.outcome), ["hang", "open"])
    }))

  it.scopedLive("dropped after 9 events (in the middle of the call's response): reconnect, replay, the call runs once", () =>
    Effect.gen(function*() {
      // 1 session.created, 2 session.updated, 3-4 the user item, 5 response.created, 6 rate limits,
      // 7 output_item.added, 8 conversation.item.added, 9 arguments delta: then the drop.
      const sandbox = yield* Sandbox.make({ realtimeScript: script, realtimePlan: [{ dropAfter: 9 }] })
      const { runs, session } = yield* agentsTurn(sandbox)
      const turn = yield* session.send("list the agents")
      assert.strictEqual(turn.text, "The agents are: alpha, beta")
      assert.strictEqual(runs.length, 1)
      const [first, second] = yield* sandbox.realtime.connections
      assert.strictEqual(first?.outcome, "dropped")
      assert.strictEqual(first?.sent, 9)
      assert.deepStrictEqual(typesOf(second), [
        "session.update",
        "conversation.item.create",
        "response.create",
        "conversation.item.create",
        "response.create"
      ])
      assert.deepStrictEqual((yield* session.stats).reconnects, [{ reason: "dropped", attempt: 1 }])
    }))

  it.scopedLive("dropped after the call ran: the replay carries the call and its output, so it is not asked again", () =>
    Effect.gen(function*() {
      // The first response (the call) is complete at event 16; its output and the next
      // response.create reach the server, whose answer is cut at event 21.
      const sandbox = yield* Sandbox.make({ realtimeScript: script, realtimePlan: [{ dropAfter: 21 }] })
      const { runs, session } = yield* agentsTurn(sandbox)
      const turn = yield* session.send("list the agents")
      assert.strictEqual(turn.text, "The agents are: alpha, beta")
      assert.strictEqual(runs.length, 1)
      const [first, second] = yield* sandbox.realtime.connections
      assert.strictEqual(first?.outcome, "dropped")
      assert.deepStrictEqual(each(second?.received, "item", "type"), [
        undefined,
        "message",
        "function_call",
        "function_call_output",
        undefined
      ])
      assert.deepStrictEqual(typesOf(second), [
        "session.update",
        "conversation.item.create",
        "conversation.item.create",
        "conversation.item.create",
        "response.create"
      ])
    }))

  it.scoped("stalled after response.created: dead after websocket_message, replaced", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ realtimePlan: [{ stallAfter: 5 }] })
      const session = yield* Realtime.connect().pipe(Effect.provide(client(sandbox)))
      const turn = yield* Effect.fork(session.send("hello?"))
      yield* waitUntil("the stall", Effect.map(sandbox.realtime.connections, (all) => all[0]?.outcome === "stalled"))
      // The watchdog re-arms with each event the client reads, so its deadline is not known
      // here: step the clock by the silence allowed until the client has noticed, which shows as
      // the network backoff's timer (10 ms). Then step just that far: no virtual time passes
      // while the new connection's real handshake is in flight, so its own timeouts cannot fire.
      let noticed = false
      for (let step = 0; step < 5 && !noticed; step++) {
        yield* TestClock.adjust(Duration.seconds(30))
        const backoffEnds = (yield* Clock.currentTimeMillis) + 10
        noticed = Exit.isSuccess(yield* Effect.exit(waitForTimer(backoffEnds, 1_000)))
      }
      assert.isTrue(noticed, "the client noticed the stall and waits its backoff")
      yield* TestClock.adjust("10 millis")
      yield* waitUntil("the reconnection", Effect.map(sandbox.realtime.connections, (all) => all.length === 2))
      assert.strictEqual((yield* Fiber.join(turn)).text, "sandbox answer to: hello?")
      assert.deepStrictEqual((yield* sandbox.realtime.connections).map((connection) => connection.outcome), ["stalled", "open"])
      assert.deepStrictEqual((yield* session.stats).reconnects, [{ reason: "stalled", attempt: 1 }])
    }))

  it.scopedLive("session_expired in the middle of a response: reconnect, the turn completes", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ realtimePlan: [{ expireAfter: 7 }] })
      const events: Array<string> = []
      const session = yield* Realtime.connect({
        onEvent: (event) => Effect.sync(() => event._tag === "Reconnected" && void events.push(`${event.reason} #${event.attempt}: ${event.cause}`))
      }).pipe(Effect.provide(client(sandbox)))
      assert.strictEqual((yield* session.send("tell me")).text, "sandbox answer to: tell me")
      assert.deepStrictEqual(events, [
        "session_expired #1: invalid_request_error (session_expired): Your session hit the maximum duration of 60 minutes."
      ])
      assert.deepStrictEqual((yield* sandbox.realtime.connections).map((connection) => connection.outcome), ["expired", "open"])
    }))

  it.scopedLive("an error event in the middle of a response ends the turn failed at once; same connection, the next turn completes", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ realtimePlan: [{ errorAfter: 6, code: "server_error" }] })
      const errors: Array<string> = []
      const session = yield* Realtime.connect({
        onEvent: (event) => Effect.sync(() => event._tag === "ServerError" && void errors.push(`${event.type}/${event.code}`))
      }).pipe(Effect.provide(client(sandbox)))
      const cut = yield* session.send("still there?")
      assert.deepStrictEqual({ status: cut.status, error: cut.error?.startsWith("server_error (server_error): ") }, { status: "failed", error: true })
      assert.strictEqual((yield* session.send("and now?")).text, "sandbox answer to: and now?")
      assert.deepStrictEqual(errors, ["server_error/server_error"])
      assert.strictEqual((yield* sandbox.realtime.connections).length, 1)
    }))
})
