/**
 * Settings of the observability client, from plain options (`layerWith`) or from `Config`
 * (`layer`: the environment, or `ConfigProvider.fromMap` in tests).
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { wholeNumberSetting } from "../internal/numberSetting.js"
import { preview } from "../internal/preview.js"
import { hasCredentials, redactLoosely, redactUrl } from "../internal/redactUrl.js"
import { httpUrl, urlSetting, withoutQuery } from "../internal/urlSetting.js"
import { maxDuration, maxDurationText, parseDuration } from "../reliabilityConfig/decode.js"

/** `"single"`: one `POST /events` per event, `concurrency` in flight (works with the public server). `"batch"`: `POST /events/batch`. */
export type Mode = "single" | "batch"

/** `"undici"`: a raw undici `Pool` (the fast path). `"http-client"`: the `HttpClient` from the context. */
export type TransportKind = "undici" | "http-client"

/** Plain options; anything omitted takes its default. */
export interface Options {
  /** The events URL; default `http://localhost:4000/events`. The batch URL is `<url>/batch`. */
  readonly url?: string | undefined
  /** Sent as `X-API-Key`; never logged. */
  readonly apiKey?: Redacted.Redacted<string> | string | undefined
  /** Default `"single"`. */
  readonly mode?: Mode | undefined
  /** Events per batch (batch mode), and per spool redelivery request; default 500. */
  readonly batchSize?: number | undefined
  /** How long a batch waits to fill up (batch mode); default 5 ms. */
  readonly linger?: Duration.DurationInput | undefined
  /** Requests in flight; default 64 in single mode, 4 in batch mode. */
  readonly concurrency?: number | undefined
  /** Events held in memory; beyond it `emit` spools; default 100,000. */
  readonly queueCapacity?: number | undefined
  /**
   * Durable by default: every event still in memory reaches the spool in a group commit (every
   * `commitInterval` or `commitEvents` events, whichever first) and is deleted once delivered,
   * so a crash loses at most the last commit window. `false`: events are spooled only when they
   * cannot be delivered (a crash loses what is in memory).
   */
  readonly durable?: boolean | undefined
  /** The longest an event waits in memory for its group commit; default 5 ms. */
  readonly commitInterval?: Duration.DurationInput | undefined
  /** A group commit starts as soon as this many events wait for it; default 500. */
  readonly commitEvents?: number | undefined
  /** How long a process's claim on spool rows lasts without renewal (renewed every third of it); default 30 s. */
  readonly lease?: Duration.DurationInput | undefined
  /** The spool's bound (rows and/or bytes of event JSON); past it the oldest unclaimed rows are evicted, counted and logged. Default: none. */
  readonly spoolMax?: { readonly rows?: number | undefined; readonly bytes?: number | undefined } | undefined
  /** The name of `durable` before it became the default (`true` is the default now). */
  readonly writeAhead?: boolean | undefined
  /** Default `"undici"`. */
  readonly transport?: TransportKind | undefined
  /** Spool rows read per redelivery pass; default 1,000. */
  readonly spoolPageSize?: number | undefined
  /** Wait before the next redelivery pass after one that made no progress (also the poll while the breaker is open); default 1 s. */
  readonly redeliveryInterval?: Duration.DurationInput | undefined
}

/** Validated settings. */
export interface Settings {
  readonly url: URL
  readonly batchUrl: URL
  readonly apiKey: Option.Option<Redacted.Redacted<string>>
  readonly mode: Mode
  readonly batchSize: number
  readonly linger: Duration.Duration
  readonly concurrency: number
  readonly queueCapacity: number
  readonly durable: boolean
  readonly commitInterval: Duration.Duration
  readonly commitEvents: number
  readonly lease: Duration.Duration
  readonly spoolMax: { readonly rows: number | undefined; readonly bytes: number | undefined }
  readonly transport: TransportKind
  readonly spoolPageSize: number
  readonly redeliveryInterval: Duration.Duration
}

export const defaultUrl = "http://localhost:4000/events"
export const defaults = {
  mode: "single" as Mode,
  batchSize: 500,
  linger: Duration.millis(5),
  singleConcurrency: 64,
  batchConcurrency: 4,
  queueCapacity: 100_000,
  durable: true,
  commitInterval: Duration.millis(5),
  commitEvents: 500,
  lease: Duration.seconds(30),
  transport: "undici" as TransportKind,
  spoolPageSize: 1_000,
  redeliveryInterval: Duration.seconds(1)
} as const

