/**
 * What big3's browser agent adds per turn beyond the model call and the browser action: encoding
 * the screenshot, building and encoding the request (the whole conversation, the last three
 * screenshots included), decoding the answer, the protection pipeline, the page's timeouts,
 * pruning old screenshots, and the events.
 *
 * The loop runs for real (`BrowserAgent.run`, the real Gemini client with its Schema encode /
 * decode and `protect`, the real page timeouts) with the two outside costs taken away: the model
 * is an `HttpClient` that answers at once with a `click_at` call, and the browser is the scripted
 * driver returning a screenshot of realistic size at once. Events go to a stub that serializes
 * each one (what delivery costs the caller's thread; delivery itself is batched in the background).
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import { randomBytes } from "node:crypto"
import * as Browser from "../src/Browser.js"
import * as BrowserAgent from "../src/BrowserAgent.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Gemini from "../src/Gemini.js"
import * as Observability from "../src/Observability.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import { median, type Row } from "./util.js"

const answer = JSON.stringify(Gemini.functionCallResponse([{ name: "click_at", args: { x: 500, y: 500 } }]))

/** A model that answers every request at once with one `click_at` call. */
const instantModel = HttpClient.make((request) =>
  Effect.succeed(
    HttpClientResponse.fromWeb(request, new Response(answer, { status: 200, headers: { "content-type": "application/json" } }))
  )
)

/** Median wall and CPU milliseconds per unit of `body`, which does `units` units per run. */
const measure = async (runs: number, units: number, body: () => Promise<unknown>) => {
  await body() // warm up
  const wall: Array<number> = []
  const cpu: Array<number> = []
  for (let run = 0; run < runs; run++) {
    const cpuStart = process.cpuUsage()
    const start = process.hrtime.bigint()
    await body()
    wall.push(Number(process.hrtime.bigint() - start) / 1e6 / units)
    const used = process.cpuUsage(cpuStart)
    cpu.push((used.user + used.system) / 1000 / units)
  }
  return { wall: median(wall), cpu: median(cpu) }
}

const bench = async (options: { readonly runs: number; readonly turns: number; readonly screenshotBytes: number }) => {
  // Random bytes encode like a PNG of the same size (base64 cost depends on the length only).
  const screenshot = Uint8Array.from(randomBytes(options.screenshotBytes))
  let eventBytes = 0
  let events = 0
  const observability = Layer.mock(Observability.Observability, {
    emit: (event) =>
      Effect.sync(() => {
        events++
        eventBytes += JSON.stringify(event).length
      })
  })
  const layer = BrowserAgent.layerWith().pipe(
    Layer.provideMerge(Layer.mergeAll(
      Gemini.layerWith({ apiKey: Redacted.make("bench-key"), baseUrl: "http://gemini.bench" }),
      Browser.layerTest(Browser.scripted({ screenshot })),
      observability
    )),
    Layer.provide(Layer.mergeAll(CircuitBreaker.layer, Layer.succeed(HttpClient.HttpClient, instantModel))),
    Layer.provideMerge(Layer.orDie(ReliabilityConfig.layerWith({}))),
    Layer.provide(Logger.minimumLogLevel(LogLevel.Warning))
  )
  const runtime = ManagedRuntime.make(layer)

  const turn = await measure(options.runs, options.turns, () =>
    runtime.runPromise(BrowserAgent.run({ task: "click the middle of the page, again and again", maxTurns: options.turns })))
  const encode = await measure(options.runs, 100, async () => {
    for (let i = 0; i < 100; i++) Buffer.from(screenshot).toString("base64")
  })
  // The request of a turn late in a task: three screenshots kept, as the loop sends it.
  const data = Buffer.from(screenshot).toString("base64")
  const request: Gemini.GenerateContentRequest = {
    contents: [
      Gemini.userTurn("a task"),
      ...[1, 2, 3].flatMap((): ReadonlyArray<Gemini.Content> => [
        { role: "model", parts: [{ functionCall: { name: "click_at", args: { x: 500, y: 500 } } }] },
        {
          role: "user",
          parts: [{
            functionResponse: {
              name: "click_at",
              response: { url: "about:blank" },
              parts: [{ inlineData: { mimeType: "image/png", data } }]
            }
          }]
        }
      ])
    ],
    tools: BrowserAgent.tools
  }
  const call = await measure(options.runs, 20, () =>
    runtime.runPromise(Effect.gen(function*() {
      const gemini = yield* Gemini.Gemini
      for (let i = 0; i < 20; i++) yield* gemini.generateContent(request)
    })))
  await runtime.dispose()
  return { turn, encode, call, eventBytesPerTurn: eventBytes / events }
}

export const runBrowserBench = async (options: {
  readonly runs: number
  readonly turns: number
  readonly screenshotSizes: ReadonlyArray<number>
}): Promise<ReadonlyArray<Row>> => {
  const rows: Array<Row> = []
  const ms = (value: number) => value.toFixed(2)
  for (const screenshotBytes of options.screenshotSizes) {
    const result = await bench({ runs: options.runs, turns: options.turns, screenshotBytes })
    rows.push({
      "screenshot": `${Math.round(screenshotBytes / 1000)} KB`,
      "per turn, wall ms": ms(result.turn.wall),
      "per turn, CPU ms": ms(result.turn.cpu),
      "base64 of the screenshot, CPU ms": ms(result.encode.cpu),
      "Gemini call with 3 screenshots (encode, protect, decode), CPU ms": ms(result.call.cpu),
      "event bytes per action": String(Math.round(result.eventBytesPerTurn))
    })
    process.stderr.write(`  browser: ${Math.round(screenshotBytes / 1000)} KB screenshots: ${ms(result.turn.cpu)} ms CPU per turn\n`)
  }
  return rows
}
