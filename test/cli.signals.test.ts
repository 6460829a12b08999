/**
 * The `big3` bin as a process (`node --import tsx src/cli/main.ts`, no build needed): exit codes
 * after SIGINT / SIGTERM, for a bad command and for bad configuration; `big3 sandbox --faults`
 * driven by another process through its admin API. Everything on 127.0.0.1.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { run } from "../src/cli/app.js"
import * as Sandbox from "../src/Sandbox.js"
import { captureConsole, captureLogs } from "./support/capture.js"
import { each } from "./support/json.js"

const root = fileURLToPath(new URL("..", import.meta.url))

/** Start-up through tsx takes about 2.5 s; a loaded machine may take longer. */
const startUp = Duration.seconds(12)
/** After a signal: interrupt, run the finalizers (flush events), exit. */
const shutdown = Duration.seconds(6)

/** The test runner's environment without anything that would configure big3. */
const baseEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^(BIG3_|OBSERVABILITY_|GEMINI_|ANTHROPIC_|CLAUDE_)/.test(key))
  )

interface Big3Process {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  /** The exit code, or the signal name when the process died of it. */
  readonly exit: Deferred.Deferred<number | string>
}

/** Spawns `big3 args…`; killed (SIGKILL) with the scope if it is still running. */
const spawnBig3 = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const exit = yield* Deferred.make<number | string>()
      const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], {
        cwd: root,
        env: { ...baseEnv(), BIG3_LOG_LEVEL: "info", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
      child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
      child.on("exit", (code, signal) => Deferred.unsafeDone(exit, Effect.succeed(code ?? signal ?? "unknown")))
      return { child, stdout: () => stdout, stderr: () => stderr, exit } satisfies Big3Process
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )

/** Waits until `read()` matches `pattern`; fails naming what was seen otherwise. */
const waitForOutput = (running: Big3Process, read: () => string, pattern: RegExp) =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(startUp)
    while (!pattern.test(read())) {
      if (Date.now() > deadline || (yield* Deferred.isDone(running.exit))) {
        return yield* Effect.dieMessage(`no ${pattern} in time; stdout:\n${running.stdout()}\nstderr:\n${running.stderr()}`)
      }
      yield* Effect.sleep("50 millis")
    }
  })

const exitCodeOf = (running: Big3Process, within: Duration.Duration) =>
  Deferred.await(running.exit).pipe(
    Effect.timeoutFail({
      duration: within,
      onTimeout: () => new Error(`big3 did not exit in time; stderr:\n${running.stderr()}`)
    }),
    Effect.orDie
  )

const tempStateDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "big3-cli-signals-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

describe("big3 process", () => {
  it.scopedLive("SIGINT stops `big3 sandbox` with exit code 130", () =>
    Effect.gen(function*() {
      const big3 = yield* spawnBig3(["sandbox", "--port", "0"])
      yield* waitForOutput(big3, big3.stderr, /big3 sandbox listening on http:\/\/127\.0\.0\.1:\d+/)
      big3.child.kill("SIGINT")
      assert.strictEqual(yield* exitCodeOf(big3, shutdown), 130)
    }))

  it.scopedLive("SIGTERM stops `agents command --wait` with 143, recording the interruption and flushing its events", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const stateDir = yield* tempStateDir
      const env = {
        BIG3_STATE_DIR: stateDir,
        BIG3_AGENT_BACKEND: "scripted-hang",
        OBSERVABILITY_SERVER_URL: `${sandbox.url}/events`
      }
      // The agent is created in-process: one process start less.
      const created = yield* captureConsole(run(["node", "big3", "agents", "create", "--name", "sleeper", "--type", "coder"])).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" })),
        Effect.provide(captureLogs().layer),
        Effect.provide(NodeContext.layer)
      )
      assert.deepStrictEqual(created.exit._tag === "Success" ? created.exit.value : created.exit, 0)

      const big3 = yield* spawnBig3(["agents", "command", "sleeper", "wait forever", "--wait"], env)
      yield* waitForOutput(big3, big3.stdout, /operator-[A-Za-z0-9_-]+\.md\n/)
      big3.child.kill("SIGTERM")
      assert.strictEqual(yield* exitCodeOf(big3, shutdown), 143)

      const operatorFile = big3.stdout().trim().split("\n")[0]!
      assert.match(fs.readFileSync(operatorFile, "utf8"), /^- Status: interrupted$/m)
      const types = (yield* sandbox.events).map((event) => event.hook_event_type)
      assert.includeMembers(types, ["AgentCommandStarted", "AgentCommandInterrupted"])
    }))

  it.scopedLive("an unknown command exits 2", () =>
    Effect.gen(function*() {
      const big3 = yield* spawnBig3(["nonsense"])
      assert.strictEqual(yield* exitCodeOf(big3, startUp), 2)
    }))

  it.scopedLive("bad configuration exits 78 naming the key", () =>
    Effect.gen(function*() {
      const big3 = yield* spawnBig3(["config"], { BIG3_TIMEOUT_GEMINI_API: "abc" })
      assert.strictEqual(yield* exitCodeOf(big3, startUp), 78)
      assert.include(big3.stderr(), "BIG3_TIMEOUT_GEMINI_API")
    }))

  it.scopedLive("another process drives `big3 sandbox --faults FILE` through the admin API", () =>
    Effect.gen(function*() {
      const dir = yield* tempStateDir
      const faults = path.join(dir, "faults.json")
      fs.writeFileSync(faults, JSON.stringify({ gemini: [503, { status: 429, retryAfter: "2 seconds", quota: "day" }] }))
      const big3 = yield* spawnBig3(["sandbox", "--port", "0", "--faults", faults])
      yield* waitForOutput(big3, big3.stderr, /big3 sandbox listening on http:\/\/127\.0\.0\.1:\d+/)
      const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(big3.stderr())![1]!
      const fetchJson = (target: string, init: RequestInit = {}) =>
        Effect.tryPromise(async () => {
          const response = await fetch(`${url}${target}`, { ...init, signal: AbortSignal.timeout(5_000) })
          const text = await response.text()
          const body: unknown = text === "" ? undefined : JSON.parse(text)
          return { status: response.status, body }
        })
      const ask = fetchJson("/v1beta/models/gemini-2.5-flash:generateContent", {
        method: "POST",
        headers: { "x-goog-api-key": "sandbox-key" },
        body: JSON.stringify({ contents: [{ parts: [{ text: "hi" }] }] })
      })
      // The file's plan is in force from the start.
      assert.deepStrictEqual(yield* fetchJson("/__sandbox/plans"), {
        status: 200,
        body: { gemini: [503, { status: 429, retryAfter: 2000, quota: "day" }] }
      })
      assert.strictEqual((yield* ask).status, 503)
      // The admin API replaces it while the sandbox runs.
      const put = yield* fetchJson("/__sandbox/plans/gemini", { method: "PUT", body: JSON.stringify([500]) })
      assert.strictEqual(put.status, 204)
      assert.deepStrictEqual([(yield* ask).status, (yield* ask).status], [500, 200])
      const recorded = yield* fetchJson("/__sandbox/requests?route=gemini")
      assert.deepStrictEqual(each(recorded.body, "outcome"), [503, 500, 200])
      big3.child.kill("SIGTERM")
      assert.strictEqual(yield* exitCodeOf(big3, shutdown), 143)
      const pid = big3.child.pid!
      assert.throws(() => process.kill(pid, 0), /ESRCH/, "the sandbox process is gone")
    }))
})
