/**
 * OpenTelemetry export over OTLP/HTTP (JSON), through `@effect/opentelemetry`: spans from Effect's
 * tracer and big3's metrics. Loaded only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
 *
 * A finished span goes into a bounded queue (`BatchSpanProcessor`) and is sent in batches by a
 * timer: ending a span never waits on the network and never fails. What the queue cannot hold is
 * dropped and counted (`big3_telemetry_spans_total{outcome="dropped"}`), as are failed exports.
 * What was dropped or failed is also logged, as one warning per `reportInterval` at most and once
 * more when the layer closes, so a collector that is down or refuses does not go unnoticed.
 *
 * @internal
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import type { Attributes, Counter, Meter, MeterProvider } from "@opentelemetry/api"
import { createNoopMeter } from "@opentelemetry/api"
import { ExportResultCode, type ExportResult } from "@opentelemetry/core"
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import type { AggregationTemporality, InstrumentType, PushMetricExporter, ResourceMetrics } from "@opentelemetry/sdk-metrics"
import { PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics"
// sdk-trace rather than sdk-trace-base: its processor takes the meter provider drops are counted by,
// and reads no OTEL_* variables of its own (ours are read through the ConfigProvider).
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace"
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Metrics from "../Metrics.js"
import { type Settings, signalUrl } from "./Settings.js"

const spanOutcome = {
  exported: Metrics.labelsFor("telemetry", { outcome: "exported" }),
  dropped: Metrics.labelsFor("telemetry", { outcome: "dropped" }),
  failed: Metrics.labelsFor("telemetry", { outcome: "failed" })
}

/** How often what could not be exported is logged, at most. */
export const reportInterval = Duration.seconds(30)

/** What could not be exported since the last report: one per layer, read by its reporter. */
class Losses {
  private spansFailed = 0
  private spansDropped = 0
  private metricExports = 0
  private lastError: string | undefined
  /** Spans, and metric exports, handed to the exporters and not answered yet. */
  spansInFlight = 0
  metricExportsInFlight = 0

  failed(what: "spans" | "metrics", count: number, error: Error | undefined): void {
    if (what === "spans") this.spansFailed += count
    else this.metricExports += count
    // The collector's own words (an HTTP reason phrase), kept short for a log line.
    if (error !== undefined) this.lastError = error.message.slice(0, 200)
  }

  dropped(count: number): void {
    this.spansDropped += count
  }

  /**
   * The warning for what was lost since the last call, if anything was. At the end (`final`),
   * spans still in flight are lost too: the shutdown bound passed before the collector answered.
   */
  take(final = false): string | undefined {
    const parts = [
      this.spansFailed > 0 ? `${this.spansFailed} spans not exported` : undefined,
      final && this.spansInFlight > 0 ? `${this.spansInFlight} spans unanswered when the exporter closed` : undefined,
      final && this.metricExportsInFlight > 0 ? `${this.metricExportsInFlight} metric exports unanswered when the exporter closed` : undefined,
      this.metricExports > 0 ? `${this.metricExports} metric exports failed` : undefined,
      this.spansDropped > 0 ? `${this.spansDropped} spans dropped (the span queue was full)` : undefined
    ].filter((part) => part !== undefined)
    const cause = this.lastError === undefined ? "" : ` (last error: ${this.lastError})`
    this.spansFailed = this.spansDropped = this.metricExports = 0
    this.lastError = undefined
    return parts.length === 0 ? undefined : `OpenTelemetry export: ${parts.join(", ")}${cause}`
  }
}

/** A span exporter that notes failed exports. */
class ReportingSpanExporter implements SpanExporter {
  constructor(private readonly exporter: SpanExporter, private readonly losses: Losses) {}
  export(spans: Array<ReadableSpan>, resultCallback: (result: ExportResult) => void): void {
    this.losses.spansInFlight += spans.length
    this.exporter.export(spans, (result) => {
      this.losses.spansInFlight -= spans.length
      if (result.code !== ExportResultCode.SUCCESS) this.losses.failed("spans", spans.length, result.error)
      resultCallback(result)
    })
  }
  shutdown(): Promise<void> {
    return this.exporter.shutdown()
  }
  forceFlush(): Promise<void> {
    return this.exporter.forceFlush?.() ?? Promise.resolve()
  }
}

/**
 * The span processor reports what became of each span to a `MeterProvider`
 * (`otel.sdk.processor.span.processed`, with `error.type` "queue_full" for a drop). This one
 * turns those reports into big3's own counter, so drops show on `/metrics` as well.
 */
