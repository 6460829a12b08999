/**
 * `emit`: validates an event (a bad one, or one the server would refuse for an empty required
 * field, is counted as `rejected` and logged with the reason), stamps `id` (a UUIDv7, sortable by
 * time) and `timestamp`, serialises it once, and offers the JSON to the bounded queue. Write-ahead mode first inserts it in the spool (`held = 1`). A full queue sends
 * it to the spool writer instead. `emit` never fails and never waits for the network.
 *
 * @since 0.1.0
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import type * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import { truncate } from "./Answer.js"
import { EventInput, refusedField } from "./Domain.js"
import type { Settings } from "./Options.js"
import type * as Spool from "./Spool.js"
import type { SpoolWriter } from "./SpoolWriter.js"
import type { Entry, State } from "./State.js"
import { uuidv7 } from "./State.js"

export interface IntakeOptions {
  readonly settings: Settings
  readonly state: State
  readonly clock: Clock.Clock
  readonly queue: Queue.Queue<Entry>
  readonly spool: Spool.Spool
  readonly writer: SpoolWriter
}

const isEventInput = Schema.is(EventInput)
const decodeEventInput = Schema.decodeUnknownEither(EventInput)

const describeInvalid = (input: unknown) => (): string => {
  const result = decodeEventInput(input)
  return result._tag === "Left"
    ? truncate(ParseResult.TreeFormatter.formatErrorSync(result.left).replace(/\s+/g, " "))
    : "not an event"
}

/** Builds `emit`. */
export const make = (options: IntakeOptions): (input: EventInput) => Effect.Effect<void> => {
  const { clock, queue, settings, spool, state, writer } = options

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

  const journal = (id: string, body: string, ordinal: number): Effect.Effect<void> =>
    spool.journal(id, body, state.epoch, ordinal, clock.unsafeCurrentTimeMillis()).pipe(
      Effect.matchCauseEffect({
        onSuccess: (seq) => {
          state.add("journaled", 1)
          const entry = state.accept(body, seq, ordinal)
          if (!offer(entry)) writer.release(entry, state.closing ? "emitted during shutdown" : "queue full")
          return Effect.void
        },
        onFailure: (cause) => {
          // Not written ahead, but it may still be delivered from memory.
          state.add("storageErrors", 1)
          const entry = state.accept(body, 0, ordinal)
          return Effect.zipRight(
            Effect.logWarning(`observability: could not write event ${id} ahead; delivering it from memory`, cause),
            offer(entry) ? Effect.void : writer.overflow(entry, "queue full")
          )
        }
      })
    )

  return (input) =>
    Effect.suspend(() => {
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
      const id = input.id ?? uuidv7(now)
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
        return reject(input, () => `it cannot be serialised to JSON (${error instanceof Error ? error.message : String(error)})`)
      }
      // JSON.stringify builds a rope; reading a character flattens it: ≈ 140 bytes less per queued event.
      body.charCodeAt(0)
      state.add("emitted", 1)
      const ordinal = state.nextOrdinal()
      if (state.closed) return writer.spoolNow(state.accept(body, 0, ordinal), "emitted after shutdown")
      if (settings.writeAhead) return journal(id, body, ordinal)
      const entry = state.accept(body, 0, ordinal)
      if (offer(entry)) return Effect.void
      return writer.overflow(entry, state.closing ? "emitted during shutdown" : "queue full")
    })
}
