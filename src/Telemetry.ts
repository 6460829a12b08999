/**
 * Telemetry that real tools read: a Prometheus endpoint and OpenTelemetry export.
 *
 * - `BIG3_METRICS_PORT` set: the process serves `GET /metrics` (Prometheus text format 0.0.4) on
 *   `BIG3_METRICS_HOST` (default 127.0.0.1) at that port (0 picks a free one). Only big3's own
 *   metrics (`big3_…`) unless `BIG3_METRICS_RUNTIME=on`, which also collects and serves the
 *   Effect runtime's fiber metrics.
 * - `OTEL_EXPORTER_OTLP_ENDPOINT` set: spans and metrics go to `{endpoint}/v1/traces` and
 *   `{endpoint}/v1/metrics` over OTLP/HTTP (JSON), as service `OTEL_SERVICE_NAME` (default
 *   `big3`). Spans wait in a bounded queue (`OTEL_BSP_MAX_QUEUE_SIZE`, default 2048); what does
 *   not fit is dropped and counted, never waited for. Metrics go every
 *   `OTEL_METRIC_EXPORT_INTERVAL` ms (default 60000) and once more at exit.
 * - Neither set: nothing is loaded, served or exported.
 *
 * `Runtime.layer` (and every `big3` command) includes `Telemetry.layer`, so both close with the
 * runtime. Built inside a scope where telemetry is already running (an app that provides it
 * itself, a CLI command whose runtime is built inside the program's), the layer reuses that one
 * instead of binding the port twice.
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as RuntimeFlags from "effect/RuntimeFlags"
import type * as Scope from "effect/Scope"
import { settings } from "./telemetry/Settings.js"
import { messageOf } from "./internal/messageOf.js"
import { TelemetryError, telemetryError } from "./telemetry/TelemetryError.js"

export { TelemetryError }

/** Where this process's telemetry can be found. */
export interface Service {
  /** The `/metrics` URL while it is served, e.g. `http://127.0.0.1:9464/metrics`. */
  readonly metricsUrl: string | undefined
  /** The OTLP/HTTP endpoint spans and metrics are exported to. */
  readonly otlpEndpoint: string | undefined
}

export class Telemetry extends Context.Tag("big3/Telemetry")<Telemetry, Service>() {}

/** The telemetry already running in this fiber's scope, so a nested runtime does not start a second. */
const running = globalValue(
  Symbol.for("big3/Telemetry/running"),
  () => FiberRef.unsafeMake<Option.Option<Service>>(Option.none())
)

const load = <M>(what: string, importer: () => Promise<M>): Effect.Effect<M, TelemetryError> =>
  Effect.tryPromise({ try: importer, catch: (cause) => telemetryError(`cannot load the ${what}: ${messageOf(cause)}`) })

/**
 * Starts what the settings ask for, for the life of the layer. Fails with a `ConfigError` for a
 * malformed setting, or `TelemetryError` when the port cannot be bound.
 */
const build: Effect.Effect<Layer.Layer<Telemetry>, ConfigError.ConfigError | TelemetryError, Scope.Scope> = Effect.gen(
  function*() {
    const found = yield* FiberRef.get(running)
    if (Option.isSome(found)) return Layer.succeed(Telemetry, found.value)
    const config = yield* settings
    const metricsUrl = config.metricsPort === undefined
      ? undefined
      : yield* Effect.flatMap(
        load("Prometheus endpoint", () => import("./telemetry/PrometheusEndpoint.js")),
        (endpoint) => endpoint.serve({ host: config.metricsHost, port: config.metricsPort ?? 0, all: config.metricsRuntime })
      )
    if (metricsUrl !== undefined) yield* Effect.logInfo(`serving metrics at ${metricsUrl}`)
    const endpoint = config.otlpEndpoint
    const otlp = endpoint === undefined
      ? Layer.empty
      : (yield* load("OpenTelemetry exporter", () => import("./telemetry/Otlp.js"))).layer({ ...config, otlpEndpoint: endpoint })
    const service: Service = { metricsUrl, otlpEndpoint: endpoint }
    yield* Effect.locallyScoped(running, Option.some(service))
    return Layer.mergeAll(
      Layer.succeed(Telemetry, service),
      otlp,
      config.metricsRuntime ? RuntimeFlags.enableRuntimeMetrics : Layer.empty
    )
  }
)

/** Telemetry as the environment configures it (see the module's description). */
export const layer: Layer.Layer<Telemetry, ConfigError.ConfigError | TelemetryError> = Layer.unwrapScoped(build)

/** No endpoint and no export, whatever the environment says: for tests and embedded runtimes. */
export const layerNone: Layer.Layer<Telemetry> = Layer.succeed(Telemetry, { metricsUrl: undefined, otlpEndpoint: undefined })
