/**
 * The observability spool and dead-letter tables in the embedded store (`Store`).
 *
 * ```sql
 * observability_spool(
 *   seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- redelivery order
 *   id TEXT NOT NULL,                       -- the event id (idempotency key)
 *   body TEXT NOT NULL,                     -- the event JSON, exactly as it is sent
 *   epoch INTEGER NOT NULL,                 -- when the emitting client started, ms since the epoch
 *   ordinal INTEGER NOT NULL DEFAULT 0,     -- emit order within that client
 *   spooled_at INTEGER NOT NULL,            -- ms since the epoch
 *   held INTEGER NOT NULL DEFAULT 0,        -- 1: a write-ahead copy whose event is still in memory
 *   attempts INTEGER NOT NULL DEFAULT 0,    -- failed redelivery passes
 *   last_error TEXT)                        -- why it is here / why the last pass failed
 * observability_dead_letter(
 *   seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, body TEXT NOT NULL,
 *   epoch INTEGER NOT NULL, ordinal INTEGER NOT NULL DEFAULT 0,
 *   reason TEXT NOT NULL, status INTEGER, failed_at INTEGER NOT NULL)
 * ```
 *
 * The backlog is the rows with `held = 0`, redelivered in emit order (`epoch, ordinal`, then
 * `seq`), whatever order their deliveries failed in. Write-ahead rows (`held = 1`)
 * belong to the running process; at start-up they are claimed as backlog (their process is
 * gone). One process per database file is assumed: a second one would redeliver the same rows
 * (harmless against an idempotent server, duplicates against the public one).
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Store from "../Store.js"

export const schema: ReadonlyArray<string> = [
  `CREATE TABLE IF NOT EXISTS observability_spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    ordinal INTEGER NOT NULL DEFAULT 0,
    spooled_at INTEGER NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
  )`,
  `CREATE INDEX IF NOT EXISTS observability_spool_backlog ON observability_spool (held, epoch, ordinal, seq)`,
  `CREATE TABLE IF NOT EXISTS observability_dead_letter (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    ordinal INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL,
    status INTEGER,
    failed_at INTEGER NOT NULL
  )`
]

/** A backlog row. */
export interface Row {
  readonly seq: number
  readonly id: string
  readonly body: string
  readonly epoch: number
  readonly ordinal: number
}

/** An event bound for a table. */
export interface Item {
  readonly id: string
  readonly body: string
  readonly reason: string
  readonly epoch: number
  readonly ordinal: number
}

export interface DeadItem extends Item {
  readonly status: number | undefined
}

/** Writes gathered by the client and committed in one transaction. */
export interface Ops {
  /** New backlog rows. */
  readonly spool: Array<Item>
  /** Write-ahead rows whose events could not be delivered now: they join the backlog. */
  readonly release: Array<{ readonly seq: number; readonly reason: string }>
  /** Rows done with (delivered, or moved to the dead letters). */
  readonly remove: Array<number>
  /** Backlog rows that failed another redelivery pass. */
  readonly failed: Array<{ readonly seq: number; readonly reason: string }>
  readonly dead: Array<DeadItem>
}

export const emptyOps = (): Ops => ({ spool: [], release: [], remove: [], failed: [], dead: [] })

export const opsSize = (ops: Ops): number =>
  ops.spool.length + ops.release.length + ops.remove.length + ops.failed.length + ops.dead.length

/** `first`'s writes, then `then`'s. */
export const concatOps = (first: Ops, then: Ops): Ops => ({
  spool: first.spool.concat(then.spool),
  release: first.release.concat(then.release),
  remove: first.remove.concat(then.remove),
  failed: first.failed.concat(then.failed),
  dead: first.dead.concat(then.dead)
})

const byEmitOrder = (a: Item, b: Item): number => a.epoch - b.epoch || a.ordinal - b.ordinal

const groupByReason = <A extends { readonly seq: number; readonly reason: string }>(
  items: ReadonlyArray<A>
): Map<string, Array<number>> => {
  const groups = new Map<string, Array<number>>()
  for (const item of items) {
    const seqs = groups.get(item.reason)
    if (seqs === undefined) groups.set(item.reason, [item.seq])
    else seqs.push(item.seq)
  }
  return groups
}

export interface Spool {
  /** Creates the tables, claims write-ahead rows left by a previous process, and counts. */
  readonly open: Effect.Effect<{ readonly backlog: number; readonly deadLetters: number; readonly claimed: number }, SqlError>
  /** Writes one event ahead (held); returns its `seq`. */
  readonly journal: (
    id: string,
    body: string,
    epoch: number,
    ordinal: number,
    now: number
  ) => Effect.Effect<number, SqlError>
  /** Commits a set of writes in one transaction. */
  readonly commit: (ops: Ops, now: number) => Effect.Effect<void, SqlError>
  /** The oldest `limit` backlog rows. */
  readonly page: (limit: number) => Effect.Effect<ReadonlyArray<Row>, SqlError>
  readonly deadLetters: (limit: number) => Effect.Effect<
    ReadonlyArray<{ seq: number; id: string; body: string; reason: string; status: number | null; failed_at: number }>,
    SqlError
  >
  /** Moves every dead letter to the backlog; returns how many. */
  readonly requeueDeadLetters: (now: number) => Effect.Effect<number, SqlError>
}

