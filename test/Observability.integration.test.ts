/**
 * The real observability client (undici transport, SQLite spool in a temp file) against the
 * Sandbox over 127.0.0.1, on the live clock with small retry and breaker delays.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/TestClock"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Spool from "../src/observability/Spool.js"
import * as Observability from "../src/Observability.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Sandbox from "../src/Sandbox.js"
import * as Store from "../src/Store.js"
import { isRunning } from "./support/processes.js"
import { eventsSink } from "./support/sink.js"
import { waitFor } from "./support/waitFor.js"

const tempDirs: Array<string> = []
const tempDb = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "big3-observability-it-"))
  tempDirs.push(dir)
  return path.join(dir, "big3.db")
}
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
})

/**
 * Small retry delays and a short breaker, so that outages and recoveries play out quickly; a
 * generous per-request timeout, because what these tests wait on is events, not the clock (a
 * loaded machine must not turn slow answers into spooled events the test did not expect).
 */
const fast: ReliabilityConfig.Overrides = {
  policies: { observability: { initialDelay: "20 millis", maxDelay: "100 millis" } },
  breakers: { observability: { openDuration: "200 millis" } },
  timeouts: { observability_event: "10 seconds", observability_batch: "10 seconds", graceful_shutdown: "10 seconds" }
}

const clientLayer = (
  sandbox: Pick<Sandbox.Service, "url">,
  filename: string,
  options: Observability.Options = {},
  overrides: ReliabilityConfig.Overrides = fast
) =>
  Observability.layerWith({ url: `${sandbox.url}/events`, redeliveryInterval: "50 millis", ...options }).pipe(
    Layer.provideMerge(
      Layer.mergeAll(CircuitBreaker.layer, NodeHttpClient.layerUndici, Store.layer({ filename })).pipe(
        Layer.provideMerge(ReliabilityConfig.layerWith(overrides))
      )
    ),
    Layer.orDie
  )

const event = (n: number, extra: Partial<Observability.EventInput> = {}): Observability.EventInput => ({
  source_app: "integration",
  session_id: `session-${n % 7}`,
  hook_event_type: n % 2 === 0 ? "PreToolUse" : "PostToolUse",
  payload: { n, tool: "Bash" },
  ...extra
})

/** Emits `from..to` in slices, yielding between them as a producer with real work would. */
const emitRange = (from: number, to: number) =>
  Effect.gen(function*() {
    for (let n = from; n <= to; n++) {
      yield* Observability.emit(event(n, { id: `ev-${n}` }))
      if (n % 250 === 0) yield* Effect.sleep("1 millis")
    }
  })

const quiet = Logger.withMinimumLogLevel(LogLevel.None)

const spoolCount = (filename: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`SELECT COUNT(*) AS n FROM observability_spool`).pipe(
    Effect.map((rows) => rows[0]?.n ?? -1),
    Effect.provide(Store.layer({ filename })),
    Effect.orDie
  )

