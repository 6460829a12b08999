/**
 * Gemini `generateContent` client service.
 *
 * `POST {GEMINI_BASE_URL}/v1beta/models/{model}:generateContent` (and `:streamGenerateContent?alt=sse`
 * for `generateContentStream`) with the key in the `x-goog-api-key` header (never in the URL),
 * wrapped in the standard pipeline
 * (`Resilience.makeProtect` with operation `gemini_api`, policy `gemini`, breaker `gemini`):
 * retryable failures (network, 429, 5xx, per-attempt timeouts) are retried with backoff, a bad
 * request or a bad key fails at once, and five consecutive retryable failures open the breaker.
 *
 * Environment (read through `Config`, so tests can use `ConfigProvider.fromMap`):
 * - `GEMINI_API_KEY`: the key. Missing or blank: the layer still builds (so apps that never call
 *   Gemini do not need one) and every call fails with `Unauthorized` ("GEMINI_API_KEY is not
 *   set") without sending a request.
 * - `GEMINI_BASE_URL`: default `https://generativelanguage.googleapis.com`.
 * - `GEMINI_MODEL`: default `gemini-2.5-computer-use-preview-10-2025`; a request's `model` wins.
 *
 * Requests ask for `Accept-Encoding: identity`. An answer compressed all the same with gzip,
 * deflate or br (by a proxy) is decoded here, since the undici client hands bodies over as sent;
 * any other `Content-Encoding` fails with `DecodeError`. Asking for identity also keeps a `fetch`
 * based `HttpClient` (which decodes by itself but keeps the header) from being sent a compressed
 * answer that would then be decoded twice.
 *
 * @since 0.1.0
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { CircuitBreaker } from "./CircuitBreaker.js"
import * as Errors from "./Errors.js"
import { protectFirstChunk } from "./gemini/stream.js"
import { BodyTooLarge, boundedText } from "./internal/boundedText.js"
import { decodeBody } from "./internal/contentEncoding.js"
import { preview } from "./internal/preview.js"
import { redactUrl } from "./internal/redactUrl.js"
import * as Sse from "./internal/sse.js"
import { httpUrl, urlSetting } from "./internal/urlSetting.js"
import { ReliabilityConfig } from "./ReliabilityConfig.js"
import * as Resilience from "./Resilience.js"
import { GenerateContentRequest, GenerateContentResponse, SafetyRating } from "./gemini/schema.js"
import { secretScrubber } from "./internal/scrubSecret.js"

export * from "./gemini/schema.js"
export * from "./gemini/helpers.js"

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/**
 * Gemini refused the prompt itself: a 200 answer without candidates whose
 * `promptFeedback.blockReason` says why (`SAFETY`, `BLOCKLIST`, `PROHIBITED_CONTENT`, …).
 *
 * A failure rather than a response to inspect, because the call produced nothing a caller can
 * use, and a caller that forgets to check must not mistake it for an empty answer. It is not
 * retryable (the same prompt is refused again), so the pipeline neither retries it nor counts it
 * against the breaker: the service answered. Handle it with `Effect.catchTag("PromptBlocked", …)`.
 */
export class PromptBlocked extends Schema.TaggedError<PromptBlocked>()("PromptBlocked", {
  service: Schema.Literal("gemini").pipe(Schema.propertySignature, Schema.withConstructorDefault((): "gemini" => "gemini")),
  message: Schema.String,
  blockReason: Schema.String,
  blockReasonMessage: Schema.optional(Schema.String),
  safetyRatings: Schema.optional(Schema.Array(SafetyRating)),
  responseId: Schema.optional(Schema.String),
  retryable: Errors.nonRetryableField
}) {}

/** Every way `generateContent` can fail. Only the `retryable: true` ones are retried. */
export type GeminiError =
  | Errors.NetworkError
  | Errors.OperationTimeout
  | Errors.RateLimited
  | Errors.QuotaExhausted
  | Errors.ServiceUnavailable
  | Errors.InvalidRequest
  | Errors.Unauthorized
  | Errors.DecodeError
  | Errors.CircuitOpen
  | PromptBlocked

// ---------------------------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------------------------

