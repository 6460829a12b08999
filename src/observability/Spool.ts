/**
 * The observability spool and dead-letter tables in the store (`Store`), schema
 * version 2 (recorded in `big3_schema`; version 1, without leases, is upgraded in place).
 *
 * ```sql
 * -- SQLite's words; PostgreSQL's: seq BIGSERIAL PRIMARY KEY, BIGINT for the ms columns.
 * observability_spool(
 *   seq INTEGER PRIMARY KEY AUTOINCREMENT,
 *   id TEXT NOT NULL,                       -- the event id (idempotency key)
 *   body TEXT NOT NULL,                     -- the event JSON, exactly as it is sent
 *   epoch INTEGER NOT NULL,                 -- when the emitting client started, ms since the epoch
 *   ordinal INTEGER NOT NULL DEFAULT 0,     -- emit order within that client
 *   spooled_at INTEGER NOT NULL,            -- ms since the epoch
 *   owner TEXT,                             -- the process holding the row (host/pid/random), or NULL
 *   lease_until INTEGER NOT NULL DEFAULT 0, -- the owner's claim ends then (ms); 0: nobody's
 *   attempts INTEGER NOT NULL DEFAULT 0,    -- failed redelivery passes
 *   last_error TEXT)                        -- why it is here / why the last pass failed
 * observability_dead_letter(
 *   seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, body TEXT NOT NULL,
 *   epoch INTEGER NOT NULL, ordinal INTEGER NOT NULL DEFAULT 0,
 *   reason TEXT NOT NULL, status INTEGER, failed_at INTEGER NOT NULL)
 * ```
 *
 * Every row has at most one drainer: a process sends a row only while it holds it (`owner`,
 * `lease_until` in the future). Rows written for events still in a process's memory (the
 * group-commit journal) are held by it from the start; the backlog is the rows nobody holds, taken
 * oldest first (emit order: `epoch, ordinal`, then `seq`) with one `UPDATE … RETURNING` that
 * re-checks the claim, so two processes never take the same row. Holders renew their leases; a
 * process that stops releases what it holds, and the rows of a process that died come back when
 * its lease ends (at once, for a process of this host that is gone).
 *
 * The spool lives in the application's store: the embedded SQLite file, or PostgreSQL when
 * `BIG3_DATABASE_URL` is set, where every process and runner on that database shares it (and
 * redelivers what another spooled: the claims give each row one drainer). The statements are
 * portable SQL (SQLite ≥ 3.35, PostgreSQL): multi-row `VALUES`, `IN` lists, `UPDATE … RETURNING`,
 * `DELETE … RETURNING`. Only the DDL differs (`schema`, `schemaPostgres`): `BIGSERIAL` and
 * `BIGINT` on PostgreSQL for `seq` and the millisecond columns, which PostgreSQL returns as
 * strings, so every number read is decoded with `Number`.
 * Measured on SQLite: a 500-row VALUES insert with bound parameters costs less than the same rows
 * passed as one JSON array through `json_each` (≈ 14 µs against ≈ 22 µs per event, insert and
 * delete), so the portable form is also the fast one.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as os from "node:os"
import * as Store from "../Store.js"
import { processIsGone } from "../internal/processAlive.js"

/** The schema version this build writes. */
export const schemaVersion = 2

/**
 * The tables in a dialect's words: `seq` counts itself (`AUTOINCREMENT` on SQLite, `BIGSERIAL`
 * on PostgreSQL) and the millisecond columns are 64-bit (`BIGINT`: PostgreSQL's `INTEGER` is 32
 * bits; SQLite's `INTEGER` is already 64).
 */
