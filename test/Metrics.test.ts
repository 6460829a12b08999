import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Metrics from "../src/Metrics.js"

describe("Metrics", () => {
  it.effect("formats counters, gauges and histograms in the Prometheus text format, each series once", () =>
    Effect.gen(function*() {
      const service = "metrics-test"
      yield* Metric.incrementBy(Metrics.retries.pipe(Metric.tagged("service", service), Metric.tagged("reason", "RateLimited")), 2)
      yield* Metric.set(Metrics.breakerState.pipe(Metric.tagged("service", service)), 2)
      yield* Metric.update(Metrics.callDuration.pipe(Metric.tagged("service", service)), 0.2)
      const ours = (yield* Metric.snapshot).filter((pair) =>
        pair.metricKey.tags.some((tag) => tag.key === "service" && tag.value === service)
      )
      const bucket = (le: string, count: number) => `big3_call_duration_seconds_bucket{service="${service}",le="${le}"} ${count}`
      assert.strictEqual(
        Metrics.formatPrometheus(ours),
        [
          "# HELP big3_breaker_state Circuit breaker state: 0 closed, 1 half-open, 2 open",
          "# TYPE big3_breaker_state gauge",
          `big3_breaker_state{service="${service}"} 2`,
          "# HELP big3_call_duration_seconds Duration of protected calls, all attempts and waits included",
          "# TYPE big3_call_duration_seconds histogram",
          bucket("0.001", 0),
          bucket("0.005", 0),
          bucket("0.01", 0),
          bucket("0.025", 0),
          bucket("0.05", 0),
          bucket("0.1", 0),
          bucket("0.25", 1),
          bucket("0.5", 1),
          bucket("1", 1),
          bucket("2.5", 1),
          bucket("5", 1),
          bucket("10", 1),
          bucket("30", 1),
          bucket("60", 1),
          bucket("120", 1),
          bucket("300", 1),
          bucket("+Inf", 1),
          `big3_call_duration_seconds_sum{service="${service}"} 0.2`,
          `big3_call_duration_seconds_count{service="${service}"} 1`,
          "# HELP big3_retries_total Retries, by the error that caused them",
          "# TYPE big3_retries_total counter",
          `big3_retries_total{service="${service}",reason="RateLimited"} 2`,
          ""
        ].join("\n")
      )
      assert.strictEqual(Metrics.prometheusText(), yield* Metrics.prometheus)
    }))
})

describe("Metrics exposition of other libraries' metrics", () => {
  it.effect("a counter without _total gets it, one that goes down is a gauge, and every family has HELP", () =>
    Effect.gen(function*() {
      const started = Metric.counter("lib_started", { incremental: true })
      const active = Metric.counter("lib_active")
      yield* Metric.incrementBy(started.pipe(Metric.tagged("case", "exposition")), 3)
      yield* Metric.incrementBy(active.pipe(Metric.tagged("case", "exposition")), 2)
      const pairs = (yield* Metric.snapshot).filter((pair) => pair.metricKey.tags.some((tag) => tag.key === "case" && tag.value === "exposition"))
      assert.strictEqual(
        Metrics.formatPrometheus(pairs),
        [
          "# HELP lib_active lib active",
          "# TYPE lib_active gauge",
          `lib_active{case="exposition"} 2`,
          "# HELP lib_started_total lib started",
          "# TYPE lib_started_total counter",
          `lib_started_total{case="exposition"} 3`,
          ""
        ].join("\n")
      )
      assert.isFalse(pairs.some(Metrics.isOwn))
    }))
})