describe("Observability over loopback", () => {
  it.live("10,000 events with the server stopped for a stretch: every event stored once, none lost", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ recordRequests: false })
      const filename = tempDb()
      const stats = yield* Effect.gen(function*() {
        yield* emitRange(1, 4_000)
        yield* sandbox.stop
        yield* emitRange(4_001, 7_000)
        // The outage lasts until the client has noticed it: events went to the spool.
        yield* waitFor(Observability.stats, (s) => s.spooled > 0)
        yield* sandbox.start
        yield* emitRange(7_001, 10_000)
        yield* Observability.flush
        return yield* waitFor(Observability.stats, (s) => s.spoolSize === 0 && s.delivered + s.redelivered >= 10_000)
      }).pipe(Effect.provide(clientLayer(sandbox, filename)))
      const stored = yield* sandbox.eventStats
      assert.strictEqual(stats.emitted, 10_000)
      assert.strictEqual(stats.dropped, 0)
      assert.strictEqual(stats.deadLettered, 0)
      assert.isAbove(stats.spooled, 0, "the outage sent events to the spool")
      assert.strictEqual(stats.delivered + stats.redelivered, 10_000)
      assert.strictEqual(stats.spoolSize, 0)
      // Stored once each: re-sends of events whose answer was cut by the outage were deduplicated.
      assert.strictEqual(stored.stored, 10_000)
      assert.strictEqual(stored.distinctIds, 10_000)
      assert.strictEqual(yield* spoolCount(filename), 0)
    }).pipe(Effect.scoped, quiet), 60_000)

  it.live("a seeded mix of 503s, 429s, resets, garbled answers and latency: every event stored once", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({
        recordRequests: false,
        plans: {
          events: {
            seed: 42,
            rates: { rateLimited: 0.03, serverError: 0.05, latency: 0.05, reset: 0.03, malformed: 0.03 },
            latency: "20 millis",
            retryAfter: "50 millis"
          }
        }
      })
      const stats = yield* Effect.gen(function*() {
        yield* emitRange(1, 1_500)
        yield* Observability.flush
        return yield* waitFor(Observability.stats, (s) => s.spoolSize === 0 && s.delivered + s.redelivered >= 1_500)
      }).pipe(Effect.provide(clientLayer(sandbox, tempDb())))
      const stored = yield* sandbox.eventStats
      assert.isAbove(stats.retried, 0)
      assert.strictEqual(stats.dropped + stats.deadLettered, 0)
      assert.strictEqual(stats.delivered + stats.redelivered, 1_500)
      assert.strictEqual(stored.stored, 1_500)
      assert.strictEqual(stored.distinctIds, 1_500)
    }).pipe(Effect.scoped, quiet), 60_000)

  it.live("batch mode against the public server: the misconfiguration is detected, nothing counts as delivered unstored", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ eventsMode: "public" })
      const stats = yield* Effect.gen(function*() {
        for (let n = 1; n <= 200; n++) yield* Observability.emit(event(n))
        yield* Observability.flush
        return yield* Observability.stats
      }).pipe(Effect.provide(clientLayer(sandbox, tempDb(), { mode: "batch" })))
      const stored = yield* sandbox.eventStats
      const batchPosts = (yield* sandbox.requests).filter((r) => r.path === "/events/batch")
      assert.strictEqual(stats.mode, "single")
      assert.isAbove(batchPosts.length, 0)
      assert.isTrue(batchPosts.every((r) => r.outcome === 200))
      assert.strictEqual(stats.delivered, 200)
      assert.strictEqual(stored.stored, 200, "every event counted as delivered is stored")
    }).pipe(Effect.scoped, quiet), 60_000)

  it.live("batch mode against the extended server: batches are acknowledged and stored once", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ recordRequests: false })
      const stats = yield* Effect.gen(function*() {
        yield* emitRange(1, 5_000)
        yield* Observability.flush
        return yield* Observability.stats
      }).pipe(Effect.provide(clientLayer(sandbox, tempDb(), { mode: "batch" })))
      const stored = yield* sandbox.eventStats
      assert.strictEqual(stats.mode, "batch")
      assert.strictEqual(stats.delivered, 5_000)
      assert.strictEqual(stored.stored, 5_000)
      assert.strictEqual(stored.distinctIds, 5_000)
    }).pipe(Effect.scoped, quiet), 60_000)

  it.live("a 400 answer is dead-lettered after one try", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ plans: { events: [400] } })
      const { letters, stats } = yield* Effect.gen(function*() {
        yield* Observability.send(event(1, { id: "refused" }))
        return { stats: yield* Observability.stats, letters: yield* Observability.deadLetters() }
      }).pipe(Effect.provide(clientLayer(sandbox, tempDb())))
      const requests = yield* sandbox.requestsFor("events")
      assert.strictEqual(requests.length, 1)
      assert.strictEqual(requests[0]?.outcome, 400)
      assert.strictEqual(stats.deadLettered, 1)
      assert.strictEqual(stats.retried, 0)
      assert.strictEqual(letters[0]?.id, "refused")
      assert.strictEqual(letters[0]?.status, 400)
      assert.include(letters[0]?.reason, "Invalid request")
    }).pipe(Effect.scoped, quiet), 60_000)

  // The public server refuses `!source_app || !session_id || !hook_event_type || !payload` with
  // 400 (disler/claude-code-hooks-multi-agent-observability, apps/server/src/index.ts): such an
  // event is refused at emit, never sent, never dead-lettered; model_name goes through.
  it.live("an event the public server would refuse is rejected at emit; model_name reaches the server", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ eventsMode: "public" })
      const stats = yield* Effect.gen(function*() {
        yield* Observability.send(event(1, { session_id: "" }))
        yield* Observability.send(event(2, { hook_event_type: "" }))
        yield* Observability.send(event(3, { model_name: "claude-sonnet-5-5" }))
        return yield* Observability.stats
      }).pipe(Effect.provide(clientLayer(sandbox, tempDb())))
      assert.deepStrictEqual([stats.rejected, stats.emitted, stats.delivered, stats.deadLettered], [2, 1, 1, 0])
      assert.deepStrictEqual((yield* sandbox.requestsFor("events")).map((request) => request.outcome), [200])
      assert.deepStrictEqual((yield* sandbox.events).map((stored) => stored.model_name), ["claude-sonnet-5-5"])
    }).pipe(Effect.scoped, quiet), 60_000)

  it.live("closing the client flushes what is queued", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ recordRequests: false })
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(clientLayer(sandbox, tempDb()), scope)
      const client = Context.get(context, Observability.Observability)
      for (let n = 1; n <= 2_000; n++) yield* client.emit(event(n))
      const queued = (yield* client.stats).queued
      yield* Scope.close(scope, Exit.void)
      assert.isAbove(queued, 0, "events were still queued when the scope closed")
      assert.strictEqual((yield* sandbox.eventStats).stored, 2_000)
    }).pipe(Effect.scoped, quiet), 60_000)

  it.scoped("a hanging server holds shutdown no longer than graceful_shutdown (TestClock); the rest is spooled", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ plans: { events: { seed: 7, rates: { hang: 1 } } } })
      const filename = tempDb()
      const overrides: ReliabilityConfig.Overrides = {
        ...fast,
        timeouts: { observability_event: "30 seconds", graceful_shutdown: "500 millis" }
      }
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(clientLayer(sandbox, filename, {}, overrides), scope)
      const client = Context.get(context, Observability.Observability)
      for (let n = 1; n <= 20; n++) yield* client.emit(event(n))
      // Real requests over loopback: wait until the server holds all twenty.
      for (let i = 0; (yield* sandbox.requestsFor("events")).length < 20; i++) {
        yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
      }
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      // The flush waits (it keeps a fifth of graceful_shutdown for the last write of the spool)…
      yield* TestClock.adjust("399 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(closing)), "still flushing")
      // …and the whole shutdown is over by graceful_shutdown.
      yield* TestClock.adjust("101 millis")
      yield* Fiber.join(closing)
      assert.strictEqual(yield* spoolCount(filename), 20)
    }).pipe(quiet), 10_000)

  it.live("a restart of the client redelivers the spool", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const filename = tempDb()
      yield* sandbox.stop
      const first = yield* Effect.gen(function*() {
        for (let n = 1; n <= 100; n++) yield* Observability.emit(event(n, { id: `restart-${n}` }))
        yield* Observability.flush
        return yield* Observability.stats
      }).pipe(Effect.provide(clientLayer(sandbox, filename)))
      assert.strictEqual(first.spooled, 100)
      assert.strictEqual(yield* spoolCount(filename), 100)

      // Deliveries failed in whatever order 64 concurrent requests failed; one at a time, the
      // redelivery shows the spool's order: emit order.
      yield* sandbox.start
      const second = yield* waitFor(Observability.stats, (s) => s.spoolSize === 0 && s.redelivered === 100).pipe(
        Effect.provide(clientLayer(sandbox, filename, { concurrency: 1 }))
      )
      assert.strictEqual(second.redelivered, 100)
      const stored = yield* sandbox.eventStats
      assert.strictEqual(stored.stored, 100)
      assert.strictEqual(stored.distinctIds, 100)
      assert.deepStrictEqual(
        (yield* sandbox.events).map((e) => e.clientId),
        Array.from({ length: 100 }, (_, i) => `restart-${i + 1}`)
      )
      assert.strictEqual(yield* spoolCount(filename), 0)
    }).pipe(Effect.scoped, quiet), 60_000)
})