const tablesIn = (dialect: { readonly serial: string; readonly int: string }): ReadonlyArray<string> => [
  `CREATE TABLE IF NOT EXISTS observability_spool (
    seq ${dialect.serial},
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    epoch ${dialect.int} NOT NULL,
    ordinal ${dialect.int} NOT NULL DEFAULT 0,
    spooled_at ${dialect.int} NOT NULL,
    owner TEXT,
    lease_until ${dialect.int} NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
  )`,
  `CREATE INDEX IF NOT EXISTS observability_spool_order ON observability_spool (epoch, ordinal, seq)`,
  `CREATE TABLE IF NOT EXISTS observability_dead_letter (
    seq ${dialect.serial},
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    epoch ${dialect.int} NOT NULL,
    ordinal ${dialect.int} NOT NULL DEFAULT 0,
    reason TEXT NOT NULL,
    status INTEGER,
    failed_at ${dialect.int} NOT NULL
  )`
]

const sqliteTypes = { serial: "INTEGER PRIMARY KEY AUTOINCREMENT", int: "INTEGER" } as const
const postgresTypes = { serial: "BIGSERIAL PRIMARY KEY", int: "BIGINT" } as const

/** The SQLite tables (the embedded store). */
export const schema: ReadonlyArray<string> = tablesIn(sqliteTypes)

/** The PostgreSQL tables (`BIG3_DATABASE_URL`). */
export const schemaPostgres: ReadonlyArray<string> = tablesIn(postgresTypes)

/**
 * Version 1 (a `held` flag, one process per file assumed) → version 2 (owners and leases).
 * Version 1 only ever lived in SQLite files; the PostgreSQL form is there for completeness.
 */
