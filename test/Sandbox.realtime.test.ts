/**
 * The sandbox's Realtime endpoint itself, driven by a plain `ws` client: the GA event sequence
 * of a response, the checks a real server makes, and how it refuses bad upgrades.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Queue from "effect/Queue"
import { WebSocket } from "ws"
import * as Sandbox from "../src/Sandbox.js"
import { at, each } from "./support/json.js"

interface Peer {
  readonly next: Effect.Effect<unknown>
  /** Server events up to and including the next of `type`. */
  readonly until: (type: string) => Effect.Effect<ReadonlyArray<unknown>>
  readonly send: (event: Readonly<Record<string, unknown>>) => Effect.Effect<void>
  readonly sendText: (text: string) => Effect.Effect<void>
}

/** A raw client: opens the socket and collects server events (closed with the scope). */
const connect = (
  url: string,
  headers: Record<string, string> = { authorization: "Bearer sandbox-key" },
  protocols: ReadonlyArray<string> = []
) =>
  Effect.acquireRelease(
    Effect.async<{ readonly socket: WebSocket; readonly events: Queue.Queue<unknown> }, Error>((resume) => {
      const events = Effect.runSync(Queue.unbounded<unknown>())
      const socket = new WebSocket(url, [...protocols], { headers })
      socket.on("message", (data) => Queue.unsafeOffer(events, JSON.parse(String(data))))
      socket.once("open", () => resume(Effect.succeed({ socket, events })))
      socket.once("error", (error) => resume(Effect.fail(error)))
    }),
    ({ socket }) => Effect.sync(() => socket.terminate())
  ).pipe(Effect.map(({ events, socket }): Peer & { readonly protocol: string } => {
    const until = (type: string): Effect.Effect<ReadonlyArray<unknown>> =>
      Effect.gen(function*() {
        const seen: Array<unknown> = []
        while (true) {
          const event = yield* Queue.take(events)
          seen.push(event)
          if (at(event, "type") === type) return seen
        }
      })
    return {
      protocol: socket.protocol,
      next: Queue.take(events),
      until,
      send: (event) => Effect.sync(() => socket.send(JSON.stringify(event))),
      sendText: (text) => Effect.sync(() => socket.send(text))
    }
  }))

/** The HTTP answer to an upgrade the server refuses. */
const refusal = (url: string, headers: Record<string, string>) =>
  Effect.async<{ readonly status: number; readonly body: string }>((resume) => {
    const socket = new WebSocket(url, { headers })
    socket.on("unexpected-response", (_request, response) => {
      let body = ""
      response.on("data", (chunk: Buffer) => (body += chunk.toString()))
      response.on("end", () => {
        resume(Effect.succeed({ status: response.statusCode ?? 0, body }))
        socket.terminate()
      })
    })
    socket.on("error", () => undefined)
  })

const user = (text: string) => ({
  type: "conversation.item.create",
  item: { type: "message", role: "user", content: [{ type: "input_text", text }] }
})

