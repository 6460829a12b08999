/**
 * How the observability client puts bytes on the wire: one `POST` of a JSON body to the events
 * route or the batch route, bounded by a per-attempt timeout, interruptible (interruption aborts
 * the request). Classifying the answer (2xx, 4xx, misrouted) is the caller's job.
 *
 * Two transports:
 *
 * - `undici` (default): a raw undici `Pool` driven through `Pool.dispatch` with a handler, inside
 *   `Effect.async`. The per-attempt timeout is a plain timer in the same handler (it aborts the
 *   request through the controller undici hands us) and interruption aborts through the same
 *   controller, so a request costs one `Effect.async`, one timer and no `AbortController`.
 * - `http-client`: the `HttpClient` from the context (tracing disabled), bounded with
 *   `Resilience.timeoutAfter`; used by unit tests (a fake `HttpClient`) and available for apps
 *   that want their own client (proxies, custom TLS).
 *
 * Why not the `HttpClient` for the hot path: measured on this machine (2 vCPU, Node 20, loopback,
 * a node:http sink in a child process, 64 in flight, 50,000 events per run after a warm-up;
 * client CPU per event in parentheses):
 *
 * | per-event path (micro-benchmark, no queue) | events/s |
 * |---|---|
 * | raw undici `Pool.request`, no Effect | ≈ 27,000 (23 µs) |
 * | Effect `tryPromise` + `Pool.request`, no signal | ≈ 35,000 (27 µs) |
 * | … with an `AbortSignal` (interruptible) | ≈ 24,000 (44 µs) |
 * | … + `Resilience.timeoutAfter` (a forked fiber per call) | ≈ 16,000 (71 µs) |
 * | … + the whole `Resilience.makeProtect` | ≈ 14,500 (80 µs) |
 * | `Effect.async` + `Pool.dispatch`, timer in the handler | ≈ 26,000 (42 µs) |
 * | … + `CircuitBreaker.guard` + `Resilience.withRetry` | ≈ 25,500 (44 µs) |
 *
 * End to end (`bench/events.ts`: emit → queue → delivery → flush, median of 3): this transport
 * ≈ 18,000 events/s at ≈ 60 µs of client CPU per event in single mode and ≈ 120,000 events/s in
 * batch mode; the `HttpClient` transport (undici-backed, tracing off) ≈ 4,200 events/s at
 * ≈ 280 µs per event. So the delivery pipeline is `withRetry` → `guard` → this transport (with
 * its own per-attempt timer): `makeProtect`'s chain with a cheaper per-attempt timeout.
 *
 * @since 0.1.0
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { IncomingHttpHeaders } from "node:http"
import { Pool } from "undici"
import type { Dispatcher } from "undici"
import { NetworkError, OperationTimeout, operationTimeout } from "../Errors.js"
import * as Metrics from "../Metrics.js"
import { timeoutAfter } from "../Resilience.js"

export const service = "observability"

/** Which route a request goes to. */
export type Route = "single" | "batch"

/** An HTTP answer, whatever its status. */
export interface Answer {
  readonly status: number
  /** Lower-case media type without parameters ("application/json"), or "" when absent. */
  readonly contentType: string
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  /**
   * The body text, at most 64 KiB; `undefined` when not read (a 2xx on the single route that is
   * not JSON: nothing in it matters).
   */
  readonly body: string | undefined
  /** The body was longer than what `body` holds. */
  readonly truncated: boolean
}

export type TransportError = NetworkError | OperationTimeout

export interface Transport {
  /** One POST of `body` (JSON) to the route, bounded by `timeout`. */
  readonly post: (route: Route, body: string) => Effect.Effect<Answer, TransportError>
  /** Human-readable target, for logs ("undici → http://127.0.0.1:4000/events"). */
  readonly description: string
}

export interface TransportOptions {
  readonly url: URL
  readonly batchUrl: URL
  readonly apiKey: Option.Option<Redacted.Redacted<string>>
  readonly connections: number
  readonly eventTimeout: Duration.Duration
  readonly batchTimeout: Duration.Duration
}

