/**
 * Decoders of raw configuration values (a string from the environment, a JSON scalar from the
 * file, a value given to `layerWith`): one per kind of setting, each failing with a
 * `ConfigError` that names the key, the value, where it came from and what is expected.
 *
 * @since 0.1.0
 */
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { isOtherNotation, parseDecimal } from "../internal/numberSetting.js"
import { preview } from "../internal/preview.js"
import { MAX_TIMER_MILLIS } from "../internal/timer.js"

/** Where a value came from. */
export type Source = "default" | "file" | "env" | "override"

/** A value as a JSON file or the environment gives it. */
export type Scalar = string | number | boolean

/** A raw value with where it came from. Overrides may give a `Duration` itself. */
export interface Raw {
  readonly value: Scalar | Duration.Duration
  readonly source: Source
}

/** Reads one setting: the key names it in errors. */
export type Decoder<A> = (key: string, raw: Raw) => Effect.Effect<A, ConfigError.ConfigError>

const sourceName: Record<Source, string> = {
  default: "the defaults",
  env: "the environment",
  file: "the config file",
  override: "the overrides given to layerWith"
}

/** The value for a message: cut short when long (a 10 MB value is not echoed whole). */
const show = (value: Scalar | Duration.Duration): string =>
  Duration.isDuration(value) ? JSON.stringify(Duration.format(value)) : preview(value)

export const invalid = (key: string, raw: Raw, expected: string): ConfigError.ConfigError =>
  ConfigError.InvalidData(
    [key],
    `${key}=${show(raw.value)} (from ${sourceName[raw.source]}) is not valid: expected ${expected}`
  )

const durationExpectation = `a positive number of seconds (45, 0.5) or a duration such as "1500 millis" or "2 minutes"`

/**
 * The longest duration a setting may hold: the longest wait a timer can take (2^31 - 1 ms, about
 * 24.8 days). Node fires a longer `setTimeout` after 1 ms and Effect's live `Clock` never fires
 * it, so a longer wait, timeout or window could only misbehave.
 */
export const maxDuration: Duration.Duration = Duration.millis(MAX_TIMER_MILLIS)

/** "24.8 days" (rounded down, so that it is a true bound): how documents and messages name `maxDuration`. */
export const maxDurationText = `${Math.floor(MAX_TIMER_MILLIS / 8_640_000) / 10} days`

const unitMillis: Record<string, number> = {
  ns: 1e-6,
  nano: 1e-6,
  nanos: 1e-6,
  us: 1e-3,
  micro: 1e-3,
  micros: 1e-3,
  ms: 1,
  milli: 1,
  millis: 1,
  s: 1000,
  sec: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  day: 86_400_000,
  days: 86_400_000,
  week: 604_800_000,
  weeks: 604_800_000
}

/**
 * Parses a positive duration: a plain number is seconds; otherwise an Effect duration string
 * ("1500 millis", "2 minutes") or a compact one ("1500ms", "30s").
 */
export const parseDuration = (input: string | number | boolean): Option.Option<Duration.Duration> => {
  if (typeof input === "boolean") return Option.none()
  if (typeof input === "number") {
    return Number.isFinite(input * 1000) && input > 0 ? Option.some(Duration.millis(input * 1000)) : Option.none()
  }
  const text = input.trim()
  const seconds = parseDecimal(text, false)
  if (seconds !== undefined) return parseDuration(seconds)
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(text)
  if (match === null) return Option.none()
  const scale = unitMillis[match[2]!.toLowerCase()]
  const amount = Number(match[1])
  return scale === undefined || !(amount > 0) || !Number.isFinite(amount * scale)
    ? Option.none()
    : Option.some(Duration.millis(amount * scale))
}

const whyBad = (value: Scalar | Duration.Duration): string | undefined => {
  if (Duration.isDuration(value)) {
    if (!Duration.isFinite(value)) return "it is infinite"
    return Duration.toMillis(value) <= 0 ? "it is zero" : undefined
  }
  const text = String(value).trim()
  if (text.startsWith("-")) return "it is negative"
  if (/^0+(\.0+)?(\s*[a-z]+)?$/i.test(text)) return "it is zero"
  return undefined
}

