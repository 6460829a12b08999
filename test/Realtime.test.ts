/**
 * The Realtime client against a bare `ws` server written here (not our sandbox): the GA shapes it
 * sends, the turn loop, and each way a connection can go wrong. Everything on 127.0.0.1.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Metrics from "../src/Metrics.js"
import * as Realtime from "../src/Realtime.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import { bareServer, type ServerConnection, serverEvents } from "./support/wsServer.js"

const client = (url: string, overrides: ReliabilityConfig.Overrides = {}, apiKey: string | undefined = "test-key") =>
  Realtime.layerWith({ url, ...(apiKey === undefined ? {} : { apiKey: Redacted.make(apiKey) }) }).pipe(
    Layer.provideMerge(CircuitBreaker.layer),
    Layer.provideMerge(ReliabilityConfig.layerWith({
      ...overrides,
      policies: { network: { jitter: "none", initialDelay: "10 millis" }, ...overrides.policies }
    }))
  )

const listAgents: Realtime.FunctionTool = {
  type: "function",
  name: "list_agents",
  description: "List the agents",
  parameters: { type: "object", properties: {} }
}

/** Takes the `session.update` and any replayed items, up to and including `response.create`. */
const untilResponseCreate = (connection: ServerConnection) =>
  Effect.gen(function*() {
    const events = []
    while (true) {
      const event = yield* connection.next
      events.push(event)
      if (event.type === "response.create") return events
    }
  })

const itemOf = (event: { readonly [key: string]: unknown }) => event["item"]

describe("Realtime", () => {
  it.scoped("connects with the Bearer key and the model, then configures a GA realtime session", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      yield* Realtime.connect({ instructions: "be brief", tools: [listAgents] }).pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      assert.strictEqual(connection.headers["authorization"], "Bearer test-key")
      assert.strictEqual(connection.path, "/v1/realtime?model=gpt-realtime")
      const update = yield* connection.next
      assert.deepStrictEqual(update, {
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

  it.scoped("a turn sends the user message and one response.create, and returns the assistant's text", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const session = yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("hello"))
      const events = yield* untilResponseCreate(connection)
      assert.deepStrictEqual(events.map((event) => event.type), ["session.update", "conversation.item.create", "response.create"])
      assert.deepStrictEqual(itemOf(events[1]!), { type: "message", role: "user", content: [{ type: "input_text", text: "hello" }] })
      yield* connection.send(serverEvents.textResponse("resp_1", "hi there"))
      const result = yield* Fiber.join(turn)
      assert.deepStrictEqual(result, { text: "hi there", calls: [], skipped: [], responses: 1, status: "completed", error: undefined })
    }))
})
