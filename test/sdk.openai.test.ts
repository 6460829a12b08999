/**
 * OpenAI's official `openai` SDK, its own WebSocket client (`OpenAIRealtimeWS`, on `ws`), against
 * the sandbox's Realtime endpoint over 127.0.0.1: it connects as it connects to the real API and
 * reads what it gets as it reads real events.
 *
 * The SDK declares Node >= 22; its Realtime WS client runs on our Node 20 as is. It always builds
 * a `wss:` URL from the client's `baseURL` (`…/v1/realtime?model=`); the sandbox speaks plain
 * WebSocket, so the one thing changed is the transport under the handshake: `ws`'s documented
 * `createConnection` option hands it a TCP socket to 127.0.0.1 instead of a TLS one. The URL, the
 * handshake and its headers are the SDK's own.
 *
 * Facts about the real API come from the SDK's source and types (openai/openai-node 7.x:
 * `realtime/ws`, `resources/realtime`), OpenAI's public Realtime reference, and reports of what
 * the API does in public issues; each test says which.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Net from "node:net"
import OpenAI from "openai"
import type { OpenAIRealtimeError } from "openai/realtime/internal-base"
import { OpenAIRealtimeWS } from "openai/realtime/ws"
import type { RealtimeClientEvent, RealtimeServerEvent } from "openai/resources/realtime/realtime"
import * as Sandbox from "../src/Sandbox.js"
import { at } from "./support/json.js"

const model = "gpt-realtime"

/**
 * `ws` calls `createConnection` with its request options (host, port, and the request path in
 * `path`, which `net` would take for a Unix socket): connect to host and port only.
 */
function plainTcp(options: Net.NetConnectOpts, listener?: () => void): Net.Socket
function plainTcp(port: number, host?: string, listener?: () => void): Net.Socket
function plainTcp(path: string, listener?: () => void): Net.Socket
function plainTcp(options: Net.NetConnectOpts | number | string): Net.Socket {
  if (typeof options !== "object" || !("port" in options)) throw new TypeError("ws passes its request options")
  return Net.connect({ host: options.host ?? "127.0.0.1", port: options.port })
}

interface Client {
  readonly rt: OpenAIRealtimeWS
  /** Every server event, as the SDK's `event` listener gets it. */
  readonly events: Queue.Queue<RealtimeServerEvent>
  /** The SDK's `error` listener: API `error` events and transport failures. */
  readonly errors: Array<OpenAIRealtimeError>
  /** The socket's close code and reason. */
  readonly closed: Deferred.Deferred<{ readonly code: number; readonly reason: string }>
  readonly send: (event: RealtimeClientEvent) => void
}

/** The SDK's `send` needs an open socket (its README waits for `open`); also ends if it closed instead. */
const opened = (client: Client) =>
  Effect.raceFirst(
    Effect.async<void>((resume) => {
      if (client.rt.socket.readyState === client.rt.socket.OPEN) return resume(Effect.void)
      client.rt.socket.once("open", () => resume(Effect.void))
    }),
    Effect.asVoid(Deferred.await(client.closed))
  )

/** An `OpenAIRealtimeWS` on an `OpenAI` client whose `baseURL` is the sandbox's `/v1`; terminated with the scope. */
const connect = (sandbox: Sandbox.Service, apiKey = "sandbox-key") =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const events = yield* Queue.unbounded<RealtimeServerEvent>()
      const closed = yield* Deferred.make<{ readonly code: number; readonly reason: string }>()
      const openai = new OpenAI({ apiKey, baseURL: `${sandbox.url}/v1` })
      const rt = new OpenAIRealtimeWS({ model, options: { createConnection: plainTcp } }, openai)
      const errors: Array<OpenAIRealtimeError> = []
      rt.on("event", (event) => events.unsafeOffer(event))
      rt.on("error", (error) => errors.push(error))
      rt.socket.on("close", (code, reason) => Deferred.unsafeDone(closed, Effect.succeed({ code, reason: reason.toString("utf8") })))
      return { rt, events, errors, closed, send: (event: RealtimeClientEvent) => rt.send(event) } satisfies Client
    }),
    ({ rt }) => Effect.sync(() => rt.socket.terminate())
  ).pipe(Effect.tap(opened))

/** Server events up to and including the first of `type`, in order. */
const until = (client: Client, type: RealtimeServerEvent["type"]) =>
  Effect.gen(function*() {
    const seen: Array<RealtimeServerEvent> = []
    while (seen.at(-1)?.type !== type) seen.push(yield* Queue.take(client.events))
    return seen
  })

const userText = (text: string): RealtimeClientEvent => ({
  type: "conversation.item.create",
  item: { type: "message", role: "user", content: [{ type: "input_text", text }] }
})

const listAgents = { type: "function", name: "list_agents", description: "Lists the agents.", parameters: { type: "object", properties: {} } } as const

