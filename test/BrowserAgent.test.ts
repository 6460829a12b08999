/**
 * The computer-use loop on a scripted browser and a scripted Gemini, on the TestClock: what is
 * sent to the model, what runs on the page (in pixels), what the model is told, and how a task
 * ends. Real Chromium and real HTTP are in BrowserAgent.integration.test.ts.
 */
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as TestClock from "effect/TestClock"
import * as Browser from "../src/Browser.js"
import * as BrowserAgent from "../src/BrowserAgent.js"
import * as Errors from "../src/Errors.js"
import * as Gemini from "../src/Gemini.js"
import * as Observability from "../src/Observability.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"

// ---------------------------------------------------------------------------------------------
// Harness: a scripted browser, a Gemini answering turn i with script[i], recorded events.
// ---------------------------------------------------------------------------------------------

type Turn = Gemini.GenerateContentResponse | Effect.Effect<Gemini.GenerateContentResponse, Gemini.GeminiError>

interface Harness {
  readonly requests: Array<Gemini.GenerateContentRequest>
  readonly events: Array<Observability.EventInput>
  readonly browser: Browser.Scripted
}

const png = Browser.tinyPng
const pngBase64 = Buffer.from(png).toString("base64")

const calls = (...list: ReadonlyArray<Gemini.FunctionCall>) => Gemini.functionCallResponse(list)
const call = (name: string, args: Record<string, unknown> = {}): Gemini.FunctionCall => ({ name, args })

const setup = (
  script: ReadonlyArray<Turn>,
  options: {
    readonly browser?: Browser.ScriptOptions
    readonly agent?: BrowserAgent.Options
    readonly timeouts?: ReliabilityConfig.Overrides["timeouts"]
  } = {}
) => {
  const harness: Harness = { requests: [], events: [], browser: Browser.scripted(options.browser) }
  const gemini = Gemini.layerTest((request) =>
    Effect.suspend(() => {
      const turn = script[harness.requests.length] ?? Gemini.textResponse("script finished")
      harness.requests.push(request)
      return Effect.isEffect(turn) ? turn : Effect.succeed(turn)
    })
  )
  const observability = Layer.mock(Observability.Observability, {
    emit: (event) => Effect.sync(() => void harness.events.push(event))
  })
  const config = Layer.orDie(ReliabilityConfig.layerWith({ timeouts: options.timeouts ?? {} }))
  const layer = BrowserAgent.layerWith(options.agent).pipe(
    Layer.provide(Layer.mergeAll(gemini, observability, Browser.layerTest(harness.browser))),
    Layer.provide(config)
  )
  return { harness, layer }
}

/** The function responses of the last user turn of a request. */
const answersOf = (request: Gemini.GenerateContentRequest | undefined) =>
  (request?.contents[request.contents.length - 1]?.parts ?? []).flatMap((part) =>
    part.functionResponse === undefined ? [] : [part.functionResponse]
  )

const screenshotPart = { inlineData: { mimeType: "image/png", data: pngBase64 } }

