/**
 * What an answer of the observability server means, as pure functions: a 2xx that is not proof
 * of storage is an error, a batch acknowledgement is checked against the batch, and a failed
 * delivery becomes a `Failure` (spool it, or dead-letter it).
 *
 * @since 0.1.0
 */
import type { Big3Error } from "../Errors.js"
import * as Errors from "../Errors.js"
import { isJsonText } from "../internal/jsonText.js"
import type { Answer, Route } from "./Transport.js"
import { service } from "./Transport.js"

/** Why an event was not delivered. `dead`: refused for good (dead-letter it). */
export interface Failure {
  readonly dead: boolean
  readonly reason: string
  readonly status: number | undefined
}

/** A delivery's outcome; `undefined`: delivered. */
export type Result = Failure | undefined

/** The batch route's verdict on a batch, when it answered. */
export type BatchVerdict = "accepted" | "not-batch-route" | "split"

export const truncate = (text: string, max = 500): string => text.length <= max ? text : `${text.slice(0, max - 1)}…`

const isSuccess = (status: number) => status >= 200 && status < 300

/** Where the answer came from, and when (for `Retry-After` dates). */
export interface Context {
  readonly url: URL
  readonly batchUrl: URL
  readonly now: number
}

const misrouted = (context: Context, route: Route, answer: Answer) =>
  `${route === "single" ? context.url.href : context.batchUrl.href} answered HTTP ${answer.status} ` +
  `${answer.contentType || "without a content type"}${
    answer.body === undefined ? "" : ` "${truncate(answer.body.trim(), 80)}"`
  }, not an events acknowledgement: check OBSERVABILITY_SERVER_URL`

const httpError = (context: Context, answer: Answer): Big3Error =>
  Errors.fromHttp({ service, status: answer.status, headers: answer.headers, body: answer.body, now: context.now })

/** The answer to one `POST /events`: `undefined` when it proves the event is stored, else the error. */
export const checkSingle = (context: Context, answer: Answer): Big3Error | undefined => {
  if (!isSuccess(answer.status)) return httpError(context, answer)
  // The public server answers 200 text/plain to every route but POST /events: a URL that
  // points elsewhere would look delivered and lose everything.
  if (answer.contentType.startsWith("text/")) {
    return new Errors.InvalidRequest({ service, status: answer.status, message: misrouted(context, "single", answer) })
  }
  // A JSON acknowledgement (the saved event) that is not whole JSON: a garbled answer, so it
  // is not proof of storage. Asking again loses nothing (the events route is idempotent on
  // `id` in big3's server; the public one may store a duplicate, which beats losing it).
  if (answer.body !== undefined && !answer.truncated && answer.body.length > 0 && !isJsonText(answer.body)) {
    return new Errors.ServiceUnavailable({
      service,
      status: answer.status,
      message: `${context.url.href} answered HTTP ${answer.status} with a garbled acknowledgement (not JSON)`
    })
  }
  return undefined
}

/** The answer to one `POST /events/batch` of `size` events: a verdict, or the error. */
export const checkBatch = (context: Context, size: number, answer: Answer): BatchVerdict | Big3Error => {
  if (isSuccess(answer.status)) {
    // 200 text/plain is the public server's answer to a route it does not have.
    if (!answer.contentType.includes("json")) return "not-batch-route"
    let ack: unknown
    try {
      ack = JSON.parse(answer.body ?? "")
    } catch {
      // The batch route is idempotent: asking again is safe.
      return new Errors.ServiceUnavailable({
        service,
        status: answer.status,
        message: `${context.batchUrl.href} answered HTTP ${answer.status} with an acknowledgement that is not JSON`
      })
    }
    if (typeof ack !== "object" || ack === null || !("accepted" in ack) || typeof ack.accepted !== "number") {
      return "not-batch-route"
    }
    const duplicates = "duplicates" in ack && typeof ack.duplicates === "number" ? ack.duplicates : 0
    return ack.accepted + duplicates >= size ? "accepted" : "split"
  }
  // No batch route here (404 / 405 / 501), or a batch the server refused as a whole (one bad
  // event, too large): the events themselves may be fine, so they go one by one.
  if (answer.status === 404 || answer.status === 405 || answer.status === 501) return "not-batch-route"
  if (answer.status === 400 || answer.status === 413 || answer.status === 422) return "split"
  return httpError(context, answer)
}

/**
 * A delivery that failed with `error`: refused for good (dead-letter it) unless it is worth
 * asking again; an open breaker is "not now", not "never".
 */
export const failureOf = (error: Big3Error): Failure => ({
  dead: error._tag !== "CircuitOpen" && !error.retryable,
  reason: truncate(`${error._tag}: ${error.message}`),
  status: "status" in error ? error.status : undefined
})
