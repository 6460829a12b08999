/**
 * `big3 voice --text`: as a process fed on stdin (against the sandbox's Realtime endpoint), and
 * in-process for the ways it refuses to start. Everything on 127.0.0.1.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Sandbox from "../src/Sandbox.js"
import { exitCodeOf, spawnBig3, waitForOutput } from "./support/bin.js"
import { big3 } from "./support/cli.js"
import { each } from "./support/json.js"
import { isRunning } from "./support/processes.js"
import { bareServer } from "./support/wsServer.js"

const root = fileURLToPath(new URL("..", import.meta.url))

const tempStateDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "big3-cli-voice-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** The test runner's environment without anything that would configure big3. */
const baseEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^(BIG3_|OBSERVABILITY_|GEMINI_|ANTHROPIC_|CLAUDE_|OPENAI_)/.test(key))
  )

/** Runs `big3 args…` as a process with `input` on stdin; killed with the scope if still running. */
const runProcess = (args: ReadonlyArray<string>, env: Record<string, string>, input: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], {
        cwd: root,
        env: { ...baseEnv(), ...env },
        stdio: ["pipe", "pipe", "pipe"]
      })
      return child
    }),
    (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  ).pipe(
    Effect.flatMap((child) =>
      Effect.gen(function*() {
        const exit = yield* Deferred.make<number | string>()
        let stdout = ""
        let stderr = ""
        child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
        child.on("exit", (code, signal) => Deferred.unsafeDone(exit, Effect.succeed(code ?? signal ?? "unknown")))
        child.stdin.end(input)
        const code = yield* Deferred.await(exit).pipe(
          Effect.timeoutFail({
            duration: Duration.seconds(25),
            onTimeout: () => new Error(`big3 did not exit in time; stdout:\n${stdout}\nstderr:\n${stderr}`)
          }),
          Effect.orDie
        )
        return { code, stdout, stderr, pid: child.pid }
      })
    )
  )