const parsedDuration = (value: Scalar | Duration.Duration): Option.Option<Duration.Duration> =>
  Duration.isDuration(value)
    ? Option.some(value).pipe(Option.filter((given) => Duration.isFinite(given) && Duration.toMillis(given) > 0))
    : parseDuration(value)

const failDuration = (key: string, raw: Raw, why: string | undefined) =>
  Effect.fail(invalid(key, raw, why === undefined ? durationExpectation : `${durationExpectation}; ${why}`))

/**
 * A positive duration of at most `maxDuration` (24.8 days): seconds as a number, a duration
 * string, or a `Duration`.
 */
export const duration: Decoder<Duration.Duration> = (key, raw) => {
  const parsed = parsedDuration(raw.value)
  if (Option.isNone(parsed)) return failDuration(key, raw, whyBad(raw.value))
  return Duration.lessThanOrEqualTo(parsed.value, maxDuration)
    ? Effect.succeed(parsed.value)
    : failDuration(key, raw, `it is longer than ${maxDurationText}, the longest wait a timer can take`)
}

/**
 * A timeout: a positive, finite duration with no upper limit of its own, since every timeout is
 * then clamped into [`BIG3_TIMEOUT_MIN`, `BIG3_TIMEOUT_MAX`] (which are `duration`s).
 */
export const timeout: Decoder<Duration.Duration> = (key, raw) => {
  const parsed = parsedDuration(raw.value)
  return Option.isSome(parsed) ? Effect.succeed(parsed.value) : failDuration(key, raw, whyBad(raw.value))
}

/** A number in [min, max] (whole when `integer`), described as `expected` in errors. */
export const number = (options: {
  readonly integer: boolean
  readonly min: number
  readonly max: number
  readonly expected: string
}): Decoder<number> =>
(key, raw) => {
  let value = NaN
  if (typeof raw.value === "number") value = raw.value
  else if (typeof raw.value === "string") {
    // Plain decimal digits only: `Number` also reads `0x10`, `1e3` and `Infinity`.
    const parsed = parseDecimal(raw.value, options.integer)
    if (parsed === undefined) {
      return Effect.fail(
        invalid(key, raw, isOtherNotation(raw.value) ? `${options.expected}, written in plain decimal digits` : options.expected)
      )
    }
    value = parsed
  }
  return Number.isFinite(value) && (!options.integer || Number.isInteger(value)) && value >= options.min &&
      value <= options.max
    ? Effect.succeed(value)
    : Effect.fail(invalid(key, raw, options.expected))
}

/** One of `choices`, case-insensitive. */
export const choice = <const A extends string>(choices: ReadonlyArray<A>): Decoder<A> => (key, raw) => {
  const text = typeof raw.value === "string" ? raw.value.trim().toLowerCase() : undefined
  const found = choices.find((option) => option === text)
  return found === undefined
    ? Effect.fail(invalid(key, raw, `one of ${choices.map((option) => `"${option}"`).join(", ")}`))
    : Effect.succeed(found)
}

/** `true` / `false` (also `1` / `0`, `yes` / `no`, `on` / `off`). */
export const boolean: Decoder<boolean> = (key, raw) => {
  if (typeof raw.value === "boolean") return Effect.succeed(raw.value)
  const text = typeof raw.value === "string" || typeof raw.value === "number" ? String(raw.value).trim().toLowerCase() : ""
  if (["true", "1", "yes", "on"].includes(text)) return Effect.succeed(true)
  if (["false", "0", "no", "off"].includes(text)) return Effect.succeed(false)
  return Effect.fail(invalid(key, raw, `true or false`))
}

/**
 * A duration in an override: a `Duration`, a number of seconds (as in the environment and the
 * config file), or a string such as "1500 millis" or "30s".
 */
export type SettingDuration = Duration.Duration | number | string
