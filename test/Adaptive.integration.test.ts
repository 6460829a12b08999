import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Metric from "effect/Metric"
import * as Redacted from "effect/Redacted"
import * as Http from "node:http"
import * as Adaptive from "../src/Adaptive.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Gemini from "../src/Gemini.js"
import * as Metrics from "../src/Metrics.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Sandbox from "../src/Sandbox.js"

const apiKey = Redacted.make("sandbox-key")

const clientLayer = (overrides: ReliabilityConfig.Overrides) =>
  Layer.mergeAll(CircuitBreaker.layer, Adaptive.layer).pipe(
    Layer.provideMerge(ReliabilityConfig.layerWith(overrides)),
    Layer.provideMerge(NodeHttpClient.layerUndici)
  )

const ask = (gemini: Gemini.Service, text: string) => gemini.generateContent({ contents: [Gemini.userTurn(text)] })

describe("adaptive timeouts over loopback", () => {
  it.live("against the Sandbox, a hung attempt is cut at the learned timeout (not 45 s) and the retry answers", () =>
    Effect.scoped(Effect.gen(function*() {
      const plan: ReadonlyArray<Sandbox.FaultStep> = [...Array.from({ length: 50 }, () => ({ latency: "2 millis" }) as const), { hang: true }]
      const sandbox = yield* Sandbox.make({ plans: { gemini: plan } })
      const gemini = yield* Gemini.makeWith({ baseUrl: sandbox.url, apiKey })
      const adaptive = yield* Adaptive.Adaptive
      for (let i = 0; i < 50; i++) yield* ask(gemini, `warm ${i}`)
      const summary = (yield* adaptive.summaries)[0]
      assert.strictEqual(summary?.samples, 50)
      // 3 × the slowest of 50 loopback answers, at least the 200 ms floor: far below the configured 45 s.
      const learned = summary?.learned
      assert.isTrue(learned !== undefined && Duration.between(learned, { minimum: "200 millis", maximum: "10 seconds" }))
      // The 51st request hangs: with the configured 45 s this call would outlast the test's timeout.
      const answer = yield* ask(gemini, "the one that hangs first")
      assert.isDefined(answer.candidates?.[0])
      const requests = yield* sandbox.requestsFor("gemini")
      assert.deepStrictEqual(requests.slice(-2).map((request) => request.fault), ["hang", "none"])
    })).pipe(
      Effect.provide(clientLayer({
        adaptive: { gemini_api: "on", floor: "200 millis" },
        policies: { gemini: { initialDelay: "10 millis", jitter: "none" } }
      })),
      Logger.withMinimumLogLevel(LogLevel.None)
    ), { timeout: 20_000 })

  it.live("against a bare server that answers 429, the service's pacer engages and exports its rate", () =>
    Effect.scoped(Effect.gen(function*() {
      let requests = 0
      const server = yield* Effect.acquireRelease(
        Effect.async<Http.Server>((resume) => {
          const created = Http.createServer((request, response) => {
            request.resume()
            request.on("end", () => {
              requests++
              const throttled = requests > 20
              response.writeHead(throttled ? 429 : 200, { "content-type": "application/json" })
              response.end(JSON.stringify(
                throttled
                  ? { error: { code: 429, message: "Resource has been exhausted (e.g. check quota).", status: "RESOURCE_EXHAUSTED" } }
                  : { candidates: [{ content: { role: "model", parts: [{ text: "ok" }] }, finishReason: "STOP", index: 0 }] }
              ))
            })
          })
          created.listen(0, "127.0.0.1", () => resume(Effect.succeed(created)))
        }),
        (created) => Effect.async<void>((resume) => void created.close(() => resume(Effect.void)))
      )
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      const gemini = yield* Gemini.makeWith({ baseUrl: `http://127.0.0.1:${port}`, apiKey })
      const adaptive = yield* Adaptive.Adaptive
      const pacer = adaptive.pacerFor("gemini", Date.now())
      for (let i = 0; i < 20; i++) yield* ask(gemini, `call ${i}`)
      assert.strictEqual(pacer?.rate, undefined)
      const refused = yield* Effect.flip(ask(gemini, "throttled"))
      assert.strictEqual(refused._tag, "RateLimited")
      const rate = pacer?.rate
      assert.isDefined(rate)
      assert.isAtLeast(rate!, 0.5)
      const gauge = yield* Metric.value(Metrics.adaptiveRate.pipe(Metric.tagged("service", "gemini")))
      assert.strictEqual(gauge.value, rate)
      assert.strictEqual(requests, 21)
    })).pipe(
      Effect.provide(clientLayer({ adaptive: { rate: { gemini: "on" } }, policies: { gemini: { maxAttempts: 1 } } })),
      Logger.withMinimumLogLevel(LogLevel.None)
    ))
})
