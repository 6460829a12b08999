/**
 * The error taxonomy shared by every big3 client.
 *
 * Each failure is a `Schema.TaggedError` whose literal `retryable` field says, in the type and in
 * the value, whether trying again can help. Retry logic reads nothing else.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/**
 * The `retryable: true` field of a retryable error: a literal in the type, filled in by the
 * constructor. Errors defined outside this module (a client's own) use these two as well.
 */
export const retryableField = Schema.Literal(true).pipe(
  Schema.propertySignature,
  Schema.withConstructorDefault((): true => true)
)

/** The `retryable: false` field of an error that trying again cannot fix. */
export const nonRetryableField = Schema.Literal(false).pipe(
  Schema.propertySignature,
  Schema.withConstructorDefault((): false => false)
)

const common = {
  /** Which upstream or subsystem failed: "gemini", "observability", "anthropic", "agents", … */
  service: Schema.String,
  /** What happened, in words a person can act on. Never contains a secret. */
  message: Schema.String
}
const httpStatus = { status: Schema.optional(Schema.Number) }

/** Connection refused / reset / DNS failure, or the request body stream failed. */
export class NetworkError extends Schema.TaggedError<NetworkError>()("NetworkError", {
  ...common,
  retryable: retryableField
}) {}

/** `withTimeout(operation)` fired: the operation took longer than its configured timeout. */
export class OperationTimeout extends Schema.TaggedError<OperationTimeout>()("OperationTimeout", {
  ...common,
  operation: Schema.String,
  timeout: Schema.DurationFromSelf,
  retryable: retryableField
}) {}

/** HTTP 429. `retryAfter` is the server's hint, when it gave one. */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  ...common,
  ...httpStatus,
  retryAfter: Schema.optional(Schema.DurationFromSelf),
  retryable: retryableField
}) {}

/**
 * HTTP 429 for a quota that does not come back within minutes (a Gemini `QuotaFailure` naming a
 * per-day quota, or OpenAI's `insufficient_quota`: out of credit or past a spending limit). Not
 * retryable: retrying now only burns attempts. `retryAfter` is the server's hint of when the
 * quota resets, when it gave one; `quotaId` names the exhausted quota (Gemini's quota id, or
 * OpenAI's error code).
 */
export class QuotaExhausted extends Schema.TaggedError<QuotaExhausted>()("QuotaExhausted", {
  ...common,
  ...httpStatus,
  quotaId: Schema.optional(Schema.String),
  retryAfter: Schema.optional(Schema.DurationFromSelf),
  retryable: nonRetryableField
}) {}

/** HTTP 408, 500, 502, 503, 504, 529 (or a server that says `x-should-retry: true`). */
export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()("ServiceUnavailable", {
  ...common,
  ...httpStatus,
  retryAfter: Schema.optional(Schema.DurationFromSelf),
  retryable: retryableField
}) {}

/** HTTP 400, 404, 409 (non-Anthropic), 413, 422: the request itself is wrong. */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  ...common,
  ...httpStatus,
  retryable: nonRetryableField
}) {}

/** HTTP 401, 403, or an API key the upstream rejected. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  ...common,
  ...httpStatus,
  retryable: nonRetryableField
}) {}

/** A body that does not match its Schema. */
export class DecodeError extends Schema.TaggedError<DecodeError>()("DecodeError", {
  ...common,
  retryable: nonRetryableField
}) {}

/** The circuit breaker for `service` is open; calls resume after `retryAfter`. */
export class CircuitOpen extends Schema.TaggedError<CircuitOpen>()("CircuitOpen", {
  ...common,
  retryAfter: Schema.DurationFromSelf,
  retryable: nonRetryableField
}) {}

/** A named resource of ours (agent, operator file) does not exist. */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  ...common,
  retryable: nonRetryableField
}) {}

/** Every failure a big3 client can report. */
export type Big3Error =
  | NetworkError
  | OperationTimeout
  | RateLimited
  | QuotaExhausted
  | ServiceUnavailable
  | InvalidRequest
  | Unauthorized
  | DecodeError
  | CircuitOpen
  | NotFound

/** The failures worth another attempt. */
export type RetryableError = Extract<Big3Error, { readonly retryable: true }>

/** The schema of the whole taxonomy, for decoding errors that crossed a process boundary. */
export const Big3Error = Schema.Union(
  NetworkError,
  OperationTimeout,
  RateLimited,
  QuotaExhausted,
  ServiceUnavailable,
  InvalidRequest,
  Unauthorized,
  DecodeError,
  CircuitOpen,
  NotFound
)

/** True for any value carrying `retryable: true`; everything else (defects, plain errors) is false. */
export const isRetryable = (error: unknown): boolean =>
  Predicate.hasProperty(error, "retryable") && error.retryable === true

