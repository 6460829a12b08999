/**
 * One typed configuration service for every timeout, retry policy, circuit breaker and retry
 * budget in big3.
 *
 * Sources, lowest to highest precedence: built-in defaults → the JSON file named by
 * `BIG3_CONFIG` → environment variables (read through the current `ConfigProvider`, so tests
 * can swap in `ConfigProvider.fromMap`). Everything is validated once, at layer construction;
 * the rest of the code reads plain typed data.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as fs from "node:fs"
import { formatDuration } from "./Errors.js"

// ---------------------------------------------------------------------------------------------
// Defaults (the design contract's tables)
// ---------------------------------------------------------------------------------------------

/** Every operation id with its default timeout in seconds, grouped as in the design. */
export const operationGroups = {
  network: {
    http_request: 10,
    http_request_short: 5,
    http_request_long: 30,
    websocket_connect: 15,
    websocket_message: 30,
    websocket_close: 5
  },
  api: { openai_api: 30, anthropic_api: 60, gemini_api: 45, groq_api: 20 },
  agent: { agent_creation: 60, agent_execution: 300, agent_cleanup: 10, operator_file_prep: 60 },
  browser: { browser_startup: 30, browser_page_load: 15, browser_automation: 120, browser_screenshot: 10 },
  "claude code": { claude_code_create: 90, claude_code_execute: 600, claude_code_cleanup: 15 },
  database: { db_query: 5, db_transaction: 10, db_connection: 3, redis_connect: 3, redis_command: 2, redis_lock: 30 },
  file: { file_read: 5, file_write: 10, file_open: 5 },
  audio: { audio_device_init: 5, audio_stream_start: 3, audio_stream_stop: 2 },
  observability: { observability_event: 2, observability_batch: 5, observability_health: 1 },
  system: {
    subprocess: 30,
    subprocess_quick: 5,
    subprocess_long: 120,
    graceful_shutdown: 10,
    thread_join: 5,
    executor_shutdown: 30
  },
  "auto prompt": { auto_prompt_default: 300, auto_prompt_response: 60 }
} as const

type Groups = typeof operationGroups
type ValuesOf<T> = T[keyof T]
/** An operation id of the design table, such as `"gemini_api"` or `"agent_creation"`. */
export type OperationId = ValuesOf<{ [G in keyof Groups]: keyof Groups[G] }>

const operationRows: ReadonlyArray<readonly [id: string, seconds: number, group: string]> = Object.entries(
  operationGroups
).flatMap(([group, operations]) =>
  Object.entries(operations).map(([id, seconds]: [string, number]) => [id, seconds, group] as const)
)

/** Default timeouts in seconds, by operation id. */
export const defaultTimeouts: ReadonlyMap<string, number> = new Map(
  operationRows.map(([id, seconds]) => [id, seconds])
)

const operationGroupOf: ReadonlyMap<string, string> = new Map(operationRows.map(([id, , group]) => [id, group]))

/** Every operation id, in table order. */
export const operationIds: ReadonlyArray<OperationId> = Array.from(defaultTimeouts.keys()).filter(isOperationId)

/** True when `name` is an operation id of the design table. */
export function isOperationId(name: string): name is OperationId {
  return defaultTimeouts.has(name)
}

/** Lower and upper bounds every timeout is clamped into, in seconds. */
export const defaultTimeoutBounds = { min: 0.1, max: 600 } as const

/** How waits between attempts are randomized. */
export type JitterMode = "proportional" | "none"

/**
 * A retry policy. `maxAttempts` counts every call including the first; the n-th retry waits
 * `min(initialDelay × factor^(n-1), maxDelay)`, scaled by a random factor in [0.8, 1.2] (still
 * capped) unless `jitter` is `"none"`.
 */
export interface RetryPolicy {
  readonly maxAttempts: number
  readonly initialDelay: Duration.Duration
  readonly factor: number
  readonly maxDelay: Duration.Duration
  readonly jitter: JitterMode
}

const makePolicy = (maxAttempts: number, initialSeconds: number): RetryPolicy => ({
  maxAttempts,
  initialDelay: Duration.seconds(initialSeconds),
  factor: 2,
  maxDelay: Duration.seconds(60),
  jitter: "proportional"
})

