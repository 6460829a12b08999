/**
 * `big3 serve` as a process (the bin through tsx), driven by `big3 agents …` run in-process with
 * the same state directory (so through the runner's API and its token). Kill -9 and restart: the
 * embedded case (SQLite in the state directory) and the shared one (two runners, one PostgreSQL
 * database). The scripted backend's commands take `BIG3_SCRIPTED_DELAY` seconds, so they are in
 * flight when a runner dies. Every process started here is checked gone by pid.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import * as Runner from "../src/Runner.js"
import * as Sandbox from "../src/Sandbox.js"
import * as Store from "../src/Store.js"
import { exitCodeOf, spawnBig3, waitFor } from "./support/bin.js"
import { big3 } from "./support/cli.js"
import * as Postgres from "./support/postgres.js"
import { agentsCli, count, info, kill9, read, serve, showOnFailure, statusOf } from "./support/runners.js"
import { tempDir } from "./support/tempDir.js"

describe("big3 serve", () => {
  it.effect("a port out of range is a usage error (exit 2) naming the flag, not a stack trace", () =>
    Effect.gen(function*() {
      const api = yield* big3(["serve", "--port", "99999"])
      assert.strictEqual(api.code, 2)
      assert.strictEqual(api.stderr, "big3 serve: --port must be an integer from 0 to 65535 (0 picks a free port), got 99999")
      const runner = yield* big3(["serve", "--runner-port", "-1"])
      assert.strictEqual(runner.code, 2)
      assert.strictEqual(runner.stderr, "big3 serve: --runner-port must be an integer from 0 to 65535 (0 picks a free port), got -1")
    }))

  it.scopedLive("a port in use: exit 1 with the system's reason (EADDRINUSE), not an empty ServeError", () =>
    Effect.gen(function*() {
      const stateDir = yield* tempDir("big3-serve-busy-")
      const busy = yield* Effect.acquireRelease(
        Effect.async<net.Server>((resume) => {
          const server = net.createServer().listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const address = busy.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      const served = yield* big3(["serve", "--port", String(port)], { BIG3_STATE_DIR: stateDir, BIG3_AGENT_BACKEND: "scripted" })
      assert.strictEqual(served.code, 1)
      assert.include(served.stderr, "big3 serve: cannot listen: ")
      assert.include(served.stderr, "EADDRINUSE")
    }))

  it.scopedLive("kill -9 mid-command, start again: the command resumes in the same operator file and completes once", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const stateDir = yield* tempDir("big3-serve-")
      const env = {
        BIG3_STATE_DIR: stateDir,
        BIG3_AGENT_BACKEND: "scripted",
        BIG3_SCRIPTED_DELAY: "3",
        OBSERVABILITY_SERVER_URL: `${sandbox.url}/events`
      }
      const first = yield* serve(stateDir, env)
      yield* showOnFailure([first])

      yield* agentsCli(["create", "--name", "builder", "--type", "coder"], env)
      const commanded = yield* agentsCli(["command", "builder", "build the thing"], env)
      // Through the runner: the path at once, and nothing about running in this process.
      const operatorFile = commanded.stdout.trim()
      assert.strictEqual(path.dirname(operatorFile), path.join(stateDir, "agents", "builder"))
      assert.notInclude(commanded.stderr, "runs in this process")
      yield* waitFor(first, "the command to start", () => read(operatorFile).includes("Progress: working in"))
      assert.strictEqual(statusOf(read(operatorFile)), "running")

      yield* kill9(first)
      assert.strictEqual(statusOf(read(operatorFile)), "running")

      const second = yield* serve(stateDir, env)
      yield* showOnFailure([second])
      yield* waitFor(second, "the resumed command to complete", () => statusOf(read(operatorFile)) === "completed", "30 seconds")
      const content = read(operatorFile)
      assert.strictEqual(count(content, /Resumed after a restart: attempt 2$/gm), 1)
      assert.strictEqual(count(content, /^- Status: /gm), 1)
      assert.strictEqual(count(content, /Text: Working on: build the thing$/gm), 1)
      assert.strictEqual(count(content, /^Done: build the thing$/gm), 1)

      // The runner answers `result` with the same file; the record says completed at attempt 2.
      const result = yield* agentsCli(["result", "builder", "--json"], env)
      const parsed: { file: string; status: string; content: string } = JSON.parse(result.stdout)
      assert.deepStrictEqual([parsed.file, parsed.status, parsed.content], [operatorFile, "completed", content])
      const recorded = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return yield* sql<{ status: string; attempts: number }>`SELECT status, attempts FROM agent_commands`
      }).pipe(Effect.provide(Store.layer({ filename: path.join(stateDir, "big3.db") })))
      assert.deepStrictEqual(recorded.map((row) => [row.status, Number(row.attempts)]), [["completed", 2]])

      // SIGTERM: exit 143, runner.json gone.
      second.child.kill("SIGTERM")
      assert.strictEqual(yield* exitCodeOf(second, "20 seconds"), 143)
      assert.isFalse(fs.existsSync(path.join(stateDir, Runner.stateFileName)))
      const types = (yield* sandbox.events).map((event) => event.hook_event_type)
      assert.includeMembers(types, ["AgentCommandStarted", "AgentCommandResumed", "AgentCommandFinished"])
    }), { timeout: 120_000 })

  it.scopedLive("a runner that is alive but does not answer is not bypassed: nothing starts in the CLI's process", () =>
    Effect.gen(function*() {
      const stateDir = yield* tempDir("big3-serve-stalled-")
      const env = { BIG3_AGENT_BACKEND: "scripted", OBSERVABILITY_SERVER_URL: "http://127.0.0.1:9/events", BIG3_STATE_DIR: stateDir }
      const runner = yield* serve(stateDir, env)
      yield* showOnFailure([runner])
      yield* agentsCli(["create", "--name", "patient", "--type", "coder"], env)
      runner.child.kill("SIGSTOP")
      yield* Effect.addFinalizer(() => Effect.sync(() => runner.child.kill("SIGCONT")))
      const commanded = yield* big3(["agents", "command", "patient", "work"], { ...env, BIG3_TIMEOUT_HTTP_REQUEST_SHORT: "0.5" })
      assert.strictEqual(commanded.code, 1)
      assert.include(commanded.stderr, `(pid ${runner.pid}) did not answer in time, but it is still running, so nothing was started in this process`)
      const files = fs.readdirSync(path.join(stateDir, "agents", "patient")).filter((file) => file.startsWith("operator-"))
      assert.deepStrictEqual(files, [])
    }), { timeout: 60_000 })

  it.scopedLive("a runner refuses calls without its token, keeps runner.json to its user, and keeps its state directory to itself", () =>
    Effect.gen(function*() {
      const stateDir = yield* tempDir("big3-serve-token-")
      const env = { BIG3_AGENT_BACKEND: "scripted", OBSERVABILITY_SERVER_URL: "http://127.0.0.1:9/events" }
      yield* serve(stateDir, env)
      const file = path.join(stateDir, Runner.stateFileName)
      assert.strictEqual(fs.statSync(file).mode & 0o777, 0o600)
      const contents = Option.getOrThrow(yield* Runner.readStateFile(stateDir))
      assert.match(contents.url, /^http:\/\/127\.0\.0\.1:\d+$/)

      const body = JSON.stringify({ _tag: "Request", id: "1", tag: "List", payload: {}, headers: [] })
      const post = (headers: Record<string, string>) =>
        Effect.promise(() => fetch(contents.url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body }))
      const missing = yield* post({})
      const wrong = yield* post({ authorization: `Bearer ${"x".repeat(43)}` })
      const right = yield* post({ authorization: `Bearer ${Redacted.value(contents.token)}` })
      assert.deepStrictEqual([missing.status, wrong.status, right.status], [401, 401, 200])
      const answer = yield* Effect.promise(() => right.json()).pipe(
        Effect.flatMap(Schema.decodeUnknown(Schema.Array(Schema.Struct({
          _tag: Schema.String,
          exit: Schema.Struct({ _tag: Schema.String, value: Schema.Array(Schema.Unknown) })
        })))),
        Effect.orDie
      )
      assert.deepStrictEqual(answer.map((reply) => [reply._tag, reply.exit._tag, reply.exit.value]), [["Exit", "Success", []]])

      // A second runner on the same state directory refuses to start.
      const second = yield* spawnBig3(["serve"], { ...env, BIG3_STATE_DIR: stateDir })
      assert.strictEqual(yield* exitCodeOf(second, "30 seconds"), 1)
      assert.include(second.stderr(), "another runner is serving")
      assert.include(read(file), contents.url)
    }), { timeout: 90_000 })

  it.scopedLive("two runners on one PostgreSQL database: kill one, its agents' unfinished commands complete once on the other", () =>
    Effect.gen(function*() {
      const server = yield* Postgres.server
      const databaseUrl = yield* Postgres.database(server)
      const sandbox = yield* Sandbox.make()
      const dirA = yield* tempDir("big3-serve-a-")
      const dirB = yield* tempDir("big3-serve-b-")
      const env = {
        BIG3_DATABASE_URL: databaseUrl,
        BIG3_AGENT_BACKEND: "scripted",
        BIG3_SCRIPTED_DELAY: "4",
        BIG3_RUNNER_LOCK_EXPIRATION: "6",
        OBSERVABILITY_SERVER_URL: `${sandbox.url}/events`
      }
      const envA = { ...env, BIG3_STATE_DIR: dirA }
      const envB = { ...env, BIG3_STATE_DIR: dirB }
      const runnerA = yield* serve(dirA, env)
      const runnerB = yield* serve(dirB, env)
      yield* showOnFailure([runnerA, runnerB])

      // Both runners hold their shards: every agent is owned by exactly one of them.
      const owners = (names: ReadonlyArray<string>) =>
        Effect.map(Effect.all([info(dirA), info(dirB)]), ([a, b]) => ({
          a: names.filter((name) => a.agents.includes(name)),
          b: names.filter((name) => b.agents.includes(name))
        }))

      // Agents until each runner owns some (the names hash onto the runners' shards).
      const names: Array<string> = []
      let split = { a: [] as Array<string>, b: [] as Array<string> }
      while (names.length < 16 && (split.a.length < 2 || split.b.length < 1)) {
        const name = `agent${names.length}`
        yield* agentsCli(["create", "--name", name, "--type", "coder"], envA)
        names.push(name)
        const deadline = Date.now() + 15_000
        do split = yield* owners(names)
        while (split.a.length + split.b.length !== names.length && Date.now() < deadline && (yield* Effect.sleep("200 millis"), true))
      }
      assert.strictEqual(split.a.length + split.b.length, names.length, JSON.stringify(split))
      assert.isAtLeast(split.a.length, 2)
      assert.isAtLeast(split.b.length, 1)

      // Commands through runner B (each goes to its agent's owner), then A dies under its own.
      const files = new Map<string, string>()
      for (const name of [...split.a, split.b[0]!]) {
        const commanded = yield* agentsCli(["command", name, `task of ${name}`], envB)
        files.set(name, commanded.stdout.trim())
      }
      for (const name of split.a) {
        yield* waitFor(runnerA, `the command of ${name} to start on A`, () => read(files.get(name)!).includes("Progress: working in"))
      }
      yield* kill9(runnerA)

      for (const [name, file] of files) {
        yield* waitFor(undefined, `the command of ${name} to complete`, () => statusOf(read(file)) === "completed", "60 seconds")
      }
      for (const name of split.a) {
        const content = read(files.get(name)!)
        assert.strictEqual(count(content, /Resumed after a restart: attempt 2$/gm), 1, content)
        assert.strictEqual(count(content, new RegExp(`Text: Working on: task of ${name}$`, "gm")), 1, content)
        assert.strictEqual(count(content, new RegExp(`^Done: task of ${name}$`, "gm")), 1, content)
      }
      const own = read(files.get(split.b[0]!)!)
      assert.strictEqual(count(own, /Resumed after a restart/g), 0, own)

      // Runner B owns every agent now; the records say each command completed once.
      const after = yield* info(dirB)
      assert.deepStrictEqual(names.filter((name) => after.agents.includes(name)), names)
      const recorded = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return yield* sql<{ agent: string; status: string; attempts: string }>`SELECT agent, status, attempts FROM agent_commands ORDER BY agent`
      }).pipe(Effect.provide(Store.layerPostgres(Redacted.make(databaseUrl))))
      assert.deepStrictEqual(
        recorded.map((row) => [row.agent, row.status, Number(row.attempts)]),
        [...files.keys()].sort().map((name) => [name, "completed", split.a.includes(name) ? 2 : 1])
      )
    }), { timeout: 180_000 })
})