export interface Service {
  /**
   * Calls `models.generateContent`. Retries network errors, 429 (waiting at least the server's
   * `RetryInfo` / `Retry-After` hint), 408/5xx and per-attempt timeouts (`gemini_api`, 45 s) per
   * the `gemini` policy (3 attempts, waits 2 s then 4 s); fails at once with `InvalidRequest`
   * (400/404/413/422 or a request that does not match the schema), `Unauthorized` (401/403, an
   * invalid or missing key), `DecodeError` (a body that is not the response schema, or a 2xx
   * whose content-type is not JSON: a proxy or captive portal answered),
   * `PromptBlocked`, or `CircuitOpen` while the `gemini` breaker is open.
   */
  readonly generateContent: (request: GenerateContentRequest) => Effect.Effect<GenerateContentResponse, GeminiError>
  /**
   * Calls `models.streamGenerateContent` (server-sent events): a stream of partial responses
   * whose text parts add up to the answer. Sending, the status and the first chunk are one
   * attempt of the same pipeline as `generateContent` (bounded by `gemini_api`, retried per the
   * `gemini` policy, guarded by the breaker); once a chunk has arrived nothing is retried: a
   * failure ends the stream with its error, and a gap between chunks longer than
   * `http_request_long` (30 s) ends it with `OperationTimeout`. An error event inside the stream
   * fails it with the error its status maps to. A stream that ends (even cleanly) before a chunk
   * carried a `finishReason` was cut: it fails with `NetworkError`, so a partial answer is never
   * taken for the whole one.
   */
  readonly generateContentStream: (request: GenerateContentRequest) => Stream.Stream<GenerateContentResponse, GeminiError>
  /** The model used when a request names none. */
  readonly model: string
}

/** The Gemini client service tag. */
export class Gemini extends Context.Tag("big3/Gemini")<Gemini, Service>() {}

/** Options of `makeWith` / `layerWith`; anything omitted takes its default. */
export interface Options {
  /** The API key; `undefined` (or blank) makes every call fail with `Unauthorized`. */
  readonly apiKey?: Redacted.Redacted<string> | undefined
  /** Default `https://generativelanguage.googleapis.com`. */
  readonly baseUrl?: string | undefined
  /** Default `gemini-2.5-computer-use-preview-10-2025`. */
  readonly model?: string | undefined
  /**
   * The longest answer body read, in bytes (default 64 MiB, `defaultMaxResponseBytes`): a longer
   * one fails with `DecodeError`, not retried, and stops downloading. Streamed answers are bounded
   * per event instead (10 MiB).
   */
  readonly maxResponseBytes?: number | undefined
}

export const defaultBaseUrl = "https://generativelanguage.googleapis.com"
export const defaultModel = "gemini-2.5-computer-use-preview-10-2025"
/** The header that carries the key; added to `Headers.currentRedactedNames` around every call. */
export const apiKeyHeader = "x-goog-api-key"
/** The default bound of an answer body: far above any text answer, and above inline images. */
export const defaultMaxResponseBytes = 64 * 1024 * 1024
/** How much of an error answer's body is read for its message and hints; the rest is dropped. */
const maxErrorBodyBytes = 1024 * 1024

/** `GEMINI_API_KEY`, `GEMINI_BASE_URL`, `GEMINI_MODEL`, with their defaults. */
export const config: Config.Config<Options> = Config.all({
  apiKey: Config.option(Config.redacted("GEMINI_API_KEY")).pipe(Config.map(Option.getOrUndefined)),
  // Credentials in it are refused: Gemini is reached with GEMINI_API_KEY, and a URL is shown in errors.
  baseUrl: urlSetting("GEMINI_BASE_URL", defaultBaseUrl, httpUrl(defaultBaseUrl)),
  model: Config.string("GEMINI_MODEL").pipe(
    Config.withDefault(defaultModel),
    Config.mapOrFail((model) =>
      model.trim() !== "" ? Either.right(model) : Either.left(ConfigError.InvalidData(
        ["GEMINI_MODEL"],
        `GEMINI_MODEL is empty: expected a model name such as gemini-2.5-flash`
      ))
    )
  )
})

const service = "gemini"

const modelPath = (model: string, method: "generateContent" | "streamGenerateContent"): string =>
  `/v1beta/models/${encodeURIComponent(model.trim().replace(/^models\//, ""))}:${method}`

const causeText = (cause: unknown): string => {
  if (!(cause instanceof Error)) return cause === undefined ? "" : String(cause)
  const code = "code" in cause && typeof cause.code === "string" ? ` (${cause.code})` : ""
  const inner = cause.cause instanceof Error && cause.cause.message !== cause.message ? `: ${causeText(cause.cause)}` : ""
  return `${cause.message}${code}${inner}`
}