const big3Tags: ReadonlySet<string> = new Set([
  "NetworkError",
  "OperationTimeout",
  "RateLimited",
  "QuotaExhausted",
  "ServiceUnavailable",
  "InvalidRequest",
  "Unauthorized",
  "DecodeError",
  "CircuitOpen",
  "NotFound"
])

/** True when `u` is one of the taxonomy's errors. */
export const isBig3Error = (u: unknown): u is Big3Error =>
  Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" && big3Tags.has(u._tag) &&
  Predicate.hasProperty(u, "retryable") && typeof u.retryable === "boolean"

/** "Tag: message" for a tagged error, the message or the tag alone, else `String(error)`. */
export const describe = (error: unknown): string => {
  const tag = Predicate.hasProperty(error, "_tag") && typeof error._tag === "string" ? error._tag : undefined
  const message = Predicate.hasProperty(error, "message") && typeof error.message === "string" ? error.message : undefined
  if (tag !== undefined && message !== undefined) return `${tag}: ${message}`
  return message ?? tag ?? String(error)
}

/** The server's wait hint carried by an error, if any. */
export const retryAfterOf = (error: unknown): Duration.Duration | undefined =>
  Predicate.hasProperty(error, "retryAfter") && Duration.isDuration(error.retryAfter) ? error.retryAfter : undefined

/** When a wait of `hint` from `now` ends, as an ISO time (or "never" past what a date can hold). */
const comeBackAt = (now: number, hint: Duration.Duration): string => {
  const at = new Date(now + Duration.toMillis(hint))
  return Number.isNaN(at.getTime()) ? "never" : at.toISOString()
}

/**
 * How a message states a server's wait hint: "asks to wait 300s", with "(until <ISO time>)" when
 * `now` is known. The one wording, for `fromHttp`'s messages and the retry log line.
 */
export const asksToWait = (hint: Duration.Duration, now?: number | undefined): string =>
  `asks to wait ${formatDuration(hint)}${now === undefined ? "" : ` (until ${comeBackAt(now, hint)})`}`

/**
 * The fields of an error that carries a wait hint: `retryAfter`, and the message stating it
 * ("…; it asks to wait 3s (until …)"). Without a hint, the message alone.
 */
export const withWaitHint = (
  message: string,
  hint: Duration.Duration | undefined,
  now?: number | undefined
): { readonly message: string; readonly retryAfter?: Duration.Duration } =>
  hint === undefined ? { message } : { message: `${message}; it ${asksToWait(hint, now)}`, retryAfter: hint }

/** Formats a duration for messages: "60s", "1.5s", "250ms". */
export const formatDuration = (duration: Duration.Duration): string => {
  const millis = Duration.toMillis(duration)
  if (!Number.isFinite(millis)) return "forever"
  if (millis < 1000) return `${Math.round(millis)}ms`
  const seconds = millis / 1000
  return Number.isInteger(seconds) ? `${seconds}s` : `${Number(seconds.toFixed(3))}s`
}

/** The error `withTimeout(operation)` fails with: "agent_creation timed out after 60s". */
export const operationTimeout = (options: {
  readonly operation: string
  readonly timeout: Duration.Duration
  readonly service?: string | undefined
}): OperationTimeout =>
  new OperationTimeout({
    service: options.service ?? options.operation,
    operation: options.operation,
    timeout: options.timeout,
    message: `${options.operation} timed out after ${formatDuration(options.timeout)}`
  })

// ---------------------------------------------------------------------------------------------
// HTTP mapping
// ---------------------------------------------------------------------------------------------

/** Header values as a plain record or anything with `get` (`Headers`, fetch `Headers`). */
export type HeadersInput =
  | Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  | { readonly get: (name: string) => string | null | undefined }

const headerValue = (headers: HeadersInput, name: string): string | undefined => {
  if ("get" in headers && typeof headers.get === "function") {
    return headers.get(name) ?? undefined
  }
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name) {
      if (value === undefined) return undefined
      return typeof value === "string" ? value : value[0]
    }
  }
  return undefined
}

/**
 * Reads a server's wait hint from `retry-after-ms`, then `Retry-After` (delta seconds or an
 * HTTP date, measured against `now`). A date in the past is a zero wait.
 */
export const retryAfterFromHeaders = (headers: HeadersInput, now: number = Date.now()): Duration.Duration | undefined => {
  const millis = headerValue(headers, "retry-after-ms")
  if (millis !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(millis)) {
    return Duration.millis(Number(millis))
  }
  const retryAfter = headerValue(headers, "retry-after")
  if (retryAfter === undefined) return undefined
  if (/^\s*\d+(\.\d+)?\s*$/.test(retryAfter)) return Duration.seconds(Number(retryAfter))
  const date = Date.parse(retryAfter)
  return Number.isNaN(date) ? undefined : Duration.millis(Math.max(0, date - now))
}

