/**
 * The observability client's state, in one record: the counters behind `stats` (each counted in
 * the metrics too), the spool and dead-letter sizes, the delivery mode, the shutdown flags, the
 * flush bookkeeping and the signals the background fibers wait on. Every piece of the client
 * (intake, delivery, spool writer, redeliverer, shutdown) reads and writes it here, and nowhere
 * else.
 *
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import { randomFillSync } from "node:crypto"
import * as Metrics from "../Metrics.js"
import type { Stats } from "./Domain.js"
import type { Mode } from "./Options.js"
import * as Spool from "./Spool.js"
import { service } from "./Transport.js"

/** A UUIDv7 (RFC 9562): 48 bits of milliseconds, then random bits; sorts by creation time. */
export const uuidv7 = (now: number): string => uuidv7Prefix(now) + randomPart()

/** Random bytes drawn ahead, 10 per id: one system call per 256 ids. */
const pool = Buffer.allocUnsafe(10 * 256)
let pooled = pool.length

/**
 * The part after the version digit: rand_a (12 bits), the variant (binary 10) with 2 random bits,
 * then 60 more random bits ("abc-9def-0123456789ab"). Built from one hex string rather than from
 * `randomUUID()`, whose text is put together byte by byte: an id is made for every emitted event.
 */
const randomPart = (): string => {
  if (pooled === pool.length) {
    randomFillSync(pool)
    pooled = 0
  }
  const start = pooled
  pooled += 10
  const hex = pool.toString("hex", start, pooled)
  // The fourth hex digit is the low half of the second byte: its two low bits follow the variant.
  return `${hex.slice(0, 3)}-${"89ab".charAt(pool[start + 1]! & 3)}${hex.slice(4, 7)}-${hex.slice(7, 19)}`
}