/** The first issues of a parse error, scrubbed before they are cut short (a cut key escapes a scrub). */
const describeParseError = (error: ParseResult.ParseError, scrub: (text: string) => string): string =>
  scrub(
    ParseResult.ArrayFormatter.formatErrorSync(error)
      .slice(0, 3)
      .map((issue) => `${issue.path.length === 0 ? "" : `${issue.path.join(".")}: `}${issue.message}`)
      .join("; ")
  ).slice(0, 500)

/**
 * Why `JSON.parse` refused a text, without the text: V8 quotes the start of it
 * (`Unexpected token 'm', "my-secret-k"... is not valid JSON`), which may be the start of a key
 * that no scrub can recognise once cut.
 */
const jsonReason = (cause: unknown): string => causeText(cause).replace(/,\s*".*$/s, "")

const missingKey = () =>
  new Errors.Unauthorized({
    service,
    message: "GEMINI_API_KEY is not set: set it to a Gemini API key; no request was sent"
  })

/**
 * Builds the client from explicit options: the HTTP pipeline and the protection pipeline are
 * built once here, so a call pays only for itself.
 */
export const makeWith = (
  options: Options = {}
): Effect.Effect<Service, never, ReliabilityConfig | CircuitBreaker | HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const baseUrl = (options.baseUrl ?? defaultBaseUrl).replace(/\/+$/, "")
    const defaultModelName = options.model ?? defaultModel
    const apiKey = options.apiKey !== undefined && Redacted.value(options.apiKey).trim() !== "" ? options.apiKey : undefined
    const secret = apiKey === undefined ? undefined : Redacted.value(apiKey)
    // Defence in depth: an upstream that echoes the key in an error body must not leak it.
    const scrub = secretScrubber(secret)

    const protect = yield* Resilience.makeProtect({ operation: "gemini_api", policy: "gemini", breaker: "gemini" })
    const config = yield* ReliabilityConfig
    // A stream that stops sending is cut after this gap between chunks.
    const idle = Resilience.timeoutAfter(config.timeoutOf("http_request_long"), "http_request_long", service)
    const httpClient = (yield* HttpClient.HttpClient).pipe(
      HttpClient.mapRequest((request) =>
        request.pipe(
          HttpClientRequest.prependUrl(baseUrl),
          HttpClientRequest.acceptJson,
          HttpClientRequest.setHeader("accept-encoding", "identity"),
          secret === undefined ? (r) => r : HttpClientRequest.setHeader(apiKeyHeader, secret)
        )
      )
    )

    const maxResponseBytes = options.maxResponseBytes ?? defaultMaxResponseBytes
    const networkError = (message: string) => new Errors.NetworkError({ service, message: scrub(message) })

    // The body is scrubbed before mapping, so no message built from it can carry the key.
    const errorFor = (status: number, headers: Errors.HeadersInput, body: string | undefined) =>
      Effect.map(Clock.currentTimeMillis, (now): GeminiError => {
        const error = Errors.fromHttp({ service, status, headers, body: body === undefined ? undefined : scrub(body), now })
        // fromHttp never answers NotFound for a status; narrow the type for our channel.
        return error._tag === "NotFound" ? new Errors.InvalidRequest({ service, status, message: error.message }) : error
      })

    const parseJson = (text: string) =>
      Effect.try({
        try: (): unknown => JSON.parse(text),
        catch: (cause) =>
          new Errors.DecodeError({
            service,
            message: `gemini answered with a body that is not JSON (${jsonReason(cause)}): ${scrub(text).slice(0, 120)}`
          })
      })

    const decodeJson = (json: unknown) =>
      Effect.mapError(
        Schema.decodeUnknown(GenerateContentResponse, { onExcessProperty: "preserve" })(json),
        (error) =>
          new Errors.DecodeError({
            service,
            message: `gemini answered with a body that is not a GenerateContentResponse: ${describeParseError(error, scrub)}`
          })
      ).pipe(
        Effect.flatMap((response) => {
          const blockReason = response.promptFeedback?.blockReason
          if ((response.candidates === undefined || response.candidates.length === 0) && blockReason !== undefined) {
            const feedback = response.promptFeedback
            return Effect.fail(
              new PromptBlocked({
                blockReason,
                message: `gemini blocked the prompt (${blockReason})${
                  feedback?.blockReasonMessage === undefined ? "" : `: ${feedback.blockReasonMessage}`
                }; change the prompt, retrying will not help`,
                ...(feedback?.blockReasonMessage === undefined ? {} : { blockReasonMessage: feedback.blockReasonMessage }),
                ...(feedback?.safetyRatings === undefined ? {} : { safetyRatings: feedback.safetyRatings }),
                ...(response.responseId === undefined ? {} : { responseId: response.responseId })
              })
            )
          }
          return Effect.succeed(response)
        })
      )

    const decodeResponse = (text: string) => Effect.flatMap(parseJson(text), decodeJson)

    const readFailed = (error: HttpClientError.ResponseError) =>
      networkError(`gemini connection failed while reading the response body: ${causeText(error.cause)}`)

    /** An answer that ended before it was whole; a stream's is retried only while no chunk has arrived. */
    const cutAnswer = (why: string) => networkError(`gemini: ${why}; the connection was cut before the answer was complete`)

    /** The answer's body decoded by its Content-Encoding, with its failures in the taxonomy. */
    const bodyOf = (response: HttpClientResponse.HttpClientResponse): Stream.Stream<Uint8Array, GeminiError> =>
      decodeBody(response.stream, response.headers["content-encoding"]).pipe(
        Stream.mapError((error) =>
          error._tag === "ResponseError"
            ? readFailed(error)
            : error._tag === "UnsupportedEncoding"
            ? new Errors.DecodeError({
              service,
              message: `gemini answered with content-encoding ${preview(scrub(error.encoding))}, which big3 cannot decode ` +
                "(it reads gzip, deflate and br); not retried"
            })
            : error.truncated
            ? cutAnswer(`the ${error.coding} body ended early (${error.reason})`)
            : new Errors.DecodeError({ service, message: `gemini answered with a body that is not valid ${error.coding} (${error.reason}); not retried` })
        )
      )

    /**
     * A 2xx whose content-type is not what Gemini sends is someone else's page (a captive portal,
     * a proxy's own answer): asking again gets the same page, and naming the type says more than
     * reading an HTML page as JSON or as events would.
     */
    const notGemini = (response: HttpClientResponse.HttpClientResponse, what: string, contentType: string, expected: string) =>
      new Errors.DecodeError({
        service,
        message: `gemini answered ${what}with HTTP ${response.status} and content-type ${preview(scrub(contentType))}, ` +
          `not ${expected}: something other than Gemini (a proxy or a captive portal at GEMINI_BASE_URL?) answered; not retried`
      })

    // Not retried: the same request gets the same answer, and each try would download it again.
    const tooLarge = (error: BodyTooLarge) =>
      new Errors.DecodeError({
        service,
        message: `gemini answered with a body over the limit of ${error.limit} bytes (${
          error.declared === undefined ? "cut off there" : `content-length ${error.declared}`
        }); not retried`
      })

    /** Sends a request: a 2xx answer (body unread), or its status and body mapped into the taxonomy. */
    const send = (
      request: HttpClientRequest.HttpClientRequest
    ): Effect.Effect<HttpClientResponse.HttpClientResponse, GeminiError> =>
      httpClient.execute(request).pipe(
        Effect.flatMap((response): Effect.Effect<HttpClientResponse.HttpClientResponse, GeminiError | HttpClientError.ResponseError> =>
          response.status >= 200 && response.status < 300
            ? Effect.succeed(response)
            : boundedText(bodyOf(response), maxErrorBodyBytes).pipe(
              Effect.option,
              Effect.flatMap((body) => errorFor(response.status, response.headers, Option.getOrUndefined(body))),
              Effect.flatMap(Effect.fail)
            )
        ),
        Effect.catchTags({
          RequestError: (error: HttpClientError.RequestError) =>
            Effect.fail(
              error.reason === "Transport"
                ? networkError(
                  redactUrl(`gemini could not be reached (${request.method} ${baseUrl}${request.url}): ${causeText(error.cause)}`)
                )
                : new Errors.InvalidRequest({
                  service,
                  message: scrub(
                    redactUrl(`gemini request could not be sent (${error.reason}): ${error.description ?? causeText(error.cause)}`)
                  )
                })
            ),
          ResponseError: (error: HttpClientError.ResponseError) => Effect.fail(readFailed(error))
        })
      )

    /** One attempt: send, read the whole body (a JSON one), decode it. */
    const attempt = (
      request: HttpClientRequest.HttpClientRequest
    ): Effect.Effect<GenerateContentResponse, GeminiError> =>
      Effect.flatMap(send(request), (response) => {
        const contentType = response.headers["content-type"]
        if (contentType !== undefined && !/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(contentType)) {
          return Effect.fail(notGemini(response, "", contentType, "application/json"))
        }
        return boundedText(bodyOf(response), maxResponseBytes, response.headers["content-length"]).pipe(
          Effect.mapError((error) => error._tag === "BodyTooLarge" ? tooLarge(error) : error),
          Effect.flatMap(decodeResponse)
        )
      })

    /**
     * One chunk of a stream: a `GenerateContentResponse`, or an error object (Google writes a
     * failure after the stream started as `{"error":{"code",…}}` in a `data:` event).
     */
    const decodeChunk = (text: string): Effect.Effect<GenerateContentResponse, GeminiError> =>
      Effect.flatMap(parseJson(text), (json) => {
        const error = Predicate.isRecord(json) ? json["error"] : undefined
        const code = Predicate.isRecord(error) ? error["code"] : undefined
        return typeof code === "number" ? Effect.flatMap(errorFor(code, {}, text), Effect.fail) : decodeJson(json)
      })

    /**
     * The chunks of a streamed answer: SSE events, each a JSON response. Without `alt=sse` Gemini
     * streams a JSON array instead: such an answer to our `alt=sse` request means something on the
     * way dropped the parameter, which asking again cannot mend.
     */
    const chunksOf = (response: HttpClientResponse.HttpClientResponse): Stream.Stream<GenerateContentResponse, GeminiError> => {
      const contentType = response.headers["content-type"]
      if (/^application\/json\s*(;|$)/i.test(contentType ?? "")) {
        return Stream.fail(
          new Errors.DecodeError({
            service,
            message: "gemini answered a stream request with application/json, not text/event-stream: something between " +
              "big3 and Gemini dropped the alt=sse parameter"
          })
        )
      }
      // Read as events, someone else's page would pass for a cut stream.
      if (contentType !== undefined && !/^text\/event-stream\s*(;|$)/i.test(contentType)) {
        return Stream.fail(notGemini(response, "a stream request ", contentType, "text/event-stream"))
      }
      return Stream.suspend(() => {
        // Gemini's last chunk of a whole answer carries a finishReason (a prompt blocked at input
        // fails with PromptBlocked on its one chunk instead): a body that ends cleanly before one
        // was cut on the way, and what it sent (half a function call, say) must not pass for the answer.
        let finished = false
        return Sse.events(Stream.decodeText(bodyOf(response))).pipe(
          Stream.mapError((error) =>
            error._tag === "SseError"
              ? new Errors.DecodeError({ service, message: `gemini sent an event stream that cannot be read: ${error.message}` })
              : error._tag === "SseTruncated"
              // A cut connection, not a malformed answer: retried when no chunk had arrived yet.
              ? cutAnswer(error.message)
              : error
          ),
          Stream.mapEffect((event) => decodeChunk(event.data)),
          Stream.tap((chunk) =>
            Effect.sync(() => {
              if (chunk.candidates?.some((candidate) => candidate.finishReason !== undefined) === true) finished = true
            })
          ),
          Stream.concat(Stream.suspend(() => finished ? Stream.empty : Stream.fail(cutAnswer("the event stream ended without a finishReason"))))
        )
      })
    }

    const encodeRequest = Schema.encode(GenerateContentRequest, { onExcessProperty: "preserve" })
    const redactKeyHeader = (names: ReadonlyArray<string | RegExp>) =>
      names.includes(apiKeyHeader) ? names : [...names, apiKeyHeader]

    /** The HTTP request for `method`, from a request that the schema accepts. */
    const httpRequestFor = (request: GenerateContentRequest, method: "generateContent" | "streamGenerateContent") =>
      Effect.gen(function*() {
        if (apiKey === undefined) return yield* Effect.fail(missingKey())
        const model = request.model ?? defaultModelName
        yield* Effect.annotateCurrentSpan("gemini.model", model)
        const { model: _model, ...body } = yield* Effect.mapError(encodeRequest(request), (error) =>
          new Errors.InvalidRequest({
            service,
            message: `the request is not a valid GenerateContentRequest: ${describeParseError(error, scrub)}`
          }))
        return yield* HttpClientRequest.post(modelPath(model, method)).pipe(
          HttpClientRequest.bodyJson(body),
          Effect.mapError((error) =>
            new Errors.InvalidRequest({ service, message: scrub(`the request body cannot be encoded as JSON: ${causeText(error.reason.error)}`) })
          )
        )
      })

    const generateContent = Effect.fn("Gemini.generateContent")(
      function*(request: GenerateContentRequest) {
        const httpRequest = yield* httpRequestFor(request, "generateContent")
        return yield* protect(attempt(httpRequest))
      },
      Effect.locallyWith(Headers.currentRedactedNames, redactKeyHeader)
    )

    const generateContentStream = (request: GenerateContentRequest): Stream.Stream<GenerateContentResponse, GeminiError> =>
      Stream.unwrap(
        Effect.map(
          httpRequestFor(request, "streamGenerateContent"),
          (httpRequest) =>
            protectFirstChunk<GenerateContentResponse, GeminiError, Errors.OperationTimeout | Errors.CircuitOpen, Errors.OperationTimeout>({
              open: Effect.map(send(HttpClientRequest.setUrlParam(httpRequest, "alt", "sse")), chunksOf).pipe(
                Effect.locallyWith(Headers.currentRedactedNames, redactKeyHeader)
              ),
              protect,
              idle
            })
        )
      ).pipe(Stream.withSpan("Gemini.generateContentStream"))

    return Gemini.of({ generateContent, generateContentStream, model: defaultModelName })
  })

