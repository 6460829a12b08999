/**
 * The browser agent end to end: a real Chromium on local pages, the real Gemini client (undici)
 * over 127.0.0.1 to the Sandbox's computer-use plan or to a bare Gemini written here, and the real
 * Observability client delivering to the Sandbox. Each test checks by process id that Chromium is
 * gone when `run` has returned.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import * as http from "node:http"
import * as Browser from "../src/Browser.js"
import * as BrowserAgent from "../src/BrowserAgent.js"
import * as Gemini from "../src/Gemini.js"
import * as Observability from "../src/Observability.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Runtime from "../src/Runtime.js"
import * as Sandbox from "../src/Sandbox.js"
import * as Store from "../src/Store.js"
import { at, each } from "./support/json.js"
import { listen } from "./support/loopback.js"
import { at as pageAt, servePages } from "./support/pages.js"
import { commandLine, isRunning, runningChildren, runningInGroup } from "./support/processes.js"

const chromium = process.env["BIG3_CHROMIUM_PATH"] ?? Browser.defaultExecutablePath
const key = "sandbox-key"

/** The browser, recording the process id of every Chromium it starts. */
const recordingBrowser = (pids: Array<number>) =>
  Layer.effect(
    Browser.Browser,
    Effect.map(Browser.makeWith({ executablePath: chromium }), (browser) =>
      Browser.Browser.of({
        ...browser,
        open: Effect.tap(browser.open, (page) => Effect.sync(() => page.pid !== undefined && pids.push(page.pid)))
      }))
  )

const services = (
  geminiUrl: string,
  eventsUrl: string,
  pids: Array<number>,
  overrides: { readonly timeouts?: ReliabilityConfig.Overrides["timeouts"]; readonly confirm?: boolean } = {}
) =>
  Runtime.browserAgentWith({
    config: ReliabilityConfig.layerWith({
      // Every input is bounded by browser_page_load too: roomy, so a loaded machine's slow typing is
      // not a timeout; the never-loading page's test sets it short.
      timeouts: { browser_page_load: "15 seconds", ...overrides.timeouts },
      policies: { gemini: { initialDelay: "100 millis", jitter: "none" } }
    }),
    httpClient: NodeHttpClient.layerUndici,
    store: Store.layerMemory,
    gemini: Gemini.layerWith({ baseUrl: geminiUrl, apiKey: Redacted.make(key) }),
    observability: Observability.layerWith({ url: eventsUrl }),
    browser: recordingBrowser(pids),
    browserAgent: BrowserAgent.layerWith({ confirm: overrides.confirm ?? false })
  })

/** Runs one task in its own layer (built and released around it), then checks Chromium is gone. */
const runTask = (
  sandbox: Sandbox.Service,
  input: BrowserAgent.RunInput,
  overrides: Parameters<typeof services>[3] = {},
  geminiUrl = sandbox.url
) =>
  Effect.gen(function*() {
    const pids: Array<number> = []
    const result = yield* Effect.gen(function*() {
      const result = yield* BrowserAgent.run(input)
      yield* Observability.flush
      return result
    }).pipe(Effect.provide(services(geminiUrl, `${sandbox.url}/events`, pids, overrides)))
    assert.isAtMost(pids.length, 1, "at most one Chromium per task")
    for (const pid of pids) {
      assert.isFalse(isRunning(pid), `Chromium (pid ${pid}) is gone when run returns`)
      assert.deepStrictEqual(runningInGroup(pid), [])
    }
    // Also a launch cut short by the deadline: no Chromium child of this process is left.
    assert.deepStrictEqual(runningChildren(process.pid, "chromium"), [])
    return result
  })

const call = (name: string, args: Record<string, unknown> = {}) => [{ functionCall: { name, args } }]

/** PNG width and height from base64. */
const pngSize = (base64: unknown) => {
  const bytes = Buffer.from(typeof base64 === "string" ? base64 : "", "base64")
  return bytes.length < 24 ? undefined : { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) }
}

const geminiBodies = (sandbox: Sandbox.Service) =>
  Effect.map(sandbox.requestsFor("gemini"), (requests) => requests.filter((r) => r.outcome === 200).map((r) => r.body))

/** The function responses of the last turn of a recorded request body. */
const lastAnswers = (body: unknown) => {
  const contents = at(body, "contents")
  return each(at(Array.isArray(contents) ? contents[contents.length - 1] : undefined, "parts"), "functionResponse")
}

