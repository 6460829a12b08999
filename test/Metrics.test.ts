import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Metrics from "../src/Metrics.js"

describe("Metrics", () => {
  it.effect("formats counters, gauges and histograms in Prometheus text format", () =>
    Effect.gen(function*() {
      const service = "metrics-test"
      yield* Metric.incrementBy(Metrics.retries.pipe(Metric.tagged("service", service), Metric.tagged("reason", "RateLimited")), 2)
      yield* Metric.set(Metrics.breakerState.pipe(Metric.tagged("service", service)), 2)
      yield* Metric.update(Metrics.callDuration.pipe(Metric.tagged("service", service)), 0.2)
      const text = yield* Metrics.prometheus
      assert.include(text, "# TYPE big3_retries_total counter")
      assert.include(text, `big3_retries_total{service="${service}",reason="RateLimited"} 2`)
      assert.include(text, `big3_breaker_state{service="${service}"} 2`)
      assert.include(text, "# TYPE big3_call_duration_seconds histogram")
      assert.include(text, `big3_call_duration_seconds_bucket{service="${service}",le="0.1"} 0`)
      assert.include(text, `big3_call_duration_seconds_bucket{service="${service}",le="0.25"} 1`)
      assert.include(text, `big3_call_duration_seconds_bucket{service="${service}",le="+Inf"} 1`)
      assert.include(text, `big3_call_duration_seconds_count{service="${service}"} 1`)
      assert.strictEqual(Metrics.prometheusText(), text)
    }))
})
