/**
 * Issue 11's storage cases on a real filesystem, not a fake spool: a full disk (a 600 KB tmpfs)
 * under a client whose server is down, and a store SQLite cannot write (the immutable attribute:
 * root ignores file modes). They need root (`mount`, `chattr`): without it they fail, saying so.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as path from "node:path"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Observability from "../src/Observability.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Store from "../src/Store.js"
import { captureLogs } from "./support/capture.js"
import { big3 } from "./support/cli.js"
import { freePort } from "./support/loopback.js"
import { immutable, requirePrivileges, resizeTmpfs, tmpfs } from "./support/privileged.js"
import { eventsSink } from "./support/sink.js"
import { tempDir } from "./support/tempDir.js"
import { waitFor } from "./support/waitFor.js"

/**
 * Short retry delays and breaker, so that the outage and the recovery play out in seconds; a
 * generous per-request timeout, since what the tests wait on is events, not the clock.
 */
const fast: ReliabilityConfig.Overrides = {
  policies: { observability: { initialDelay: "20 millis", maxDelay: "100 millis" } },
  breakers: { observability: { openDuration: "500 millis" } },
  timeouts: { observability_event: "10 seconds", observability_batch: "10 seconds", graceful_shutdown: "10 seconds" }
}

const clientLayer = (url: string, filename: string, options: Observability.Options) =>
  Observability.layerWith({ url, redeliveryInterval: "100 millis", ...options }).pipe(
    Layer.provideMerge(
      Layer.mergeAll(CircuitBreaker.layer, NodeHttpClient.layerUndici, Store.layer({ filename })).pipe(
        Layer.provideMerge(ReliabilityConfig.layerWith(fast))
      )
    ),
    Layer.orDie
  )

/** The figure: 11,600 events of ≈ 500 bytes (≈ 6 MB) for a 600 KB disk. */
const padding = "x".repeat(300)
const emitEvents = (count: number) =>
  Effect.gen(function*() {
    for (let n = 1; n <= count; n++) {
      yield* Observability.emit({ source_app: "disk", session_id: "s", hook_event_type: "PreToolUse", payload: { n, padding }, id: `ev-${n}` })
    }
  })

/** The spool's rows, read with a connection of its own. */
const spoolIds = (filename: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string }>`SELECT id FROM observability_spool ORDER BY seq`).pipe(
    Effect.map((rows) => rows.map((row) => row.id)),
    Effect.provide(Store.layer({ filename })),
    Effect.orDie
  )

const full = "database or disk is full (SQLITE_FULL)"
const storageLine = /^ERROR observability: the spool cannot be written \(database or disk is full \(SQLITE_FULL\)\); \d+ failed write\(s\) in the last second\. \d+ event\(s\) wait in memory for the disk, \d+ lost so far$/
const lostLine = /^ERROR observability: LOST (\d+) event\(s\): /

/** The events the `LOST n event(s)` lines add up to. */
const loggedLost = (lines: ReadonlyArray<string>) =>
  lines.reduce((sum, line) => sum + Number(lostLine.exec(line)?.[1] ?? 0), 0)

/** A 600 KB tmpfs for the store, a port where no server listens yet, and the client's log. */
const fullDisk = Effect.gen(function*() {
  yield* requirePrivileges
  const dir = yield* tmpfs("600k")
  return { dir, filename: path.join(dir, "big3.db"), port: yield* freePort, logs: captureLogs() }
})