/**
 * An answer's `request-id` (Anthropic's; its docs ask clients to quote it when reporting a
 * failure), when it looks like an id: the header is the upstream's text and goes into messages.
 */
const requestIdOf = (headers: HeadersInput): string | undefined => {
  const id = headerValue(headers, "request-id")?.trim()
  return id !== undefined && /^[A-Za-z0-9_-]{1,128}$/.test(id) ? id : undefined
}

/** Parses a protobuf JSON duration such as "3s", "1.5s", "0.250s". */
export const parseProtoDuration = (value: string): Duration.Duration | undefined => {
  const match = /^\s*(\d+(?:\.\d+)?)s\s*$/.exec(value)
  return match === null ? undefined : Duration.millis(Math.round(Number(match[1]) * 1000))
}

const asRecord = (u: unknown): { readonly [key: string]: unknown } | undefined =>
  Predicate.isRecord(u) ? u : undefined

const parseBody = (body: unknown): unknown => {
  if (typeof body !== "string") return body
  try {
    return JSON.parse(body)
  } catch {
    return body
  }
}

/** The upstream's own error description, from Gemini, Anthropic or observability error bodies. */
const bodyDetail = (body: unknown): string | undefined => {
  if (typeof body === "string") {
    const text = body.trim()
    return text.length === 0 ? undefined : text.slice(0, 300)
  }
  const record = asRecord(body)
  if (record === undefined) return undefined
  const error = record["error"]
  if (typeof error === "string") return error
  const inner = asRecord(error)
  if (inner !== undefined) {
    const message = inner["message"]
    const kind = inner["status"] ?? inner["type"]
    if (typeof message === "string") return typeof kind === "string" ? `${kind}: ${message}` : message
  }
  const message = record["message"]
  return typeof message === "string" ? message : undefined
}

/** `google.rpc` details of a Gemini error body. */
const googleDetails = (body: unknown): ReadonlyArray<{ readonly [key: string]: unknown }> => {
  const details = asRecord(asRecord(body)?.["error"])?.["details"]
  if (!Array.isArray(details)) return []
  return details.flatMap((detail) => {
    const record = asRecord(detail)
    return record === undefined ? [] : [record]
  })
}

const retryInfoDelay = (body: unknown): Duration.Duration | undefined => {
  for (const detail of googleDetails(body)) {
    const type = detail["@type"]
    const delay = detail["retryDelay"]
    if (typeof type === "string" && type.endsWith("google.rpc.RetryInfo") && typeof delay === "string") {
      return parseProtoDuration(delay)
    }
  }
  return undefined
}

/** One `google.rpc.QuotaFailure` violation, as Gemini reports an exhausted quota. */
interface QuotaViolation {
  readonly quotaId: string
  readonly model: string | undefined
  readonly limit: string | undefined
}

const quotaViolations = (body: unknown): ReadonlyArray<QuotaViolation> =>
  googleDetails(body).flatMap((detail) => {
    const type = detail["@type"]
    const violations = detail["violations"]
    if (typeof type !== "string" || !type.endsWith("google.rpc.QuotaFailure") || !Array.isArray(violations)) return []
    return violations.flatMap((violation): ReadonlyArray<QuotaViolation> => {
      const record = asRecord(violation)
      const quotaId = record?.["quotaId"]
      if (typeof quotaId !== "string") return []
      const model = asRecord(record?.["quotaDimensions"])?.["model"]
      const limit = record?.["quotaValue"]
      return [{
        quotaId,
        model: typeof model === "string" ? model : undefined,
        limit: typeof limit === "string" || typeof limit === "number" ? String(limit) : undefined
      }]
    })
  })

/** A per-day quota (`GenerateRequestsPerDayPerProjectPerModel-FreeTier`): waiting minutes will not bring it back. */
const isDailyQuota = (violation: QuotaViolation): boolean => /PerDay|Daily/i.test(violation.quotaId)

const quotaExhausted = (
  service: string,
  status: number,
  violation: QuotaViolation,
  hint: Duration.Duration | undefined,
  now: number
): QuotaExhausted => {
  const facts = [violation.quotaId, violation.model && `model ${violation.model}`, violation.limit && `limit ${violation.limit}`]
    .filter((fact): fact is string => typeof fact === "string" && fact !== "").join(", ")
  const resets = hint === undefined
    ? "the server did not say when it resets (Gemini's daily quotas reset at midnight Pacific time)"
    : `the server says it resets in ${formatDuration(hint)} (at ${new Date(now + Duration.toMillis(hint)).toISOString()})`
  return new QuotaExhausted({
    service,
    status,
    quotaId: violation.quotaId,
    message: `${service} daily quota exhausted (${facts}): retrying within minutes will not help; ${resets}`,
    ...(hint === undefined ? {} : { retryAfter: hint })
  })
}

