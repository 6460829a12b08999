/**
 * A server `error` event as an error of the taxonomy, so that a caller can tell whether trying
 * again can help: the API's own `type` and `code` decide, and its message is kept.
 *
 * @internal
 */
import * as Errors from "../Errors.js"
import { service } from "./Connection.js"
import type { RealtimeError } from "./Domain.js"
import { SessionExpired } from "./Domain.js"
import type { ErrorEvent, ResponseDone } from "./Protocol.js"
import { errorCodes } from "./Protocol.js"

/** An `error` event's error, or the error of a response that ended failed (its fields optional there). */
interface ServerErrorFields {
  readonly type?: string | undefined
  readonly code?: string | null | undefined
  readonly message?: string | undefined
}

/** "type (code): message", as the server said it. */
export const describe = (error: ServerErrorFields): string =>
  `${error.type ?? "error"}${error.code ? ` (${error.code})` : ""}${error.message ? `: ${error.message}` : ""}`

/** The account is out of credit or past its spending limit (`insufficient_quota`, as type or code). */
export const isQuotaExhausted = (error: ServerErrorFields): boolean => Errors.openAiQuotaOf(error) !== undefined

const quotaExhausted = (error: ServerErrorFields): Errors.QuotaExhausted | undefined => {
  const quotaId = Errors.openAiQuotaOf(error)
  return quotaId === undefined ? undefined : Errors.billingQuotaExhausted({ service, quotaId, detail: `${service} reported ${describe(error)}` })
}

/**
 * A response that ended failed because the account is out of credit (its `status_details.error`
 * says `insufficient_quota`, as the API reports it in practice) as `QuotaExhausted`; else undefined.
 */
export const responseQuotaExhausted = (event: ResponseDone): Errors.QuotaExhausted | undefined => {
  const failure = event.response.status_details?.error
  return event.response.status === "failed" && failure !== undefined && failure !== null ? quotaExhausted(failure) : undefined
}

/**
 * `session_expired` → `SessionExpired`; `invalid_api_key` → `Unauthorized`; `insufficient_quota`
 * (code or type) → `QuotaExhausted`; `rate_limit_exceeded` (code or type) → `RateLimited`; type
 * `server_error` → `ServiceUnavailable`; anything else (`invalid_request_error` such as
 * `model_not_found`, or a type we do not know) → `InvalidRequest`: sent again, the same request
 * would be refused again.
 */
export const toRealtimeError = (error: ErrorEvent["error"]): RealtimeError => {
  const message = describe(error)
  if (error.code === errorCodes.sessionExpired) return new SessionExpired({ service, message })
  if (error.code === errorCodes.invalidApiKey) {
    return new Errors.Unauthorized({ service, message: `${service} refused the API key: ${message}` })
  }
  const reported = `${service} reported ${message}`
  const quota = quotaExhausted(error)
  if (quota !== undefined) return quota
  // Named as a code (as in OpenAI's HTTP errors) or, by some, as the type.
  if (error.code === errorCodes.rateLimited || error.type === errorCodes.rateLimited) {
    return new Errors.RateLimited({ service, message: reported })
  }
  if (error.type === "server_error") return new Errors.ServiceUnavailable({ service, message: reported })
  return new Errors.InvalidRequest({ service, message: reported })
}
