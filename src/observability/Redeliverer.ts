/**
 * The redeliverer: drains the spool, oldest first (emit order), a page at a time, whenever it is
 * not empty and the breaker is not open (its half-open trial calls are the probe: the public
 * server has no health route). A page is claimed first (owner and lease), so that one row has
 * one drainer across processes; delivered rows are deleted as they are acknowledged, refused
 * ones move to the dead letters, the rest are released for the next pass. Failed deliveries that
 * a full or failing disk left in memory (the writer's) come first: they are delivered from there,
 * so that a server that is back before the disk takes them. Also the spool's readers for the
 * service (`drainSpool`, `deadLetters`, `requeueDeadLetters`).
 *
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import type { Breaker } from "../CircuitBreaker.js"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { Result } from "./Answer.js"
import type { Delivery } from "./Delivery.js"
import type { DeadLetter, DrainResult } from "./Domain.js"
import type { Settings } from "./Options.js"
import * as Spool from "./Spool.js"
import type { SpoolWriter } from "./SpoolWriter.js"
import type { State } from "./State.js"
import { tailsOf, tally } from "./State.js"

/** What one pass over a page did. */
export interface Pass {
  readonly rows: number
  readonly delivered: number
  readonly dead: number
}

export interface Redeliverer {
  /**
   * The background loop: runs until interrupted. A spool that cannot be read or updated is
   * logged and counted (`storageErrors`) and tried again after `redeliveryInterval`; a defect
   * stops the loop with an error in the log (the spool is redelivered at the next start).
   */
  readonly run: Effect.Effect<never>
  /** Redelivers page by page until the spool is empty or a page makes no progress. */
  readonly drain: Effect.Effect<DrainResult, SqlError>
  /** The most recent dead letters, newest first. */
  readonly deadLetters: (limit: number) => Effect.Effect<ReadonlyArray<DeadLetter>, SqlError>
  /** Moves every dead letter back to the spool; returns how many. */
  readonly requeueDeadLetters: Effect.Effect<number, SqlError>
}

export interface RedelivererOptions {
  readonly spool: Spool.Spool
  readonly state: State
  readonly settings: Settings
  readonly clock: Clock.Clock
  readonly delivery: Delivery
  readonly breaker: Breaker
  readonly writer: SpoolWriter
}

const noPass: Pass = { rows: 0, delivered: 0, dead: 0 }