class SpanOutcomes implements MeterProvider {
  constructor(private readonly losses: Losses) {}
  private readonly noop = createNoopMeter()
  private readonly counter: Counter = {
    add: (value: number, attributes?: Attributes) => {
      const errorType = attributes?.["error.type"]
      const labels = errorType === undefined ? spanOutcome.exported : errorType === "queue_full" ? spanOutcome.dropped : spanOutcome.failed
      if (labels === spanOutcome.dropped) this.losses.dropped(value)
      Metrics.telemetrySpans.unsafeUpdate(value, labels)
    }
  }
  private readonly meter: Meter = {
    createCounter: () => this.counter,
    createGauge: (name, options) => this.noop.createGauge(name, options),
    createHistogram: (name, options) => this.noop.createHistogram(name, options),
    createUpDownCounter: (name, options) => this.noop.createUpDownCounter(name, options),
    createObservableGauge: (name, options) => this.noop.createObservableGauge(name, options),
    createObservableCounter: (name, options) => this.noop.createObservableCounter(name, options),
    createObservableUpDownCounter: (name, options) => this.noop.createObservableUpDownCounter(name, options),
    addBatchObservableCallback: (callback, observables) => this.noop.addBatchObservableCallback(callback, observables),
    removeBatchObservableCallback: (callback, observables) => this.noop.removeBatchObservableCallback(callback, observables)
  }
  getMeter(): Meter {
    return this.meter
  }
}

const metricExport = {
  success: Metrics.labelsFor("telemetry", { outcome: "success" }),
  failure: Metrics.labelsFor("telemetry", { outcome: "failure" })
}

/** A metric exporter that counts its exports' outcomes. */
class CountedMetricExporter implements PushMetricExporter {
  constructor(private readonly exporter: OTLPMetricExporter, private readonly losses: Losses) {}
  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    this.losses.metricExportsInFlight++
    this.exporter.export(metrics, (result) => {
      this.losses.metricExportsInFlight--
      const success = result.code === ExportResultCode.SUCCESS
      Metrics.telemetryMetricExports.unsafeUpdate(1, success ? metricExport.success : metricExport.failure)
      if (!success) this.losses.failed("metrics", 1, result.error)
      resultCallback(result)
    })
  }
  forceFlush(): Promise<void> {
    return this.exporter.forceFlush()
  }
  shutdown(): Promise<void> {
    return this.exporter.shutdown()
  }
  selectAggregationTemporality(instrumentType: InstrumentType): AggregationTemporality {
    return this.exporter.selectAggregationTemporality(instrumentType)
  }
}

/**
 * The OpenTelemetry SDK as a layer: Effect's tracer replaced by one that exports to
 * `{endpoint}/v1/traces`, and every Effect metric exported to `{endpoint}/v1/metrics` every
 * `metricExportInterval` ms and once more when the layer closes. Closing flushes both, bounded.
 */
export const layer = (settings: Settings & { readonly otlpEndpoint: string }): Layer.Layer<never> =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const losses = new Losses()
    const report = (final: boolean) =>
      Effect.suspend(() => {
        const message = losses.take(final)
        return message === undefined ? Effect.void : Effect.logWarning(message)
      })
    yield* Effect.forkScoped(Effect.schedule(report(false), Schedule.spaced(reportInterval)))
    // Runs after the SDK layer below has closed (it is built inside this scope): its last flush counts.
    yield* Effect.addFinalizer(() => report(true))
    return sdk(settings, losses)
  }))

const sdk = (settings: Settings & { readonly otlpEndpoint: string }, losses: Losses): Layer.Layer<never> =>
  NodeSdk.layer(() => ({
    resource: { serviceName: settings.serviceName },
    spanProcessor: new BatchSpanProcessor({
      exporter: new ReportingSpanExporter(
        new OTLPTraceExporter({ url: signalUrl(settings.otlpEndpoint, "v1/traces"), timeoutMillis: settings.exportTimeout }),
        losses
      ),
      maxQueueSize: settings.spanQueueSize,
      maxExportBatchSize: Math.min(settings.spanBatchSize, settings.spanQueueSize),
      scheduledDelayMillis: settings.spanScheduleDelay,
      exportTimeoutMillis: settings.exportTimeout,
      // Experimental in sdk-trace 2.x; the only place the processor reports what it dropped.
      selfObsMeterProvider: new SpanOutcomes(losses)
    }),
    metricReader: new PeriodicExportingMetricReader({
      exporter: new CountedMetricExporter(
        new OTLPMetricExporter({ url: signalUrl(settings.otlpEndpoint, "v1/metrics"), timeoutMillis: settings.exportTimeout }),
        losses
      ),
      exportIntervalMillis: settings.metricExportInterval,
      exportTimeoutMillis: Math.min(settings.exportTimeout, settings.metricExportInterval)
    }),
    // The last flush at exit waits at most this long for a collector that does not answer.
    shutdownTimeout: Math.min(settings.exportTimeout, 3000)
  }))
