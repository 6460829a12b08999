/**
 * The defaults of every timeout, retry policy, breaker and the retry budget: the design
 * contract's tables, as typed values.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"

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

/** The group of an operation id ("api" for `gemini_api`), "other" for a name outside the table. */
export const operationGroupOf = (operation: string): string => groupByOperation.get(operation) ?? "other"

const groupByOperation: ReadonlyMap<string, string> = new Map(operationRows.map(([id, , group]) => [id, group]))

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

/**
 * Adaptive timeouts and adaptive 429 pacing. Per operation (when on), the per-attempt timeout is
 * learned from the latencies of its successful attempts over `window`:
 * `clamp(p99 × multiplier, floor, configured timeout)` once `minSamples` are in the window. Per
 * service (when on), a client-side token bucket slows the send rate while the upstream throttles.
 */
export interface AdaptiveSettings {
  /** Operations whose per-attempt timeout is learned (`BIG3_ADAPTIVE_<OP>=on`). */
  readonly operations: ReadonlySet<string>
  readonly multiplier: number
  readonly floor: Duration.Duration
  readonly minSamples: number
  /** How far back the latency estimator looks. */
  readonly window: Duration.Duration
  /** Services whose send rate is paced on 429s (`BIG3_ADAPTIVE_RATE_<SERVICE>=on`). */
  readonly rate: ReadonlySet<string>
}

/** The adaptive defaults: everything off; ×3 the p99, at least 1 s, after 50 samples, over 5 minutes. */
export const defaultAdaptive: AdaptiveSettings = {
  operations: new Set(),
  multiplier: 3,
  floor: Duration.seconds(1),
  minSamples: 50,
  window: Duration.minutes(5),
  rate: new Set()
}

/** The services big3 calls, whose `BIG3_ADAPTIVE_RATE_<SERVICE>` the environment is read for. */
export const adaptiveRateServices: ReadonlyArray<string> = ["gemini", "anthropic", "observability", "openai_realtime"]
