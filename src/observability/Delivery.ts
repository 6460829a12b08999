/**
 * Delivery: each request through the one protection pipeline (policy and breaker
 * `observability`, `observability_event` / `observability_batch` per attempt, retries drawn from
 * the budget, logged quietly), its answer classified (`Answer.ts`), and the workers that take
 * events from the queue and hand each outcome to the spool writer.
 *
 * Single mode sends one `POST /events` per event, `concurrency` at a time. Batch mode gathers up
 * to `batchSize` events (lingering a little for more) and sends `POST /events/batch`; a server
 * without the batch route (the public one answers 200 text/plain) is a misconfiguration: logged,
 * the client falls back to single mode for good and re-sends the batch one by one.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type { Big3Error } from "../Errors.js"
import type { Protector } from "../Resilience.js"
import type { Failure, Result } from "./Answer.js"
import * as Answer from "./Answer.js"
import type { Settings } from "./Options.js"
import type { Entry, State } from "./State.js"
import type * as Transport from "./Transport.js"
import { withSpanWhenTraced } from "../internal/tracing.js"

export interface Delivery {
  /**
   * Delivers bodies in the mode in force: single mode, `concurrency` requests at a time; batch
   * mode, batches of `batchSize`, `settings.concurrency` at a time (`concurrency` again for a
   * batch that has to go one by one). One result per body, in order.
   */
  readonly deliver: (bodies: ReadonlyArray<string>, concurrency: number) => Effect.Effect<Array<Result>>
  /** One `POST /events` (the single-mode worker's step). */
  readonly sendOne: (body: string) => Effect.Effect<Result>
  /** Requests in flight at once in single mode (the redeliverer's concurrency too). */
  readonly singleConcurrency: number
  /** Per batch worker, when its batch goes one by one: all workers together keep `singleConcurrency` in flight. */
  readonly splitConcurrency: number
}

export interface DeliveryOptions {
  readonly settings: Settings
  readonly state: State
  readonly transport: Transport.Transport
  readonly clock: Clock.Clock
  readonly protectSingle: Protector
  readonly protectBatch: Protector
  readonly singleConcurrency: number
}

export const make = (options: DeliveryOptions): Delivery => {
  const { clock, settings, state, transport } = options
  const context = () => ({ url: settings.url, batchUrl: settings.batchUrl, now: clock.unsafeCurrentTimeMillis() })

  const postSingle = (body: string): Effect.Effect<void, Big3Error> =>
    Effect.flatMap(transport.post("single", body), (answer) => {
      const error = Answer.checkSingle(context(), answer)
      return error === undefined ? Effect.void : Effect.fail(error)
    })

  const postBatch = (bodies: ReadonlyArray<string>): Effect.Effect<Answer.BatchVerdict, Big3Error> =>
    Effect.flatMap(transport.post("batch", `[${bodies.join(",")}]`), (answer) => {
      const verdict = Answer.checkBatch(context(), bodies.length, answer)
      return typeof verdict === "string" ? Effect.succeed(verdict) : Effect.fail(verdict)
    })

  // Only the server's answers (and its silence) are outcomes; a defect is a bug of ours and
  // goes up to the worker or the redeliverer. Built once: `sendOne` runs for every event.
  const toResult = { onSuccess: (): Result => undefined, onFailure: Answer.failureOf }
  const traceSingle = withSpanWhenTraced("Observability.deliverEvent")
  const sendOne = (body: string): Effect.Effect<Result> =>
    traceSingle(Effect.match(options.protectSingle(postSingle(body)), toResult))

  const sendEach = (bodies: ReadonlyArray<string>, concurrency: number): Effect.Effect<Array<Result>> =>
    Effect.forEach(bodies, sendOne, { concurrency })

  const fallBackToSingle = (reason: string) =>
    Effect.suspend(() => {
      if (state.mode === "single") return Effect.void
      state.mode = "single"
      return Effect.logError(
        `observability: batch delivery is misconfigured: ${reason}. The server has no batch route ` +
          `(the public observability server only has POST /events). Falling back to single mode ` +
          `(one POST ${settings.url.href} per event) for the rest of this run; set BIG3_EVENTS_MODE=single ` +
          `to make it permanent. Nothing was lost: the batch is sent again one by one.`
      )
    })

  const splitConcurrency = Math.max(1, Math.ceil(options.singleConcurrency / settings.concurrency))

  const sendBatch = (bodies: ReadonlyArray<string>, concurrency: number): Effect.Effect<Array<Result>> =>
    Effect.matchEffect(options.protectBatch(postBatch(bodies)), {
      onSuccess: (verdict): Effect.Effect<Array<Result>> => {
        if (verdict === "accepted") return Effect.succeed(new Array<Result>(bodies.length).fill(undefined))
        const why = verdict === "not-batch-route"
          ? fallBackToSingle(`${settings.batchUrl.href} did not answer like a batch route`)
          : Effect.logWarning(
            `observability: the server refused a batch of ${bodies.length} as a whole; sending its events one by one`
          )
        return Effect.zipRight(why, sendEach(bodies, concurrency))
      },
      onFailure: (error) => Effect.succeed(new Array<Result>(bodies.length).fill(Answer.failureOf(error)))
    }).pipe(withSpanWhenTraced("Observability.deliverBatch", { "big3.events": bodies.length }))

  const deliver = (bodies: ReadonlyArray<string>, concurrency: number): Effect.Effect<Array<Result>> => {
    if (state.mode === "single") return sendEach(bodies, concurrency)
    if (bodies.length <= settings.batchSize) return sendBatch(bodies, concurrency)
    const batches: Array<ReadonlyArray<string>> = []
    for (let i = 0; i < bodies.length; i += settings.batchSize) batches.push(bodies.slice(i, i + settings.batchSize))
    return Effect.map(
      Effect.forEach(
        batches,
        (batch) => state.mode === "single" ? sendEach(batch, splitConcurrency) : sendBatch(batch, splitConcurrency),
        { concurrency: settings.concurrency }
      ),
      (results) => results.flat()
    )
  }

  return { deliver, sendOne, singleConcurrency: options.singleConcurrency, splitConcurrency }
}

