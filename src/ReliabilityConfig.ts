/**
 * One typed configuration service for every timeout, retry policy, circuit breaker and retry
 * budget in big3.
 *
 * Sources, lowest to highest precedence: built-in defaults → the JSON file named by
 * `BIG3_CONFIG` → environment variables (read through the current `ConfigProvider`, so tests
 * can swap in `ConfigProvider.fromMap`). `layerWith(overrides)` replaces the file and the
 * environment with plain overrides. All three go through one table of fields
 * (`reliabilityConfig/fields.ts`) and are validated once, at layer construction; the rest of the
 * code reads plain typed data.
 *
 * @since 0.1.0
 */
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { Settings } from "./reliabilityConfig/build.js"
import { buildSettings, defaultBreakerOf, defaultPolicyOf } from "./reliabilityConfig/build.js"
import type { SettingDuration } from "./reliabilityConfig/decode.js"
import type { BreakerSettings, OperationId, RetryBudget, RetryPolicy } from "./reliabilityConfig/defaults.js"
import { defaultTimeouts } from "./reliabilityConfig/defaults.js"
import * as Sources from "./reliabilityConfig/sources.js"

export type { Entry, Settings } from "./reliabilityConfig/build.js"
export { parseDuration } from "./reliabilityConfig/decode.js"
export type { Raw, Scalar, SettingDuration, Source } from "./reliabilityConfig/decode.js"
export {
  adaptiveRateServices,
  defaultAdaptive,
  defaultBreakers,
  defaultBudget,
  defaultPolicies,
  defaultTimeoutBounds,
  defaultTimeouts,
  isOperationId,
  operationGroupOf,
  operationGroups,
  operationIds
} from "./reliabilityConfig/defaults.js"
export type {
  AdaptiveSettings,
  BreakerMode,
  BreakerName,
  BreakerSettings,
  JitterMode,
  OperationId,
  PolicyName,
  RetryBudget,
  RetryPolicy
} from "./reliabilityConfig/defaults.js"
export { adaptiveKey, adaptiveRateKey, breakerKey, budgetKey, retryKey, timeoutKey } from "./reliabilityConfig/fields.js"
export { flattenConfigFile } from "./reliabilityConfig/sources.js"

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

/** The configuration service. */
export interface Service extends Settings {
  /** The clamped timeout of an operation of the table. */
  readonly timeoutOf: (operation: OperationId) => Duration.Duration
  /** The timeout of `name`, or `fallback` (clamped) for a name outside the table. */
  readonly timeoutOrElse: (name: string, fallback: Duration.DurationInput) => Duration.Duration
  /** The named policy; an unknown name gets the `default` policy. */
  readonly policyOf: (name: string) => RetryPolicy
  /** The named breaker's settings; an unknown name gets the `default` breaker settings. */
  readonly breakerOf: (name: string) => BreakerSettings
}

/** The configuration service tag. */
export class ReliabilityConfig extends Context.Tag("big3/ReliabilityConfig")<ReliabilityConfig, Service>() {}

/** The timeout of `operation`, from config, clamped into the bounds. */
export const timeout = (operation: OperationId): Effect.Effect<Duration.Duration, never, ReliabilityConfig> =>
  Effect.map(ReliabilityConfig, (config) => config.timeoutOf(operation))

/** The timeout of `name` when it is in the table, else `fallback` clamped into the bounds. */
export const timeoutOr = (
  name: string,
  fallback: Duration.DurationInput
): Effect.Effect<Duration.Duration, never, ReliabilityConfig> =>
  Effect.map(ReliabilityConfig, (config) => config.timeoutOrElse(name, fallback))

/** The retry policy `name` (the `default` policy for an unknown name). */
export const policy = (name: string): Effect.Effect<RetryPolicy, never, ReliabilityConfig> =>
  Effect.map(ReliabilityConfig, (config) => config.policyOf(name))

/** The breaker settings of `name` (the `default` breaker for an unknown name). */
export const breaker = (name: string): Effect.Effect<BreakerSettings, never, ReliabilityConfig> =>
  Effect.map(ReliabilityConfig, (config) => config.breakerOf(name))

// ---------------------------------------------------------------------------------------------
// Building it
// ---------------------------------------------------------------------------------------------

