/**
 * The resilience pipeline for plain `async` functions, for callers that do not use Effect.
 *
 * ```ts
 * import { protect } from "big3/promise"
 * const answer = await protect((signal) => fetch(url, { signal }).then(check), {
 *   operation: "gemini_api", policy: "gemini", breaker: "gemini"
 * })
 * ```
 *
 * Each function receives an `AbortSignal` that is aborted when its attempt times out, when the
 * deadline passes, or when the caller's own `signal` aborts. Retries, breakers and budgets use
 * the same decisions, configuration and breaker state machine as the Effect API. The promise
 * rejects with the function's own last error, or with an `OperationTimeout` / `CircuitOpen`.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as CircuitBreaker from "./CircuitBreaker.js"
import type { Big3Error } from "./Errors.js"
import { formatDuration, fromHttp, isBig3Error, NetworkError, OperationTimeout, operationTimeout } from "./Errors.js"
import { decide, describeDecision, errorTag } from "./internal/retryDecision.js"
import * as Metrics from "./Metrics.js"
import * as ReliabilityConfig from "./ReliabilityConfig.js"

/** The runtime state the Promise API works with: configuration and breaker registry. */
export interface Context {
  readonly config: ReliabilityConfig.Service
  readonly breakers: CircuitBreaker.Service
}

let current: Context | undefined
let loading: Promise<Context> | undefined

/**
 * Uses `config` (and a fresh breaker registry, unless one is given) for every later call.
 * Without it, the first call reads the environment and `BIG3_CONFIG` once.
 */
export const configure = (config: ReliabilityConfig.Service, breakers?: CircuitBreaker.Service): Context => {
  current = {
    config,
    breakers: breakers ?? Effect.runSync(Effect.provideService(CircuitBreaker.make, ReliabilityConfig.ReliabilityConfig, config))
  }
  return current
}

const context = (): Context | Promise<Context> => {
  if (current !== undefined) return current
  loading ??= Effect.runPromise(ReliabilityConfig.load).then((config) => configure(config))
  return loading
}

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
 * How a thrown value is classified when no `classify` option is given: a big3 error keeps its
 * own flag; an object with a numeric `status` / `statusCode` is mapped like an HTTP answer; a
 * Node / undici network error code is a `NetworkError`; anything else is not retried.
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
      return fromHttp({ service, status, headers })
    }
  }
  const code = codeOf(error)
  if (code !== undefined && retryableCodes.has(code)) {
    return new NetworkError({ service, message: `${service}: network error ${code}` })
  }
  return undefined
}

/** Options of the Promise API. */
export interface Options {
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
  /** The caller's cancellation. */
  readonly signal?: AbortSignal | undefined
  /** The service named in logs and metrics. */
  readonly service?: string | undefined
  /** Decides whether a thrown value is retryable; return `true` / `false`, or the default is used. */
  readonly retryable?: ((error: unknown) => boolean | undefined) | undefined
  /** Called on each retry and on the final failure; the default writes a warning to stderr. */
  readonly onRetry?: ((event: { readonly message: string; readonly attempt: number; readonly delay?: number }) => void) | undefined
  /** Draw retries from the service's retry budget (default: when there is a breaker). */
  readonly budget?: boolean | undefined
}

const defaultOnRetry = (event: { readonly message: string }) => {
  process.emitWarning(event.message, { type: "Big3RetryWarning" })
}

const sleep = (millis: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const onAbort = () => {
      clearTimeout(handle)
      reject(signal.reason)
    }
    const handle = setTimeout(() => {
      signal.removeEventListener("abort", onAbort)
      resolve()
    }, millis)
    signal.addEventListener("abort", onAbort, { once: true })
  })

/**
 * Runs one attempt under its own AbortController, aborted after `millis` (with an
 * `OperationTimeout`) or when `outer` aborts. The attempt is abandoned even if the function
 * ignores its signal, so a misbehaving function cannot hang the caller.
 */
const attempt = <A>(
  fn: (signal: AbortSignal) => Promise<A>,
  millis: number | undefined,
  outer: AbortSignal | undefined,
  onTimeout: () => OperationTimeout
): Promise<A> => {
  const controller = new AbortController()
  return new Promise<A>((resolve, reject) => {
    let handle: ReturnType<typeof setTimeout> | undefined
    const finish = () => {
      if (handle !== undefined) clearTimeout(handle)
      outer?.removeEventListener("abort", onOuterAbort)
    }
    const onOuterAbort = () => {
      finish()
      controller.abort(outer?.reason)
      reject(outer?.reason)
    }
    if (outer !== undefined) {
      if (outer.aborted) return onOuterAbort()
      outer.addEventListener("abort", onOuterAbort, { once: true })
    }
    if (millis !== undefined) {
      handle = setTimeout(() => {
        const error = onTimeout()
        finish()
        controller.abort(error)
        reject(error)
      }, millis)
    }
    let running: Promise<A>
    try {
      running = fn(controller.signal)
    } catch (error) {
      finish()
      return reject(error)
    }
    running.then(
      (value) => {
        finish()
        resolve(value)
      },
      (error: unknown) => {
        finish()
        reject(error)
      }
    )
  })
}

