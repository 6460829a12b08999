/**
 * big3's metrics, as Effect `Metric`s, and their snapshot in Prometheus text format.
 *
 * Every metric carries a `service` label. Hot paths update them with label arrays built once
 * (`labelsFor`), which Effect caches by identity, so an update is a map hit and an add.
 * Counters are `incremental` (they only go up): OpenTelemetry exports such a counter as a
 * monotonic sum, which backends read as a counter; any other is an up-down counter, a gauge.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import type * as MetricKey from "effect/MetricKey"
import * as MetricLabel from "effect/MetricLabel"
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"

/** Calls made through `protect` / `withRetry`, by service and outcome ("success", "failure"). */
export const calls = Metric.counter("big3_calls_total", { incremental: true, description: "Protected calls, by outcome" })

/** Attempts, including the first, by service. */
export const attempts = Metric.counter("big3_attempts_total", { incremental: true, description: "Attempts, including first attempts" })

/** Retries, by service and reason (the error tag that caused them). */
export const retries = Metric.counter("big3_retries_total", { incremental: true, description: "Retries, by the error that caused them" })

/** Retries refused by the retry budget, by service. */
export const budgetRejections = Metric.counter("big3_retry_budget_rejections_total", {
  incremental: true,
  description: "Retries refused because the service's retry budget was spent"
})

/** Timeouts, by service and operation. */
export const timeouts = Metric.counter("big3_timeouts_total", { incremental: true, description: "Operations cut by their timeout" })

/** Breaker state, by service: 0 closed, 1 half-open, 2 open. */
export const breakerState = Metric.gauge("big3_breaker_state", {
  description: "Circuit breaker state: 0 closed, 1 half-open, 2 open"
})

/** Calls refused by an open breaker, by service. */
export const breakerRejections = Metric.counter("big3_breaker_rejections_total", {
  incremental: true,
  description: "Calls refused by an open circuit breaker"
})

/** Breaker transitions, by service and target state. */
export const breakerTransitions = Metric.counter("big3_breaker_transitions_total", {
  incremental: true,
  description: "Circuit breaker state changes, by the state entered"
})

/** Duration of whole protected calls (all attempts and waits), in seconds, by service. */
export const callDuration = Metric.histogram(
  "big3_call_duration_seconds",
  MetricBoundaries.fromIterable([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]),
  "Duration of protected calls, all attempts and waits included"
)

/** Observability pipeline counters, by `kind` (emitted, delivered, retried, spooled, …). */
export const events = Metric.counter("big3_events_total", { incremental: true, description: "Observability events, by what happened" })

/** Connections replaced by a new one, by service and reason ("dropped", "stalled", "session_expired"). */
export const reconnects = Metric.counter("big3_reconnects_total", {
  incremental: true,
  description: "Connections that ended and were replaced, by reason"
})

/** An upstream's own rate limit as it last reported it (Realtime `rate_limits.updated`), by service and `name`. */
export const rateLimitLimit = Metric.gauge("big3_rate_limit_limit", {
  description: "The upstream's rate limit, as it last reported it"
})

/** What is left of that limit, by service and `name` ("requests", "tokens"). */
export const rateLimitRemaining = Metric.gauge("big3_rate_limit_remaining", {
  description: "What remains of the upstream's rate limit, as it last reported it"
})

/** Seconds until that limit resets, by service and `name`. */
export const rateLimitResetSeconds = Metric.gauge("big3_rate_limit_reset_seconds", {
  description: "Seconds until the upstream's rate limit resets, as it last reported it"
})

/** The per-attempt timeout an adaptive operation uses now (learned, or its configured ceiling), by service and operation. */
export const adaptiveTimeout = Metric.gauge("big3_adaptive_timeout_seconds", {
  description: "Per-attempt timeout of an adaptive operation: learned from its latencies, at most the configured one"
})

/** The send rate a service is paced to after 429s (adaptive pacing), by service. */
export const adaptiveRate = Metric.gauge("big3_adaptive_rate_per_second", {
  description: "Requests per second a throttled service is paced to by the adaptive token bucket"
})

/**
 * Spans handed to the OpenTelemetry exporter, by `outcome`: "exported", "dropped" (the bounded
 * queue was full) or "failed" (the export failed). Exporting never waits on the caller's behalf.
 */
export const telemetrySpans = Metric.counter("big3_telemetry_spans_total", {
  incremental: true,
  description: "Finished spans handed to the OTLP exporter, by outcome (exported, dropped, failed)"
})

/** OTLP metric exports, by `outcome` ("success", "failure"). */
export const telemetryMetricExports = Metric.counter("big3_telemetry_metric_exports_total", {
  incremental: true,
  description: "OTLP metric exports, by outcome"
})

/**
 * A label array for `service` and optional extra pairs. Effect caches a metric's hook by the
 * identity of this array, so hot paths build theirs once (when a pipeline or a breaker is made)
 * and pass the same array on every update.
 */
export const labelsFor = (service: string, extra?: Readonly<Record<string, string>>): ReadonlyArray<MetricLabel.MetricLabel> => [
  MetricLabel.make("service", service),
  ...Object.entries(extra ?? {}).map(([key, value]) => MetricLabel.make(key, value))
]

const escapeLabel = (value: string): string => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')

