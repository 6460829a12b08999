/**
 * The one table of settings: for every field of a retry policy, a breaker, the retry budget and
 * the timeout bounds, its environment name, its name in the config file and in `layerWith`
 * overrides, and its decoder. The environment, the file and the overrides are all read through
 * it, so they get the same keys and the same validation.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type { Decoder } from "./decode.js"
import * as Decode from "./decode.js"
import type { AdaptiveSettings, BreakerSettings, RetryBudget, RetryPolicy } from "./defaults.js"
import { adaptiveRateServices, defaultBreakers, defaultPolicies, defaultTimeouts } from "./defaults.js"

/** One setting of a section: `BIG3_…_<env>`, `name` in the file and in overrides. */
export interface Field<A> {
  readonly env: string
  readonly name: string
  readonly decode: Decoder<A>
}

const field = <A>(env: string, name: string, decode: Decoder<A>): Field<A> => ({ env, name, decode })

/** Each property of `S` with its field. */
export type Fields<S> = { readonly [K in keyof S]: Field<S[K]> }

const count = (expected: string, min = 1) => Decode.number({ integer: true, min, expected })

export const retryFields = {
  maxAttempts: field(
    "MAX_ATTEMPTS",
    "maxAttempts",
    Decode.number({ integer: true, min: 1, max: 1000, expected: "a whole number of attempts from 1 to 1000" })
  ),
  initialDelay: field("INITIAL_DELAY", "initialDelay", Decode.duration),
  factor: field("FACTOR", "factor", Decode.number({ integer: false, min: 1, max: 100, expected: "a growth factor from 1 to 100" })),
  maxDelay: field("MAX_DELAY", "maxDelay", Decode.duration),
  jitter: field("JITTER", "jitter", Decode.choice(["proportional", "none"] as const))
} as const satisfies Fields<RetryPolicy>

export const breakerFields = {
  mode: field("MODE", "mode", Decode.choice(["consecutive", "ratio"] as const)),
  failureThreshold: field("FAILURE_THRESHOLD", "failureThreshold", count("a whole number of failures, at least 1")),
  openDuration: field("OPEN_DURATION", "openDuration", Decode.duration),
  halfOpenMaxCalls: field("HALF_OPEN_MAX_CALLS", "halfOpenMaxCalls", count("a whole number of trial calls, at least 1")),
  successThreshold: field("SUCCESS_THRESHOLD", "successThreshold", count("a whole number of successes, at least 1")),
  failureRatio: field(
    "FAILURE_RATIO",
    "failureRatio",
    Decode.number({ integer: false, min: Number.MIN_VALUE, max: 1, expected: "a ratio above 0, at most 1" })
  ),
  samplingWindow: field("SAMPLING_WINDOW", "samplingWindow", Decode.duration),
  minimumThroughput: field("MINIMUM_THROUGHPUT", "minimumThroughput", count("a whole number of calls, at least 1"))
} as const satisfies Fields<BreakerSettings>

export const budgetFields = {
  enabled: field("ENABLED", "enabled", Decode.boolean),
  ratio: field("RATIO", "ratio", Decode.number({ integer: false, min: 0, max: 1, expected: "a share of calls from 0 to 1" })),
  window: field("WINDOW", "window", Decode.duration),
  minRetries: field("MIN_RETRIES", "minRetries", count("a whole number of retries, at least 0", 0))
} as const satisfies Fields<RetryBudget>

/** The global adaptive settings (the per-operation and per-service switches are keyed by name). */
export type AdaptiveTuning = Pick<AdaptiveSettings, "multiplier" | "floor" | "minSamples" | "window">

export const adaptiveFields = {
  multiplier: field(
    "MULTIPLIER",
    "multiplier",
    Decode.number({ integer: false, min: 1, max: 100, expected: "a multiplier of the p99 from 1 to 100" })
  ),
  floor: field("FLOOR", "floor", Decode.duration),
  minSamples: field("MIN_SAMPLES", "minSamples", count("a whole number of samples, at least 1")),
  window: field("WINDOW", "window", Decode.duration)
} as const satisfies Fields<AdaptiveTuning>

export interface Bounds {
  readonly min: Duration.Duration
  readonly max: Duration.Duration
}

export const boundFields = {
  min: field("MIN", "min", Decode.duration),
  max: field("MAX", "max", Decode.duration)
} as const satisfies Fields<Bounds>

/** The fields of a section, in table order. */
export const fieldsOf = <S>(fields: Fields<S>): ReadonlyArray<Field<unknown>> => Object.values<Field<unknown>>(fields)

/** Env-style keys. */
export const timeoutKey = (operation: string): string => `BIG3_TIMEOUT_${operation.toUpperCase()}`
export const boundKey = (bound: Field<unknown>): string => `BIG3_TIMEOUT_${bound.env}`
export const retryKey = (name: string, field: string): string => `BIG3_RETRY_${name.toUpperCase()}_${field}`
export const breakerKey = (name: string, field: string): string => `BIG3_BREAKER_${name.toUpperCase()}_${field}`
export const budgetKey = (field: string): string => `BIG3_BUDGET_${field}`
/** `BIG3_ADAPTIVE_<FIELD>` for a global field, `BIG3_ADAPTIVE_<OP>` for an operation's switch. */
export const adaptiveKey = (fieldOrOperation: string): string => `BIG3_ADAPTIVE_${fieldOrOperation.toUpperCase()}`
export const adaptiveRateKey = (service: string): string => `BIG3_ADAPTIVE_RATE_${service.toUpperCase()}`

/** Every env-style key big3 reads for the built-in names. */
export const knownKeys: ReadonlySet<string> = new Set([
  ...fieldsOf(boundFields).map(boundKey),
  ...Array.from(defaultTimeouts.keys(), timeoutKey),
  ...Object.keys(defaultPolicies).flatMap((name) => fieldsOf(retryFields).map((f) => retryKey(name, f.env))),
  ...Object.keys(defaultBreakers).flatMap((name) => fieldsOf(breakerFields).map((f) => breakerKey(name, f.env))),
  ...fieldsOf(budgetFields).map((f) => budgetKey(f.env)),
  ...fieldsOf(adaptiveFields).map((f) => adaptiveKey(f.env)),
  ...Array.from(defaultTimeouts.keys(), adaptiveKey),
  ...adaptiveRateServices.map(adaptiveRateKey)
])