export const make = (options: RedelivererOptions): Effect.Effect<Redeliverer> =>
  Effect.map(Effect.makeSemaphore(1), (lock): Redeliverer => {
    const { clock, delivery, settings, spool, state, writer } = options
    const now = () => clock.unsafeCurrentTimeMillis()
    const redeliveryLog = tally(now, (n) =>
      Effect.logInfo(`observability: redelivered ${n} event(s) from the spool; ${state.spoolSize} left`))
    const fromMemoryLog = tally(now, (n) =>
      Effect.logInfo(
        `observability: delivered ${n} event(s) held in memory while the spool cannot be written; ${writer.keptEvents()} left there`
      ))

    // A spool that cannot be read is tried again every `redeliveryInterval`, however short: one
    // line a second at most, with the count.
    const claimErrorLog = tally(now, (n, reason) =>
      Effect.logError(
        `observability: ${reason}; its events stay there and redelivery will try again` +
          `${n > 1 ? ` (${n} failed reads in the last second)` : ""}`
      ))

    const tails = tailsOf([redeliveryLog, fromMemoryLog, claimErrorLog])

    /** Counts and logs a failed read or write of the spool, and fails with it. */
    const storageError = (error: SqlError, consequence: string) =>
      Effect.suspend(() => {
        state.add("storageErrors", 1)
        return Effect.logError(`observability: ${error.message}; ${consequence}`)
      })

    /**
     * Delivers `items` in the mode in force (one request each, or batches), and hands each group's
     * results to `settle` as they come, with the group's place in `items`.
     */
    const deliverAll = <A extends { readonly body: string }>(
      items: ReadonlyArray<A>,
      settle: (group: ReadonlyArray<A>, start: number, results: ReadonlyArray<Result>) => void
    ): Effect.Effect<void> => {
      const chunk = state.mode === "batch" ? settings.batchSize : 1
      const starts: Array<number> = []
      for (let i = 0; i < items.length; i += chunk) starts.push(i)
      return Effect.forEach(
        starts,
        (start) => {
          const group = items.slice(start, start + chunk)
          return Effect.map(
            delivery.deliver(group.map((item) => item.body), delivery.singleConcurrency),
            (results) => settle(group, start, results)
          )
        },
        { concurrency: chunk === 1 ? delivery.singleConcurrency : settings.concurrency, discard: true }
      )
    }

    /**
     * One redelivery pass: claims the oldest page of rows nobody holds and delivers it, each
     * outcome recorded as it comes (a delivered row is deleted in the writer's next round, so an
     * interrupted pass keeps what it delivered), then commits the outcomes.
     */
    const redeliverPage: Effect.Effect<Pass, SqlError> = lock.withPermits(1)(
      Effect.gen(function*() {
        const rows = yield* spool.claim(settings.spoolPageSize, now()).pipe(
          Effect.tapError((error) =>
            Effect.suspend(() => {
              state.add("storageErrors", 1)
              return claimErrorLog.add(1, error.message)
            })
          )
        )
        if (rows.length === 0) {
          state.spoolSize = 0
          return noPass
        }
        state.redelivering = true
        let delivered = 0
        let dead = 0
        yield* deliverAll(rows, (group, _start, results) => {
          let deliveredNow = 0
          let released = 0
          for (let i = 0; i < group.length; i++) {
            const result = results[i]
            writer.settleRow(group[i]!, result)
            if (result === undefined) deliveredNow++
            else if (result.dead) dead++
            else released++
          }
          delivered += deliveredNow
          state.add("redelivered", deliveredNow)
          state.spoolSize = Math.max(0, state.spoolSize - group.length + released)
        })
        yield* writer.commitPending
        // Dead letters are logged by the writer's round that writes them, once.
        yield* redeliveryLog.add(delivered, "")
        return { rows: rows.length, delivered, dead }
      }).pipe(Effect.ensuring(Effect.sync(() => {
        state.redelivering = false
      })))
    )

    /**
     * One pass over failed deliveries that the disk left in memory: each outcome goes back to the
     * writer (delivered: done; refused: a dead letter; not now: spooled, or kept again while the
     * disk refuses). Interrupted, what it had not delivered goes back the same way.
     */
    const redeliverKept: Effect.Effect<Pass> = lock.withPermits(1)(
      Effect.suspend(() => {
        const items = writer.takeKept(settings.spoolPageSize)
        if (items.length === 0) return Effect.succeed(noPass)
        const settled = new Array<boolean>(items.length).fill(false)
        let delivered = 0
        let dead = 0
        return deliverAll(items, (group, start, results) => {
          for (let i = 0; i < group.length; i++) {
            const result = results[i]
            settled[start + i] = true
            writer.settleKept(group[i]!, result)
            if (result === undefined) delivered++
            else if (result.dead) dead++
          }
        }).pipe(
          Effect.onExit(() =>
            Effect.sync(() => {
              for (let i = 0; i < items.length; i++) {
                if (!settled[i]) writer.settleKept(items[i]!, { dead: false, reason: "interrupted before it was delivered", status: undefined })
              }
              state.add("redelivered", delivered)
            })
          ),
          Effect.zipRight(Effect.suspend(() => fromMemoryLog.add(delivered, ""))),
          Effect.map((): Pass => ({ rows: items.length, delivered, dead }))
        )
      })
    )

    const run = Effect.forever(
      Effect.suspend(() => {
        const kept = writer.keptEvents() > 0
        if (state.spoolSize === 0 && !kept) return tails.idle(state.spoolSignal.wait)
        // While the breaker is open every call would be refused: wait for its half-open trials.
        if (options.breaker.state(now()) === "open") return Effect.sleep(settings.redeliveryInterval)
        // What memory holds for a disk that refuses it comes first: it is lost if the process stops.
        return Effect.matchEffect(kept ? redeliverKept : redeliverPage, {
          onFailure: () => Effect.zipRight(tails.due, Effect.sleep(settings.redeliveryInterval)),
          onSuccess: (pass) =>
            Effect.zipRight(
              tails.due,
              pass.delivered === 0 && pass.dead === 0 ? Effect.sleep(settings.redeliveryInterval) : Effect.void
            )
        })
      })
    ).pipe(
      // Stopped at shutdown: what the last second held back is said before the summary.
      Effect.ensuring(tails.flush),
      Effect.tapDefect((cause) =>
        Effect.logError("observability: spool redelivery stopped on a defect; the spool is redelivered at the next start", cause)
      )
    )

    const drain: Effect.Effect<DrainResult, SqlError> = Effect.gen(function*() {
      let redelivered = 0
      let deadLettered = 0
      while (true) {
        const fromMemory = yield* redeliverKept
        const pass = yield* redeliverPage
        redelivered += fromMemory.delivered + pass.delivered
        deadLettered += fromMemory.dead + pass.dead
        const progress = pass.delivered + pass.dead + fromMemory.delivered + fromMemory.dead
        if ((pass.rows === 0 && fromMemory.rows === 0) || progress === 0) break
      }
      const left = yield* spool.counts(now()).pipe(
        Effect.tapError((error) => storageError(error, "what is left in it is unknown"))
      )
      state.spoolSize = left.backlog
      return { redelivered, deadLettered, remaining: left.backlog, held: left.held }
    })

    const deadLetters = (limit: number): Effect.Effect<ReadonlyArray<DeadLetter>, SqlError> =>
      spool.deadLetters(Math.max(0, Math.floor(limit))).pipe(
        Effect.map((rows) =>
          rows.map((row): DeadLetter => ({
            seq: row.seq,
            id: row.id,
            body: row.body,
            reason: row.reason,
            status: row.status ?? undefined,
            failedAt: row.failed_at
          }))
        ),
        Effect.tapError(() => Effect.sync(() => state.add("storageErrors", 1)))
      )

    const requeueDeadLetters: Effect.Effect<number, SqlError> = lock.withPermits(1)(
      Effect.suspend(() => spool.requeueDeadLetters(now())).pipe(
        Effect.tap((moved) =>
          Effect.sync(() => {
            state.spoolSize += moved
            state.deadLetterSize = Math.max(0, state.deadLetterSize - moved)
            if (moved > 0) state.spoolSignal.fire()
          })
        ),
        Effect.tapError(() => Effect.sync(() => state.add("storageErrors", 1)))
      )
    )

    return { run, drain, deadLetters, requeueDeadLetters }
  })
