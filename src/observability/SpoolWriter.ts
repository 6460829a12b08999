/**
 * The spool writer: the outcomes of deliveries (and events that do not fit the queue) become
 * writes to the spool, gathered while the writer is busy and committed in one transaction each
 * round. An event counts as settled (for `flush`) once its write is committed, or once it is
 * counted and logged as lost because the spool cannot be written.
 *
 * A piece of its own, so that another storage policy (a durable spool that commits before
 * sending, claims rows, caps its size) can take its place behind the same interface.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { Result } from "./Answer.js"
import { truncate } from "./Answer.js"
import type { Settings } from "./Options.js"
import * as Spool from "./Spool.js"
import type { Entry, State } from "./State.js"
import { tally } from "./State.js"

export interface SpoolWriter {
  /** Records a delivery's outcome: delivered (delete a written-ahead row), dead, or spool it. */
  readonly settle: (entry: Entry, result: Result) => void
  /** Spools an event that could not be queued (queue full, shutting down). */
  readonly overflow: (entry: Entry, reason: string) => Effect.Effect<void>
  /** Releases a written-ahead row to the backlog (its event could not be queued). */
  readonly release: (entry: Entry, reason: string) => void
  /** Writes one event now, outside the writer (after shutdown, or when the writer is far behind). */
  readonly spoolNow: (entry: Entry, reason: string) => Effect.Effect<void>
  /** Commits what is pending now; interrupted, it keeps the writes pending. */
  readonly commitPending: Effect.Effect<void>
  /** Counts and logs as lost what is still pending (shutdown ran out of time). */
  readonly abandon: Effect.Effect<void>
  /** The writer loop: runs until interrupted. */
  readonly run: Effect.Effect<never>
}

export interface SpoolWriterOptions {
  readonly spool: Spool.Spool
  readonly state: State
  readonly settings: Settings
  readonly clock: Clock.Clock
}

/** How long a failed commit waits before its one retry (a busy or briefly full disk). */
const retryPause = Duration.millis(100)

/**
 * A pause on the wall clock (a timer, not the Effect `Clock`): for batching deletes, which is an
 * I/O optimisation, not behaviour a test drives with `TestClock`.
 */
