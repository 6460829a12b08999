/**
 * What tracing costs a protected call: off (tracing disabled in the runtime), on with no exporter configured
 * (Effect's built-in tracer, which records nowhere: the pipeline makes no spans then), and on
 * with the OpenTelemetry exporter of `Telemetry.layer` sending to a loopback OTLP receiver (a
 * call span and an attempt span each call; the bounded queue drops what it cannot hold).
 * Each figure is the median of `runs` runs; runs of the contenders alternate, so a busy machine
 * slows them alike.
 */
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Http from "node:http"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Resilience from "../src/Resilience.js"
import * as Telemetry from "../src/Telemetry.js"
import { median, type Row } from "./util.js"

export const runTracingBench = async (options: { readonly calls: number; readonly exportedCalls: number; readonly runs: number }): Promise<ReadonlyArray<Row>> => {
  const receiver = Http.createServer((request, response) => {
    request.resume()
    request.on("end", () => response.writeHead(200, { "content-type": "application/json" }).end("{}"))
  })
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve))
  const address = receiver.address()
  const port = typeof address === "object" && address !== null ? address.port : 0

  const base = Layer.provideMerge(CircuitBreaker.layer, ReliabilityConfig.layerDefault)
  const plain = ManagedRuntime.make(base)
  const disabled = ManagedRuntime.make(Layer.merge(base, Layer.setTracerEnabled(false)))
  const exporting = ManagedRuntime.make(Layer.provideMerge(
    base,
    Telemetry.layer.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([
      ["OTEL_EXPORTER_OTLP_ENDPOINT", `http://127.0.0.1:${port}`],
      ["OTEL_METRIC_EXPORT_INTERVAL", "600000"]
    ])))))
  ))
  const options_ = { operation: "gemini_api", policy: "gemini", breaker: "gemini" } as const
  const protectPlain = await plain.runPromise(Resilience.makeProtect(options_))
  const protectDisabled = await disabled.runPromise(Resilience.makeProtect(options_))
  const protectExporting = await exporting.runPromise(Resilience.makeProtect(options_))
  const op = Effect.succeed(1)
  const loop = <E>(runtime: ManagedRuntime.ManagedRuntime<never, E> | typeof plain, call: () => Effect.Effect<number, unknown>) => (calls: number) =>
    runtime.runPromise(Effect.gen(function*() {
      for (let i = 0; i < calls; i++) yield* Effect.ignore(call())
    }))

  const contenders = [
    { name: "tracing off (Layer.setTracerEnabled(false))", calls: options.calls, run: loop(disabled, () => protectDisabled(op)) },
    { name: "tracing on, no exporter configured", calls: options.calls, run: loop(plain, () => protectPlain(op)) },
    { name: "tracing on, exporting over OTLP/HTTP (2 spans a call)", calls: options.exportedCalls, run: loop(exporting, () => protectExporting(op)) }
  ]
  const samples = new Map<string, Array<number>>(contenders.map((contender) => [contender.name, []]))
  for (const contender of contenders) await contender.run(Math.min(20_000, contender.calls))
  for (let run = 0; run < options.runs; run++) {
    for (const contender of contenders) {
      const start = process.hrtime.bigint()
      await contender.run(contender.calls)
      samples.get(contender.name)?.push(Number(process.hrtime.bigint() - start) / contender.calls)
    }
  }
  await exporting.dispose()
  await plain.dispose()
  await disabled.dispose()
  await new Promise<void>((resolve) => receiver.close(() => resolve()))

  const off = median(samples.get(contenders[0]!.name) ?? [])
  return contenders.map((contender) => {
    const ns = median(samples.get(contender.name) ?? [])
    process.stderr.write(`  tracing: ${contender.name}: ${ns.toFixed(0)} ns/call\n`)
    return {
      contender: contender.name,
      calls: contender.calls.toLocaleString("en"),
      "ns/call": ns.toFixed(0),
      "added vs off (µs)": ((ns - off) / 1000).toFixed(2)
    }
  })
}