// ---------------------------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------------------------

/** What a worker is delivering right now, so that shutdown can spool it if it is cut short. */
export interface Slot {
  current: ReadonlyArray<Entry> | undefined
}

export interface WorkerOptions {
  readonly settings: Settings
  readonly state: State
  readonly queue: Queue.Queue<Entry>
  readonly delivery: Delivery
  /** Hands an outcome to the spool writer. */
  readonly settle: (entry: Entry, result: Result) => void
}

const afterDefect: Failure = { dead: false, reason: "not delivered: a defect in delivery (see the log)", status: undefined }

/**
 * One round of a worker, supervised: a defect (a bug of ours, not an answer of the server) is
 * logged as an error with its cause, the events the worker held go to the spool, and the worker
 * carries on, so that the rest of the queue is still delivered and no flush waits forever.
 */
const supervised = (options: WorkerOptions, slot: Slot, round: Effect.Effect<void>): Effect.Effect<void> =>
  Effect.catchAllDefect(round, (defect) => {
    const held = slot.current ?? []
    slot.current = undefined
    for (const entry of held) options.settle(entry, afterDefect)
    return Effect.logError(
      `observability: a delivery worker met a defect; ${held.length} event(s) it held went to the spool`,
      Cause.die(defect)
    )
  })

/** A worker of the mode configured at start: takes from the queue forever. */
export const worker = (options: WorkerOptions, slot: Slot): Effect.Effect<never> => {
  const { delivery, queue, settings, state } = options
  if (settings.mode === "single") {
    // Each round waits for the network, so the loop need not yield as `Effect.forever` does after
    // every round; the runtime still yields after its own count of steps.
    const loop: Effect.Effect<never> = Effect.flatMap(Queue.take(queue), (entry) => {
      slot.current = [entry]
      return Effect.flatMap(delivery.sendOne(entry.body), (result) => {
        slot.current = undefined
        options.settle(entry, result)
        return loop
      })
    })
    return Effect.forever(supervised(options, slot, loop))
  }
  const lingerMillis = Duration.toMillis(settings.linger)
  /** Up to `batchSize` events, waiting at most `linger` for more (not while a flush waits). */
  const collect: Effect.Effect<ReadonlyArray<Entry>> = Effect.flatMap(
    Queue.takeBetween(queue, 1, settings.batchSize),
    (first) => {
      const taken = Chunk.toReadonlyArray(first)
      slot.current = taken
      if (taken.length >= settings.batchSize || lingerMillis <= 0 || state.pendingFlushes > 0 || state.closing) {
        return Effect.succeed(taken)
      }
      return Effect.raceFirst(Effect.sleep(settings.linger), state.flushSignal.wait).pipe(
        Effect.zipRight(Queue.takeUpTo(queue, settings.batchSize - taken.length)),
        Effect.map((more) => {
          const all = more.length === 0 ? taken : taken.concat(Chunk.toReadonlyArray(more))
          slot.current = all
          return all
        })
      )
    }
  )
  return Effect.forever(supervised(
    options,
    slot,
    Effect.flatMap(collect, (entries) =>
      Effect.map(delivery.deliver(entries.map((entry) => entry.body), delivery.splitConcurrency), (results) => {
        slot.current = undefined
        for (let i = 0; i < entries.length; i++) options.settle(entries[i]!, results[i])
      }))
  ))
}
