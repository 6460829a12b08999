/**
 * The Realtime client against servers that misbehave on purpose: bare `ws` servers written here
 * (not our sandbox), and the sandbox's fault plans. Each test is a case an adversarial review
 * found failing; it fails without the mend it names. Everything on 127.0.0.1; waits on the
 * `TestClock` where time matters.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Realtime from "../src/Realtime.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import { bareServer, type Received, type ServerConnection, serverEvents } from "./support/wsServer.js"

const key = "sk-adversary-0123456789"

const client = (url: string, overrides: ReliabilityConfig.Overrides = {}) =>
  Realtime.layerWith({ url, apiKey: Redacted.make(key) }).pipe(
    Layer.provideMerge(CircuitBreaker.layer),
    Layer.provideMerge(ReliabilityConfig.layerWith({
      ...overrides,
      policies: { ...overrides.policies, network: { jitter: "none", initialDelay: "10 millis", ...overrides.policies?.["network"] } }
    }))
  )

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

describe("Realtime against a hostile server", () => {
  it.scopedLive("a close frame whose reason echoes the key: the key reaches no error, event or log", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const causes: Array<string> = []
      const session = yield* Realtime.connect({
        onEvent: (event) => Effect.sync(() => event._tag === "Reconnected" && void causes.push(event.cause))
      }).pipe(Effect.provide(client(server.url)))
      const turn = yield* Effect.fork(session.send("hi"))
      for (let i = 0; i < 3; i++) {
        const connection = yield* server.nextConnection
        yield* untilResponseCreate(connection)
        yield* connection.close(4001, `bad key ${key}`)
      }
      const error = yield* Effect.flip(Fiber.join(turn))
      assert.strictEqual(error._tag, "NetworkError")
      assert.strictEqual(error.message, "the Realtime socket closed (code 4001: bad key <redacted>)")
      assert.deepStrictEqual(causes, [
        "the Realtime socket closed (code 4001: bad key <redacted>)",
        "the Realtime socket closed (code 4001: bad key <redacted>)"
      ])
    }))
})
