/**
 * Telemetry read by real tools, over 127.0.0.1: Debian's `prometheus` scraping a big3 runtime's
 * `/metrics` and `promtool check metrics` on the exposition; an OTLP/HTTP receiver written here
 * decoding the spans and metrics the OpenTelemetry exporters send (JSON).
 */
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import * as ChildProcess from "node:child_process"
import * as fs from "node:fs"
import * as Http from "node:http"
import * as path from "node:path"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Errors from "../src/Errors.js"
import * as Gemini from "../src/Gemini.js"
import * as Metrics from "../src/Metrics.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Resilience from "../src/Resilience.js"
import * as Runtime from "../src/Runtime.js"
import * as Sandbox from "../src/Sandbox.js"
import * as Telemetry from "../src/Telemetry.js"
import { exitCodeOf, spawnBig3 } from "./support/bin.js"
import { captureLogs } from "./support/capture.js"
import { big3 } from "./support/cli.js"
import { at, each } from "./support/json.js"
import { freePort, listen } from "./support/loopback.js"
import { isRunning } from "./support/processes.js"
import { tempDir } from "./support/tempDir.js"

const withEnv = (env: Record<string, string>) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))

const telemetryWith = (env: Record<string, string>) => Telemetry.layer.pipe(Layer.provide(withEnv(env)))

const resilience = Layer.provideMerge(
  CircuitBreaker.layer,
  ReliabilityConfig.layerWith({ policies: { default: { ...ReliabilityConfig.defaultPolicies.default, initialDelay: Duration.millis(5), jitter: "none" } } })
)

const unavailable = new Errors.ServiceUnavailable({ service: "telemetry-it", message: "answered HTTP 503", status: 503 })

/** `successes` calls that succeed and one that fails on both of its attempts, through one pipeline. */
const someCalls = (service: string, successes: number) =>
  Effect.gen(function*() {
    const protect = yield* Resilience.makeProtect({ operation: "http_request", service, policy: "default" })
    for (let i = 0; i < successes; i++) yield* protect(Effect.succeed(i))
    const once = yield* Resilience.makeProtect({
      operation: "http_request",
      service,
      policy: { ...ReliabilityConfig.defaultPolicies.default, maxAttempts: 2, initialDelay: Duration.millis(5), jitter: "none" }
    })
    yield* Effect.exit(once(Effect.fail(unavailable)))
  })

const httpGet = (url: string, method = "GET") =>
  Effect.tryPromise(async () => {
    const response = await fetch(url, { method })
    return {
      status: response.status,
      contentType: response.headers.get("content-type"),
      allow: response.headers.get("allow"),
      body: await response.text()
    }
  })

const hasCommand = (name: string) => ChildProcess.spawnSync("sh", ["-c", `command -v ${name}`]).status === 0

/** A real `prometheus` on a free loopback port with a temp config and storage, killed by pid. */
const startPrometheus = (target: string) =>
  Effect.flatMap(tempDir("big3-prometheus-"), (dir) =>
    Effect.acquireRelease(
      Effect.gen(function*() {
        const config = path.join(dir, "prometheus.yml")
        fs.writeFileSync(
          config,
          [
            "global:",
            "  scrape_interval: 1s",
            "  scrape_timeout: 1s",
            "scrape_configs:",
            "  - job_name: big3",
            "    static_configs:",
            `      - targets: ["${target}"]`,
            ""
          ].join("\n")
        )
        const port = yield* freePort
        const child = ChildProcess.spawn("prometheus", [
          `--config.file=${config}`,
          `--storage.tsdb.path=${path.join(dir, "data")}`,
          `--web.listen-address=127.0.0.1:${port}`
        ], { stdio: ["ignore", "ignore", "pipe"] })
        let log = ""
        child.stderr.on("data", (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)))
        return { child, url: `http://127.0.0.1:${port}`, log: () => log }
      }),
      // Released before the temp dir (acquired first) is removed.
      ({ child }) =>
        Effect.promise(() =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve()
            child.once("exit", () => resolve())
            child.kill("SIGTERM")
          })
        )
    ))

