/**
 * Telemetry settings, read through the current `ConfigProvider` by the standard names:
 * `BIG3_METRICS_PORT` / `BIG3_METRICS_HOST` / `BIG3_METRICS_RUNTIME` for the Prometheus endpoint,
 * and OpenTelemetry's own `OTEL_*` variables for the OTLP export.
 *
 * @internal
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { MAX_TIMER_MILLIS } from "../internal/timer.js"

/** Everything the telemetry layer is built from. */
export interface Settings {
  /** The `/metrics` port; 0 picks a free one. Absent: no endpoint. */
  readonly metricsPort: number | undefined
  readonly metricsHost: string
  /** Also expose (and collect) the Effect runtime's fiber metrics. */
  readonly metricsRuntime: boolean
  /** `OTEL_EXPORTER_OTLP_ENDPOINT`, an http(s) URL. Absent: nothing is exported. */
  readonly otlpEndpoint: string | undefined
  readonly serviceName: string
  /** How often metrics are exported, in ms (`OTEL_METRIC_EXPORT_INTERVAL`). */
  readonly metricExportInterval: number
  /** The span queue's bound and batching (`OTEL_BSP_*`), in spans and ms. */
  readonly spanQueueSize: number
  readonly spanBatchSize: number
  readonly spanScheduleDelay: number
  readonly exportTimeout: number
}

/** A whole number from 1 to `max`. */
const positive = (name: string, fallback: number, max: number, unit: string) =>
  Config.integer(name).pipe(
    Config.validate({ message: `${name} must be a whole number of ${unit} from 1 to ${max}`, validation: (n) => n > 0 && n <= max }),
    Config.withDefault(fallback)
  )

/** Node's timers hold at most 2^31 - 1 ms (24.8 days); a longer one fires after 1 ms instead. */
const millis = (name: string, fallback: number) => positive(name, fallback, MAX_TIMER_MILLIS, "milliseconds")
const spans = (name: string, fallback: number) => positive(name, fallback, 1_000_000, "spans")

const optional = <A>(config: Config.Config<A>) => Config.map(Config.option(config), Option.getOrUndefined)

const endpointKey = "OTEL_EXPORTER_OTLP_ENDPOINT"
const endpointExpected = "expected an http:// or https:// URL such as http://127.0.0.1:4318"

/**
 * The OTLP endpoint, checked here rather than by the exporter (which throws an untyped error
 * quoting the URL, credentials included). The message never repeats the value: it may hold a
 * password or a token.
 */
const endpointUrl = (text: string): Either.Either<string, ConfigError.ConfigError> => {
  const invalid = (what: string) => Either.left(ConfigError.InvalidData([], `${endpointKey} ${what}: ${endpointExpected}`))
  if (!URL.canParse(text)) return invalid("is not a URL")
  const url = new URL(text)
  if (url.protocol !== "http:" && url.protocol !== "https:") return invalid(`has the scheme ${url.protocol.slice(0, -1).slice(0, 20)}`)
  if (url.hash !== "") return invalid("has a #fragment")
  return Either.right(url.href)
}

/**
 * The URL of a signal's path under the endpoint (`v1/traces`, `v1/metrics`), appended to the
 * endpoint's path as the OTLP exporter specification says; a query stays a query.
 */
export const signalUrl = (endpoint: string, signal: string): string => {
  const url = new URL(endpoint)
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/${signal}`
  return url.href
}

/** The settings; a malformed value fails with a `ConfigError` naming it. */
/** `BIG3_METRICS_RUNTIME`: the Effect runtime's fiber metrics too, in `/metrics` and `--metrics`. */
export const metricsRuntime: Config.Config<boolean> = Config.boolean("BIG3_METRICS_RUNTIME").pipe(Config.withDefault(false))

export const settings: Config.Config<Settings> = Config.all({
  metricsPort: optional(
    Config.integer("BIG3_METRICS_PORT").pipe(
      Config.validate({
        message: "BIG3_METRICS_PORT must be a port number from 0 to 65535 (0 picks a free port)",
        validation: (port) => port >= 0 && port <= 65535
      })
    )
  ),
  metricsHost: Config.string("BIG3_METRICS_HOST").pipe(Config.withDefault("127.0.0.1")),
  metricsRuntime,
  otlpEndpoint: optional(Config.mapOrFail(Config.nonEmptyString("OTEL_EXPORTER_OTLP_ENDPOINT"), endpointUrl)),
  serviceName: Config.nonEmptyString("OTEL_SERVICE_NAME").pipe(Config.withDefault("big3")),
  metricExportInterval: millis("OTEL_METRIC_EXPORT_INTERVAL", 60_000),
  spanQueueSize: spans("OTEL_BSP_MAX_QUEUE_SIZE", 2048),
  spanBatchSize: spans("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
  spanScheduleDelay: millis("OTEL_BSP_SCHEDULE_DELAY", 5000),
  exportTimeout: millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)
})
