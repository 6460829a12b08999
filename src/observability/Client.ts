/**
 * The observability client's engine: validation and stamping in `emit`, the in-memory queue,
 * the delivery workers, the spool writer, the spool redeliverer and the shutdown flush.
 *
 * Life of an event:
 *
 * 1. `emit` validates it (a bad event is counted as `rejected` and logged), stamps `id` (a
 *    UUIDv7, sortable by time) and `timestamp`, serialises it once, and offers the JSON to a
 *    bounded queue. Write-ahead mode first inserts it in the spool (`held = 1`). A full queue sends
 *    it to the spool writer instead. `emit` never fails and never waits for the network.
 * 2. Workers take from the queue: single mode, `concurrency` workers with one `POST /events`
 *    each; batch mode, `concurrency` workers that gather up to `batchSize` events (waiting at most
 *    `linger` for a batch to fill) and `POST /events/batch`. Each request goes through
 *    `Resilience.withRetry` (policy `observability`, drawing on the retry budget) →
 *    `CircuitBreaker.guard` (breaker `observability`) → the transport, which bounds it by
 *    `observability_event` / `observability_batch`.
 * 3. Outcomes: 2xx → delivered. Retryable failures that exhausted their retries, and calls the
 *    open breaker refused → spooled (SQLite), redelivered later in order. Non-retryable answers
 *    (4xx) → dead-letter table with the reason, never retried. A batch route that answers like
 *    the public server (200 text/plain) is a misconfiguration: logged as an error, the client
 *    falls back to single mode for good and re-sends that batch one by one (nothing was stored).
 * 4. The redeliverer drains the spool, oldest first, whenever it is not empty and the breaker is
 *    not open (its half-open trial calls are the probe: the public server has no health route).
 * 5. Closing the layer's scope flushes within `graceful_shutdown`, then aborts what is still in
 *    flight and spools it, with whatever is still queued: the next start redelivers it.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import { randomUUID } from "node:crypto"
import * as CircuitBreaker from "../CircuitBreaker.js"
import type { Big3Error } from "../Errors.js"
import * as Errors from "../Errors.js"
import * as Metrics from "../Metrics.js"
import { ReliabilityConfig } from "../ReliabilityConfig.js"
import * as Resilience from "../Resilience.js"
import type { DeadLetter, DrainResult, Service, Stats } from "./Domain.js"
import { EventInput, Observability, refusedField } from "./Domain.js"
import type { Mode, Settings } from "./Options.js"
import { defaults } from "./Options.js"
import * as Spool from "./Spool.js"
import * as Transport from "./Transport.js"

const service = Transport.service

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

/** A one-shot broadcast: `wait` resumes at the next `fire`. */
class Signal {
  private deferred = Deferred.unsafeMake<void>(FiberId.none)
  readonly wait: Effect.Effect<void> = Effect.suspend(() => Deferred.await(this.deferred))
  fire(): void {
    const fired = this.deferred
    this.deferred = Deferred.unsafeMake<void>(FiberId.none)
    Deferred.unsafeDone(fired, Exit.void)
  }
}