/** The keys of a JSON object, sorted ([] for anything else). */
const keysOf = (value: unknown): ReadonlyArray<string> => Predicate.isRecord(value) ? Object.keys(value).sort() : []

const quiet = Logger.withMinimumLogLevel(LogLevel.None)

describe("BrowserAgent (real Chromium, loopback)", () => {
  it.scopedLive("fills and submits the sandbox's form; every request is a computer-use request with screenshots; events arrive", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: key })
      const { email, name, send } = Sandbox.formTargets
      yield* sandbox.setComputerUsePlan([
        call("navigate", { url: `${sandbox.url}/pages/form` }),
        call("type_text_at", { ...name, text: "Ada Lovelace" }),
        call("type_text_at", { ...email, text: "ada@example.com" }),
        call("click_at", send),
        [{ text: "Signed up as Ada Lovelace." }]
      ])
      const result = yield* runTask(sandbox, { task: "Sign up for the newsletter as Ada Lovelace, ada@example.com" })
      assert.strictEqual(result.status, "completed")
      assert.strictEqual(result.text, "Signed up as Ada Lovelace.")
      assert.strictEqual(result.turns, 5)
      assert.deepStrictEqual(result.actions.map((action) => [action.name, action.ok]), [
        ["navigate", true],
        ["type_text_at", true],
        ["type_text_at", true],
        ["click_at", true]
      ])
      assert.strictEqual(result.finalUrl, `${sandbox.url}/pages/submitted?name=Ada+Lovelace&email=ada%40example.com`)

      const bodies = yield* geminiBodies(sandbox)
      assert.strictEqual(bodies.length, 5)
      for (const body of bodies) assert.deepStrictEqual(at(body, "tools"), [{ computerUse: { environment: "ENVIRONMENT_BROWSER" } }])
      assert.deepStrictEqual(pngSize(at(bodies[0], "contents", 0, "parts", 1, "inlineData", "data")), { width: 1440, height: 900 })
      const answer = lastAnswers(bodies[4])[0]
      assert.deepStrictEqual(at(answer, "name"), "click_at")
      assert.deepStrictEqual(at(answer, "response"), { url: result.finalUrl })
      assert.strictEqual(at(answer, "parts", 0, "inlineData", "mimeType"), "image/png")
      assert.deepStrictEqual(pngSize(at(answer, "parts", 0, "inlineData", "data")), { width: 1440, height: 900 })
      // Only the last 3 screenshot turns keep their images: the first turn's image is gone by turn 5.
      assert.deepStrictEqual(at(bodies[4], "contents", 0, "parts"), [{ text: "Sign up for the newsletter as Ada Lovelace, ada@example.com" }])

      const types = (yield* sandbox.events).map((event) => event.hook_event_type)
      assert.deepStrictEqual(types, ["BrowserTaskStarted", "BrowserAction", "BrowserAction", "BrowserAction", "BrowserAction", "BrowserTaskFinished"])
      const finished = (yield* sandbox.events).at(-1)
      assert.deepStrictEqual([at(finished, "payload", "status"), at(finished, "payload", "turns")], ["completed", 5])
    }).pipe(quiet), 90_000)

  it.scopedLive("a bad action is answered with an error and the task goes on", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: key })
      yield* sandbox.setComputerUsePlan([
        call("click_at", { x: 1500, y: 100 }),
        call("navigate", { url: `${sandbox.url}/pages/form` }),
        [{ text: "On the form." }]
      ])
      const result = yield* runTask(sandbox, { task: "open the form" })
      assert.deepStrictEqual([result.status, result.turns], ["completed", 3])
      assert.deepStrictEqual(result.actions.map((action) => [action.name, action.ok, action.error]), [
        ["click_at", false, "click_at: x=1500 is outside the screen: coordinates are normalized to 0–999"],
        ["navigate", true, undefined]
      ])
      const told = lastAnswers((yield* geminiBodies(sandbox))[1])[0]
      assert.deepStrictEqual(at(told, "response"), {
        url: "about:blank",
        error: "click_at: x=1500 is outside the screen: coordinates are normalized to 0–999"
      })
      assert.deepStrictEqual(pngSize(at(told, "parts", 0, "inlineData", "data")), { width: 1440, height: 900 })
      assert.strictEqual(result.finalUrl, `${sandbox.url}/pages/form`)
    }).pipe(quiet), 90_000)

  it.scopedLive("a page that never loads hits browser_page_load, is stopped, and the next action runs", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: key })
      yield* sandbox.setComputerUsePlan([
        call("navigate", { url: `${sandbox.url}/pages/never` }),
        call("navigate", { url: `${sandbox.url}/pages/form` }),
        [{ text: "The first page never loaded; the form did." }]
      ])
      const result = yield* runTask(sandbox, { task: "open the slow page, then the form" }, {
        timeouts: { browser_page_load: "1500 millis" }
      })
      assert.strictEqual(result.status, "completed")
      assert.deepStrictEqual(result.actions.map((action) => [action.name, action.ok, action.error]), [
        ["navigate", false, "OperationTimeout: browser_page_load timed out after 1.5s"],
        ["navigate", true, undefined]
      ])
      assert.isAtLeast(result.actions[0]?.ms ?? 0, 1500)
      const told = lastAnswers((yield* geminiBodies(sandbox))[1])[0]
      assert.deepStrictEqual(at(told, "response", "error"), "OperationTimeout: browser_page_load timed out after 1.5s")
      assert.deepStrictEqual(pngSize(at(told, "parts", 0, "inlineData", "data")), { width: 1440, height: 900 })
      assert.strictEqual(result.finalUrl, `${sandbox.url}/pages/form`)
    }).pipe(quiet), 90_000)

  // Before, the crashed page still counted as connected: each later action failed, was answered
  // without a screenshot, and the task ran on blind until its turns ran out.
  it.scopedLive("a page whose renderer crashes mid-task ends the task with BrowserError, the browser closed", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: key })
      yield* sandbox.setComputerUsePlan([
        call("navigate", { url: `${sandbox.url}/pages/form` }),
        call("click_at", Sandbox.formTargets.name),
        [{ text: "Clicked." }]
      ])
      const chromiumPids: Array<number> = []
      const crashRenderers = Effect.sync(() => {
        for (const pid of runningChildren(process.pid, "chromium")) {
          chromiumPids.push(pid)
          // Chromium rewrites a renderer's command line into one string, flags included.
          const renderers = runningInGroup(pid).filter((child) => commandLine(child).some((arg) => arg.includes("--type=renderer")))
          for (const renderer of renderers) process.kill(renderer, "SIGKILL")
        }
      })
      const failed = yield* Effect.flip(runTask(sandbox, {
        task: "open the form and click the name",
        onAction: (action) => action.name === "navigate" ? crashRenderers : Effect.void
      }))
      assert.strictEqual(failed._tag, "BrowserError")
      assert.match(failed.message, /^Chromium went away during click_at: /)
      assert.strictEqual((yield* geminiBodies(sandbox)).length, 2, "no model turn after the crash")
      assert.strictEqual(chromiumPids.length, 1)
      for (const pid of chromiumPids) assert.isFalse(isRunning(pid), `Chromium (pid ${pid}) is gone`)
      assert.deepStrictEqual(runningChildren(process.pid, "chromium"), [])
    }).pipe(quiet), 90_000)

  it.scopedLive("the whole-task deadline ends the task timed_out and closes the browser", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: key })
      yield* sandbox.setComputerUsePlan(Array.from({ length: 10 }, () => call("wait_5_seconds")))
      const startedAt = Date.now()
      const result = yield* runTask(sandbox, { task: "wait" }, { timeouts: { browser_automation: "12 seconds" } })
      assert.strictEqual(result.status, "timed_out")
      assert.strictEqual(result.text, "browser_automation timed out after 12s; the browser was closed")
      // How many waits fit depends on how long Chromium took to start; none may outlive the deadline.
      assert.isTrue(result.actions.every((action) => action.name === "wait_5_seconds" && action.ok))
      assert.isBelow(result.actions.length, 3)
      assert.isBelow(Date.now() - startedAt, 40_000)
      const finished = (yield* sandbox.events).at(-1)
      assert.deepStrictEqual(at(finished, "payload", "status"), "timed_out")
    }).pipe(quiet), 90_000)

  it.scopedLive("a safety decision that requires confirmation is refused: nothing is clicked", () =>
    Effect.gen(function*() {
      const pages = yield* servePages
      const sandbox = yield* Sandbox.make({ geminiApiKey: key })
      yield* sandbox.setComputerUsePlan([
        call("click_at", {
          ...pageAt.submit,
          safety_decision: { decision: "require_confirmation", explanation: "Submitting sends personal data." }
        })
      ])
      const result = yield* runTask(sandbox, { task: "submit the form", url: `${pages.url}/form` })
      assert.deepStrictEqual(result, {
        status: "refused",
        text: "click_at needs a person's confirmation (Submitting sends personal data.); not run because BIG3_BROWSER_CONFIRM is not \"allow\"",
        turns: 1,
        actions: [],
        finalUrl: `${pages.url}/form`
      })
      assert.deepStrictEqual(pages.seen.filter((line) => !line.startsWith("GET /favicon")), ["GET /form"], "the form was never submitted")
    }).pipe(quiet), 90_000)

  it.scopedLive("the model route fails with 503, then 429 with a RetryInfo hint, and the task completes", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make({ geminiApiKey: key })
      yield* sandbox.setComputerUsePlan([call("navigate", { url: `${sandbox.url}/pages/form` }), [{ text: "done" }]])
      yield* sandbox.setPlan("gemini", [503, { status: 429, retryAfter: "1 second" }])
      const result = yield* runTask(sandbox, { task: "open the form" })
      assert.deepStrictEqual([result.status, result.text, result.turns], ["completed", "done", 2])
      const requests = yield* sandbox.requestsFor("gemini")
      assert.deepStrictEqual(requests.map((request) => request.outcome), [503, 429, 200, 200])
      assert.isAtLeast(requests[2]!.time - requests[1]!.time, 1000, "the retry waited for the 1 s hint")
    }).pipe(quiet), 90_000)

  it.scopedLive("against a bare Gemini written here: the requests are the public REST shapes", () =>
    Effect.gen(function*() {
      const pages = yield* servePages
      const sandbox = yield* Sandbox.make({ geminiApiKey: key })
      const bodies: Array<unknown> = []
      const paths: Array<string> = []
      const answers = [
        { candidates: [{ content: { role: "model", parts: [{ text: "Typing." }, { functionCall: { name: "type_text_at", args: { ...pageAt.name, text: "Bo", press_enter: true } }, thoughtSignature: "dGhvdWdodA==" }] }, finishReason: "STOP", index: 0 }] },
        { candidates: [{ content: { role: "model", parts: [{ text: "Submitted." }] }, finishReason: "STOP", index: 0 }] }
      ]
      const bare = yield* listen(http.createServer((request, response) => {
        let text = ""
        request.on("data", (chunk) => (text += chunk))
        request.on("end", () => {
          paths.push(`${request.method} ${request.url} key=${request.headers["x-goog-api-key"] === key}`)
          bodies.push(JSON.parse(text))
          response.setHeader("content-type", "application/json")
          response.end(JSON.stringify(answers[bodies.length - 1] ?? answers[1]))
        })
      }))
      const result = yield* runTask(sandbox, { task: "Sign up as Bo", url: `${pages.url}/form`, maxTurns: 5 }, {}, bare.url)
      assert.deepStrictEqual([result.status, result.text, result.finalUrl], ["completed", "Submitted.", `${pages.url}/done?name=Bo&email=`])
      assert.deepStrictEqual(paths, [
        `POST /v1beta/models/${Gemini.defaultModel}:generateContent key=true`,
        `POST /v1beta/models/${Gemini.defaultModel}:generateContent key=true`
      ])
      const [first, second] = bodies
      assert.deepStrictEqual(keysOf(first), ["contents", "tools"])
      assert.deepStrictEqual(at(first, "contents", 0, "role"), "user")
      assert.deepStrictEqual(at(first, "contents", 0, "parts", 0), { text: "Sign up as Bo" })
      assert.deepStrictEqual(keysOf(at(first, "contents", 0, "parts", 1, "inlineData")), ["data", "mimeType"])
      // The model's turn goes back as it came, thought signature and all; then one answer per call.
      assert.deepStrictEqual(at(second, "contents", 1), answers[0]?.candidates[0]?.content)
      const answer = at(second, "contents", 2)
      assert.deepStrictEqual(at(answer, "role"), "user")
      assert.deepStrictEqual(keysOf(at(answer, "parts", 0, "functionResponse")), ["name", "parts", "response"])
      assert.deepStrictEqual(at(answer, "parts", 0, "functionResponse", "name"), "type_text_at")
      assert.deepStrictEqual(at(answer, "parts", 0, "functionResponse", "response"), { url: `${pages.url}/done?name=Bo&email=` })
      assert.deepStrictEqual(pngSize(at(answer, "parts", 0, "functionResponse", "parts", 0, "inlineData", "data")), { width: 1440, height: 900 })
    }).pipe(quiet), 90_000)
})