describe("Sandbox Realtime endpoint", () => {
  it.scopedLive("a session: session.created, session.updated, then a text response as the GA event sequence", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const peer = yield* connect(`${sandbox.realtime.url}?model=gpt-realtime`)
      const created = yield* peer.next
      assert.strictEqual(at(created, "type"), "session.created")
      assert.strictEqual(at(created, "session", "type"), "realtime")
      assert.strictEqual(at(created, "session", "model"), "gpt-realtime")
      yield* peer.send({ type: "session.update", session: { type: "realtime", output_modalities: ["text"] } })
      assert.deepStrictEqual(at(yield* peer.next, "session", "output_modalities"), ["text"])
      yield* peer.send(user("three little words"))
      assert.deepStrictEqual(each(yield* peer.until("conversation.item.done"), "type"), ["conversation.item.added", "conversation.item.done"])
      yield* peer.send({ type: "response.create" })
      const events = yield* peer.until("response.done")
      assert.deepStrictEqual(each(events, "type"), [
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done"
      ])
      assert.strictEqual(
        each(events.filter((event) => at(event, "type") === "response.output_text.delta"), "delta").join(""),
        "sandbox answer to: three little words"
      )
      const done = events.at(-1)
      assert.strictEqual(at(done, "response", "status"), "completed")
      assert.deepStrictEqual(at(done, "response", "output", 0, "content"), [
        { type: "output_text", text: "sandbox answer to: three little words" }
      ])
    }))

  it.scopedLive("a scripted call: function call events, and an output for an unknown call_id is an error", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ realtimeScript: [{ when: "agent", calls: [{ name: "create_agent", arguments: { name: "builder" } }] }] })
      const peer = yield* connect(`${sandbox.realtime.url}?model=gpt-realtime`)
      yield* peer.next
      yield* peer.send(user("make an agent"))
      yield* peer.until("conversation.item.done")
      yield* peer.send({ type: "response.create" })
      const events = yield* peer.until("response.done")
      assert.deepStrictEqual(each(events, "type"), [
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done"
      ])
      const item = at(events.at(-1), "response", "output", 0)
      assert.strictEqual(at(item, "type"), "function_call")
      assert.strictEqual(at(item, "name"), "create_agent")
      assert.strictEqual(at(item, "arguments"), `{"name":"builder"}`)
      assert.match(String(at(item, "call_id")), /^call_/)
      yield* peer.send({ type: "conversation.item.create", event_id: "mine_1", item: { type: "function_call_output", call_id: "call_nope", output: "x" } })
      const error = yield* peer.next
      assert.deepStrictEqual(at(error, "error"), {
        type: "invalid_request_error",
        code: null,
        message: "Tool call ID 'call_nope' not found in conversation.",
        param: "item.call_id",
        event_id: "mine_1"
      })
    }))

  it.scopedLive("clearPlans puts the Realtime endpoint back to normal answers too", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ realtimePlan: [{ status: 503 }] })
      yield* sandbox.clearPlans
      const peer = yield* connect(`${sandbox.realtime.url}?model=gpt-realtime`)
      assert.strictEqual(at(yield* peer.next, "type"), "session.created")
    }))

  it.scopedLive("a session.update without session.type is refused, as the GA API does", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const peer = yield* connect(`${sandbox.realtime.url}?model=gpt-realtime`)
      yield* peer.next
      yield* peer.send({ type: "session.update", event_id: "e1", session: { modalities: ["text"] } })
      const error = yield* peer.next
      assert.strictEqual(at(error, "type"), "error")
      assert.strictEqual(at(error, "error", "param"), "session.type")
      assert.strictEqual(at(error, "error", "event_id"), "e1")
    }))

  // Answering it back overflowed the stack: the connection's loop died, and the client waited in silence.
  it.scopedLive("an event nesting deeper than 1,000 levels is answered with an error and the session goes on", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const peer = yield* connect(`${sandbox.realtime.url}?model=gpt-realtime`)
      yield* peer.next
      const deep = `${"[".repeat(20_000)}${"]".repeat(20_000)}`
      yield* peer.sendText(`{"type":"session.update","session":{"type":"realtime","tools":[{"type":"function","name":"f","parameters":${deep}}]}}`)
      assert.deepStrictEqual(at(yield* peer.next, "error"), {
        type: "invalid_request_error",
        code: "invalid_json",
        message: "Invalid JSON: the event nests deeper than 1000 levels of objects and arrays",
        param: null,
        event_id: null
      })
      yield* peer.send(user("still there"))
      assert.deepStrictEqual(each(yield* peer.until("conversation.item.done"), "type"), ["conversation.item.added", "conversation.item.done"])
      // The log keeps it as text, so the admin API can answer it.
      const [connection] = yield* sandbox.realtime.connections
      assert.strictEqual(typeof connection?.received[0], "string")
    }))

  it.scopedLive("a failure of the sandbox itself is answered with server_error, logged, and the session goes on", () => {
    const logged: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => void logged.push(`${logLevel.label} ${String(message)}`))
    return Effect.gen(function*() {
      // A BigInt in scripted arguments makes the sandbox's JSON.stringify throw: a bug of ours, not the client's.
      const sandbox = yield* Sandbox.make({ realtimeScript: [{ calls: [{ name: "f", arguments: { n: 1n } }] }] })
      const peer = yield* connect(`${sandbox.realtime.url}?model=gpt-realtime`)
      yield* peer.next
      yield* peer.send({ type: "response.create", event_id: "create_1" })
      const events = yield* peer.until("error")
      // Its event_id names the client event, so a client can end the response it asked for.
      assert.deepStrictEqual(at(events.at(-1), "error"), {
        type: "server_error",
        code: null,
        message: "The server had an error while processing your request. Sorry about that!",
        param: null,
        event_id: "create_1"
      })
      yield* peer.send(user("still there"))
      assert.deepStrictEqual(each(yield* peer.until("conversation.item.done"), "type"), ["conversation.item.added", "conversation.item.done"])
      assert.deepStrictEqual(logged, ["ERROR sandbox: a Realtime client event failed unexpectedly; answered server_error"])
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  })

  it.scopedLive("a browser's key, offered as the subprotocol openai-insecure-api-key.<key>, opens a session; a wrong one is refused in it; neither is recorded", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const url = `${sandbox.realtime.url}?model=gpt-realtime`
      const peer = yield* connect(url, {}, ["realtime", "openai-insecure-api-key.sandbox-key", "openai-beta.realtime-v1"])
      assert.strictEqual(at(yield* peer.next, "type"), "session.created")
      assert.strictEqual(peer.protocol, "realtime")
      const wrong = yield* connect(url, {}, ["realtime", "openai-insecure-api-key.not-the-key"])
      assert.deepStrictEqual(at(yield* wrong.next, "error", "code"), "invalid_api_key")
      const connections = yield* sandbox.realtime.connections
      assert.deepStrictEqual(connections.map((connection) => [connection.outcome, connection.headers["sec-websocket-protocol"]]), [
        ["open", "realtime, openai-insecure-api-key.<redacted>, openai-beta.realtime-v1"],
        ["unauthorized", "realtime, openai-insecure-api-key.<redacted>"]
      ])
    }))

  // A wrong key is accepted, then refused in the session (test/sdk.openai.test.ts).
  it.scopedLive("upgrades without a key or without a model are refused in OpenAI's error format", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const url = `${sandbox.realtime.url}?model=gpt-realtime`
      // The API's current words for a request with no credential (its older "You didn't provide
      // an API key…" is gone from /v1/responses and realtime alike).
      const missing = yield* refusal(url, {})
      assert.strictEqual(missing.status, 401)
      assert.deepStrictEqual(JSON.parse(missing.body), {
        error: { message: "Missing bearer or basic authentication in header", type: "invalid_request_error", param: null, code: null }
      })
      const noModel = yield* refusal(sandbox.realtime.url, { authorization: "Bearer sandbox-key" })
      assert.deepStrictEqual([noModel.status, at(JSON.parse(noModel.body), "error", "param")], [400, "model"])
      assert.deepStrictEqual((yield* sandbox.realtime.connections).map((connection) => connection.outcome), [401, 400])
    }))
})