/** The batch route next to an events URL: `http://host:4000/events` → `http://host:4000/events/batch`. */
export const batchUrlOf = (url: URL): URL => {
  const batch = new URL(url.href)
  batch.pathname = `${url.pathname.replace(/\/+$/, "")}/batch`
  return batch
}

const parseUrl = (value: string): URL | undefined => {
  try {
    const url = new URL(value.trim())
    return url.protocol === "http:" || url.protocol === "https:" ? url : undefined
  } catch {
    return undefined
  }
}

/** The environment variable behind each option that has one, so that an error names what to fix. */
const variables: Partial<Record<string, string>> = {
  url: "OBSERVABILITY_SERVER_URL",
  batchSize: "BIG3_EVENTS_BATCH_SIZE",
  linger: "BIG3_EVENTS_LINGER",
  concurrency: "BIG3_EVENTS_CONCURRENCY",
  queueCapacity: "BIG3_EVENTS_QUEUE_CAPACITY",
  commitInterval: "BIG3_EVENTS_COMMIT_INTERVAL",
  commitEvents: "BIG3_EVENTS_COMMIT_EVENTS",
  lease: "BIG3_EVENTS_LEASE",
  "spoolMax.rows": "BIG3_EVENTS_SPOOL_MAX",
  "spoolMax.bytes": "BIG3_EVENTS_SPOOL_MAX",
  spoolPageSize: "BIG3_EVENTS_SPOOL_PAGE_SIZE",
  redeliveryInterval: "BIG3_EVENTS_REDELIVERY_INTERVAL"
}

const invalidOption = (name: string, message: string): ConfigError.ConfigError => {
  const variable = variables[name]
  return ConfigError.InvalidData([name], `${name}${variable === undefined ? "" : ` (${variable})`} ${message}`)
}

const wholeNumber = (
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number
): Effect.Effect<number, ConfigError.ConfigError> =>
  value === undefined
    ? Effect.succeed(fallback)
    : Number.isInteger(value) && value >= min && value <= max
    ? Effect.succeed(value)
    : Effect.fail(invalidOption(name, `must be a whole number from ${min} to ${max}, got ${value}`))

const showDuration = (value: Duration.DurationInput): string =>
  Duration.isDuration(value) ? Duration.format(value) : JSON.stringify(value)

/** A duration from zero to 24.8 days: a longer sleep on Effect's live clock never ends. */
const durationOption = (
  name: string,
  value: Duration.DurationInput | undefined,
  fallback: Duration.Duration
): Effect.Effect<Duration.Duration, ConfigError.ConfigError> =>
  value === undefined ? Effect.succeed(fallback) : Effect.try({
    try: () => Duration.decode(value),
    catch: () => invalidOption(name, `must be a duration such as "5 millis", got ${showDuration(value)}`)
  }).pipe(
    Effect.filterOrFail(
      (duration) => Duration.toMillis(duration) >= 0 && Duration.lessThanOrEqualTo(duration, maxDuration),
      () =>
        invalidOption(
          name,
          `must be a duration from zero to ${maxDurationText} (the longest wait a timer can take), got ${showDuration(value)}`
        )
    )
  )

/**
 * Validates plain options. A value out of range fails with a `ConfigError` naming the option,
 * the value and what is expected.
 */
