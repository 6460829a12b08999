/**
 * The event spool on PostgreSQL (`BIG3_DATABASE_URL`): a real server over 127.0.0.1, a fresh
 * database per test (support/postgres.ts). The spool itself with two clients of separate pools
 * on one database (as two processes would be), and the case with real child processes:
 * events spooled by one process whose server is down are redelivered by others on the same
 * database once it is up, each exactly once.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { type ChildProcess, fork } from "node:child_process"
import * as path from "node:path"
import * as Spool from "../src/observability/Spool.js"
import * as Store from "../src/Store.js"
import { freePort } from "./support/loopback.js"
import * as Postgres from "./support/postgres.js"
import { isRunning } from "./support/processes.js"
import { eventsSink } from "./support/sink.js"
import { tempDir } from "./support/tempDir.js"

class PgServer extends Context.Tag("test/PgServer")<PgServer, Postgres.Server>() {}

/** A fresh database on the file's server, and a pool on it (open for the scope). */
const pool = (url: string) => Effect.map(Layer.build(Store.layerPostgres(Redacted.make(url))), Context.get(SqlClient.SqlClient))

const freshDatabase = Effect.flatMap(PgServer, Postgres.database)

const lease = 30_000

/** A spool client with its own pool, as a separate process has. */
const spoolOn = (url: string, owner: string) =>
  Effect.flatMap(pool(url), (sql) => Effect.provideService(Spool.make({ leaseMillis: lease, owner }), SqlClient.SqlClient, sql))

const item = (n: number, epoch: number): Spool.Item => ({
  id: `event-${n}`,
  body: JSON.stringify({ id: `event-${n}`, n }),
  reason: "server down",
  epoch,
  ordinal: n
})

const range = (from: number, to: number): Array<number> => Array.from({ length: to - from + 1 }, (_, i) => from + i)

let serverPid: number | undefined