/** The named retry policies and their defaults. */
export const defaultPolicies = {
  default: makePolicy(3, 1),
  network: makePolicy(3, 1),
  api: makePolicy(5, 2),
  gemini: makePolicy(3, 2),
  anthropic: makePolicy(3, 2),
  observability: makePolicy(2, 0.5)
} as const satisfies Record<string, RetryPolicy>

/** A named retry policy of the design table. */
export type PolicyName = keyof typeof defaultPolicies

/** How a breaker decides to open. */
export type BreakerMode = "consecutive" | "ratio"

/**
 * Circuit breaker settings. In `consecutive` mode the breaker opens after `failureThreshold`
 * consecutive retryable failures; in `ratio` mode when at least `minimumThroughput` calls in the
 * last `samplingWindow` failed at a ratio ≥ `failureRatio`. Open lasts `openDuration`; then
 * half-open lets `halfOpenMaxCalls` trial calls through and closes after `successThreshold`
 * successes (any trial failure re-opens it).
 */
export interface BreakerSettings {
  readonly mode: BreakerMode
  readonly failureThreshold: number
  readonly openDuration: Duration.Duration
  readonly halfOpenMaxCalls: number
  readonly successThreshold: number
  readonly failureRatio: number
  readonly samplingWindow: Duration.Duration
  readonly minimumThroughput: number
}

const makeBreaker = (failureThreshold: number, openSeconds: number): BreakerSettings => ({
  mode: "consecutive",
  failureThreshold,
  openDuration: Duration.seconds(openSeconds),
  halfOpenMaxCalls: 3,
  successThreshold: 3,
  failureRatio: 0.5,
  samplingWindow: Duration.seconds(30),
  minimumThroughput: 10
})

/** The named breakers and their defaults. */
export const defaultBreakers = {
  default: makeBreaker(5, 60),
  gemini: makeBreaker(5, 60),
  observability: makeBreaker(5, 30),
  anthropic: makeBreaker(5, 60)
} as const satisfies Record<string, BreakerSettings>

/** A named breaker of the design table. */
export type BreakerName = keyof typeof defaultBreakers

/**
 * Retry budget per service (gRPC retry throttling / AWS retry quota style): retries stop when
 * recent retries exceed `ratio` of recent calls over `window`; `minRetries` are always allowed.
 */
export interface RetryBudget {
  readonly enabled: boolean
  readonly ratio: number
  readonly window: Duration.Duration
  readonly minRetries: number
}

/** The retry budget defaults: retries ≤ 20% of calls over 10 s, at least 3 always allowed. */
export const defaultBudget: RetryBudget = {
  enabled: true,
  ratio: 0.2,
  window: Duration.seconds(10),
  minRetries: 3
}

// ---------------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------------

/** Where a value came from. */
export type Source = "default" | "file" | "env" | "override"

/** One configured value, for `big3 config`. */
export interface Entry {
  /** The environment variable that sets it, e.g. `BIG3_TIMEOUT_GEMINI_API`. */
  readonly key: string
  /** "timeout", "retry", "breaker", "budget", "bounds". */
  readonly kind: "timeout" | "retry" | "breaker" | "budget" | "bounds"
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
  /** The file named by `BIG3_CONFIG`, when one was read. */
  readonly configFile: string | undefined
  /** Every value with its source, in table order. */
  readonly entries: ReadonlyArray<Entry>
}

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
// Parsing
// ---------------------------------------------------------------------------------------------

/** Env-style keys. */
export const timeoutKey = (operation: string): string => `BIG3_TIMEOUT_${operation.toUpperCase()}`
export const retryKey = (name: string, field: RetryField): string => `BIG3_RETRY_${name.toUpperCase()}_${field}`
export const breakerKey = (name: string, field: BreakerField): string =>
  `BIG3_BREAKER_${name.toUpperCase()}_${field}`
export const budgetKey = (field: BudgetField): string => `BIG3_BUDGET_${field}`

const retryFields = ["MAX_ATTEMPTS", "INITIAL_DELAY", "FACTOR", "MAX_DELAY", "JITTER"] as const
type RetryField = (typeof retryFields)[number]
const breakerFields = [
  "MODE",
  "FAILURE_THRESHOLD",
  "OPEN_DURATION",
  "HALF_OPEN_MAX_CALLS",
  "SUCCESS_THRESHOLD",
  "FAILURE_RATIO",
  "SAMPLING_WINDOW",
  "MINIMUM_THROUGHPUT"
] as const
type BreakerField = (typeof breakerFields)[number]
const budgetFields = ["ENABLED", "RATIO", "WINDOW", "MIN_RETRIES"] as const
type BudgetField = (typeof budgetFields)[number]

