/**
 * Closing the client: flush within `graceful_shutdown`, then interrupt the workers (which aborts
 * the requests still in flight) and spool what they held and what is still queued, commit the
 * spool writer's last writes, release every waiting flush, and log a summary. The next start
 * redelivers what was spooled.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import { formatDuration } from "../Errors.js"
import type { Slot } from "./Delivery.js"
import type { SpoolWriter } from "./SpoolWriter.js"
import type { Entry, State } from "./State.js"

export interface ShutdownOptions {
  readonly state: State
  readonly queue: Queue.Queue<Entry>
  readonly slots: ReadonlyArray<Slot>
  /** Where the workers and the redeliverer run. */
  readonly workerScope: Scope.CloseableScope
  /** Where the spool writer runs. */
  readonly writerScope: Scope.CloseableScope
  readonly writer: SpoolWriter
  readonly gracefulShutdown: Duration.Duration
}

/**
 * What is kept back from the flush for the last write of the spool: a fifth of
 * `graceful_shutdown`, at most a second.
 */
const reserveOf = (gracefulShutdown: Duration.Duration): Duration.Duration =>
  Duration.min(Duration.seconds(1), Duration.divide(gracefulShutdown, 5).pipe(Option.getOrElse(() => Duration.zero)))

/**
 * The finalizer of the client's scope; it ends within `graceful_shutdown`. Finalizers run
 * uninterruptibly, so each wait in it is made interruptible before it is bounded.
 */
export const make = (options: ShutdownOptions): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { gracefulShutdown, queue, slots, state, writer } = options
    state.closing = true
    const startedAt = yield* Clock.currentTimeMillis
    const flushed = yield* Effect.interruptible(state.flush).pipe(
      Effect.timeoutOption(Duration.subtract(gracefulShutdown, reserveOf(gracefulShutdown)))
    )
    // Interrupting the workers aborts the requests still in flight.
    yield* Scope.close(options.workerScope, Exit.void)
    const leftovers: Array<Entry> = []
    for (const slot of slots) {
      if (slot.current !== undefined) leftovers.push(...slot.current)
      slot.current = undefined
    }
    leftovers.push(...Chunk.toReadonlyArray(yield* Queue.takeAll(queue)))
    for (const entry of leftovers) {
      writer.settle(entry, { dead: false, reason: "not delivered before shutdown", status: undefined })
    }
    // Interrupting the writer puts back a commit it was in the middle of.
    yield* Scope.close(options.writerScope, Exit.void)
    const left = Duration.millis(Math.max(0, startedAt + Duration.toMillis(gracefulShutdown) - (yield* Clock.currentTimeMillis)))
    // The last round also hands back every row this process holds (claimed, or written for events
    // it had in memory): another process may deliver them at once.
    const written = yield* Effect.interruptible(writer.finish).pipe(Effect.timeoutOption(left))
    if (Option.isNone(written)) yield* writer.abandon
    state.closed = true
    state.releaseAll()
    if (Option.isNone(flushed)) {
      yield* Effect.logWarning(
        `observability: the shutdown flush did not finish within graceful_shutdown ` +
          `(${formatDuration(gracefulShutdown)}); ${leftovers.length} undelivered event(s) went to the spool ` +
          `for the next start`
      )
    }
    const { counters } = state
    const summary = `observability: stopped; ${counters.emitted} emitted, ${counters.delivered} delivered, ` +
      `${counters.redelivered} redelivered, ${counters.spooled} spooled, ${counters.deadLettered} dead-lettered, ` +
      `${counters.rejected} rejected, ${counters.dropped} lost` +
      // Evictions are losses the user chose a bound for (BIG3_EVENTS_SPOOL_MAX): named apart, when there were any.
      `${counters.evicted > 0 ? `, ${counters.evicted} evicted from a full spool` : ""}; ${state.spoolSize} in the spool`
    const notable = leftovers.length > 0 || state.spoolSize > 0 || counters.dropped > 0 || counters.evicted > 0
    yield* notable ? Effect.logInfo(summary) : Effect.logDebug(summary)
  })
