import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"
import { run } from "../src/cli/app.js"
import { report } from "../src/cli/report.js"
import { describeConfigError, loadModule } from "../src/cli/shared.js"
import { version } from "../src/cli/version.js"
import * as Metrics from "../src/Metrics.js"
import * as Sandbox from "../src/Sandbox.js"
import { captureConsole } from "./support/capture.js"
import { listen } from "./support/loopback.js"
import { tempDir } from "./support/tempDir.js"

const big3 = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  captureConsole(run(["node", "big3", ...args])).pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" })),
    Effect.provide(NodeContext.layer)
  )

describe("big3 CLI", () => {
  it.effect("config --json lists every value with its source", () =>
    Effect.gen(function*() {
      const { exit, stdout } = yield* big3(["config", "--json"], { BIG3_TIMEOUT_GEMINI_API: "30" })
      assert.deepStrictEqual(exit._tag === "Success" ? exit.value : undefined, 0)
      const parsed: { entries: Array<{ key: string; value: unknown; source: string }> } = JSON.parse(stdout)
      const gemini = parsed.entries.find((entry) => entry.key === "BIG3_TIMEOUT_GEMINI_API")
      assert.deepStrictEqual(gemini && { value: gemini.value, source: gemini.source }, { value: 30, source: "env" })
      const creation = parsed.entries.find((entry) => entry.key === "BIG3_TIMEOUT_AGENT_CREATION")
      assert.deepStrictEqual(creation && { value: creation.value, source: creation.source }, { value: 60, source: "default" })
      assert.isTrue(parsed.entries.some((entry) => entry.key === "BIG3_RETRY_GEMINI_MAX_ATTEMPTS"))
      assert.isTrue(parsed.entries.some((entry) => entry.key === "BIG3_BUDGET_RATIO"))
    }))

  it.effect("config prints a table with the source of each value", () =>
    Effect.gen(function*() {
      const { stdout } = yield* big3(["config"], { BIG3_RETRY_GEMINI_MAX_ATTEMPTS: "4" })
      assert.match(stdout, /gemini\s+maxAttempts\s+4\s+env\s+BIG3_RETRY_GEMINI_MAX_ATTEMPTS/)
      assert.match(stdout, /api\s+gemini_api\s+45s\s+default\s+BIG3_TIMEOUT_GEMINI_API/)
    }))

  it.effect("bad config exits 78 with the ConfigError message", () =>
    Effect.gen(function*() {
      const { exit, stderr } = yield* big3(["config"], { BIG3_TIMEOUT_GEMINI_API: "-3" })
      assert.deepStrictEqual(exit._tag === "Success" ? exit.value : undefined, 78)
      assert.include(stderr, "BIG3_TIMEOUT_GEMINI_API")
      assert.include(stderr, "negative")
    }))

  it.scoped("a FIFO as BIG3_CONFIG exits 78 at once with one line, instead of waiting for a writer", () =>
    Effect.gen(function*() {
      const fifo = path.join(yield* tempDir("big3-cli-fifo-"), "config.fifo")
      execFileSync("mkfifo", [fifo])
      const { exit, stderr, stdout } = yield* big3(["config"], { BIG3_CONFIG: fifo })
      assert.strictEqual(exit._tag === "Success" ? exit.value : undefined, 78)
      assert.strictEqual(stdout, "")
      assert.strictEqual(stderr, `big3: configuration error: BIG3_CONFIG=${fifo}: it is a FIFO; expected a regular file`)
    }))

  it.effect("a 10 MB value is not echoed whole: the line shows its first 80 characters and its length", () =>
    Effect.gen(function*() {
      const { exit, stderr } = yield* big3(["config"], { BIG3_RETRY_GEMINI_FACTOR: "7".repeat(10_000_000) })
      assert.strictEqual(exit._tag === "Success" ? exit.value : undefined, 78)
      assert.strictEqual(
        stderr,
        `big3: configuration error: BIG3_RETRY_GEMINI_FACTOR="${"7".repeat(80)}"… (10,000,000 characters) ` +
          `(from the environment) is not valid: expected a growth factor from 1 to 100`
      )
    }))

  it.effect("Effect's own Config messages, which echo the value, are cut at 2,000 characters when printed", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Config.integer("BIG3_EVENTS_BATCH_SIZE").pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["BIG3_EVENTS_BATCH_SIZE", "x".repeat(10_000_000)]])))
        )
      )
      const total = `${error.message.length.toLocaleString("en-US")} characters`
      assert.isAbove(error.message.length, 10_000_000)
      assert.strictEqual(
        describeConfigError(error),
        `BIG3_EVENTS_BATCH_SIZE: ${error.message.slice(0, 2_000)}… (${total})`
      )
    }))

  it.effect("an unknown command exits 2", () =>
    Effect.gen(function*() {
      const { exit } = yield* big3(["confg"])
      assert.deepStrictEqual(exit._tag === "Success" ? exit.value : undefined, 2)
    }))

  it.effect("--metrics prints a Prometheus snapshot after the command", () =>
    Effect.gen(function*() {
      yield* Metric.incrementBy(Metrics.calls.pipe(Metric.tagged("service", "cli-test")), 1)
      const { stdout } = yield* big3(["config", "--json", "--metrics"])
      assert.include(stdout, "# TYPE big3_calls_total counter")
      assert.include(stdout, `big3_calls_total{service="cli-test"} 1`)
    }))

  it.scopedLive("gemini asks the configured server through the runtime's Gemini stage and prints the answer", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const env = { GEMINI_API_KEY: "sandbox-key", GEMINI_BASE_URL: sandbox.url, BIG3_STATE_DIR: "/nonexistent/big3-state" }
      const { exit, stdout } = yield* big3(["gemini", "hello cli"], env)
      assert.deepStrictEqual(exit._tag === "Success" ? exit.value : undefined, 0)
      assert.strictEqual(stdout, "sandbox answer to: hello cli")
      const refused = yield* big3(["gemini", "hello cli"], { ...env, GEMINI_API_KEY: "" })
      assert.deepStrictEqual(refused.exit._tag === "Success" ? refused.exit.value : undefined, 1)
      assert.strictEqual(refused.stderr, "big3 gemini: Unauthorized: GEMINI_API_KEY is not set: set it to a Gemini API key; no request was sent")
    }))

  it.scopedLive("gemini: an answer withheld for SAFETY exits 1 saying so; one cut at MAX_TOKENS prints its text and says it was cut", () =>
    Effect.gen(function*() {
      // A bare server answering as Gemini does when it stops a candidate early (candidate.finishReason).
      const answers = [
        { candidates: [{ finishReason: "SAFETY", index: 0 }] },
        { candidates: [{ content: { role: "model", parts: [{ text: "The answer is" }] }, finishReason: "MAX_TOKENS", index: 0 }] },
        { candidates: [{ finishReason: "RECITATION", finishMessage: "recited a source", index: 0 }] }
      ]
      let asked = 0
      const { url } = yield* listen(http.createServer((request, response) => {
        request.resume()
        response.writeHead(200, { "content-type": "application/json" })
        response.end(JSON.stringify(answers[asked++ % answers.length]))
      }))
      const env = { GEMINI_API_KEY: "bare-key", GEMINI_BASE_URL: url, BIG3_STATE_DIR: "/nonexistent/big3-state" }
      const outcomes = []
      for (let i = 0; i < answers.length; i++) {
        const { exit, stderr, stdout } = yield* big3(["gemini", "hello"], env)
        outcomes.push({ code: exit._tag === "Success" ? exit.value : undefined, stdout, stderr })
      }
      assert.deepStrictEqual(outcomes, [
        { code: 1, stdout: "", stderr: "big3 gemini: gemini gave no answer: it stopped with SAFETY" },
        { code: 0, stdout: "The answer is", stderr: "big3 gemini: the answer stopped before its end (MAX_TOKENS)" },
        { code: 1, stdout: "", stderr: "big3 gemini: gemini gave no answer: it stopped with RECITATION: recited a source" }
      ])
    }))

  it.effect("a command whose module fails to load says so in one line and exits 1, without a stack trace", () =>
    Effect.gen(function*() {
      const missing = Object.assign(new Error("Cannot find module './events-run.js'"), { code: "ERR_MODULE_NOT_FOUND" })
      const { exit, stderr } = yield* captureConsole(
        Effect.catchAllCause(Effect.as(loadModule("events", () => Promise.reject(missing)), 0), (cause) => report(cause))
      )
      assert.deepStrictEqual(exit._tag === "Success" ? exit.value : undefined, 1)
      assert.strictEqual(
        stderr,
        "big3 events: cannot load its module (Cannot find module './events-run.js'); reinstall big3 (npm install) and try again"
      )
    }))

  it("the CLI version matches package.json", () => {
    const pkg: { version: string } = JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8"))
    assert.strictEqual(version, pkg.version)
  })
})
