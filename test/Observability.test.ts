import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Metrics from "../src/Metrics.js"
import * as Observability from "../src/Observability.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Spool from "../src/observability/Spool.js"
import * as Store from "../src/Store.js"
import { captureLogs } from "./support/capture.js"

// ---------------------------------------------------------------------------------------------
// A scripted fake observability server at the HttpClient level
// ---------------------------------------------------------------------------------------------

type Reply =
  | { readonly status: number; readonly body?: unknown; readonly contentType?: string }
  | { readonly transport: string }

interface Seen {
  /** Clock time of the request, ms. */
  readonly at: number
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: unknown
}

const publicBanner: Reply = { status: 200, body: "Multi-Agent Observability Server", contentType: "text/plain" }

const normalReply = (seen: Seen): Reply =>
  seen.path.endsWith("/batch")
    ? { status: 200, body: { accepted: Array.isArray(seen.body) ? seen.body.length : 0, duplicates: 0 } }
    : { status: 200, body: { ...(seen.body as object), id: 1 } }

const makeServer = () => {
  const seen: Array<Seen> = []
  let handler: (seen: Seen) => Reply | Effect.Effect<Reply> = normalReply
  const respond = (request: HttpClientRequest.HttpClientRequest, reply: Reply) => {
    if ("transport" in reply) {
      return Effect.fail(new HttpClientError.RequestError({ request, reason: "Transport", cause: new Error(reply.transport) }))
    }
    const text = typeof reply.body === "string" ? reply.body : JSON.stringify(reply.body ?? {})
    return Effect.succeed(HttpClientResponse.fromWeb(
      request,
      new Response(text, { status: reply.status, headers: { "content-type": reply.contentType ?? "application/json" } })
    ))
  }
  const client = HttpClient.make((request, url) =>
    Effect.clockWith((clock) => {
      const body = request.body._tag === "Uint8Array" ? JSON.parse(new TextDecoder().decode(request.body.body)) : undefined
      const entry: Seen = { at: clock.unsafeCurrentTimeMillis(), path: url.pathname, headers: request.headers, body }
      seen.push(entry)
      const reply = handler(entry)
      return Effect.flatMap(Effect.isEffect(reply) ? reply : Effect.succeed(reply), (r) => respond(request, r))
    })
  )
  return {
    seen,
    client,
    reply: (next: (seen: Seen) => Reply | Effect.Effect<Reply>) => {
      handler = next
    },
    /** Bodies of single POSTs and batch items, in arrival order. */
    events: (): Array<Record<string, unknown>> =>
      seen.flatMap((s) => (Array.isArray(s.body) ? s.body : [s.body]) as Array<Record<string, unknown>>)
  }
}
type Server = ReturnType<typeof makeServer>

const url = "http://observability.test/events"

const deps = (
  server: Server,
  overrides: ReliabilityConfig.Overrides = {},
  store: Layer.Layer<SqlClient.SqlClient, unknown> = Store.layerMemory
) =>
  Layer.mergeAll(CircuitBreaker.layer, Layer.succeed(HttpClient.HttpClient, server.client), store).pipe(
    Layer.provideMerge(ReliabilityConfig.layerWith(overrides))
  )

const clientLayer = (
  server: Server,
  options: Observability.Options = {},
  overrides: ReliabilityConfig.Overrides = {},
  store?: Layer.Layer<SqlClient.SqlClient, unknown>
) =>
  Observability.layerWith({ url, transport: "http-client", linger: 0, concurrency: 2, ...options }).pipe(
    Layer.provideMerge(deps(server, overrides, store))
  )

/** One attempt per call and no retry waits, for tests that are not about retries. */
const noRetry: ReliabilityConfig.Overrides = { policies: { observability: { maxAttempts: 1 } } }

const event = (n: number, extra: Partial<Observability.EventInput> = {}): Observability.EventInput => ({
  source_app: "test",
  session_id: "session-1",
  hook_event_type: "PreToolUse",
  payload: { n },
  ...extra
})

/** Lets the background fibers run until `check` holds (bounded, no real time). */
const eventually = <A, E, R>(read: Effect.Effect<A, E, R>, check: (a: A) => boolean, rounds = 500) =>
  Effect.gen(function*() {
    let value = yield* read
    for (let i = 0; i < rounds && !check(value); i++) {
      yield* Effect.yieldNow()
      value = yield* read
    }
    return value
  })

const spoolRows = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ seq: number; id: string; owner: string | null }>`SELECT seq, id, owner FROM observability_spool ORDER BY seq`
).pipe(Effect.orDie)

/** A pid no process has now (a process that is gone). */
const deadPid = (): number => {
  for (let pid = 4_000_000; ; pid--) {
    try {
      process.kill(pid, 0)
    } catch {
      return pid
    }
  }
}

const tempDirs: Array<string> = []
const tempDb = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "big3-observability-"))
  tempDirs.push(dir)
  return path.join(dir, "big3.db")
}
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
})