/** Builds the client from the environment (`GEMINI_API_KEY`, `GEMINI_BASE_URL`, `GEMINI_MODEL`). */
export const make: Effect.Effect<
  Service,
  ConfigError.ConfigError,
  ReliabilityConfig | CircuitBreaker | HttpClient.HttpClient
> = Effect.flatMap(config, makeWith)

/** The client configured from the environment; needs `ReliabilityConfig`, `CircuitBreaker`, `HttpClient`. */
export const layer: Layer.Layer<
  Gemini,
  ConfigError.ConfigError,
  ReliabilityConfig | CircuitBreaker | HttpClient.HttpClient
> = Layer.effect(Gemini, make)

/** The client with explicit options (no environment). */
export const layerWith = (
  options: Options = {}
): Layer.Layer<Gemini, never, ReliabilityConfig | CircuitBreaker | HttpClient.HttpClient> =>
  Layer.effect(Gemini, makeWith(options))

/** The client with options read from any `Config`, e.g. one with other variable names. */
export const layerConfig = (
  options: Config.Config<Options>
): Layer.Layer<Gemini, ConfigError.ConfigError, ReliabilityConfig | CircuitBreaker | HttpClient.HttpClient> =>
  Layer.effect(Gemini, Effect.flatMap(options, makeWith))