describe("BrowserAgent loop", () => {
  it.effect("a form task: calls run in pixels, each answered with the URL and a PNG, and text completes it", () => {
    const { harness, layer } = setup([
      calls(call("navigate", { url: "http://pages.test/form" })),
      {
        candidates: [{
          content: {
            role: "model",
            parts: [
              { text: "I will type the name." },
              { functionCall: call("type_text_at", { x: 500, y: 250, text: "Ada", press_enter: false }), thoughtSignature: "c2lnLTE=" }
            ]
          },
          finishReason: "STOP"
        }]
      },
      calls(call("click_at", { x: 500, y: 550 })),
      Gemini.textResponse("The form is submitted.")
    ])
    return Effect.gen(function*() {
      const result = yield* BrowserAgent.run({ task: "Sign up as Ada", url: "http://pages.test/start" })
      assert.deepStrictEqual(result, {
        status: "completed",
        text: "The form is submitted.",
        turns: 4,
        actions: [
          { name: "navigate", args: { url: "http://pages.test/form" }, ok: true, ms: 0 },
          { name: "type_text_at", args: { x: 500, y: 250, text: "Ada", press_enter: false }, ok: true, ms: 0 },
          { name: "click_at", args: { x: 500, y: 550 }, ok: true, ms: 0 }
        ],
        finalUrl: "http://pages.test/form"
      })
      // On the page, in CSS pixels of 1440×900: x / 1000 × 1440, y / 1000 × 900.
      assert.deepStrictEqual(yield* harness.browser.calls, [
        { _tag: "goto", url: "http://pages.test/start" },
        { _tag: "screenshot" },
        { _tag: "goto", url: "http://pages.test/form" },
        { _tag: "screenshot" },
        { _tag: "mouseClick", x: 720, y: 225 },
        { _tag: "pressKeys", keys: ["Control", "A"] },
        { _tag: "pressKeys", keys: ["Delete"] },
        { _tag: "typeText", text: "Ada" },
        { _tag: "screenshot" },
        { _tag: "mouseClick", x: 720, y: 495 },
        { _tag: "screenshot" }
      ])
      const [first, second, third] = harness.requests
      for (const request of harness.requests) assert.deepStrictEqual(request.tools, [{ computerUse: { environment: "ENVIRONMENT_BROWSER" } }])
      assert.deepStrictEqual(first?.contents, [{ role: "user", parts: [{ text: "Sign up as Ada" }, screenshotPart] }])
      assert.deepStrictEqual(answersOf(second), [{
        name: "navigate",
        response: { url: "http://pages.test/form" },
        parts: [screenshotPart]
      }])
      assert.strictEqual(second?.contents[second.contents.length - 1]?.role, "user")
      // The model's turn goes back whole: its thought signature included.
      assert.deepStrictEqual(third?.contents[3], {
        role: "model",
        parts: [
          { text: "I will type the name." },
          { functionCall: call("type_text_at", { x: 500, y: 250, text: "Ada", press_enter: false }), thoughtSignature: "c2lnLTE=" }
        ]
      })
      assert.strictEqual(yield* harness.browser.closes, 1, "the browser is closed when the task ends")
    }).pipe(Effect.provide(layer))
  })

  it.effect("a bad action is answered with an error and the task goes on", () => {
    const { harness, layer } = setup([
      calls(call("click_at", { x: 1200, y: 10 }), call("teleport", { to: "mars" })),
      calls(call("click_at", { x: 10 })),
      Gemini.textResponse("done")
    ])
    return Effect.gen(function*() {
      const result = yield* BrowserAgent.run({ task: "click" })
      assert.strictEqual(result.status, "completed")
      assert.deepStrictEqual(result.actions.map((action) => [action.name, action.ok, action.error]), [
        ["click_at", false, "click_at: x=1200 is outside the screen: coordinates are normalized to 0–999"],
        ["teleport", false, `unknown action "teleport": the browser supports ${BrowserAgent.actionNames.join(", ")}`],
        ["click_at", false, "click_at: y must be a number from 0 to 999 (normalized coordinates), got nothing"]
      ])
      assert.deepStrictEqual(answersOf(harness.requests[1]).map((answer) => [answer.name, answer.response, answer.parts]), [
        ["click_at", { url: "about:blank", error: "click_at: x=1200 is outside the screen: coordinates are normalized to 0–999" }, [screenshotPart]],
        ["teleport", { url: "about:blank", error: `unknown action "teleport": the browser supports ${BrowserAgent.actionNames.join(", ")}` }, [screenshotPart]]
      ])
      // Nothing was clicked: an out-of-range coordinate is not clamped.
      assert.deepStrictEqual((yield* harness.browser.calls).filter((c) => c._tag !== "screenshot"), [])
    }).pipe(Effect.provide(layer))
  })

  it.effect("navigate opens http and https only; an address without a scheme gets https://", () => {
    const { harness, layer } = setup([
      calls(
        call("navigate", { url: "file:///etc/passwd" }),
        call("navigate", { url: "JavaScript:alert(1)" }),
        call("navigate", { url: "chrome://settings" }),
        call("navigate", { url: "" }),
        call("navigate", { url: "example.com/a" }),
        call("navigate", { url: "localhost:8080/b" }),
        call("navigate", { url: "HTTP://pages.test/c" })
      ),
      Gemini.textResponse("done")
    ])
    return Effect.gen(function*() {
      const result = yield* BrowserAgent.run({ task: "open things" })
      assert.deepStrictEqual(result.actions.map((action) => [action.ok, action.error]), [
        [false, "navigate: url must be an http or https address, got a file: URL"],
        [false, "navigate: url must be an http or https address, got a javascript: URL"],
        [false, "navigate: url must be an http or https address, got a chrome: URL"],
        [false, `navigate: url must be an http or https address, got ""`],
        [true, undefined],
        [true, undefined],
        [true, undefined]
      ])
      assert.deepStrictEqual((yield* harness.browser.calls).flatMap((c) => c._tag === "goto" ? [c.url] : []), [
        "https://example.com/a",
        "https://localhost:8080/b",
        "HTTP://pages.test/c"
      ])
    }).pipe(Effect.provide(layer))
  })

  // Before, the start page was opened as given: a file: URL (from a voice model's browser_use, say)
  // put a local file in the first screenshot, and a bare host got Playwright's http:// instead.
  it.effect("the start page follows navigate's rule: https:// added, anything but http(s) refused and told", () => {
    const { harness, layer } = setup([Gemini.textResponse("done"), Gemini.textResponse("done")])
    return Effect.gen(function*() {
      yield* BrowserAgent.run({ task: "look", url: "example.com/start" })
      yield* BrowserAgent.run({ task: "read it", url: "file:///etc/passwd" })
      assert.deepStrictEqual((yield* harness.browser.calls).flatMap((c) => c._tag === "goto" ? [c.url] : []), [
        "https://example.com/start"
      ])
      assert.deepStrictEqual(harness.requests[1]?.contents[0]?.parts[0], {
        text: "read it\n\n(opening file:///etc/passwd refused: url must be an http or https address, got a file: URL)"
      })
    }).pipe(Effect.provide(layer))
  })

  it.effect("a page that never loads fails after browser_page_load, is stopped, and the model is told", () => {
    const { harness, layer } = setup(
      [calls(call("navigate", { url: "http://pages.test/never" })), Gemini.textResponse("gave up on it")],
      { browser: { onCall: (c) => c._tag === "goto" && c.url.endsWith("/never") ? Effect.never : undefined } }
    )
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(BrowserAgent.run({ task: "open the slow page" }))
      yield* TestClock.adjust("15 seconds")
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(result.status, "completed")
      assert.deepStrictEqual(result.actions, [{
        name: "navigate",
        args: { url: "http://pages.test/never" },
        ok: false,
        error: "OperationTimeout: browser_page_load timed out after 15s",
        ms: 15_000
      }])
      assert.deepStrictEqual((yield* harness.browser.calls).map((c) => c._tag), ["screenshot", "goto", "stopLoading", "screenshot"])
      assert.deepStrictEqual(answersOf(harness.requests[1])[0]?.response, {
        url: "about:blank",
        error: "OperationTimeout: browser_page_load timed out after 15s"
      })
    }).pipe(Effect.provide(layer))
  })

  it.effect("a screenshot slower than browser_screenshot is an action error, answered without an image", () => {
    let shots = 0
    const { harness, layer } = setup(
      [calls(call("click_at", { x: 1, y: 1 })), Gemini.textResponse("ok")],
      { browser: { onCall: (c) => c._tag === "screenshot" && ++shots === 2 ? Effect.never : undefined } }
    )
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(BrowserAgent.run({ task: "click" }))
      yield* TestClock.adjust("10 seconds")
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(result.status, "completed")
      assert.deepStrictEqual(answersOf(harness.requests[1]), [{
        name: "click_at",
        response: { url: "about:blank", error: "screenshot: OperationTimeout: browser_screenshot timed out after 10s" }
      }])
    }).pipe(Effect.provide(layer))
  })

  it.effect("browser_automation cuts the whole task: timed_out with what was done, and the browser closed", () => {
    const { harness, layer } = setup(
      [calls(call("wait_5_seconds")), calls(call("wait_5_seconds")), Effect.never],
      { timeouts: { browser_automation: "8 seconds" } }
    )
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(BrowserAgent.run({ task: "wait a while" }))
      yield* TestClock.adjust("5 seconds")
      yield* TestClock.adjust("3 seconds")
      const result = yield* Fiber.join(fiber)
      assert.deepStrictEqual(result, {
        status: "timed_out",
        text: "browser_automation timed out after 8s; the browser was closed",
        turns: 2,
        actions: [{ name: "wait_5_seconds", args: {}, ok: true, ms: 5000 }],
        finalUrl: "about:blank"
      })
      assert.strictEqual(yield* harness.browser.closes, 1)
      assert.strictEqual(yield* harness.browser.launches, 1)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a call that requires confirmation is refused and not run unless BIG3_BROWSER_CONFIRM=allow", () => {
    const risky = call("click_at", {
      x: 500,
      y: 500,
      safety_decision: { decision: "require_confirmation", explanation: "This buys a ticket." }
    })
    const denied = setup([calls(risky)])
    const allowed = setup([calls(risky), Gemini.textResponse("bought")], { agent: { confirm: true } })
    return Effect.gen(function*() {
      const refused = yield* BrowserAgent.run({ task: "buy a ticket" }).pipe(Effect.provide(denied.layer))
      assert.deepStrictEqual(refused, {
        status: "refused",
        text: "click_at needs a person's confirmation (This buys a ticket.); not run because BIG3_BROWSER_CONFIRM is not \"allow\"",
        turns: 1,
        actions: [],
        finalUrl: "about:blank"
      })
      assert.deepStrictEqual((yield* denied.harness.browser.calls).map((c) => c._tag), ["screenshot"])

      const done = yield* BrowserAgent.run({ task: "buy a ticket" }).pipe(Effect.provide(allowed.layer))
      assert.strictEqual(done.status, "completed")
      assert.deepStrictEqual((yield* allowed.harness.browser.calls).map((c) => c._tag), ["screenshot", "mouseClick", "screenshot"])
      assert.deepStrictEqual(answersOf(allowed.harness.requests[1])[0]?.response, {
        url: "about:blank",
        safety_acknowledgement: "true"
      })
    })
  })

  /** Two answers with nothing to act on, then a text: each is asked again with the same conversation. */
  const askedAgain = (first: Turn, second: Turn) => {
    const { harness, layer } = setup([first, second, Gemini.textResponse("fine now")])
    return Effect.gen(function*() {
      const result = yield* BrowserAgent.run({ task: "anything" })
      assert.deepStrictEqual([result.status, result.text, result.turns], ["completed", "fine now", 3])
      assert.deepStrictEqual(harness.requests[1]?.contents, harness.requests[0]?.contents)
      assert.deepStrictEqual(harness.requests[2]?.contents, harness.requests[0]?.contents)
    }).pipe(Effect.provide(layer))
  }

  it.effect("MALFORMED_FUNCTION_CALL is asked again with the same conversation, and counts as a turn", () =>
    askedAgain(
      { candidates: [{ finishReason: "MALFORMED_FUNCTION_CALL", index: 0 }] },
      { candidates: [{ content: { role: "model", parts: [{ text: "I will click" }] }, finishReason: "MALFORMED_FUNCTION_CALL", index: 0 }] }
    ))

  it.effect("an answer with no candidate or nothing in it is asked again, and counts as a turn", () =>
    askedAgain(
      { candidates: [] },
      { candidates: [{ content: { role: "model", parts: [] }, finishReason: "STOP", index: 0 }] }
    ))

  it.effect("an answer cut by SAFETY is refused, with or without text", () => {
    const { layer } = setup([
      { candidates: [{ content: { role: "model", parts: [{ text: "I will now" }] }, finishReason: "SAFETY", index: 0 }] },
      { candidates: [{ finishReason: "SAFETY", index: 0 }] }
    ])
    return Effect.gen(function*() {
      const withText = yield* BrowserAgent.run({ task: "anything" })
      assert.deepStrictEqual([withText.status, withText.text, withText.turns], [
        "refused",
        "Gemini stopped (finishReason SAFETY) after: I will now",
        1
      ])
      const without = yield* BrowserAgent.run({ task: "anything" })
      assert.deepStrictEqual([without.status, without.text, without.turns], [
        "refused",
        "Gemini stopped without an answer (finishReason SAFETY)",
        1
      ])
    }).pipe(Effect.provide(layer))
  })

  it.effect("each answer carries the id of its call, in the order of the calls", () => {
    const { harness, layer } = setup([
      calls({ name: "hover_at", args: { x: 1, y: 2 }, id: "call-a" }, { name: "click_at", args: { x: 3, y: 4 }, id: "call-b" }),
      Gemini.textResponse("done")
    ])
    return Effect.gen(function*() {
      yield* BrowserAgent.run({ task: "two calls" })
      assert.deepStrictEqual(answersOf(harness.requests[1]).map((answer) => [answer.name, answer.id]), [
        ["hover_at", "call-a"],
        ["click_at", "call-b"]
      ])
    }).pipe(Effect.provide(layer))
  })

  it.effect("stops after maxTurns model calls", () => {
    const { layer } = setup(Array.from({ length: 10 }, () => calls(call("scroll_document", { direction: "down" }))))
    return Effect.gen(function*() {
      const result = yield* BrowserAgent.run({ task: "scroll forever", maxTurns: 3 })
      assert.deepStrictEqual([result.status, result.turns, result.actions.length], ["max_turns", 3, 3])
      assert.strictEqual(result.text, "stopped after 3 model turns without finishing the task")
      const invalid = yield* Effect.flip(BrowserAgent.run({ task: "x", maxTurns: 0 }))
      assert.strictEqual(invalid._tag, "InvalidRequest")
    }).pipe(Effect.provide(layer))
  })

  it.effect("only the last 3 turns keep their screenshots", () => {
    const { harness, layer } = setup(Array.from({ length: 5 }, () => calls(call("hover_at", { x: 1, y: 1 }))))
    return Effect.gen(function*() {
      yield* BrowserAgent.run({ task: "hover", maxTurns: 6 })
      const last = harness.requests[5]
      const userTurns = (last?.contents ?? []).filter((content) => content.role === "user")
      const withImages = userTurns.map((content) =>
        content.parts.some((part) => part.inlineData !== undefined || part.functionResponse?.parts !== undefined)
      )
      assert.deepStrictEqual(withImages, [false, false, false, true, true, true])
      assert.deepStrictEqual(userTurns[0]?.parts, [{ text: "hover" }], "the first turn keeps its text")
      assert.deepStrictEqual(userTurns[1]?.parts, [{ functionResponse: { name: "hover_at", response: { url: "about:blank" } } }])
    }).pipe(Effect.provide(layer))
  })

  it.effect("screenshots of a busy page in a turn of several calls stay under Gemini's 20 MB request limit", () => {
    // 4 MiB of PNG is 5.6 MB of base64, the size of a screenshot of a noisy 1440×900 page.
    const busy = new Uint8Array(4 * 1024 * 1024).fill(7)
    const hover = call("hover_at", { x: 1, y: 1 })
    const { harness, layer } = setup([calls(hover, hover, hover), Gemini.textResponse("done")], { browser: { screenshot: busy } })
    return Effect.gen(function*() {
      yield* BrowserAgent.run({ task: "hover" })
      const request = harness.requests[1]
      assert.isBelow(JSON.stringify(request).length, 20 * 1024 * 1024)
      const [first, , answers] = request?.contents ?? []
      assert.deepStrictEqual(first?.parts, [{ text: "hover" }], "the oldest screenshot went first")
      // Oldest first, and the newest screenshot, the page as it is now, always stays.
      assert.deepStrictEqual(answers?.parts.map((part) => part.functionResponse?.parts !== undefined), [false, true, true])
    }).pipe(Effect.provide(layer))
  })

  it.effect("every predefined action runs as the reference client does", () => {
    const { harness, layer } = setup([
      calls(
        call("open_web_browser"),
        call("search"),
        call("go_back"),
        call("go_forward"),
        call("hover_at", { x: 999, y: 0 }),
        call("type_text_at", { x: 0, y: 999, text: "hi", press_enter: true, clear_before_typing: false }),
        call("key_combination", { keys: "control+shift+t" }),
        call("scroll_document", { direction: "right" }),
        call("scroll_at", { x: 500, y: 500, direction: "up" }),
        call("scroll_at", { x: 500, y: 500, direction: "left", magnitude: 100 }),
        call("drag_and_drop", { x: 100, y: 100, destination_x: 900, destination_y: 800 })
      ),
      Gemini.textResponse("done")
    ], { agent: { searchUrl: "http://search.test/" } })
    return Effect.gen(function*() {
      const result = yield* BrowserAgent.run({ task: "everything" })
      assert.isTrue(result.actions.every((action) => action.ok))
      assert.deepStrictEqual((yield* harness.browser.calls).filter((c) => c._tag !== "screenshot"), [
        { _tag: "goto", url: "http://search.test/" },
        { _tag: "back" },
        { _tag: "forward" },
        { _tag: "mouseMove", x: 1438, y: 0 },
        { _tag: "mouseClick", x: 0, y: 899 },
        { _tag: "typeText", text: "hi" },
        { _tag: "pressKeys", keys: ["Enter"] },
        { _tag: "pressKeys", keys: ["Control", "Shift", "t"] },
        { _tag: "scrollBy", deltaX: 720, deltaY: 0 },
        { _tag: "mouseMove", x: 720, y: 450 },
        { _tag: "mouseWheel", deltaX: 0, deltaY: -720 },
        { _tag: "mouseMove", x: 720, y: 450 },
        { _tag: "mouseWheel", deltaX: -144, deltaY: 0 },
        { _tag: "mouseMove", x: 144, y: 90 },
        { _tag: "mouseDown" },
        { _tag: "mouseMove", x: 1296, y: 720 },
        { _tag: "mouseUp" }
      ])
      assert.strictEqual(result.finalUrl, "http://search.test/")
    }).pipe(Effect.provide(layer))
  })

  it.effect("wait_5_seconds waits five seconds on the clock", () => {
    const { layer } = setup([calls(call("wait_5_seconds")), Gemini.textResponse("waited")])
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(BrowserAgent.run({ task: "wait" }))
      yield* TestClock.adjust("4999 millis")
      assert.isTrue((yield* Fiber.poll(fiber))._tag === "None", "still waiting after 4.999 s")
      yield* TestClock.adjust("1 millis")
      const result = yield* Fiber.join(fiber)
      assert.deepStrictEqual(result.actions, [{ name: "wait_5_seconds", args: {}, ok: true, ms: 5000 }])
    }).pipe(Effect.provide(layer))
  })

  it.effect("emits BrowserTaskStarted, one BrowserAction per action, and BrowserTaskFinished", () => {
    const { harness, layer } = setup([
      calls(call("click_at", { x: 10, y: 10 }), call("click_at", { x: 5000, y: 10 })),
      Gemini.textResponse("done")
    ])
    return Effect.gen(function*() {
      yield* BrowserAgent.run({ task: "click twice", url: "http://pages.test/" })
      assert.deepStrictEqual(harness.events.map((event) => [event.hook_event_type, event.payload]), [
        ["BrowserTaskStarted", { task: "click twice", url: "http://pages.test/", max_turns: 30 }],
        ["BrowserAction", { turn: 1, name: "click_at", args: { x: 10, y: 10 }, ok: true, ms: 0, url: "http://pages.test/" }],
        ["BrowserAction", {
          turn: 1,
          name: "click_at",
          args: { x: 5000, y: 10 },
          ok: false,
          error: "click_at: x=5000 is outside the screen: coordinates are normalized to 0–999",
          ms: 0,
          url: "http://pages.test/"
        }],
        ["BrowserTaskFinished", { turns: 2, actions: 2, final_url: "http://pages.test/", status: "completed", text: "done" }]
      ])
      const sessions = new Set(harness.events.map((event) => event.session_id))
      assert.strictEqual(sessions.size, 1)
      assert.match([...sessions][0] ?? "", /^browser-[0-9a-f-]{36}$/)
      assert.isTrue(harness.events.every((event) => event.source_app === "big3"))
    }).pipe(Effect.provide(layer))
  })

  it.effect("a Gemini failure ends the task with that error, the browser closed and the failure emitted", () => {
    const { harness, layer } = setup([
      calls(call("click_at", { x: 1, y: 1 })),
      Effect.fail(new Errors.Unauthorized({ service: "gemini", message: "bad key" }))
    ])
    return Effect.gen(function*() {
      const error = yield* Effect.flip(BrowserAgent.run({ task: "x" }))
      assert.deepStrictEqual([error._tag, error.message, error.retryable], ["Unauthorized", "bad key", false])
      assert.strictEqual(yield* harness.browser.closes, 1)
      assert.deepStrictEqual(harness.events.at(-1)?.payload, {
        turns: 1,
        actions: 1,
        final_url: "about:blank",
        status: "failed",
        error: "Unauthorized: bad key"
      })
    }).pipe(Effect.provide(layer))
  })

  it.effect("a Chromium that dies during an action that does not touch the page ends the task with BrowserError", () => {
    let screenshots = 0
    const { harness, layer } = setup([calls(call("wait_5_seconds")), Gemini.textResponse("all fine")], {
      browser: {
        // The browser is killed while the model's wait runs: the capture after it is the first to see it.
        onCall: (c) =>
          c._tag === "screenshot" && ++screenshots === 2
            ? Effect.zipRight(
              harness.browser.crash,
              new Browser.ActionFailed({ service: "browser", action: "screenshot", message: "screenshot failed: the browser has been closed" })
            )
            : undefined
      }
    })
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(BrowserAgent.run({ task: "wait" }))
      yield* TestClock.adjust("5 seconds")
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.deepStrictEqual([error._tag, error.message], [
        "BrowserError",
        "Chromium went away during wait_5_seconds: screenshot: ActionFailed: screenshot failed: the browser has been closed"
      ])
      assert.strictEqual(harness.requests.length, 1, "the model is not asked again about a dead browser")
      assert.strictEqual(yield* harness.browser.closes, 1)
    }).pipe(Effect.provide(layer))
  })

  it.effect("BIG3_BROWSER_CONFIRM accepts allow or deny and names itself otherwise", () =>
    Effect.gen(function*() {
      const read = (value: string) =>
        Effect.withConfigProvider(BrowserAgent.config, ConfigProvider.fromMap(new Map([["BIG3_BROWSER_CONFIRM", value]])))
      assert.deepStrictEqual(yield* read("allow"), { confirm: true })
      assert.deepStrictEqual(yield* read("deny"), { confirm: false })
      const error = yield* Effect.flip(read("yes"))
      assert.include(String(error), "BIG3_BROWSER_CONFIRM")
      const unset = yield* Effect.withConfigProvider(BrowserAgent.config, ConfigProvider.fromMap(new Map()))
      assert.deepStrictEqual(unset, { confirm: false })
    }))

  it.effect("the whole-task deadline is browser_automation from the configuration", () => {
    const { layer } = setup([Effect.never], { timeouts: { browser_automation: "2 minutes" } })
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(BrowserAgent.run({ task: "hang" }))
      yield* TestClock.adjust(Duration.minutes(2))
      const result = yield* Fiber.join(fiber)
      assert.deepStrictEqual([result.status, result.turns], ["timed_out", 0])
    }).pipe(Effect.provide(layer))
  })
})