/** Polls until `check` succeeds (an outside process is getting ready), for at most `seconds`. */
const eventually = <A, E>(check: Effect.Effect<A, E>, seconds: number) =>
  Effect.retry(check, Schedule.spaced("250 millis").pipe(Schedule.upTo(Duration.seconds(seconds))))

const prometheusTools = hasCommand("prometheus") && hasCommand("promtool")
if (!prometheusTools) {
  console.warn("Telemetry.integration: prometheus/promtool are not installed (apt-get install prometheus); the scrape test is skipped")
}

describe("Telemetry: the Prometheus endpoint", () => {
  it.live("serves GET /metrics in the text format with big3's metrics only, and nothing else", () =>
    Effect.gen(function*() {
      const service = "telemetry-endpoint"
      const { metricsUrl } = yield* Telemetry.Telemetry
      assert.match(metricsUrl ?? "", /^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
      yield* someCalls(service, 2)
      const scrape = yield* httpGet(metricsUrl ?? "")
      assert.strictEqual(scrape.status, 200)
      assert.strictEqual(scrape.contentType, "text/plain; version=0.0.4; charset=utf-8")
      const lines = scrape.body.split("\n")
      assert.includeMembers(lines, [
        "# HELP big3_calls_total Protected calls, by outcome",
        "# TYPE big3_calls_total counter",
        `big3_calls_total{service="${service}",outcome="success"} 2`,
        `big3_calls_total{service="${service}",outcome="failure"} 1`,
        `big3_attempts_total{service="${service}"} 4`,
        `big3_retries_total{service="${service}",reason="ServiceUnavailable"} 1`
      ])
      // Only big3's families; each with HELP and TYPE once.
      const families = lines.filter((line) => line.startsWith("# TYPE ")).map((line) => line.split(" ")[2] ?? "")
      assert.isTrue(families.length > 0 && families.every((name) => name.startsWith("big3_")))
      assert.strictEqual(new Set(families).size, families.length)
      assert.deepStrictEqual(
        lines.filter((line) => line.startsWith("# HELP ")).map((line) => line.split(" ")[2]),
        families
      )
      assert.strictEqual((yield* httpGet((metricsUrl ?? "").replace("/metrics", "/other"))).status, 404)
      const posted = yield* httpGet(metricsUrl ?? "", "POST")
      assert.deepStrictEqual([posted.status, posted.allow, posted.body], [405, "GET, HEAD", ""])
    }).pipe(Effect.provide(Layer.provideMerge(resilience, telemetryWith({ BIG3_METRICS_PORT: "0" }))), Effect.scoped))

  it.live("BIG3_METRICS_RUNTIME=on adds the Effect runtime's fiber metrics, named as Prometheus expects", () =>
    Effect.gen(function*() {
      const { metricsUrl } = yield* Telemetry.Telemetry
      yield* Effect.forkDaemon(Effect.void)
      const body = (yield* httpGet(metricsUrl ?? "")).body
      const lines = body.split("\n")
      assert.includeMembers(lines, ["# TYPE effect_fiber_started_total counter", "# TYPE effect_fiber_active gauge"])
      assert.isTrue(lines.some((line) => /^effect_fiber_started_total \d+$/.test(line)))
    }).pipe(Effect.provide(Layer.provideMerge(resilience, telemetryWith({ BIG3_METRICS_PORT: "0", BIG3_METRICS_RUNTIME: "on" }))), Effect.scoped))

  it.live("the endpoint closes with its scope, and a port in use fails the layer with a message naming it", () =>
    Effect.gen(function*() {
      const url = yield* Effect.scoped(
        Effect.map(Telemetry.Telemetry, (telemetry) => telemetry.metricsUrl ?? "").pipe(
          Effect.provide(telemetryWith({ BIG3_METRICS_PORT: "0" }))
        )
      )
      const after = yield* Effect.either(httpGet(url))
      assert.strictEqual(after._tag, "Left")
      const port = new URL(url).port
      const taken = Http.createServer()
      yield* listen(taken, Number(port))
      assert.isTrue(taken.listening)
      const failed = yield* Effect.flip(Effect.scoped(Layer.build(telemetryWith({ BIG3_METRICS_PORT: port }))))
      assert.strictEqual(failed._tag, "TelemetryError")
      assert.match(Errors.describe(failed), new RegExp(`^TelemetryError: cannot serve /metrics on 127\\.0\\.0\\.1:${port} \\(BIG3_METRICS_PORT\\): .*EADDRINUSE`))
      // Inside a scope that already serves it, the layer reuses that endpoint instead of binding twice.
      const nested = yield* Effect.scoped(Effect.gen(function*() {
        const outer = yield* Telemetry.Telemetry
        const inner = yield* Effect.scoped(Effect.flatMap(Layer.build(telemetryWith({ BIG3_METRICS_PORT: "0" })), (context) =>
          Effect.succeed(context.unsafeMap.size)))
        return { outer: outer.metricsUrl, inner }
      }).pipe(Effect.provide(telemetryWith({ BIG3_METRICS_PORT: "0" }))))
      assert.strictEqual(nested.inner, 1)
      assert.match(nested.outer ?? "", /\/metrics$/)
    }).pipe(Effect.scoped))

  it.live.skipIf(!prometheusTools)("prometheus scrapes it with no error, the series arrive, and promtool checks the exposition", () =>
    Effect.gen(function*() {
      const service = "telemetry-prometheus"
      const { metricsUrl } = yield* Telemetry.Telemetry
      yield* someCalls(service, 3)
      const exposition = (yield* httpGet(metricsUrl ?? "")).body
      const check = ChildProcess.spawnSync("promtool", ["check", "metrics"], { input: exposition, encoding: "utf8" })
      assert.deepStrictEqual({ status: check.status, stdout: check.stdout, stderr: check.stderr }, { status: 0, stdout: "", stderr: "" })

      const target = new URL(metricsUrl ?? "").host
      const prometheus = yield* startPrometheus(target)
      const api = (query: string) =>
        Effect.flatMap(httpGet(`${prometheus.url}/api/v1/${query}`), (answer) =>
          Effect.try((): unknown => JSON.parse(answer.body)))
      const targets = yield* eventually(
        Effect.flatMap(api("targets"), (answer) => {
          const active = at(answer, "data", "activeTargets", 0)
          return at(active, "health") === "up" ? Effect.succeed(active) : Effect.fail("not scraped yet")
        }),
        30
      ).pipe(Effect.tapError(() => Effect.sync(() => console.error(prometheus.log()))))
      assert.strictEqual(at(targets, "lastError"), "")
      assert.strictEqual(at(targets, "scrapeUrl"), metricsUrl)

      const query = encodeURIComponent(`big3_calls_total{service="${service}"}`)
      const series = yield* eventually(
        Effect.flatMap(api(`query?query=${query}`), (answer) => {
          const result = at(answer, "data", "result")
          return Array.isArray(result) && result.length === 2 ? Effect.succeed(result) : Effect.fail("no series yet")
        }),
        30
      )
      const byOutcome = Object.fromEntries(series.map((item: unknown) => [at(item, "metric", "outcome"), at(item, "value", 1)]))
      assert.deepStrictEqual(byOutcome, { success: "3", failure: "1" })
      assert.deepStrictEqual(each(series, "metric", "job"), ["big3", "big3"])
      const up = yield* api(`query?query=${encodeURIComponent('up{job="big3"}')}`)
      assert.strictEqual(at(up, "data", "result", 0, "value", 1), "1")
      return prometheus.child.pid ?? -1
    }).pipe(
      Effect.scoped,
      Effect.map((pid) => assert.isFalse(isRunning(pid), `prometheus ${pid} outlived its test`)),
      Effect.provide(Layer.provideMerge(resilience, telemetryWith({ BIG3_METRICS_PORT: "0" }))),
      Effect.scoped
    ), 60_000)
})

/**
 * An OTLP/HTTP receiver: records the JSON bodies POSTed to /v1/traces and /v1/metrics (under
 * `base`, a path prefix), and every request's path and query.
 */
const receiver = (options: { readonly hang?: boolean; readonly base?: string; readonly status?: number } = {}) =>
  Effect.suspend(() => {
    const traces: Array<unknown> = []
    const metrics: Array<unknown> = []
    const contentTypes = new Set<string>()
    const requested = new Set<string>()
    const base = options.base ?? ""
    const server = Http.createServer((request, response) => {
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        contentTypes.add(request.headers["content-type"] ?? "")
        requested.add(request.url ?? "")
        const body: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"))
        const path = (request.url ?? "").split("?")[0]
        if (path === `${base}/v1/traces`) traces.push(body)
        if (path === `${base}/v1/metrics`) metrics.push(body)
        if (options.hang === true) return
        response.writeHead(options.status ?? 200, { "content-type": "application/json" }).end("{}")
      })
    })
    return Effect.map(listen(server), ({ url }) => ({ url, traces, metrics, contentTypes, requested }))
  })

