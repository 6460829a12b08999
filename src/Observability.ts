/**
 * Observability client: `emit` never fails and never blocks; delivery is batched, retried,
 * guarded by a breaker and spooled to SQLite when the server is away.
 *
 * (Interface only; the implementation lands with the observability issue.)
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
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

/** Delivery counters. */
export interface Stats {
  readonly emitted: number
  readonly delivered: number
  readonly retried: number
  readonly spooled: number
  readonly redelivered: number
  readonly deadLettered: number
  readonly rejected: number
  readonly dropped: number
  /** Events waiting in memory. */
  readonly queued: number
  /** Events waiting in the spool. */
  readonly spoolSize: number
}

export interface Service {
  /** Validates, stamps and queues an event. Never fails; never waits longer than a queue offer. */
  readonly emit: (event: EventInput) => Effect.Effect<void>
  /** Waits until everything emitted so far is delivered, spooled or dead-lettered. */
  readonly flush: Effect.Effect<void>
  /** The delivery counters. */
  readonly stats: Effect.Effect<Stats>
}

export class Observability extends Context.Tag("big3/Observability")<Observability, Service>() {}