/** The database's own words for a failed statement ("malformed JSON", "database is locked"). */
const detailOf = (error: SqlError): string => {
  const cause = error.cause
  return cause instanceof Error && cause.message !== "" ? cause.message : error.message
}

/** Names what failed in the error, so that a caller can say it in one line. */
const explain = (what: string) => <A, R>(effect: Effect.Effect<A, SqlError, R>): Effect.Effect<A, SqlError, R> =>
  Effect.mapError(effect, (error) => new SqlError({ cause: error, message: `${what}: ${detailOf(error)}` }))

export const make: Effect.Effect<Spool, never, SqlClient.SqlClient> = Effect.map(SqlClient.SqlClient, (sql): Spool => {
  // Spool traffic is bookkeeping: no spans (the sql client would open one per statement).
  const quiet = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.withTracerEnabled(effect, false)

  const open = Effect.gen(function*() {
    yield* Effect.provideService(Store.ensureSchema("observability", schema), SqlClient.SqlClient, sql)
    return yield* sql.withTransaction(Effect.gen(function*() {
      const held = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM observability_spool WHERE held = 1`
      const claimed = held[0]?.n ?? 0
      if (claimed > 0) {
        yield* sql`UPDATE observability_spool SET held = 0, last_error = 'written ahead by a process that stopped before delivering it' WHERE held = 1`
      }
      const backlog = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM observability_spool WHERE held = 0`
      const dead = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM observability_dead_letter`
      return { backlog: backlog[0]?.n ?? 0, deadLetters: dead[0]?.n ?? 0, claimed }
    }).pipe(explain("cannot open the spool")))
  }).pipe(quiet)

  const journal = (id: string, body: string, epoch: number, ordinal: number, now: number) =>
    sql<{ seq: number }>`INSERT INTO observability_spool (id, body, epoch, ordinal, spooled_at, held)
      VALUES (${id}, ${body}, ${epoch}, ${ordinal}, ${now}, 1) RETURNING seq`
      .pipe(Effect.map((rows) => rows[0]?.seq ?? 0), explain("cannot write the event ahead"), quiet)

  // Bulk writes pass their rows as one JSON array through `json_each`: one fixed statement per
  // kind of write (prepared once), whatever the number of rows.
  const commit = (ops: Ops, now: number) =>
    sql.withTransaction(Effect.gen(function*() {
      if (ops.spool.length > 0) {
        const rows = (ops.spool.length < 2 ? ops.spool : [...ops.spool].sort(byEmitOrder))
          .map((item) => [item.id, item.body, item.epoch, item.ordinal, item.reason])
        yield* sql`INSERT INTO observability_spool (id, body, epoch, ordinal, spooled_at, held, last_error)
          SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, ${now}, 0, value ->> 4
          FROM json_each(${JSON.stringify(rows)}) ORDER BY key`
      }
      for (const [reason, seqs] of groupByReason(ops.release)) {
        yield* sql`UPDATE observability_spool SET held = 0, last_error = ${reason}
          WHERE seq IN (SELECT value FROM json_each(${JSON.stringify(seqs)}))`
      }
      for (const [reason, seqs] of groupByReason(ops.failed)) {
        yield* sql`UPDATE observability_spool SET attempts = attempts + 1, last_error = ${reason}
          WHERE seq IN (SELECT value FROM json_each(${JSON.stringify(seqs)}))`
      }
      if (ops.dead.length > 0) {
        const rows = ops.dead.map((item) => [item.id, item.body, item.epoch, item.ordinal, item.reason, item.status ?? null])
        yield* sql`INSERT INTO observability_dead_letter (id, body, epoch, ordinal, reason, status, failed_at)
          SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, ${now}
          FROM json_each(${JSON.stringify(rows)}) ORDER BY key`
      }
      if (ops.remove.length > 0) {
        yield* sql`DELETE FROM observability_spool WHERE seq IN (SELECT value FROM json_each(${JSON.stringify(ops.remove)}))`
      }
    })).pipe(explain("cannot write the spool"), quiet)

  const page = (limit: number) =>
    sql<Row>`SELECT seq, id, body, epoch, ordinal FROM observability_spool
      WHERE held = 0 ORDER BY epoch, ordinal, seq LIMIT ${limit}`.pipe(explain("cannot read the spool"), quiet)

  const deadLetters = (limit: number) =>
    sql<{ seq: number; id: string; body: string; reason: string; status: number | null; failed_at: number }>`
      SELECT seq, id, body, reason, status, failed_at FROM observability_dead_letter ORDER BY seq DESC LIMIT ${limit}`
      .pipe(explain("cannot read the dead letters"), quiet)

  const requeueDeadLetters = (now: number) =>
    sql.withTransaction(Effect.gen(function*() {
      const count = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM observability_dead_letter`
      yield* sql`INSERT INTO observability_spool (id, body, epoch, ordinal, spooled_at, held, last_error)
        SELECT id, body, epoch, ordinal, ${now}, 0, 'requeued from the dead letters: ' || reason
        FROM observability_dead_letter ORDER BY seq`
      yield* sql`DELETE FROM observability_dead_letter`
      return count[0]?.n ?? 0
    })).pipe(explain("cannot requeue the dead letters"), quiet)

  return { open, journal, commit, page, deadLetters, requeueDeadLetters }
})
