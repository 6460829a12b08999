/**
 * Voice loop figures: Realtime turns through the real client (WebSocket, the `ws` transport)
 * against the sandbox over loopback, and how long a session is without a connection after a
 * drop, as the replayed conversation grows. The reconnect backoff is set to 1 ms (no jitter) so
 * the figure is the cost of noticing the drop, reconnecting and replaying, not the policy's wait.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Redacted from "effect/Redacted"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Realtime from "../src/Realtime.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Sandbox from "../src/Sandbox.js"
import { median, percentile, type Row } from "./util.js"

const client = (sandbox: Sandbox.Service) =>
  Realtime.layerWith({ url: sandbox.realtime.url, apiKey: Redacted.make("sandbox-key") }).pipe(
    Layer.provideMerge(CircuitBreaker.layer),
    Layer.provideMerge(ReliabilityConfig.layerWith({ policies: { network: { initialDelay: "1 millis", jitter: "none" } } }))
  )

const ms = (value: number) => `${value.toFixed(2)} ms`

/** `turns` turns of one kind in one session; latency per turn. */
const turnLatencies = (sandbox: Sandbox.Service, turns: number, text: string) =>
  Effect.scoped(Effect.gen(function*() {
    const session = yield* Realtime.connect({ onFunctionCall: () => Effect.succeed("ok") }).pipe(Effect.provide(client(sandbox)))
    const latencies: Array<number> = []
    for (let i = 0; i < turns; i++) {
      const begin = performance.now()
      yield* session.send(`${text} ${i}`)
      latencies.push(performance.now() - begin)
    }
    return latencies
  }))

/** Runs `history` turns, then drops the socket in the next turn; the session's downtime. */
const downtimeAfter = (history: number) =>
  Effect.scoped(Effect.gen(function*() {
    // Each plain turn is 14 server events (user item 2, response 12); 2 open the session.
    const sandbox = yield* Sandbox.make({ realtimePlan: [{ dropAfter: 2 + history * 14 + 5 }] })
    let downMs = NaN
    const session = yield* Realtime.connect({
      onEvent: (event) => Effect.sync(() => event._tag === "Reconnected" && (downMs = event.downMs))
    }).pipe(Effect.provide(client(sandbox)))
    for (let i = 0; i <= history; i++) yield* session.send(`turn ${i}`)
    return downMs
  }))

export const runVoiceBench = (options: { readonly turns: number; readonly runs: number }): Promise<ReadonlyArray<Row>> =>
  Effect.runPromise(Effect.gen(function*() {
    const rows: Array<Row> = []
    const sandbox = yield* Sandbox.make({ realtimeScript: [{ when: "call", calls: [{ name: "list_agents" }], text: "listed" }] })
    for (const [name, text] of [["text turn (1 response)", "hello"], ["turn with a function call (2 responses)", "call"]] as const) {
      const latencies = yield* turnLatencies(sandbox, options.turns, text)
      rows.push({
        measure: name,
        median: ms(median(latencies)),
        p99: ms(percentile(latencies, 99)),
        throughput: `${Math.round(1000 / (latencies.reduce((a, b) => a + b, 0) / latencies.length))} turns/s`
      })
    }
    for (const history of [0, 10, 100]) {
      const samples: Array<number> = []
      for (let run = 0; run < options.runs; run++) samples.push(yield* downtimeAfter(history))
      rows.push({
        measure: `reconnect after a drop, ${history} turns replayed`,
        median: ms(median(samples)),
        p99: ms(Math.max(...samples)),
        throughput: "-"
      })
    }
    return rows
  }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.None)))
