/**
 * Issue 11's storage and secrets cases, each against the real client: an echoed API key, a
 * store from a newer big3, a spool bound (`BIG3_EVENTS_SPOOL_MAX`), a disk that cannot be written.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"
import * as Options from "../src/observability/Options.js"
import * as Spool from "../src/observability/Spool.js"
import * as Store from "../src/Store.js"
import { big3 } from "./support/cli.js"
import { listen } from "./support/loopback.js"
import { eventsSink } from "./support/sink.js"
import { tempDir } from "./support/tempDir.js"

/**
 * A bare observability server, not big3's sandbox: it refuses every event with 400 and echoes
 * the `X-API-Key` it was sent in its body and in a header, as a careless proxy might.
 */
const echoingServer = Effect.map(
  listen(http.createServer((request, response) => {
    request.resume()
    request.on("end", () => {
      const key = String(request.headers["x-api-key"] ?? "")
      response.writeHead(400, { "content-type": "application/json", "x-echo-key": key })
      response.end(JSON.stringify({ error: `Missing required fields (key ${key} is not allowed here)` }))
    })
  })),
  ({ url }) => ({ url: `${url}/events` })
)

const secret = "fake-observability-key-4f9c"

describe("Observability hardening", () => {
  it.scopedLive("an echoed X-API-Key reaches neither the dead-letter table, nor stderr, nor dead-letters --json", () =>
    Effect.gen(function*() {
      const server = yield* echoingServer
      const stateDir = yield* tempDir("big3-hardening-")
      const env = {
        BIG3_STATE_DIR: stateDir,
        OBSERVABILITY_SERVER_URL: server.url,
        OBSERVABILITY_API_KEY: secret,
        BIG3_TIMEOUT_GRACEFUL_SHUTDOWN: "2"
      }
      const sent = yield* big3(["events", "send", "--type", "Stop"], env)
      assert.strictEqual(sent.code, 1)
      assert.match(sent.stderr, /refused event .* it was dead-lettered: InvalidRequest: .*key <redacted> is not allowed here/)
      const letters = yield* big3(["events", "dead-letters", "--json"], env)
      assert.strictEqual(letters.code, 0, letters.stderr)
      const parsed: { deadLetters: Array<{ reason: string }> } = JSON.parse(letters.stdout)
      assert.strictEqual(parsed.deadLetters.length, 1)
      assert.include(parsed.deadLetters[0]!.reason, "key <redacted> is not allowed here")
      for (const text of [sent.stdout, sent.stderr, sent.logs.join("\n"), letters.stdout, letters.stderr, letters.logs.join("\n")]) {
        assert.notInclude(text, secret)
      }
      const stored = yield* Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql<{ reason: string; body: string }>`SELECT reason, body FROM observability_dead_letter`
      ).pipe(Effect.provide(Store.layer({ filename: path.join(stateDir, "big3.db") })), Effect.scoped, Effect.orDie)
      assert.strictEqual(stored.length, 1)
      assert.notInclude(JSON.stringify(stored), secret)
      assert.include(stored[0]!.reason, "<redacted>")
    }))
})

describe("BIG3_EVENTS_SPOOL_MAX", () => {
  it("reads rows, bytes, or both", () => {
    assert.deepStrictEqual(Options.parseSpoolMax("100000"), { rows: 100_000 })
    assert.deepStrictEqual(Options.parseSpoolMax("50MB"), { bytes: 50_000_000 })
    assert.deepStrictEqual(Options.parseSpoolMax("512 KiB"), { bytes: 524_288 })
    assert.deepStrictEqual(Options.parseSpoolMax("1000, 2MiB"), { rows: 1000, bytes: 2_097_152 })
    assert.strictEqual(Options.parseSpoolMax("0"), undefined)
    assert.strictEqual(Options.parseSpoolMax("lots"), undefined)
    assert.strictEqual(Options.parseSpoolMax("5 parsecs"), undefined)
    assert.strictEqual(Options.parseSpoolMax("1,2"), undefined)
  })
})

