/**
 * `big3 agents …` in-process with the scripted backends (`BIG3_AGENT_BACKEND`), a temp state
 * directory per test, and the agents' lifecycle events going to a Sandbox over 127.0.0.1.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as Sandbox from "../src/Sandbox.js"
import { big3 } from "./support/cli.js"

const tempStateDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "big3-cli-agents-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)


const setup = (backend = "scripted") =>
  Effect.gen(function*() {
    const sandbox = yield* Sandbox.make()
    const stateDir = yield* tempStateDir
    const env = {
      BIG3_STATE_DIR: stateDir,
      BIG3_AGENT_BACKEND: backend,
      OBSERVABILITY_SERVER_URL: `${sandbox.url}/events`
    }
    return { env, sandbox, stateDir }
  })

const statusLine = (content: string) => /^- Status: (.+)$/m.exec(content)?.[1]

describe("big3 agents", () => {
  it.scopedLive("create, list, command --wait, result, delete, list again", () =>
    Effect.gen(function*() {
      const { env, sandbox, stateDir } = yield* setup()

      const created = yield* big3(["agents", "create", "--name", "builder", "--type", "coder"], env)
      assert.strictEqual(created.code, 0, created.stderr)
      assert.include(created.stdout, "created agent builder")
      const directory = path.join(stateDir, "agents", "builder")
      assert.include(created.stdout, directory)
      assert.isTrue(fs.existsSync(directory))

      const listed = yield* big3(["agents", "list", "--json"], env)
      assert.strictEqual(listed.code, 0, listed.stderr)
      const agents: Array<{ name: string; type: string; sessionId: string }> = JSON.parse(listed.stdout)
      assert.deepStrictEqual(agents.map(({ name, sessionId, type }) => ({ name, type, sessionId })), [
        { name: "builder", type: "coder", sessionId: "session-builder" }
      ])

      const commanded = yield* big3(["agents", "command", "builder", "write the tests", "--wait"], env)
      assert.strictEqual(commanded.code, 0, commanded.stderr)
      const [firstLine, ...rest] = commanded.stdout.split("\n")
      assert.match(firstLine!, /operator-[A-Za-z0-9_-]+\.md$/)
      assert.strictEqual(path.dirname(firstLine!), directory)
      const printed = rest.join("\n")
      assert.strictEqual(statusLine(printed), "completed")
      assert.include(printed, "Done: write the tests")

      const latest = yield* big3(["agents", "result", "builder"], env)
      assert.strictEqual(latest.code, 0, latest.stderr)
      assert.strictEqual(latest.stdout, fs.readFileSync(firstLine!, "utf8").trimEnd())
      const named = yield* big3(["agents", "result", "builder", path.basename(firstLine!), "--json"], env)
      const parsed: { file: string; status: string } = JSON.parse(named.stdout)
      assert.deepStrictEqual([parsed.file, parsed.status], [firstLine, "completed"])

      const deleted = yield* big3(["agents", "delete", "builder"], env)
      assert.strictEqual(deleted.code, 0, deleted.stderr)
      assert.strictEqual(deleted.stdout, "deleted agent builder")
      assert.isFalse(fs.existsSync(directory))
      const empty = yield* big3(["agents", "list"], env)
      assert.strictEqual(empty.stdout, "no agents")

      // Each command closed its layer, which flushed the lifecycle events to the server (events
      // of one process may arrive in any order: they are delivered concurrently).
      const types = (yield* sandbox.events).map((event) => event.hook_event_type)
      assert.deepStrictEqual([...types].sort(), [
        "AgentCommandFinished",
        "AgentCommandStarted",
        "AgentCreated",
        "AgentDeleted"
      ])
    }))

  it.scopedLive("command without --wait and no runner prints the operator file at once, says it runs here, and stays until it ends", () =>
    Effect.gen(function*() {
      const { env, stateDir } = yield* setup()
      yield* big3(["agents", "create", "--name", "quick", "--type", "coder"], env)
      const commanded = yield* big3(["agents", "command", "quick", "list the files"], env)
      assert.strictEqual(commanded.code, 0, commanded.stderr)
      assert.notInclude(commanded.stdout, "\n")
      assert.strictEqual(statusLine(fs.readFileSync(commanded.stdout, "utf8")), "completed")
      assert.strictEqual(
        commanded.stderr,
        `big3 agents: no runner is up (no ${path.join(stateDir, "runner.json")}): the command runs in this process, ` +
          `which stays until it ends\nbig3 agents: the command of quick ended: completed`
      )
    }))

  it.scopedLive("a runner.json nobody answers at (a runner killed) leaves the command in this process, saying so", () =>
    Effect.gen(function*() {
      const { env, stateDir } = yield* setup()
      // A port that was free a moment ago: nothing listens there now.
      const port = yield* Effect.async<number>((resume) => {
        const server = net.createServer().listen(0, "127.0.0.1", () => {
          const address = server.address()
          server.close(() => resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0)))
        })
      })
      const url = `http://127.0.0.1:${port}`
      fs.writeFileSync(path.join(stateDir, "runner.json"), JSON.stringify({
        version: 1, pid: 999999, url, token: "stale-token", store: "SQLite", startedAt: 0
      }), { mode: 0o600 })
      yield* big3(["agents", "create", "--name", "orphan", "--type", "coder"], env)
      const commanded = yield* big3(["agents", "command", "orphan", "carry on"], env)
      assert.strictEqual(commanded.code, 0, commanded.stderr)
      assert.include(
        commanded.stderr,
        `big3 agents: no runner answers at ${url} (runner.json is stale): the command runs in this process`
      )
      assert.strictEqual(statusLine(fs.readFileSync(commanded.stdout, "utf8")), "completed")
    }))

  it.scopedLive("a server at runner.json that refuses the token is an error, not a reason to bypass it", () =>
    Effect.gen(function*() {
      const { env, stateDir } = yield* setup()
      // A bare HTTP server in the test (not a runner): it answers 401 to everything, like a runner
      // given someone else's token.
      const seen: Array<string | undefined> = []
      const server = http.createServer((request, response) => {
        seen.push(request.headers.authorization)
        response.writeHead(401, { "content-type": "text/plain" }).end("no")
      })
      const port = yield* Effect.acquireRelease(
        Effect.async<number>((resume) => {
          server.listen(0, "127.0.0.1", () => {
            const address = server.address()
            resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0))
          })
        }),
        () => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      fs.writeFileSync(path.join(stateDir, "runner.json"), JSON.stringify({
        version: 1, pid: 999999, url: `http://127.0.0.1:${port}`, token: "not-the-runners", store: "SQLite", startedAt: 0
      }), { mode: 0o600 })
      const listed = yield* big3(["agents", "list"], env)
      assert.strictEqual(listed.code, 1)
      assert.strictEqual(
        listed.stderr,
        `big3 agents: Unauthorized: the runner at http://127.0.0.1:${port} refused the token of runner.json ` +
          `(was it replaced by another runner?)`
      )
      assert.deepStrictEqual(seen, ["Bearer not-the-runners"])
    }))

  it.scopedLive("command --wait exits 1 when the agent fails, after printing the operator file", () =>
    Effect.gen(function*() {
      const { env } = yield* setup("scripted-fail")
      yield* big3(["agents", "create", "--name", "flaky", "--type", "coder"], env)
      const commanded = yield* big3(["agents", "command", "flaky", "do the impossible", "--wait"], env)
      assert.strictEqual(commanded.code, 1)
      assert.strictEqual(statusLine(commanded.stdout), "failed")
      assert.include(commanded.stdout, "Could not do: do the impossible")
      assert.include(commanded.stderr, "ended: failed")
    }))

  it.scopedLive("a bad agent name exits 1 with the reason; nothing is created", () =>
    Effect.gen(function*() {
      const { env, stateDir } = yield* setup()
      const result = yield* big3(["agents", "create", "--name", "../escape", "--type", "coder"], env)
      assert.strictEqual(result.code, 1)
      assert.match(result.stderr, /^big3 agents: InvalidAgentName: invalid agent name "\.\.\/escape": it contains a path separator/)
      assert.isFalse(fs.existsSync(path.join(stateDir, "escape")))
      const twice = yield* big3(["agents", "create", "--name", "twin", "--type", "coder"], env)
      assert.strictEqual(twice.code, 0, twice.stderr)
      const again = yield* big3(["agents", "create", "--name", "twin", "--type", "coder"], env)
      assert.strictEqual(again.code, 1)
      assert.match(again.stderr, /^big3 agents: AgentExists: /)
    }))

  it.scopedLive("a name starting with '-' is refused at create (exit 1), so no agent exists that command cannot name", () =>
    Effect.gen(function*() {
      const { env, stateDir } = yield* setup()
      const result = yield* big3(["agents", "create", "--name", "-x", "--type", "coder"], env)
      assert.strictEqual(result.code, 1)
      assert.strictEqual(result.stdout, "")
      assert.strictEqual(
        result.stderr,
        `big3 agents: InvalidAgentName: invalid agent name "-x": it starts with '-', which a command line reads as an ` +
          `option; use 1–64 letters, digits, '-' or '_', not starting with '-'`
      )
      assert.isFalse(fs.existsSync(path.join(stateDir, "agents", "-x")))
      const listed = yield* big3(["agents", "list"], env)
      assert.strictEqual(listed.stdout, "no agents")
    }))

  it.scopedLive("an unknown agent is NotFound (exit 1) for command, result and delete", () =>
    Effect.gen(function*() {
      const { env } = yield* setup()
      for (const args of [["command", "ghost", "boo"], ["result", "ghost"], ["delete", "ghost"]]) {
        const result = yield* big3(["agents", ...args], env)
        assert.strictEqual(result.code, 1, args.join(" "))
        assert.strictEqual(result.stderr, `big3 agents: NotFound: no agent named "ghost"`)
      }
    }))

  it.scopedLive("an unknown BIG3_AGENT_BACKEND is a configuration error naming the key (exit 78)", () =>
    Effect.gen(function*() {
      const { env } = yield* setup("gpt")
      const result = yield* big3(["agents", "list"], env)
      assert.strictEqual(result.code, 78)
      assert.include(result.stderr, "BIG3_AGENT_BACKEND")
    }))

  it.scopedLive("every agents command takes --metrics", () =>
    Effect.gen(function*() {
      const { env } = yield* setup()
      const result = yield* big3(["agents", "list", "--metrics"], env)
      assert.strictEqual(result.code, 0, result.stderr)
      assert.include(result.stdout, "no agents")
      assert.include(result.stdout, "# TYPE big3_")
    }))

  it.scopedLive("agents delete under other settings deletes only the directory the agent was created in", () =>
    Effect.gen(function*() {
      const { env, stateDir } = yield* setup()
      const rootA = path.join(stateDir, "a")
      const rootP = path.join(stateDir, "p")
      const created = yield* big3(["agents", "create", "--name", "victim", "--type", "coder"], { ...env, BIG3_AGENTS_DIR: rootA })
      assert.strictEqual(created.code, 0, created.stderr)
      fs.mkdirSync(path.join(rootP, "victim"), { recursive: true })
      fs.writeFileSync(path.join(rootP, "victim", "keep.txt"), "unrelated")

      const deleted = yield* big3(["agents", "delete", "victim"], { ...env, BIG3_AGENTS_DIR: rootP })
      assert.strictEqual(deleted.code, 0, deleted.stderr)
      assert.strictEqual(deleted.stdout, "deleted agent victim")
      assert.strictEqual(fs.readFileSync(path.join(rootP, "victim", "keep.txt"), "utf8"), "unrelated")
      assert.isFalse(fs.existsSync(path.join(rootA, "victim")))
    }))

  it.scopedLive("agents result does not print an operator file linked to a secret, symbolic or hard link (exit 1, UnsafeAgentPath)", () =>
    Effect.gen(function*() {
      const { env, stateDir } = yield* setup()
      const secret = path.join(stateDir, "secret.txt")
      fs.writeFileSync(secret, "TOP-SECRET-TOKEN")
      const cases = [
        {
          name: "symbolic",
          link: fs.symlinkSync,
          why: (file: string) => `${file} is a symbolic link; big3 does not follow links out of an agent's directory, so it was not read`
        },
        {
          name: "hard",
          link: fs.linkSync,
          why: (file: string) =>
            `${file} has 2 hard links: the same file has another name, perhaps outside the agent's directory, and ` +
            `big3 writes its operator files with one link only, so it was not read`
        }
      ]
      for (const { link, name, why } of cases) {
        yield* big3(["agents", "create", "--name", name, "--type", "coder"], env)
        const commanded = yield* big3(["agents", "command", name, "task"], env)
        assert.strictEqual(commanded.code, 0, commanded.stderr)
        fs.rmSync(commanded.stdout)
        link(secret, commanded.stdout)

        const result = yield* big3(["agents", "result", name], env)
        assert.strictEqual(result.code, 1)
        assert.strictEqual(result.stdout, "")
        assert.strictEqual(result.stderr, `big3 agents: UnsafeAgentPath: ${why(commanded.stdout)}`)
      }
    }))

  it.scopedLive("command --wait whose operator file becomes a link mid-run says so and leaves the link alone, not 'interrupted'", () =>
    Effect.gen(function*() {
      const { env, stateDir } = yield* setup()
      yield* big3(["agents", "create", "--name", "swapped", "--type", "coder"], env)
      const directory = path.join(stateDir, "agents", "swapped")
      const running = yield* Effect.fork(
        big3(["agents", "command", "swapped", "work", "--wait"], { ...env, BIG3_SCRIPTED_DELAY: "3" })
      )
      // The real CLI runs in real time: poll for the first progress line, then swap the file.
      let operatorFile = ""
      while (operatorFile === "") {
        yield* Effect.sleep("50 millis")
        const name = fs.readdirSync(directory).find((file) => file.startsWith("operator-"))
        if (name !== undefined && fs.readFileSync(path.join(directory, name), "utf8").includes("Progress: working")) {
          operatorFile = path.join(directory, name)
        }
      }
      const secret = path.join(stateDir, "secret.txt")
      fs.writeFileSync(secret, "TOP-SECRET-TOKEN")
      fs.rmSync(operatorFile)
      fs.symlinkSync(secret, operatorFile)

      const result = yield* Fiber.join(running)
      assert.strictEqual(result.code, 1)
      assert.include(
        result.stderr,
        `big3 agents: UnsafeAgentPath: ${operatorFile} is a symbolic link; big3 does not follow links out of an ` +
          `agent's directory, so it was not read`
      )
      assert.isTrue(fs.lstatSync(operatorFile).isSymbolicLink())
      assert.strictEqual(fs.readFileSync(secret, "utf8"), "TOP-SECRET-TOKEN")
      assert.deepStrictEqual(result.logs.filter((line) => line.startsWith("ERROR")), [
        `ERROR agent swapped: could not record the outcome of ${operatorFile}: ${operatorFile} is a symbolic link; ` +
        `big3 does not follow links out of an agent's directory, so it was not written`
      ])
    }))

  it.scopedLive("an agent an older big3 registered is deleted only with --keep-directory, which keeps its directory", () =>
    Effect.gen(function*() {
      const { env, stateDir } = yield* setup()
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`CREATE TABLE agents (name TEXT PRIMARY KEY NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
          session_id TEXT, greeting TEXT, reservation TEXT, created_at INTEGER NOT NULL)`).raw
        yield* sql`INSERT INTO agents (name, type, status, session_id, greeting, reservation, created_at)
          VALUES ('elder', 'coder', 'ready', 'session-elder', 'hello', NULL, 0)`
      }).pipe(Effect.provide(SqliteClient.layer({ filename: path.join(stateDir, "big3.db") })))
      const directory = path.join(stateDir, "agents", "elder")
      fs.mkdirSync(directory, { recursive: true })

      const listed = yield* big3(["agents", "list"], env)
      assert.strictEqual(listed.code, 0, listed.stderr)
      assert.include(listed.stdout, `${directory} (not recorded)`)
      const refused = yield* big3(["agents", "delete", "elder"], env)
      assert.strictEqual(refused.code, 1)
      assert.match(refused.stderr, /^big3 agents: UnsafeAgentPath: agent elder was registered by an older big3 /)
      assert.isTrue(fs.existsSync(directory))

      const kept = yield* big3(["agents", "delete", "elder", "--keep-directory"], env)
      assert.strictEqual(kept.code, 0, kept.stderr)
      assert.strictEqual(kept.stdout, "deleted agent elder (its directory was kept)")
      assert.isTrue(fs.existsSync(directory))
      assert.strictEqual((yield* big3(["agents", "list"], env)).stdout, "no agents")
    }))
})