const boundKeys = { min: "BIG3_TIMEOUT_MIN", max: "BIG3_TIMEOUT_MAX" } as const

/** A raw value with where it came from. */
interface Raw {
  readonly value: string | number | boolean
  readonly source: Source
}

const sourceName: Record<Source, string> = {
  default: "the defaults",
  env: "the environment",
  file: "the config file",
  override: "the overrides given to layerWith"
}

const invalid = (key: string, raw: Raw, expected: string): ConfigError.ConfigError =>
  ConfigError.InvalidData(
    [key],
    `${key}=${JSON.stringify(raw.value)} (from ${sourceName[raw.source]}) ` +
      `is not valid: expected ${expected}`
  )

const durationExpectation = `a positive number of seconds (45, 0.5) or a duration such as "1500 millis" or "2 minutes"`

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
    return Number.isFinite(input) && input > 0 ? Option.some(Duration.millis(input * 1000)) : Option.none()
  }
  const text = input.trim()
  if (/^\d+(\.\d+)?$/.test(text)) return parseDuration(Number(text))
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(text)
  if (match === null) return Option.none()
  const scale = unitMillis[match[2]!.toLowerCase()]
  const amount = Number(match[1])
  return scale === undefined || !(amount > 0) ? Option.none() : Option.some(Duration.millis(amount * scale))
}

const describeBadNumber = (raw: Raw): string | undefined => {
  const text = String(raw.value).trim()
  if (text.startsWith("-")) return "it is negative"
  if (/^0+(\.0+)?(\s*[a-z]+)?$/i.test(text)) return "it is zero"
  return undefined
}

const decodeDuration = (key: string, raw: Raw): Effect.Effect<Duration.Duration, ConfigError.ConfigError> =>
  Option.match(parseDuration(raw.value), {
    onNone: () => {
      const why = describeBadNumber(raw)
      return Effect.fail(invalid(key, raw, why === undefined ? durationExpectation : `${durationExpectation}; ${why}`))
    },
    onSome: Effect.succeed
  })

const decodeNumber = (
  key: string,
  raw: Raw,
  options: { readonly integer: boolean; readonly min: number; readonly max?: number; readonly expected: string }
): Effect.Effect<number, ConfigError.ConfigError> => {
  const value = typeof raw.value === "number" ? raw.value : typeof raw.value === "string" ? Number(raw.value.trim()) : NaN
  const ok = typeof raw.value !== "string" || raw.value.trim() !== ""
  return ok && Number.isFinite(value) && (!options.integer || Number.isInteger(value)) && value >= options.min &&
      (options.max === undefined || value <= options.max)
    ? Effect.succeed(value)
    : Effect.fail(invalid(key, raw, options.expected))
}

const decodeChoice = <const A extends string>(
  key: string,
  raw: Raw,
  choices: ReadonlyArray<A>
): Effect.Effect<A, ConfigError.ConfigError> => {
  const text = String(raw.value).trim().toLowerCase()
  const found = choices.find((choice) => choice === text)
  return found === undefined
    ? Effect.fail(invalid(key, raw, `one of ${choices.map((c) => `"${c}"`).join(", ")}`))
    : Effect.succeed(found)
}

const decodeBoolean = (key: string, raw: Raw): Effect.Effect<boolean, ConfigError.ConfigError> => {
  if (typeof raw.value === "boolean") return Effect.succeed(raw.value)
  const text = String(raw.value).trim().toLowerCase()
  if (["true", "1", "yes", "on"].includes(text)) return Effect.succeed(true)
  if (["false", "0", "no", "off"].includes(text)) return Effect.succeed(false)
  return Effect.fail(invalid(key, raw, `true or false`))
}

// ---------------------------------------------------------------------------------------------
// The config file
// ---------------------------------------------------------------------------------------------

const fileError = (file: string, message: string): ConfigError.ConfigError =>
  ConfigError.InvalidData(["BIG3_CONFIG"], `BIG3_CONFIG=${file}: ${message}`)

/** camelCase or snake_case → UPPER_SNAKE. */
const upperSnake = (name: string): string => name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()

const editDistance = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
      previous = current
    }
  }
  return row[b.length]!
}

