/**
 * Adaptive timeouts and adaptive 429 pacing, measured side by side (both sides at once, each on
 * its own upstream, through the real Gemini client and HTTP stack over loopback).
 *
 * 1. Timeouts: calls arrive at a steady rate (open loop); the sandbox answers after a seeded log-normal latency (median 20 ms, p99 ≈ 80 ms)
 *    and 2% of attempts hang. Fixed `gemini_api` (45 s) versus adaptive (defaults: p99 × 3, floor
 *    1 s, after 50 samples). The production retry policy (`gemini`: 3 attempts, waits 2 s, 4 s).
 *    False timeouts are attempts cut that would have answered: the sandbox records which fault
 *    each request got, and every attempt of a call but its successful last one was cut.
 * 2. A 429 storm: 64 callers send calls back to back for 20 s to a bare server that admits
 *    everything for 2 s, then 50 requests per second (429 beyond). With and without pacing
 *    (`BIG3_ADAPTIVE_RATE_GEMINI=on`). Breaker and retry budget off on both sides, to see pacing
 *    alone.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as http from "node:http"
import * as Adaptive from "../src/Adaptive.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { formatDuration } from "../src/Errors.js"
import * as Gemini from "../src/Gemini.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Sandbox from "../src/Sandbox.js"
import { listen } from "../test/support/loopback.js"
import { seeded } from "../test/support/seeded.js"
import { percentile, type Row } from "./util.js"

/** The sandbox script: per request, a latency (median 20 ms, p99 ≈ 80 ms) or, 2% of the time, a hang. */
const latencyPlan = (seed: number, steps: number, hangRate: number): ReadonlyArray<Sandbox.FaultStep> => {
  const random = seeded(seed)
  return Array.from({ length: steps }, (): Sandbox.FaultStep =>
    random.next() < hangRate
      ? { hang: true }
      : { latency: Duration.millis(Math.max(1, Math.round(random.lognormal(20, 0.596)))) })
}

const RequestBody = Schema.Struct({
  contents: Schema.Array(Schema.Struct({ parts: Schema.Array(Schema.Struct({ text: Schema.optional(Schema.String) })) }))
})
const decodeBody = Schema.decodeUnknownOption(RequestBody)
const callOf = (body: unknown): string | undefined =>
  Option.getOrUndefined(Option.flatMap(decodeBody(body), (request) => Option.fromNullable(request.contents[0]?.parts[0]?.text)))

const apiKey = Redacted.make("sandbox-key")
const quiet = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.provide(NodeHttpClient.layerUndici), Logger.withMinimumLogLevel(LogLevel.None))

const clientLayer = (overrides: ReliabilityConfig.Overrides) =>
  Layer.mergeAll(CircuitBreaker.layer, Adaptive.layer).pipe(Layer.provideMerge(ReliabilityConfig.layerWith(overrides)))

interface TimeoutSide {
  readonly name: string
  readonly overrides: ReliabilityConfig.Overrides
}

