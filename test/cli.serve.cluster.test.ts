/**
 * Several `big3 serve` processes on one PostgreSQL database, attacked as an operator's bad day
 * would: a runner paused past `BIG3_RUNNER_LOCK_EXPIRATION`, the database going away under a
 * runner asked to stop. Real processes on 127.0.0.1, each checked gone by pid with its scope.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Runner from "../src/Runner.js"
import * as Sandbox from "../src/Sandbox.js"
import * as Store from "../src/Store.js"
import { exitCodeOf, waitFor } from "./support/bin.js"
import * as Postgres from "./support/postgres.js"
import { isRunning } from "./support/processes.js"
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
      const [addressA, addressB] = [(yield* info(dirA)).runner, (yield* info(dirB)).runner]
      const file = (yield* agentsCli(["command", name, "the paused task"], { ...env, BIG3_STATE_DIR: dirB })).stdout.trim()
      yield* waitFor(runnerA, "the command to start on A", () => read(file).includes("Progress: working in"))

      // Paused, A keeps its database connections open: only the lock rows' expiry can free its agents.
      runnerA.child.kill("SIGSTOP")
      yield* waitFor(runnerB, "B to finish the paused runner's command", () => statusOf(read(file)) === "completed", "60 seconds")
      assert.include((yield* info(dirB)).agents, name)

      // A wakes up with its attempt still in memory: that attempt's outcome is dropped, the file kept.
      runnerA.child.kill("SIGCONT")
      // Dropped at its outcome ("was finished by …") or, when A's cluster hands the agent over first, at once ("was taken over by …").
      yield* waitFor(runnerA, "A to drop its stale attempt", () => /was (finished|taken over) by another attempt/.test(runnerA.stderr()), "30 seconds")
      const content = read(file)
      assert.strictEqual(statusOf(content), "completed")
      assert.strictEqual(count(content, /Resumed after a restart: attempt 2$/gm), 1, content)
      assert.strictEqual(count(content, /^Done: the paused task$/gm), 1, content)
      assert.deepStrictEqual(yield* recordsOf(databaseUrl), [[name, "completed", 2]])
      // The file says where each attempt ran: the second on the runner that took the agent over.
      const attempts = content.split("\n").filter((line) => / Attempt \d+ on runner /.test(line)).map((line) => line.replace(/^- \S+ /, ""))
      assert.deepStrictEqual(attempts, [
        `Attempt 1 on runner ${addressA} (pid ${runnerA.pid})`,
        `Attempt 2 on runner ${addressB} (pid ${runnerB.pid})`
      ])
    }), { timeout: 180_000 })

  it.scopedLive("SIGTERM with the database gone: the runner still stops, within graceful_shutdown and its allowance", () =>
    Effect.gen(function*() {
      // A server of this test's own, since the test stops it.
      const databaseScope = yield* Scope.make()
      const server = yield* Postgres.privateServer.pipe(Scope.extend(databaseScope))
      const stateDir = yield* tempDir("big3-dbgone-")
      const env = {
        BIG3_DATABASE_URL: server.url,
        BIG3_AGENT_BACKEND: "scripted",
        BIG3_SCRIPTED_DELAY: "30",
        BIG3_TIMEOUT_GRACEFUL_SHUTDOWN: "1",
        OBSERVABILITY_SERVER_URL: "http://127.0.0.1:9/events"
      }
      const runner = yield* serve(stateDir, env)
      yield* showOnFailure([runner])
      yield* agentsCli(["create", "--name", "stranded", "--type", "coder"], { ...env, BIG3_STATE_DIR: stateDir })
      const file = (yield* agentsCli(["command", "stranded", "a long task"], { ...env, BIG3_STATE_DIR: stateDir })).stdout.trim()
      yield* waitFor(runner, "the command to start", () => read(file).includes("Progress: working in"))

      yield* Scope.close(databaseScope, Exit.void)
      assert.isFalse(server.pid !== undefined && isRunning(server.pid))
      // The cluster notices (its lock refresh times out): from then on its shutdown waits for the database.
      yield* waitFor(runner, "the cluster to see its locks' storage gone", () => runner.stderr().includes("Shard lock storage is unhealthy"), "30 seconds")
      // Unbounded, the cluster's shutdown waited for the database for good (here: past 30 s, every time).
      runner.child.kill("SIGTERM")
      assert.strictEqual(yield* exitCodeOf(runner, "30 seconds"), 143)
      assert.isFalse(fs.existsSync(path.join(stateDir, Runner.stateFileName)))
    }), { timeout: 120_000 })
})