const suggest = (name: string, candidates: Iterable<string>): string => {
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase())
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3))
    ? ` (did you mean "${best}"?)`
    : ""
}

type Scalar = string | number | boolean

const isScalar = (u: unknown): u is Scalar => typeof u === "string" || typeof u === "number" || typeof u === "boolean"

/**
 * Flattens the config file into env-style keys, so the file and the environment share one
 * parser. Accepted shape (camelCase or snake_case field names):
 *
 * ```json
 * { "timeouts": { "gemini_api": 30, "agent_creation": "2 minutes" },
 *   "timeoutBounds": { "min": 0.1, "max": 600 },
 *   "retry": { "gemini": { "maxAttempts": 4, "jitter": "none" } },
 *   "breakers": { "gemini": { "failureThreshold": 5, "openDuration": 60 } },
 *   "budget": { "ratio": 0.2, "window": 10, "minRetries": 3 } }
 * ```
 *
 * Top-level operation ids and `BIG3_*` keys are accepted too. Anything else is an error that
 * names the key.
 */
export const flattenConfigFile = (
  file: string,
  json: unknown
): Effect.Effect<ReadonlyMap<string, Scalar>, ConfigError.ConfigError> =>
  Effect.suspend(() => {
    const out = new Map<string, Scalar>()
    const problems: Array<string> = []
    const put = (path: string, key: string, value: unknown) => {
      if (isScalar(value)) out.set(key, value)
      else problems.push(`"${path}" must be a number or a string, got ${JSON.stringify(value)}`)
    }
    const section = (
      path: string,
      value: unknown,
      each: (name: string, inner: unknown, innerPath: string) => void
    ) => {
      if (!Predicate.isRecord(value)) {
        problems.push(`"${path}" must be an object`)
        return
      }
      for (const [name, inner] of Object.entries(value)) each(name, inner, `${path}.${name}`)
    }
    const fields = <F extends string>(
      path: string,
      value: unknown,
      known: ReadonlyArray<F>,
      keyOf: (field: F) => string
    ) =>
      section(path, value, (name, inner, innerPath) => {
        const field = known.find((candidate) => candidate === upperSnake(name))
        if (field === undefined) {
          const camel = known.map((f) => f.toLowerCase().replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()))
          problems.push(`unknown key "${innerPath}"${suggest(name, camel)}; expected one of ${camel.join(", ")}`)
        } else put(innerPath, keyOf(field), inner)
      })
    const timeoutEntry = (name: string, inner: unknown, path: string) => {
      if (isOperationId(name)) put(path, timeoutKey(name), inner)
      else problems.push(`unknown operation id "${path}"${suggest(name, defaultTimeouts.keys())}`)
    }
    const named = (
      path: string,
      value: unknown,
      names: Iterable<string>,
      each: (name: string, inner: unknown, innerPath: string) => void
    ) =>
      section(path, value, (name, inner, innerPath) => {
        if (Array.from(names).includes(name)) each(name, inner, innerPath)
        else problems.push(`unknown name "${innerPath}"${suggest(name, names)}; expected one of ${Array.from(names).join(", ")}`)
      })

    if (!Predicate.isRecord(json)) {
      return Effect.fail(fileError(file, `expected a JSON object at the top level`))
    }
    for (const [key, value] of Object.entries(json)) {
      switch (key) {
        case "$schema":
          break
        case "timeouts":
          section("timeouts", value, timeoutEntry)
          break
        case "timeoutBounds":
        case "timeout_bounds":
          fields(key, value, ["MIN", "MAX"] as const, (field) => `BIG3_TIMEOUT_${field}`)
          break
        case "retry":
        case "retries":
        case "policies":
          named(key, value, Object.keys(defaultPolicies), (name, inner, path) =>
            fields(path, inner, retryFields, (field) => retryKey(name, field)))
          break
        case "breakers":
          named(key, value, Object.keys(defaultBreakers), (name, inner, path) =>
            fields(path, inner, breakerFields, (field) => breakerKey(name, field)))
          break
        case "budget":
        case "retryBudget":
        case "retry_budget":
          fields(key, value, budgetFields, budgetKey)
          break
        default:
          if (isOperationId(key)) put(key, timeoutKey(key), value)
          else if (knownKeys.has(key)) put(key, key, value)
          else {
            problems.push(
              `unknown key "${key}"${
                suggest(key, [...defaultTimeouts.keys(), "timeouts", "retry", "breakers", "budget", "timeoutBounds"])
              }; expected timeouts, timeoutBounds, retry, breakers, budget, an operation id or a BIG3_* name`
            )
          }
      }
    }
    return problems.length === 0 ? Effect.succeed(out) : Effect.fail(fileError(file, problems.join("; ")))
  })

