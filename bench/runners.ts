/**
 * Runner throughput: agent commands per second through `big3 serve` (the compiled bin, in child
 * processes), with the scripted backend (no model work: `BIG3_SCRIPTED_DELAY` 0), so the figure
 * is what the runner adds per command: the API call, the operator file, the command record, the
 * workflow and its activity, the `Run` message to the agent's owner, and the outcome.
 *
 * - one runner, embedded (SQLite in its state directory);
 * - one runner on PostgreSQL;
 * - two runners on one PostgreSQL database (the agents split between them; commands are sent
 *   to both APIs, half each, and each goes to its agent's owner).
 *
 * "accepted/s" counts commands the APIs returned (the command is durable from then on);
 * "completed/s" counts outcomes recorded, from the first command to the last outcome.
 * PostgreSQL: `BIG3_TEST_DATABASE_URL`'s server, else a private one (test/support/postgres.ts).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"
import * as Runner from "../src/Runner.js"
import * as Store from "../src/Store.js"
import { listen } from "../test/support/loopback.js"
import * as Postgres from "../test/support/postgres.js"
import { tempDir } from "../test/support/tempDir.js"
import { type Row } from "./util.js"

const bin = path.resolve(import.meta.dirname, "../dist/bin/big3.cjs")

/** `big3 serve` on `stateDir` until the scope closes (SIGTERM, then SIGKILL). */
const serve = (stateDir: string, env: Record<string, string>) =>
  Effect.gen(function*() {
    const exited = yield* Deferred.make<void>()
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = spawn(process.execPath, [bin, "serve"], {
          env: { ...process.env, ...env, BIG3_STATE_DIR: stateDir, BIG3_LOG_LEVEL: "error" },
          stdio: ["ignore", "ignore", "inherit"]
        })
        child.on("exit", () => Deferred.unsafeDone(exited, Effect.void))
        return child
      }),
      (child) =>
        Effect.gen(function*() {
          child.kill("SIGTERM")
          yield* Deferred.await(exited).pipe(Effect.timeout("15 seconds"), Effect.ignore)
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        })
    )
    const file = path.join(stateDir, Runner.stateFileName)
    const giveUpAt = Date.now() + 30_000
    while (!(fs.existsSync(file) && fs.readFileSync(file, "utf8").includes(`"pid":${child.pid}`))) {
      if (Date.now() > giveUpAt) return yield* Effect.dieMessage("big3 serve did not start")
      yield* Effect.sleep("50 millis")
    }
    return Option.getOrThrow(yield* Runner.connect(stateDir))
  })

/** `commands` commands over `agents` agents through `runners`; the two rates. */
const measure = (
  runners: ReadonlyArray<Runner.Remote>,
  store: Layer.Layer<SqlClient.SqlClient, unknown>,
  options: { readonly agents: number; readonly commands: number }
) =>
  Effect.gen(function*() {
    const names = Array.from({ length: options.agents }, (_, i) => `bench${i}`)
    yield* Effect.forEach(names, (name, i) => runners[i % runners.length]!.create({ name, type: "bench" }), {
      concurrency: 4,
      discard: true
    })
    const completed = Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql<{ readonly n: number | string }>`SELECT COUNT(*) AS n FROM agent_commands WHERE status = 'completed'`).pipe(
        Effect.map((rows) => Number(rows[0]?.n ?? 0)),
        Effect.provide(store),
        Effect.orDie
      )
    const begin = performance.now()
    yield* Effect.forEach(
      Array.from({ length: options.commands }, (_, i) => i),
      (i) => runners[i % runners.length]!.command(names[i % names.length]!, `command ${i}`),
      { concurrency: 32, discard: true }
    )
    const accepted = performance.now() - begin
    const giveUpAt = Date.now() + 300_000
    while ((yield* completed) < options.commands) {
      if (Date.now() > giveUpAt) return yield* Effect.dieMessage("the commands did not complete in 5 minutes")
      yield* Effect.sleep("20 millis")
    }
    const finished = performance.now() - begin
    return {
      "accepted/s": (options.commands / (accepted / 1000)).toFixed(0),
      "completed/s": (options.commands / (finished / 1000)).toFixed(0),
      "wall s": (finished / 1000).toFixed(1)
    }
  })

/** An events server that accepts everything, so the runners deliver their events instead of spooling them. */
const eventSink = Effect.suspend(() =>
  listen(http.createServer((request, response) => {
    request.resume()
    request.on("end", () => response.writeHead(200, { "content-type": "application/json" }).end("{}"))
  }))
).pipe(Effect.map(({ url }) => `${url}/events`))

export const runRunnersBench = (options: { readonly agents: number; readonly commands: number }): Promise<ReadonlyArray<Row>> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const env = { BIG3_AGENT_BACKEND: "scripted", BIG3_SCRIPTED_DELAY: "0", OBSERVABILITY_SERVER_URL: yield* eventSink }
    const rows: Array<Row> = []
    const label = `${options.commands} commands, ${options.agents} agents, 32 in flight`

    const embedded = yield* Effect.scoped(Effect.gen(function*() {
      const dir = yield* tempDir("big3-bench-runner-")
      const runner = yield* serve(dir, env)
      return yield* measure([runner], Store.layer({ filename: Store.databasePath(dir) }), options)
    }))
    rows.push({ setup: "one runner, SQLite (embedded)", load: label, ...embedded })

    const server = yield* Postgres.server
    for (const count of [1, 2]) {
      const row = yield* Effect.scoped(Effect.gen(function*() {
        const url = yield* Postgres.database(server)
        const runners: Array<Runner.Remote> = []
        for (let i = 0; i < count; i++) runners.push(yield* serve(yield* tempDir("big3-bench-runner-"), { ...env, BIG3_DATABASE_URL: url }))
        return yield* measure(runners, Store.layerPostgres(Redacted.make(url)), options)
      }))
      rows.push({ setup: count === 1 ? "one runner, PostgreSQL" : "two runners, one PostgreSQL database", load: label, ...row })
    }
    return rows
  })))