describe("big3 voice", () => {
  it.scopedLive("one turn per stdin line, tool calls and text on stdout, logs on stderr, exit 0 at end of input", () =>
    Effect.gen(function*() {
      // The first connection drops in the middle of the second turn's response: the process
      // reconnects (a log line on stderr) and stdout is none the wiser.
      const sandbox = yield* Sandbox.make({
        realtimeScript: [{ when: "scout", calls: [{ name: "create_agent", arguments: { name: "scout" } }], text: "Agent scout is ready." }],
        realtimePlan: [{ dropAfter: 33 }]
      })
      const stateDir = yield* tempStateDir
      const result = yield* runProcess(["voice", "--text"], {
        OPENAI_API_KEY: "sandbox-key",
        OPENAI_REALTIME_URL: sandbox.realtime.url,
        BIG3_AGENT_BACKEND: "scripted",
        BIG3_STATE_DIR: stateDir,
        BIG3_RETRY_NETWORK_INITIAL_DELAY: "0.01",
        OBSERVABILITY_SERVER_URL: `${sandbox.url}/events`
      }, "create an agent named scout\n\nhow are you?\n")
      assert.strictEqual(result.code, 0, result.stderr)
      assert.throws(() => process.kill(result.pid ?? -1, 0), /ESRCH/)
      const lines = result.stdout.trimEnd().split("\n")
      assert.strictEqual(lines.length, 4, result.stdout)
      assert.strictEqual(lines[0], `→ create_agent {"name":"scout"}`)
      assert.match(
        lines[1]!,
        new RegExp(`^← create_agent ok \\(\\d+ ms\\): \\{"name":"scout","directory":"${path.join(stateDir, "agents", "scout")}","greeting":"[^"]*"\\}$`)
      )
      assert.deepStrictEqual(lines.slice(2), ["Agent scout is ready.", "sandbox answer to: how are you?"])
      assert.match(result.stderr, /INFO  voice session voice-[0-9a-f]{8} open/)
      assert.match(result.stderr, /realtime reconnected after dropped \(attempt 1\)/)
      // The next line went out only after the previous turn was done.
      const [first, second] = yield* sandbox.realtime.connections
      assert.deepStrictEqual(each(first?.received, "type"), [
        "session.update",
        "conversation.item.create",
        "response.create",
        "conversation.item.create",
        "response.create",
        "conversation.item.create",
        "response.create"
      ])
      assert.deepStrictEqual(each(second?.received, "type").slice(-1), ["response.create"])
      assert.deepStrictEqual(
        (yield* sandbox.events).map((event) => event.hook_event_type).filter((type) => type.startsWith("Voice") || type.startsWith("Tool")),
        ["VoiceSessionStarted", "ToolCalled", "ToolAnswered", "VoiceReconnected", "VoiceSessionEnded"]
      )
    }))

  it.scopedLive("at the end of input it waits for the agent commands the session started, then exits 0", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({
        realtimeScript: [
          { when: "create", calls: [{ name: "create_agent", arguments: { name: "v1" } }], text: "Created." },
          { when: "run", calls: [{ name: "command_agent", arguments: { name: "v1", prompt: "a long job" } }], text: "Started." }
        ]
      })
      const stateDir = yield* tempStateDir
      const result = yield* runProcess(["voice", "--text"], {
        OPENAI_API_KEY: "sandbox-key",
        OPENAI_REALTIME_URL: sandbox.realtime.url,
        BIG3_AGENT_BACKEND: "scripted",
        BIG3_SCRIPTED_DELAY: "1",
        BIG3_STATE_DIR: stateDir,
        OBSERVABILITY_SERVER_URL: `${sandbox.url}/events`
      }, "create it\nrun it\n")
      assert.strictEqual(result.code, 0, result.stderr)
      assert.include(result.stderr, "end of input: waiting for the agent command(s) of v1 to end")
      const directory = path.join(stateDir, "agents", "v1")
      const files = fs.readdirSync(directory).filter((file) => file.startsWith("operator-"))
      assert.strictEqual(files.length, 1)
      assert.include(fs.readFileSync(path.join(directory, files[0]!), "utf8"), "Status: completed")
    }))

  it.scopedLive("against `big3 sandbox --faults`: a server_error in the middle of a response fails that turn only; the next line is answered on the same session", () =>
    Effect.gen(function*() {
      const stateDir = yield* tempStateDir
      // The 10th server event of the first connection is the first text delta of the first
      // response (after session.created, session.updated, the user item's two events,
      // response.created, rate_limits.updated and the output item's three opening events).
      const faults = path.join(stateDir, "faults.json")
      fs.writeFileSync(faults, JSON.stringify({ realtime: [{ errorAfter: 10, code: "server_error", message: "the sandbox broke mid-answer" }] }))
      const sandbox = yield* spawnBig3(["sandbox", "--port", "0", "--faults", faults])
      yield* waitForOutput(sandbox, sandbox.stderr, /big3 sandbox listening on http:\/\/127\.0\.0\.1:\d+/)
      const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(sandbox.stderr())![1]!
      const result = yield* runProcess(["voice", "--text"], {
        OPENAI_API_KEY: "sandbox-key",
        OPENAI_REALTIME_URL: `${url.replace(/^http/, "ws")}/v1/realtime`,
        BIG3_AGENT_BACKEND: "scripted",
        BIG3_STATE_DIR: stateDir,
        OBSERVABILITY_SERVER_URL: `${url}/events`
      }, "first question\nsecond question\n")
      assert.strictEqual(result.code, 0, result.stderr)
      assert.isFalse(isRunning(result.pid ?? -1), "the voice process is gone")
      // The failed turn printed nothing; the next line got its answer.
      assert.strictEqual(result.stdout, "sandbox answer to: second question\n")
      const warnings = result.stderr.split("\n").filter((line) => line.includes("WARN"))
      // The sandbox goes on with the cut response, as the error event lets it: its late
      // response.done is not taken as the next turn's answer.
      assert.deepStrictEqual(warnings.map((line) => line.replace(/^.*WARN\s+/, "").replace(/resp_\w+/, "resp_…")), [
        "realtime server error: server_error (server_error): the sandbox broke mid-answer",
        "the response ended failed: server_error (server_error): the sandbox broke mid-answer",
        "realtime: ignoring a stale response.done: resp_… is done already"
      ])
      assert.match(result.stderr, /voice session voice-[0-9a-f]{8} done: 2 turns, 0 tool calls, 0 reconnects\n/)
      // The plan's one step was taken by the one connection.
      const plans = yield* Effect.promise(() => fetch(`${url}/__sandbox/plans`).then((response) => response.json()))
      assert.deepStrictEqual(plans, {})
      sandbox.child.kill("SIGTERM")
      assert.strictEqual(yield* exitCodeOf(sandbox, "6 seconds"), 143)
      assert.isFalse(isRunning(sandbox.pid), "the sandbox process is gone")
    }))

  it.scopedLive("without OPENAI_API_KEY it exits 1 with a clear message and connects nowhere", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const stateDir = yield* tempStateDir
      const result = yield* big3(["voice", "--text"], {
        OPENAI_REALTIME_URL: server.url,
        BIG3_STATE_DIR: stateDir,
        OBSERVABILITY_SERVER_URL: "http://127.0.0.1:9/events"
      })
      assert.strictEqual(result.code, 1)
      assert.strictEqual(
        result.stderr,
        "big3 voice: Unauthorized: OPENAI_API_KEY is not set: set it to an OpenAI API key; no connection was attempted"
      )
      assert.strictEqual(result.stdout, "")
      assert.strictEqual(server.upgrades(), 0)
    }))

  it.scopedLive("when the first connect's retries run out it exits 1 naming the cause", () =>
    Effect.gen(function*() {
      const server = yield* bareServer({ onUpgrade: () => ({ status: 503 }) })
      const stateDir = yield* tempStateDir
      const result = yield* big3(["voice", "--text"], {
        OPENAI_API_KEY: "test-key",
        OPENAI_REALTIME_URL: server.url,
        BIG3_STATE_DIR: stateDir,
        BIG3_RETRY_NETWORK_INITIAL_DELAY: "0.01",
        OBSERVABILITY_SERVER_URL: "http://127.0.0.1:9/events"
      })
      assert.strictEqual(result.code, 1)
      assert.strictEqual(
        result.stderr,
        "big3 voice: ServiceUnavailable: openai_realtime answered HTTP 503: invalid_request_error: refused"
      )
      assert.strictEqual(server.upgrades(), 3)
    }))
})