/**
 * A stand-in client for other modules' tests and demos: answers every call with `answer` (a
 * fixed response, or a function of the request); a stream is that one answer. No HTTP, no
 * retries, no breaker.
 */
export const layerTest = (
  answer:
    | GenerateContentResponse
    | ((request: GenerateContentRequest) => Effect.Effect<GenerateContentResponse, GeminiError>)
): Layer.Layer<Gemini> =>
  Layer.succeed(
    Gemini,
    Gemini.of({
      model: defaultModel,
      generateContent: (request) => typeof answer === "function" ? answer(request) : Effect.succeed(answer),
      generateContentStream: (request) => Stream.fromEffect(typeof answer === "function" ? answer(request) : Effect.succeed(answer))
    })
  )

/** `generateContent` of the `Gemini` service in context. */
export const generateContent = (
  request: GenerateContentRequest
): Effect.Effect<GenerateContentResponse, GeminiError, Gemini> =>
  Effect.flatMap(Gemini, (gemini) => gemini.generateContent(request))

/** `generateContentStream` of the `Gemini` service in context. */
export const generateContentStream = (
  request: GenerateContentRequest
): Stream.Stream<GenerateContentResponse, GeminiError, Gemini> =>
  Stream.unwrap(Effect.map(Gemini, (gemini) => gemini.generateContentStream(request)))
