/**
 * The spool writer: every write of the spool goes through it, gathered and committed in one
 * transaction per round (a group commit).
 *
 * - Durable mode (the default): each accepted event joins the next group commit as a row this
 *   process holds (`journal`); a round starts `commitInterval` after the first event waiting, or
 *   at once when `commitEvents` are waiting, a flush waits, or a write that should not wait (a
 *   spooled event, a dead letter) comes in. An event delivered before its round is never
 *   written; one delivered after is deleted in a later round. Deletes alone start no round: they
 *   ride along with the next one, or go after `housekeeping` (ten commit intervals) at most,
 *   since many small delete-only commits cost SQLite several times what one larger one does.
 * - Outcomes of deliveries: delivered (delete the row), refused for good (dead letter), not
 *   deliverable now (release the row to the backlog, or spool the event).
 * - A commit that fails is tried again once after a short pause; then its writes stay in memory
 *   (up to `queueCapacity` events; beyond, they are counted and logged as lost) and are tried
 *   again every `redeliveryInterval`, with one log line per second at most. The events among
 *   them are handed to the redeliverer on request (`takeKept`), which delivers them from memory
 *   when the server is back before the disk is. What the disk still refuses at shutdown is
 *   counted and logged as lost.
 * - Past `spoolMax`, the oldest rows nobody holds are evicted: counted and logged.
 * - Leases of the rows this process holds are renewed every third of `lease`.
 *
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import type { Result } from "./Answer.js"
import { truncate } from "./Answer.js"
import type { Settings } from "./Options.js"
import * as Spool from "./Spool.js"
import type { Entry, State } from "./State.js"
import { tailsOf, tally } from "./State.js"

export interface SpoolWriter {
  /** Durable mode: the event joins the next group commit. Returns how many events wait for it. */
  readonly journal: (entry: Entry) => number
  /** Records a delivery's outcome: delivered (delete its row), dead, or spool it. */
  readonly settle: (entry: Entry, result: Result) => void
  /** A claimed spool row's redelivery outcome: delivered (delete), dead (dead letter), or released with `attempts` + 1. */
  readonly settleRow: (row: Spool.Row, result: Result) => void
  /**
   * Takes up to `limit` of the failed deliveries held in memory because the disk refused them,
   * oldest first, for another delivery: they need not wait for the disk once the server is back.
   */
  readonly takeKept: (limit: number) => ReadonlyArray<Spool.Item>
  /** A taken event's outcome: delivered (nothing to delete), dead (dead letter), or spool it (kept again while the disk refuses). */
  readonly settleKept: (item: Spool.Item, result: Result) => void
  /** How many failed deliveries wait in memory for the disk. */
  readonly keptEvents: () => number
  /** Spools an event that could not be queued (queue full, shutting down). */
  readonly overflow: (entry: Entry, reason: string) => Effect.Effect<void>
  /** Writes one event now, outside the writer (after shutdown). */
  readonly spoolNow: (entry: Entry, reason: string) => Effect.Effect<void>
  /** Waits until the event is on disk (or has its outcome); fails when the write failed. */
  readonly durable: (entry: Entry) => Effect.Effect<void, SqlError>
  /** Commits what is pending now; interrupted, it keeps the writes pending. */
  readonly commitPending: Effect.Effect<void>
  /**
   * The last commit at shutdown: what is pending, and every row this process holds goes back to the
   * backlog. What the disk still refuses ends with the process: counted and logged as lost.
   */
  readonly finish: Effect.Effect<void>
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