// ---------------------------------------------------------------------------------------------

describe("Observability", () => {
  it.effect("a bad event is rejected, counted and logged, and emit keeps working", () => {
    const server = makeServer()
    const logs = captureLogs()
    return Effect.gen(function*() {
      yield* Observability.emit({ source_app: 42 } as unknown as Observability.EventInput)
      yield* Observability.emit(event(1, { timestamp: Number.NaN }))
      yield* Observability.send(event(2))
      const stats = yield* Observability.stats
      assert.strictEqual(stats.rejected, 2)
      assert.strictEqual(stats.emitted, 1)
      assert.strictEqual(stats.delivered, 1)
      assert.strictEqual(server.seen.length, 1)
      assert.isTrue(logs.lines.some((line) => line.startsWith("WARN") && line.includes("rejected an event")))
    }).pipe(Effect.provide(clientLayer(server)), Effect.provide(logs.layer))
  })

  it.effect("an event the server would refuse is rejected at emit, counted and logged naming the field; nothing is sent", () => {
    const server = makeServer()
    const logs = captureLogs()
    return Effect.gen(function*() {
      yield* Observability.emit(event(1, { session_id: "" }))
      yield* Observability.emit(event(2, { source_app: "" }))
      yield* Observability.emit(event(3, { hook_event_type: "" }))
      yield* Observability.flush
      const stats = yield* Observability.stats
      assert.deepStrictEqual([stats.rejected, stats.emitted, stats.deadLettered], [3, 0, 0])
      assert.strictEqual(server.seen.length, 0)
      const warnings = logs.lines.filter((line) => line.startsWith("WARN"))
      assert.deepStrictEqual(warnings, [
        "WARN observability: rejected an event (PreToolUse): session_id is empty; the observability server refuses such an event (400 Missing required fields); 1 rejected so far",
        "WARN observability: rejected an event (PreToolUse): source_app is empty; the observability server refuses such an event (400 Missing required fields); 2 rejected so far",
        "WARN observability: rejected an event (): hook_event_type is empty; the observability server refuses such an event (400 Missing required fields); 3 rejected so far"
      ])
    }).pipe(Effect.provide(clientLayer(server)), Effect.provide(logs.layer))
  })

  it("refusedField names what the public server checks: empty strings and a missing payload", () => {
    assert.isUndefined(Observability.refusedField(event(1)))
    assert.strictEqual(Observability.refusedField(event(1, { source_app: "" })), "source_app")
    assert.strictEqual(Observability.refusedField(event(1, { session_id: "", hook_event_type: "" })), "session_id")
    assert.strictEqual(Observability.refusedField(event(1, { hook_event_type: "" })), "hook_event_type")
    // A JavaScript caller can leave out what the types require; the deliberate cast stands for one.
    const { payload: _payload, ...withoutPayload } = event(1)
    assert.strictEqual(Observability.refusedField(withoutPayload as unknown as Observability.EventInput), "payload")
    assert.isUndefined(Observability.refusedField(event(1, { session_id: " " })), "the server's check is truthiness")
  })

  it.effect("model_name is sent when the caller gives it", () => {
    const server = makeServer()
    return Effect.gen(function*() {
      yield* Observability.send(event(1, { model_name: "claude-sonnet-5-5" }))
      yield* Observability.send(event(2))
      assert.deepStrictEqual(server.events().map((sent) => sent["model_name"]), ["claude-sonnet-5-5", undefined])
    }).pipe(Effect.provide(clientLayer(server)))
  })

  it.effect("emit stamps a UUIDv7 id and the clock's timestamp and posts the public shape plus id", () => {
    const server = makeServer()
    return Effect.gen(function*() {
      yield* TestClock.setTime(1_750_000_000_000)
      yield* Observability.send(event(1, { summary: "ran ls" }))
      const [sent] = server.events()
      assert.match(String(sent?.["id"]), /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      assert.strictEqual(String(sent?.["id"]).replace(/-/g, "").slice(0, 12), (1_750_000_000_000).toString(16).padStart(12, "0"))
      assert.deepStrictEqual({ ...sent, id: "x" }, {
        id: "x",
        source_app: "test",
        session_id: "session-1",
        hook_event_type: "PreToolUse",
        payload: { n: 1 },
        timestamp: 1_750_000_000_000,
        summary: "ran ls"
      })
      assert.strictEqual(server.seen[0]?.path, "/events")
    }).pipe(Effect.provide(clientLayer(server)))
  })

  it.effect("a caller's id and timestamp are kept", () => {
    const server = makeServer()
    return Effect.gen(function*() {
      yield* Observability.send(event(1, { id: "my-id", timestamp: 123 }))
      assert.strictEqual(server.events()[0]?.["id"], "my-id")
      assert.strictEqual(server.events()[0]?.["timestamp"], 123)
    }).pipe(Effect.provide(clientLayer(server)))
  })

  it.effect("a full queue sends events to the spool instead of dropping them", () => {
    const server = makeServer()
    return Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      server.reply((seen) => Effect.as(Deferred.await(gate), normalReply(seen)))
      return yield* Effect.gen(function*() {
        // One worker holds event 1 in flight; the queue holds two more; the rest overflow.
        yield* Observability.emit(event(1))
        yield* eventually(Observability.stats, (s) => s.inFlight === 1)
        for (let n = 2; n <= 6; n++) yield* Observability.emit(event(n))
        const during = yield* eventually(Observability.stats, (s) => s.spooled === 3)
        assert.strictEqual(during.spooled, 3)
        assert.strictEqual(during.queued, 2)
        assert.strictEqual(during.dropped, 0)
        // The three that overflowed are backlog; the three in memory are held by this process.
        const rows = yield* spoolRows
        assert.deepStrictEqual(
          rows.map((row) => row.owner === null ? "backlog" : "held").sort(),
          ["backlog", "backlog", "backlog", "held", "held", "held"]
        )
        yield* Deferred.succeed(gate, undefined)
        yield* Observability.flush
        const after = yield* eventually(Observability.stats, (s) => s.redelivered === 3)
        assert.strictEqual(after.delivered, 3)
        assert.strictEqual(after.redelivered, 3)
        assert.strictEqual(after.spoolSize, 0)
        const payloads = server.events().map((e) => (e["payload"] as { n: number }).n)
        assert.deepStrictEqual([...new Set(payloads)].sort(), [1, 2, 3, 4, 5, 6])
      }).pipe(
        // A failed assertion must not leave a request hanging through the shutdown flush.
        Effect.ensuring(Deferred.succeed(gate, undefined)),
        Effect.provide(clientLayer(server, { concurrency: 1, queueCapacity: 2 }))
      )
    })
  })

  it.effect("a 400 is dead-lettered after one try, with the reason", () => {
    const server = makeServer()
    const logs = captureLogs()
    server.reply(() => ({ status: 400, body: { error: "Missing required fields" } }))
    return Effect.gen(function*() {
      yield* Observability.send(event(1, { id: "bad-1" }))
      const stats = yield* Observability.stats
      assert.strictEqual(server.seen.length, 1)
      assert.strictEqual(stats.deadLettered, 1)
      assert.strictEqual(stats.retried, 0)
      assert.strictEqual(stats.delivered, 0)
      assert.strictEqual(stats.deadLetterSize, 1)
      const [letter] = yield* Observability.deadLetters()
      assert.strictEqual(letter?.id, "bad-1")
      assert.strictEqual(letter?.status, 400)
      assert.include(letter?.reason, "InvalidRequest")
      assert.include(letter?.reason, "Missing required fields")
      assert.strictEqual(JSON.parse(letter?.body ?? "{}").id, "bad-1")
      assert.isTrue(logs.lines.some((line) => line.startsWith("ERROR") && line.includes("dead-lettered 1 event")))
      // Requeue after the server is fixed: back in the spool, then redelivered.
      server.reply(normalReply)
      assert.strictEqual(yield* Observability.requeueDeadLetters, 1)
      const drained = yield* Observability.drainSpool
      assert.strictEqual(drained.remaining, 0)
      const after = yield* eventually(Observability.stats, (s) => s.redelivered === 1)
      assert.strictEqual(after.redelivered, 1)
      assert.strictEqual(after.deadLetterSize, 0)
    }).pipe(Effect.provide(clientLayer(server)), Effect.provide(logs.layer))
  })

  it.effect("a 503 is retried once after about 0.5 s (policy observability), then spooled", () => {
    const server = makeServer()
    server.reply(() => ({ status: 503, body: { error: "Service unavailable" } }))
    return Effect.gen(function*() {
      yield* Observability.emit(event(1, { id: "unlucky" }))
      const flushed = yield* Effect.fork(Observability.flush)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(flushed)
      const stats = yield* Observability.stats
      assert.strictEqual(stats.spooled, 1)
      assert.strictEqual(stats.delivered, 0)
      assert.isAtLeast(stats.retried, 1)
      // The first two requests are the event's two attempts, 0.5 s ± 20% apart.
      const [first, second] = server.seen
      assert.strictEqual((second?.body as Record<string, unknown>)["id"], "unlucky")
      const gap = (second?.at ?? 0) - (first?.at ?? 0)
      assert.isTrue(gap >= 400 && gap <= 600, `waited ${gap} ms`)
      assert.deepStrictEqual((yield* spoolRows).map((row) => row.id), ["unlucky"])
    }).pipe(Effect.provide(clientLayer(server, { concurrency: 1 })))
  })

  it.effect("a garbled 200 acknowledgement is not delivery: the event is sent again", () => {
    const server = makeServer()
    let answered = 0
    server.reply((seen) => answered++ === 0 ? { status: 200, body: `{"source_app":"test","id":` } : normalReply(seen))
    return Effect.gen(function*() {
      yield* Observability.emit(event(1, { id: "garbled" }))
      const flushed = yield* Effect.fork(Observability.flush)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(flushed)
      const stats = yield* Observability.stats
      assert.strictEqual(stats.delivered, 1)
      assert.strictEqual(stats.retried, 1)
      assert.deepStrictEqual(server.events().map((e) => e["id"]), ["garbled", "garbled"])
    }).pipe(Effect.provide(clientLayer(server, { concurrency: 1 })))
  })

  it.effect("while the breaker is open events are spooled without a request; the half-open trial redelivers them", () => {
    const server = makeServer()
    return Effect.gen(function*() {
      const registry = yield* CircuitBreaker.CircuitBreaker
      const breaker = registry.get("observability")
      const now = yield* Clock.currentTimeMillis
      for (let i = 0; i < 5; i++) breaker.onFailure(breaker.tryAcquire(now) as number, now)
      assert.strictEqual(breaker.state(now), "open")
      for (let n = 1; n <= 3; n++) yield* Observability.emit(event(n))
      yield* Observability.flush
      const during = yield* Observability.stats
      assert.strictEqual(during.spooled, 3)
      assert.strictEqual(server.seen.length, 0)
      // Open for 30 s; the redeliverer looks again every second.
      yield* TestClock.adjust("31 seconds")
      const after = yield* eventually(Observability.stats, (s) => s.redelivered === 3)
      assert.strictEqual(after.redelivered, 3)
      assert.strictEqual(after.spoolSize, 0)
      assert.deepStrictEqual(server.events().map((e) => (e["payload"] as { n: number }).n), [1, 2, 3])
      assert.strictEqual(breaker.state(yield* Clock.currentTimeMillis), "closed")
    }).pipe(Effect.provide(clientLayer(server, { concurrency: 1 }, noRetry)))
  })

  it.effect("batch mode: a batch counts as delivered on the batch route's JSON acknowledgement", () => {
    const server = makeServer()
    return Effect.gen(function*() {
      for (let n = 1; n <= 10; n++) yield* Observability.emit(event(n))
      yield* Observability.flush
      const stats = yield* Observability.stats
      assert.strictEqual(stats.delivered, 10)
      assert.strictEqual(stats.mode, "batch")
      assert.deepStrictEqual(server.seen.map((s) => s.path), ["/events/batch"])
      assert.strictEqual((server.seen[0]?.body as Array<unknown>).length, 10)
    }).pipe(Effect.provide(clientLayer(server, { mode: "batch", concurrency: 1 })))
  })

  it.effect("batch mode: a 200 text/plain from the batch route is a misconfiguration: single mode, nothing lost", () => {
    const server = makeServer()
    const logs = captureLogs()
    server.reply((seen) => seen.path.endsWith("/batch") ? publicBanner : normalReply(seen))
    return Effect.gen(function*() {
      for (let n = 1; n <= 5; n++) yield* Observability.emit(event(n))
      yield* Observability.flush
      for (let n = 6; n <= 8; n++) yield* Observability.emit(event(n))
      yield* Observability.flush
      const stats = yield* Observability.stats
      assert.strictEqual(stats.delivered, 8)
      assert.strictEqual(stats.mode, "single")
      assert.strictEqual(server.seen.filter((s) => s.path === "/events/batch").length, 1)
      assert.strictEqual(server.seen.filter((s) => s.path === "/events").length, 8)
      assert.isTrue(logs.lines.some((line) => line.startsWith("ERROR") && line.includes("misconfigured")))
    }).pipe(Effect.provide(clientLayer(server, { mode: "batch", concurrency: 1 })), Effect.provide(logs.layer))
  })

  it.effect("batch mode: a batch refused as a whole (400) goes one by one; only the bad event is dead-lettered", () => {
    const server = makeServer()
    server.reply((seen) => {
      if (seen.path.endsWith("/batch")) return { status: 400, body: { error: "Missing required fields", index: 1 } }
      const n = ((seen.body as Record<string, unknown>)["payload"] as { n: number }).n
      return n === 2 ? { status: 400, body: { error: "Missing required fields" } } : normalReply(seen)
    })
    return Effect.gen(function*() {
      for (let n = 1; n <= 3; n++) yield* Observability.emit(event(n))
      yield* Observability.flush
      const stats = yield* Observability.stats
      assert.strictEqual(stats.delivered, 2)
      assert.strictEqual(stats.deadLettered, 1)
      assert.strictEqual(stats.mode, "batch")
    }).pipe(Effect.provide(clientLayer(server, { mode: "batch", concurrency: 1 })))
  })

  it.effect("single mode: a 200 text/plain is not delivery (wrong URL): the event is dead-lettered, not lost", () => {
    const server = makeServer()
    server.reply(() => publicBanner)
    return Effect.gen(function*() {
      yield* Observability.send(event(1))
      const stats = yield* Observability.stats
      assert.strictEqual(stats.delivered, 0)
      assert.strictEqual(stats.deadLettered, 1)
      const [letter] = yield* Observability.deadLetters()
      assert.include(letter?.reason, "OBSERVABILITY_SERVER_URL")
    }).pipe(Effect.provide(clientLayer(server)))
  })

  it.effect("closing the layer flushes what is queued", () => {
    const server = makeServer()
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(clientLayer(server, { mode: "batch", linger: "1 hour" }), scope)
      const client = Context.get(context, Observability.Observability)
      for (let n = 1; n <= 50; n++) yield* client.emit(event(n))
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(server.events().length, 50)
    })
  })

  it.effect("a new client over the same SQLite file redelivers what the last one spooled", () => {
    const filename = tempDb()
    const down = makeServer()
    down.reply(() => ({ transport: "connect ECONNREFUSED 127.0.0.1:4000" }))
    const up = makeServer()
    return Effect.gen(function*() {
      yield* Effect.gen(function*() {
        for (let n = 1; n <= 5; n++) yield* Observability.emit(event(n, { id: `e${n}` }))
        yield* Observability.flush
        assert.strictEqual((yield* Observability.stats).spooled, 5)
      }).pipe(Effect.provide(clientLayer(down, { concurrency: 1 }, noRetry, Store.layer({ filename }))))

      yield* Effect.gen(function*() {
        assert.strictEqual((yield* Observability.stats).spoolSize, 5)
        yield* Observability.drainSpool
        const stats = yield* eventually(Observability.stats, (s) => s.spoolSize === 0)
        assert.strictEqual(stats.redelivered, 5)
        assert.strictEqual((yield* spoolRows).length, 0)
      }).pipe(Effect.provide(clientLayer(up, {}, noRetry, Store.layer({ filename }))))
      assert.deepStrictEqual(up.events().map((e) => e["id"]), ["e1", "e2", "e3", "e4", "e5"])
    })
  })

  it.effect("a run cut short mid-page keeps what it redelivered deleted: the spool shrinks by what the server acknowledged", () => {
    const filename = tempDb()
    const down = makeServer()
    down.reply(() => ({ transport: "connect ECONNREFUSED 127.0.0.1:4000" }))
    const slow = makeServer()
    slow.reply((seen) => Effect.as(Effect.sleep("1 second"), normalReply(seen)))
    return Effect.gen(function*() {
      yield* Effect.gen(function*() {
        for (let n = 1; n <= 10; n++) yield* Observability.emit(event(n, { id: `p${n}` }))
        yield* Observability.flush
      }).pipe(Effect.provide(clientLayer(down, { concurrency: 1 }, noRetry, Store.layer({ filename }))))

      // A short run (as `big3 events send` is): redelivery starts, two requests are answered, the run ends.
      yield* Effect.gen(function*() {
        yield* eventually(Effect.sync(() => slow.seen.length), (n) => n === 2)
        yield* TestClock.adjust("1 second")
        yield* eventually(Observability.stats, (s) => s.redelivered === 2)
      }).pipe(Effect.provide(clientLayer(slow, { concurrency: 2 }, { ...noRetry, timeouts: { graceful_shutdown: "0.1 seconds" } }, Store.layer({ filename }))))

      const left = yield* spoolRows.pipe(Effect.provide(Store.layer({ filename })))
      assert.deepStrictEqual(
        left.map((row) => row.id).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1))),
        ["p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10"]
      )
      assert.isTrue(left.every((row) => row.owner === null), "what the run held is handed back")
    })
  })

  it.effect("durable by default: emitDurable returns once the event is in the spool, held by this process; delivered, it is deleted", () => {
    const server = makeServer()
    return Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      server.reply((seen) => Effect.as(Deferred.await(gate), normalReply(seen)))
      return yield* Effect.gen(function*() {
        const durable = yield* Effect.fork(Observability.emitDurable(event(1, { id: "durable-1" })))
        yield* Effect.repeatN(Effect.yieldNow(), 20)
        assert.isTrue(Option.isNone(yield* Fiber.poll(durable)), "emitDurable waits for the group commit")
        yield* TestClock.adjust("5 millis")
        yield* Fiber.join(durable)
        const rows = yield* spoolRows
        assert.deepStrictEqual(rows.map((row) => [row.id, row.owner !== null]), [["durable-1", true]])
        assert.strictEqual((yield* Observability.stats).spoolSize, 0) // held rows are not backlog
        yield* Deferred.succeed(gate, undefined)
        yield* Observability.flush
        yield* TestClock.adjust("50 millis") // deletes alone go within ten commit intervals
        assert.deepStrictEqual(yield* eventually(spoolRows, (left) => left.length === 0), [])
        const stats = yield* Observability.stats
        assert.strictEqual(stats.journaled, 1)
        assert.strictEqual(stats.delivered, 1)
      }).pipe(
        Effect.ensuring(Deferred.succeed(gate, undefined)),
        Effect.provide(clientLayer(server))
      )
    })
  })

  it.effect("durable by default: emit's events reach the spool in one group commit after commitInterval, not one insert each", () => {
    const server = makeServer()
    return Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      server.reply((seen) => Effect.as(Deferred.await(gate), normalReply(seen)))
      return yield* Effect.gen(function*() {
        for (let n = 1; n <= 5; n++) yield* Observability.emit(event(n, { id: `g${n}` }))
        yield* Effect.repeatN(Effect.yieldNow(), 50)
        assert.deepStrictEqual(yield* spoolRows, [], "nothing is written before the commit interval")
        yield* TestClock.adjust("5 millis")
        const rows = yield* eventually(spoolRows, (written) => written.length === 5)
        assert.deepStrictEqual(rows.map((row) => row.id), ["g1", "g2", "g3", "g4", "g5"])
        assert.strictEqual((yield* Observability.stats).journaled, 5)
        yield* Deferred.succeed(gate, undefined)
        yield* Observability.flush
        yield* TestClock.adjust("50 millis") // deletes alone go within ten commit intervals
        assert.deepStrictEqual(yield* eventually(spoolRows, (left) => left.length === 0), [])
      }).pipe(
        Effect.ensuring(Deferred.succeed(gate, undefined)),
        Effect.provide(clientLayer(server, { concurrency: 1 }))
      )
    })
  })

  it.effect("an event delivered before its group commit is never written", () => {
    const server = makeServer()
    return Effect.gen(function*() {
      yield* Observability.send(event(1, { id: "quick" }))
      yield* TestClock.adjust("5 millis")
      yield* Effect.repeatN(Effect.yieldNow(), 50)
      assert.deepStrictEqual(yield* spoolRows, [])
      assert.strictEqual((yield* Observability.stats).journaled, 0)
    }).pipe(Effect.provide(clientLayer(server)))
  })

  it.effect("a group commit's journal rows on SQLite: each event's seq is its own row's, across chunks and after deleted rows", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const spool = yield* Spool.make({ leaseMillis: 30_000, epoch: 7 })
      yield* spool.open(1_000)
      const journal = (ordinals: ReadonlyArray<number>) =>
        ordinals.map((ordinal): Spool.Journaled => ({ body: JSON.stringify({ id: `j${ordinal}`, ordinal }), ordinal }))
      const backlog = (n: number): Spool.Item => ({ id: `b${n}`, body: "{}", reason: "down", epoch: 1, ordinal: n })
      // Rows before, some deleted since (AUTOINCREMENT does not hand their seqs out again).
      yield* spool.commit({ ...Spool.emptyOps(), spool: [backlog(1), backlog(2), backlog(3)] }, 1_000)
      yield* spool.commit({ ...Spool.emptyOps(), remove: [3] }, 1_000)
      // Ordinals with gaps (events delivered before their round are left out), over three chunks of 500.
      const ordinals = Array.from({ length: 1_200 }, (_, i) => 10 + 3 * i)
      const committed = yield* spool.commit({ ...Spool.emptyOps(), journal: journal(ordinals), spool: [backlog(4)] }, 1_000)
      const rows = yield* sql<{ seq: number; ordinal: number; id: string }>`SELECT seq, ordinal, id FROM observability_spool
        WHERE epoch = 7 ORDER BY seq`
      assert.strictEqual(rows.length, 1_200)
      assert.deepStrictEqual(rows.map((row) => [row.ordinal, row.id]), ordinals.map((ordinal) => [ordinal, `j${ordinal}`]))
      assert.deepStrictEqual(ordinals.map((ordinal) => committed.journaled.get(ordinal)), rows.map((row) => row.seq))
      assert.isTrue(rows[0]!.seq > 3)
      // Deleting by those seqs removes exactly the journal rows.
      yield* spool.commit({ ...Spool.emptyOps(), remove: [...committed.journaled.values()] }, 1_000)
      assert.deepStrictEqual((yield* sql<{ id: string }>`SELECT id FROM observability_spool ORDER BY seq`).map((row) => row.id), ["b1", "b2", "b4"])
    }).pipe(Effect.provide(Store.layer({ filename: tempDb() })), Effect.orDie))

  it.effect("rows held by a process of this host that is gone are redelivered at start; a live holder's rows are left alone", () => {
    const filename = tempDb()
    const server = makeServer()
    return Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* Spool.make({ leaseMillis: 30_000 }).pipe(Effect.flatMap((spool) => spool.open(now)))
        const body = (id: string) => JSON.stringify({ id, ...event(1), timestamp: 1 })
        // What a SIGKILL leaves: rows its group commits wrote, held until its lease ends.
        const gone = `${os.hostname()}/${deadPid()}/crashed`
        const alive = `${os.hostname()}/${process.pid}/other-client`
        yield* sql`INSERT INTO observability_spool (id, body, epoch, spooled_at, owner, lease_until)
          VALUES ('crashed-1', ${body("crashed-1")}, 1, 1, ${gone}, ${now + 60_000}),
                 ('busy-1', ${body("busy-1")}, 1, 1, ${alive}, ${now + 60_000})`
      }).pipe(Effect.provide(Store.layer({ filename })), Effect.orDie)

      yield* Effect.gen(function*() {
        const stats = yield* eventually(Observability.stats, (s) => s.redelivered === 1)
        assert.strictEqual(stats.redelivered, 1)
        const drained = yield* Observability.drainSpool
        assert.deepStrictEqual(drained, { redelivered: 0, deadLettered: 0, remaining: 0, held: 1 })
        assert.deepStrictEqual((yield* spoolRows).map((row) => row.id), ["busy-1"])
      }).pipe(Effect.provide(clientLayer(server, {}, {}, Store.layer({ filename }))))
      assert.deepStrictEqual(server.events().map((e) => e["id"]), ["crashed-1"])
    })
  })

  it.effect("spoolMax: past the bound the oldest rows are evicted, counted and logged; the newest stay", () => {
    const server = makeServer()
    server.reply(() => ({ transport: "connect ECONNREFUSED 127.0.0.1:4000" }))
    const logs = captureLogs()
    return Effect.gen(function*() {
      for (let n = 1; n <= 5; n++) {
        yield* Observability.emit(event(n, { id: `m${n}` }))
        yield* Observability.flush
      }
      const stats = yield* Observability.stats
      assert.deepStrictEqual({ spooled: stats.spooled, evicted: stats.evicted, spoolSize: stats.spoolSize }, { spooled: 5, evicted: 2, spoolSize: 3 })
      assert.deepStrictEqual((yield* spoolRows).map((row) => row.id), ["m3", "m4", "m5"])
      assert.include(
        logs.lines,
        "WARN observability: the spool is full (BIG3_EVENTS_SPOOL_MAX): evicted 1 of its oldest event(s) (first m1); 1 evicted so far"
      )
      const metric = yield* Metric.value(
        Metric.taggedWithLabels(Metrics.events, Metrics.labelsFor("observability", { kind: "evicted" }))
      )
      assert.isAtLeast(metric.count, 2)
    }).pipe(Effect.provide(clientLayer(server, { concurrency: 1, spoolMax: { rows: 3 } }, noRetry)), Effect.provide(logs.layer))
  })

  it.effect("spoolMax: evictions the last second held back are logged at shutdown, and the summary counts them", () => {
    const server = makeServer()
    server.reply(() => ({ transport: "connect ECONNREFUSED 127.0.0.1:4000" }))
    const logs = captureLogs()
    const evictionLines = () => logs.lines.filter((line) => line.includes("the spool is full"))
    return Effect.gen(function*() {
      yield* Effect.gen(function*() {
        for (let n = 1; n <= 5; n++) {
          yield* Observability.emit(event(n, { id: `m${n}` }))
          yield* Observability.flush
        }
        // m1 is logged; m2, within the same second, is held back.
        assert.strictEqual(evictionLines().length, 1)
      }).pipe(Effect.provide(clientLayer(server, { concurrency: 1, spoolMax: { rows: 3 } }, noRetry)))
      assert.deepStrictEqual(evictionLines().slice(1), [
        "WARN observability: the spool is full (BIG3_EVENTS_SPOOL_MAX): evicted 1 of its oldest event(s) (first m2); 2 evicted so far"
      ])
      assert.include(
        logs.lines,
        "INFO observability: stopped; 5 emitted, 0 delivered, 0 redelivered, 5 spooled, 0 dead-lettered, 0 rejected, 0 lost, " +
          "2 evicted from a full spool; 3 in the spool"
      )
    }).pipe(Effect.provide(logs.layer))
  })

  it.effect("a bad BIG3_EVENTS_SPOOL_MAX fails the layer with a ConfigError naming the key", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.withConfigProvider(Observability.config, ConfigProvider.fromMap(new Map([["BIG3_EVENTS_SPOOL_MAX", "lots"]])))
      )
      assert.isTrue(ConfigError.isConfigError(error))
      assert.include(String(error), `BIG3_EVENTS_SPOOL_MAX="lots" is not valid`)
      assert.notInclude(String(error), "BIG3_EVENTS_SPOOL_MAX.BIG3_EVENTS_SPOOL_MAX")
    }))

  it.effect("a bad BIG3_EVENTS_MODE fails the layer with a ConfigError naming the key", () => {
    const server = makeServer()
    const provider = ConfigProvider.fromMap(new Map([["BIG3_EVENTS_MODE", "fast"]]), { pathDelim: "_" })
    return Effect.gen(function*() {
      const exit = yield* Effect.exit(Layer.build(Observability.layer.pipe(Layer.provide(deps(server)))).pipe(Effect.scoped))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "BIG3_EVENTS_MODE")
    }).pipe(Effect.withConfigProvider(provider))
  })

  it.effect("an option out of range fails layerWith with a ConfigError naming it, not a defect", () => {
    const server = makeServer()
    const requirements = Layer.mergeAll(CircuitBreaker.layer, Layer.succeed(HttpClient.HttpClient, server.client), Store.layerMemory).pipe(
      Layer.provideMerge(ReliabilityConfig.layerDefault)
    )
    const build = (options: Observability.Options) =>
      Effect.flip(Layer.build(Observability.layerWith(options).pipe(Layer.provide(requirements))).pipe(Effect.scoped))
    return Effect.gen(function*() {
      const batchSize = yield* build({ url, batchSize: 0 })
      assert.isTrue(ConfigError.isConfigError(batchSize))
      assert.strictEqual(batchSize.message, "batchSize (BIG3_EVENTS_BATCH_SIZE) must be a whole number from 1 to 100000, got 0")
      const badUrl = yield* build({ url: "ftp://example.test/events" })
      assert.strictEqual(
        badUrl.message,
        `url (OBSERVABILITY_SERVER_URL) must be an http(s) URL such as http://localhost:4000/events, got "ftp://example.test/events"`
      )
      const never = yield* build({ url, redeliveryInterval: Duration.infinity })
      assert.strictEqual(
        never.message,
        `redeliveryInterval (BIG3_EVENTS_REDELIVERY_INTERVAL) must be a duration from zero to 24.8 days ` +
          `(the longest wait a timer can take), got Infinity`
      )
      // A sleep that long on Effect's live clock never ends.
      const linger = yield* build({ url, linger: "30 days" })
      assert.include(linger.message, "linger (BIG3_EVENTS_LINGER) must be a duration from zero to 24.8 days")
    })
  })

  it.effect("event settings: a duration past 24.8 days is refused, and each error names its variable once", () => {
    const server = makeServer()
    const requirements = Layer.mergeAll(CircuitBreaker.layer, Layer.succeed(HttpClient.HttpClient, server.client), Store.layerMemory).pipe(
      Layer.provideMerge(ReliabilityConfig.layerDefault)
    )
    const errorFor = (key: string, value: string) =>
      Effect.withConfigProvider(Observability.config, ConfigProvider.fromMap(new Map([[key, value]]))).pipe(
        Effect.flatMap((options) => Layer.build(Observability.layerWith({ ...options, url })).pipe(Effect.scoped)),
        Effect.provide(requirements),
        Effect.flip,
        Effect.map(String)
      )
    return Effect.gen(function*() {
      const long = yield* errorFor("BIG3_EVENTS_REDELIVERY_INTERVAL", "100 days")
      assert.include(long, `BIG3_EVENTS_REDELIVERY_INTERVAL="100 days" is not valid: expected a duration of 24.8 days at most`)
      assert.notInclude(long, "BIG3_EVENTS_REDELIVERY_INTERVAL.BIG3_EVENTS_REDELIVERY_INTERVAL")
      assert.notInclude(yield* errorFor("BIG3_EVENTS_LEASE", "soon"), "BIG3_EVENTS_LEASE.BIG3_EVENTS_LEASE")
      assert.include(yield* errorFor("BIG3_EVENTS_LEASE", "0"), "lease (BIG3_EVENTS_LEASE) must be at least 1 second, got 0")
    })
  })

  it.effect("Metrics.events counts by kind", () => {
    const server = makeServer()
    const delivered = Metric.taggedWithLabels(Metrics.events, Metrics.labelsFor("observability", { kind: "delivered" }))
    return Effect.gen(function*() {
      const before = (yield* Metric.value(delivered)).count
      yield* Observability.send(event(1))
      yield* Observability.send(event(2))
      assert.strictEqual((yield* Metric.value(delivered)).count - before, 2)
    }).pipe(Effect.provide(clientLayer(server)))
  })

  describe("Store", () => {
    it.effect("layerConfig opens big3.db under BIG3_STATE_DIR, creating the directory", () => {
      const dir = path.join(path.dirname(tempDb()), "state", "nested")
      const provider = ConfigProvider.fromMap(new Map([["BIG3_STATE_DIR", dir]]), { pathDelim: "_" })
      return Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* Store.ensureSchema("test", ["CREATE TABLE IF NOT EXISTS t (x INTEGER)"])
        yield* Store.ensureSchema("test", ["CREATE TABLE IF NOT EXISTS t (x INTEGER)"])
        yield* sql`INSERT INTO t (x) VALUES (1)`
        assert.isTrue(fs.existsSync(path.join(dir, "big3.db")))
      }).pipe(Effect.provide(Store.layerConfig), Effect.withConfigProvider(provider), Effect.orDie)
    })

    it.effect("a store that cannot be opened fails the layer with an SqlError naming the file", () =>
      Effect.gen(function*() {
        const blocker = tempDb()
        fs.writeFileSync(blocker, "not a directory")
        const filename = path.join(blocker, "big3.db")
        const exit = yield* Effect.exit(Layer.build(Store.layer({ filename })).pipe(Effect.scoped))
        assert.isTrue(Exit.isFailure(exit))
        assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "SqlError")
        assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), filename)
      }))
  })
})