const readConfigFile = (file: string): Effect.Effect<ReadonlyMap<string, Scalar>, ConfigError.ConfigError> =>
  Effect.tryPromise({
    try: () => fs.promises.readFile(file, "utf8"),
    catch: (cause) =>
      fileError(
        file,
        Predicate.hasProperty(cause, "code") && cause.code === "ENOENT"
          ? "the file does not exist"
          : `the file cannot be read (${String(cause)})`
      )
  }).pipe(
    Effect.flatMap((text) =>
      Effect.try({
        try: (): unknown => JSON.parse(text),
        catch: (cause) => fileError(file, `the file is not valid JSON (${cause instanceof Error ? cause.message : String(cause)})`)
      })
    ),
    Effect.flatMap((json) => flattenConfigFile(file, json))
  )

/** Every env-style key big3 reads. */
const knownKeys: ReadonlySet<string> = new Set([
  boundKeys.min,
  boundKeys.max,
  ...Array.from(defaultTimeouts.keys(), timeoutKey),
  ...Object.keys(defaultPolicies).flatMap((name) => retryFields.map((field) => retryKey(name, field))),
  ...Object.keys(defaultBreakers).flatMap((name) => breakerFields.map((field) => breakerKey(name, field))),
  ...budgetFields.map(budgetKey)
])

// ---------------------------------------------------------------------------------------------
// Building the settings
// ---------------------------------------------------------------------------------------------

const seconds = (duration: Duration.Duration): number => Duration.toMillis(duration) / 1000

/**
 * Builds validated settings from a lookup of raw values (env and file already merged with their
 * sources). Clamps timeouts with a logged warning naming the key.
 */
