/**
 * The Gemini emulator's errors in Google's format (`{"error":{"code","message","status","details"?}}`),
 * including a real 429: no `Retry-After` header, the wait only in the body's `RetryInfo`, beside
 * a `QuotaFailure` naming the quota and a `Help` link.
 *
 * @since 0.1.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import type { QuotaWindow } from "./FaultPlan.js"
import type { Rejection } from "./GeminiRequest.js"

const statusNames: Readonly<Record<number, readonly [status: string, message: string]>> = {
  400: ["INVALID_ARGUMENT", "Request contains an invalid argument."],
  401: ["UNAUTHENTICATED", "Request had invalid authentication credentials."],
  403: ["PERMISSION_DENIED", "The caller does not have permission"],
  404: ["NOT_FOUND", "Requested entity was not found."],
  409: ["ABORTED", "The operation was aborted."],
  429: ["RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."],
  499: ["CANCELLED", "The operation was cancelled."],
  500: [
    "INTERNAL",
    "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
  ],
  501: ["UNIMPLEMENTED", "Operation is not implemented, or supported, or enabled."],
  502: ["UNAVAILABLE", "The service is currently unavailable."],
  503: ["UNAVAILABLE", "The model is overloaded. Please try again later."],
  504: ["DEADLINE_EXCEEDED", "Deadline expired before operation could complete."]
}

export const statusName = (status: number): readonly [string, string] =>
  statusNames[status] ?? (status >= 500 ? ["INTERNAL", "Internal error encountered."] : ["FAILED_PRECONDITION", "Precondition check failed."])

/** google.protobuf.Duration in JSON, to the nanosecond: "3s", "45.837906927s". */
export const protoDuration = (duration: Duration.Duration): string => {
  const nanos = Duration.unsafeToNanos(duration)
  const seconds = nanos / 1_000_000_000n
  const fraction = (nanos % 1_000_000_000n).toString().padStart(9, "0").replace(/0+$/, "")
  return fraction === "" ? `${seconds}s` : `${seconds}.${fraction}s`
}

export const errorBody = (status: number, message: string, details: ReadonlyArray<unknown> = []) => ({
  error: { code: status, message, status: statusName(status)[0], ...(details.length > 0 ? { details } : {}) }
})

export const errorResponse = (status: number, message: string, details: ReadonlyArray<unknown> = []) =>
  HttpServerResponse.unsafeJson(errorBody(status, message, details), { status })

export const retryInfo = (delay: Duration.Duration) => ({
  "@type": "type.googleapis.com/google.rpc.RetryInfo",
  retryDelay: protoDuration(delay)
})

/** The free tier's quotas as the real 429 names them. */
const quotas: Readonly<Record<QuotaWindow, { readonly quotaId: string; readonly limit: string }>> = {
  minute: { quotaId: "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", limit: "10" },
  day: { quotaId: "GenerateRequestsPerDayPerProjectPerModel-FreeTier", limit: "250" }
}

/**
 * A real 429: no `Retry-After` header; the wait is only in the body's `RetryInfo`, beside a
 * `QuotaFailure` naming the quota (per minute or per day) and a `Help` link.
 */
export const rateLimited = (model: string, retryAfter: Option.Option<Duration.Duration>, window: QuotaWindow) => {
  const metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
  const quota = quotas[window]
  const retryIn = Option.match(retryAfter, {
    onNone: () => "",
    onSome: (delay) => `\nPlease retry in ${protoDuration(delay)}.`
  })
  return errorResponse(
    429,
    "You exceeded your current quota, please check your plan and billing details. For more information on this error, " +
      "head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: " +
      `https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: ${metric}, limit: ${quota.limit}, model: ${model}` +
      retryIn,
    [
      {
        "@type": "type.googleapis.com/google.rpc.Help",
        links: [{ description: "Learn more about Gemini API quotas", url: "https://ai.google.dev/gemini-api/docs/rate-limits" }]
      },
      {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        violations: [{
          quotaMetric: metric,
          quotaId: quota.quotaId,
          quotaDimensions: { location: "global", model },
          quotaValue: quota.limit
        }]
      },
      ...Option.match(retryAfter, { onNone: () => [], onSome: (delay) => [retryInfo(delay)] })
    ]
  )
}

/** Google's answer to a request without any API key (403, not the 400 of a wrong key). */
export const apiKeyMissing = errorResponse(
  403,
  "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."
)

/** Google's answer to a wrong API key. */
export const apiKeyInvalid = errorResponse(400, "API key not valid. Please pass a valid API key.", [{
  "@type": "type.googleapis.com/google.rpc.ErrorInfo",
  reason: "API_KEY_INVALID",
  domain: "googleapis.com",
  metadata: { service: "generativelanguage.googleapis.com" }
}])

export const rejected = (rejection: Rejection) =>
  errorResponse(
    400,
    rejection.message,
    rejection.fieldViolations === undefined
      ? []
      : [{ "@type": "type.googleapis.com/google.rpc.BadRequest", fieldViolations: rejection.fieldViolations }]
  )

/** The in-stream error of a failing stream: one SSE event holding Google's error object. */
export const streamErrorEvent = (status: number | undefined): string => {
  const code = status ?? 503
  return `data: ${JSON.stringify(errorBody(code, statusName(code)[1]))}\r\n\r\n`
}
