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
import { groupDigits } from "../internal/preview.js"

/** One setting of a section: `BIG3_…_<env>`, `name` in the file and in overrides. */
export interface Field<A> {
  readonly env: string
  readonly name: string
  readonly decode: Decoder<A>
  /** What it accepts, bounds included, as the configuration reference states it. */
  readonly accepts: string
}

const field = <A>(env: string, name: string, decode: Decoder<A>, accepts: string): Field<A> => ({
  env,
  name,
  decode,
  accepts
})

/** Each property of `S` with its field. */
export type Fields<S> = { readonly [K in keyof S]: Field<S[K]> }

/** A bounded number field: every number big3 reads has both bounds. */
const numberField = (
  env: string,
  name: string,
  options: { readonly integer: boolean; readonly min: number; readonly max: number; readonly expected: string }
): Field<number> => field(env, name, Decode.number(options), options.expected)

const whole = (env: string, name: string, what: string, min: number, max: number) =>
  numberField(env, name, {
    integer: true,
    min,
    max,
    expected: `a whole number of ${what} from ${min} to ${max < 10_000 ? max : groupDigits(max)}`
  })

const durationField = (env: string, name: string) =>
  field(env, name, Decode.duration, `a duration above 0, at most ${Decode.maxDurationText}`)

export const retryFields = {
  maxAttempts: whole("MAX_ATTEMPTS", "maxAttempts", "attempts", 1, 1000),
  initialDelay: durationField("INITIAL_DELAY", "initialDelay"),
  factor: numberField("FACTOR", "factor", { integer: false, min: 1, max: 100, expected: "a growth factor from 1 to 100" }),
  maxDelay: durationField("MAX_DELAY", "maxDelay"),
  jitter: field("JITTER", "jitter", Decode.choice(["proportional", "none"] as const), "`proportional` or `none`")
} as const satisfies Fields<RetryPolicy>

export const breakerFields = {
  mode: field("MODE", "mode", Decode.choice(["consecutive", "ratio"] as const), "`consecutive` or `ratio`"),
  failureThreshold: whole("FAILURE_THRESHOLD", "failureThreshold", "failures", 1, 1_000_000),
  openDuration: durationField("OPEN_DURATION", "openDuration"),
  halfOpenMaxCalls: whole("HALF_OPEN_MAX_CALLS", "halfOpenMaxCalls", "trial calls", 1, 1_000_000),
  successThreshold: whole("SUCCESS_THRESHOLD", "successThreshold", "successes", 1, 1_000_000),
  failureRatio: numberField("FAILURE_RATIO", "failureRatio", {
    integer: false,
    min: Number.MIN_VALUE,
    max: 1,
    expected: "a ratio above 0, at most 1"
  }),
  samplingWindow: durationField("SAMPLING_WINDOW", "samplingWindow"),
  minimumThroughput: whole("MINIMUM_THROUGHPUT", "minimumThroughput", "calls", 1, 1_000_000)
} as const satisfies Fields<BreakerSettings>

export const budgetFields = {
  enabled: field("ENABLED", "enabled", Decode.boolean, "`true` or `false`"),
  ratio: numberField("RATIO", "ratio", { integer: false, min: 0, max: 1, expected: "a share of calls from 0 to 1" }),
  window: durationField("WINDOW", "window"),
  minRetries: whole("MIN_RETRIES", "minRetries", "retries", 0, 1_000_000)
} as const satisfies Fields<RetryBudget>

/** The global adaptive settings (the per-operation and per-service switches are keyed by name). */
export type AdaptiveTuning = Pick<AdaptiveSettings, "multiplier" | "floor" | "minSamples" | "window">

export const adaptiveFields = {
  multiplier: numberField("MULTIPLIER", "multiplier", {
    integer: false,
    min: 1,
    max: 100,
    expected: "a multiplier of the p99 from 1 to 100"
  }),
  floor: durationField("FLOOR", "floor"),
  minSamples: whole("MIN_SAMPLES", "minSamples", "samples", 1, 1_000_000),
  window: durationField("WINDOW", "window")
} as const satisfies Fields<AdaptiveTuning>

export interface Bounds {
  readonly min: Duration.Duration
  readonly max: Duration.Duration
}

export const boundFields = {
  min: durationField("MIN", "min"),
  max: durationField("MAX", "max")
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
