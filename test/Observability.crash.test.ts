/**
 * Crashes of a library process: a real child process (test/support/emitter.ts) emits events to
 * a bare loopback sink written here, then is killed. What reached the sink or the spool is
 * counted against what `emit` had returned for. Every child is gone (checked by pid) when a test
 * ends.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { type ChildProcess, fork } from "node:child_process"
import * as path from "node:path"
import * as Store from "../src/Store.js"
import { isRunning } from "./support/processes.js"
import { eventsSink } from "./support/sink.js"
import { tempDir } from "./support/tempDir.js"

interface Emitted {
  readonly emitted: number
  readonly millis: number
}

/**
 * Starts the emitter, waits for its report, sends `signal`, and waits for it to end. Returns the
 * report, how it ended and its state directory.
 */
const crash = (options: {
  readonly url: string
  readonly count: number
  readonly signal: NodeJS.Signals
  readonly durableLast?: boolean
  readonly env?: Record<string, string>
}) =>
  Effect.gen(function*() {
    const stateDir = yield* tempDir("big3-crash-")
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(path.join("test", "support", "emitter.ts"), [String(options.count), ...(options.durableLast ? ["durable-last"] : [])], {
          execArgv: ["--import", "tsx"],
          stdio: ["ignore", "ignore", "pipe", "ipc"],
          env: {
            ...process.env,
            BIG3_STATE_DIR: stateDir,
            OBSERVABILITY_SERVER_URL: options.url,
            ...options.env
          }
        })
      ),
      (child: ChildProcess) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
    )
    let stderr = ""
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal }))
    )
    const report = yield* Effect.async<Emitted, Error>((resume) => {
      child.once("message", (message: Emitted) => resume(Effect.succeed(message)))
      child.once("exit", (code, signal) => resume(Effect.fail(new Error(`the emitter ended (${code ?? signal}) before it reported: ${stderr}`))))
    })
    child.kill(options.signal)
    const exit = yield* Effect.promise(() => ended)
    assert.isFalse(isRunning(child.pid ?? 0), "the emitter is gone")
    return { report, exit, stateDir, stderr }
  })

/** The ids in the spool of a state directory. */
const spooled = (stateDir: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: string }>`SELECT id FROM observability_spool`).pipe(
    Effect.map((rows) => new Set(rows.map((row) => row.id))),
    Effect.provide(Store.layer({ filename: path.join(stateDir, "big3.db") })),
    Effect.scoped,
    Effect.orDie
  )

const lostOf = (count: number, delivered: ReadonlySet<string>, kept: ReadonlySet<string>): ReadonlyArray<string> => {
  const lost: Array<string> = []
  for (let n = 1; n <= count; n++) {
    const id = `crash-${n}`
    if (!delivered.has(id) && !kept.has(id)) lost.push(id)
  }
  return lost
}

describe("a library process that crashes", () => {
  it.scopedLive("SIGKILL after 3,000 emits and one emitDurable: nothing is lost (every event reached the sink or the spool)", () =>
    Effect.gen(function*() {
      const server = yield* eventsSink({ delayMillis: 20 })
      const { exit, report, stateDir } = yield* crash({ url: server.url, count: 3_000, signal: "SIGKILL", durableLast: true })
      assert.strictEqual(exit.signal, "SIGKILL")
      assert.strictEqual(report.emitted, 3_001)
      const kept = yield* spooled(stateDir)
      assert.deepStrictEqual(lostOf(3_000, new Set(server.received.keys()), kept), [])
      assert.isTrue(server.received.has("crash-last") || kept.has("crash-last"))
    }), { timeout: 120_000 })

  it.scopedLive("SIGKILL right after 3,000 emits returned: at most the last group commit's events are lost", () =>
    Effect.gen(function*() {
      const server = yield* eventsSink({ delayMillis: 20 })
      const { exit, report, stateDir } = yield* crash({
        url: server.url,
        count: 3_000,
        signal: "SIGKILL",
        env: { BIG3_EVENTS_COMMIT_EVENTS: "100" }
      })
      assert.strictEqual(exit.signal, "SIGKILL")
      assert.strictEqual(report.emitted, 3_000)
      const lost = lostOf(3_000, new Set(server.received.keys()), yield* spooled(stateDir))
      // The window: events emitted after the last group commit (≤ commitEvents waiting, give or
      // take the few a fiber switch lets in).
      assert.isAtMost(lost.length, 200, `lost ${lost.length}: ${lost.slice(0, 5).join(", ")}…`)
    }), { timeout: 120_000 })

  it.scopedLive("SIGTERM on a library process (no handler of its own) loses nothing, and it still ends by the signal", () =>
    Effect.gen(function*() {
      const server = yield* eventsSink({ delayMillis: 20 })
      const { exit, report, stateDir } = yield* crash({ url: server.url, count: 3_000, signal: "SIGTERM" })
      assert.strictEqual(exit.signal, "SIGTERM")
      assert.strictEqual(report.emitted, 3_000)
      assert.deepStrictEqual(lostOf(3_000, new Set(server.received.keys()), yield* spooled(stateDir)), [])
    }), { timeout: 120_000 })
})