/** Wraps validated settings as the service. */
export const fromSettings = (settings: Settings): Service => {
  const clamp = (duration: Duration.Duration) =>
    Duration.clamp(duration, { minimum: settings.timeoutBounds.min, maximum: settings.timeoutBounds.max })
  const fallbackTimeout = Duration.seconds(defaultTimeouts.get("http_request") ?? 10)
  return {
    ...settings,
    timeoutOf: (operation) => settings.timeouts.get(operation) ?? fallbackTimeout,
    timeoutOrElse: (name, fallback) => settings.timeouts.get(name) ?? clamp(Duration.decode(fallback)),
    policyOf: (name) => settings.policies.get(name) ?? defaultPolicyOf("default"),
    breakerOf: (name) => settings.breakers.get(name) ?? defaultBreakerOf("default")
  }
}

/**
 * Reads every setting from the environment (through the current `ConfigProvider`) and the
 * optional `BIG3_CONFIG` file, validated. Fails with a `ConfigError` naming the key, the value
 * and what was expected.
 */
export const load: Effect.Effect<Service, ConfigError.ConfigError> = Effect.gen(function*() {
  const configFile = yield* Sources.configFileName
  const file = configFile === undefined ? Sources.emptyFlat : yield* Sources.readConfigFile(configFile)
  const env = yield* Sources.readEnvironment
  for (const { hint, key } of yield* Sources.unknownEnvironmentKeys) {
    yield* Effect.logWarning(`${key} is not a setting big3 reads, so it is ignored${hint}`)
  }
  return fromSettings(yield* buildSettings(Sources.layered(file, env), configFile))
})

/** The configuration read from the environment and `BIG3_CONFIG`, validated once. */
export const layer: Layer.Layer<ReliabilityConfig, ConfigError.ConfigError> = Layer.effect(ReliabilityConfig, load)

/** A retry policy override. */
export type PolicyOverride = {
  readonly [K in keyof RetryPolicy]?: RetryPolicy[K] extends Duration.Duration ? SettingDuration : RetryPolicy[K]
}

/** A breaker override. */
export type BreakerOverride = {
  readonly [K in keyof BreakerSettings]?: BreakerSettings[K] extends Duration.Duration ? SettingDuration
    : BreakerSettings[K]
}

/** Plain overrides for tests and apps: anything not given keeps its default. */
export interface Overrides {
  readonly timeouts?: Partial<Record<OperationId, SettingDuration>>
  readonly timeoutBounds?: { readonly min?: SettingDuration; readonly max?: SettingDuration }
  readonly policies?: Readonly<Record<string, PolicyOverride>>
  readonly breakers?: Readonly<Record<string, BreakerOverride>>
  readonly budget?: { readonly [K in keyof RetryBudget]?: K extends "window" ? SettingDuration : RetryBudget[K] }
  readonly adaptive?: AdaptiveOverride
}

/** A switch: `true` / `"on"` or `false` / `"off"`. */
export type OnOff = boolean | "on" | "off"

/**
 * Adaptive overrides: the tuning fields, an operation id to switch its learned timeout on, and
 * `rate` to switch 429 pacing on per service, e.g.
 * `{ gemini_api: "on", minSamples: 20, rate: { gemini: "on" } }`.
 */
export type AdaptiveOverride =
  & {
    readonly multiplier?: number
    readonly floor?: SettingDuration
    readonly minSamples?: number
    readonly window?: SettingDuration
    readonly rate?: Readonly<Record<string, OnOff>>
  }
  & { readonly [K in OperationId]?: OnOff }

/**
 * Builds the service from the defaults plus plain overrides (no environment, no file). Policies
 * and breakers may name new entries, which start from the `default` ones. Durations are a
 * `Duration`, a number of seconds or a string such as "1500 millis", as in the environment.
 * Every value is validated as the environment's are: a bad one fails with a `ConfigError`
 * naming it.
 */
export const make = (overrides: Overrides = {}): Effect.Effect<Service, ConfigError.ConfigError> =>
  Effect.flatMap(Sources.flattenOverrides(overrides), (flat) =>
    Effect.map(buildSettings(flat, undefined), fromSettings))

/** A layer with the defaults plus plain overrides, for tests and apps. */
export const layerWith = (overrides: Overrides = {}): Layer.Layer<ReliabilityConfig, ConfigError.ConfigError> =>
  Layer.effect(ReliabilityConfig, make(overrides))

/** The defaults alone. */
export const layerDefault: Layer.Layer<ReliabilityConfig, ConfigError.ConfigError> = layerWith()