const runTimeoutSide = (side: TimeoutSide, options: { readonly calls: number; readonly perSecond: number; readonly seed: number }) =>
  Effect.scoped(Effect.gen(function*() {
    const plan = latencyPlan(options.seed, options.calls * 2, 0.02)
    const sandbox = yield* Sandbox.make({ plans: { gemini: plan }, requestLog: { maxEntries: options.calls * 4 } })
    const layer = clientLayer(side.overrides)
    const { adaptive, gemini } = yield* Effect.all({
      gemini: Gemini.makeWith({ baseUrl: sandbox.url, apiKey }),
      adaptive: Adaptive.Adaptive
    }).pipe(Effect.provide(layer))
    const latencies: Array<number> = []
    let succeeded = 0
    const started = performance.now()
    // Open loop: call i starts at i / perSecond whatever the others are doing, as independent
    // users would (a closed loop would stop sending while its callers wait on hung attempts).
    yield* Effect.forEach(Array.from({ length: options.calls }, (_, i) => i), (i) =>
      Effect.suspend(() => {
        const due = started + (1000 * i) / options.perSecond - performance.now()
        return Effect.zipRight(
          Effect.sleep(Duration.millis(Math.max(0, due))),
          Effect.suspend(() => {
            const begin = performance.now()
            return gemini.generateContent({ contents: [Gemini.userTurn(`call ${i}`)] }).pipe(
              Effect.match({ onFailure: () => undefined, onSuccess: () => void succeeded++ }),
              Effect.ensuring(Effect.sync(() => latencies.push(performance.now() - begin)))
            )
          })
        )
      }), { concurrency: "unbounded", discard: true })
    const elapsed = performance.now() - started
    // Per call, its attempts in arrival order: all but a successful last one were cut.
    const attemptsByCall = new Map<string, Array<Sandbox.RecordedRequest>>()
    for (const request of yield* sandbox.requestsFor("gemini")) {
      const call = callOf(request.body)
      if (call === undefined) continue
      const list = attemptsByCall.get(call) ?? []
      list.push(request)
      attemptsByCall.set(call, list)
    }
    let attempts = 0
    let hangs = 0
    let falseTimeouts = 0
    for (const list of attemptsByCall.values()) {
      attempts += list.length
      hangs += list.filter((request) => request.fault === "hang").length
      const last = list[list.length - 1]!
      const cut = last.fault === "hang" ? list : list.slice(0, -1)
      falseTimeouts += cut.filter((request) => request.fault !== "hang").length
    }
    const learned = (yield* adaptive.summaries).find((summary) => summary.operation === "gemini_api")?.learned
    return {
      side: side.name,
      calls: String(options.calls),
      "success %": ((100 * succeeded) / options.calls).toFixed(2),
      "p50 ms": percentile(latencies, 50).toFixed(1),
      "p99 ms": percentile(latencies, 99).toFixed(1),
      "p99.9 ms": percentile(latencies, 99.9).toFixed(1),
      attempts: String(attempts),
      "hung attempts": String(hangs),
      "false timeouts": `${falseTimeouts} (${((100 * falseTimeouts) / attempts).toFixed(2)}%)`,
      "attempt timeout at end": learned === undefined ? "45s (configured)" : `${formatDuration(learned)} (learned)`,
      "wall s": (elapsed / 1000).toFixed(1)
    } satisfies Row
  }))

/** A bare Gemini-shaped server: admits everything for `warmMillis`, then `ratePerSecond` (429 beyond). */
const throttlingServer = (options: { readonly warmMillis: number; readonly ratePerSecond: number; readonly burst: number }) =>
  Effect.suspend(() => {
    const stats = { requests: 0, throttled: 0 }
    const started = performance.now()
    let tokens = options.burst
    let refilledAt = started
    const ok = JSON.stringify({
      candidates: [{ content: { role: "model", parts: [{ text: "ok" }] }, finishReason: "STOP", index: 0 }]
    })
    const throttled = JSON.stringify({
      error: { code: 429, message: "Resource has been exhausted (e.g. check quota).", status: "RESOURCE_EXHAUSTED" }
    })
    const server = http.createServer((request, response) => {
      request.resume()
      request.on("end", () => {
        stats.requests++
        const now = performance.now()
        tokens = Math.min(options.burst, tokens + ((now - refilledAt) / 1000) * options.ratePerSecond)
        refilledAt = now
        const admitted = now - started < options.warmMillis || tokens >= 1
        if (admitted && now - started >= options.warmMillis) tokens -= 1
        if (!admitted) stats.throttled++
        response.writeHead(admitted ? 200 : 429, { "content-type": "application/json" })
        response.end(admitted ? ok : throttled)
      })
    })
    return Effect.map(listen(server), ({ url }) => ({ url, stats }))
  })

