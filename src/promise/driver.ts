/**
 * The Promise API's driver: one pipeline built from resolved configuration and breakers, run
 * with timers and `AbortController`s rather than fibers. It decides retries with the Effect
 * side's `decide`, counts them with its `count` and reports outcomes to the same `Breaker`
 * objects, so both sides wait, stop and count alike.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Predicate from "effect/Predicate"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import type { Big3Error } from "../Errors.js"
import { formatDuration, fromHttp, InvalidRequest, isBig3Error, NetworkError, OperationTimeout, operationTimeout } from "../Errors.js"
import { preview } from "../internal/preview.js"
import * as Metrics from "../Metrics.js"
import type * as ReliabilityConfig from "../ReliabilityConfig.js"
import { setLongTimeout } from "../internal/timer.js"
import * as Decision from "../resilience/decision.js"

/** Network error codes of Node and undici that are worth a retry. */
const retryableCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CLOSED"
])

const codeOf = (error: unknown): string | undefined => {
  if (typeof error !== "object" || error === null) return undefined
  if ("code" in error && typeof error.code === "string") return error.code
  return "cause" in error ? codeOf(error.cause) : undefined
}

/**
 * The `google.rpc` details of an error whose message is a Gemini error body, as `@google/genai`'s
 * `ApiError` carries it (`message` is the JSON body): the `RetryInfo` wait and the `QuotaFailure`
 * that tells a per-day quota from a per-minute one. Only the details: the body's own message
 * may echo what the caller sent, and it reaches no log line from here.
 */
const googleDetailsOf = (error: object): unknown => {
  if (!("message" in error) || typeof error.message !== "string" || !error.message.trimStart().startsWith("{")) return undefined
  try {
    const body: unknown = JSON.parse(error.message)
    const inner = Predicate.isRecord(body) ? body["error"] : undefined
    const details = Predicate.isRecord(inner) ? inner["details"] : undefined
    return Array.isArray(details) ? { error: { details } } : undefined
  } catch {
    return undefined
  }
}

/**
 * The `type` and `code` of an `openai` SDK `APIError` (copied there from the body's `error`): they
 * tell an account out of credit (`insufficient_quota`) from a rate limit. Not its message, which
 * may echo what the caller sent.
 */
const openAiErrorOf = (error: object): unknown => {
  const type = "type" in error && typeof error.type === "string" ? error.type : undefined
  const code = "code" in error && typeof error.code === "string" ? error.code : undefined
  return type === undefined && code === undefined ? undefined : { error: { type, code } }
}

/**
 * How a thrown value is classified when no `retryable` option decides: a big3 error keeps its
 * own flag; an object with a numeric `status` / `statusCode` is mapped like an HTTP answer (its
 * `headers`, when they are `Headers` as on the Anthropic SDK's errors, the Gemini details in
 * a `@google/genai` error's message, and an `openai` SDK error's `type` / `code`, give the
 * server's wait and quota); a Node / undici network
 * error code, or the Anthropic SDK's `APIConnectionError` / `APIConnectionTimeoutError`, is a
 * `NetworkError`; anything else is not retried.
 */
export const classifyDefault = (error: unknown, service: string): Big3Error | undefined => {
  if (isBig3Error(error)) return error
  if (typeof error === "object" && error !== null) {
    const status = "status" in error && typeof error.status === "number"
      ? error.status
      : "statusCode" in error && typeof error.statusCode === "number"
      ? error.statusCode
      : undefined
    if (status !== undefined && status >= 400) {
      const headers = "headers" in error && error.headers instanceof Headers ? error.headers : undefined
      return fromHttp({ service, status, headers, body: googleDetailsOf(error) ?? openAiErrorOf(error) })
    }
  }
  const code = codeOf(error)
  if (code !== undefined && retryableCodes.has(code)) {
    return new NetworkError({ service, message: `${service}: network error ${code}` })
  }
  // The Anthropic SDK's connection failures, which its own retries retry: a timeout of its own
  // carries no code at all, and a connection error need not (a proxy, a TLS failure).
  const name = typeof error === "object" && error !== null && "name" in error ? error.name : undefined
  if (name === "APIConnectionTimeoutError" || name === "APIConnectionError") {
    return new NetworkError({ service, message: `${service}: ${name === "APIConnectionError" ? "connection error" : "request timed out"}` })
  }
  return undefined
}

/** What a pipeline is built from (everything but the caller's `signal`). */
export interface PipelineOptions {
  /** The operation id whose timeout bounds each attempt. */
  readonly operation?: ReliabilityConfig.OperationId | undefined
  /** An explicit per-attempt timeout instead of the operation's. */
  readonly timeout?: Duration.DurationInput | undefined
  /** A policy name or a `RetryPolicy`. Default "default". */
  readonly policy?: string | ReliabilityConfig.RetryPolicy | undefined
  /** A breaker name. */
  readonly breaker?: string | undefined
  /** A total deadline over all attempts and waits. */
  readonly deadline?: Duration.DurationInput | undefined
  /** The service named in logs and metrics. */
  readonly service?: string | undefined
  /** Decides whether a thrown value is retryable; return `true` / `false`, or `undefined` for the default. */
  readonly retryable?: ((error: unknown) => boolean | undefined) | undefined
  /** Called on each retry and on the final failure; the default writes a warning to stderr. */
  readonly onRetry?: ((event: { readonly message: string; readonly attempt: number; readonly delay?: number }) => void) | undefined
  /** Draw retries from the service's retry budget (default: when there is a breaker). */
  readonly budget?: boolean | undefined
}