describe("one spool, two drainers", () => {
  it.live("two `big3 events flush` processes draining one spool at once send each event once: rows are claimed before they are sent", () =>
    Effect.gen(function*() {
      const filename = tempDb()
      // A bare server (not the sandbox): counts the POSTs of each id, answers after 2 ms.
      const server = yield* eventsSink({ delayMillis: 2 })
      const posts = server.received
      // 2,000 events left in the spool by an earlier run.
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* Effect.flatMap(Spool.make({ leaseMillis: 30_000 }), (spool) => spool.open(Date.now()))
        for (let chunk = 0; chunk < 2_000; chunk += 500) {
          yield* sql`INSERT INTO observability_spool ${
            sql.insert(Array.from({ length: 500 }, (_, i) => {
              const n = chunk + i + 1
              return {
                id: `spooled-${n}`,
                body: JSON.stringify({ id: `spooled-${n}`, ...event(n), timestamp: n }),
                epoch: 1,
                ordinal: n,
                spooled_at: 1
              }
            }))
          }`
        }
      }).pipe(Effect.provide(Store.layer({ filename })), Effect.scoped, Effect.orDie)

      // Two `big3 events flush` processes at once, as next to a running app.
      const flush = Effect.async<{ code: number | null; pid: number; stdout: string }>((resume) => {
        const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "events", "flush"], {
          env: {
            ...process.env,
            BIG3_STATE_DIR: path.dirname(filename),
            OBSERVABILITY_SERVER_URL: server.url,
            BIG3_EVENTS_SPOOL_PAGE_SIZE: "100"
          },
          stdio: ["ignore", "pipe", "ignore"]
        })
        let stdout = ""
        child.stdout.on("data", (chunk: Buffer) => {
          stdout += chunk.toString("utf8")
        })
        child.once("exit", (code) => resume(Effect.succeed({ code, pid: child.pid ?? 0, stdout })))
        return Effect.sync(() => child.kill("SIGKILL"))
      })
      const runs = yield* Effect.all([flush, flush], { concurrency: 2 })
      for (const run of runs) assert.isFalse(isRunning(run.pid), "the flush process is gone")
      // One of them may find the other holding the last rows: it says so and exits 1.
      assert.isTrue(runs.some((run) => run.code === 0), JSON.stringify(runs))
      assert.strictEqual(posts.size, 2_000)
      const twice = [...posts].filter(([, n]) => n > 1).map(([id]) => id)
      assert.deepStrictEqual(twice, [], "no event was sent twice")
      assert.strictEqual(yield* spoolCount(filename), 0)
    }).pipe(Effect.scoped, quiet), 120_000)
})