describe("openai SDK (OpenAIRealtimeWS) against the sandbox", () => {
  // SDK source (realtime/internal-base buildRealtimeURL, realtime/ws): `baseURL` + `/realtime`,
  // `?model=`, `Authorization: Bearer`, the SDK's User-Agent, no `OpenAI-Beta` header (GA).
  it.scopedLive("the SDK's own handshake is accepted and session.created comes first", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const client = yield* connect(sandbox)
      assert.strictEqual(client.rt.url.toString(), `wss://${new URL(sandbox.url).host}/v1/realtime?model=gpt-realtime`)
      const [first] = yield* until(client, "session.created")
      assert.strictEqual(first?.type, "session.created")
      // GA session object: `expires_at` is when the session ends, in Unix seconds (at most 60 min on).
      const session: unknown = first?.type === "session.created" ? first.session : undefined
      const nowSeconds = Math.floor(Date.now() / 1000)
      const expiresAt = Number(at(session, "expires_at"))
      assert.deepStrictEqual([at(session, "object"), at(session, "type"), at(session, "model")], ["realtime.session", "realtime", model])
      assert.isTrue(expiresAt > nowSeconds && expiresAt <= nowSeconds + 3600, `expires_at ${expiresAt}, now ${nowSeconds}`)
      const [connection] = yield* sandbox.realtime.connections
      assert.deepStrictEqual(connection?.query, { model })
      assert.strictEqual(connection?.headers["authorization"], "<redacted>")
      assert.match(connection?.headers["user-agent"] ?? "", /^OpenAI\/JS \d+\.\d+\.\d+$/)
      assert.strictEqual(connection?.headers["openai-beta"], undefined)
      assert.strictEqual(connection?.headers["sec-websocket-protocol"], undefined)
      assert.deepStrictEqual(client.errors, [])
    }))

  // GA reference (session.update / session.updated): the server answers with the full effective
  // session, `type: "realtime"`, the fields sent taking effect.
  it.scopedLive("session.update with a GA session object is answered by session.updated with it in effect", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const client = yield* connect(sandbox)
      yield* until(client, "session.created")
      client.send({
        type: "session.update",
        session: { type: "realtime", output_modalities: ["text"], instructions: "Be brief.", tools: [listAgents], tool_choice: "auto" }
      })
      const [updated] = yield* until(client, "session.updated")
      assert.strictEqual(updated?.type, "session.updated")
      if (updated?.type === "session.updated" && updated.session.type === "realtime") {
        assert.deepStrictEqual(updated.session.output_modalities, ["text"])
        assert.strictEqual(updated.session.instructions, "Be brief.")
        assert.deepStrictEqual(updated.session.tools, [listAgents])
        assert.strictEqual(updated.session.tool_choice, "auto")
        assert.strictEqual(updated.session.model, model)
      }
    }))

  // GA reference (server events of a text response): response.created → output item and content
  // part events → output_text deltas → response.done with the output and usage.
  it.scopedLive("a text turn: item added, response.created, deltas that add up to the text, response.done with usage", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const client = yield* connect(sandbox)
      yield* until(client, "session.created")
      client.send({ type: "session.update", session: { type: "realtime", output_modalities: ["text"] } })
      client.send(userText("hello there"))
      client.send({ type: "response.create" })
      const events = yield* until(client, "response.done")
      assert.deepStrictEqual(events.map((event) => event.type), [
        "session.updated",
        "conversation.item.added",
        "conversation.item.done",
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
      const text = events.flatMap((event) => event.type === "response.output_text.delta" ? [event.delta] : []).join("")
      assert.strictEqual(text, "sandbox answer to: hello there")
      const done = events.at(-1)
      assert.strictEqual(done?.type, "response.done")
      if (done?.type !== "response.done") return
      const created = events.find((event) => event.type === "response.created")
      assert.strictEqual(created?.type === "response.created" ? created.response.id : undefined, done.response.id)
      assert.strictEqual(done.response.status, "completed")
      const output: unknown = done.response.output?.map((item) => item.type === "message" ? [item.role, item.content] : item.type)
      assert.deepStrictEqual(output, [["assistant", [{ type: "output_text", text: "sandbox answer to: hello there" }]]])
      const usage = done.response.usage
      assert.strictEqual(usage?.total_tokens, (usage?.input_tokens ?? 0) + (usage?.output_tokens ?? 0))
      assert.isAbove(usage?.input_tokens ?? 0, 0)
      assert.isAbove(usage?.output_tokens ?? 0, 0)
    }))

  // GA reference (RealtimeResponseUsage): usage carries input_token_details (text, audio, image,
  // cached with cached_tokens_details) and output_token_details (text, audio); a text-only turn
  // has all its tokens as text.
  it.scopedLive("response.done usage breaks the tokens down as the API does", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const client = yield* connect(sandbox)
      client.send(userText("count me"))
      client.send({ type: "response.create" })
      const done = (yield* until(client, "response.done")).at(-1)
      const usage = done?.type === "response.done" ? done.response.usage : undefined
      const input = usage?.input_tokens ?? -1
      const output = usage?.output_tokens ?? -1
      assert.deepStrictEqual(usage, {
        total_tokens: input + output,
        input_tokens: input,
        output_tokens: output,
        input_token_details: {
          text_tokens: input,
          audio_tokens: 0,
          image_tokens: 0,
          cached_tokens: 0,
          cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 }
        },
        output_token_details: { text_tokens: output, audio_tokens: 0 }
      })
    }))

  // GA reference (function calling): the call is a `function_call` item with `call_id`, `name`
  // and `arguments` (a JSON string); the answer is a `function_call_output` item naming the
  // call_id, then `response.create`.
  it.scopedLive("a function call: call_id and arguments, answered with function_call_output, then the text", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ realtimeScript: [{ when: "agents", calls: [{ name: "list_agents", arguments: { verbose: true } }], text: "You have {output}." }] })
      const client = yield* connect(sandbox)
      client.send({ type: "session.update", session: { type: "realtime", output_modalities: ["text"], tools: [listAgents] } })
      client.send(userText("list the agents"))
      client.send({ type: "response.create" })
      const first = yield* until(client, "response.done")
      const argumentsDone = first.find((event) => event.type === "response.function_call_arguments.done")
      const done = first.at(-1)
      const call = done?.type === "response.done" ? done.response.output?.[0] : undefined
      assert.strictEqual(call?.type, "function_call")
      if (call?.type !== "function_call" || argumentsDone?.type !== "response.function_call_arguments.done") return
      assert.strictEqual(call.name, "list_agents")
      assert.strictEqual(call.arguments, "{\"verbose\":true}")
      assert.match(call.call_id ?? "", /^call_/)
      assert.deepStrictEqual([argumentsDone.call_id, argumentsDone.arguments], [call.call_id, call.arguments])

      client.send({ type: "conversation.item.create", item: { type: "function_call_output", call_id: call.call_id ?? "", output: "alpha and beta" } })
      client.send({ type: "response.create" })
      const second = yield* until(client, "response.done")
      const added = second.find((event) => event.type === "conversation.item.added")
      const addedItem: unknown = added?.type === "conversation.item.added" ? added.item : undefined
      assert.deepInclude(addedItem, { type: "function_call_output", call_id: call.call_id, output: "alpha and beta" })
      const text = second.find((event) => event.type === "response.output_text.done")
      assert.strictEqual(text?.type === "response.output_text.done" ? text.text : undefined, "You have alpha and beta.")
      assert.deepStrictEqual(client.errors, [])
    }))

  // GA reference (`error` server event) and the SDK (internal-base `_onError`): a bad client event
  // gets `error` with type, code, message, param and the client's event_id; the session goes on.
  it.scopedLive("a bad client event gets an error event echoing its event_id, and the session goes on", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const client = yield* connect(sandbox)
      yield* until(client, "session.created")
      client.send({ type: "conversation.item.create", event_id: "evt_bad_output", item: { type: "function_call_output", call_id: "call_nowhere", output: "x" } })
      const [error] = yield* until(client, "error")
      assert.strictEqual(error?.type, "error")
      if (error?.type !== "error") return
      assert.deepStrictEqual(error.error, {
        type: "invalid_request_error",
        code: null,
        message: "Tool call ID 'call_nowhere' not found in conversation.",
        param: "item.call_id",
        event_id: "evt_bad_output"
      })
      // The SDK raises it on its `error` listener with the API's fields.
      assert.strictEqual(client.errors.length, 1)
      assert.strictEqual(client.errors[0]?.event_id, error.event_id)
      assert.deepStrictEqual(client.errors[0]?.error, error.error)
      client.send(userText("still there?"))
      client.send({ type: "response.create" })
      const done = (yield* until(client, "response.done")).at(-1)
      assert.strictEqual(done?.type === "response.done" ? done.response.status : undefined, "completed")
    }))

  // Public reports of the real API (openai/openai-realtime-api-beta#2: a random key "gets a
  // successful connection and a different error message as a websocket message";
  // twilio-samples/speech-assistant-openai-realtime-api-python#4: "received 3000 (registered)
  // invalid_request_error.invalid_api_key"): the upgrade succeeds, an `error` event with code
  // invalid_api_key comes, and the server closes with 3000 and "<type>.<code>".
  it.scopedLive("a wrong key: the upgrade succeeds, then an invalid_api_key error event and close 3000", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const client = yield* connect(sandbox, "fake-wrong-key")
      const closed = yield* Deferred.await(client.closed)
      const events = [...(yield* Queue.takeAll(client.events))]
      const error = events[0]
      assert.strictEqual(events.length, 1)
      assert.strictEqual(error?.type, "error")
      if (error?.type !== "error") return
      assert.deepStrictEqual(error.error, {
        type: "invalid_request_error",
        code: "invalid_api_key",
        message: "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        param: null,
        event_id: null
      })
      assert.notInclude(JSON.stringify(error), "fake-wrong-key")
      assert.deepStrictEqual(closed, { code: 3000, reason: "invalid_request_error.invalid_api_key" })
      assert.strictEqual(client.errors[0]?.error?.code, "invalid_api_key")
      assert.deepStrictEqual((yield* sandbox.realtime.connections).map((connection) => connection.outcome), ["unauthorized"])
    }))
})