export const resolve = (options: Options = {}): Effect.Effect<Settings, ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const url = parseUrl(options.url ?? defaultUrl)
    if (url === undefined) {
      const shown = options.url === undefined ? "undefined" : preview(redactLoosely(options.url))
      return yield* Effect.fail(invalidOption("url", `must be an http(s) URL such as ${defaultUrl}, got ${shown}`))
    }
    // Refused, not sent: the server is reached with the API key, and its URL is shown in errors and the spool.
    if (hasCredentials(url)) {
      return yield* Effect.fail(
        invalidOption("url", `must not carry credentials (user:password@), got ${preview(redactUrl(url.href))}`)
      )
    }
    if (url.search !== "" || url.hash !== "") {
      return yield* Effect.fail(
        invalidOption(
          "url",
          `must not carry a query or fragment (big3 adds /batch to it, and a key there would show in errors and ` +
            `the spool), got ${preview(withoutQuery(url))}`
        )
      )
    }
    const mode = options.mode ?? defaults.mode
    const apiKey = options.apiKey === undefined
      ? Option.none()
      : Option.some(Redacted.isRedacted(options.apiKey) ? options.apiKey : Redacted.make(options.apiKey)).pipe(
        Option.filter((key) => Redacted.value(key).trim() !== "")
      )
    return {
      url,
      batchUrl: batchUrlOf(url),
      apiKey,
      mode,
      batchSize: yield* wholeNumber("batchSize", options.batchSize, defaults.batchSize, 1, 100_000),
      linger: yield* durationOption("linger", options.linger, defaults.linger),
      concurrency: yield* wholeNumber(
        "concurrency",
        options.concurrency,
        mode === "batch" ? defaults.batchConcurrency : defaults.singleConcurrency,
        1,
        4_096
      ),
      queueCapacity: yield* wholeNumber("queueCapacity", options.queueCapacity, defaults.queueCapacity, 1, 100_000_000),
      durable: options.durable ?? options.writeAhead ?? defaults.durable,
      commitInterval: yield* durationOption("commitInterval", options.commitInterval, defaults.commitInterval),
      commitEvents: yield* wholeNumber("commitEvents", options.commitEvents, defaults.commitEvents, 1, 100_000),
      lease: yield* durationOption("lease", options.lease, defaults.lease).pipe(
        Effect.filterOrFail(
          (lease) => Duration.toMillis(lease) >= 1_000,
          () => invalidOption("lease", `must be at least 1 second, got ${showDuration(options.lease ?? defaults.lease)}`)
        )
      ),
      spoolMax: {
        rows: options.spoolMax?.rows === undefined
          ? undefined
          : yield* wholeNumber("spoolMax.rows", options.spoolMax.rows, 0, 1, Number.MAX_SAFE_INTEGER),
        bytes: options.spoolMax?.bytes === undefined
          ? undefined
          : yield* wholeNumber("spoolMax.bytes", options.spoolMax.bytes, 0, 1, Number.MAX_SAFE_INTEGER)
      },
      transport: options.transport ?? defaults.transport,
      spoolPageSize: yield* wholeNumber("spoolPageSize", options.spoolPageSize, defaults.spoolPageSize, 1, 100_000),
      redeliveryInterval: yield* durationOption("redeliveryInterval", options.redeliveryInterval, defaults.redeliveryInterval)
    }
  })

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

// Plain decimal digits within the bounds: `Config.integer` also reads `0x10` and `1e3`.
const int = wholeNumberSetting

const ok = <A>(value: A): Either.Either<A, ConfigError.ConfigError> => Either.right(value)
const fail = (name: string, value: string, expected: string): Either.Either<never, ConfigError.ConfigError> =>
  Either.left(ConfigError.InvalidData([name], `${name}=${JSON.stringify(value)} is not valid: expected ${expected}`))

const units: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30
}

/**
 * `BIG3_EVENTS_SPOOL_MAX`: a whole number of rows, a size with a unit (B, KB, MB, GB, KiB, MiB,
 * GiB), or one of each separated by a comma. `undefined` when it is none of these.
 */
export const parseSpoolMax = (text: string): { rows?: number; bytes?: number } | undefined => {
  const result: { rows?: number; bytes?: number } = {}
  const parts = text.split(",").map((part) => part.trim())
  if (parts.length > 2) return undefined
  for (const part of parts) {
    const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(part)
    if (match === null) return undefined
    const value = Number(match[1])
    const unit = match[2]!.toLowerCase()
    if (unit === "" || unit === "rows") {
      if (!Number.isSafeInteger(value) || value < 1 || result.rows !== undefined) return undefined
      result.rows = value
    } else {
      const scale = units[unit]
      const bytes = scale === undefined ? NaN : Math.floor(value * scale)
      if (!Number.isSafeInteger(bytes) || bytes < 1 || result.bytes !== undefined) return undefined
      result.bytes = bytes
    }
  }
  return result
}

/**
 * An optional setting read by `parse`. The option comes first: a `mapOrFail` right on
 * `Config.string(name)` names the key twice in its error ("KEY.KEY").
 */
const optional = <A>(name: string, parse: (text: string) => Either.Either<A, ConfigError.ConfigError>) =>
  Config.string(name).pipe(
    Config.option,
    Config.mapOrFail((text) => Option.match(text, { onNone: () => ok(undefined), onSome: parse }))
  )

/**
 * A duration as the rest of big3 reads them: seconds (`0.005`), or `"5 millis"`; `0` allowed, 24.8
 * days at most.
 */