const wallPause = (millis: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

export const make = (options: SpoolWriterOptions): SpoolWriter => {
  const { clock, settings, spool, state } = options
  const now = () => clock.unsafeCurrentTimeMillis()

  /** Writes waiting for the writer, and the events they settle once committed. */
  const pending: { ops: Spool.Ops; entries: Array<Entry> } = { ops: Spool.emptyOps(), entries: [] }

  const enqueue = (entry: Entry, write: (ops: Spool.Ops) => void): void => {
    write(pending.ops)
    pending.entries.push(entry)
    state.writeSignal.fire()
  }

  const settle = (entry: Entry, result: Result): void => {
    if (result === undefined) {
      state.add("delivered", 1)
      if (entry.seq === 0) state.settle(entry)
      else enqueue(entry, (ops) => ops.remove.push(entry.seq))
    } else if (result.dead) {
      enqueue(entry, (ops) => {
        ops.dead.push({ ...state.itemOf(entry, result.reason), status: result.status })
        if (entry.seq !== 0) ops.remove.push(entry.seq)
      })
    } else {
      enqueue(entry, (ops) => {
        if (entry.seq === 0) ops.spool.push(state.itemOf(entry, result.reason))
        else ops.release.push({ seq: entry.seq, reason: result.reason })
      })
    }
  }

  const spoolLog = tally(now, (n, reason) =>
    Effect.logWarning(
      `observability: spooled ${n} event(s) that cannot be delivered now${reason === "" ? "" : ` (${reason})`}; ` +
        `${state.spoolSize} in the spool`
    ))

  const firstReason = (ops: Spool.Ops): string => truncate(ops.spool[0]?.reason ?? ops.release[0]?.reason ?? "", 200)

  /** Counts and logs writes that nothing can keep any more. */
  const lose = (ops: Spool.Ops, entries: ReadonlyArray<Entry>, why: string, cause?: Cause.Cause<unknown>) => {
    // Write-ahead rows whose release or delete was not written are still in the table and come
    // back at the next start; new rows and dead letters are lost.
    const lost = ops.spool.length + ops.dead.length
    state.add("dropped", lost)
    for (const entry of entries) state.settle(entry)
    const ids = [...ops.spool, ...ops.dead].map((item) => item.id)
    const message = `observability: LOST ${lost} event(s): ${why}; ids ${ids.slice(0, 50).join(", ")}${ids.length > 50 ? ", …" : ""}`
    return cause === undefined ? Effect.logError(message) : Effect.logError(message, cause)
  }

  /**
   * Commits the pending writes in one transaction, tried again once after a short pause (a busy
   * or briefly full disk), then settles the events they carry. Interruptible: a commit cut short
   * (shutdown out of time) puts its writes back, so that nothing taken is forgotten.
   */
  const commitPending: Effect.Effect<void> = Effect.suspend(() => {
    const { entries, ops } = pending
    pending.ops = Spool.emptyOps()
    pending.entries = []
    if (Spool.opsSize(ops) === 0) {
      for (const entry of entries) state.settle(entry)
      return Effect.void
    }
    const commit = Effect.suspend(() => spool.commit(ops, now()))
    return commit.pipe(
      Effect.catchAll(() => Effect.zipRight(Effect.sleep(retryPause), commit)),
      Effect.matchCauseEffect({
        onSuccess: () => {
          const newlySpooled = ops.spool.length + ops.release.length
          state.add("spooled", newlySpooled)
          state.add("deadLettered", ops.dead.length)
          state.spoolSize += newlySpooled
          state.deadLetterSize += ops.dead.length
          for (const entry of entries) state.settle(entry)
          if (newlySpooled > 0) state.spoolSignal.fire()
          return Effect.zipRight(
            spoolLog.add(newlySpooled, firstReason(ops)),
            ops.dead.length === 0 ? Effect.void : Effect.logError(
              `observability: dead-lettered ${ops.dead.length} event(s) the server refused: ` +
                `${truncate(ops.dead[0]!.reason, 300)}${ops.dead.length > 1 ? " (first shown)" : ""}; ` +
                `${state.deadLetterSize} in the dead letters`
            )
          )
        },
        onFailure: (cause) => {
          state.add("storageErrors", 1)
          return lose(ops, entries, Cause.isDie(cause) ? "a defect while writing the spool" : "the spool cannot be written", cause)
        }
      }),
      Effect.onInterrupt(() =>
        Effect.sync(() => {
          pending.ops = Spool.concatOps(ops, pending.ops)
          pending.entries = entries.concat(pending.entries)
        })
      )
    )
  })

  const abandon = Effect.suspend(() => {
    const { entries, ops } = pending
    pending.ops = Spool.emptyOps()
    pending.entries = []
    return Spool.opsSize(ops) === 0 && entries.length === 0 ? Effect.void : lose(ops, entries, "shutdown ran out of time to write the spool")
  })

  const spoolNow = (entry: Entry, reason: string): Effect.Effect<void> => {
    const item = state.itemOf(entry, reason)
    return spool.commit({ ...Spool.emptyOps(), spool: [item] }, now()).pipe(
      Effect.matchCauseEffect({
        onSuccess: () => {
          state.add("spooled", 1)
          state.spoolSize++
          state.settle(entry)
          if (!state.closed) state.spoolSignal.fire()
          return spoolLog.add(1, reason)
        },
        onFailure: (cause) => {
          state.add("storageErrors", 1)
          state.add("dropped", 1)
          state.settle(entry)
          return Effect.logError(`observability: LOST event ${item.id}: the spool cannot be written (${reason})`, cause)
        }
      })
    )
  }

  const overflow = (entry: Entry, reason: string): Effect.Effect<void> => {
    if (state.closed || pending.entries.length >= settings.queueCapacity) return spoolNow(entry, reason)
    enqueue(entry, (ops) => ops.spool.push(state.itemOf(entry, reason)))
    return Effect.void
  }

  const release = (entry: Entry, reason: string): void => enqueue(entry, (ops) => ops.release.push({ seq: entry.seq, reason }))

  // Write-ahead mode deletes a row per delivery, and deliveries finish one by one: deletes wait
  // a few milliseconds to share a transaction (one commit per event costs ≈ 150 µs). A crash in
  // that window only means a redelivery, which the event id makes harmless. Spooling and dead
  // letters commit at once.
  const deleteLinger = wallPause(5)
  const run = Effect.forever(
    Effect.suspend(() => {
      if (pending.entries.length === 0) return state.writeSignal.wait
      const { ops } = pending
      const onlyDeletes = ops.spool.length === 0 && ops.release.length === 0 && ops.dead.length === 0
      if (onlyDeletes && !state.closing && pending.entries.length < 1_000) return Effect.zipRight(deleteLinger, commitPending)
      return Effect.zipRight(Effect.yieldNow(), commitPending)
    })
  )

  return { settle, overflow, release, spoolNow, commitPending, abandon, run }
}