/** The header that carries the key; added to `Headers.currentRedactedNames`. */
export const apiKeyHeader = "x-api-key"

const MAX_BODY = 64 * 1024

const mediaType = (value: string | ReadonlyArray<string> | undefined): string => {
  const text = typeof value === "string" ? value : value?.[0]
  if (text === undefined) return ""
  const semicolon = text.indexOf(";")
  return (semicolon === -1 ? text : text.slice(0, semicolon)).trim().toLowerCase()
}

const errorText = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error)
  const code = "code" in error && typeof error.code === "string" ? ` (${error.code})` : ""
  const cause = error.cause instanceof Error && error.cause.message !== error.message ? `: ${errorText(error.cause)}` : ""
  return `${error.message}${code}${cause}`
}

const operationOf = (route: Route) => route === "single" ? "observability_event" : "observability_batch"

// ---------------------------------------------------------------------------------------------
// undici
// ---------------------------------------------------------------------------------------------

const TIMEOUT = 1
const INTERRUPT = 2

/** One request's handler: collects the answer, owns the timer, resumes the fiber once. */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined = undefined
  private aborted = 0
  private done = false
  private status = 0
  private headers: IncomingHttpHeaders = {}
  private chunks: Array<Buffer> | undefined = undefined
  private size = 0
  readonly timer: ReturnType<typeof setTimeout>

  constructor(
    private readonly resume: (effect: Effect.Effect<Answer, TransportError>) => void,
    private readonly route: Route,
    private readonly target: string,
    private readonly timeout: Duration.Duration,
    timeoutMillis: number
  ) {
    this.timer = setTimeout(() => this.abort(TIMEOUT), timeoutMillis)
  }

  abort(reason: number): void {
    if (this.done || this.aborted !== 0) return
    this.aborted = reason
    clearTimeout(this.timer)
    this.controller?.abort(new Error(reason === TIMEOUT ? "timed out" : "interrupted"))
    if (reason === TIMEOUT && this.controller === undefined) {
      // Still queued in the pool: undici starts it later and we abort it in onRequestStart.
      this.finish(Effect.fail(this.timeoutError()))
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.aborted !== 0) controller.abort(new Error("aborted before start"))
  }

  onResponseStart(_: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.status = statusCode
    this.headers = headers
    // A 2xx on the single route needs its body only when it claims to be JSON (the saved event,
    // checked for being whole); otherwise the status and content type say it all.
    const skip = statusCode >= 200 && statusCode < 300 && this.route === "single" &&
      !mediaType(headers["content-type"]).includes("json")
    this.chunks = skip ? undefined : []
  }

  onResponseData(_: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.chunks !== undefined) {
      if (this.size < MAX_BODY) this.chunks.push(chunk)
      this.size += chunk.length
    }
  }

  onResponseEnd(): void {
    clearTimeout(this.timer)
    const body = this.chunks === undefined
      ? undefined
      : (this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks)).toString("utf8", 0, MAX_BODY)
    this.finish(Effect.succeed({
      status: this.status,
      contentType: mediaType(this.headers["content-type"]),
      headers: this.headers,
      body,
      truncated: this.size > MAX_BODY
    }))
  }

  onResponseError(_: Dispatcher.DispatchController | undefined, error: Error): void {
    clearTimeout(this.timer)
    if (this.aborted === INTERRUPT) return
    this.finish(Effect.fail(
      this.aborted === TIMEOUT
        ? this.timeoutError()
        : new NetworkError({ service, message: `POST ${this.target} failed: ${errorText(error)}` })
    ))
  }

  private timeoutError(): OperationTimeout {
    const operation = operationOf(this.route)
    Metrics.timeouts.unsafeUpdate(1, Metrics.labelsFor(service, { operation }))
    return operationTimeout({ operation, timeout: this.timeout, service })
  }

  private finish(effect: Effect.Effect<Answer, TransportError>): void {
    if (this.done) return
    this.done = true
    this.resume(effect)
  }
}

