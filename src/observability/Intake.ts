/**
 * `emit`: validates an event (a bad one, or one the server would refuse for an empty required
 * field, is counted as `rejected` and logged with the reason), stamps `id` (a UUIDv7, sortable by
 * time) and `timestamp`, serialises it once, and offers the JSON to the bounded queue. In durable
 * mode it also joins the spool writer's next group commit. A full queue sends it to the spool
 * writer instead. `emit` never fails and never waits for the network or the disk;
 * `emitDurable` waits for the group commit that writes the event.
 *
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import { truncate } from "./Answer.js"
import { EventInput, isEventInput, refusedField } from "./Domain.js"
import type { Settings } from "./Options.js"
import type { SpoolWriter } from "./SpoolWriter.js"
import type { Entry, State } from "./State.js"
import { messageOf } from "../internal/messageOf.js"

export interface IntakeOptions {
  readonly settings: Settings
  readonly state: State
  readonly clock: Clock.Clock
  readonly queue: Queue.Queue<Entry>
  readonly writer: SpoolWriter
}

const decodeEventInput = Schema.decodeUnknownEither(EventInput)

const describeInvalid = (input: unknown) => (): string => {
  const result = decodeEventInput(input)
  return result._tag === "Left"
    ? truncate(ParseResult.TreeFormatter.formatErrorSync(result.left).replace(/\s+/g, " "))
    : "not an event"
}

/** Builds `emit` and `emitDurable`. */
export const make = (options: IntakeOptions): {
  readonly emit: (input: EventInput) => Effect.Effect<void>
  readonly emitDurable: (input: EventInput) => Effect.Effect<void, SqlError>
} => {
  const { clock, queue, settings, state, writer } = options

  // Log the first 20 rejections, then every 1000th, so a broken producer cannot flood the log.
  const reject = (input: unknown, why: () => string): Effect.Effect<void> => {
    state.add("rejected", 1)
    const rejected = state.counters.rejected
    if (rejected <= 20 || rejected % 1000 === 0) {
      const kind = typeof input === "object" && input !== null && "hook_event_type" in input
        ? ` (${truncate(String(input.hook_event_type), 60)})`
        : ""
      return Effect.logWarning(`observability: rejected an event${kind}: ${why()}; ${rejected} rejected so far`)
    }
    return Effect.void
  }

  const offer = (entry: Entry): boolean => !state.closing && queue.unsafeOffer(entry)

  /**
   * Accepts a valid event: stamps, serialises and queues it (durable mode: it also joins the next
   * group commit), then runs `then` with its entry; a rejected event runs nothing more. One step
   * of the fiber runtime for an accepted event (`then` aside): `emit` runs for every event.
   */
  const accept = <E>(
    input: EventInput,
    durable: boolean,
    then: (entry: Entry) => Effect.Effect<void, E>
  ): Effect.Effect<void, E> =>
    Effect.suspend((): Effect.Effect<void, E> => {
      if (!isEventInput(input)) return reject(input, describeInvalid(input))
      // Refused here rather than dead-lettered later: the server would answer 400 for good.
      const refused = refusedField(input)
      if (refused !== undefined) {
        return reject(input, () => `${refused} is empty; the observability server refuses such an event (400 Missing required fields)`)
      }
      if (input.timestamp !== undefined && !Number.isFinite(input.timestamp)) {
        return reject(input, () => `timestamp must be a finite number of milliseconds, got ${input.timestamp}`)
      }
      const now = clock.unsafeCurrentTimeMillis()
      const id = input.id ?? state.newId(now)
      let body: string
      try {
        // The public server's shape plus `id`; `undefined` optional fields are left out.
        body = JSON.stringify({
          id,
          source_app: input.source_app,
          session_id: input.session_id,
          hook_event_type: input.hook_event_type,
          payload: input.payload,
          timestamp: input.timestamp ?? now,
          summary: input.summary,
          chat: input.chat,
          model_name: input.model_name
        })
      } catch (error) {
        return reject(input, () => `it cannot be serialised to JSON (${messageOf(error)})`)
      }
      // JSON.stringify builds a rope; reading a character flattens it: ≈ 140 bytes less per queued event.
      body.charCodeAt(0)
      state.add("emitted", 1)
      const entry = state.accept(body, state.nextOrdinal())
      if (state.closed) return Effect.zipRight(writer.spoolNow(entry, "emitted after shutdown"), then(entry))
      const waiting = durable ? writer.journal(entry) : 0
      if (!offer(entry)) {
        return Effect.zipRight(writer.overflow(entry, state.closing ? "emitted during shutdown" : "queue full"), then(entry))
      }
      // A producer faster than the disk: let the group commit run before the next event, so
      // that no more than a commit's worth of events waits in memory only.
      return waiting >= settings.commitEvents ? Effect.zipRight(Effect.yieldNow(), then(entry)) : then(entry)
    })

  const nothingMore = (): Effect.Effect<void> => Effect.void
  const emit = (input: EventInput): Effect.Effect<void> => accept(input, settings.durable, nothingMore)
  const emitDurable = (input: EventInput): Effect.Effect<void, SqlError> => accept(input, true, writer.durable)
  return { emit, emitDurable }
}