const buildSettings = (
  lookup: (key: string) => Raw | undefined,
  configFile: string | undefined
): Effect.Effect<Settings, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const entries: Array<Entry> = []
    const read = <A>(
      key: string,
      fallback: A,
      decode: (key: string, raw: Raw) => Effect.Effect<A, ConfigError.ConfigError>
    ): Effect.Effect<{ readonly value: A; readonly source: Source }, ConfigError.ConfigError> => {
      const raw = lookup(key)
      return raw === undefined
        ? Effect.succeed({ value: fallback, source: "default" })
        : Effect.map(decode(key, raw), (value) => ({ value, source: raw.source }))
    }
    const show = (value: Duration.Duration | number | string | boolean): { value: string; raw: Scalar } =>
      Duration.isDuration(value)
        ? { value: formatDuration(value), raw: seconds(value) }
        : { value: String(value), raw: value }

    // Bounds first: every timeout is clamped into them.
    const min = yield* read(boundKeys.min, Duration.seconds(defaultTimeoutBounds.min), decodeDuration)
    const max = yield* read(boundKeys.max, Duration.seconds(defaultTimeoutBounds.max), decodeDuration)
    if (Duration.greaterThan(min.value, max.value)) {
      return yield* Effect.fail(
        ConfigError.InvalidData(
          [boundKeys.min],
          `${boundKeys.min}=${formatDuration(min.value)} is above ${boundKeys.max}=${formatDuration(max.value)}: ` +
            `expected the minimum to be at most the maximum`
        )
      )
    }
    entries.push(
      { key: boundKeys.min, kind: "bounds", group: "bounds", name: "min", ...show(min.value), source: min.source },
      { key: boundKeys.max, kind: "bounds", group: "bounds", name: "max", ...show(max.value), source: max.source }
    )

    const timeouts = new Map<string, Duration.Duration>()
    for (const [operation, defaultSeconds] of defaultTimeouts) {
      const key = timeoutKey(operation)
      const read_ = yield* read(key, Duration.seconds(defaultSeconds), decodeDuration)
      let value = read_.value
      if (Duration.lessThan(value, min.value)) {
        yield* Effect.logWarning(
          `${key}=${formatDuration(value)} is below the minimum ${formatDuration(min.value)}; using ${formatDuration(min.value)}`
        )
        value = min.value
      } else if (Duration.greaterThan(value, max.value)) {
        yield* Effect.logWarning(
          `${key}=${formatDuration(value)} is above the maximum ${formatDuration(max.value)}; using ${formatDuration(max.value)}`
        )
        value = max.value
      }
      timeouts.set(operation, value)
      entries.push({
        key,
        kind: "timeout",
        group: operationGroupOf.get(operation) ?? "other",
        name: operation,
        ...show(value),
        source: read_.source
      })
    }

    const policies = new Map<string, RetryPolicy>()
    for (const [name, defaults] of Object.entries(defaultPolicies)) {
      const maxAttempts = yield* read(retryKey(name, "MAX_ATTEMPTS"), defaults.maxAttempts, (key, raw) =>
        decodeNumber(key, raw, { integer: true, min: 1, max: 1000, expected: "a whole number of attempts from 1 to 1000" }))
      const initialDelay = yield* read(retryKey(name, "INITIAL_DELAY"), defaults.initialDelay, decodeDuration)
      const factor = yield* read(retryKey(name, "FACTOR"), defaults.factor, (key, raw) =>
        decodeNumber(key, raw, { integer: false, min: 1, max: 100, expected: "a growth factor from 1 to 100" }))
      const maxDelay = yield* read(retryKey(name, "MAX_DELAY"), defaults.maxDelay, decodeDuration)
      const jitter = yield* read(
        retryKey(name, "JITTER"),
        defaults.jitter,
        (key, raw) => decodeChoice(key, raw, ["proportional", "none"] as const)
      )
      policies.set(name, {
        maxAttempts: maxAttempts.value,
        initialDelay: initialDelay.value,
        factor: factor.value,
        maxDelay: maxDelay.value,
        jitter: jitter.value
      })
      const fields = [
        ["MAX_ATTEMPTS", "maxAttempts", maxAttempts],
        ["INITIAL_DELAY", "initialDelay", initialDelay],
        ["FACTOR", "factor", factor],
        ["MAX_DELAY", "maxDelay", maxDelay],
        ["JITTER", "jitter", jitter]
      ] as const
      for (const [field, label, read_] of fields) {
        entries.push({
          key: retryKey(name, field),
          kind: "retry",
          group: name,
          name: label,
          ...show(read_.value),
          source: read_.source
        })
      }
    }

    const breakers = new Map<string, BreakerSettings>()
    for (const [name, defaults] of Object.entries(defaultBreakers)) {
      const count = (expected: string, min = 1) => (key: string, raw: Raw) =>
        decodeNumber(key, raw, { integer: true, min, expected })
      const mode = yield* read(
        breakerKey(name, "MODE"),
        defaults.mode,
        (key, raw) => decodeChoice(key, raw, ["consecutive", "ratio"] as const)
      )
      const failureThreshold = yield* read(
        breakerKey(name, "FAILURE_THRESHOLD"),
        defaults.failureThreshold,
        count("a whole number of failures, at least 1")
      )
      const openDuration = yield* read(breakerKey(name, "OPEN_DURATION"), defaults.openDuration, decodeDuration)
      const halfOpenMaxCalls = yield* read(
        breakerKey(name, "HALF_OPEN_MAX_CALLS"),
        defaults.halfOpenMaxCalls,
        count("a whole number of trial calls, at least 1")
      )
      const successThreshold = yield* read(
        breakerKey(name, "SUCCESS_THRESHOLD"),
        defaults.successThreshold,
        count("a whole number of successes, at least 1")
      )
      const failureRatio = yield* read(breakerKey(name, "FAILURE_RATIO"), defaults.failureRatio, (key, raw) =>
        decodeNumber(key, raw, { integer: false, min: Number.MIN_VALUE, max: 1, expected: "a ratio above 0, at most 1" }))
      const samplingWindow = yield* read(breakerKey(name, "SAMPLING_WINDOW"), defaults.samplingWindow, decodeDuration)
      const minimumThroughput = yield* read(
        breakerKey(name, "MINIMUM_THROUGHPUT"),
        defaults.minimumThroughput,
        count("a whole number of calls, at least 1")
      )
      breakers.set(name, {
        mode: mode.value,
        failureThreshold: failureThreshold.value,
        openDuration: openDuration.value,
        halfOpenMaxCalls: halfOpenMaxCalls.value,
        successThreshold: successThreshold.value,
        failureRatio: failureRatio.value,
        samplingWindow: samplingWindow.value,
        minimumThroughput: minimumThroughput.value
      })
      const fields = [
        ["MODE", "mode", mode],
        ["FAILURE_THRESHOLD", "failureThreshold", failureThreshold],
        ["OPEN_DURATION", "openDuration", openDuration],
        ["HALF_OPEN_MAX_CALLS", "halfOpenMaxCalls", halfOpenMaxCalls],
        ["SUCCESS_THRESHOLD", "successThreshold", successThreshold],
        ["FAILURE_RATIO", "failureRatio", failureRatio],
        ["SAMPLING_WINDOW", "samplingWindow", samplingWindow],
        ["MINIMUM_THROUGHPUT", "minimumThroughput", minimumThroughput]
      ] as const
      for (const [field, label, read_] of fields) {
        entries.push({
          key: breakerKey(name, field),
          kind: "breaker",
          group: name,
          name: label,
          ...show(read_.value),
          source: read_.source
        })
      }
    }

    const enabled = yield* read(budgetKey("ENABLED"), defaultBudget.enabled, decodeBoolean)
    const ratio = yield* read(budgetKey("RATIO"), defaultBudget.ratio, (key, raw) =>
      decodeNumber(key, raw, { integer: false, min: 0, max: 1, expected: "a share of calls from 0 to 1" }))
    const window = yield* read(budgetKey("WINDOW"), defaultBudget.window, decodeDuration)
    const minRetries = yield* read(budgetKey("MIN_RETRIES"), defaultBudget.minRetries, (key, raw) =>
      decodeNumber(key, raw, { integer: true, min: 0, expected: "a whole number of retries, at least 0" }))
    const budgetFieldsRead = [
      ["ENABLED", "enabled", enabled],
      ["RATIO", "ratio", ratio],
      ["WINDOW", "window", window],
      ["MIN_RETRIES", "minRetries", minRetries]
    ] as const
    for (const [field, label, read_] of budgetFieldsRead) {
      entries.push({
        key: budgetKey(field),
        kind: "budget",
        group: "budget",
        name: label,
        ...show(read_.value),
        source: read_.source
      })
    }

    return {
      timeouts,
      timeoutBounds: { min: min.value, max: max.value },
      policies,
      breakers,
      budget: { enabled: enabled.value, ratio: ratio.value, window: window.value, minRetries: minRetries.value },
      configFile,
      entries
    }
  })