describe("the spool's schema version", () => {
  it.scopedLive("a store from a newer big3 is refused at start with a clear message, and big3 events flush exits 1", () =>
    Effect.gen(function*() {
      const stateDir = yield* tempDir("big3-hardening-")
      const filename = path.join(stateDir, "big3.db")
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.all([
          sql`CREATE TABLE big3_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)`,
          sql`INSERT INTO big3_schema (component, version) VALUES ('observability', 99)`,
          sql`CREATE TABLE observability_spool (seq INTEGER PRIMARY KEY, id TEXT, body TEXT, future_column TEXT)`,
          sql`INSERT INTO observability_spool (id, body) VALUES ('kept', '{}')`
        ], { discard: true })).pipe(Effect.provide(Store.layer({ filename })), Effect.scoped, Effect.orDie)
      const flushed = yield* big3(["events", "flush"], { BIG3_STATE_DIR: stateDir, OBSERVABILITY_SERVER_URL: "http://127.0.0.1:9/events" })
      assert.strictEqual(flushed.code, 1)
      assert.strictEqual(flushed.stdout, "")
      assert.strictEqual(
        flushed.stderr,
        "big3 events flush: SqlError: cannot open the spool: the observability tables are at schema version 99, " +
          "newer than this big3 understands (2): a newer big3 wrote this store. Use that version, or another BIG3_STATE_DIR"
      )
      const rows = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string }>`SELECT id FROM observability_spool`).pipe(
        Effect.provide(Store.layer({ filename })),
        Effect.scoped,
        Effect.orDie
      )
      assert.deepStrictEqual(rows.map((row) => row.id), ["kept"])
    }))

  it.scopedLive("a version that is not a number (changed by hand) is refused, not taken as current and rewritten", () =>
    Effect.gen(function*() {
      const stateDir = yield* tempDir("big3-hardening-")
      const filename = path.join(stateDir, "big3.db")
      const versions = Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql<{ version: unknown }>`SELECT version FROM big3_schema WHERE component = 'observability'`
      ).pipe(Effect.provide(Store.layer({ filename })), Effect.scoped, Effect.orDie)
      const flushed = yield* big3(["events", "flush"], { BIG3_STATE_DIR: stateDir, OBSERVABILITY_SERVER_URL: "http://127.0.0.1:9/events" })
      assert.strictEqual(flushed.code, 0, flushed.stderr)
      assert.deepStrictEqual(yield* versions, [{ version: 2 }])
      for (const version of ["abc", "2.5", "-1"]) {
        yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`UPDATE big3_schema SET version = ${version} WHERE component = 'observability'`).pipe(
          Effect.provide(Store.layer({ filename })),
          Effect.scoped,
          Effect.orDie
        )
        const refused = yield* big3(["events", "flush"], { BIG3_STATE_DIR: stateDir, OBSERVABILITY_SERVER_URL: "http://127.0.0.1:9/events" })
        assert.strictEqual(refused.code, 1)
        assert.include(refused.stderr, "cannot open the spool: the observability tables record schema version ")
        assert.include(refused.stderr, "which is not a version number big3 writes: the store was changed by hand or is damaged")
        assert.deepStrictEqual((yield* versions).map((row) => String(row.version)), [version])
      }
    }))

  it.scopedLive("a spool of version 1 (no versions recorded, a held flag) is upgraded in place and its rows redelivered", () =>
    Effect.gen(function*() {
      const server = yield* eventsSink()
      const stateDir = yield* tempDir("big3-hardening-")
      const filename = path.join(stateDir, "big3.db")
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.all([
          sql`CREATE TABLE observability_spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, body TEXT NOT NULL,
            epoch INTEGER NOT NULL, ordinal INTEGER NOT NULL DEFAULT 0, spooled_at INTEGER NOT NULL,
            held INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT)`,
          sql`CREATE INDEX observability_spool_backlog ON observability_spool (held, epoch, ordinal, seq)`,
          sql`CREATE TABLE observability_dead_letter (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL,
            body TEXT NOT NULL, epoch INTEGER NOT NULL, ordinal INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL,
            status INTEGER, failed_at INTEGER NOT NULL)`,
          sql`INSERT INTO observability_spool (id, body, epoch, ordinal, spooled_at, held) VALUES
            ('old-1', ${eventBody("old-1")}, 1, 1, 1, 0), ('old-2', ${eventBody("old-2")}, 1, 2, 1, 1)`
        ], { discard: true })).pipe(Effect.provide(Store.layer({ filename })), Effect.scoped, Effect.orDie)
      const flushed = yield* big3(["events", "flush"], { BIG3_STATE_DIR: stateDir, OBSERVABILITY_SERVER_URL: server.url })
      assert.strictEqual(flushed.code, 0, flushed.stderr)
      assert.deepStrictEqual(server.bodies.map((body) => JSON.parse(body).id), ["old-1", "old-2"])
      const version = yield* Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql<{ version: number }>`SELECT version FROM big3_schema WHERE component = 'observability'`
      ).pipe(Effect.provide(Store.layer({ filename })), Effect.scoped, Effect.orDie)
      assert.deepStrictEqual(version, [{ version: 2 }])
    }))
})

const eventBody = (id: string) =>
  JSON.stringify({ id, source_app: "old", session_id: "s", hook_event_type: "Stop", payload: {}, timestamp: 1 })

describe("a corrupted spool", () => {
  it.scopedLive("a corrupted page of the spool: big3 events flush exits 1 with SQLite's reason, and the rows are not dropped", () =>
    Effect.gen(function*() {
      const stateDir = yield* tempDir("big3-hardening-")
      const filename = path.join(stateDir, "big3.db")
      // A spool of 200 events: a few pages of rows.
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* Effect.flatMap(Spool.make({ leaseMillis: 30_000 }), (spool) => spool.open(Date.now()))
        yield* sql`INSERT INTO observability_spool ${
          sql.insert(Array.from({ length: 200 }, (_, i) => ({
            id: `corrupt-${i + 1}`,
            body: eventBody(`corrupt-${i + 1}`).padEnd(300, " "),
            epoch: 1,
            ordinal: i + 1,
            spooled_at: 1
          })))
        }`
      }).pipe(Effect.provide(Store.layer({ filename })), Effect.scoped, Effect.orDie)
      // Overwrite the header of a page that holds rows (a table leaf page: type 0x0d).
      const bytes = fs.readFileSync(filename)
      const at = bytes.indexOf("corrupt-100")
      assert.isAbove(at, 4096)
      const page = Math.floor(at / 4096) * 4096
      assert.strictEqual(bytes[page], 0x0d)
      bytes.fill(0xff, page, page + 8)
      fs.writeFileSync(filename, bytes)

      const server = yield* eventsSink()
      const flushed = yield* big3(["events", "flush"], { BIG3_STATE_DIR: stateDir, OBSERVABILITY_SERVER_URL: server.url })
      assert.strictEqual(flushed.code, 1, flushed.stdout)
      assert.strictEqual(flushed.stdout, "")
      assert.match(flushed.stderr, /^big3 events flush: SqlError: cannot open the spool: database disk image is malformed \(SQLITE_CORRUPT[A-Z_]*\)$/)
      const stats = yield* big3(["events", "stats"], { BIG3_STATE_DIR: stateDir, OBSERVABILITY_SERVER_URL: server.url })
      assert.strictEqual(stats.code, 1)
      assert.notInclude(stats.stdout, "spoolSize  0")
    }))
})