const formatLabels = (labels: ReadonlyArray<MetricLabel.MetricLabel>, extra?: readonly [string, string]): string => {
  const all = labels.map((label) => [label.key, label.value] as const).concat(extra === undefined ? [] : [extra])
  return all.length === 0 ? "" : `{${all.map(([key, value]) => `${key}="${escapeLabel(value)}"`).join(",")}}`
}

const formatNumber = (value: number | bigint): string => {
  if (typeof value === "bigint") return value.toString()
  if (Number.isNaN(value)) return "NaN"
  if (value === Infinity) return "+Inf"
  if (value === -Infinity) return "-Inf"
  return String(value)
}

/**
 * A counter's exposed name and type. big3's counters are named `…_total`; a counter of another
 * library (Effect's `effect_fiber_started`) gets the suffix, and one that also goes down
 * (`effect_fiber_active`) is a gauge in Prometheus terms.
 */
const counterFamily = (name: string, key: MetricKey.MetricKey.Untyped): readonly [string, "counter" | "gauge"] => {
  if (name.endsWith("_total")) return [name, "counter"]
  const keyType = key.keyType
  const incremental = "incremental" in keyType && keyType.incremental === true
  return incremental ? [`${name}_total`, "counter"] : [name, "gauge"]
}

/** True for big3's own metrics (named `big3_…`), as opposed to the Effect runtime's or a library's. */
export const isOwn = (pair: MetricPair.MetricPair.Untyped): boolean => pair.metricKey.name.startsWith("big3_")

/**
 * Formats metric pairs in the Prometheus text exposition format (version 0.0.4). Counters,
 * gauges, histograms, summaries and frequencies are supported. Every family has a `# HELP` line
 * (a metric without a description is described by its name).
 */
export const formatPrometheus = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, { type: string; help: string; lines: Array<string> }>()
  const family = (name: string, type: string, help: string) => {
    let found = families.get(name)
    if (found === undefined) {
      found = { type, help, lines: [] }
      families.set(name, found)
    }
    return found
  }
  const sorted = [...pairs].sort((a, b) => a.metricKey.name.localeCompare(b.metricKey.name))
  for (const pair of sorted) {
    const { metricKey, metricState } = pair
    const name = metricKey.name.replace(/[^a-zA-Z0-9_:]/g, "_")
    const help = metricKey.description._tag === "Some" ? metricKey.description.value : name.replace(/_/g, " ")
    const labels = metricKey.tags
    if (MetricState.isCounterState(metricState)) {
      const [exposed, type] = counterFamily(name, metricKey)
      family(exposed, type, help).lines.push(`${exposed}${formatLabels(labels)} ${formatNumber(metricState.count)}`)
    } else if (MetricState.isGaugeState(metricState)) {
      family(name, "gauge", help).lines.push(`${name}${formatLabels(labels)} ${formatNumber(metricState.value)}`)
    } else if (MetricState.isHistogramState(metricState)) {
      const lines = family(name, "histogram", help).lines
      // Effect's boundaries already end with +Inf; the exposition has exactly one +Inf bucket,
      // equal to the count.
      for (const [boundary, count] of metricState.buckets) {
        if (boundary !== Infinity) lines.push(`${name}_bucket${formatLabels(labels, ["le", formatNumber(boundary)])} ${count}`)
      }
      lines.push(`${name}_bucket${formatLabels(labels, ["le", "+Inf"])} ${metricState.count}`)
      lines.push(`${name}_sum${formatLabels(labels)} ${formatNumber(metricState.sum)}`)
      lines.push(`${name}_count${formatLabels(labels)} ${metricState.count}`)
    } else if (MetricState.isSummaryState(metricState)) {
      const lines = family(name, "summary", help).lines
      for (const [quantile, value] of metricState.quantiles) {
        if (value._tag === "Some") {
          lines.push(`${name}${formatLabels(labels, ["quantile", formatNumber(quantile)])} ${formatNumber(value.value)}`)
        }
      }
      lines.push(`${name}_sum${formatLabels(labels)} ${formatNumber(metricState.sum)}`)
      lines.push(`${name}_count${formatLabels(labels)} ${metricState.count}`)
    } else if (MetricState.isFrequencyState(metricState)) {
      const lines = family(name, "counter", help).lines
      for (const [value, count] of metricState.occurrences) {
        lines.push(`${name}${formatLabels(labels, ["value", value])} ${count}`)
      }
    }
  }
  const out: Array<string> = []
  for (const [name, { type, help, lines }] of families) {
    out.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`)
    out.push(`# TYPE ${name} ${type}`)
    out.push(...lines)
  }
  return out.length === 0 ? "" : `${out.join("\n")}\n`
}

/** A snapshot of every metric in the process, in Prometheus text format. */
export const prometheus: Effect.Effect<string> = Effect.map(Metric.snapshot, formatPrometheus)

/** The same, for callers outside Effect. */
export const prometheusText = (): string => formatPrometheus(Metric.unsafeSnapshot())

/**
 * What a scrape of `/metrics` serves: big3's own metrics, and the Effect runtime's and other
 * libraries' too when `all` is set (`BIG3_METRICS_RUNTIME=on`).
 */
export const exposition = (options: { readonly all?: boolean | undefined } = {}): Effect.Effect<string> =>
  Effect.map(Metric.snapshot, (pairs) => formatPrometheus(options.all === true ? pairs : pairs.filter(isOwn)))
