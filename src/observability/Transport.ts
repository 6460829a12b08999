/**
 * How the observability client puts bytes on the wire: one `POST` of a JSON body to the events
 * route or the batch route, interruptible (interruption aborts the request). The per-attempt
 * timeout, retries and the breaker are the protection pipeline's (`Resilience.makeProtect`), which
 * interrupts an attempt that takes too long; classifying the answer (2xx, 4xx, misrouted) is the
 * client's job.
 *
 * Two transports:
 *
 * - `undici` (default): a raw undici `Pool` driven through `Pool.dispatch` with a handler, inside
 *   `Effect.async`; interruption aborts through the controller undici hands the handler, so a
 *   request costs one `Effect.async` and no `AbortController`.
 * - `http-client`: the `HttpClient` from the context (tracing disabled); used by unit tests (a
 *   fake `HttpClient`) and available for apps that want their own client (proxies, custom TLS).
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
 * | `Effect.async` + `Pool.dispatch` | ≈ 26,000 (42 µs) |
 *
 * End to end (`bench/events.ts`: emit → queue → delivery → flush) the undici transport is several
 * times cheaper per event than the `HttpClient` one (undici-backed, tracing off); see
 * `bench/RESULTS.md` for the current figures.
 *
 * @since 0.1.0
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { IncomingHttpHeaders } from "node:http"
import type { Dispatcher } from "undici"
import Pool from "undici/lib/dispatcher/pool.js"
import { NetworkError } from "../Errors.js"
import { secretScrubber } from "../internal/scrubSecret.js"

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

export type TransportError = NetworkError

export interface Transport {
  /** One POST of `body` (JSON) to the route; interrupting it aborts the request. */
  readonly post: (route: Route, body: string) => Effect.Effect<Answer, TransportError>
  /** Human-readable target, for logs ("undici → http://127.0.0.1:4000/events"). */
  readonly description: string
}

export interface TransportOptions {
  readonly url: URL
  readonly batchUrl: URL
  readonly apiKey: Option.Option<Redacted.Redacted<string>>
  readonly connections: number
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

/** What `scrubber` gives: the key taken out of a text, and out of an answer's body and headers. */
export interface Scrubber {
  readonly text: (text: string) => string
  readonly answer: (answer: Answer) => Answer
}

/**
 * Removes the API key from what a server says back: a server (or a proxy) that echoes the
 * `X-API-Key` header in its body or headers must not put the key into an error message, the
 * dead-letter table, a log line or `big3 events dead-letters`. As the Gemini and Anthropic paths do.
 */
export const scrubber = (apiKey: Option.Option<Redacted.Redacted<string>>): Scrubber => {
  if (Option.isNone(apiKey)) return { text: (text: string) => text, answer: (answer: Answer) => answer }
  const text = secretScrubber(Redacted.value(apiKey.value))
  const leaks = (value: string): boolean => text(value) !== value
  const answer = (raw: Answer): Answer => {
    let headers = raw.headers
    for (const [name, value] of Object.entries(raw.headers)) {
      if (typeof value === "string" ? leaks(value) : value?.some(leaks) === true) {
        headers = { ...headers, [name]: typeof value === "string" ? text(value) : value?.map(text) }
      }
    }
    const body = raw.body === undefined ? undefined : text(raw.body)
    return body === raw.body && headers === raw.headers ? raw : { ...raw, body, headers }
  }
  return { text, answer }
}

// ---------------------------------------------------------------------------------------------
// undici
// ---------------------------------------------------------------------------------------------

/** One request's handler: collects the answer and resumes the fiber once. */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined = undefined
  private aborted = false
  private done = false
  private status = 0
  private headers: IncomingHttpHeaders = {}
  private chunks: Array<Buffer> | undefined = undefined
  private size = 0

  constructor(
    private readonly resume: (effect: Effect.Effect<Answer, TransportError>) => void,
    private readonly scrub: Scrubber,
    private readonly route: Route,
    private readonly target: string
  ) {}

  /** The fiber was interrupted: abort the request (now, or when undici starts it). */
  abort(): void {
    if (this.done || this.aborted) return
    this.aborted = true
    this.controller?.abort(new Error("interrupted"))
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.aborted) controller.abort(new Error("aborted before start"))
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
    const body = this.chunks === undefined
      ? undefined
      : (this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks)).toString("utf8", 0, MAX_BODY)
    this.finish(Exit.succeed(this.scrub.answer({
      status: this.status,
      contentType: mediaType(this.headers["content-type"]),
      headers: this.headers,
      body,
      truncated: this.size > MAX_BODY
    })))
  }

  onResponseError(_: Dispatcher.DispatchController | undefined, error: Error): void {
    if (this.aborted) return
    this.finish(Exit.fail(new NetworkError({ service, message: this.scrub.text(`POST ${this.target} failed: ${errorText(error)}`) })))
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
      const scrub = scrubber(options.apiKey)
      const headers: Record<string, string> = { "content-type": "application/json" }
      if (Option.isSome(options.apiKey)) headers[apiKeyHeader] = Redacted.value(options.apiKey.value)
      const singlePath = options.url.pathname + options.url.search
      const batchPath = options.batchUrl.pathname + options.batchUrl.search
      const singleTarget = options.url.href
      const batchTarget = options.batchUrl.href
      return {
        description: `undici pool (${options.connections} connections) → ${options.url.href}`,
        post: (route, body) =>
          Effect.async<Answer, TransportError>((resume) => {
            const single = route === "single"
            const exchange = new Exchange(resume, scrub, route, single ? singleTarget : batchTarget)
            pool.dispatch({ path: single ? singlePath : batchPath, method: "POST", headers, body }, exchange)
            return Effect.sync(() => exchange.abort())
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
    const scrub = scrubber(options.apiKey)
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
    const networkError = (url: URL, cause: unknown) =>
      new NetworkError({ service, message: scrub.text(`POST ${url.href} failed: ${errorText(cause)}`) })
    return {
      description: `HttpClient → ${options.url.href}`,
      post: (route, body) => {
        const single = route === "single"
        const url = single ? options.url : options.batchUrl
        const request = HttpClientRequest.bodyText(single ? singleRequest : batchRequest, body, "application/json")
        return Effect.flatMap(untraced.execute(request), (response) => {
          const contentType = mediaType(response.headers["content-type"])
          const ok = response.status >= 200 && response.status < 300
          const answer = (text: string | undefined): Answer =>
            scrub.answer({
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
      }
    }
  })