interface OtlpSpan {
  readonly name: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly attributes: Record<string, unknown>
}

/** The array at `path` in `value` ([] when there is none). */
const list = (value: unknown, ...path: ReadonlyArray<string | number>): ReadonlyArray<unknown> => {
  const found = at(value, ...path)
  return Array.isArray(found) ? found : []
}

/** OTLP/JSON attributes (`[{ key, value: { stringValue | intValue | … } }]`) as a record. */
const attributesOf = (value: unknown): Record<string, unknown> =>
  Object.fromEntries(list(value).map((pair) => {
    const typed = at(pair, "value")
    const int = at(typed, "intValue")
    return [String(at(pair, "key")), int !== undefined ? Number(int) : at(typed, "stringValue") ?? at(typed, "doubleValue") ?? at(typed, "boolValue")]
  }))

/** The spans of OTLP/JSON trace requests. */
const spansOf = (requests: ReadonlyArray<unknown>): ReadonlyArray<OtlpSpan> =>
  requests.flatMap((request) =>
    list(request, "resourceSpans").flatMap((resource) =>
      list(resource, "scopeSpans").flatMap((scope) =>
        list(scope, "spans").map((span): OtlpSpan => {
          const parent = at(span, "parentSpanId")
          return {
            name: String(at(span, "name")),
            spanId: String(at(span, "spanId")),
            parentSpanId: typeof parent === "string" && parent !== "" ? parent : undefined,
            attributes: attributesOf(at(span, "attributes"))
          }
        })
      )
    )
  )

