/**
 * The observability client's data and service shapes (re-exported by `Observability`).
 *
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

/** An event as the observability server takes it, plus an `id` that makes redelivery idempotent. */
export const Event = Schema.Struct({
  id: Schema.String,
  source_app: Schema.String,
  session_id: Schema.String,
  hook_event_type: Schema.String,
  payload: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  /** Milliseconds since the epoch. */
  timestamp: Schema.Number,
  summary: Schema.optional(Schema.String),
  chat: Schema.optional(Schema.Array(Schema.Unknown)),
  model_name: Schema.optional(Schema.String)
})
export type Event = typeof Event.Type

/** What callers give `emit`: `id` and `timestamp` are stamped when missing. */
export const EventInput = Schema.Struct({
  ...Event.fields,
  id: Schema.optional(Schema.String),
  timestamp: Schema.optional(Schema.Number)
})
export type EventInput = typeof EventInput.Type

const schemaIsEventInput = Schema.is(EventInput)
const optional = (value: unknown, type: "string" | "number"): boolean => value === undefined || typeof value === type
const isObject = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)
/** An object literal (or `Object.create(null)`): its fields are its own, as the Schema requires of required fields. */
const isPlain = (value: unknown): value is Readonly<Record<string, unknown>> => {
  if (!isObject(value)) return false
  const prototype: unknown = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/**
 * `Schema.is(EventInput)`, with a direct check first for the usual shape. The Schema walks every
 * key of the payload and allocated ≈ 2 KB per event on the emit path; the direct check allocates
 * nothing, accepts only what the Schema accepts (test/Observability.domain.test.ts), and leaves
 * anything else to the Schema.
 */
export const isEventInput = (input: unknown): input is EventInput =>
  (isPlain(input) && typeof input.source_app === "string" && typeof input.session_id === "string" &&
    typeof input.hook_event_type === "string" && isObject(input.payload) && optional(input.id, "string") &&
    optional(input.timestamp, "number") && optional(input.summary, "string") && optional(input.model_name, "string") &&
    (input.chat === undefined || Array.isArray(input.chat))) || schemaIsEventInput(input)

/** The fields the public observability server requires (it answers 400 "Missing required fields"). */
export type RequiredField = "source_app" | "session_id" | "hook_event_type" | "payload"

/**
 * The first field the public server would refuse, or `undefined`: it checks
 * `!source_app || !session_id || !hook_event_type || !payload`, so an empty string fails there
 * even though it is a string here.
 */
export const refusedField = (event: EventInput): RequiredField | undefined => {
  if (event.source_app === "") return "source_app"
  if (event.session_id === "") return "session_id"
  if (event.hook_event_type === "") return "hook_event_type"
  // Schema-typed as an object; a JavaScript caller may still leave it out.
  const payload: unknown = event.payload
  return payload === undefined || payload === null ? "payload" : undefined
}

/** Delivery counters, since the layer started (sizes are current). */
export interface Stats {
  /** Valid events accepted by `emit`. */
  readonly emitted: number
  /** Events the server accepted on their first trip (from memory). */
  readonly delivered: number
  /** Retries of a request (not counting first attempts). */
  readonly retried: number
  /** Events written to the spool because they could not be delivered now (queue full, breaker open, retries exhausted, shutdown). */
  readonly spooled: number
  /** Events delivered on a later trip: from the spool, or from memory while the spool could not be written. */
  readonly redelivered: number
  /** Events the server refused for good (4xx), kept in the dead-letter table with the reason. */
  readonly deadLettered: number
  /**
   * Events `emit` refused because they do not match `EventInput`, or because the server would
   * refuse them (an empty `source_app`, `session_id` or `hook_event_type`).
   */
  readonly rejected: number
  /** Events lost because the store could not be written (each one logged). */
  readonly dropped: number
  /** Reads and writes of the spool that failed (each one logged): a spool that cannot be read is not empty. */
  readonly storageErrors: number
  /** Events waiting in memory. */
  readonly queued: number
  /** Events waiting in the spool. */
  readonly spoolSize: number
  /** Requests in flight. */
  readonly inFlight: number
  /** Events in the dead-letter table. */
  readonly deadLetterSize: number
  /** Events written to the spool by a group commit while still in memory (durable mode), so that a crash does not lose them. */
  readonly journaled: number
  /** Events deleted from a full spool (`BIG3_EVENTS_SPOOL_MAX`), oldest first; each eviction is logged. */
  readonly evicted: number
  /** The delivery mode in force ("batch" falls back to "single" on a server without the batch route). */
  readonly mode: "single" | "batch"
}

/** What `drainSpool` did. */
export interface DrainResult {
  readonly redelivered: number
  readonly deadLettered: number
  /** Events still in the spool (the server is away, or refused some for now). */
  readonly remaining: number
  /** Rows held by running processes (an app's events in memory, another drainer's claim): theirs to deliver. */
  readonly held: number
}

/** A refused event, as kept in the dead-letter table. */
export interface DeadLetter {
  readonly seq: number
  readonly id: string
  /** The event JSON as it was sent. */
  readonly body: string
  /** Why it was refused: the error tag and message. */
  readonly reason: string
  readonly status: number | undefined
  /** When it was refused, ms since the epoch. */
  readonly failedAt: number
}

export interface Service {
  /**
   * Validates, stamps (`id`, `timestamp` when missing) and queues an event. Never fails; never
   * waits longer than a queue offer. In durable mode (the default) the event reaches the spool in
   * the next group commit (within `commitInterval`), so a crash loses at most that window. A bad
   * event is counted (`rejected`) and logged; a full queue sends the event to the spool.
   */
  readonly emit: (event: EventInput) => Effect.Effect<void>
  /**
   * `emit`, then waits until the event is in the spool (its group commit) or delivered. Fails with
   * the `SqlError` when the spool cannot be written (the event stays in memory and is still
   * delivered if it can be). A rejected event returns at once (counted and logged).
   */
  readonly emitDurable: (event: EventInput) => Effect.Effect<void, SqlError>
  /** Waits until everything emitted so far is delivered, spooled or dead-lettered. */
  readonly flush: Effect.Effect<void>
  /** The delivery counters. */
  readonly stats: Effect.Effect<Stats>
  /** `emit` then `flush`: returns once the event is delivered, spooled or dead-lettered. */
  readonly send: (event: EventInput) => Effect.Effect<void>
  /**
   * Redelivers the spool now, oldest first, page by page, until it is empty or a page makes no
   * progress (server away, breaker open). Fails with `SqlError` when the spool cannot be read or
   * updated.
   */
  readonly drainSpool: Effect.Effect<DrainResult, SqlError>
  /** The most recent dead letters (newest first), at most `limit` (default 100). */
  readonly deadLetters: (limit?: number) => Effect.Effect<ReadonlyArray<DeadLetter>, SqlError>
  /** Moves every dead letter back to the spool (after fixing the cause); returns how many. */
  readonly requeueDeadLetters: Effect.Effect<number, SqlError>
}