const duration = (name: string) =>
  optional(name, (text) => {
    const trimmed = text.trim()
    if (/^0+(\.0+)?(\s*[a-z]+)?$/i.test(trimmed)) return ok(Duration.zero)
    return Option.match(parseDuration(trimmed), {
      onNone: () => fail(name, text, `a number of seconds (0.005) or a duration such as "5 millis"`),
      onSome: (value) =>
        Duration.lessThanOrEqualTo(value, maxDuration)
          ? ok(value)
          : fail(name, text, `a duration of ${maxDurationText} at most, the longest wait a timer can take`)
    })
  })

/**
 * The environment's settings:
 *
 * | variable | default |
 * |---|---|
 * | `OBSERVABILITY_SERVER_URL` | `http://localhost:4000/events` (batch: `<url>/batch`) |
 * | `OBSERVABILITY_API_KEY` | none (sent as `X-API-Key`) |
 * | `BIG3_EVENTS_MODE` | `single` (`batch` needs a server with `POST /events/batch`) |
 * | `BIG3_EVENTS_BATCH_SIZE` | 500 |
 * | `BIG3_EVENTS_LINGER` | 5 ms (seconds or a duration string) |
 * | `BIG3_EVENTS_CONCURRENCY` | 64 (single) / 4 (batch) |
 * | `BIG3_EVENTS_QUEUE_CAPACITY` | 100000 |
 * | `BIG3_EVENTS_DURABLE` | true (`BIG3_EVENTS_WRITE_AHEAD` is its old name) |
 * | `BIG3_EVENTS_COMMIT_INTERVAL` | 5 ms |
 * | `BIG3_EVENTS_COMMIT_EVENTS` | 500 |
 * | `BIG3_EVENTS_LEASE` | 30 s |
 * | `BIG3_EVENTS_SPOOL_MAX` | none: `100000` (rows), `50MB` (bytes), or both: `100000,50MB` |
 * | `BIG3_EVENTS_TRANSPORT` | `undici` (`http-client`: the context's `HttpClient`) |
 * | `BIG3_EVENTS_SPOOL_PAGE_SIZE` | 1000 |
 * | `BIG3_EVENTS_REDELIVERY_INTERVAL` | 1 s |
 */
export const config: Config.Config<Options> = Config.all({
  url: urlSetting("OBSERVABILITY_SERVER_URL", defaultUrl, httpUrl(defaultUrl)),
  apiKey: Config.option(Config.redacted("OBSERVABILITY_API_KEY")).pipe(Config.map(Option.getOrUndefined)),
  mode: Config.option(Config.literal("single", "batch")("BIG3_EVENTS_MODE")).pipe(Config.map(Option.getOrUndefined)),
  batchSize: int("BIG3_EVENTS_BATCH_SIZE", 1, 100_000),
  linger: duration("BIG3_EVENTS_LINGER"),
  concurrency: int("BIG3_EVENTS_CONCURRENCY", 1, 4_096),
  queueCapacity: int("BIG3_EVENTS_QUEUE_CAPACITY", 1, 100_000_000),
  durable: Config.option(Config.boolean("BIG3_EVENTS_DURABLE")).pipe(Config.map(Option.getOrUndefined)),
  writeAhead: Config.option(Config.boolean("BIG3_EVENTS_WRITE_AHEAD")).pipe(Config.map(Option.getOrUndefined)),
  commitInterval: duration("BIG3_EVENTS_COMMIT_INTERVAL"),
  commitEvents: int("BIG3_EVENTS_COMMIT_EVENTS", 1, 100_000),
  lease: duration("BIG3_EVENTS_LEASE"),
  spoolMax: optional("BIG3_EVENTS_SPOOL_MAX", (text) => {
    const parsed = parseSpoolMax(text)
    return parsed === undefined
      ? fail("BIG3_EVENTS_SPOOL_MAX", text, `a number of rows (100000), a size (50MB, 512KiB), or both ("100000,50MB")`)
      : ok(parsed)
  }),
  transport: Config.option(Config.literal("undici", "http-client")("BIG3_EVENTS_TRANSPORT")).pipe(
    Config.map(Option.getOrUndefined)
  ),
  spoolPageSize: int("BIG3_EVENTS_SPOOL_PAGE_SIZE", 1, 100_000),
  redeliveryInterval: duration("BIG3_EVENTS_REDELIVERY_INTERVAL")
})