describe("Telemetry: OpenTelemetry export", () => {
  it.live("exports a span per protected call with one per attempt, and big3's metrics, to the OTLP endpoint", () =>
    Effect.gen(function*() {
      const otlp = yield* receiver()
      const service = "telemetry-otlp"
      yield* Effect.scoped(
        someCalls(service, 1).pipe(
          Effect.provide(Layer.provideMerge(
            resilience,
            telemetryWith({
              OTEL_EXPORTER_OTLP_ENDPOINT: `${otlp.url}/`,
              OTEL_SERVICE_NAME: "big3-it",
              OTEL_BSP_SCHEDULE_DELAY: "20",
              OTEL_METRIC_EXPORT_INTERVAL: "100000"
            })
          ))
        )
      )
      // Closing the layer flushed both.
      assert.deepStrictEqual([...otlp.contentTypes], ["application/json"])
      const serviceNames = new Set(otlp.traces.flatMap((request) =>
        list(request, "resourceSpans").map((resource) => attributesOf(at(resource, "resource", "attributes"))["service.name"])
      ))
      assert.deepStrictEqual([...serviceNames], ["big3-it"])
      const spans = spansOf(otlp.traces).filter((span) => span.name.endsWith(" http_request"))
      const calls = spans.filter((span) => span.name === "protect http_request")
      assert.deepStrictEqual(calls.map((span) => span.attributes), [
        { "big3.operation": "http_request", "big3.service": service, "big3.attempts": 1, "big3.outcome": "success" },
        { "big3.operation": "http_request", "big3.service": service, "big3.attempts": 2, "big3.outcome": "failure", "big3.error.tag": "ServiceUnavailable" }
      ])
      const failedCall = calls[1]
      const attempts = spans.filter((span) => span.name === "attempt http_request" && span.parentSpanId === failedCall?.spanId)
      assert.deepStrictEqual(attempts.map((span): Record<string, unknown> => {
        const { "big3.retry.delay_ms": delay, ...rest } = span.attributes
        return { ...rest, waited: delay === undefined ? "-" : Number(delay) >= 5 }
      }), [
        { "big3.operation": "http_request", "big3.attempt": 1, "big3.outcome": "failure", "big3.error.tag": "ServiceUnavailable", waited: "-" },
        { "big3.operation": "http_request", "big3.attempt": 2, "big3.outcome": "failure", "big3.error.tag": "ServiceUnavailable", waited: true }
      ])

      const metricNames = new Set(otlp.metrics.flatMap((request) =>
        list(request, "resourceMetrics").flatMap((resource) =>
          list(resource, "scopeMetrics").flatMap((scope) => each(at(scope, "metrics"), "name")))
      ))
      assert.includeMembers([...metricNames], ["big3_calls_total", "big3_attempts_total", "big3_call_duration_seconds"])
      // The last export holds the totals: one call succeeded, one failed after 2 attempts.
      const last = otlp.metrics[otlp.metrics.length - 1]
      const points = list(last, "resourceMetrics").flatMap((resource) =>
        list(resource, "scopeMetrics").flatMap((scope) =>
          list(scope, "metrics").flatMap((metric) =>
            list(metric, "sum", "dataPoints").map((point) => ({ name: at(metric, "name"), attributes: attributesOf(at(point, "attributes")), value: at(point, "asDouble") ?? at(point, "asInt") }))
          )))
        .filter((point) => point.attributes["service"] === service)
      assert.deepStrictEqual(
        points.filter((point) => point.name === "big3_calls_total" || point.name === "big3_attempts_total")
          .map((point) => [point.name, point.attributes["outcome"] ?? "-", Number(point.value)])
          .sort((a, b) => String(a).localeCompare(String(b))),
        [["big3_attempts_total", "-", 3], ["big3_calls_total", "failure", 1], ["big3_calls_total", "success", 1]]
      )
    }).pipe(Effect.scoped))

  it.live("big3's counters go out as monotonic cumulative sums (OTLP counters), not up-down counters", () =>
    Effect.gen(function*() {
      const otlp = yield* receiver()
      const service = "telemetry-monotonic"
      yield* Effect.scoped(
        someCalls(service, 1).pipe(
          Effect.provide(Layer.provideMerge(
            resilience,
            telemetryWith({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_METRIC_EXPORT_INTERVAL: "100000" })
          ))
        )
      )
      const last = otlp.metrics[otlp.metrics.length - 1]
      const kinds = Object.fromEntries(list(last, "resourceMetrics").flatMap((resource) =>
        list(resource, "scopeMetrics").flatMap((scope) =>
          list(scope, "metrics").map((metric) => {
            const sum = at(metric, "sum")
            const kind = sum === undefined
              ? (at(metric, "gauge") !== undefined ? "gauge" : at(metric, "histogram") !== undefined ? "histogram" : "other")
              : `sum monotonic=${String(at(sum, "isMonotonic"))} temporality=${String(at(sum, "aggregationTemporality"))}`
            return [String(at(metric, "name")), kind]
          }))
      ))
      const counter = "sum monotonic=true temporality=2"
      assert.deepStrictEqual(
        [kinds["big3_calls_total"], kinds["big3_attempts_total"], kinds["big3_retries_total"], kinds["big3_call_duration_seconds"]],
        [counter, counter, counter, "histogram"]
      )
    }).pipe(Effect.scoped))

  it.live("a collector that refuses the exports: what was not delivered is logged as a warning, not only counted", () => {
    const { layer, lines } = captureLogs()
    return Effect.gen(function*() {
      const otlp = yield* receiver({ status: 400 })
      yield* Effect.scoped(
        someCalls("telemetry-refused", 1).pipe(
          Effect.provide(Layer.provideMerge(
            resilience,
            telemetryWith({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: "60000", OTEL_METRIC_EXPORT_INTERVAL: "100000" })
          ))
        )
      )
      // Two calls: one span each, and one per attempt (one, then two).
      assert.deepStrictEqual(lines.filter((line) => line.includes("OpenTelemetry export")), [
        "WARN OpenTelemetry export: 5 spans not exported, 1 metric exports failed (last error: Bad Request)"
      ])
      assert.strictEqual(spansOf(otlp.traces).length, 5)
    }).pipe(Effect.provide(layer), Effect.scoped)
  })

  it.live("a collector that never answers: what was still unanswered when the layer closed is logged", () => {
    const { layer, lines } = captureLogs()
    return Effect.gen(function*() {
      const otlp = yield* receiver({ hang: true })
      yield* Effect.scoped(
        someCalls("telemetry-unanswered", 1).pipe(
          Effect.provide(Layer.provideMerge(
            resilience,
            telemetryWith({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_EXPORTER_OTLP_TIMEOUT: "600000", OTEL_METRIC_EXPORT_INTERVAL: "100000" })
          ))
        )
      )
      assert.deepStrictEqual(lines.filter((line) => line.includes("OpenTelemetry export")), [
        "WARN OpenTelemetry export: 5 spans unanswered when the exporter closed, 1 metric exports unanswered when the exporter closed"
      ])
    }).pipe(Effect.provide(layer), Effect.scoped)
  }, 30_000)

  it.live("a collector that never answers does not slow or fail the caller: the queue is bounded and what it drops is counted", () =>
    Effect.gen(function*() {
      const otlp = yield* receiver({ hang: true })
      const outcome = (name: string) =>
        Effect.map(Metric.value(Metrics.telemetrySpans.pipe(Metric.tagged("service", "telemetry"), Metric.tagged("outcome", name))), (state) => state.count)
      const before = { dropped: yield* outcome("dropped"), failed: yield* outcome("failed"), exported: yield* outcome("exported") }
      const results = yield* Effect.scoped(
        Effect.gen(function*() {
          const protect = yield* Resilience.makeProtect({ operation: "http_request", service: "telemetry-drops" })
          return yield* Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], (i) => protect(Effect.succeed(i)))
        }).pipe(Effect.provide(Layer.provideMerge(
          resilience,
          telemetryWith({
            OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
            OTEL_BSP_MAX_QUEUE_SIZE: "4",
            OTEL_BSP_SCHEDULE_DELAY: "60000",
            OTEL_EXPORTER_OTLP_TIMEOUT: "300",
            OTEL_METRIC_EXPORT_INTERVAL: "100000"
          })
        )))
      )
      assert.deepStrictEqual(results, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
      // 20 spans (a call and its attempt, ten times); what the queue of 4 could not hold was
      // dropped at once, the rest fail against the silent collector as their exports time out.
      // None is unaccounted for.
      const counted = yield* eventually(
        Effect.gen(function*() {
          const dropped = (yield* outcome("dropped")) - before.dropped
          const failed = (yield* outcome("failed")) - before.failed
          return dropped + failed === 20 ? { dropped, failed } : yield* Effect.fail("not yet")
        }),
        10
      )
      assert.isAtLeast(counted.dropped, 12)
      assert.strictEqual((yield* outcome("exported")) - before.exported, 0)
    }).pipe(Effect.scoped))
})