describe("Observability on a full disk (a 600 KB tmpfs)", () => {
  it.scopedLive("server down: what the disk cannot take waits in memory up to queueCapacity, the rest is counted and logged as lost, with SQLite's reason, in a handful of lines; with the server back, what memory held is delivered from there while the disk is still full, and with room the rest, each once", () =>
    Effect.gen(function*() {
      const { dir, filename, logs, port } = yield* fullDisk
      const emitted = 11_600
      const queueCapacity = 5_000

      const outcome = yield* Effect.gen(function*() {
        const startedAt = yield* Clock.currentTimeMillis
        yield* emitEvents(emitted)
        yield* Observability.flush
        const down = yield* Observability.stats
        const seconds = ((yield* Clock.currentTimeMillis) - startedAt) / 1000
        const linesWhileFull = [...logs.lines]

        // The server up where the client has been knocking, the disk still full: what memory held
        // is delivered from there.
        const sink = yield* eventsSink({ port })
        const back = yield* waitFor(Observability.stats, (stats) => stats.redelivered >= queueCapacity)
        // Then room on the disk: the rows written before it filled go too.
        yield* resizeTmpfs(dir, "64m")
        const end = yield* waitFor(
          Observability.stats,
          (stats) => stats.spoolSize === 0 && stats.delivered + stats.redelivered + stats.dropped === stats.emitted
        )
        const total = ((yield* Clock.currentTimeMillis) - startedAt) / 1000
        return { down, back, end, seconds, total, linesWhileFull, received: new Map(sink.received) }
      }).pipe(Effect.provide(clientLayer(`http://127.0.0.1:${port}/events`, filename, { queueCapacity })), Effect.provide(logs.layer))

      const { back, down, end, linesWhileFull, received, seconds, total } = outcome
      console.log(
        `full disk: ${JSON.stringify(down)} in ${seconds.toFixed(1)} s; ${linesWhileFull.length} log lines, ` +
          `${linesWhileFull.join("\n").length} bytes:\n${linesWhileFull.join("\n")}\nthen ${JSON.stringify(end)} ` +
          `after ${total.toFixed(1)} s; ${logs.lines.length} lines, ${logs.lines.join("\n").length} bytes in all`
      )
      // While the disk is full: nothing delivered, some rows written before it filled (held while
      // in memory), memory filled up to queueCapacity, and only what did not fit in it lost.
      assert.strictEqual(down.emitted, emitted)
      assert.deepStrictEqual({ delivered: down.delivered, queued: down.queued, inFlight: down.inFlight }, { delivered: 0, queued: 0, inFlight: 0 })
      assert.isAbove(down.journaled, 0)
      assert.isAbove(down.storageErrors, 0)
      assert.strictEqual(down.dropped, emitted - down.journaled - queueCapacity)
      // SQLite's reason, in lines that come once a second at most, not once per event.
      assert.isTrue(linesWhileFull.some((line) => storageLine.test(line)), linesWhileFull.join("\n"))
      for (const line of logs.lines) {
        assert.notInclude(line, "defect")
        if (line.includes("SQLITE")) assert.include(line, full)
      }
      // Storage and loss lines: one of each a second at most. Everything else (the breaker's
      // transitions, redelivery) comes a few times a second at most: a handful of lines, not
      // one per event (main printed 2,574 lines, 167 KB, here).
      const storageLines = linesWhileFull.filter((line) => line.includes("the spool cannot be written"))
      assert.isAtMost(storageLines.length, 2 * Math.ceil(seconds) + 2, storageLines.join("\n"))
      const allowed = (duration: number) => 6 * Math.ceil(duration) + 10
      assert.isAtMost(linesWhileFull.length, allowed(seconds), linesWhileFull.join("\n"))
      assert.isAtMost(logs.lines.length, allowed(total), logs.lines.join("\n"))
      assert.isAtMost(logs.lines.join("\n").length, 300 * allowed(total))

      // The server back first: the events memory held were delivered from there, nothing more lost.
      assert.deepStrictEqual({ redelivered: back.redelivered, dropped: back.dropped }, { redelivered: queueCapacity, dropped: down.dropped })
      // Every loss counted is logged (the tail of the last second too), and every event not lost
      // reached the server exactly once: from memory, or from the rows written before the disk
      // filled (released to the spool once there was room).
      assert.strictEqual(end.dropped, down.dropped)
      assert.strictEqual(loggedLost(logs.lines), end.dropped)
      assert.strictEqual(end.spooled, down.journaled)
      assert.strictEqual(end.redelivered, emitted - end.dropped)
      assert.strictEqual(received.size, emitted - end.dropped)
      assert.deepStrictEqual([...new Set(received.values())], [1])
      assert.deepStrictEqual(yield* spoolIds(filename), [])
    }))

  it.scopedLive("closed while the disk is still full: what memory held is counted and logged as lost with SQLite's reason, what was written stays in the spool, and the two add up to what was emitted", () =>
    Effect.gen(function*() {
      const { dir, filename, logs, port } = yield* fullDisk
      const emitted = 3_000

      const client = yield* Effect.gen(function*() {
        yield* emitEvents(emitted)
        yield* Observability.flush
        return yield* Observability.Observability
      }).pipe(Effect.provide(clientLayer(`http://127.0.0.1:${port}/events`, filename, {})), Effect.provide(logs.layer))
      const stats = yield* client.stats
      console.log(`closed on a full disk: ${JSON.stringify(stats)}; ${logs.lines.length} log lines`)

      assert.strictEqual(stats.emitted, emitted)
      assert.strictEqual(stats.delivered, 0)
      assert.isAbove(stats.dropped, 0)
      assert.strictEqual(loggedLost(logs.lines), stats.dropped)
      assert.isTrue(
        logs.lines.some((line) =>
          line.startsWith(`ERROR observability: LOST ${stats.dropped} event(s): the spool cannot be written at shutdown (${full}); ids ev-`)
        ),
        logs.lines.join("\n")
      )
      assert.include(logs.lines, `INFO observability: stopped; ${emitted} emitted, 0 delivered, 0 redelivered, 0 spooled, 0 dead-lettered, 0 rejected, ${stats.dropped} lost; 0 in the spool`)
      // The rows written before the disk filled are still there, for the next start.
      yield* resizeTmpfs(dir, "64m")
      const rows = yield* spoolIds(filename)
      assert.strictEqual(rows.length, stats.journaled)
      assert.strictEqual(rows.length + stats.dropped, emitted)
    }))
})

