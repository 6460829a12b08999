/**
 * Builds validated settings from flat raw values (whatever their source) through the table of
 * fields: every value is decoded by its field's decoder, every timeout clamped into the bounds
 * with a logged warning, and every value recorded with its source for `big3 config`.
 *
 * @since 0.1.0
 */
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { formatDuration } from "../Errors.js"
import type { Scalar, Source } from "./decode.js"
import * as Decode from "./decode.js"
import type { AdaptiveSettings, BreakerSettings, RetryBudget, RetryPolicy } from "./defaults.js"
import {
  adaptiveRateServices,
  defaultAdaptive,
  defaultBreakers,
  defaultBudget,
  defaultPolicies,
  defaultTimeoutBounds,
  defaultTimeouts,
  operationGroupOf
} from "./defaults.js"
import type { Field } from "./fields.js"
import {
  adaptiveFields,
  adaptiveKey,
  adaptiveRateKey,
  boundFields,
  boundKey,
  breakerFields,
  breakerKey,
  budgetFields,
  budgetKey,
  retryFields,
  retryKey,
  timeoutKey
} from "./fields.js"
import type { Flat } from "./sources.js"

/** One configured value, for `big3 config`. */
export interface Entry {
  /** The environment variable that sets it, e.g. `BIG3_TIMEOUT_GEMINI_API`. */
  readonly key: string
  /** "timeout", "retry", "breaker", "budget", "bounds", "adaptive". */
  readonly kind: "timeout" | "retry" | "breaker" | "budget" | "bounds" | "adaptive"
  /** The group or owner: the operation group, the policy or breaker name. */
  readonly group: string
  /** The operation id, policy field or breaker field. */
  readonly name: string
  /** The value as a person reads it ("45s", "3", "proportional"). */
  readonly value: string
  /** The value as a machine reads it (seconds for durations). */
  readonly raw: number | string | boolean
  readonly source: Source
}

/** Plain, validated settings. */
export interface Settings {
  readonly timeouts: ReadonlyMap<string, Duration.Duration>
  readonly timeoutBounds: { readonly min: Duration.Duration; readonly max: Duration.Duration }
  readonly policies: ReadonlyMap<string, RetryPolicy>
  readonly breakers: ReadonlyMap<string, BreakerSettings>
  readonly budget: RetryBudget
  /** Adaptive timeouts and 429 pacing (all off by default). */
  readonly adaptive: AdaptiveSettings
  /** The file named by `BIG3_CONFIG`, when one was read. */
  readonly configFile: string | undefined
  /** Every value with its source, in table order. */
  readonly entries: ReadonlyArray<Entry>
}

const seconds = (duration: Duration.Duration): number => Duration.toMillis(duration) / 1000

const show = (value: Duration.Duration | Scalar): { value: string; raw: Scalar } =>
  Duration.isDuration(value) ? { value: formatDuration(value), raw: seconds(value) } : { value: String(value), raw: value }

/**
 * Validated settings from `flat` (the sources already layered). Policies and breakers named in
 * `flat` beyond the built-in ones start from the `default` ones.
 */
