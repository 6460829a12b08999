/**
 * `big3 events …` in-process, against a Sandbox over 127.0.0.1, with the SQLite store in a temp
 * state directory per test and small retry delays.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Sandbox from "../src/Sandbox.js"
import * as Store from "../src/Store.js"
import { big3 } from "./support/cli.js"

const tempStateDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "big3-cli-events-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** The environment of a test: its state directory, the sandbox's events URL, quick retries. */
const environment = (stateDir: string, url: string): Record<string, string> => ({
  BIG3_STATE_DIR: stateDir,
  OBSERVABILITY_SERVER_URL: url,
  BIG3_RETRY_OBSERVABILITY_INITIAL_DELAY: "20 millis",
  BIG3_RETRY_OBSERVABILITY_JITTER: "none",
  BIG3_TIMEOUT_GRACEFUL_SHUTDOWN: "2"
})


const setup = Effect.gen(function*() {
  const sandbox = yield* Sandbox.make()
  const stateDir = yield* tempStateDir
  return { sandbox, env: environment(stateDir, `${sandbox.url}/events`) }
})

describe("big3 events", () => {
  it.scopedLive("send delivers the event to the server and exits 0", () =>
    Effect.gen(function*() {
      const { env, sandbox } = yield* setup
      const result = yield* big3(
        ["events", "send", "--type", "Notification", "--source", "cli-test", "--session", "s-1", "--payload", `{"tool":"Bash"}`, "--summary", "hello"],
        env
      )
      assert.strictEqual(result.code, 0, result.stderr)
      assert.match(result.stdout, /^delivered event \S+ \(Notification\) to http:\/\/127\.0\.0\.1:\d+\/events$/)
      const stored = yield* sandbox.events
      assert.strictEqual(stored.length, 1)
      const event = stored[0]!
      assert.deepStrictEqual(
        [event.source_app, event.session_id, event.hook_event_type, event.payload, event.summary],
        ["cli-test", "s-1", "Notification", { tool: "Bash" }, "hello"]
      )
    }))

  it.scopedLive("an undeliverable event is spooled (exit 1), counted by stats, and redelivered by flush", () =>
    Effect.gen(function*() {
      const { env, sandbox } = yield* setup
      yield* sandbox.stop
      const sent = yield* big3(["events", "send", "--type", "Stop"], env)
      assert.strictEqual(sent.code, 1)
      assert.include(sent.stderr, "spooled")
      assert.include(sent.stderr, "NetworkError")

      const stats = yield* big3(["events", "stats", "--json"], env)
      assert.strictEqual(stats.code, 0, stats.stderr)
      const parsed: { spoolSize: number; deadLetterSize: number; url: string } = JSON.parse(stats.stdout)
      assert.deepStrictEqual([parsed.spoolSize, parsed.deadLetterSize, parsed.url], [1, 0, `${sandbox.url}/events`])

      const stillDown = yield* big3(["events", "flush"], env)
      assert.strictEqual(stillDown.code, 1)
      assert.include(stillDown.stdout, "1 left in the spool")
      assert.include(stillDown.stderr, "1 event remains in the spool")

      yield* sandbox.start
      const flushed = yield* big3(["events", "flush"], env)
      assert.strictEqual(flushed.code, 0, flushed.stderr)
      assert.strictEqual(flushed.stdout, "redelivered 1, dead-lettered 0, 0 left in the spool")
      const stored = yield* sandbox.events
      assert.deepStrictEqual(stored.map((item) => item.hook_event_type), ["Stop"])

      const after = yield* big3(["events", "stats"], env)
      assert.match(after.stdout, /^spoolSize\s+0\s/m)
    }))

  it.scopedLive("a refused event is dead-lettered with the reason; --requeue and flush deliver it", () =>
    Effect.gen(function*() {
      const { env, sandbox } = yield* setup
      yield* sandbox.setPlan("events", [400])
      const sent = yield* big3(["events", "send", "--type", "Refused"], env)
      assert.strictEqual(sent.code, 1)
      assert.include(sent.stderr, "dead-lettered")
      assert.include(sent.stderr, "InvalidRequest")

      const listed = yield* big3(["events", "dead-letters"], env)
      assert.strictEqual(listed.code, 0, listed.stderr)
      assert.match(listed.stdout, /Refused\s+400\s+\S+\s+InvalidRequest/)
      assert.include(listed.stdout, "1 of 1 dead letter shown")

      const requeued = yield* big3(["events", "dead-letters", "--requeue", "--json"], env)
      const parsed: { total: number; requeued: number; deadLetters: Array<{ status: number }> } = JSON.parse(requeued.stdout)
      assert.deepStrictEqual([parsed.total, parsed.requeued, parsed.deadLetters[0]?.status], [1, 1, 400])

      const flushed = yield* big3(["events", "flush"], env)
      assert.strictEqual(flushed.code, 0, flushed.stderr)
      assert.include(flushed.stdout, "0 left in the spool")
      assert.deepStrictEqual((yield* sandbox.events).map((item) => item.hook_event_type), [
        "Refused"
      ])
      const empty = yield* big3(["events", "dead-letters"], env)
      assert.strictEqual(empty.stdout, "no dead letters")
    }))

  it.scopedLive("--payload that is not a JSON object exits 2 before anything is sent", () =>
    Effect.gen(function*() {
      const { env, sandbox } = yield* setup
      const notJson = yield* big3(["events", "send", "--type", "T", "--payload", "{tool: Bash}"], env)
      assert.strictEqual(notJson.code, 2)
      assert.include(notJson.stderr, "--payload is not valid JSON")
      const notObject = yield* big3(["events", "send", "--type", "T", "--payload", "[1, 2]"], env)
      assert.strictEqual(notObject.code, 2)
      assert.include(notObject.stderr, "--payload must be a JSON object")
      assert.strictEqual((yield* sandbox.requests).length, 0)
    }))

  it.scopedLive("every events command takes --metrics", () =>
    Effect.gen(function*() {
      const { env } = yield* setup
      const result = yield* big3(["events", "send", "--type", "Metered", "--metrics"], env)
      assert.strictEqual(result.code, 0, result.stderr)
      assert.match(result.stdout, /big3_events_total\{[^}]*kind="delivered"[^}]*\} \d+/)
      // Only big3's own metrics, as /metrics serves them, unless BIG3_METRICS_RUNTIME=on.
      assert.notInclude(result.stdout, "effect_fiber_")
      const all = yield* big3(["events", "send", "--type", "Metered", "--metrics"], { ...env, BIG3_METRICS_RUNTIME: "on" })
      assert.strictEqual(all.code, 0, all.stderr)
      assert.include(all.stdout, "effect_fiber_")
    }))

  it.scopedLive("a bad BIG3_EVENTS_* value is a configuration error (exit 78)", () =>
    Effect.gen(function*() {
      const { env } = yield* setup
      const result = yield* big3(["events", "stats"], { ...env, BIG3_EVENTS_MODE: "sometimes" })
      assert.strictEqual(result.code, 78)
      assert.include(result.stderr, "BIG3_EVENTS_MODE")
    }))

  it.scopedLive("a spool that cannot be read is not 'empty': flush and dead-letters exit 1 and say why", () =>
    Effect.gen(function*() {
      const { env } = yield* setup
      // Tables whose rows cannot be read (a column that fails when evaluated), though counting works.
      const filename = path.join(env["BIG3_STATE_DIR"] ?? "", "big3.db")
      const unreadable = (table: string, column: string) =>
        `ALTER TABLE ${table} ADD COLUMN ${column} TEXT GENERATED ALWAYS AS (json_extract('{broken', '$')) VIRTUAL`
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.all([
          sql.unsafe(`CREATE TABLE observability_spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL,
            epoch INTEGER NOT NULL DEFAULT 0, ordinal INTEGER NOT NULL DEFAULT 0, spooled_at INTEGER NOT NULL DEFAULT 0,
            held INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT)`),
          sql`INSERT INTO observability_spool (id) VALUES ('kept')`,
          sql.unsafe(unreadable("observability_spool", "body")),
          sql.unsafe(`CREATE TABLE observability_dead_letter (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL,
            body TEXT NOT NULL, epoch INTEGER NOT NULL DEFAULT 0, ordinal INTEGER NOT NULL DEFAULT 0, status INTEGER,
            failed_at INTEGER NOT NULL DEFAULT 0)`),
          sql`INSERT INTO observability_dead_letter (id, body) VALUES ('refused', '{}')`,
          sql.unsafe(unreadable("observability_dead_letter", "reason"))
        ], { discard: true })
      ).pipe(Effect.provide(Store.layer({ filename })), Effect.scoped)
      const flushed = yield* big3(["events", "flush"], env)
      assert.strictEqual(flushed.code, 1, flushed.stdout)
      assert.strictEqual(flushed.stdout, "")
      // Opening the spool reads every body (to size it), so the store fails there, saying why.
      assert.strictEqual(flushed.stderr, "big3 events flush: SqlError: cannot open the spool: malformed JSON (SQLITE_ERROR)")
      const letters = yield* big3(["events", "dead-letters"], env)
      assert.strictEqual(letters.code, 1, letters.stdout)
      assert.strictEqual(letters.stderr, "big3 events dead-letters: SqlError: cannot open the spool: malformed JSON (SQLITE_ERROR)")
      // Nothing was lost: the row is still there.
      const rows = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string }>`SELECT id FROM observability_spool`).pipe(
        Effect.provide(Store.layer({ filename })),
        Effect.scoped
      )
      assert.deepStrictEqual(rows.map((row) => row.id), ["kept"])
    }))
})
