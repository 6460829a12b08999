/**
 * `big3 browse` in-process, against the Sandbox's computer-use plan and pages over 127.0.0.1 and a
 * real Chromium; the environment comes from a ConfigProvider, as the CLI tests do.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Sandbox from "../src/Sandbox.js"
import { big3 } from "./support/cli.js"
import { at } from "./support/json.js"
import { runningChildren } from "./support/processes.js"

const environment = (sandbox: Sandbox.Service, stateDir: string, extra: Record<string, string> = {}) => ({
  GEMINI_API_KEY: "sandbox-key",
  GEMINI_BASE_URL: sandbox.url,
  OBSERVABILITY_SERVER_URL: `${sandbox.url}/events`,
  BIG3_STATE_DIR: stateDir,
  // Bounds every input as well: roomy enough for a loaded machine.
  BIG3_TIMEOUT_BROWSER_PAGE_LOAD: "15",
  ...(process.env["BIG3_CHROMIUM_PATH"] === undefined ? {} : { BIG3_CHROMIUM_PATH: process.env["BIG3_CHROMIUM_PATH"] }),
  ...extra
})

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "big3-browse-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** Action lines with their durations blanked, so they compare exactly. */
const withoutTimes = (text: string) => text.replace(/ \d+ms/g, " _ms")

describe("big3 browse", () => {
  it.scopedLive("prints one line per action as it runs, then the outcome; exit 0 when completed", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const stateDir = yield* tempDir
      const form = `${sandbox.url}/pages/form`
      yield* sandbox.setComputerUsePlan([
        [{ functionCall: { name: "click_at", args: { x: 2000, y: 1 } } }],
        [{ functionCall: { name: "type_text_at", args: { ...Sandbox.formTargets.name, text: "Ada", press_enter: true } } }],
        [{ text: "Submitted the form as Ada." }]
      ])
      const { code, stderr, stdout } = yield* big3(["browse", "Sign up as Ada", "--url", form], environment(sandbox, stateDir))
      assert.strictEqual(code, 0, stderr)
      const submitted = `${sandbox.url}/pages/submitted?name=Ada&email=`
      assert.strictEqual(
        withoutTimes(stdout),
        [
          `✘ click_at {"x":2000,"y":1} _ms: click_at: x=2000 is outside the screen: coordinates are normalized to 0–999`,
          `✔ type_text_at {"x":500,"y":250,"text":"Ada","press_enter":true} _ms`,
          `completed after 3 turns and 2 actions; final URL ${submitted}`,
          "Submitted the form as Ada."
        ].join("\n")
      )
      assert.deepStrictEqual(runningChildren(process.pid, "chromium"), [])
    }), 90_000)

  it.scopedLive("--json prints the result object (lines go to stderr) and exits 1 when the turns run out", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const stateDir = yield* tempDir
      yield* sandbox.setComputerUsePlan([[{ functionCall: { name: "scroll_document", args: { direction: "down" } } }]])
      const { code, stderr, stdout } = yield* big3(
        ["browse", "Scroll", "--max-turns", "1", "--json"],
        environment(sandbox, stateDir)
      )
      assert.strictEqual(code, 1)
      const result: unknown = JSON.parse(stdout)
      const ms = at(result, "actions", 0, "ms")
      assert.isNumber(ms)
      assert.deepStrictEqual(result, {
        status: "max_turns",
        text: "stopped after 1 model turns without finishing the task",
        turns: 1,
        actions: [{ name: "scroll_document", args: { direction: "down" }, ok: true, ms }],
        finalUrl: "about:blank"
      })
      assert.include(withoutTimes(stderr), `✔ scroll_document {"direction":"down"} _ms`)
      assert.deepStrictEqual(runningChildren(process.pid, "chromium"), [])
    }), 90_000)

  it.scopedLive("a BIG3_BROWSER_CONFIRM other than allow or deny is a configuration error (exit 78)", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const stateDir = yield* tempDir
      const { code, stderr } = yield* big3(["browse", "x"], environment(sandbox, stateDir, { BIG3_BROWSER_CONFIRM: "maybe" }))
      assert.strictEqual(code, 78)
      assert.include(stderr, "BIG3_BROWSER_CONFIRM")
    }), 30_000)

  it.effect("--max-turns 0 is a usage error (exit 2), before any browser or request", () =>
    Effect.gen(function*() {
      const { code, stderr } = yield* big3(["browse", "x", "--max-turns", "0"])
      assert.strictEqual(code, 2)
      assert.strictEqual(stderr, "big3 browse: --max-turns must be 1 or more, got 0")
    }))
})