layer(Layer.scoped(PgServer, Effect.tap(Postgres.server, (server) => Effect.sync(() => (serverPid = server.pid)))), {
  excludeTestServices: true,
  timeout: "120 seconds"
})("the event spool on PostgreSQL", (it) => {
  it.scoped("its tables take 64-bit times (BIGSERIAL, BIGINT) and every number reads back as a number", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase
      const spool = yield* spoolOn(url, "host-a/1/a")
      const now = Date.now()
      const opened = yield* spool.open(now)
      assert.deepStrictEqual(opened, { backlog: 0, deadLetters: 0, reclaimed: 0, held: 0, rows: 0, bytes: 0 })
      const sql = yield* pool(url)
      const columns = yield* sql<{ name: string; type: string }>`SELECT column_name AS name, data_type AS type
        FROM information_schema.columns WHERE table_name = 'observability_spool' ORDER BY ordinal_position`
      assert.deepStrictEqual(columns.map((column) => [column.name, column.type]), [
        ["seq", "bigint"],
        ["id", "text"],
        ["body", "text"],
        ["epoch", "bigint"],
        ["ordinal", "bigint"],
        ["spooled_at", "bigint"],
        ["owner", "text"],
        ["lease_until", "bigint"],
        ["attempts", "integer"],
        ["last_error", "text"]
      ])
      const version = yield* sql<{ version: number }>`SELECT version FROM big3_schema WHERE component = 'observability'`
      assert.deepStrictEqual(version.map((row) => row.version), [Spool.schemaVersion])
      // Times in ms since the epoch overflow a 32-bit INTEGER: they round-trip exactly.
      yield* spool.commit({ ...Spool.emptyOps(), spool: [item(1, now)] }, now)
      const claimed = yield* spool.claim(10, now)
      assert.deepStrictEqual(claimed, [{ seq: 1, id: "event-1", body: JSON.stringify({ id: "event-1", n: 1 }), epoch: now, ordinal: 1 }])
      assert.deepStrictEqual(yield* spool.counts(now), { backlog: 0, held: 1 })
      // A second open of the same tables (another process starting) finds the version and counts them.
      const again = yield* (yield* spoolOn(url, "host-b/2/b")).open(now)
      assert.deepStrictEqual(again, { backlog: 0, deadLetters: 0, reclaimed: 0, held: 1, rows: 1, bytes: claimed[0]!.body.length })
    }))

  it.scoped("four processes opening the spool of an empty database at the same moment all succeed", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase
      const spools = yield* Effect.all(range(1, 4).map((n) => spoolOn(url, `host-${n}/${n}/x`)))
      const now = Date.now()
      const opened = yield* Effect.all(spools.map((spool) => Effect.either(spool.open(now))), { concurrency: "unbounded" })
      assert.deepStrictEqual(
        opened.map((result) => result._tag === "Left" ? result.left.message : result._tag),
        ["Right", "Right", "Right", "Right"]
      )
      const sql = yield* pool(url)
      const version = yield* sql<{ version: number }>`SELECT version FROM big3_schema WHERE component = 'observability'`
      assert.deepStrictEqual(version.map((row) => row.version), [Spool.schemaVersion])
    }))

  it.scoped("a group commit writes 1,200 journal rows in one transaction, held by the writer; delivered rows are deleted", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase
      const a = yield* spoolOn(url, "host-a/1/a")
      const b = yield* spoolOn(url, "host-b/2/b")
      const now = Date.now()
      yield* a.open(now)
      const committed = yield* a.commit({ ...Spool.emptyOps(), journal: range(1, 1200).map((n) => item(n, now)) }, now)
      assert.strictEqual(committed.journaled.size, 1200)
      assert.deepStrictEqual([...committed.journaled.keys()].sort((x, y) => x - y), range(1, 1200))
      assert.isTrue([...committed.journaled.values()].every((seq) => typeof seq === "number" && seq > 0))
      // Held by A: B sees nothing to take.
      assert.deepStrictEqual(yield* b.claim(100, now), [])
      assert.deepStrictEqual(yield* b.counts(now), { backlog: 0, held: 1200 })
      // A delivers the first 700 (deleted), and hands the rest back to the backlog.
      const seqOf = (n: number) => committed.journaled.get(n)!
      yield* a.commit({
        ...Spool.emptyOps(),
        remove: range(1, 700).map(seqOf),
        release: range(701, 1200).map((n) => ({ seq: seqOf(n), reason: "server down" }))
      }, now)
      assert.deepStrictEqual(yield* b.counts(now), { backlog: 500, held: 0 })
      const taken = yield* b.claim(1000, now)
      assert.deepStrictEqual(taken.map((row) => row.id), range(701, 1200).map((n) => `event-${n}`))
      yield* b.commit({ ...Spool.emptyOps(), remove: taken.map((row) => row.seq) }, now)
      assert.deepStrictEqual(yield* a.counts(now), { backlog: 0, held: 0 })
    }))

  it.scoped("two clients racing for one backlog take each row once, oldest first; a lease keeps a row until it ends", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase
      const a = yield* spoolOn(url, "host-a/1/a")
      const b = yield* spoolOn(url, "host-b/2/b")
      const now = Date.now()
      yield* a.open(now)
      // Spooled in reverse emit order, from two client epochs: the claim order is (epoch, ordinal).
      const older = range(1, 1000).reverse().map((n) => item(n, now - 60_000))
      const newer = range(1001, 2000).map((n) => item(n, now))
      yield* b.commit({ ...Spool.emptyOps(), spool: newer }, now)
      yield* b.commit({ ...Spool.emptyOps(), spool: older }, now)
      const first = yield* a.claim(10, now)
      assert.deepStrictEqual(first.map((row) => row.id), range(1, 10).map((n) => `event-${n}`))
      const takenBy = { a: [...first], b: [] as Array<Spool.Row> }
      // Both drain the rest at once, 37 rows a claim, on their own pools.
      const drain = (spool: Spool.Spool, into: Array<Spool.Row>) =>
        Effect.gen(function*() {
          while (true) {
            const page = yield* spool.claim(37, now)
            if (page.length === 0) return
            into.push(...page)
          }
        })
      yield* Effect.all([drain(a, takenBy.a), drain(b, takenBy.b)], { concurrency: "unbounded", discard: true })
      const all = [...takenBy.a, ...takenBy.b].map((row) => row.id)
      assert.strictEqual(all.length, 2000)
      assert.strictEqual(new Set(all).size, 2000, "no row was taken twice")
      assert.isAbove(takenBy.b.length, 0, "both clients took rows")
      assert.deepStrictEqual(yield* a.counts(now), { backlog: 0, held: 2000 })
      // A stops renewing: once its lease has ended, B may take its rows (and only then).
      assert.deepStrictEqual(yield* b.claim(5, now + lease - 1), [])
      const afterLease = yield* b.claim(5, now + lease + 1)
      assert.strictEqual(afterLease.length, 5)
      assert.deepStrictEqual(afterLease.map((row) => row.id), range(1, 5).map((n) => `event-${n}`))
    }))

  it.scoped("BIG3_EVENTS_SPOOL_MAX: eviction deletes the oldest rows nobody holds; dead letters read back as numbers and requeue", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase
      const a = yield* spoolOn(url, "host-a/1/a")
      const now = Date.now()
      yield* a.open(now)
      yield* a.commit({ ...Spool.emptyOps(), spool: range(1, 120).map((n) => item(n, now)) }, now)
      const held = yield* a.claim(10, now) // event-1 … event-10: held, so not evicted
      assert.strictEqual(held.length, 10)
      const evicted = yield* a.evict({ rows: 100, bytes: undefined }, now)
      assert.strictEqual(evicted.count, 20)
      assert.deepStrictEqual(evicted.ids, range(11, 30).map((n) => `event-${n}`))
      const bodyBytes = (n: number) => JSON.stringify({ id: `event-${n}`, n }).length
      const left = [...range(1, 10), ...range(31, 120)]
      assert.deepStrictEqual(evicted.size, { rows: 100, bytes: left.reduce((sum, n) => sum + bodyBytes(n), 0) })

      yield* a.commit({
        ...Spool.emptyOps(),
        remove: [held[0]!.seq],
        dead: [{ ...item(1, now), reason: "refused: 422", status: 422 }, { ...item(2, now), reason: "refused", status: undefined }]
      }, now)
      const dead = yield* a.deadLetters(10)
      assert.deepStrictEqual(dead, [
        { seq: 2, id: "event-2", body: item(2, now).body, reason: "refused", status: null, failed_at: now },
        { seq: 1, id: "event-1", body: item(1, now).body, reason: "refused: 422", status: 422, failed_at: now }
      ])
      assert.strictEqual(yield* a.requeueDeadLetters(now + 1), 2)
      assert.deepStrictEqual(yield* a.deadLetters(10), [])
      const sql = yield* pool(url)
      const requeued = yield* sql<{ id: string; spooled_at: string }>`SELECT id, spooled_at FROM observability_spool
        WHERE last_error LIKE 'requeued%' ORDER BY seq`
      assert.deepStrictEqual(requeued.map((row) => [row.id, Number(row.spooled_at)]), [["event-1", now + 1], ["event-2", now + 1]])
    }))

  it.scoped("events spooled by a process whose server is down are redelivered by two others on the same database, each exactly once", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase
      const count = 300
      const down = yield* freePort // nobody listens there: the observability server is down
      const a = yield* emitter({ url, count, server: `http://127.0.0.1:${down}/events` })
      // SIGTERM: the client spools what it could not send, then the process ends by the signal.
      a.child.kill("SIGTERM")
      yield* a.ended
      assert.isFalse(isRunning(a.pid), "the first process is gone")
      const sql = yield* pool(url)
      const spooled = yield* sql<{ id: string }>`SELECT id FROM observability_spool ORDER BY id`
      assert.deepStrictEqual(spooled.map((row) => row.id), range(1, count).map((n) => `crash-${n}`).sort(), a.stderr())

      const server = yield* eventsSink()
      const b = yield* emitter({ url, count: 0, server: server.url })
      const c = yield* emitter({ url, count: 0, server: server.url })
      const giveUpAt = Date.now() + 60_000
      let left = count
      while ((server.received.size < count || left > 0) && Date.now() < giveUpAt) {
        yield* Effect.sleep("100 millis")
        left = Number((yield* sql<{ n: string }>`SELECT COUNT(*) AS n FROM observability_spool`)[0]!.n)
      }
      assert.strictEqual(left, 0, "the spool is empty")
      assert.deepStrictEqual([...server.received.keys()].sort(), range(1, count).map((n) => `crash-${n}`).sort())
      assert.deepStrictEqual([...server.received.entries()].filter(([, times]) => times !== 1), [], "each event once")
      for (const child of [b, c]) {
        child.child.kill("SIGTERM")
        yield* child.ended
        assert.isFalse(isRunning(child.pid), `emitter ${child.pid} is gone`)
      }
    }), { timeout: 90_000 })
})