export const buildSettings = (
  flat: Flat,
  configFile: string | undefined
): Effect.Effect<Settings, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const entries: Array<Entry> = []
    const read = <A extends Duration.Duration | Scalar>(
      key: string,
      fallback: A,
      field: Field<A>,
      place: Pick<Entry, "kind" | "group" | "name">
    ): Effect.Effect<A, ConfigError.ConfigError> => {
      const raw = flat.values.get(key)
      const decoded = raw === undefined ? Effect.succeed(fallback) : field.decode(key, raw)
      return Effect.tap(decoded, (value) => {
        entries.push({ key, ...place, ...show(value), source: raw?.source ?? "default" })
      })
    }
    const inSection = (kind: Entry["kind"], group: string) => (field: Field<unknown>) => ({ kind, group, name: field.name })

    const bounds = inSection("bounds", "bounds")
    const min = yield* read(boundKey(boundFields.min), Duration.seconds(defaultTimeoutBounds.min), boundFields.min, bounds(boundFields.min))
    const max = yield* read(boundKey(boundFields.max), Duration.seconds(defaultTimeoutBounds.max), boundFields.max, bounds(boundFields.max))
    if (Duration.greaterThan(min, max)) {
      return yield* Effect.fail(
        ConfigError.InvalidData(
          [boundKey(boundFields.min)],
          `${boundKey(boundFields.min)}=${formatDuration(min)} is above ${boundKey(boundFields.max)}=${formatDuration(max)}: ` +
            `expected the minimum to be at most the maximum`
        )
      )
    }
    const timeouts = new Map<string, Duration.Duration>()
    for (const [operation, defaultSeconds] of defaultTimeouts) {
      const key = timeoutKey(operation)
      const raw = flat.values.get(key)
      const given = raw === undefined ? Duration.seconds(defaultSeconds) : yield* Decode.timeout(key, raw)
      // Every timeout is clamped into the bounds, with a warning naming the key.
      const clamped = Duration.clamp(given, { minimum: min, maximum: max })
      if (!Duration.equals(clamped, given)) {
        const which = Duration.lessThan(given, min) ? "below the minimum" : "above the maximum"
        yield* Effect.logWarning(`${key}=${formatDuration(given)} is ${which} ${formatDuration(clamped)}; using ${formatDuration(clamped)}`)
      }
      timeouts.set(operation, clamped)
      entries.push({ key, kind: "timeout", group: operationGroupOf(operation), name: operation, ...show(clamped), source: raw?.source ?? "default" })
    }

    const policies = new Map<string, RetryPolicy>()
    for (const name of new Set([...Object.keys(defaultPolicies), ...flat.policies])) {
      const defaults = policies.get(name) ?? defaultPolicyOf(name)
      const field = <A extends Duration.Duration | Scalar>(f: Field<A>, fallback: A) =>
        read(retryKey(name, f.env), fallback, f, { kind: "retry", group: name, name: f.name })
      policies.set(
        name,
        yield* Effect.all({
          maxAttempts: field(retryFields.maxAttempts, defaults.maxAttempts),
          initialDelay: field(retryFields.initialDelay, defaults.initialDelay),
          factor: field(retryFields.factor, defaults.factor),
          maxDelay: field(retryFields.maxDelay, defaults.maxDelay),
          jitter: field(retryFields.jitter, defaults.jitter)
        })
      )
    }

    const breakers = new Map<string, BreakerSettings>()
    for (const name of new Set([...Object.keys(defaultBreakers), ...flat.breakers])) {
      const defaults = defaultBreakerOf(name)
      const field = <A extends Duration.Duration | Scalar>(f: Field<A>, fallback: A) =>
        read(breakerKey(name, f.env), fallback, f, { kind: "breaker", group: name, name: f.name })
      breakers.set(
        name,
        yield* Effect.all({
          mode: field(breakerFields.mode, defaults.mode),
          failureThreshold: field(breakerFields.failureThreshold, defaults.failureThreshold),
          openDuration: field(breakerFields.openDuration, defaults.openDuration),
          halfOpenMaxCalls: field(breakerFields.halfOpenMaxCalls, defaults.halfOpenMaxCalls),
          successThreshold: field(breakerFields.successThreshold, defaults.successThreshold),
          failureRatio: field(breakerFields.failureRatio, defaults.failureRatio),
          samplingWindow: field(breakerFields.samplingWindow, defaults.samplingWindow),
          minimumThroughput: field(breakerFields.minimumThroughput, defaults.minimumThroughput)
        })
      )
    }

    const budgetField = <A extends Duration.Duration | Scalar>(f: Field<A>, fallback: A) =>
      read(budgetKey(f.env), fallback, f, { kind: "budget", group: "budget", name: f.name })
    const budget = yield* Effect.all({
      enabled: budgetField(budgetFields.enabled, defaultBudget.enabled),
      ratio: budgetField(budgetFields.ratio, defaultBudget.ratio),
      window: budgetField(budgetFields.window, defaultBudget.window),
      minRetries: budgetField(budgetFields.minRetries, defaultBudget.minRetries)
    })

    const adaptive = yield* readAdaptive(flat, read, entries, min)

    return { timeouts, timeoutBounds: { min, max }, policies, breakers, budget, adaptive, configFile, entries }
  })