describe("Telemetry: the OTLP endpoint setting", () => {
  it.live("an endpoint with a path and a query: the signal path goes after the path, the query stays a query", () =>
    Effect.gen(function*() {
      const otlp = yield* receiver({ base: "/otlp" })
      yield* Effect.scoped(
        someCalls("telemetry-endpoint-path", 1).pipe(
          Effect.provide(Layer.provideMerge(
            resilience,
            telemetryWith({ OTEL_EXPORTER_OTLP_ENDPOINT: `${otlp.url}/otlp/?tenant=a%2Fb`, OTEL_METRIC_EXPORT_INTERVAL: "100000" })
          ))
        )
      )
      assert.deepStrictEqual([...otlp.requested].sort(), ["/otlp/v1/metrics?tenant=a%2Fb", "/otlp/v1/traces?tenant=a%2Fb"])
      assert.isAbove(spansOf(otlp.traces).length, 0)
      assert.isAbove(otlp.metrics.length, 0)
    }).pipe(Effect.scoped))

  it.effect("a malformed endpoint fails the layer with a ConfigError naming the key, and never repeats the value", () =>
    Effect.gen(function*() {
      const cases = ["localhost:4318", "http://user:s3cret@[::1", "ftp://user:s3cret@127.0.0.1/", "http://127.0.0.1:4318/#s3cret"]
      const messages = yield* Effect.forEach(cases, (endpoint) =>
        Effect.map(Effect.flip(Effect.scoped(Layer.build(telemetryWith({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint })))), (error) =>
          error._tag === "TelemetryError" ? error.message : String(error)))
      const expected = "expected an http:// or https:// URL such as http://127.0.0.1:4318"
      assert.deepStrictEqual(messages, [
        `(Invalid data at OTEL_EXPORTER_OTLP_ENDPOINT: "OTEL_EXPORTER_OTLP_ENDPOINT has the scheme localhost: ${expected}")`,
        `(Invalid data at OTEL_EXPORTER_OTLP_ENDPOINT: "OTEL_EXPORTER_OTLP_ENDPOINT is not a URL: ${expected}")`,
        `(Invalid data at OTEL_EXPORTER_OTLP_ENDPOINT: "OTEL_EXPORTER_OTLP_ENDPOINT has the scheme ftp: ${expected}")`,
        `(Invalid data at OTEL_EXPORTER_OTLP_ENDPOINT: "OTEL_EXPORTER_OTLP_ENDPOINT has a #fragment: ${expected}")`
      ])
    }))
})

