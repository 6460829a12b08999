/**
 * Several `big3 serve` processes on one PostgreSQL database, attacked as an operator's bad day
 * would: a runner paused past `BIG3_RUNNER_LOCK_EXPIRATION`, the database going away under a
 * runner asked to stop. Real processes on 127.0.0.1, each checked gone by pid with its scope.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Sandbox from "../src/Sandbox.js"
import * as Store from "../src/Store.js"
import { waitFor } from "./support/bin.js"
import * as Postgres from "./support/postgres.js"
import { agentsCli, count, info, read, serve, showOnFailure, statusOf } from "./support/runners.js"
import { tempDir } from "./support/tempDir.js"

/** Agents `agent0`, `agent1`, … through `stateDir`'s runner until `owner`'s runner owns one; its name. */
const agentOwnedBy = (owner: string, via: string, env: Record<string, string>) =>
  Effect.gen(function*() {
    for (let index = 0; index < 16; index++) {
      const name = `agent${index}`
      yield* agentsCli(["create", "--name", name, "--type", "coder"], { ...env, BIG3_STATE_DIR: via })
      if ((yield* info(owner)).agents.includes(name)) return name
    }
    return yield* Effect.dieMessage(`none of 16 agents landed on the runner of ${owner}`)
  })

const recordsOf = (databaseUrl: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql<{ agent: string; status: string; attempts: string }>`SELECT agent, status, attempts FROM agent_commands ORDER BY agent`
  }).pipe(Effect.provide(Store.layerPostgres(Redacted.make(databaseUrl))), Effect.map((rows) =>
    rows.map((row) => [row.agent, row.status, Number(row.attempts)])))

describe("big3 serve, several runners on PostgreSQL", () => {
  it.scopedLive("a runner paused (SIGSTOP) past the lock expiration loses its agents: another finishes its command, once", () =>
    Effect.gen(function*() {
      const server = yield* Postgres.server
      const databaseUrl = yield* Postgres.database(server)
      const sandbox = yield* Sandbox.make()
      const dirA = yield* tempDir("big3-paused-a-")
      const dirB = yield* tempDir("big3-paused-b-")
      const env = {
        BIG3_DATABASE_URL: databaseUrl,
        BIG3_AGENT_BACKEND: "scripted",
        BIG3_SCRIPTED_DELAY: "4",
        BIG3_RUNNER_LOCK_EXPIRATION: "3",
        OBSERVABILITY_SERVER_URL: `${sandbox.url}/events`
      }
      const runnerA = yield* serve(dirA, env)
      const runnerB = yield* serve(dirB, env)
      yield* showOnFailure([runnerA, runnerB])

      const name = yield* agentOwnedBy(dirA, dirB, env)
      const file = (yield* agentsCli(["command", name, "the paused task"], { ...env, BIG3_STATE_DIR: dirB })).stdout.trim()
      yield* waitFor(runnerA, "the command to start on A", () => read(file).includes("Progress: working in"))

      // Paused, A keeps its database connections open: only the lock rows' expiry can free its agents.
      runnerA.child.kill("SIGSTOP")
      yield* waitFor(runnerB, "B to finish the paused runner's command", () => statusOf(read(file)) === "completed", "60 seconds")
      assert.include((yield* info(dirB)).agents, name)

      // A wakes up with its attempt still in memory: that attempt's outcome is dropped, the file kept.
      runnerA.child.kill("SIGCONT")
      yield* waitFor(runnerA, "A to drop its stale attempt", () => runnerA.stderr().includes("was finished by another attempt"), "30 seconds")
      const content = read(file)
      assert.strictEqual(statusOf(content), "completed")
      assert.strictEqual(count(content, /Resumed after a restart: attempt 2$/gm), 1, content)
      assert.strictEqual(count(content, /^Done: the paused task$/gm), 1, content)
      assert.deepStrictEqual(yield* recordsOf(databaseUrl), [[name, "completed", 2]])
    }), { timeout: 180_000 })
})