const upgradeFrom1 = (int: string): ReadonlyArray<string> => [
  `DROP INDEX IF EXISTS observability_spool_backlog`,
  `ALTER TABLE observability_spool ADD COLUMN owner TEXT`,
  `ALTER TABLE observability_spool ADD COLUMN lease_until ${int} NOT NULL DEFAULT 0`,
  // Held rows were written ahead by a process that is gone by now: they join the backlog.
  `ALTER TABLE observability_spool DROP COLUMN held`,
  `CREATE INDEX IF NOT EXISTS observability_spool_order ON observability_spool (epoch, ordinal, seq)`
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

/**
 * An event still in this process's memory, bound for a journal row: its id is read from its body,
 * its epoch is this process's (`SpoolOptions.epoch`), so that a group commit copies nothing per
 * event.
 */
export interface Journaled {
  readonly body: string
  readonly ordinal: number
}

/** Why a journal row is there while its event is still in memory. */
export const heldReason = "held by a running process: not delivered yet"

/** The `id` of a body built by `emit` (`{"id":"…",…}`), without parsing the whole event. */
export const idOf = (body: string): string => {
  if (body.startsWith("{\"id\":\"")) {
    for (let i = 7; i < body.length; i++) {
      const char = body.charCodeAt(i)
      if (char === 92) {
        // An escaped character: let JSON read the string.
        const end = body.indexOf("\",", i)
        try {
          const id: unknown = JSON.parse(body.slice(6, end + 1))
          if (typeof id === "string") return id
        } catch {
          // fall through to parsing the whole body
        }
        break
      }
      if (char === 34) return body.slice(7, i)
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

export interface DeadItem extends Item {
  readonly status: number | undefined
}

/** Writes gathered by the client and committed in one transaction. */
export interface Ops {
  /** Events still in this process's memory, written so that a crash does not lose them: held by this process. */
  readonly journal: Array<Journaled>
  /** New backlog rows (nobody holds them). */
  readonly spool: Array<Item>
  /** Rows held here whose events could not be delivered now: they join the backlog. */
  readonly release: Array<{ readonly seq: number; readonly reason: string }>
  /** Rows done with (delivered, or moved to the dead letters). */
  readonly remove: Array<number>
  /** Claimed backlog rows that failed another redelivery pass: released, `attempts` + 1. */
  readonly failed: Array<{ readonly seq: number; readonly reason: string }>
  readonly dead: Array<DeadItem>
}

export const emptyOps = (): Ops => ({ journal: [], spool: [], release: [], remove: [], failed: [], dead: [] })

export const opsSize = (ops: Ops): number =>
  ops.journal.length + ops.spool.length + ops.release.length + ops.remove.length + ops.failed.length + ops.dead.length

/** `first`'s writes, then `then`'s. */
export const concatOps = (first: Ops, then: Ops): Ops => ({
  journal: first.journal.concat(then.journal),
  spool: first.spool.concat(then.spool),
  release: first.release.concat(then.release),
  remove: first.remove.concat(then.remove),
  failed: first.failed.concat(then.failed),
  dead: first.dead.concat(then.dead)
})

/** What a commit wrote: the `seq` of each journal row, by the event's `ordinal`. */
export interface Committed {
  readonly journaled: ReadonlyMap<number, number>
}

/** What `open` found. */
export interface Opened {
  /** Rows nobody holds. */
  readonly backlog: number
  readonly deadLetters: number
  /** Rows released at start because the process of this host that held them is gone. */
  readonly reclaimed: number
  /** Rows held by live processes (or whose lease has not ended yet). */
  readonly held: number
  /** All rows, and the size of their bodies (for `BIG3_EVENTS_SPOOL_MAX`). */
  readonly rows: number
  readonly bytes: number
}

/** How much the spool holds. */
export interface Size {
  readonly rows: number
  readonly bytes: number
}

/** A bound on the spool (`BIG3_EVENTS_SPOOL_MAX`). */
export interface Limit {
  readonly rows: number | undefined
  readonly bytes: number | undefined
}

/** What `evict` deleted to bring the spool under its limit. */
export interface Evicted {
  readonly count: number
  /** The ids deleted (at most 50, oldest first). */
  readonly ids: ReadonlyArray<string>
  /** The spool after the eviction. */
  readonly size: Size
}

export interface Spool {
  /** This process's name in the `owner` column. */
  readonly owner: string
  /** Creates or upgrades the tables (refusing a newer schema), releases rows of processes that are gone, and counts. */
  readonly open: (now: number) => Effect.Effect<Opened, SqlError>
  /** Commits a set of writes in one transaction; with `releaseHeld`, every row this process holds goes back to the backlog too. */
  readonly commit: (ops: Ops, now: number, options?: { readonly releaseHeld?: boolean }) => Effect.Effect<Committed, SqlError>
  /** Claims the oldest `limit` rows nobody holds, for this process, until `now + lease`. */
  readonly claim: (limit: number, now: number) => Effect.Effect<ReadonlyArray<Row>, SqlError>
  /** Extends the lease of every row this process holds. */
  readonly renew: (now: number) => Effect.Effect<void, SqlError>
  /** Rows nobody holds, and rows held by processes (this one included). */
  readonly counts: (now: number) => Effect.Effect<{ readonly backlog: number; readonly held: number }, SqlError>
  /** Deletes the oldest rows nobody holds until the spool is within `limit`. */
  readonly evict: (limit: Limit, now: number) => Effect.Effect<Evicted, SqlError>
  readonly deadLetters: (limit: number) => Effect.Effect<
    ReadonlyArray<{ seq: number; id: string; body: string; reason: string; status: number | null; failed_at: number }>,
    SqlError
  >
  /** Moves every dead letter to the backlog; returns how many. */
  readonly requeueDeadLetters: (now: number) => Effect.Effect<number, SqlError>
}

/** The database's own words for a failed statement ("database disk image is malformed", "attempt to write a readonly database"). */
export const detailOf = (error: SqlError): string => {
  const cause = error.cause
  if (cause instanceof SqlError) return detailOf(cause)
  return cause instanceof Error && cause.message !== "" ? Store.withCode(cause) : error.message
}

/** Names what failed in the error, so that a caller can say it in one line. */
const explain = (what: string) => <A, R>(effect: Effect.Effect<A, SqlError, R>): Effect.Effect<A, SqlError, R> =>
  Effect.mapError(effect, (error) => new SqlError({ cause: error, message: `${what}: ${detailOf(error)}` }))

/** A name for this process in the `owner` column: its host and pid (to tell whether it is gone), and a random part. */
export const ownerName = (pid: number = process.pid): string =>
  `${os.hostname()}/${pid}/${Math.random().toString(36).slice(2, 10)}`

/** Whether the process that wrote `owner` is known to be gone: it ran on this host and its pid is not alive. */
export const ownerIsGone = (owner: string): boolean => {
  const [host, pidText] = owner.split("/")
  const pid = Number(pidText)
  return host === os.hostname() && processIsGone(pid)
}

/** Statement size: rows per multi-row `INSERT` and values per `IN` list (well under SQLite's and PostgreSQL's parameter limits). */
const chunkSize = 500

const chunks = <A>(items: ReadonlyArray<A>): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += chunkSize) out.push(items.slice(i, i + chunkSize))
  return out
}

const byEmitOrder = <A extends { readonly epoch: number; readonly ordinal: number }>(a: A, b: A): number =>
  a.epoch - b.epoch || a.ordinal - b.ordinal

const byRowOrder = (a: Row, b: Row): number => a.epoch - b.epoch || a.ordinal - b.ordinal || a.seq - b.seq

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

export interface SpoolOptions {
  /** How long a claim lasts without renewal, ms. */
  readonly leaseMillis: number
  /** This process's owner name (default: `ownerName()`). */
  readonly owner?: string | undefined
  /** When this process's client started, ms: the epoch of its journal rows (default: now). */
  readonly epoch?: number | undefined
}

export const make = (options: SpoolOptions): Effect.Effect<Spool, never, SqlClient.SqlClient> =>
  Effect.map(SqlClient.SqlClient, (sql): Spool => {
    const owner = options.owner ?? ownerName()
    const epoch = options.epoch ?? Date.now()
    const lease = options.leaseMillis
    // Spool traffic is bookkeeping: no spans (the sql client would open one per statement).
    const quiet = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.withTracerEnabled(effect, false)
    // PostgreSQL returns BIGINT columns, COUNT and SUM as strings (64 bits do not fit a JS
    // number); SQLite returns numbers. Millisecond times and row counts are well within 2^53.
    const num = (value: unknown): number => Number(value ?? 0)

    const unrecorded = sql`SELECT held FROM observability_spool WHERE 1 = 0`.pipe(
      Effect.as(1),
      Effect.orElseSucceed(() => undefined)
    )

    const sizeOf = sql<{ n: unknown; bytes: unknown }>`SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(body)), 0) AS bytes
      FROM observability_spool`.pipe(Effect.map((rows): Size => ({ rows: num(rows[0]?.n), bytes: num(rows[0]?.bytes) })))

    const open = (now: number) =>
      Effect.gen(function*() {
        const types = sql.onDialectOrElse({ pg: () => postgresTypes, orElse: () => sqliteTypes })
        yield* Effect.provideService(
          Store.versioned("observability", {
            version: schemaVersion,
            create: tablesIn(types),
            upgrades: { 1: upgradeFrom1(types.int) },
            unrecorded
          }),
          SqlClient.SqlClient,
          sql
        )
        return yield* Store.transaction(sql, Effect.gen(function*() {
          const holders = yield* sql<{ owner: string }>`SELECT DISTINCT owner FROM observability_spool
            WHERE owner IS NOT NULL AND lease_until >= ${now}`
          let reclaimed = 0
          for (const { owner: holder } of holders) {
            if (!ownerIsGone(holder)) continue
            const released = yield* sql<{ seq: number }>`UPDATE observability_spool SET owner = NULL, lease_until = 0,
              last_error = ${`held by process ${holder.split("/")[1]} of this host, which stopped before delivering it`}
              WHERE owner = ${holder} RETURNING seq`
            reclaimed += released.length
          }
          const counts = yield* sql<{ n: unknown; bytes: unknown; backlog: unknown }>`SELECT COUNT(*) AS n,
            COALESCE(SUM(LENGTH(body)), 0) AS bytes,
            COALESCE(SUM(CASE WHEN owner IS NULL OR lease_until < ${now} THEN 1 ELSE 0 END), 0) AS backlog
            FROM observability_spool`
          const dead = yield* sql<{ n: unknown }>`SELECT COUNT(*) AS n FROM observability_dead_letter`
          const rows = num(counts[0]?.n)
          const backlog = num(counts[0]?.backlog)
          return { backlog, deadLetters: num(dead[0]?.n), reclaimed, held: rows - backlog, rows, bytes: num(counts[0]?.bytes) }
        }))
      }).pipe(explain("cannot open the spool"), quiet)

    // One multi-row INSERT per 500 rows, its values in one flat array (the 500-row text is built
    // once). `sql.insert` made an object per row and the text placeholder by placeholder: garbage
    // that a young-generation GC in mid-round promoted to the old one, where it waited for a full
    // GC (with 100,000 events queued, ≈ 10 MiB of peak RSS).
    const insertColumns = "INSERT INTO observability_spool (id, body, epoch, ordinal, spooled_at, owner, lease_until, last_error) VALUES "
    const columnCount = 8
    /** `count` placeholders after the first `from`, comma-separated, in the dialect's words. */
    const placeholders: (from: number, count: number) => string = sql.onDialectOrElse({
      pg: () => (from: number, count: number) => Array.from({ length: count }, (_, i) => `$${from + i + 1}`).join(","),
      orElse: () => (_from: number, count: number) => `?${",?".repeat(count - 1)}`
    })
    const valuesOf = (rows: number) =>
      Array.from({ length: rows }, (_, row) => `(${placeholders(row * columnCount, columnCount)})`).join(",")
    /** A statement's text for `rows` rows or values; the full chunk's is built once. */
    const sized = (text: (rows: number) => string): (rows: number) => string => {
      const full = text(chunkSize)
      return (rows) => rows === chunkSize ? full : text(rows)
    }
    const insertText = sized((rows) => `${insertColumns}${valuesOf(rows)}`)
    const insertReturningText = sized((rows) => `${insertColumns}${valuesOf(rows)} RETURNING seq, ordinal`)
    // Deletes by seq likewise: the 500-value text once, not compiled value by value each time.
    const deleteText = sized((rows) => `DELETE FROM observability_spool WHERE seq IN (${placeholders(0, rows)})`)

    /** The columns an event's row takes from it (the rest are the commit's); `held`: this process holds the row. */
    interface RowSource<A extends Journaled> {
      readonly id: (item: A) => string
      readonly epoch: (item: A) => number
      readonly reason: (item: A) => string
      readonly held: boolean
    }
    const fromItem: RowSource<Item> = { id: (item) => item.id, epoch: (item) => item.epoch, reason: (item) => item.reason, held: false }
    const fromJournaled: RowSource<Journaled> = { id: (item) => idOf(item.body), epoch: () => epoch, reason: () => heldReason, held: true }

    const valuesFor = <A extends Journaled>(chunk: ReadonlyArray<A>, source: RowSource<A>, now: number) => {
      const values = new Array<string | number | null>(chunk.length * columnCount)
      let i = 0
      for (const item of chunk) {
        values[i++] = source.id(item)
        values[i++] = item.body
        values[i++] = source.epoch(item)
        values[i++] = item.ordinal
        values[i++] = now
        values[i++] = source.held ? owner : null
        values[i++] = source.held ? now + lease : 0
        values[i++] = source.reason(item)
      }
      return values
    }

    /** Backlog rows: nothing is read back. */
    const insertRows = (items: ReadonlyArray<Item>, now: number) =>
      Effect.forEach(chunks(items), (chunk) => sql.unsafe(insertText(chunk.length), valuesFor(chunk, fromItem, now)), { discard: true })

    const lastRowid = Effect.map(sql<{ last: unknown }>`SELECT last_insert_rowid() AS last`, (rows) => num(rows[0]?.last))

    /**
     * Inserts one chunk of journal rows and adds the `seq` of each to `journaled` by its ordinal.
     * On SQLite, with the write lock held, one multi-row INSERT numbers its rows one after the
     * other in VALUES order (AUTOINCREMENT: the largest seq so far + 1), so they are
     * `last_insert_rowid()` − n + 1 … that: reading them back with RETURNING cost more than a µs
     * an event. PostgreSQL's sequence is shared with concurrent writers, so there they are read back.
     */
    const insertJournalChunk: (
      chunk: ReadonlyArray<Journaled>,
      values: ReadonlyArray<string | number | null>,
      journaled: Map<number, number>
    ) => Effect.Effect<void, SqlError> = sql.onDialectOrElse({
      sqlite: () => (chunk, values, journaled) =>
        Effect.map(Effect.zipRight(sql.unsafe(insertText(chunk.length), values), lastRowid), (last) => {
          const first = last - chunk.length + 1
          for (let i = 0; i < chunk.length; i++) journaled.set(chunk[i]!.ordinal, first + i)
        }),
      orElse: () => (chunk, values, journaled) =>
        Effect.map(sql.unsafe<{ seq: unknown; ordinal: unknown }>(insertReturningText(chunk.length), values), (rows) => {
          for (const row of rows) journaled.set(num(row.ordinal), num(row.seq))
        })
    })

    const insertJournal = (items: ReadonlyArray<Journaled>, now: number, journaled: Map<number, number>) =>
      Effect.forEach(chunks(items), (chunk) => insertJournalChunk(chunk, valuesFor(chunk, fromJournaled, now), journaled), { discard: true })

    const commit = (ops: Ops, now: number, commitOptions: { readonly releaseHeld?: boolean } = {}) =>
      Store.transaction(sql, Effect.gen(function*() {
        const journaled = new Map<number, number>()
        if (ops.journal.length > 0) yield* insertJournal(ops.journal, now, journaled)
        if (ops.spool.length > 0) yield* insertRows(ops.spool.length < 2 ? ops.spool : [...ops.spool].sort(byEmitOrder), now)
        for (const [reason, seqs] of groupByReason(ops.release)) {
          for (const chunk of chunks(seqs)) {
            yield* sql`UPDATE observability_spool SET owner = NULL, lease_until = 0, last_error = ${reason}
              WHERE ${sql.in("seq", chunk)} AND owner = ${owner}`
          }
        }
        for (const [reason, seqs] of groupByReason(ops.failed)) {
          for (const chunk of chunks(seqs)) {
            yield* sql`UPDATE observability_spool SET owner = NULL, lease_until = 0, attempts = attempts + 1,
              last_error = ${reason} WHERE ${sql.in("seq", chunk)} AND owner = ${owner}`
          }
        }
        for (const chunk of chunks(ops.dead)) {
          yield* sql`INSERT INTO observability_dead_letter ${
            sql.insert(chunk.map((item) => ({
              id: item.id,
              body: item.body,
              epoch: item.epoch,
              ordinal: item.ordinal,
              reason: item.reason,
              status: item.status ?? null,
              failed_at: now
            })))
          }`
        }
        for (const chunk of chunks(ops.remove)) {
          yield* sql.unsafe(deleteText(chunk.length), chunk)
        }
        if (commitOptions.releaseHeld === true) {
          yield* sql`UPDATE observability_spool SET owner = NULL, lease_until = 0 WHERE owner = ${owner}`
        }
        return { journaled }
      })).pipe(explain("cannot write the spool"), quiet)

    // On PostgreSQL the candidates skip rows another claim is taking right now: without it, a
    // claim racing another picks the same rows, waits for their locks, finds them taken and
    // returns nothing although the backlog is not empty. (SQLite has one writer at a time.)
    const skipLocked = sql.onDialectOrElse({ pg: () => sql.literal("FOR UPDATE SKIP LOCKED"), orElse: () => sql.literal("") })

    // The inner SELECT picks candidates; the outer WHERE checks the claim again on the row
    // itself, so that of two processes racing for a row (PostgreSQL re-reads it after a
    // concurrent update) only one gets it.
    const claim = (limit: number, now: number) =>
      sql<{ seq: unknown; id: string; body: string; epoch: unknown; ordinal: unknown }>`UPDATE observability_spool
        SET owner = ${owner}, lease_until = ${now + lease}
        WHERE seq IN (SELECT seq FROM observability_spool WHERE (owner IS NULL OR lease_until < ${now})
          ORDER BY epoch, ordinal, seq LIMIT ${limit} ${skipLocked})
        AND (owner IS NULL OR lease_until < ${now})
        RETURNING seq, id, body, epoch, ordinal`.pipe(
        Effect.map((rows) =>
          rows.map((row): Row => ({ seq: num(row.seq), id: row.id, body: row.body, epoch: num(row.epoch), ordinal: num(row.ordinal) }))
            .sort(byRowOrder)
        ),
        explain("cannot read the spool"),
        quiet
      )

    const renew = (now: number) =>
      sql`UPDATE observability_spool SET lease_until = ${now + lease} WHERE owner = ${owner}`.pipe(
        Effect.asVoid,
        explain("cannot renew the spool's leases"),
        quiet
      )

    const evict = (limit: Limit, now: number) =>
      Store.transaction(sql, Effect.gen(function*() {
        let size = yield* sizeOf
        let count = 0
        const ids: Array<string> = []
        // A few passes at most: a pass over bytes deletes rows of the average size.
        for (let pass = 0; pass < 4; pass++) {
          const overRows = limit.rows === undefined ? 0 : size.rows - limit.rows
          const overBytes = limit.bytes === undefined || size.rows === 0
            ? 0
            : Math.ceil((size.bytes - limit.bytes) / (size.bytes / size.rows))
          const excess = Math.max(overRows, overBytes)
          if (excess <= 0) break
          const deleted = yield* sql<{ id: string; bytes: unknown }>`DELETE FROM observability_spool
            WHERE seq IN (SELECT seq FROM observability_spool WHERE (owner IS NULL OR lease_until < ${now})
              ORDER BY epoch, ordinal, seq LIMIT ${excess})
            RETURNING id, LENGTH(body) AS bytes`
          if (deleted.length === 0) break
          count += deleted.length
          for (const row of deleted) if (ids.length < 50) ids.push(row.id)
          size = yield* sizeOf
        }
        return { count, ids, size }
      })).pipe(explain("cannot bound the spool"), quiet)

    const counts = (now: number) =>
      sql<{ n: unknown; backlog: unknown }>`SELECT COUNT(*) AS n,
        COALESCE(SUM(CASE WHEN owner IS NULL OR lease_until < ${now} THEN 1 ELSE 0 END), 0) AS backlog FROM observability_spool`.pipe(
        Effect.map((rows) => ({ backlog: num(rows[0]?.backlog), held: num(rows[0]?.n) - num(rows[0]?.backlog) })),
        explain("cannot count the spool"),
        quiet
      )

    const deadLetters = (limit: number) =>
      sql<{ seq: unknown; id: string; body: string; reason: string; status: unknown; failed_at: unknown }>`
        SELECT seq, id, body, reason, status, failed_at FROM observability_dead_letter ORDER BY seq DESC LIMIT ${limit}`
        .pipe(
          Effect.map((rows) =>
            rows.map((row) => ({
              seq: num(row.seq),
              id: row.id,
              body: row.body,
              reason: row.reason,
              status: row.status === null ? null : num(row.status),
              failed_at: num(row.failed_at)
            }))
          ),
          explain("cannot read the dead letters"),
          quiet
        )

    const requeueDeadLetters = (now: number) =>
      Store.transaction(sql, Effect.gen(function*() {
        const count = yield* sql<{ n: unknown }>`SELECT COUNT(*) AS n FROM observability_dead_letter`
        yield* sql`INSERT INTO observability_spool (id, body, epoch, ordinal, spooled_at, lease_until, last_error)
          SELECT id, body, epoch, ordinal, CAST(${now} AS BIGINT), 0, 'requeued from the dead letters: ' || reason
          FROM observability_dead_letter ORDER BY seq`
        yield* sql`DELETE FROM observability_dead_letter`
        return num(count[0]?.n)
      })).pipe(explain("cannot requeue the dead letters"), quiet)

    return { owner, open, commit, claim, renew, counts, evict, deadLetters, requeueDeadLetters }
  })