/** The time part of a UUIDv7 and its version digit ("0190a1b2-c3d4-7"); the rest is a v4 UUID's random part. */
const uuidv7Prefix = (now: number): string => {
  const hex = Math.max(0, Math.floor(now)).toString(16).padStart(12, "0").slice(-12)
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7`
}

/** Where an event's durable copy stands: none, waiting for the next group commit, being committed, written (`seq`). */
export type Journal = "none" | "pending" | "committing" | "written"

/** An outcome that arrived before the event's group commit finished. */
export type Early = { readonly kind: "delivered" | "dead" } | { readonly kind: "spool"; readonly reason: string }

/**
 * An accepted event: its JSON, the flush generation it was accepted in (a flush waits for its
 * generation and the older ones), its place in emit order (the spool redelivers in that order),
 * and its durable copy in the spool (`journal`, `seq` once written). Kept small: 100,000 of them
 * wait in memory when the server is slow.
 */
export class Entry {
  seq = 0
  journal: Journal = "none"
  early: Early | undefined = undefined
  /** A caller of `emitDurable` waiting for this event to be on disk (or delivered). */
  onDisk: Deferred.Deferred<void, SqlError> | undefined = undefined
  /** It has its outcome (`State.settle`). */
  settled = false
  constructor(
    readonly body: string,
    readonly generation: number,
    readonly ordinal: number
  ) {}
}

/**
 * A one-shot broadcast: `wait` resumes at the next `fire`. The deferred is made when somebody
 * waits, not at each `fire`: the spool writer is fired once per delivered event.
 */
export class Signal {
  private deferred: Deferred.Deferred<void> | undefined = undefined
  private current(): Deferred.Deferred<void> {
    return this.deferred ??= Deferred.unsafeMake<void>(FiberId.none)
  }
  readonly wait: Effect.Effect<void> = Effect.suspend(() => Deferred.await(this.current()))
  /**
   * Waits for the next `fire` after this call. Unlike `wait`, it is bound now, not when the
   * effect starts: a racer forked to wait cannot miss a `fire` that comes before it runs.
   */
  next(): Effect.Effect<void> {
    return Deferred.await(this.current())
  }
  fire(): void {
    const fired = this.deferred
    if (fired === undefined) return
    this.deferred = undefined
    Deferred.unsafeDone(fired, Exit.void)
  }
}

/** The counters of `stats`, each also counted in `big3_events_total{kind}`. */
export interface Counters {
  emitted: number
  delivered: number
  retried: number
  spooled: number
  redelivered: number
  deadLettered: number
  rejected: number
  dropped: number
  journaled: number
  evicted: number
  storageErrors: number
}

export type Counter = keyof Counters

const metricKind: Record<Counter, string> = {
  emitted: "emitted",
  delivered: "delivered",
  retried: "retried",
  spooled: "spooled",
  redelivered: "redelivered",
  deadLettered: "dead_lettered",
  rejected: "rejected",
  dropped: "dropped",
  journaled: "journaled",
  evicted: "evicted",
  storageErrors: "storage_error"
}

export class State {
  readonly counters: Counters = {
    emitted: 0,
    delivered: 0,
    retried: 0,
    spooled: 0,
    redelivered: 0,
    deadLettered: 0,
    rejected: 0,
    dropped: 0,
    journaled: 0,
    evicted: 0,
    storageErrors: 0
  }
  private readonly labels = new Map(
    Object.entries(metricKind).map(([counter, kind]) => [counter, Metrics.labelsFor(service, { kind })])
  )
  /** The delivery mode in force: "batch" falls back to "single" on a server without the batch route. */
  mode: Mode
  /** Events waiting in the spool, as far as this process knows. */
  spoolSize: number
  /** All rows of the spool and their bytes, as far as this process knows (for `spoolMax`). */
  storedRows: number
  storedBytes: number
  deadLetterSize: number
  /** Shutdown has begun: no more offers to the queue. */
  closing = false
  /** Shutdown is done: what is emitted now goes straight to the spool. */
  closed = false

  /** Wakes the spool writer. */
  readonly writeSignal = new Signal()
  /** Cuts the group commit's wait short: enough events gathered, or a write that should not wait. */
  readonly commitSignal = new Signal()
  /** Wakes the redeliverer: something was spooled. */
  readonly spoolSignal = new Signal()
  /** Cuts a batch's linger short: a flush waits. */
  readonly flushSignal = new Signal()

  // Flush bookkeeping: accepted events without an outcome yet, by generation. A flush closes
  // the current generation and waits until it and every older one is empty (Map keys are in
  // insertion order, which is generation order, so the first key is the oldest open one).
  private generation = 0
  private readonly outstanding = new Map<number, number>()
  private readonly waiters: Array<{ readonly generation: number; readonly deferred: Deferred.Deferred<void> }> = []
  /** Flushes waiting now. */
  pendingFlushes = 0
  /** A redelivery pass holds claimed rows now. */
  redelivering = false
  private ordinals = 0

  constructor(
    mode: Mode,
    opened: { readonly backlog: number; readonly deadLetters: number; readonly rows: number; readonly bytes: number },
    /** When this client started: with `ordinal`, the spool's order (start, then emit order). */
    readonly epoch: number
  ) {
    this.mode = mode
    this.spoolSize = opened.backlog
    this.storedRows = opened.rows
    this.storedBytes = opened.bytes
    this.deadLetterSize = opened.deadLetters
  }

  /** Adds `n` to a counter and to its metric. */
  add(counter: Counter, n: number): void {
    if (n <= 0) return
    this.counters[counter] += n
    const labels = this.labels.get(counter)
    if (labels !== undefined) Metrics.events.unsafeUpdate(n, labels)
  }

  private idMillis = -1
  private idPrefix = ""

  /** A UUIDv7 for an event emitted at `now`; events of the same millisecond share the time part. */
  newId(now: number): string {
    if (now !== this.idMillis) {
      this.idMillis = now
      this.idPrefix = uuidv7Prefix(now)
    }
    return this.idPrefix + randomPart()
  }

  /** The next place in emit order. */
  nextOrdinal(): number {
    return ++this.ordinals
  }

  /** An event accepted now: it counts as outstanding until `settle`. */
  accept(body: string, ordinal: number): Entry {
    const entry = new Entry(body, this.generation, ordinal)
    this.outstanding.set(this.generation, (this.outstanding.get(this.generation) ?? 0) + 1)
    return entry
  }

  /** The event has its outcome (delivered, spooled, dead-lettered or lost). */
  settle(entry: Entry): void {
    if (entry.settled) return
    entry.settled = true
    if (entry.onDisk !== undefined) Deferred.unsafeDone(entry.onDisk, Exit.void)
    const left = (this.outstanding.get(entry.generation) ?? 1) - 1
    if (left > 0) {
      this.outstanding.set(entry.generation, left)
      return
    }
    this.outstanding.delete(entry.generation)
    if (this.waiters.length > 0) this.releaseWaiters()
  }

  private releaseWaiters(): void {
    const oldestOpen = this.outstanding.size === 0 ? Infinity : this.outstanding.keys().next().value!
    while (this.waiters.length > 0 && this.waiters[0]!.generation < oldestOpen) {
      Deferred.unsafeDone(this.waiters.shift()!.deferred, Exit.void)
    }
  }

  /** Waits until everything accepted so far has its outcome. */
  readonly flush: Effect.Effect<void> = Effect.suspend(() => {
    if (this.outstanding.size === 0) return Effect.void
    const deferred = Deferred.unsafeMake<void>(FiberId.none)
    this.waiters.push({ generation: this.generation, deferred })
    this.generation++
    this.pendingFlushes++
    this.flushSignal.fire()
    return Effect.ensuring(
      Deferred.await(deferred),
      Effect.sync(() => {
        this.pendingFlushes--
        const index = this.waiters.findIndex((waiter) => waiter.deferred === deferred)
        if (index !== -1) this.waiters.splice(index, 1)
      })
    )
  })

  /** Events accepted and without an outcome yet, or rows claimed for redelivery: this process may hold spool rows. */
  holdsRows(): boolean {
    return this.outstanding.size > 0 || this.redelivering
  }

  /** Releases every flush still waiting (at the end of shutdown). */
  releaseAll(): void {
    for (const waiter of this.waiters.splice(0)) Deferred.unsafeDone(waiter.deferred, Exit.void)
  }

  /** A spool row for `entry`. */
  itemOf(entry: Entry, reason: string): Spool.Item {
    return { id: Spool.idOf(entry.body), body: entry.body, reason, epoch: this.epoch, ordinal: entry.ordinal }
  }

  stats(queued: number, inFlight: number): Stats {
    return { ...this.counters, queued, spoolSize: this.spoolSize, inFlight, deadLetterSize: this.deadLetterSize, mode: this.mode }
  }
}

/** A log line written once a second at most, with the count of what it stands for. */
export interface Tally {
  /** Counts `more` (the first `why` is kept); writes the line when a second has passed since the last. */
  readonly add: (more: number, why: string) => Effect.Effect<void>
  /** Writes what the last second held back, once that second is over. */
  readonly due: Effect.Effect<void>
  /** Writes what the last second held back, now: the tail of a burst that no later `add` would write. */
  readonly flush: Effect.Effect<void>
  /** Milliseconds until what is held back may be written (0: now), or undefined when nothing is held. */
  readonly dueIn: () => number | undefined
}

/**
 * `due` and `flush` of several tallies at once, and `idle`: a fiber's wait for work that is cut
 * short to write what a second held back once it is over. Without it, the tail of the last burst
 * before a quiet spell would be said only when work came again, or at shutdown.
 */
export const tailsOf = (tallies: ReadonlyArray<Tally>) => {
  const due = Effect.forEach(tallies, (tally) => tally.due, { discard: true })
  const idle = (wait: Effect.Effect<void>): Effect.Effect<void> =>
    Effect.suspend(() => {
      const dueIns = tallies.flatMap((tally) => tally.dueIn() ?? [])
      if (dueIns.length === 0) return wait
      return Effect.raceFirst(wait, Effect.zipRight(Effect.sleep(Duration.millis(Math.max(1, Math.min(...dueIns)))), due))
    })
  return { due, idle, flush: Effect.forEach(tallies, (tally) => tally.flush, { discard: true }) }
}

/**
 * Spooling and redelivery come in bursts of thousands during an outage: one log line per second
 * (of `now`) with the totals, the first reason kept. What a second held back is written by the
 * next `add`, by `due` once the second is over (the writer and the redeliverer call it after each
 * round, and when idle once the second is over: `tailsOf`'s `idle`), or by `flush` at shutdown:
 * no count is left unsaid.
 */
export const tally = (now: () => number, write: (n: number, reason: string) => Effect.Effect<void>, everyMillis = 1_000): Tally => {
  let n = 0
  let reason = ""
  let last = -Infinity
  const writeNow = (at: number): Effect.Effect<void> => {
    const [count, first] = [n, reason]
    n = 0
    reason = ""
    last = at
    return write(count, first)
  }
  /** Writes what is held once a second has passed since the last line. */
  const writeIfDue = (): Effect.Effect<void> => {
    const at = now()
    return at - last < everyMillis ? Effect.void : writeNow(at)
  }
  return {
    add: (more: number, why: string): Effect.Effect<void> => {
      if (more <= 0) return Effect.void
      n += more
      if (reason === "") reason = why
      return writeIfDue()
    },
    due: Effect.suspend((): Effect.Effect<void> => n === 0 ? Effect.void : writeIfDue()),
    flush: Effect.suspend((): Effect.Effect<void> => n === 0 ? Effect.void : writeNow(now())),
    dueIn: () => n === 0 ? undefined : Math.max(0, last + everyMillis - now())
  }
}
