/**
 * The store on PostgreSQL (`BIG3_DATABASE_URL`): a real server over 127.0.0.1, a fresh database
 * per test (see support/postgres.ts: `BIG3_TEST_DATABASE_URL`'s server, or a private cluster).
 */
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, layer } from "@effect/vitest"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import * as Agents from "../src/Agents.js"
import * as Cluster from "../src/runner/Cluster.js"
import * as Store from "../src/Store.js"
import { agentsDir, withAgents, withDurableAgents } from "./support/agents.js"
import * as Postgres from "./support/postgres.js"
import { isRunning } from "./support/processes.js"

class PgServer extends Context.Tag("test/PgServer")<PgServer, Postgres.Server>() {}

const withEnv = (env: Record<string, string>) => Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

/** A fresh database on the file's server. */
const freshDatabase = Effect.flatMap(PgServer, Postgres.database)

let serverPid: number | undefined

layer(Layer.scoped(PgServer, Effect.tap(Postgres.server, (server) => Effect.sync(() => (serverPid = server.pid)))), {
  excludeTestServices: true,
  timeout: "60 seconds"
})("Store on PostgreSQL", (it) => {
  it.scoped("BIG3_DATABASE_URL makes the application's SqlClient a PostgreSQL client on that database", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase
      const found = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const dialect = sql.onDialectOrElse({ pg: () => "pg", sqlite: () => "sqlite", orElse: () => "other" })
        const rows = yield* sql<{ readonly name: string }>`SELECT current_database() AS name`
        return [dialect, rows[0]?.name]
      }).pipe(Effect.provide(Store.layerConfig), withEnv({ BIG3_DATABASE_URL: url }))
      assert.deepStrictEqual(found, ["pg", new URL(url).pathname.slice(1)])
    }))

  it.scoped("the agent registry runs on PostgreSQL: create, list, command, result, delete", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase
      yield* withAgents({ store: Store.layerPostgres(Redacted.make(url)) }, (harness) =>
        Effect.gen(function*() {
          const created = yield* Agents.create({ name: "pg-builder", type: "coder" })
          assert.strictEqual(created.sessionId, "session-pg-builder")
          const listed = yield* Agents.list
          assert.deepStrictEqual(listed.map((agent) => [agent.name, agent.type, agent.directoryRecorded]), [
            ["pg-builder", "coder", true]
          ])
          // created_at is a BIGINT there (milliseconds do not fit an INTEGER), read back as a Date.
          assert.isTrue(Math.abs(listed[0]!.createdAt.getTime() - Date.now()) < 60_000)
          const { operatorFile } = yield* Agents.command("pg-builder", "write it")
          let content = ""
          for (let i = 0; i < 200 && !/^- Status: completed$/m.test(content); i++) {
            yield* Effect.sleep("20 millis")
            content = (yield* Agents.result("pg-builder", operatorFile)).content
          }
          assert.match(content, /^- Status: completed$/m)
          yield* Agents.delete("pg-builder")
          assert.deepStrictEqual(yield* Agents.list, [])
          assert.isFalse(fs.existsSync(nodePath.join(agentsDir(harness), "pg-builder")))
        }))
    }))

  it.scoped("an agents table from before the directory columns gets them on PostgreSQL, its rows left unrecorded", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase
      const store = Store.layerPostgres(Redacted.make(url))
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE agents (name TEXT PRIMARY KEY NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
          session_id TEXT, greeting TEXT, reservation TEXT, created_at BIGINT NOT NULL)`
        yield* sql`INSERT INTO agents (name, type, status, session_id, greeting, created_at)
          VALUES ('old-one', 'coder', 'ready', 's-1', 'hi', 1700000000000)`
      }).pipe(Effect.provide(store))
      yield* withAgents({ store }, () =>
        Effect.gen(function*() {
          const listed = yield* Agents.list
          assert.deepStrictEqual(listed.map((agent) => [agent.name, agent.directoryRecorded, agent.createdAt.getTime()]), [
            ["old-one", false, 1700000000000]
          ])
        }))
    }))

  it.scoped("two runners creating their tables at the same moment both succeed", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase
      const create = Store.ensureSchema("race", [
        "CREATE TABLE IF NOT EXISTS race_a (x BIGINT)",
        "CREATE TABLE IF NOT EXISTS race_b (y TEXT)"
      ]).pipe(Effect.provide(Store.layerPostgres(Redacted.make(url))))
      const results = yield* Effect.all(Array.from({ length: 4 }, () => Effect.either(create)), { concurrency: "unbounded" })
      assert.deepStrictEqual(results.map((result) => result._tag), ["Right", "Right", "Right", "Right"])
    }))

  it.scoped("runners starting together on an empty database both build the cluster's storage", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase
      // Each "runner" has its own connection pool, as separate processes would.
      const build = Layer.build(Cluster.sharedStorage).pipe(
        Effect.scoped,
        Effect.provide(Layer.merge(Store.layerPostgres(Redacted.make(url)), ShardingConfig.layer())),
        Effect.exit
      )
      const results = yield* Effect.all(Array.from({ length: 6 }, () => build), { concurrency: "unbounded" })
      assert.deepStrictEqual(results.map((result) => result._tag), Array.from({ length: 6 }, () => "Success"))
      const tables = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ readonly name: string }>`SELECT tablename AS name FROM pg_tables WHERE tablename LIKE 'cluster_%' ORDER BY tablename`).pipe(
          Effect.provide(Store.layerPostgres(Redacted.make(url)))
        )
      assert.deepStrictEqual(tables.map((table) => table.name), ["cluster_messages", "cluster_migrations", "cluster_replies", "cluster_runners"])
    }))

  it.scoped("a resumed durable command on PostgreSQL records its outcome once, from its current attempt", () =>
    Effect.gen(function*() {
      const url = yield* freshDatabase
      yield* withDurableAgents({ store: Store.layerPostgres(Redacted.make(url)) }, (harness) =>
        Effect.gen(function*() {
          const host = yield* Agents.CommandHost
          yield* Agents.create({ name: "pg-durable", type: "coder" })
          const { operatorFile } = yield* Agents.command("pg-durable", "resume me")
          assert.strictEqual(harness.dispatched.length, 1)
          const command = harness.dispatched[0]!
          assert.strictEqual(command.file, nodePath.basename(operatorFile))
          // Two deliveries of the same Run (a runner died after starting the first): the second
          // is attempt 2, the first finished nothing, the record says completed once.
          const sql = yield* SqlClient.SqlClient
          yield* sql`UPDATE agent_commands SET attempts = 1 WHERE file = ${command.file}`
          const outcome = yield* host.execute(command)
          assert.deepStrictEqual(outcome, { status: "completed", attempt: 2 })
          const again = yield* host.execute(command)
          assert.deepStrictEqual(again, { status: "completed", attempt: 2 })
          const content = fs.readFileSync(operatorFile, "utf8")
          assert.match(content, /^- Status: completed$/m)
          assert.strictEqual(content.match(/Resumed after a restart: attempt 2$/gm)?.length, 1)
          assert.strictEqual(content.match(/Text: Working on: resume me/g)?.length, 1)
        }))
    }))

  it.scoped("a BIG3_DATABASE_URL that is not PostgreSQL's is a configuration error naming the key, not the value", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Store.databaseUrl.pipe(withEnv({ BIG3_DATABASE_URL: "mysql://root:hunter2@db/x" })))
      assert.isTrue(ConfigError.isConfigError(error))
      const text = String(error)
      assert.include(text, "BIG3_DATABASE_URL")
      assert.notInclude(text, "hunter2")
      const blank = yield* Store.locationConfig.pipe(withEnv({ BIG3_DATABASE_URL: "  ", BIG3_STATE_DIR: "/tmp/x" }))
      assert.deepStrictEqual(blank, { _tag: "Sqlite", filename: "/tmp/x/big3.db" })
    }))
})

// Runs after the layer above is released (vitest runs a file's hooks in order).
layer(Layer.empty)("the private PostgreSQL", (it) => {
  it.effect("is gone once its tests are done (checked by pid)", () =>
    Effect.sync(() => {
      if (serverPid !== undefined) assert.isFalse(isRunning(serverPid), `postgres ${serverPid} is still running`)
    }))
})
