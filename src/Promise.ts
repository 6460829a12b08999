/**
 * The resilience pipeline for plain `async` functions, for callers that do not use Effect.
 *
 * ```ts
 * import * as Big3 from "big3/promise"
 *
 * const big3 = Big3.make() // reads BIG3_* and BIG3_CONFIG on first use; keeps its own breakers
 * const gemini = big3.protector({ operation: "gemini_api", policy: "gemini", breaker: "gemini" })
 * const answer = await gemini((signal) => fetch(url, { signal }).then(check))
 * ```
 *
 * Each function receives an `AbortSignal` that is aborted when its attempt times out, when the
 * deadline passes, or when the caller's own `signal` aborts; a function that declares no
 * parameter gets one that never aborts (it could not listen), which spares the call an
 * `AbortController`. Retries, breakers and budgets use
 * the same decision (`resilience/decision.ts`), configuration and breaker objects as the Effect
 * pipeline; `make({ config, breakers })` shares an Effect runtime's. The promise rejects with the
 * function's own last error, or with an `OperationTimeout` / `CircuitOpen`.
 *
 * The driver is Promise-native rather than a wrapper over `Resilience.makeProtect`: an attempt
 * costs a timer (and an `AbortController` when the function takes the signal), not a fiber (`npm run bench` has both).
 *
 * State lives in the instance `make` returns, never in this module: two instances (or two
 * runtimes) in one process do not see each other's breakers, and a configuration that failed to
 * load is read again on the next call. `protect`, `withRetry` and `withTimeout` at the top level
 * are one-off calls: each reads the configuration and starts with closed breakers.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as CircuitBreaker from "./CircuitBreaker.js"
import type { CallOptions, Options, PipelineOptions, Protector, Services, Task } from "./promise/driver.js"
import { build } from "./promise/driver.js"
import * as ReliabilityConfig from "./ReliabilityConfig.js"

export { classifyDefault } from "./promise/driver.js"
export type { CallOptions, Options, PipelineOptions, Protector, Task } from "./promise/driver.js"

/** An instance of the Promise API: its configuration and its breaker registry. */
export interface PromiseApi {
  /** Builds a pipeline once, for calls made many times. */
  readonly protector: (options: PipelineOptions) => Protector
  /** The standard pipeline: deadline → retry → breaker → per-attempt timeout → `fn`. */
  readonly protect: <A>(fn: Task<A>, options: Options & { readonly operation: ReliabilityConfig.OperationId }) => Promise<A>
  /** Retries `fn` with `policy` (a name or a `RetryPolicy`). */
  readonly withRetry: <A>(
    fn: Task<A>,
    policy?: string | ReliabilityConfig.RetryPolicy,
    options?: Omit<Options, "policy">
  ) => Promise<A>
  /**
   * Bounds `fn` by the timeout of `operation` (or an explicit duration); the signal given to `fn`
   * is aborted when it fires, and the promise rejects with `OperationTimeout`.
   */
  readonly withTimeout: <A>(
    fn: Task<A>,
    operation: ReliabilityConfig.OperationId | { readonly timeout: Duration.DurationInput; readonly operation?: string },
    options?: Pick<Options, "signal" | "service">
  ) => Promise<A>
}

/** What an instance is made from. */
export interface MakeOptions {
  /** The configuration; default: read from the environment and `BIG3_CONFIG` at the first call. */
  readonly config?: ReliabilityConfig.Service | undefined
  /** The breaker registry; default: one of its own. Give an Effect runtime's to share its breakers. */
  readonly breakers?: CircuitBreaker.Service | undefined
}
const registryFor = (config: ReliabilityConfig.Service): CircuitBreaker.Service =>
  Effect.runSync(Effect.provideService(CircuitBreaker.make, ReliabilityConfig.ReliabilityConfig, config))
const callOptions = (options: CallOptions): CallOptions | undefined =>
  options.signal === undefined ? undefined : { signal: options.signal }

const timeoutOptions = (
  operation: ReliabilityConfig.OperationId | { readonly timeout: Duration.DurationInput; readonly operation?: string },
  service: string | undefined
): PipelineOptions => ({
  ...(typeof operation === "string"
    ? { operation, service }
    : { timeout: operation.timeout, service: service ?? operation.operation }),
  policy: { ...ReliabilityConfig.defaultPolicies.default, maxAttempts: 1 }
})

/**
 * An instance of the Promise API. Without `config`, the configuration is read from the
 * environment and `BIG3_CONFIG` at the first call; a read that fails rejects that call and is
 * tried again at the next one.
 */