const run = async <A>(fn: (signal: AbortSignal) => Promise<A>, options: Options): Promise<A> => {
  const ctx = context()
  const { config, breakers } = ctx instanceof Promise ? await ctx : ctx
  const service = options.service ?? options.breaker ?? options.operation ?? "default"
  const operation = options.operation ?? service
  const policy = typeof options.policy === "object" ? options.policy : config.policyOf(options.policy ?? "default")
  const timeout = options.timeout !== undefined
    ? Duration.decode(options.timeout)
    : options.operation !== undefined
    ? config.timeoutOf(options.operation)
    : undefined
  const timeoutMillis = timeout === undefined ? undefined : Duration.toMillis(timeout)
  const breaker = options.breaker === undefined ? undefined : breakers.get(options.breaker)
  const useBudget = options.budget ?? breaker !== undefined
  const budget = useBudget ? breakers.budget(service) : undefined
  const onRetry = options.onRetry ?? defaultOnRetry
  const labels = Metrics.labelsFor(service)
  const startedAt = Date.now()
  budget?.recordCall(startedAt)

  // The deadline aborts whatever is running (attempt or wait) with an OperationTimeout.
  let signal = options.signal
  let deadlineAt: number | undefined
  let deadlineTimer: ReturnType<typeof setTimeout> | undefined
  if (options.deadline !== undefined) {
    const deadline = Duration.decode(options.deadline)
    deadlineAt = startedAt + Duration.toMillis(deadline)
    const controller = new AbortController()
    const onOuter = () => controller.abort(options.signal?.reason)
    options.signal?.addEventListener("abort", onOuter, { once: true })
    deadlineTimer = setTimeout(() =>
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
  const onTimeout = () => {
    Metrics.timeouts.unsafeUpdate(1, Metrics.labelsFor(service, { operation }))
    return operationTimeout({ operation, timeout: timeout ?? Duration.zero, service })
  }

  try {
    for (let attemptNumber = 1;; attemptNumber++) {
      const ticket = breaker?.tryAcquire(Date.now())
      if (ticket !== undefined && typeof ticket !== "number") throw ticket
      Metrics.attempts.unsafeUpdate(1, labels)
      let error: unknown
      try {
        const value = await attempt(fn, timeoutMillis, signal, onTimeout)
        if (breaker !== undefined && ticket !== undefined) breaker.onSuccess(ticket, Date.now())
        Metrics.calls.unsafeUpdate(1, Metrics.labelsFor(service, { outcome: "success" }))
        return value
      } catch (thrown) {
        error = thrown
      }
      if (signal?.aborted === true && error === signal.reason) {
        if (breaker !== undefined && ticket !== undefined) breaker.onCancel(ticket)
        throw error
      }
      const override = options.retryable?.(error)
      const classified = classifyDefault(error, service)
      const retryable = override ?? classified?.retryable ?? false
      if (breaker !== undefined && ticket !== undefined) {
        if (retryable) breaker.onFailure(ticket, Date.now())
        else breaker.onSuccess(ticket, Date.now())
      }
      const decision = decide(policy, {
        attempt: attemptNumber,
        error: { retryable, retryAfter: classified !== undefined && "retryAfter" in classified ? classified.retryAfter : undefined },
        now: Date.now(),
        random: Math.random(),
        deadlineAt,
        budget
      })
      const describedError = isBig3Error(error) ? error : classified ?? error
      const message = describeDecision(`${operation} `, decision, describedError)
      if (decision._tag === "Stop") {
        if (decision.reason === "budget") Metrics.budgetRejections.unsafeUpdate(1, labels)
        // A failure on the only attempt made is the caller's to report, not a retry incident.
        if (attemptNumber > 1) onRetry({ message, attempt: attemptNumber })
        throw error
      }
      Metrics.retries.unsafeUpdate(1, Metrics.labelsFor(service, { reason: errorTag(describedError) }))
      const delay = Duration.toMillis(decision.delay)
      onRetry({ message, attempt: attemptNumber, delay })
      await sleep(delay, signal ?? neverAborted)
    }
  } catch (error) {
    Metrics.calls.unsafeUpdate(1, Metrics.labelsFor(service, { outcome: "failure" }))
    throw error
  } finally {
    if (deadlineTimer !== undefined) clearTimeout(deadlineTimer)
  }
}

const neverAborted = new AbortController().signal

/** Retries `fn` with `policy` (a name or a `RetryPolicy`). */
export const withRetry = <A>(
  fn: (signal: AbortSignal) => Promise<A>,
  policy: string | ReliabilityConfig.RetryPolicy = "default",
  options: Omit<Options, "policy"> = {}
): Promise<A> => run(fn, { ...options, policy })

/**
 * Bounds `fn` by the timeout of `operation` (or an explicit duration); the signal given to `fn`
 * is aborted when it fires, and the promise rejects with `OperationTimeout`.
 */
export const withTimeout = <A>(
  fn: (signal: AbortSignal) => Promise<A>,
  operation: ReliabilityConfig.OperationId | { readonly timeout: Duration.DurationInput; readonly operation?: string },
  options: Pick<Options, "signal" | "service"> = {}
): Promise<A> =>
  run(fn, {
    ...options,
    ...(typeof operation === "string"
      ? { operation }
      : { timeout: operation.timeout, service: options.service ?? operation.operation }),
    policy: { ...ReliabilityConfig.defaultPolicies.default, maxAttempts: 1 }
  })

/** The standard pipeline: deadline → retry → breaker → per-attempt timeout → `fn`. */
export const protect = <A>(
  fn: (signal: AbortSignal) => Promise<A>,
  options: Options & { readonly operation: ReliabilityConfig.OperationId }
): Promise<A> => run(fn, options)