/** Wraps validated settings as the service. */
export const fromSettings = (settings: Settings): Service => {
  const clamp = (duration: Duration.Duration) =>
    Duration.clamp(duration, { minimum: settings.timeoutBounds.min, maximum: settings.timeoutBounds.max })
  const fallbackTimeout = Duration.seconds(defaultTimeouts.get("http_request") ?? 10)
  return {
    ...settings,
    timeoutOf: (operation) => settings.timeouts.get(operation) ?? fallbackTimeout,
    timeoutOrElse: (name, fallback) => settings.timeouts.get(name) ?? clamp(Duration.decode(fallback)),
    policyOf: (name) => settings.policies.get(name) ?? defaultPolicies.default,
    breakerOf: (name) => settings.breakers.get(name) ?? defaultBreakers.default
  }
}

/**
 * Reads every setting from the environment (through the current `ConfigProvider`) and the
 * optional `BIG3_CONFIG` file, validated. Fails with a `ConfigError` naming the key, the value
 * and what was expected.
 */
export const load: Effect.Effect<Service, ConfigError.ConfigError> = Effect.gen(function*() {
  const configFile = yield* Config.option(Config.string("BIG3_CONFIG"))
  const fileValues = Option.isSome(configFile) && configFile.value.trim() !== ""
    ? yield* readConfigFile(configFile.value.trim())
    : new Map<string, Scalar>()
  const envValues = new Map<string, string>()
  for (const key of knownKeys) {
    const value = yield* Config.option(Config.string(key))
    if (Option.isSome(value)) envValues.set(key, value.value)
  }
  const lookup = (key: string): Raw | undefined => {
    const env = envValues.get(key)
    if (env !== undefined) return { value: env, source: "env" }
    const file = fileValues.get(key)
    return file === undefined ? undefined : { value: file, source: "file" }
  }
  const settings = yield* buildSettings(lookup, Option.getOrUndefined(configFile))
  return fromSettings(settings)
})