export const make = (options: MakeOptions = {}): PromiseApi => {
  let services: Services | undefined = options.config === undefined
    ? undefined
    : { config: options.config, breakers: options.breakers ?? registryFor(options.config) }
  // A failed read rejects with the `ConfigError` itself (naming the key), and is not kept.
  const load = (): Services | Promise<Services> =>
    services ?? Effect.runPromiseExit(ReliabilityConfig.load).then((exit) => {
      if (Exit.isFailure(exit)) throw Cause.squash(exit.cause)
      return services ??= { config: exit.value, breakers: options.breakers ?? registryFor(exit.value) }
    })

  const protector = (pipeline: PipelineOptions): Protector => {
    let built: Protector | undefined
    return (fn, call) => {
      if (built !== undefined) return built(fn, call)
      const ready = load()
      if (!(ready instanceof Promise)) return (built = build(ready, pipeline))(fn, call)
      return ready.then((loaded) => (built ??= build(loaded, pipeline))(fn, call))
    }
  }
  // Pipelines of plain-data options are kept, so that `protect(fn, options)` in a loop builds
  // one (its metric labels included) rather than one per call.
  const kept = new Map<string, Protector>()
  /** A field as part of a key: typed and length-prefixed, so that no two fields run together. */
  const part = (value: unknown): string | undefined => {
    if (value === undefined) return "-"
    if (typeof value === "string") return `s${value.length}:${value}`
    if (typeof value === "number" || typeof value === "boolean") return `${typeof value}:${value}`
    // A Duration or another object: its milliseconds.
    return Duration.isDuration(value) ? `d:${Duration.toMillis(value)}` : undefined
  }
  /** What a pipeline is built from. `sameFields` below reads the same fields, unrolled for the hot path. */
  const fieldsOf = (pipeline: PipelineOptions): ReadonlyArray<unknown> => [
    pipeline.operation,
    pipeline.timeout,
    pipeline.policy,
    pipeline.breaker,
    pipeline.deadline,
    pipeline.service,
    pipeline.budget,
    pipeline.retryable,
    pipeline.onRetry
  ]
  /**
   * A pipeline's key, or none when one of its fields is not plain data (a policy object, a
   * `retryable` or `onRetry` function): such a pipeline is built for its call.
   */
  const keyOf = (fields: ReadonlyArray<unknown>): string | undefined => {
    let key = ""
    for (const value of fields) {
      const text = part(value)
      if (text === undefined) return undefined
      key += text
    }
    return key
  }
  // The options object last used, with the fields its pipeline was built from: `protect(fn,
  // options)` in a loop with the same object (unchanged) skips making the key. One slot rather
  // than a WeakMap: a fresh object literal per call would add an entry each time.
  let last: { readonly pipeline: PipelineOptions; readonly fields: ReadonlyArray<unknown>; readonly built: Protector } | undefined
  const sameFields = (pipeline: PipelineOptions, fields: ReadonlyArray<unknown>): boolean =>
    pipeline.operation === fields[0] && pipeline.timeout === fields[1] && pipeline.policy === fields[2] &&
    pipeline.breaker === fields[3] && pipeline.deadline === fields[4] && pipeline.service === fields[5] &&
    pipeline.budget === fields[6] && pipeline.retryable === fields[7] && pipeline.onRetry === fields[8]
  const buildKept = (loaded: Services, pipeline: PipelineOptions): Protector => {
    const fields = fieldsOf(pipeline)
    const key = keyOf(fields)
    if (key === undefined) return build(loaded, pipeline)
    let built = kept.get(key)
    if (built === undefined) kept.set(key, built = build(loaded, pipeline))
    if (last?.pipeline !== pipeline) last = { pipeline, fields, built }
    return built
  }
  const once = <A>(fn: Task<A>, pipeline: PipelineOptions, call: CallOptions): Promise<A> => {
    if (last !== undefined && last.pipeline === pipeline && sameFields(pipeline, last.fields)) return last.built(fn, callOptions(call))
    const ready = load()
    return ready instanceof Promise
      ? ready.then((loaded) => buildKept(loaded, pipeline)(fn, callOptions(call)))
      : buildKept(ready, pipeline)(fn, callOptions(call))
  }
  return {
    protector,
    protect: (fn, options) => once(fn, options, options),
    withRetry: (fn, policy = "default", options = {}) => once(fn, { ...options, policy }, options),
    withTimeout: (fn, operation, options = {}) => once(fn, timeoutOptions(operation, options.service), options)
  }
}

/** A one-off `protect` on a fresh instance (configuration read now, breakers closed). */
export const protect = <A>(
  fn: Task<A>,
  options: Options & { readonly operation: ReliabilityConfig.OperationId }
): Promise<A> => make().protect(fn, options)

/** A one-off `withRetry` on a fresh instance. */
export const withRetry = <A>(
  fn: Task<A>,
  policy: string | ReliabilityConfig.RetryPolicy = "default",
  options: Omit<Options, "policy"> = {}
): Promise<A> => make().withRetry(fn, policy, options)

/** A one-off `withTimeout` on a fresh instance. */
export const withTimeout = <A>(
  fn: Task<A>,
  operation: ReliabilityConfig.OperationId | { readonly timeout: Duration.DurationInput; readonly operation?: string },
  options: Pick<Options, "signal" | "service"> = {}
): Promise<A> => make().withTimeout(fn, operation, options)