export const make = (options: SpoolWriterOptions): SpoolWriter => {
  const { clock, settings, spool, state } = options
  const now = () => clock.unsafeCurrentTimeMillis()
  const leaseMillis = Duration.toMillis(settings.lease)
  const commitEvents = settings.commitEvents
  /**
   * How long deletes of delivered rows may wait for a round. Measured with 20,000-event bursts on
   * SQLite: at the commit interval (a commit every 5 ms) SQLite took 0.96 s per 65,000 events,
   * at ten of them 0.70 s, and the client delivered 20–30% more events per second.
   */
  const housekeepingMillis = 10 * Duration.toMillis(settings.commitInterval)

  /** Writes waiting for the next round, the events they settle once committed, and the events waiting for their journal row. */
  const pending: { ops: Spool.Ops; entries: Array<Entry>; journal: Array<Entry>; releaseHeld: boolean } = {
    ops: Spool.emptyOps(),
    entries: [],
    journal: [],
    releaseHeld: false
  }
  /** Writes of rounds that failed, kept in memory and tried again (a full or failing disk). */
  let kept: Spool.Ops = Spool.emptyOps()
  /** Why the last round failed (SQLite's words), for what is lost if the disk never takes `kept`. */
  let keptBecause = ""
  let nextRenewal = now() + leaseMillis / 3
  /** Bytes of the rows deleted by the pending writes (for the spool's size as this process counts it). */
  let removedBytes = 0
  /** When the oldest pending write with nothing waiting on it (a delete) came in. */
  let housekeepingSince: number | undefined

  const hasWork = () => pending.entries.length > 0 || pending.journal.length > 0 || Spool.opsSize(pending.ops) > 0
  const urgent = () =>
    pending.entries.length > 0 || pending.ops.dead.length > 0 || pending.ops.spool.length > 0 ||
    pending.ops.release.length > 0 || pending.ops.failed.length > 0 || pending.releaseHeld

  /** A write that settles `entry` once committed; it does not wait for the group commit's interval. */
  const enqueue = (entry: Entry | undefined, write: (ops: Spool.Ops) => void): void => {
    write(pending.ops)
    if (entry !== undefined) pending.entries.push(entry)
    state.writeSignal.fire()
    state.commitSignal.fire()
  }

  /**
   * A write with nothing waiting on it (a delete): it rides along with the next round, or starts
   * one after `housekeepingMillis`. Only the first wakes the writer.
   */
  const housekeeping = (write: (ops: Spool.Ops) => void): void => {
    write(pending.ops)
    if (housekeepingSince !== undefined) return
    housekeepingSince = now()
    state.writeSignal.fire()
  }

  const journal = (entry: Entry): number => {
    entry.journal = "pending"
    pending.journal.push(entry)
    if (pending.journal.length === 1) state.writeSignal.fire()
    if (pending.journal.length >= commitEvents) state.commitSignal.fire()
    return pending.journal.length
  }

  const settle = (entry: Entry, result: Result): void => {
    if (result === undefined) {
      state.add("delivered", 1)
      if (entry.journal === "written") {
        removedBytes += entry.body.length
        housekeeping((ops) => ops.remove.push(entry.seq))
      }
      else if (entry.journal !== "none") entry.early = { kind: "delivered" }
      state.settle(entry)
    } else if (result.dead) {
      if (entry.journal === "pending" || entry.journal === "committing") entry.early = { kind: "dead" }
      enqueue(entry, (ops) => {
        ops.dead.push({ ...state.itemOf(entry, result.reason), status: result.status })
        if (entry.journal === "written") ops.remove.push(entry.seq)
      })
    } else if (entry.journal === "written") {
      enqueue(entry, (ops) => ops.release.push({ seq: entry.seq, reason: result.reason }))
    } else if (entry.journal === "committing") {
      // Its row is being written: it is released once it is (and settled then).
      entry.early = { kind: "spool", reason: result.reason }
      state.commitSignal.fire()
    } else {
      if (entry.journal === "pending") entry.early = { kind: "spool", reason: result.reason }
      enqueue(entry, (ops) => ops.spool.push(state.itemOf(entry, result.reason)))
    }
  }

  const settleRow = (row: Spool.Row, result: Result): void => {
    removedBytes += result === undefined || result.dead ? row.body.length : 0
    if (result === undefined) housekeeping((ops) => ops.remove.push(row.seq))
    else if (result.dead) {
      enqueue(undefined, (ops) => {
        ops.dead.push({ id: row.id, body: row.body, reason: result.reason, status: result.status, epoch: row.epoch, ordinal: row.ordinal })
        ops.remove.push(row.seq)
      })
    } else enqueue(undefined, (ops) => ops.failed.push({ seq: row.seq, reason: result.reason }))
  }

  const takeKept = (limit: number): ReadonlyArray<Spool.Item> => {
    const taken = kept.spool.slice(0, limit)
    if (taken.length > 0) kept = { ...kept, spool: kept.spool.slice(taken.length) }
    return taken
  }

  const settleKept = (item: Spool.Item, result: Result): void => {
    if (result === undefined) return
    if (result.dead) {
      enqueue(undefined, (ops) => ops.dead.push({ ...item, reason: result.reason, status: result.status }))
    } else enqueue(undefined, (ops) => ops.spool.push({ ...item, reason: result.reason }))
  }

  const spoolLog = tally(now, (n, reason) =>
    Effect.logWarning(
      `observability: spooled ${n} event(s) that cannot be delivered now${reason === "" ? "" : ` (${reason})`}; ` +
        `${state.spoolSize} in the spool`
    ))
  const storageLog = tally(now, (n, reason) =>
    Effect.logError(
      `observability: the spool cannot be written (${reason}); ${n} failed write(s) in the last second. ` +
        `${kept.spool.length + kept.dead.length} event(s) wait in memory for the disk, ${state.counters.dropped} lost so far`
    ))
  const lossLog = tally(now, (n, reason) =>
    Effect.logError(`observability: LOST ${n} event(s): ${reason}; ${state.counters.dropped} lost so far`))
  const evictLog = tally(now, (n, reason) =>
    Effect.logWarning(
      `observability: the spool is full (BIG3_EVENTS_SPOOL_MAX): evicted ${n} of its oldest event(s) (${reason}); ` +
        `${state.counters.evicted} evicted so far`
    ))

  const tails = tailsOf([spoolLog, storageLog, lossLog, evictLog])

  const firstReason = (ops: Spool.Ops): string => truncate(ops.spool[0]?.reason ?? ops.release[0]?.reason ?? "", 200)

  /** Keeps the writes of a failed round for later, up to `queueCapacity` events; the rest is lost, counted and logged. */
  const keep = (ops: Spool.Ops, detail: string): Effect.Effect<void> => {
    const room = Math.max(0, settings.queueCapacity - kept.spool.length - kept.dead.length)
    const events = ops.spool.length + ops.dead.length
    const lost = Math.max(0, events - room)
    const spoolKept = ops.spool.slice(0, Math.max(0, ops.spool.length - lost))
    const deadKept = ops.dead.slice(0, Math.max(0, ops.dead.length - Math.max(0, lost - ops.spool.length)))
    kept = Spool.concatOps(kept, { ...ops, journal: [], spool: spoolKept, dead: deadKept })
    keptBecause = detail
    state.add("dropped", lost)
    // The redeliverer delivers them from memory when the server takes them.
    if (spoolKept.length > 0) state.spoolSignal.fire()
    return lost === 0 ? Effect.void : lossLog.add(lost, `the spool cannot be written (${detail}) and memory holds ${settings.queueCapacity} at most`)
  }

  const afterSuccess = (
    ops: Spool.Ops,
    entries: ReadonlyArray<Entry>,
    journaled: ReadonlyArray<Entry>,
    committed: Spool.Committed,
    removed: number
  ) => {
    for (const entry of journaled) {
      const seq = committed.journaled.get(entry.ordinal) ?? 0
      entry.seq = seq
      entry.journal = seq > 0 ? "written" : "none"
      if (entry.onDisk !== undefined) Deferred.unsafeDone(entry.onDisk, Exit.void)
      const early = entry.early
      if (early === undefined || seq === 0) continue
      if (early.kind === "spool") enqueue(entry, (next) => next.release.push({ seq, reason: early.reason }))
      else {
        removedBytes += entry.body.length
        housekeeping((next) => next.remove.push(seq))
      }
    }
    const newlySpooled = ops.spool.length + ops.release.length + ops.failed.length
    state.add("journaled", journaled.length)
    state.add("spooled", ops.spool.length + ops.release.length)
    state.add("deadLettered", ops.dead.length)
    state.spoolSize += ops.spool.length + ops.release.length
    state.deadLetterSize += ops.dead.length
    let addedBytes = 0
    for (const item of ops.journal) addedBytes += item.body.length
    for (const item of ops.spool) addedBytes += item.body.length
    state.storedRows = Math.max(0, state.storedRows + ops.journal.length + ops.spool.length - ops.remove.length)
    state.storedBytes = Math.max(0, state.storedBytes + addedBytes - removed)
    for (const entry of entries) state.settle(entry)
    if (newlySpooled > 0) state.spoolSignal.fire()
    return Effect.zipRight(
      spoolLog.add(ops.spool.length + ops.release.length, firstReason(ops)),
      ops.dead.length === 0 ? Effect.void : Effect.logError(
        `observability: dead-lettered ${ops.dead.length} event(s) the server refused: ` +
          `${truncate(ops.dead[0]!.reason, 300)}${ops.dead.length > 1 ? " (first shown)" : ""}; ` +
          `${state.deadLetterSize} in the dead letters`
      )
    )
  }

  const afterFailure = (
    ops: Spool.Ops,
    entries: ReadonlyArray<Entry>,
    journaled: ReadonlyArray<Entry>,
    cause: Cause.Cause<SqlError>
  ): Effect.Effect<void> => {
    state.add("storageErrors", 1)
    const error = Cause.failureOption(cause)
    const detail = error._tag === "Some" ? Spool.detailOf(error.value) : Cause.isDie(cause) ? "a defect while writing the spool" : "interrupted"
    // Events whose journal row was not written are still in memory: they are delivered from
    // there. Those that failed meanwhile need a backlog row.
    const spoolLater: Array<Spool.Item> = []
    for (const entry of journaled) {
      entry.journal = "none"
      if (entry.onDisk !== undefined && error._tag === "Some") Deferred.unsafeDone(entry.onDisk, Exit.fail(error.value))
      if (entry.early?.kind === "spool") {
        spoolLater.push(state.itemOf(entry, entry.early.reason))
        state.settle(entry)
      }
    }
    for (const entry of entries) {
      if (entry.onDisk !== undefined && error._tag === "Some") Deferred.unsafeDone(entry.onDisk, Exit.fail(error.value))
      state.settle(entry)
    }
    return Effect.zipRight(
      keep({ ...ops, journal: [], spool: ops.spool.concat(spoolLater) }, detail),
      Cause.isDie(cause)
        ? Effect.logError("observability: a defect while writing the spool", cause)
        : storageLog.add(1, truncate(detail, 300))
    )
  }

  /**
   * A defect while writing (a bug of ours, not the disk): trying the same writes again would meet
   * it again, so what they carried is counted and logged as lost, and the defect goes on to the
   * caller (the redeliverer stops on it; the writer loop logs it and carries on).
   */
  const afterDefect = (
    ops: Spool.Ops,
    entries: ReadonlyArray<Entry>,
    journaled: ReadonlyArray<Entry>,
    cause: Cause.Cause<SqlError>
  ): Effect.Effect<void> => {
    for (const entry of journaled) {
      entry.journal = "none"
      if (entry.early?.kind === "spool") ops.spool.push(state.itemOf(entry, entry.early.reason))
      state.settle(entry)
    }
    for (const entry of entries) state.settle(entry)
    const lost = ops.spool.length + ops.dead.length
    state.add("dropped", lost)
    return Effect.zipRight(
      Effect.logError(`observability: LOST ${lost} event(s): a defect while writing the spool`, cause),
      Effect.die(Cause.squash(cause))
    )
  }

  /** Brings the spool back within `spoolMax` when this process's count says it is over. */
  const bound: Effect.Effect<void> = Effect.suspend(() => {
    const { bytes, rows } = settings.spoolMax
    const over = (rows !== undefined && state.storedRows > rows) || (bytes !== undefined && state.storedBytes > bytes)
    // Only rows nobody holds can go; rows of events still in memory do not count against it for long.
    if (!over || state.spoolSize === 0) return Effect.void
    return Effect.matchEffect(spool.evict(settings.spoolMax, now()), {
      onFailure: (error) => Effect.zipRight(Effect.sync(() => state.add("storageErrors", 1)), storageLog.add(1, error.message)),
      onSuccess: (evicted) => {
        state.storedRows = evicted.size.rows
        state.storedBytes = evicted.size.bytes
        state.spoolSize = Math.max(0, state.spoolSize - evicted.count)
        state.add("evicted", evicted.count)
        return evicted.count === 0 ? Effect.void : evictLog.add(evicted.count, `first ${evicted.ids[0] ?? "?"}`)
      }
    })
  })

  /**
   * Commits the pending writes (and those kept from failed rounds) in one transaction, tried
   * again once after a short pause, then settles the events they carry. Interruptible: a commit
   * cut short (shutdown out of time) puts its writes back, so that nothing taken is forgotten.
   */
  const commitRound: Effect.Effect<void> = Effect.suspend(() => {
    const journaled = pending.journal.filter((entry) => entry.early === undefined)
    for (const entry of pending.journal) entry.journal = entry.early === undefined ? "committing" : "none"
    // The entries themselves: a copy per event would outlive the round in the old generation.
    const ops: Spool.Ops = { ...Spool.concatOps(kept, pending.ops), journal: journaled }
    const entries = pending.entries
    const releaseHeld = pending.releaseHeld
    const removed = removedBytes
    // Losses while the disk refused writes are logged once a second: the last of them, when it takes writes again.
    const recovering = Spool.opsSize(kept) > 0
    removedBytes = 0
    kept = Spool.emptyOps()
    pending.ops = Spool.emptyOps()
    pending.entries = []
    pending.journal = []
    pending.releaseHeld = false
    housekeepingSince = undefined
    if (Spool.opsSize(ops) === 0 && !releaseHeld) {
      for (const entry of entries) state.settle(entry)
      return Effect.void
    }
    const commit = Effect.suspend(() => spool.commit(ops, now(), { releaseHeld }))
    return commit.pipe(
      Effect.catchAll(() => Effect.zipRight(Effect.sleep(retryPause), commit)),
      Effect.matchCauseEffect({
        onSuccess: (committed) =>
          afterSuccess(ops, entries, journaled, committed, removed).pipe(
            Effect.zipRight(recovering ? lossLog.flush : Effect.void),
            Effect.zipRight(bound)
          ),
        onFailure: (cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.void
            : Cause.isDie(cause)
            ? afterDefect(ops, entries, journaled, cause)
            : afterFailure(ops, entries, journaled, cause)
      }),
      Effect.onInterrupt(() =>
        Effect.sync(() => {
          const back: Array<Entry> = []
          for (const entry of journaled) {
            const early = entry.early
            if (early === undefined) {
              entry.journal = "pending"
              back.push(entry)
              continue
            }
            entry.journal = "none"
            // It failed while its row was being written: it needs a backlog row of its own now.
            if (early.kind === "spool") {
              pending.ops.spool.push(state.itemOf(entry, early.reason))
              pending.entries.push(entry)
            }
          }
          pending.journal = back.concat(pending.journal)
          pending.ops = Spool.concatOps({ ...ops, journal: [] }, pending.ops)
          pending.entries = entries.concat(pending.entries)
          pending.releaseHeld = pending.releaseHeld || releaseHeld
          if (pending.ops.remove.length > 0) housekeepingSince ??= now()
          removedBytes += removed
        })
      )
    )
  })

  // One round at a time: a commit asked for while another is in flight (SIGTERM's, the
  // redeliverer's) waits for it. On SQLite a round runs to its end on the JS thread anyway; on
  // PostgreSQL it is asynchronous, and a signal handler that returned while the writer's
  // transaction was still open would end the process and roll it back.
  const oneRound = Effect.unsafeMakeSemaphore(1)
  const commitPending: Effect.Effect<void> = oneRound.withPermits(1)(Effect.zipRight(commitRound, tails.due))

  /** Counts and logs as lost what is still pending or kept: the process ends without having written it. */
  const lose = (why: string) => Effect.suspend(() => {
    const ops = Spool.concatOps(kept, pending.ops)
    const entries = pending.entries
    kept = Spool.emptyOps()
    pending.ops = Spool.emptyOps()
    pending.entries = []
    pending.journal = []
    housekeepingSince = undefined
    const lost = ops.spool.length + ops.dead.length
    state.add("dropped", lost)
    for (const entry of entries) state.settle(entry)
    if (lost === 0 && entries.length === 0) return Effect.void
    const ids = [...ops.spool, ...ops.dead].map((item) => item.id)
    return Effect.logError(
      `observability: LOST ${lost} event(s): ${why}; ` +
        `ids ${ids.slice(0, 50).join(", ")}${ids.length > 50 ? ", …" : ""}`
    )
  })

  const abandon = Effect.zipRight(tails.flush, lose("shutdown ran out of time to write the spool"))

  const finish = Effect.suspend(() => {
    pending.releaseHeld = true
    // A disk that still refuses the writes kept in memory: they end with the process, counted and logged.
    return commitPending.pipe(
      Effect.zipRight(tails.flush),
      Effect.zipRight(Effect.suspend(() =>
        Spool.opsSize(kept) === 0
          ? Effect.void
          : lose(`the spool cannot be written at shutdown (${truncate(keptBecause, 300)})`)
      ))
    )
  })

  const spoolNow = (entry: Entry, reason: string): Effect.Effect<void> => {
    const item = state.itemOf(entry, reason)
    return spool.commit({ ...Spool.emptyOps(), spool: [item] }, now()).pipe(
      Effect.matchCauseEffect({
        onSuccess: () => {
          state.add("spooled", 1)
          state.spoolSize++
          state.storedRows++
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
    if (state.closed) return spoolNow(entry, reason)
    settle(entry, { dead: false, reason, status: undefined })
    return Effect.void
  }

  const durable = (entry: Entry): Effect.Effect<void, SqlError> =>
    Effect.suspend(() => {
      if (entry.journal === "written" || entry.settled) return Effect.void
      if (entry.onDisk === undefined) entry.onDisk = Deferred.unsafeMake<void, SqlError>(FiberId.none)
      return Deferred.await(entry.onDisk)
    })

  const renew = Effect.suspend(() => {
    const at = now()
    nextRenewal = at + leaseMillis / 3
    return Effect.catchAll(spool.renew(at), (error) =>
      Effect.zipRight(Effect.sync(() => state.add("storageErrors", 1)), storageLog.add(1, error.message)))
  })

  /** The wait before a round: the commit interval, cut short by a write that should not wait. */
  const linger = Effect.suspend(() => Effect.raceFirst(Effect.sleep(settings.commitInterval), state.commitSignal.next()))
  const untilRenewal = () => Effect.sleep(Duration.millis(Math.max(1, nextRenewal - now())))

  const run = Effect.forever(
    Effect.suspend((): Effect.Effect<void> => {
      if (now() >= nextRenewal) return renew
      if (Spool.opsSize(kept) > 0 && !hasWork()) {
        // Writes of failed rounds: try again a little later (the disk may have room by then).
        return Effect.zipRight(Effect.sleep(settings.redeliveryInterval), commitPending)
      }
      if (!hasWork()) {
        // Leases need renewing only while this process may hold rows; an idle client arms no timer.
        if (!state.holdsRows()) {
          return tails.idle(Effect.zipRight(state.writeSignal.wait, Effect.sync(() => {
            nextRenewal = Math.max(nextRenewal, now() + leaseMillis / 3)
          })))
        }
        return tails.idle(Effect.raceFirst(state.writeSignal.next(), untilRenewal()))
      }
      if (urgent() || state.closing || pending.journal.length >= commitEvents) {
        return Effect.zipRight(Effect.yieldNow(), commitPending)
      }
      if (pending.journal.length === 0 && pending.ops.remove.length < commitEvents) {
        // Deletes alone: they wait for the next journal row (which wakes the writer) or their time.
        const wait = (housekeepingSince ?? now()) + housekeepingMillis - now()
        return wait > 0 ? Effect.raceFirst(Effect.sleep(Duration.millis(wait)), state.writeSignal.next()) : commitPending
      }
      return Effect.zipRight(linger, commitPending)
    }).pipe(Effect.catchAllDefect(() => Effect.void)) // logged where it happened
  )

  return {
    journal,
    settle,
    settleRow,
    takeKept,
    settleKept,
    keptEvents: () => kept.spool.length,
    overflow,
    spoolNow,
    durable,
    commitPending,
    finish,
    abandon,
    run
  }
}