/** The configuration read from the environment and `BIG3_CONFIG`, validated once. */
export const layer: Layer.Layer<ReliabilityConfig, ConfigError.ConfigError> = Layer.effect(ReliabilityConfig, load)

/**
 * A duration in an override: a `Duration`, a number of seconds (as in the environment and the
 * config file), or a string such as "1500 millis" or "30s".
 */
export type SettingDuration = Duration.Duration | number | string

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
}

const overrideDuration = (
  key: string,
  input: SettingDuration | undefined,
  fallback: Duration.Duration
): Effect.Effect<Duration.Duration, ConfigError.ConfigError> =>
  input === undefined
    ? Effect.succeed(fallback)
    : Duration.isDuration(input)
    ? Effect.succeed(input)
    : decodeDuration(key, { value: input, source: "override" })

/**
 * Builds the service from the defaults plus plain overrides (no environment, no file). Policies
 * and breakers may name new entries, which start from the `default` ones. A bad value fails with
 * a `ConfigError` naming it, as from the environment.
 */
export const make = (overrides: Overrides = {}): Effect.Effect<Service, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const base = yield* buildSettings(() => undefined, undefined)
    const min = yield* overrideDuration(boundKeys.min, overrides.timeoutBounds?.min, base.timeoutBounds.min)
    const max = yield* overrideDuration(boundKeys.max, overrides.timeoutBounds?.max, base.timeoutBounds.max)
    const timeouts = new Map(base.timeouts)
    for (const [operation, value] of Object.entries(overrides.timeouts ?? {})) {
      const timeout = yield* overrideDuration(timeoutKey(operation), value, base.timeouts.get(operation) ?? min)
      timeouts.set(operation, Duration.clamp(timeout, { minimum: min, maximum: max }))
    }
    const policies = new Map(base.policies)
    for (const [name, value] of Object.entries(overrides.policies ?? {})) {
      const defaults = policies.get(name) ?? defaultPolicies.default
      policies.set(name, {
        maxAttempts: value.maxAttempts ?? defaults.maxAttempts,
        initialDelay: yield* overrideDuration(retryKey(name, "INITIAL_DELAY"), value.initialDelay, defaults.initialDelay),
        factor: value.factor ?? defaults.factor,
        maxDelay: yield* overrideDuration(retryKey(name, "MAX_DELAY"), value.maxDelay, defaults.maxDelay),
        jitter: value.jitter ?? defaults.jitter
      })
    }
    const breakers = new Map(base.breakers)
    for (const [name, value] of Object.entries(overrides.breakers ?? {})) {
      const defaults = breakers.get(name) ?? defaultBreakers.default
      breakers.set(name, {
        mode: value.mode ?? defaults.mode,
        failureThreshold: value.failureThreshold ?? defaults.failureThreshold,
        openDuration: yield* overrideDuration(breakerKey(name, "OPEN_DURATION"), value.openDuration, defaults.openDuration),
        halfOpenMaxCalls: value.halfOpenMaxCalls ?? defaults.halfOpenMaxCalls,
        successThreshold: value.successThreshold ?? defaults.successThreshold,
        failureRatio: value.failureRatio ?? defaults.failureRatio,
        samplingWindow: yield* overrideDuration(
          breakerKey(name, "SAMPLING_WINDOW"),
          value.samplingWindow,
          defaults.samplingWindow
        ),
        minimumThroughput: value.minimumThroughput ?? defaults.minimumThroughput
      })
    }
    const window = yield* overrideDuration(budgetKey("WINDOW"), overrides.budget?.window, base.budget.window)
    return fromSettings({
      ...base,
      timeouts,
      timeoutBounds: { min, max },
      policies,
      breakers,
      budget: {
        enabled: overrides.budget?.enabled ?? base.budget.enabled,
        ratio: overrides.budget?.ratio ?? base.budget.ratio,
        window,
        minRetries: overrides.budget?.minRetries ?? base.budget.minRetries
      }
    })
  })

/** A layer with the defaults plus plain overrides, for tests and apps. */
export const layerWith = (overrides: Overrides = {}): Layer.Layer<ReliabilityConfig, ConfigError.ConfigError> =>
  Layer.effect(ReliabilityConfig, make(overrides))

/** The defaults alone. */
export const layerDefault: Layer.Layer<ReliabilityConfig, ConfigError.ConfigError> = layerWith()