/** Options of one call. */
export interface CallOptions {
  /** The caller's cancellation. */
  readonly signal?: AbortSignal | undefined
}

/** Options of the Promise API's functions. */
export interface Options extends PipelineOptions, CallOptions {}

/**
 * An async function given the `AbortSignal` of its attempt. A function that declares no
 * parameter (`() => fetch(url)`) is given a signal that never aborts: it does not listen to it,
 * and on Node 20 making an attempt's `AbortSignal` is most of a call's cost (`npm run bench` has
 * both rows). Its attempt is abandoned on timeout all the same.
 */
export type Task<A> = (signal: AbortSignal) => Promise<A>

/** A pipeline built once by `protector`: runs any number of tasks. */
export type Protector = <A>(fn: Task<A>, call?: CallOptions) => Promise<A>

/** The configuration and breakers a call runs with. */
export interface Services {
  readonly config: ReliabilityConfig.Service
  readonly breakers: CircuitBreaker.Service
}

const defaultOnRetry = (event: { readonly message: string }) => {
  process.emitWarning(event.message, { type: "Big3RetryWarning" })
}

const neverAborted = new AbortController().signal

const sleep = (millis: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const onAbort = () => {
      cancel()
      reject(signal.reason)
    }
    const cancel = setLongTimeout(() => {
      signal.removeEventListener("abort", onAbort)
      resolve()
    }, millis)
    signal.addEventListener("abort", onAbort, { once: true })
  })

/**
 * One attempt's state: a class rather than closures, since one is made per attempt. It is its
 * own abort listener on the caller's signal (`handleEvent`).
 */
class Attempt<A> {
  settled = false
  cancelTimer: (() => void) | undefined = undefined
  resolve: (value: A) => void = noop
  reject: (error: unknown) => void = noop
  constructor(
    readonly outer: AbortSignal | undefined,
    /** The attempt's own signal; none for a function that takes no signal. */
    readonly controller: AbortController | undefined
  ) {}

  /** Stops listening and disarms the timer. */
  finish(): void {
    this.settled = true
    this.cancelTimer?.()
    this.outer?.removeEventListener("abort", this)
  }

  /** Abandons the attempt: aborts its signal with `reason` and rejects with it. */
  abandon(reason: unknown): void {
    this.finish()
    this.controller?.abort(reason)
    this.reject(reason)
  }

  /** The caller's signal aborted. */
  handleEvent(): void {
    this.abandon(this.outer?.reason)
  }
}

const noop = (): void => {}

/**
 * Runs one attempt under its own AbortController, aborted after `millis` (with an
 * `OperationTimeout`) or when `outer` aborts. The attempt is abandoned even if the function
 * ignores its signal, so a misbehaving function cannot hang the caller.
 */
const runAttempt = <A>(
  fn: Task<A>,
  millis: number | undefined,
  outer: AbortSignal | undefined,
  onTimeout: () => OperationTimeout
): Promise<A> => {
  const attempt = new Attempt<A>(outer, fn.length === 0 ? undefined : new AbortController())
  let running: Promise<A>
  try {
    running = fn(attempt.controller?.signal ?? neverAborted)
  } catch (error) {
    return Promise.reject(error)
  }
  if (millis === undefined && outer === undefined) return running
  return new Promise<A>((resolve, reject) => {
    attempt.resolve = resolve
    attempt.reject = reject
    if (outer !== undefined) {
      if (outer.aborted) return attempt.handleEvent()
      outer.addEventListener("abort", attempt, { once: true })
    }
    running.then(
      (value) => {
        attempt.finish()
        resolve(value)
      },
      (error: unknown) => {
        attempt.finish()
        reject(error)
      }
    )
    if (millis !== undefined) {
      // Armed a microtask later, after the callbacks above: a function whose promise is already
      // settled costs no timer at all.
      queueMicrotask(() => {
        if (!attempt.settled) attempt.cancelTimer = setLongTimeout(() => attempt.abandon(onTimeout()), millis)
      })
    }
  })
}

/**
 * Why a duration option is not one, or `undefined`. Effect's `Duration.decode` reads a negative
 * or NaN number (and "-5 millis") as zero, which would time every call out at once.
 */
const invalidDuration = (name: string, service: string, input: Duration.DurationInput | undefined): InvalidRequest | undefined => {
  if (input === undefined) return undefined
  const refuse = () =>
    new InvalidRequest({
      service,
      message: `${name} must be a duration of zero or more, such as 5000 (ms) or "5 seconds"; got ${preview(input)}`
    })
  if (typeof input === "number") return Number.isNaN(input) || input < 0 ? refuse() : undefined
  if (typeof input === "bigint") return input < 0n ? refuse() : undefined
  if (typeof input === "string" && input.trim().startsWith("-")) return refuse()
  try {
    Duration.decode(input)
    return undefined
  } catch {
    return refuse()
  }
}

