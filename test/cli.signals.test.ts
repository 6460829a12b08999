/**
 * The `big3` bin as a process (`node --import tsx src/cli/main.ts`, no build needed): exit codes
 * after SIGINT / SIGTERM, for a bad command and for bad configuration; `big3 sandbox --faults`
 * driven by another process through its admin API. Everything on 127.0.0.1.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { run } from "../src/cli/app.js"
import * as Sandbox from "../src/Sandbox.js"
import { exitCodeOf, spawnBig3, startUp, waitForOutput } from "./support/bin.js"
import { captureConsole, captureLogs } from "./support/capture.js"
import { each } from "./support/json.js"
import { tempDir } from "./support/tempDir.js"

/** After a signal: interrupt, run the finalizers (flush events), exit. */
const shutdown = Duration.seconds(6)

const tempStateDir = tempDir("big3-cli-signals-")

describe("big3 process", () => {
  it.scopedLive("SIGINT stops `big3 sandbox` with exit code 130", () =>
    Effect.gen(function*() {
      const big3 = yield* spawnBig3(["sandbox", "--port", "0"])
      yield* waitForOutput(big3, big3.stderr, /big3 sandbox listening on http:\/\/127\.0\.0\.1:\d+/)
      big3.child.kill("SIGINT")
      assert.strictEqual(yield* exitCodeOf(big3, shutdown), 130)
    }))

  /** `agents command --wait` on a backend that never ends, stopped by `signal`: it must exit `code`. */
  const stopsCommandWith = (signal: NodeJS.Signals, code: number) =>
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
      big3.child.kill(signal)
      assert.strictEqual(yield* exitCodeOf(big3, shutdown), code)

      const operatorFile = big3.stdout().trim().split("\n")[0]!
      assert.match(fs.readFileSync(operatorFile, "utf8"), /^- Status: interrupted$/m)
      const types = (yield* sandbox.events).map((event) => event.hook_event_type)
      assert.includeMembers(types, ["AgentCommandStarted", "AgentCommandInterrupted"])
    })

  it.scopedLive("SIGTERM stops `agents command --wait` with 143, recording the interruption and flushing its events", () =>
    stopsCommandWith("SIGTERM", 143))

  // A closed terminal (or ssh session) sends SIGHUP; Node's default for it kills the process on
  // the spot, skipping every finalizer: the operator file stayed "running", Chromium's profile stayed.
  it.scopedLive("SIGHUP stops `agents command --wait` as SIGTERM does, with 129", () =>
    stopsCommandWith("SIGHUP", 129))

  // `big3 demo | head -1`: the reader goes away while the demo still prints. Node reported the
  // EPIPE as an unhandled 'error' event (a stack trace, exit 1) and skipped every finalizer.
  it.scopedLive("a closed stdout stops `big3 demo` with 141 and no stack trace, as SIGPIPE would", () =>
    Effect.gen(function*() {
      // The demo keeps its state in a directory under TMPDIR, removed by a finalizer.
      const tmp = yield* tempStateDir
      const big3 = yield* spawnBig3(["demo", "--fast"], { BIG3_STATE_DIR: tmp, TMPDIR: tmp })
      yield* waitForOutput(big3, big3.stdout, /\n/)
      big3.child.stdout!.destroy()
      assert.strictEqual(yield* exitCodeOf(big3, shutdown), 141)
      assert.notMatch(big3.stderr(), /EPIPE|Unhandled|\n\s+at /)
      // (tsx keeps its cache there too.)
      assert.deepStrictEqual(fs.readdirSync(tmp).filter((name) => name.startsWith("big3-")), [])
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