describe("Telemetry: the OTLP numbers", () => {
  it.effect("a time past what a Node timer holds, or a queue past a million spans, fails the layer with a ConfigError", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["OTEL_EXPORTER_OTLP_TIMEOUT", "99999999999"],
        ["OTEL_BSP_SCHEDULE_DELAY", "2147483648"],
        ["OTEL_METRIC_EXPORT_INTERVAL", "2147483648"],
        ["OTEL_BSP_MAX_QUEUE_SIZE", "1000001"],
        ["OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"]
      ]
      const messages = yield* Effect.forEach(cases, ([key, value]) =>
        Effect.map(
          Effect.flip(Effect.scoped(Layer.build(telemetryWith({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9", [key]: value })))),
          (error) => error._tag === "TelemetryError" ? error.message : String(error)
        ))
      assert.deepStrictEqual(messages, [
        `(Invalid data at OTEL_EXPORTER_OTLP_TIMEOUT: "OTEL_EXPORTER_OTLP_TIMEOUT must be a whole number of milliseconds from 1 to 2147483647")`,
        `(Invalid data at OTEL_BSP_SCHEDULE_DELAY: "OTEL_BSP_SCHEDULE_DELAY must be a whole number of milliseconds from 1 to 2147483647")`,
        `(Invalid data at OTEL_METRIC_EXPORT_INTERVAL: "OTEL_METRIC_EXPORT_INTERVAL must be a whole number of milliseconds from 1 to 2147483647")`,
        `(Invalid data at OTEL_BSP_MAX_QUEUE_SIZE: "OTEL_BSP_MAX_QUEUE_SIZE must be a whole number of spans from 1 to 1000000")`,
        `(Invalid data at OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE must be a whole number of spans from 1 to 1000000")`
      ])
    }))
})

describe("Telemetry in the runtime and the CLI", () => {
  it.live("Runtime's composition installs the exporter for its clients: Gemini.generateContent → protect → attempt → the HTTP request", () =>
    Effect.gen(function*() {
      const otlp = yield* receiver()
      const sandbox = yield* Sandbox.make({ geminiApiKey: "sandbox-key" })
      const env = new Map([
        ["OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url],
        ["OTEL_BSP_SCHEDULE_DELAY", "20"],
        ["GEMINI_BASE_URL", sandbox.url],
        ["GEMINI_API_KEY", "sandbox-key"]
      ])
      const services = Runtime.geminiWith({ configProvider: ConfigProvider.fromMap(env, { pathDelim: "_" }) })
      yield* Effect.scoped(Effect.provide(Gemini.generateContent({ contents: [Gemini.userTurn("hello")] }), services))
      const spans = spansOf(otlp.traces)
      const named = (name: string) => spans.filter((span) => span.name === name)
      const [client] = named("Gemini.generateContent")
      const [call] = named("protect gemini_api")
      const [attempt] = named("attempt gemini_api")
      assert.deepStrictEqual(
        [client?.parentSpanId === undefined, call?.parentSpanId === client?.spanId, attempt?.parentSpanId === call?.spanId],
        [true, true, true]
      )
      const requests = spans.filter((span) => span.parentSpanId === attempt?.spanId)
      assert.deepStrictEqual(requests.map((span) => span.name), ["http.client POST"])
      assert.deepStrictEqual(attempt?.attributes, {
        "big3.operation": "gemini_api",
        "big3.attempt": 1,
        "big3.breaker.state": "closed",
        "big3.outcome": "success"
      })
      // The API key never reaches a span.
      assert.notInclude(JSON.stringify(otlp.traces), "sandbox-key")
    }).pipe(Effect.scoped))

  it.live("a big3 command exits once its work is done, though the collector never answers its last export", () =>
    Effect.gen(function*() {
      const otlp = yield* receiver({ hang: true })
      const sandbox = yield* Sandbox.make({ geminiApiKey: "sandbox-key" })
      const state = yield* tempDir("big3-otlp-exit-")
      // The export would wait 10 minutes for an answer; the layer's shutdown bound is 3 s.
      const running = yield* spawnBig3(["gemini", "hello"], {
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
        OTEL_EXPORTER_OTLP_TIMEOUT: "600000",
        GEMINI_BASE_URL: sandbox.url,
        GEMINI_API_KEY: "sandbox-key",
        BIG3_STATE_DIR: state
      })
      assert.strictEqual(yield* exitCodeOf(running, "60 seconds"), 0)
      assert.strictEqual(running.stdout(), "sandbox answer to: hello\n")
      // It did try: the spans reached the collector, which kept the request open.
      assert.include([...otlp.requested], "/v1/traces")
    }).pipe(Effect.scoped), 90_000)

  it.live("every big3 command runs inside the telemetry layer: a /metrics port in use fails the command with a message", () =>
    Effect.gen(function*() {
      const { port } = yield* listen(Http.createServer())
      const result = yield* big3(["config"], { BIG3_METRICS_PORT: String(port) })
      assert.strictEqual(result.code, 1)
      assert.match(result.stderr, new RegExp(`^big3: TelemetryError: cannot serve /metrics on 127\\.0\\.0\\.1:${port} \\(BIG3_METRICS_PORT\\): .*EADDRINUSE`))
      const ok = yield* big3(["config"], { BIG3_METRICS_PORT: "0" })
      assert.strictEqual(ok.code, 0)
    }).pipe(Effect.scoped))
})