/** Builds the driver of one pipeline from resolved services: everything looked up once. */
export const build = (services: Services, options: PipelineOptions): Protector => {
  const { breakers, config } = services
  const service = options.service ?? options.breaker ?? options.operation ?? "default"
  // Checked once per pipeline: a bad option rejects every call made through it.
  const invalid = invalidDuration("timeout", service, options.timeout) ?? invalidDuration("deadline", service, options.deadline)
  if (invalid !== undefined) return () => Promise.reject(invalid)
  const operation = options.operation ?? service
  const policy = typeof options.policy === "object" ? options.policy : config.policyOf(options.policy ?? "default")
  const timeout = options.timeout !== undefined
    ? Duration.decode(options.timeout)
    : options.operation !== undefined
    ? config.timeoutOf(options.operation)
    : undefined
  const timeoutMillis = timeout === undefined || !Duration.isFinite(timeout) ? undefined : Duration.toMillis(timeout)
  const breaker = options.breaker === undefined ? undefined : breakers.get(options.breaker)
  const budget = (options.budget ?? breaker !== undefined) ? breakers.budget(service) : undefined
  const onRetry = options.onRetry ?? defaultOnRetry
  const label = `${operation} `
  const labels = Metrics.labelsFor(service)
  const success = Metrics.labelsFor(service, { outcome: "success" })
  const failure = Metrics.labelsFor(service, { outcome: "failure" })
  const timeoutLabels = Metrics.labelsFor(service, { operation })
  const deadline = options.deadline === undefined ? undefined : Duration.decode(options.deadline)
  const onTimeout = () => {
    Metrics.timeouts.unsafeUpdate(1, timeoutLabels)
    return operationTimeout({ operation, timeout: timeout ?? Duration.zero, service })
  }

  return async <A>(fn: Task<A>, call?: CallOptions): Promise<A> => {
    const startedAt = Date.now()
    budget?.recordCall(startedAt)
    // The deadline aborts whatever is running (attempt or wait) with an OperationTimeout.
    let signal = call?.signal
    let deadlineAt: number | undefined
    let cancelDeadline: (() => void) | undefined
    if (deadline !== undefined) {
      deadlineAt = startedAt + Duration.toMillis(deadline)
      const controller = new AbortController()
      const outer = call?.signal
      outer?.addEventListener("abort", () => controller.abort(outer.reason), { once: true })
      cancelDeadline = setLongTimeout(() =>
        controller.abort(
          new OperationTimeout({
            service,
            operation,
            timeout: deadline,
            message: `${operation} did not finish within its deadline of ${formatDuration(deadline)}`
          })
        ), Duration.toMillis(deadline))
      signal = controller.signal
    }
    try {
      for (let attempt = 1;; attempt++) {
        const ticket = breaker?.tryAcquire(Date.now())
        if (ticket !== undefined && typeof ticket !== "number") throw ticket
        Metrics.attempts.unsafeUpdate(1, labels)
        let error: unknown
        try {
          const value = await runAttempt(fn, timeoutMillis, signal, onTimeout)
          if (ticket !== undefined) breaker?.onSuccess(ticket, Date.now())
          Metrics.calls.unsafeUpdate(1, success)
          Metrics.callDuration.unsafeUpdate((Date.now() - startedAt) / 1000, labels)
          return value
        } catch (thrown) {
          error = thrown
        }
        if (signal?.aborted === true && error === signal.reason) {
          if (ticket !== undefined) breaker?.onCancel(ticket)
          throw error
        }
        const classified = classifyDefault(error, service)
        const retryable = options.retryable?.(error) ?? classified?.retryable ?? false
        if (ticket !== undefined) {
          if (retryable) breaker?.onFailure(ticket, Date.now())
          else breaker?.onSuccess(ticket, Date.now())
        }
        const decision = Decision.decide(policy, {
          attempt,
          error: { retryable, retryAfter: classified !== undefined && "retryAfter" in classified ? classified.retryAfter : undefined },
          now: Date.now(),
          random: Math.random(),
          deadlineAt,
          budget
        })
        const described = classified ?? error
        Decision.count(service, decision, described)
        const message = Decision.describeDecision(label, decision, described)
        if (decision._tag === "Stop") {
          if (Decision.severityOf(decision, false) !== "debug") onRetry({ message, attempt })
          throw error
        }
        const delay = Duration.toMillis(decision.delay)
        onRetry({ message, attempt, delay })
        await sleep(delay, signal ?? neverAborted)
      }
    } catch (error) {
      Metrics.calls.unsafeUpdate(1, failure)
      Metrics.callDuration.unsafeUpdate((Date.now() - startedAt) / 1000, labels)
      throw error
    } finally {
      cancelDeadline?.()
    }
  }
}