const runStormSide = (name: string, pacing: boolean, options: { readonly callers: number; readonly seconds: number }) =>
  Effect.scoped(Effect.gen(function*() {
    const server = yield* throttlingServer({ warmMillis: 2000, ratePerSecond: 50, burst: 10 })
    const layer = clientLayer({
      budget: { enabled: false },
      breakers: { gemini: { failureThreshold: 1_000_000 } },
      adaptive: pacing ? { rate: { gemini: "on" } } : {}
    })
    const { adaptive, gemini } = yield* Effect.all({
      gemini: Gemini.makeWith({ baseUrl: server.url, apiKey }),
      adaptive: Adaptive.Adaptive
    }).pipe(Effect.provide(layer))
    const end = performance.now() + options.seconds * 1000
    let succeeded = 0
    let failed = 0
    const caller: Effect.Effect<void> = Effect.suspend(() =>
      performance.now() >= end ? Effect.void : gemini.generateContent({ contents: [Gemini.userTurn("storm")] }).pipe(
        Effect.match({ onFailure: () => void failed++, onSuccess: () => void succeeded++ }),
        Effect.zipRight(caller)
      )
    )
    const started = performance.now()
    yield* Effect.forEach(Array.from({ length: options.callers }), () => caller, { concurrency: "unbounded", discard: true })
    const elapsed = (performance.now() - started) / 1000
    const rate = adaptive.pacerFor("gemini", Date.now())?.rate
    return {
      side: name,
      "requests sent": String(server.stats.requests),
      "429s": String(server.stats.throttled),
      "successful calls": String(succeeded),
      "failed calls": String(failed),
      "paced rate at end (/s)": rate === undefined ? "-" : rate.toFixed(1),
      "wall s": elapsed.toFixed(1)
    } satisfies Row
  }))

/**
 * Calls through a throwaway client and sandbox first, so that loading and compiling the client
 * and server code (on first use) does not land in either side's figures.
 */
const warmUp = Effect.scoped(Effect.gen(function*() {
  const sandbox = yield* Sandbox.make({ recordRequests: false })
  const gemini = yield* Gemini.makeWith({ baseUrl: sandbox.url, apiKey }).pipe(Effect.provide(clientLayer({})))
  yield* Effect.forEach(Array.from({ length: 200 }), () => gemini.generateContent({ contents: [Gemini.userTurn("warm up")] }), {
    concurrency: 8,
    discard: true
  })
}))

/** Both scenarios, each side by side; one row per side. */
export const runAdaptiveBench = (options: { readonly calls: number; readonly perSecond: number; readonly seed?: number }) => {
  const seed = options.seed ?? 42
  const timeoutSides: ReadonlyArray<TimeoutSide> = [
    { name: "fixed gemini_api (45s)", overrides: {} },
    { name: "adaptive gemini_api (×3 p99, floor 1s, 50 samples)", overrides: { adaptive: { gemini_api: "on" } } }
  ]
  const timeouts = Effect.all(timeoutSides.map((side) => runTimeoutSide(side, { ...options, seed })), { concurrency: "unbounded" })
  const storm = Effect.all([
    runStormSide("no pacing", false, { callers: 64, seconds: 20 }),
    runStormSide("adaptive pacing", true, { callers: 64, seconds: 20 })
  ], { concurrency: "unbounded" })
  // One scenario after the other: each side by side, but the two scenarios not competing for CPU.
  return Effect.runPromise(quiet(Effect.zipRight(warmUp, Effect.all({ timeouts, storm }))))
}

// `node --import tsx bench/adaptive.ts` runs this bench alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  const { markdownTable } = await import("./util.js")
  const result = await runAdaptiveBench({ calls: Number(process.env.BENCH_ADAPTIVE_CALLS ?? 1000), perSecond: 20 })
  console.log(markdownTable(result.timeouts))
  console.log()
  console.log(markdownTable(result.storm))
}
