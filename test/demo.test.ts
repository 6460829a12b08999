import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { run } from "../src/cli/app.js"
import type { DemoReport } from "../src/demo/Demo.js"
import { captureConsole } from "./support/capture.js"
import { runningChildren } from "./support/processes.js"

// The demo on real loopback HTTP with its waits scaled down (--fast): a few seconds of real time.
describe("big3 demo", () => {
  it.live("plays every scenario with a fixed seed and its table's numbers hold", () =>
    Effect.gen(function*() {
      const { exit, stdout } = yield* captureConsole(run(["node", "big3", "demo", "--fast", "--seed", "7", "--json"]))
      assert.deepStrictEqual(exit._tag === "Success" ? exit.value : exit, 0)
      const report: DemoReport = JSON.parse(stdout)
      const byName = new Map(report.scenarios.map((scenario) => [scenario.scenario, scenario]))
      assert.strictEqual(report.seed, 7)

      const network = byName.get("intermittent network")
      assert.strictEqual(network?.attempts, 3)
      assert.strictEqual(network?.waits.length, 2)
      assert.isTrue(network?.ok)

      // How long the waits were is measured on the live clock, so the test does not compare it:
      // the TestClock tests of Resilience and Agents pin the timing; each scenario's own `ok`
      // says whether what it measured matched its claim.
      const rateLimit = byName.get("API rate limit")
      assert.strictEqual(rateLimit?.attempts, 2)
      assert.strictEqual(rateLimit?.waits.length, 1)
      assert.isTrue(rateLimit?.ok)

      const restart = byName.get("observability server restart")
      assert.strictEqual(restart?.eventsLost, 0)
      assert.strictEqual(restart?.eventsDelivered, restart?.eventsEmitted)
      assert.isAbove(Number(restart?.details["spooled"]), 0, "some events went through the spool")

      const longRunning = byName.get("long-running operation")
      assert.strictEqual(longRunning?.outcome, `command cut at its ${(Number(longRunning?.details["deadlineMs"]) / 1000).toFixed(2)}s deadline`)
      assert.isTrue(longRunning?.ok)

      const endToEnd = byName.get("end-to-end flow")
      assert.isTrue(endToEnd?.ok)
      assert.strictEqual(endToEnd?.eventsLost, 0)

      const voice = byName.get("voice loop")
      assert.isTrue(voice?.ok)
      assert.strictEqual(voice?.attempts, 3)
      assert.strictEqual(voice?.waits.length, 2)
      assert.strictEqual(voice?.details["reconnects"], "dropped, session_expired")
      assert.strictEqual(voice?.details["toolRuns"], "create_agent×1, command_agent×1, check_agent_result×1")
      assert.strictEqual(voice?.details["operatorFiles"], 1)
      const browser = byName.get("browser agent")
      assert.isTrue(browser?.ok, browser?.outcome)
      assert.strictEqual(browser?.details["status"], "completed")
      assert.strictEqual(browser?.attempts, 8, "six model turns and two failed requests")
      assert.isAtLeast(browser?.waits[1] ?? 0, Number(browser?.details["hintMs"]), "the wait after the 429 honours its hint")
      assert.strictEqual(browser?.eventsLost, 0)
      assert.deepStrictEqual(runningChildren(process.pid, "chromium"), [], "the demo's Chromium is gone")

      assert.strictEqual(report.events.lost, 0)
      assert.strictEqual(report.events.delivered, report.events.emitted)
      assert.isTrue(report.scenarios.every((scenario) => scenario.ok))
    }).pipe(
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map())),
      Effect.provide(NodeContext.layer),
      Logger.withMinimumLogLevel(LogLevel.None)
    ), 60_000)

  it.live("without Chromium it says how to install it and plays the other scenarios", () =>
    Effect.gen(function*() {
      const { exit, stdout } = yield* captureConsole(run(["node", "big3", "demo", "--fast", "--seed", "7"]))
      assert.deepStrictEqual(exit._tag === "Success" ? exit.value : exit, 0)
      assert.include(stdout, "▶ browser agent: skipped, Chromium was not found at /nonexistent/chromium: install it (Debian/Ubuntu: apt-get install chromium)")
      assert.include(stdout, "end-to-end flow")
      assert.notInclude(stdout, "✘")
    }).pipe(
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["BIG3_CHROMIUM_PATH", "/nonexistent/chromium"]]))),
      Effect.provide(NodeContext.layer),
      Logger.withMinimumLogLevel(LogLevel.None)
    ), 60_000)

  it.live("--live without keys says which to set and exits 78", () =>
    Effect.gen(function*() {
      const { exit, stderr } = yield* captureConsole(run(["node", "big3", "demo", "--live"]))
      assert.deepStrictEqual(exit._tag === "Success" ? exit.value : exit, 78)
      assert.include(stderr, "GEMINI_API_KEY")
      assert.include(stderr, "ANTHROPIC_API_KEY")
    }).pipe(
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map())),
      Effect.provide(NodeContext.layer),
      Logger.withMinimumLogLevel(LogLevel.None)
    ), 60_000)
})
