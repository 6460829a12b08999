/**
 * The Realtime client against servers that misbehave on purpose: bare `ws` servers written here
 * (not our sandbox), and the sandbox's fault plans. Each test is a case an adversarial review
 * found failing; it fails without the mend it names. Everything on 127.0.0.1; waits on the
 * `TestClock` where time matters.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/TestClock"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Realtime from "../src/Realtime.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Sandbox from "../src/Sandbox.js"
import { bareServer, realPause, type Received, type ServerConnection, serverEvents, waitForTimer, waitUntil } from "./support/wsServer.js"

const key = "fake-openai-key-adversary"

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

  // RFC 6455 close codes for what the peer refuses in what it was sent: 1003 data it cannot take,
  // 1007 data inconsistent with its type, 1008 a policy violation, 1009 a message too big. Sent
  // again on a new connection, it is refused again: each was reconnected and replayed until the
  // attempts were used up, then reported as a retryable NetworkError.
  it.scopedLive("a close that refuses what was sent (1003, 1007, 1008, 1009): InvalidRequest after one connection, not retried", () =>
    Effect.gen(function*() {
      for (const code of [1003, 1007, 1008, 1009]) {
        const server = yield* bareServer()
        const session = yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
        const turn = yield* Effect.fork(session.send("hi"))
        const connection = yield* server.nextConnection
        yield* untilResponseCreate(connection)
        yield* connection.close(code, "refused")
        const error = yield* Effect.flip(Fiber.join(turn))
        assert.deepStrictEqual(
          { tag: error._tag, message: error.message, retryable: error.retryable },
          {
            tag: "InvalidRequest",
            message: `the Realtime socket closed (code ${code}: refused): the server refuses what was sent; not retried`,
            retryable: false
          },
          `code ${code}`
        )
        yield* realPause(100)
        assert.strictEqual(server.upgrades(), 1, `code ${code}`)
      }
    }))

  it.scopedLive("a server that closes every connection as soon as it opens, while idle: three connections, then the session fails", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const session = yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
      for (let i = 0; i < 3; i++) {
        const connection = yield* server.nextConnection
        yield* connection.nextOf("session.update")
        yield* connection.close(1000, "bye")
      }
      // Nothing more is tried: the attempts of policy network are used up.
      yield* realPause(300)
      assert.strictEqual(server.upgrades(), 3)
      const error = yield* Effect.flip(session.send("anyone?"))
      assert.strictEqual(error._tag, "NetworkError")
      assert.strictEqual(error.message, "the Realtime socket closed (code 1000: bye)")
      assert.isTrue(error.retryable)
      // Told without a turn too.
      assert.strictEqual(yield* Effect.flip(session.lost), error)
    }))

  it.scopedLive("the sandbox dropping every connection after session.created, while idle: three connections, then the session fails", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ realtimePlan: Array.from({ length: 6 }, () => ({ dropAfter: 1 })) })
      const session = yield* Realtime.connect().pipe(
        Effect.provide(Realtime.layerWith({ url: sandbox.realtime.url, apiKey: Redacted.make("sandbox-key") }).pipe(
          Layer.provideMerge(CircuitBreaker.layer),
          Layer.provideMerge(ReliabilityConfig.layerWith({ policies: { network: { jitter: "none", initialDelay: "10 millis" } } }))
        ))
      )
      yield* waitUntil("three dropped connections", Effect.map(sandbox.realtime.connections, (all) => all.filter((c) => c.outcome === "dropped").length === 3))
      yield* realPause(300)
      assert.deepStrictEqual((yield* sandbox.realtime.connections).map((c) => c.outcome), ["dropped", "dropped", "dropped"])
      const error = yield* Effect.flip(session.send("anyone?"))
      assert.strictEqual(error._tag, "NetworkError")
    }))

  it.scoped("a response.done with ill-typed fields ends its response as failed at once; the session goes on", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const statuses: Array<string> = []
      const session = yield* Realtime.connect({
        onEvent: (event) => Effect.sync(() => event._tag === "ResponseDone" && void statuses.push(event.status))
      }).pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("hi"))
      yield* untilResponseCreate(connection)
      yield* connection.send({ type: "response.done", event_id: "event_bad", response: { status: "weird", output: "x" } })
      // No time passes on the TestClock: the turn must end on the event itself, not on a timeout.
      yield* waitUntil("the turn to end", Effect.map(Fiber.poll(turn), Option.isSome))
      const failed = yield* Fiber.join(turn)
      assert.strictEqual(failed.status, "failed")
      assert.strictEqual(failed.text, "")
      assert.strictEqual(
        failed.error,
        "DecodeError: the server's response.done: response.status: Expected \"completed\", actual \"weird\"; response.status: Expected \"cancelled\", actual \"weird\""
      )
      assert.deepStrictEqual(statuses, ["failed"])
      const next = yield* Effect.fork(session.send("again"))
      yield* untilResponseCreate(connection)
      yield* connection.send(serverEvents.textResponse("resp_2", "fine now"))
      assert.strictEqual((yield* Fiber.join(next)).text, "fine now")
      assert.strictEqual(server.upgrades(), 1)
    }))

  it.scopedLive("a response.done sent twice, or for no response of ours, does not end the next turn with a stale answer", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const texts: Array<string> = []
      const errors: Array<string> = []
      const session = yield* Realtime.connect({
        onEvent: (event) =>
          Effect.sync(() => {
            if (event._tag === "AssistantText") texts.push(event.text)
            if (event._tag === "ServerError") errors.push(event.message)
          })
      }).pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      const created = (id: string) => ({ type: "response.created", event_id: `event_created_${id}`, response: { id, status: "in_progress", output: [] } })

      const first = yield* Effect.fork(session.send("one"))
      yield* untilResponseCreate(connection)
      yield* connection.send(created("resp_1"))
      yield* connection.send(serverEvents.textResponse("resp_1", "answer one"))
      assert.strictEqual((yield* Fiber.join(first)).text, "answer one")

      const second = yield* Effect.fork(session.send("two"))
      yield* untilResponseCreate(connection)
      // Stale: resp_1 again (without and then after response.created of ours), and one the client never saw created.
      yield* connection.send(serverEvents.textResponse("resp_1", "answer one"))
      yield* connection.send(created("resp_2"))
      yield* connection.send(serverEvents.textResponse("resp_1", "answer one"))
      yield* connection.send(serverEvents.textResponse("resp_x", "from nowhere"))
      yield* connection.send(serverEvents.textResponse("resp_2", "answer two"))
      const turn = yield* Fiber.join(second)
      assert.strictEqual(turn.text, "answer two")
      assert.strictEqual(turn.responses, 1)

      // Idle: a response.done when no response is active is not an answer either.
      yield* connection.send(serverEvents.textResponse("resp_y", "unasked"))
      // Frames are read in order: once this one is reported, resp_y has been read too.
      yield* connection.send(serverEvents.error(null, "marker", null, "server_error"))
      yield* waitUntil("the marker", Effect.sync(() => errors.length === 1))
      const third = yield* Effect.fork(session.send("three"))
      yield* untilResponseCreate(connection)
      yield* connection.send(serverEvents.textResponse("resp_3", "answer three"))
      assert.strictEqual((yield* Fiber.join(third)).text, "answer three")
      assert.deepStrictEqual(texts, ["answer one", "answer two", "answer three"])
    }))

  it.scopedLive("a server that sends faster than the client reads: the client stops reading instead of buffering it all", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const gate = yield* Deferred.make<void>()
      let deltas = 0
      const session = yield* Realtime.connect({
        // A slow reader: the first delta waits for the gate, and everything behind it queues.
        onEvent: (event) => event._tag === "TextDelta" ? Effect.zipRight(Effect.sync(() => void deltas++), Deferred.await(gate)) : Effect.void
      }).pipe(Effect.provide(client(server.url)))
      const connection = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("talk a lot"))
      yield* untilResponseCreate(connection)
      const count = 20_000
      const chunk = "x".repeat(1000)
      for (let i = 0; i < count; i++) {
        yield* connection.send({ type: "response.output_text.delta", event_id: `event_${i}`, delta: chunk })
      }
      yield* connection.send(serverEvents.textResponse("resp_1", "done talking"))
      yield* waitUntil("the first delta", Effect.sync(() => deltas === 1))
      yield* realPause(500)
      // About 20 MB went out; the client took at most a bounded part of it off the socket.
      assert.isAbove(connection.bufferedAmount(), 10_000_000)
      yield* Deferred.succeed(gate, undefined)
      const result = yield* Fiber.join(turn)
      assert.strictEqual(result.text, "done talking")
      assert.strictEqual(deltas, count)
    }))

  it.scoped("a server that keeps sending events but never finishes the response: dead after openai_api, replaced", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const session = yield* Realtime.connect().pipe(Effect.provide(client(server.url)))
      const first = yield* server.nextConnection
      const turn = yield* Effect.fork(session.send("hello?"))
      yield* untilResponseCreate(first)
      // The watchdog has seen the response pending: its silence bound is armed.
      yield* waitForTimer(30_000)
      for (let second = 10; second <= 30; second += 10) {
        yield* TestClock.adjust(Duration.seconds(10))
        // Something other than the response's end, within every silence bound.
        yield* first.send({ type: "rate_limits.updated", event_id: `event_rl_${second}`, rate_limits: [] })
        if (second < 30) yield* waitForTimer(second * 1000 + 30_000)
      }
      // 30 s (openai_api) after response.create: the socket counts as dead; the backoff, then a new one.
      const backoffEnds = (yield* Clock.currentTimeMillis) + 10
      yield* waitForTimer(backoffEnds)
      yield* TestClock.adjust("10 millis")
      const second = yield* server.nextConnection
      yield* untilResponseCreate(second)
      yield* second.send(serverEvents.textResponse("resp_2", "at last"))
      assert.strictEqual((yield* Fiber.join(turn)).text, "at last")
      assert.deepStrictEqual((yield* session.stats).reconnects, [{ reason: "stalled", attempt: 1 }])
    }))
})
