/**
 * Fidelity to the official SDK (`openai`, a dev dependency used for its types only): what the
 * client sends is a GA `RealtimeClientEvent` (checked by the compiler), the client reads events
 * shaped as the SDK types them, and every event type the sandbox sends is a GA server event type.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type {
  RateLimitsUpdatedEvent,
  RealtimeClientEvent,
  RealtimeErrorEvent,
  RealtimeServerEvent,
  ResponseDoneEvent,
  ResponseTextDeltaEvent
} from "openai/resources/realtime/realtime"
import { WebSocket } from "ws"
import type * as Realtime from "../src/Realtime.js"
import { decodeServerEvent } from "../src/realtime/Protocol.js"
import * as Sandbox from "../src/Sandbox.js"
import * as Voice from "../src/Voice.js"

/** Our events use read-only arrays; the SDK's types are mutable. Same shapes otherwise. */
type Mutable<T> = T extends ReadonlyArray<infer U> ? Array<Mutable<U>> : T extends object ? { -readonly [K in keyof T]: Mutable<T[K]> } : T

/** Compiles only if every client event we can build is a GA client event of the SDK. */
const asSdkEvent = (event: Mutable<Realtime.ClientEvent>): RealtimeClientEvent => event

/** The GA server event types the sandbox may send; the compiler checks each against the SDK. */
const sandboxEventTypes: ReadonlyArray<RealtimeServerEvent["type"]> = [
  "session.created",
  "session.updated",
  "conversation.item.added",
  "conversation.item.done",
  "response.created",
  "rate_limits.updated",
  "response.output_item.added",
  "response.output_item.done",
  "response.content_part.added",
  "response.content_part.done",
  "response.output_text.delta",
  "response.output_text.done",
  "response.function_call_arguments.delta",
  "response.function_call_arguments.done",
  "response.done",
  "error"
]

describe("Realtime fidelity to the official SDK", () => {
  it.effect("the session.update the client sends, with the orchestrator's tools, is a GA client event", () =>
    Effect.sync(() => {
      const update = asSdkEvent({
        type: "session.update",
        event_id: "big3_1",
        session: { type: "realtime", output_modalities: ["text"], instructions: "hi", tools: [...Voice.tools].map((tool) => ({ ...tool, parameters: { ...tool.parameters } })), tool_choice: "auto" }
      })
      assert.strictEqual(update.type, "session.update")
      const output = asSdkEvent({
        type: "conversation.item.create",
        event_id: "big3_2",
        item: { type: "function_call_output", call_id: "call_1", output: "ok" }
      })
      assert.strictEqual(output.type, "conversation.item.create")
    }))

  it.effect("the client decodes events shaped as the SDK types them", () =>
    Effect.sync(() => {
      const done: ResponseDoneEvent = {
        type: "response.done",
        event_id: "event_1",
        response: {
          id: "resp_1",
          object: "realtime.response",
          status: "completed",
          output: [
            { id: "item_1", object: "realtime.item", type: "function_call", status: "completed", call_id: "call_1", name: "list_agents", arguments: "{}" },
            { id: "item_2", object: "realtime.item", type: "message", role: "assistant", status: "completed", content: [{ type: "output_text", text: "Done." }] }
          ]
        }
      }
      const decoded = decodeServerEvent(JSON.stringify(done))
      assert.isTrue(decoded._tag === "Right" && decoded.right._tag === "ResponseDone")
      if (decoded._tag === "Right" && decoded.right._tag === "ResponseDone") {
        assert.deepStrictEqual(decoded.right.event.response.output?.map((item) => item.type), ["function_call", "message"])
      }
      const error: RealtimeErrorEvent = {
        type: "error",
        event_id: "event_2",
        error: { type: "invalid_request_error", code: "session_expired", message: "Your session hit the maximum duration of 60 minutes.", param: null, event_id: null }
      }
      const limits: RateLimitsUpdatedEvent = {
        type: "rate_limits.updated",
        event_id: "event_3",
        rate_limits: [{ name: "tokens", limit: 100, remaining: 99, reset_seconds: 1 }]
      }
      const delta: ResponseTextDeltaEvent = {
        type: "response.output_text.delta",
        event_id: "event_4",
        response_id: "resp_1",
        item_id: "item_2",
        output_index: 1,
        content_index: 0,
        delta: "Do"
      }
      const tags = [error, limits, delta].map((event) => {
        const result = decodeServerEvent(JSON.stringify(event))
        return result._tag === "Right" ? result.right._tag : `failed: ${result.left}`
      })
      assert.deepStrictEqual(tags, ["Error", "RateLimits", "TextDelta"])
    }))

  it.scopedLive("every event type the sandbox sends in a session with a function call is a GA server event type", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ realtimeScript: [{ calls: [{ name: "list_agents" }] }] })
      const types = yield* Effect.async<ReadonlyArray<string>>((resume) => {
        const seen: Array<string> = []
        const socket = new WebSocket(`${sandbox.realtime.url}?model=gpt-realtime`, { headers: { authorization: "Bearer sandbox-key" } })
        const send = (event: RealtimeClientEvent) => socket.send(JSON.stringify(event))
        socket.on("open", () => {
          send({ type: "session.update", session: { type: "realtime", output_modalities: ["text"] } })
          send({ type: "conversation.item.create", item: { type: "message", role: "user", content: [{ type: "input_text", text: "hi" }] } })
          send({ type: "response.create" })
        })
        socket.on("message", (data) => {
          const event: unknown = JSON.parse(String(data))
          const type = typeof event === "object" && event !== null && "type" in event ? String(event.type) : "?"
          seen.push(type)
          if (type === "response.done" && !seen.includes("error")) {
            // Two things the API refuses: a second output for the same call, and a bad update.
            send({ type: "conversation.item.create", item: { type: "function_call_output", call_id: "call_unknown", output: "x" } })
          } else if (type === "error") {
            resume(Effect.succeed(seen))
            socket.terminate()
          }
        })
        return Effect.sync(() => socket.terminate())
      })
      const known = new Set<string>(sandboxEventTypes)
      assert.deepStrictEqual(types.filter((type) => !known.has(type)), [])
      assert.includeMembers([...types], ["session.created", "session.updated", "response.function_call_arguments.done", "response.done", "error"])
    }))
})
