/**
 * Chaos figures: Gemini calls through the real client and HTTP stack against the sandbox with a
 * seeded fault mix, with and without the retry budget; and an outage showing how much load the
 * breaker and the budget keep off a server that is down.
 *
 * Waits are scaled down (initial 1 ms, cap 20 ms) so ten thousand calls finish in seconds; the
 * attempt counts and retry decisions are the same as with the production delays.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Gemini from "../src/Gemini.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Sandbox from "../src/Sandbox.js"
import { percentile, type Row } from "./util.js"

interface Scenario {
  readonly name: string
  readonly plan: Sandbox.FaultPlan
  readonly calls: number
  readonly budget: boolean
  readonly breaker: boolean
}

const runScenario = (scenario: Scenario, concurrency: number) =>
  Effect.scoped(Effect.gen(function*() {
    // Hits are counted from the request log, a ring of 10,000 by default: keep every request.
    const sandbox = yield* Sandbox.make({ plans: { gemini: scenario.plan }, requestLog: { maxEntries: 4 * scenario.calls } })
    const config = ReliabilityConfig.layerWith({
      policies: { gemini: { maxAttempts: 3, initialDelay: "1 millis", maxDelay: "20 millis" } },
      budget: { enabled: scenario.budget },
      // "No breaker" is one that never opens.
      breakers: { gemini: scenario.breaker ? { openDuration: "200 millis" } : { failureThreshold: 1_000_000 } }
    })
    const gemini = yield* Gemini.makeWith({ baseUrl: sandbox.url, apiKey: Redacted.make("sandbox-key") }).pipe(
      Effect.provide(Layer.provideMerge(CircuitBreaker.layer, config))
    )
    const latencies: Array<number> = []
    let succeeded = 0
    const started = performance.now()
    yield* Effect.forEach(Array.from({ length: scenario.calls }, (_, i) => i), (i) =>
      Effect.suspend(() => {
        const begin = performance.now()
        return gemini.generateContent({ contents: [Gemini.userTurn(`call ${i}`)] }).pipe(
          Effect.match({
            onFailure: () => undefined,
            onSuccess: () => {
              succeeded++
            }
          }),
          Effect.ensuring(Effect.sync(() => latencies.push(performance.now() - begin)))
        )
      }), { concurrency, discard: true })
    const elapsed = performance.now() - started
    const hits = (yield* sandbox.requestsFor("gemini")).length
    const mean = latencies.reduce((sum, x) => sum + x, 0) / latencies.length
    return {
      scenario: scenario.name,
      calls: String(scenario.calls),
      "success %": ((100 * succeeded) / scenario.calls).toFixed(1),
      "mean ms": mean.toFixed(2),
      "p99 ms": percentile(latencies, 99).toFixed(2),
      "sandbox hits": String(hits),
      "hits / call": (hits / scenario.calls).toFixed(2),
      "wall s": (elapsed / 1000).toFixed(1)
    } satisfies Row
  })).pipe(
    Effect.provide(NodeHttpClient.layerUndici),
    Logger.withMinimumLogLevel(LogLevel.None)
  )

/** Runs the chaos scenarios and returns one row per scenario. */
export const runChaosBench = (options: { readonly calls: number; readonly concurrency: number; readonly seed?: number }) => {
  const seed = options.seed ?? 42
  const transient: Sandbox.FaultPlan = { seed, rates: { serverError: 0.3 } }
  const outage: Sandbox.FaultPlan = { seed, rates: { serverError: 1 } }
  const outageCalls = Math.min(options.calls, 2000)
  const scenarios: ReadonlyArray<Scenario> = [
    { name: "30% transient 503, 3 attempts, no budget", plan: transient, calls: options.calls, budget: false, breaker: false },
    { name: "30% transient 503, 3 attempts, budget 20%", plan: transient, calls: options.calls, budget: true, breaker: false },
    { name: "outage (100% 503), retries only", plan: outage, calls: outageCalls, budget: false, breaker: false },
    { name: "outage (100% 503), retry budget", plan: outage, calls: outageCalls, budget: true, breaker: false },
    { name: "outage (100% 503), budget + breaker", plan: outage, calls: outageCalls, budget: true, breaker: true }
  ]
  return Effect.runPromise(Effect.forEach(scenarios, (scenario) => runScenario(scenario, options.concurrency)))
}