describe("Observability on a store SQLite cannot write (chattr +i)", () => {
  /** A state directory whose spool holds `rows` events, left as `big3 events send` leaves it (server down). */
  const spoolWith = (rows: number) =>
    Effect.gen(function*() {
      const stateDir = yield* tempDir("big3-immutable-")
      const down = `http://127.0.0.1:${yield* freePort}/events`
      const env = { BIG3_STATE_DIR: stateDir, OBSERVABILITY_SERVER_URL: down, BIG3_TIMEOUT_GRACEFUL_SHUTDOWN: "2" }
      for (let n = 0; n < rows; n++) {
        const sent = yield* big3(["events", "send", "--type", "Stop"], env)
        assert.strictEqual(sent.code, 1, sent.stderr)
        assert.include(sent.stderr, "it was spooled")
      }
      const filename = path.join(stateDir, "big3.db")
      const ids = yield* spoolIds(filename)
      assert.strictEqual(ids.length, rows)
      // Closed cleanly: SQLite removed its -wal and -shm files.
      assert.deepStrictEqual(fs.readdirSync(stateDir), ["big3.db"])
      return { stateDir, filename, ids, env }
    })

  it.scopedLive("an immutable database file: events flush and events send exit 1 with SQLite's reason in one line, the event send could not deliver is counted as lost, and the spool's rows are all still there", () =>
    Effect.gen(function*() {
      yield* requirePrivileges
      const { env, filename, ids, stateDir } = yield* spoolWith(3)

      const refused = yield* Effect.scoped(Effect.gen(function*() {
        yield* immutable(filename)
        const sink = yield* eventsSink()
        const flushed = yield* big3(["events", "flush"], { ...env, OBSERVABILITY_SERVER_URL: sink.url })
        const sent = yield* big3(["events", "send", "--type", "Stop"], env)
        return { flushed, sent, received: sink.bodies.length }
      }))
      const { flushed, received, sent } = refused
      console.log(`immutable file: flush → ${flushed.code} ${flushed.stderr}\nsend → ${sent.code} ${sent.stderr}\n${sent.logs.join("\n")}`)

      // SQLite opens the file read-only: reading works, the first write (claiming rows) fails.
      assert.strictEqual(flushed.code, 1)
      assert.strictEqual(flushed.stdout, "")
      assert.strictEqual(
        flushed.stderr,
        "big3 events flush: SqlError: cannot read the spool: attempt to write a readonly database (SQLITE_READONLY)"
      )
      assert.strictEqual(received, 0)

      assert.strictEqual(sent.code, 1)
      assert.strictEqual(sent.stdout, "")
      const id = /^big3 events send: could not deliver event (\S+) \(Stop\) to http:\/\/127\.0\.0\.1:\d+\/events, and the event is lost: cannot write the spool: attempt to write a readonly database \(SQLITE_READONLY\)$/
        .exec(sent.stderr)?.[1]
      assert.isDefined(id, sent.stderr)
      assert.include(
        sent.logs,
        `ERROR observability: LOST 1 event(s): the spool cannot be written at shutdown (attempt to write a readonly database (SQLITE_READONLY)); ids ${id}`
      )
      assert.include(sent.logs, "INFO observability: stopped; 1 emitted, 0 delivered, 0 redelivered, 0 spooled, 0 dead-lettered, 0 rejected, 1 lost; 3 in the spool")

      // The attribute is off again: the rows are the same ones.
      assert.deepStrictEqual(yield* spoolIds(filename), ids)
      assert.isTrue(fs.existsSync(stateDir))
    }))

  it.scopedLive("an immutable state directory (SQLite cannot create its -wal and -shm files): events flush exits 1 with SQLite's reason, and the spool's rows are all still there", () =>
    Effect.gen(function*() {
      yield* requirePrivileges
      const { env, filename, ids, stateDir } = yield* spoolWith(1)

      const flushed = yield* Effect.scoped(Effect.gen(function*() {
        yield* immutable(stateDir)
        const sink = yield* eventsSink()
        return yield* big3(["events", "flush"], { ...env, OBSERVABILITY_SERVER_URL: sink.url })
      }))
      console.log(`immutable directory: flush → ${flushed.code} ${flushed.stderr}`)

      assert.strictEqual(flushed.code, 1)
      assert.strictEqual(flushed.stdout, "")
      assert.strictEqual(flushed.stderr, `big3 events flush: SqlError: cannot open the store ${filename}: unable to open database file (SQLITE_CANTOPEN)`)
      assert.deepStrictEqual(yield* spoolIds(filename), ids)
    }))
})