type Reader = <A extends Duration.Duration | Scalar>(
  key: string,
  fallback: A,
  field: Field<A>,
  place: Pick<Entry, "kind" | "group" | "name">
) => Effect.Effect<A, ConfigError.ConfigError>

const rateKeyPattern = /^BIG3_ADAPTIVE_RATE_([A-Z0-9_-]+)$/

/**
 * The adaptive settings: the global tuning fields, the operations switched on by
 * `BIG3_ADAPTIVE_<OP>` (recorded only when set, to keep `big3 config` short) and the services
 * paced by `BIG3_ADAPTIVE_RATE_<SERVICE>` (the built-in ones always recorded).
 */
const readAdaptive = (
  flat: Flat,
  read: Reader,
  entries: Array<Entry>,
  minimum: Duration.Duration
): Effect.Effect<AdaptiveSettings, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const field = <A extends Duration.Duration | Scalar>(f: Field<A>, fallback: A) =>
      read(adaptiveKey(f.env), fallback, f, { kind: "adaptive", group: "adaptive", name: f.name })
    const tuning = yield* Effect.all({
      multiplier: field(adaptiveFields.multiplier, defaultAdaptive.multiplier),
      floor: Effect.flatMap(field(adaptiveFields.floor, defaultAdaptive.floor), (floor) => floorWithin(floor, minimum, flat, entries)),
      minSamples: field(adaptiveFields.minSamples, defaultAdaptive.minSamples),
      window: field(adaptiveFields.window, defaultAdaptive.window)
    })
    const onOff = (key: string, group: string, name: string) =>
      Effect.gen(function*() {
        const raw = flat.values.get(key)
        const on = raw === undefined ? false : yield* Decode.boolean(key, raw)
        return { on, entry: { key, kind: "adaptive", group, name, value: on ? "on" : "off", raw: on, source: raw?.source ?? "default" } as const }
      })
    const operations = new Set<string>()
    for (const operation of defaultTimeouts.keys()) {
      const key = adaptiveKey(operation)
      if (!flat.values.has(key)) continue
      const { entry, on } = yield* onOff(key, "timeout", operation)
      entries.push(entry)
      if (on) operations.add(operation)
    }
    const named = Array.from(flat.values.keys(), (key) => rateKeyPattern.exec(key)?.[1]?.toLowerCase())
      .filter((name): name is string => name !== undefined)
    const rate = new Set<string>()
    for (const service of new Set([...adaptiveRateServices, ...named])) {
      const { entry, on } = yield* onOff(adaptiveRateKey(service), "rate", service)
      entries.push(entry)
      if (on) rate.add(service)
    }
    return { ...tuning, operations, rate }
  })

/**
 * A learned timeout is a timeout: it stays within BIG3_TIMEOUT_MIN as every other one does, so
 * the floor is raised to it (with a warning when the floor was given, as for a timeout).
 */
const floorWithin = (
  floor: Duration.Duration,
  minimum: Duration.Duration,
  flat: Flat,
  entries: Array<Entry>
): Effect.Effect<Duration.Duration> =>
  Effect.gen(function*() {
    if (!Duration.lessThan(floor, minimum)) return floor
    const key = adaptiveKey(adaptiveFields.floor.env)
    if (flat.values.has(key)) {
      yield* Effect.logWarning(
        `${key}=${formatDuration(floor)} is below the minimum ${formatDuration(minimum)} (${boundKey(boundFields.min)}); using ${formatDuration(minimum)}`
      )
    }
    const index = entries.findIndex((entry) => entry.key === key)
    const entry = entries[index]
    if (entry !== undefined) entries[index] = { ...entry, ...show(minimum) }
    return minimum
  })

const isPolicyName = (name: string): name is keyof typeof defaultPolicies => name in defaultPolicies
const isBreakerName = (name: string): name is keyof typeof defaultBreakers => name in defaultBreakers

/** A built-in policy's defaults; a new name starts from the `default` policy. */
export const defaultPolicyOf = (name: string): RetryPolicy =>
  isPolicyName(name) ? defaultPolicies[name] : defaultPolicies.default

/** A built-in breaker's defaults; a new name starts from the `default` breaker. */
export const defaultBreakerOf = (name: string): BreakerSettings =>
  isBreakerName(name) ? defaultBreakers[name] : defaultBreakers.default