// Runs after the layer above is released (vitest runs a file's hooks in order).
layer(Layer.empty)("the private PostgreSQL of the spool tests", (it) => {
  it.effect("is gone once its tests are done (checked by pid)", () =>
    Effect.sync(() => {
      if (serverPid !== undefined) assert.isFalse(isRunning(serverPid), `postgres ${serverPid} is still running`)
    }))
})


/**
 * A library process (test/support/emitter.ts) on the database at `url`, with its own state
 * directory, emitting `count` events to `server`; returned once it has reported. Killed with the
 * scope if still running.
 */
const emitter = (options: { readonly url: string; readonly count: number; readonly server: string }) =>
  Effect.gen(function*() {
    const stateDir = yield* tempDir("big3-pgspool-")
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(path.join("test", "support", "emitter.ts"), [String(options.count)], {
          execArgv: ["--import", "tsx"],
          stdio: ["ignore", "ignore", "pipe", "ipc"],
          env: {
            ...process.env,
            BIG3_STATE_DIR: stateDir,
            BIG3_DATABASE_URL: options.url,
            OBSERVABILITY_SERVER_URL: options.server,
            BIG3_EVENTS_REDELIVERY_INTERVAL: "100 millis"
          }
        })
      ),
      (child: ChildProcess) =>
        Effect.gen(function*() {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
          const pid = child.pid ?? 0
          while (isRunning(pid)) yield* Effect.sleep("20 millis")
        })
    )
    let stderr = ""
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
    yield* Effect.async<void, Error>((resume) => {
      child.once("message", () => resume(Effect.void))
      child.once("exit", (code, signal) => resume(Effect.fail(new Error(`the emitter ended (${code ?? signal}) before it reported: ${stderr}`))))
    })
    return { child, pid: child.pid ?? 0, stderr: () => stderr, ended: Effect.promise(() => exited) }
  })