/** A UUIDv7 (RFC 9562): 48 bits of milliseconds, then random bits; sorts by creation time. */
export const uuidv7 = (now: number): string => {
  const random = randomUUID()
  const hex = Math.max(0, Math.floor(now)).toString(16).padStart(12, "0").slice(-12)
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7${random.slice(15)}`
}

/** The `id` of a body built by `emit` (`{"id":"…",…}`), without parsing the whole event. */
export const idOf = (body: string): string => {
  if (body.startsWith("{\"id\":\"")) {
    for (let i = 7; i < body.length; i++) {
      const char = body.charCodeAt(i)
      if (char === 92) i++ // backslash: skip the escaped character
      else if (char === 34) {
        try {
          const id: unknown = JSON.parse(body.slice(6, i + 1))
          if (typeof id === "string") return id
        } catch {
          // fall through to parsing the whole body
        }
        break
      }
    }
  }
  try {
    const parsed: unknown = JSON.parse(body)
    return typeof parsed === "object" && parsed !== null && "id" in parsed && typeof parsed.id === "string"
      ? parsed.id
      : ""
  } catch {
    return ""
  }
}

/**
 * An accepted event: its JSON, its spool row when it was written ahead (`seq > 0`), the flush
 * generation it was accepted in (a flush waits for its generation and the older ones), and its
 * place in emit order (the spool redelivers in that order). Kept small: 100,000 of them wait in
 * memory when the server is slow.
 */
class Entry {
  constructor(
    readonly body: string,
    readonly seq: number,
    readonly generation: number,
    readonly ordinal: number
  ) {}
}

/** Why an event was not delivered. `dead`: refused for good (dead-letter it). */
interface Failure {
  readonly dead: boolean
  readonly reason: string
  readonly status: number | undefined
}

/** `undefined`: delivered. */
type Result = Failure | undefined

const truncate = (text: string, max = 500): string => text.length <= max ? text : `${text.slice(0, max - 1)}…`

const isEventInput = Schema.is(EventInput)
const decodeEventInput = Schema.decodeUnknownEither(EventInput)

const kinds = [
  "emitted",
  "delivered",
  "retried",
  "spooled",
  "redelivered",
  "dead_lettered",
  "rejected",
  "dropped",
  "journaled"
] as const
type Kind = (typeof kinds)[number]
const labels = new Map(kinds.map((kind) => [kind, Metrics.labelsFor(service, { kind })]))
const count = (kind: Kind, n: number): void => {
  if (n > 0) Metrics.events.unsafeUpdate(n, labels.get(kind) ?? Metrics.labelsFor(service, { kind }))
}

/** The batch route's verdict on a batch, when it answered. */
type BatchVerdict = "accepted" | "not-batch-route" | "split"

const isSuccess = (status: number) => status >= 200 && status < 300

const isJson = (text: string): boolean => {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/**
 * A pause on the wall clock (a timer, not the Effect `Clock`): for I/O batching and disk retries,
 * which are not behaviour a test drives with `TestClock`.
 */
const wallPause = (millis: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

// ---------------------------------------------------------------------------------------------
// The engine
// ---------------------------------------------------------------------------------------------

/**
 * Builds the client in the current scope. Needs the store (`SqlClient`); the `HttpClient` is
 * used when `settings.transport` is `"http-client"`. Fails only when the store cannot be opened.
 */
export const make = (
  settings: Settings
): Effect.Effect<
  Service,
  SqlError,
  ReliabilityConfig | CircuitBreaker.CircuitBreaker | HttpClient.HttpClient | SqlClient.SqlClient | Scope.Scope
> =>
  Effect.gen(function*() {
    const config = yield* ReliabilityConfig
    const registry = yield* CircuitBreaker.CircuitBreaker
    const clock = yield* Effect.clock
    const layerScope = yield* Effect.scope
    const breaker = registry.get(service)
    const budget = registry.budget(service)
    const policy = config.policyOf("observability")
    const gracefulShutdown = config.timeoutOf("graceful_shutdown")

    const spool = yield* Spool.make
    const opened = yield* spool.open

    const singleConcurrency = settings.mode === "single" ? settings.concurrency : defaults.singleConcurrency
    const transportOptions: Transport.TransportOptions = {
      url: settings.url,
      batchUrl: settings.batchUrl,
      apiKey: settings.apiKey,
      connections: Math.max(singleConcurrency, settings.concurrency),
      eventTimeout: config.timeoutOf("observability_event"),
      batchTimeout: config.timeoutOf("observability_batch")
    }
    const transport = settings.transport === "undici"
      ? yield* Transport.undici(transportOptions)
      : yield* Transport.httpClient(transportOptions)

    // ---- state -----------------------------------------------------------------------------
    let mode: Mode = settings.mode
    let emitted = 0
    let delivered = 0
    let retried = 0
    let spooled = 0
    let redelivered = 0
    let deadLettered = 0
    let rejected = 0
    let dropped = 0
    let journaled = 0
    let spoolSize = opened.backlog
    let deadLetterSize = opened.deadLetters
    let closing = false
    let closed = false

    const queue = yield* Queue.bounded<Entry>(settings.queueCapacity)

    // Flush bookkeeping: accepted events without an outcome yet, by generation. A flush closes
    // the current generation and waits until it and every older one is empty (Map keys are in
    // insertion order, which is generation order, so the first key is the oldest open one).
    let generation = 0
    const outstanding = new Map<number, number>()
    const waiters: Array<{ readonly generation: number; readonly deferred: Deferred.Deferred<void> }> = []
    let pendingFlushes = 0

    /** With `ordinal`, the spool's order: this client's start, then emit order within it. */
    const epoch = clock.unsafeCurrentTimeMillis()
    let ordinals = 0
    const accept = (body: string, seq: number, ordinal: number): Entry => {
      const entry = new Entry(body, seq, generation, ordinal)
      outstanding.set(generation, (outstanding.get(generation) ?? 0) + 1)
      return entry
    }

    const releaseWaiters = (): void => {
      const oldestOpen = outstanding.size === 0 ? Infinity : outstanding.keys().next().value!
      while (waiters.length > 0 && waiters[0]!.generation < oldestOpen) {
        Deferred.unsafeDone(waiters.shift()!.deferred, Exit.void)
      }
    }

    /** The event has its outcome (delivered, spooled, dead-lettered or lost). */
    const settle = (entry: Entry): void => {
      const left = (outstanding.get(entry.generation) ?? 1) - 1
      if (left > 0) {
        outstanding.set(entry.generation, left)
        return
      }
      outstanding.delete(entry.generation)
      if (waiters.length > 0) releaseWaiters()
    }

    const itemOf = (entry: Entry, reason: string): Spool.Item => ({
      id: idOf(entry.body),
      body: entry.body,
      reason,
      epoch,
      ordinal: entry.ordinal
    })

    /** Writes waiting for the spool writer, and the events they settle once committed. */
    let pending = Spool.emptyOps()
    let pendingEntries: Array<Entry> = []
    const writeSignal = new Signal()
    const spoolSignal = new Signal()
    const flushSignal = new Signal()

    // ---- delivery ----------------------------------------------------------------------------
    const guard = CircuitBreaker.guard(breaker)
    // Per-event retry lines would flood the log during an outage; the client logs what it spools.
    const retrySingle = Resilience.withRetry(policy, { service, operation: "observability_event", budget, quiet: true })
    const retryBatch = Resilience.withRetry(policy, { service, operation: "observability_batch", budget, quiet: true })
    const attemptLabels = Metrics.labelsFor(service)

    const misrouted = (route: Transport.Route, answer: Transport.Answer) =>
      `${route === "single" ? settings.url.href : settings.batchUrl.href} answered HTTP ${answer.status} ` +
      `${answer.contentType || "without a content type"}${
        answer.body === undefined ? "" : ` "${truncate(answer.body.trim(), 80)}"`
      }, not an events acknowledgement: check OBSERVABILITY_SERVER_URL`

    const httpError = (answer: Transport.Answer): Big3Error =>
      Errors.fromHttp({
        service,
        status: answer.status,
        headers: answer.headers,
        body: answer.body,
        now: clock.unsafeCurrentTimeMillis()
      })

    const checkSingle = (answer: Transport.Answer): Effect.Effect<void, Big3Error> => {
      if (!isSuccess(answer.status)) return Effect.fail(httpError(answer))
      // The public server answers 200 text/plain to every route but POST /events: a URL that
      // points elsewhere would look delivered and lose everything.
      if (answer.contentType.startsWith("text/")) {
        return Effect.fail(new Errors.InvalidRequest({ service, status: answer.status, message: misrouted("single", answer) }))
      }
      // A JSON acknowledgement (the saved event) that is not whole JSON: a garbled answer, so it
      // is not proof of storage. Asking again loses nothing (the events route is idempotent on
      // `id` in big3's server; the public one may store a duplicate, which beats losing it).
      if (answer.body !== undefined && !answer.truncated && answer.body.length > 0 && !isJson(answer.body)) {
        return Effect.fail(
          new Errors.ServiceUnavailable({
            service,
            status: answer.status,
            message: `${settings.url.href} answered HTTP ${answer.status} with a garbled acknowledgement (not JSON)`
          })
        )
      }
      return Effect.void
    }

    const checkBatch = (size: number) => (answer: Transport.Answer): Effect.Effect<BatchVerdict, Big3Error> => {
      if (isSuccess(answer.status)) {
        // 200 text/plain is the public server's answer to a route it does not have.
        if (!answer.contentType.includes("json")) return Effect.succeed("not-batch-route")
        let ack: unknown
        try {
          ack = JSON.parse(answer.body ?? "")
        } catch {
          // The batch route is idempotent: asking again is safe.
          return Effect.fail(
            new Errors.ServiceUnavailable({
              service,
              status: answer.status,
              message: `${settings.batchUrl.href} answered HTTP ${answer.status} with an acknowledgement that is not JSON`
            })
          )
        }
        if (typeof ack !== "object" || ack === null || !("accepted" in ack) || typeof ack.accepted !== "number") {
          return Effect.succeed("not-batch-route")
        }
        const duplicates = "duplicates" in ack && typeof ack.duplicates === "number" ? ack.duplicates : 0
        return Effect.succeed(ack.accepted + duplicates >= size ? "accepted" : "split")
      }
      // No batch route here (404 / 405 / 501), or a batch the server refused as a whole (one bad
      // event, too large): the events themselves may be fine, so they go one by one.
      if (answer.status === 404 || answer.status === 405 || answer.status === 501) return Effect.succeed("not-batch-route")
      if (answer.status === 400 || answer.status === 413 || answer.status === 422) return Effect.succeed("split")
      return Effect.fail(httpError(answer))
    }

    /** One protected call: retry → breaker → the transport (which bounds each attempt). */
    const protect = <A>(
      retry: typeof retrySingle,
      call: Effect.Effect<A, Big3Error>
    ): Effect.Effect<A, Big3Error> =>
      Effect.suspend(() => {
        budget.recordCall(clock.unsafeCurrentTimeMillis())
        let attempt = 0
        const guarded = guard(call)
        return retry(Effect.suspend(() => {
          if (attempt++ > 0) {
            retried++
            count("retried", 1)
          }
          Metrics.attempts.unsafeUpdate(1, attemptLabels)
          return guarded
        }))
      })

    const classify = (cause: Cause.Cause<Big3Error>): Failure => {
      const failure = Cause.failureOption(cause)
      if (Option.isSome(failure)) {
        const error = failure.value
        const status = "status" in error ? error.status : undefined
        const reason = truncate(`${error._tag}: ${error.message}`)
        return { dead: error._tag !== "CircuitOpen" && !error.retryable, reason, status }
      }
      if (Cause.isInterruptedOnly(cause)) return { dead: false, reason: "interrupted", status: undefined }
      return { dead: false, reason: truncate(`defect: ${Cause.pretty(cause)}`), status: undefined }
    }

    const logDefect = (cause: Cause.Cause<Big3Error>) =>
      Cause.isDie(cause)
        ? Effect.logError("observability: delivery failed with a defect; the event goes to the spool", cause)
        : Effect.void

    const sendOne = (body: string): Effect.Effect<Result> =>
      Effect.matchCauseEffect(
        protect(retrySingle, Effect.flatMap(transport.post("single", body), checkSingle)),
        {
          onSuccess: () => Effect.succeed(undefined),
          onFailure: (cause) => Effect.as(logDefect(cause), classify(cause))
        }
      )

    const sendEach = (bodies: ReadonlyArray<string>, concurrency: number): Effect.Effect<Array<Result>> =>
      Effect.forEach(bodies, sendOne, { concurrency })

    const fallBackToSingle = (reason: string) =>
      Effect.suspend(() => {
        if (mode === "single") return Effect.void
        mode = "single"
        return Effect.logError(
          `observability: batch delivery is misconfigured: ${reason}. The server has no batch route ` +
            `(the public observability server only has POST /events). Falling back to single mode ` +
            `(one POST ${settings.url.href} per event) for the rest of this run; set BIG3_EVENTS_MODE=single ` +
            `to make it permanent. Nothing was lost: the batch is sent again one by one.`
        )
      })

    /** Per batch worker, when its batch goes one by one: all workers together keep `singleConcurrency` in flight. */
    const splitConcurrency = Math.max(1, Math.ceil(singleConcurrency / settings.concurrency))

    const sendBatch = (bodies: ReadonlyArray<string>, concurrency: number): Effect.Effect<Array<Result>> =>
      Effect.matchCauseEffect(
        protect(retryBatch, Effect.flatMap(transport.post("batch", `[${bodies.join(",")}]`), checkBatch(bodies.length))),
        {
          onSuccess: (verdict): Effect.Effect<Array<Result>> => {
            if (verdict === "accepted") return Effect.succeed(new Array<Result>(bodies.length).fill(undefined))
            const why = verdict === "not-batch-route"
              ? fallBackToSingle(`${settings.batchUrl.href} did not answer like a batch route`)
              : Effect.logWarning(
                `observability: the server refused a batch of ${bodies.length} as a whole; sending its events one by one`
              )
            return Effect.zipRight(why, sendEach(bodies, concurrency))
          },
          onFailure: (cause) => Effect.as(logDefect(cause), new Array<Result>(bodies.length).fill(classify(cause)))
        }
      )

    /**
     * Delivers bodies in the mode in force: single mode, `concurrency` requests at a time; batch
     * mode, batches of `batchSize`, `settings.concurrency` at a time (`concurrency` again for a
     * batch that has to go one by one).
     */
    const deliver = (bodies: ReadonlyArray<string>, concurrency: number): Effect.Effect<Array<Result>> => {
      if (mode === "single") return sendEach(bodies, concurrency)
      if (bodies.length <= settings.batchSize) return sendBatch(bodies, concurrency)
      const batches: Array<ReadonlyArray<string>> = []
      for (let i = 0; i < bodies.length; i += settings.batchSize) batches.push(bodies.slice(i, i + settings.batchSize))
      return Effect.map(
        Effect.forEach(
          batches,
          (batch) => mode === "single" ? sendEach(batch, splitConcurrency) : sendBatch(batch, splitConcurrency),
          { concurrency: settings.concurrency }
        ),
        (results) => results.flat()
      )
    }

    // ---- the spool writer --------------------------------------------------------------------
    const enqueueWrite = (entry: Entry, write: (ops: Spool.Ops) => void): void => {
      write(pending)
      pendingEntries.push(entry)
      writeSignal.fire()
    }

    const settleLive = (entry: Entry, result: Result): void => {
      if (result === undefined) {
        delivered++
        count("delivered", 1)
        if (entry.seq === 0) settle(entry)
        else enqueueWrite(entry, (ops) => ops.remove.push(entry.seq))
      } else if (result.dead) {
        enqueueWrite(entry, (ops) => {
          ops.dead.push({ ...itemOf(entry, result.reason), status: result.status })
          if (entry.seq !== 0) ops.remove.push(entry.seq)
        })
      } else {
        enqueueWrite(entry, (ops) => {
          if (entry.seq === 0) ops.spool.push(itemOf(entry, result.reason))
          else ops.release.push({ seq: entry.seq, reason: result.reason })
        })
      }
    }

    const firstReason = (ops: Spool.Ops): string => truncate(ops.spool[0]?.reason ?? ops.release[0]?.reason ?? "", 200)

    /**
     * Spooling and redelivery come in bursts of thousands during an outage: one log line per
     * second with the totals (the shutdown summary has the rest).
     */
    const logEveryMillis = 1_000
    const tally = (write: (n: number, reason: string) => Effect.Effect<void>) => {
      let n = 0
      let reason = ""
      let last = -Infinity
      return {
        add: (more: number, why: string): Effect.Effect<void> => {
          if (more <= 0) return Effect.void
          n += more
          if (reason === "") reason = why
          const now = clock.unsafeCurrentTimeMillis()
          if (now - last < logEveryMillis) return Effect.void
          const [count, first] = [n, reason]
          n = 0
          reason = ""
          last = now
          return write(count, first)
        }
      }
    }
    const spoolLog = tally((n, reason) =>
      Effect.logWarning(
        `observability: spooled ${n} event(s) that cannot be delivered now${reason === "" ? "" : ` (${reason})`}; ` +
          `${spoolSize} in the spool`
      )
    )
    const redeliveryLog = tally((n) =>
      Effect.logInfo(`observability: redelivered ${n} event(s) from the spool; ${spoolSize} left`)
    )

    /**
     * Commits the pending writes in one transaction, retried once after a short pause (a busy or
     * briefly full disk), then settles the events they carry. Uninterruptible: a short local
     * write, and cutting it short after taking the pending writes would lose them.
     */
    const commitPending: Effect.Effect<void> = Effect.uninterruptible(Effect.suspend(() => {
      const ops = pending
      const entries = pendingEntries
      pending = Spool.emptyOps()
      pendingEntries = []
      if (Spool.opsSize(ops) === 0) {
        for (const entry of entries) settle(entry)
        return Effect.void
      }
      const commit = Effect.suspend(() => spool.commit(ops, clock.unsafeCurrentTimeMillis()))
      return commit.pipe(
        Effect.catchAll(() => Effect.zipRight(wallPause(100), commit)),
        Effect.matchCauseEffect({
          onSuccess: () => {
            const newlySpooled = ops.spool.length + ops.release.length
            spooled += newlySpooled
            count("spooled", newlySpooled)
            deadLettered += ops.dead.length
            count("dead_lettered", ops.dead.length)
            spoolSize += newlySpooled
            deadLetterSize += ops.dead.length
            for (const entry of entries) settle(entry)
            if (newlySpooled > 0) spoolSignal.fire()
            return Effect.zipRight(
              spoolLog.add(newlySpooled, firstReason(ops)),
              ops.dead.length === 0 ? Effect.void : Effect.logError(
                `observability: dead-lettered ${ops.dead.length} event(s) the server refused: ` +
                  `${truncate(ops.dead[0]!.reason, 300)}${ops.dead.length > 1 ? " (first shown)" : ""}; ` +
                  `${deadLetterSize} in the dead letters`
              )
            )
          },
          onFailure: (cause) => {
            // Nothing else can keep these events: count and log every one. (Write-ahead rows
            // whose release failed are still in the table and come back at the next start.)
            const lost = ops.spool.length + ops.dead.length
            dropped += lost
            count("dropped", lost)
            for (const entry of entries) settle(entry)
            const ids = [...ops.spool, ...ops.dead].map((item) => item.id)
            return Effect.logError(
              `observability: LOST ${lost} event(s): the spool cannot be written; ids ${ids.slice(0, 50).join(", ")}${
                ids.length > 50 ? ", …" : ""
              }`,
              cause
            )
          }
        })
      )
    }))

    // Write-ahead mode deletes a row per delivery, and deliveries finish one by one: deletes wait
    // a few milliseconds to share a transaction (one commit per event costs ≈ 150 µs). A crash in
    // that window only means a redelivery, which the event id makes harmless. Spooling and dead
    // letters commit at once.
    const deleteLinger = wallPause(5)
    const writer = Effect.forever(
      Effect.suspend(() => {
        if (pendingEntries.length === 0) return writeSignal.wait
        const onlyDeletes = pending.spool.length === 0 && pending.release.length === 0 && pending.dead.length === 0
        if (onlyDeletes && !closing && pendingEntries.length < 1_000) return Effect.zipRight(deleteLinger, commitPending)
        return Effect.zipRight(Effect.yieldNow(), commitPending)
      })
    )

    // ---- emit ----------------------------------------------------------------------------------
    let rejectionsLogged = 0
    const reject = (input: unknown, why: () => string): Effect.Effect<void> => {
      rejected++
      count("rejected", 1)
      // Log the first few, then every 1000th, so a broken producer cannot flood the log.
      if (rejectionsLogged < 20 || rejected % 1000 === 0) {
        rejectionsLogged++
        const kind = typeof input === "object" && input !== null && "hook_event_type" in input
          ? ` (${truncate(String(input.hook_event_type), 60)})`
          : ""
        return Effect.logWarning(`observability: rejected an event${kind}: ${why()}; ${rejected} rejected so far`)
      }
      return Effect.void
    }

    /** Last resort when the writer is far behind (a stalled disk), or after shutdown: write now. */
    const spoolNow = (entry: Entry, reason: string): Effect.Effect<void> => {
      const item = itemOf(entry, reason)
      const id = item.id
      return spool.commit({ ...Spool.emptyOps(), spool: [item] }, clock.unsafeCurrentTimeMillis())
        .pipe(
          Effect.matchCauseEffect({
            onSuccess: () => {
              spooled++
              spoolSize++
              count("spooled", 1)
              settle(entry)
              if (!closed) spoolSignal.fire()
              return spoolLog.add(1, reason)
            },
            onFailure: (cause) => {
              dropped++
              count("dropped", 1)
              settle(entry)
              return Effect.logError(`observability: LOST event ${id}: the spool cannot be written (${reason})`, cause)
            }
          })
        )
    }

    const overflow = (entry: Entry, reason: string): Effect.Effect<void> => {
      if (closed || pendingEntries.length >= settings.queueCapacity) return spoolNow(entry, reason)
      enqueueWrite(entry, (ops) => ops.spool.push(itemOf(entry, reason)))
      return Effect.void
    }

    const offer = (entry: Entry): boolean => !closing && queue.unsafeOffer(entry)

    const journal = (id: string, body: string, ordinal: number): Effect.Effect<void> =>
      spool.journal(id, body, epoch, ordinal, clock.unsafeCurrentTimeMillis()).pipe(
        Effect.matchCauseEffect({
          onSuccess: (seq) => {
            journaled++
            count("journaled", 1)
            const entry = accept(body, seq, ordinal)
            if (offer(entry)) return Effect.void
            enqueueWrite(entry, (ops) => ops.release.push({ seq, reason: closing ? "emitted during shutdown" : "queue full" }))
            return Effect.void
          },
          onFailure: (cause) => {
            // Not written ahead, but it may still be delivered from memory.
            const entry = accept(body, 0, ordinal)
            return Effect.zipRight(
              Effect.logWarning(`observability: could not write event ${id} ahead; delivering it from memory`, cause),
              offer(entry) ? Effect.void : overflow(entry, "queue full")
            )
          }
        })
      )

    const describeInvalid = (input: unknown) => (): string => {
      const result = decodeEventInput(input)
      return result._tag === "Left"
        ? truncate(ParseResult.TreeFormatter.formatErrorSync(result.left).replace(/\s+/g, " "))
        : "not an event"
    }

    const emit = (input: EventInput): Effect.Effect<void> =>
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
        emitted++
        count("emitted", 1)
        const ordinal = ++ordinals
        if (closed) return spoolNow(accept(body, 0, ordinal), "emitted after shutdown")
        if (settings.writeAhead) return journal(id, body, ordinal)
        const entry = accept(body, 0, ordinal)
        if (offer(entry)) return Effect.void
        return overflow(entry, closing ? "emitted during shutdown" : "queue full")
      })

    // ---- workers -------------------------------------------------------------------------------
    /** What a worker is delivering right now, so that shutdown can spool it if it is cut short. */
    interface Slot {
      current: ReadonlyArray<Entry> | undefined
    }
    const slots: Array<Slot> = []

    const singleWorker = (slot: Slot) =>
      Effect.forever(
        Effect.flatMap(Queue.take(queue), (entry) => {
          slot.current = [entry]
          return Effect.map(sendOne(entry.body), (result) => {
            slot.current = undefined
            settleLive(entry, result)
          })
        })
      )

    const lingerMillis = Duration.toMillis(settings.linger)
    /** Up to `batchSize` events, waiting at most `linger` for more (not while a flush waits). */
    const collect = (slot: Slot): Effect.Effect<ReadonlyArray<Entry>> =>
      Effect.flatMap(Queue.takeBetween(queue, 1, settings.batchSize), (first) => {
        const taken = Chunk.toReadonlyArray(first)
        slot.current = taken
        if (taken.length >= settings.batchSize || lingerMillis <= 0 || pendingFlushes > 0 || closing) {
          return Effect.succeed(taken)
        }
        return Effect.raceFirst(Effect.sleep(settings.linger), flushSignal.wait).pipe(
          Effect.zipRight(Queue.takeUpTo(queue, settings.batchSize - taken.length)),
          Effect.map((more) => {
            const all = more.length === 0 ? taken : taken.concat(Chunk.toReadonlyArray(more))
            slot.current = all
            return all
          })
        )
      })

    const batchWorker = (slot: Slot) =>
      Effect.forever(
        Effect.flatMap(collect(slot), (entries) =>
          Effect.map(deliver(entries.map((entry) => entry.body), splitConcurrency), (results) => {
            slot.current = undefined
            for (let i = 0; i < entries.length; i++) settleLive(entries[i]!, results[i])
          }))
      )

    // ---- the redeliverer -----------------------------------------------------------------------
    const drainLock = yield* Effect.makeSemaphore(1)

    interface Pass {
      readonly rows: number
      readonly delivered: number
      readonly dead: number
    }
    const noPass: Pass = { rows: 0, delivered: 0, dead: 0 }

    /** One redelivery pass over the oldest page of the spool. */
    const redeliverPage: Effect.Effect<Pass> = drainLock.withPermits(1)(
      Effect.gen(function*() {
        const rows = yield* spool.page(settings.spoolPageSize).pipe(
          Effect.tapErrorCause((cause) => Effect.logError("observability: cannot read the spool", cause)),
          Effect.orElseSucceed((): ReadonlyArray<Spool.Row> => [])
        )
        if (rows.length === 0) {
          spoolSize = 0
          return noPass
        }
        const results = yield* deliver(rows.map((row) => row.body), singleConcurrency)
        const ops = Spool.emptyOps()
        let deliveredNow = 0
        for (let i = 0; i < rows.length; i++) {
          const row = rows[i]!
          const result = results[i]
          if (result === undefined) {
            deliveredNow++
            ops.remove.push(row.seq)
          } else if (result.dead) {
            ops.dead.push({
              id: row.id,
              body: row.body,
              reason: result.reason,
              status: result.status,
              epoch: row.epoch,
              ordinal: row.ordinal
            })
            ops.remove.push(row.seq)
          } else {
            ops.failed.push({ seq: row.seq, reason: result.reason })
          }
        }
        const committed = yield* spool.commit(ops, clock.unsafeCurrentTimeMillis()).pipe(
          Effect.uninterruptible,
          Effect.as(true),
          // The rows stay in the spool and go again: harmless against an idempotent server.
          Effect.catchAllCause((cause) =>
            Effect.as(Effect.logError("observability: cannot update the spool after redelivery", cause), false)
          )
        )
        if (!committed) return { rows: rows.length, delivered: 0, dead: 0 }
        redelivered += deliveredNow
        count("redelivered", deliveredNow)
        deadLettered += ops.dead.length
        count("dead_lettered", ops.dead.length)
        deadLetterSize += ops.dead.length
        spoolSize = Math.max(0, spoolSize - deliveredNow - ops.dead.length)
        yield* redeliveryLog.add(deliveredNow, "")
        if (ops.dead.length > 0) {
          yield* Effect.logError(
            `observability: dead-lettered ${ops.dead.length} spooled event(s) the server refused: ${
              truncate(ops.dead[0]!.reason, 300)
            }`
          )
        }
        return { rows: rows.length, delivered: deliveredNow, dead: ops.dead.length }
      })
    )

    const redeliverer = Effect.forever(
      Effect.suspend(() => {
        if (spoolSize === 0) return spoolSignal.wait
        // While the breaker is open every call would be refused: wait for its half-open trials.
        if (breaker.state(clock.unsafeCurrentTimeMillis()) === "open") return Effect.sleep(settings.redeliveryInterval)
        return Effect.flatMap(
          redeliverPage,
          (pass) => pass.delivered === 0 && pass.dead === 0 ? Effect.sleep(settings.redeliveryInterval) : Effect.void
        )
      })
    )

    // ---- fibers and shutdown -------------------------------------------------------------------
    // Workers and the writer live in child scopes that shutdown closes itself, in order.
    const workerScope = yield* Scope.fork(layerScope, ExecutionStrategy.sequential)
    const writerScope = yield* Scope.fork(layerScope, ExecutionStrategy.sequential)
    yield* Effect.forkIn(writer, writerScope)
    for (let i = 0; i < settings.concurrency; i++) {
      const slot: Slot = { current: undefined }
      slots.push(slot)
      yield* Effect.forkIn(settings.mode === "single" ? singleWorker(slot) : batchWorker(slot), workerScope)
    }
    yield* Effect.forkIn(redeliverer, workerScope)

    const flush: Effect.Effect<void> = Effect.suspend(() => {
      if (outstanding.size === 0) return Effect.void
      const deferred = Deferred.unsafeMake<void>(FiberId.none)
      waiters.push({ generation, deferred })
      generation++
      pendingFlushes++
      flushSignal.fire()
      return Effect.ensuring(
        Deferred.await(deferred),
        Effect.sync(() => {
          pendingFlushes--
          const index = waiters.findIndex((waiter) => waiter.deferred === deferred)
          if (index !== -1) waiters.splice(index, 1)
        })
      )
    })

    const shutdown = Effect.gen(function*() {
      closing = true
      const flushed = yield* Effect.interruptible(flush).pipe(Effect.timeoutOption(gracefulShutdown))
      // Interrupting the workers aborts the requests still in flight.
      yield* Scope.close(workerScope, Exit.void)
      const leftovers: Array<Entry> = []
      for (const slot of slots) {
        if (slot.current !== undefined) leftovers.push(...slot.current)
        slot.current = undefined
      }
      leftovers.push(...Chunk.toReadonlyArray(yield* Queue.takeAll(queue)))
      for (const entry of leftovers) {
        settleLive(entry, { dead: false, reason: "not delivered before shutdown", status: undefined })
      }
      yield* Scope.close(writerScope, Exit.void)
      yield* commitPending
      closed = true
      for (const waiter of waiters.splice(0)) Deferred.unsafeDone(waiter.deferred, Exit.void)
      if (Option.isNone(flushed)) {
        yield* Effect.logWarning(
          `observability: the shutdown flush did not finish within graceful_shutdown ` +
            `(${Errors.formatDuration(gracefulShutdown)}); ${leftovers.length} undelivered event(s) went to the spool ` +
            `for the next start`
        )
      }
      const summary = `observability: stopped; ${emitted} emitted, ${delivered} delivered, ${redelivered} redelivered, ` +
        `${spooled} spooled, ${deadLettered} dead-lettered, ${rejected} rejected, ${dropped} lost; ${spoolSize} in the spool`
      yield* leftovers.length > 0 || spoolSize > 0 ? Effect.logInfo(summary) : Effect.logDebug(summary)
    })
    yield* Effect.addFinalizer(() => shutdown)

    if (opened.backlog > 0) {
      yield* Effect.logInfo(
        `observability: ${opened.backlog} event(s) in the spool from an earlier run` +
          `${opened.claimed > 0 ? ` (${opened.claimed} written ahead and never delivered)` : ""}; redelivering`
      )
    }
    yield* Effect.logDebug(
      `observability: ${mode} mode, ${settings.concurrency} in flight, via ${transport.description}` +
        `${settings.writeAhead ? ", write-ahead" : ""}`
    )

    // ---- the service ---------------------------------------------------------------------------
    const inFlight = (): number => {
      let n = 0
      for (const slot of slots) n += slot.current?.length ?? 0
      return n
    }

    const stats: Effect.Effect<Stats> = Effect.sync(() => ({
      emitted,
      delivered,
      retried,
      spooled,
      redelivered,
      deadLettered,
      rejected,
      dropped,
      // Negative sizes mean fibers waiting on an empty queue.
      queued: Math.max(0, Option.getOrElse(queue.unsafeSize(), () => 0)),
      spoolSize,
      inFlight: inFlight(),
      deadLetterSize,
      journaled,
      mode
    }))

    const drainSpool: Effect.Effect<DrainResult> = Effect.gen(function*() {
      yield* flush
      let redeliveredNow = 0
      let deadNow = 0
      while (true) {
        const pass = yield* redeliverPage
        redeliveredNow += pass.delivered
        deadNow += pass.dead
        if (pass.rows === 0 || (pass.delivered === 0 && pass.dead === 0)) break
      }
      return { redelivered: redeliveredNow, deadLettered: deadNow, remaining: spoolSize }
    })

    const deadLetters = (limit = 100): Effect.Effect<ReadonlyArray<DeadLetter>> =>
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
        Effect.tapErrorCause((cause) => Effect.logError("observability: cannot read the dead letters", cause)),
        Effect.orElseSucceed(() => [])
      )

    const requeueDeadLetters: Effect.Effect<number> = drainLock.withPermits(1)(
      Effect.suspend(() => spool.requeueDeadLetters(clock.unsafeCurrentTimeMillis())).pipe(
        Effect.tap((moved) =>
          Effect.sync(() => {
            spoolSize += moved
            deadLetterSize = Math.max(0, deadLetterSize - moved)
            if (moved > 0) spoolSignal.fire()
          })
        ),
        Effect.tapErrorCause((cause) => Effect.logError("observability: cannot requeue the dead letters", cause)),
        Effect.orElseSucceed(() => 0)
      )
    )

    return Observability.of({
      emit,
      flush,
      stats,
      send: (event) => Effect.zipRight(emit(event), flush),
      drainSpool,
      deadLetters,
      requeueDeadLetters
    })
  })