/**
 * What an OpenAI error object (the `error` of an HTTP error body, or of a Realtime `error` event)
 * names as gone when the account is out of credit or past its spending limit: its `code`
 * (`insufficient_quota`, or a billing cause such as `credit_balance_exhausted`) when the `type`
 * or `code` is `insufficient_quota`, else `undefined`.
 */
export const openAiQuotaOf = (error: { readonly type?: unknown; readonly code?: unknown } | undefined): string | undefined => {
  if (error?.type !== "insufficient_quota" && error?.code !== "insufficient_quota") return undefined
  return typeof error.code === "string" && error.code !== "" ? error.code : "insufficient_quota"
}

/**
 * OpenAI's account out of credit (`quotaId` from `openAiQuotaOf`): no wait brings it back, only
 * someone fixing the billing. `detail` is what the server said, as the caller words it.
 */
export const billingQuotaExhausted = (options: {
  readonly service: string
  readonly quotaId: string
  readonly detail: string
  readonly status?: number | undefined
}): QuotaExhausted =>
  new QuotaExhausted({
    service: options.service,
    quotaId: options.quotaId,
    message: `${options.service} quota exhausted (${options.quotaId}): the account is out of credit or past its spending ` +
      `limit; retrying will not help until someone checks the plan and billing (${options.detail})`,
    ...(options.status === undefined ? {} : { status: options.status })
  })

const hasErrorInfoReason = (body: unknown, reason: string): boolean =>
  googleDetails(body).some((detail) => {
    const type = detail["@type"]
    return typeof type === "string" && type.endsWith("google.rpc.ErrorInfo") && detail["reason"] === reason
  })

/**
 * Maps a non-2xx HTTP answer to its error in the taxonomy.
 *
 * 429 → `RateLimited` (hint from `retry-after-ms`, `Retry-After`, or a Gemini `RetryInfo`), or
 * `QuotaExhausted` when a Gemini `QuotaFailure` names a per-day quota or an OpenAI body says
 * `insufficient_quota` (out of credit or past a spending limit);
 * 408/5xx/529 → `ServiceUnavailable`; 401/403 → `Unauthorized`; a Gemini `API_KEY_INVALID`
 * reason → `Unauthorized`; other 4xx → `InvalidRequest`. Anthropic's `x-should-retry` header
 * overrides the status, and an Anthropic 409 (a lock timeout there) is retryable. A `request-id`
 * header is quoted in the message.
 */
export const fromHttp = (options: {
  readonly service: string
  readonly status: number
  readonly headers?: HeadersInput | undefined
  readonly body?: unknown
  readonly now?: number | undefined
}): Big3Error => {
  const { service, status } = options
  const headers = options.headers ?? {}
  const body = parseBody(options.body)
  const detail = bodyDetail(body)
  const requestId = requestIdOf(headers)
  const message = `${service} answered HTTP ${status}${requestId === undefined ? "" : ` (request-id ${requestId})`}` +
    `${detail === undefined ? "" : `: ${detail}`}`
  const hint = retryAfterFromHeaders(headers, options.now) ?? retryInfoDelay(body)
  // The wait goes into the message too: it is what a person reading the failure needs to know.
  const withHint = withWaitHint(message, hint, options.now)
  const shouldRetry = headerValue(headers, "x-should-retry")

  if (status === 429) {
    const daily = quotaViolations(body).find(isDailyQuota)
    if (daily !== undefined) return quotaExhausted(service, status, daily, hint, options.now ?? Date.now())
    const billing = openAiQuotaOf(asRecord(asRecord(body)?.["error"]))
    if (billing !== undefined) return billingQuotaExhausted({ service, status, quotaId: billing, detail: message })
    return new RateLimited({ service, status, ...withHint })
  }
  if (status === 401 || status === 403) return new Unauthorized({ service, status, message })
  if (hasErrorInfoReason(body, "API_KEY_INVALID")) {
    return new Unauthorized({ service, status, message: `${service} rejected the API key (${message})` })
  }
  if (shouldRetry === "false") return new InvalidRequest({ service, status, message: `${message} (not retryable)` })
  if (shouldRetry === "true") return new ServiceUnavailable({ service, status, ...withHint })
  if (status === 409 && service === "anthropic") return new ServiceUnavailable({ service, status, ...withHint })
  if (status === 408 || status === 529 || status >= 500) {
    return new ServiceUnavailable({ service, status, ...withHint })
  }
  return new InvalidRequest({ service, status, message })
}