/** The undici transport; the pool is destroyed when the scope closes. */
export const undici = (options: TransportOptions): Effect.Effect<Transport, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() =>
        new Pool(options.url.origin, {
          connections: options.connections,
          pipelining: 1,
          keepAliveTimeout: 30_000
        })
      ),
      (pool) => Effect.promise(() => pool.destroy().catch(() => undefined))
    ),
    (pool): Transport => {
      const headers: Record<string, string> = { "content-type": "application/json" }
      if (Option.isSome(options.apiKey)) headers[apiKeyHeader] = Redacted.value(options.apiKey.value)
      const singlePath = options.url.pathname + options.url.search
      const batchPath = options.batchUrl.pathname + options.batchUrl.search
      const eventMillis = Duration.toMillis(options.eventTimeout)
      const batchMillis = Duration.toMillis(options.batchTimeout)
      const singleTarget = options.url.href
      const batchTarget = options.batchUrl.href
      return {
        description: `undici pool (${options.connections} connections) → ${options.url.href}`,
        post: (route, body) =>
          Effect.async<Answer, TransportError>((resume) => {
            const single = route === "single"
            const exchange = new Exchange(
              resume,
              route,
              single ? singleTarget : batchTarget,
              single ? options.eventTimeout : options.batchTimeout,
              single ? eventMillis : batchMillis
            )
            pool.dispatch({ path: single ? singlePath : batchPath, method: "POST", headers, body }, exchange)
            return Effect.sync(() => exchange.abort(INTERRUPT))
          })
      }
    }
  )

// ---------------------------------------------------------------------------------------------
// HttpClient
// ---------------------------------------------------------------------------------------------

/** The transport over the context's `HttpClient` (tracing off, `X-API-Key` redacted in logs). */
export const httpClient = (options: TransportOptions): Effect.Effect<Transport, never, HttpClient.HttpClient> =>
  Effect.map(HttpClient.HttpClient, (client): Transport => {
    const untraced = client.pipe(HttpClient.withTracerDisabledWhen(() => true))
    const base = (url: URL) =>
      HttpClientRequest.post(url).pipe(
        HttpClientRequest.acceptJson,
        Option.isSome(options.apiKey)
          ? HttpClientRequest.setHeader(apiKeyHeader, Redacted.value(options.apiKey.value))
          : (request) => request
      )
    const singleRequest = base(options.url)
    const batchRequest = base(options.batchUrl)
    const singleTimeout = timeoutAfter(options.eventTimeout, "observability_event", service)
    const batchTimeout = timeoutAfter(options.batchTimeout, "observability_batch", service)
    const networkError = (url: URL, cause: unknown) =>
      new NetworkError({ service, message: `POST ${url.href} failed: ${errorText(cause)}` })
    return {
      description: `HttpClient → ${options.url.href}`,
      post: (route, body) => {
        const single = route === "single"
        const url = single ? options.url : options.batchUrl
        const request = HttpClientRequest.bodyText(single ? singleRequest : batchRequest, body, "application/json")
        const exchange = Effect.flatMap(untraced.execute(request), (response) => {
          const contentType = mediaType(response.headers["content-type"])
          const ok = response.status >= 200 && response.status < 300
          const answer = (text: string | undefined): Answer => ({
            status: response.status,
            contentType,
            headers: response.headers,
            body: text?.slice(0, MAX_BODY),
            truncated: text !== undefined && text.length > MAX_BODY
          })
          return single && ok && !contentType.includes("json")
            ? Effect.as(response.text.pipe(Effect.ignore), answer(undefined))
            : Effect.map(response.text, answer)
        }).pipe(
          Effect.catchTags({
            RequestError: (error) => Effect.fail(networkError(url, error.cause ?? error)),
            ResponseError: (error) => Effect.fail(networkError(url, error.cause ?? error))
          }),
          Effect.locallyWith(Headers.currentRedactedNames, (names) => [...names, apiKeyHeader])
        )
        return single ? singleTimeout(exchange) : batchTimeout(exchange)
      }
    }
  })
