/**
 * The learned timeouts kept in the store, one row per operation: the summary `big3 config` shows
 * (samples, learned timeout, p99) and the window's histogram, from which a new runtime starts
 * instead of from nothing. Portable SQL (SQLite and Postgres): the upsert is
 * `INSERT … ON CONFLICT (…) DO UPDATE`, numbers are `DOUBLE PRECISION` / `BIGINT`.
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Store from "../Store.js"
import type { Buckets } from "./LatencyWindow.js"

export const table = "big3_adaptive_timeouts"

export const schema: ReadonlyArray<string> = [
  `CREATE TABLE IF NOT EXISTS ${table} (
    operation TEXT PRIMARY KEY,
    samples BIGINT NOT NULL,
    learned_ms DOUBLE PRECISION,
    p99_ms DOUBLE PRECISION,
    configured_ms DOUBLE PRECISION NOT NULL,
    buckets TEXT NOT NULL,
    updated_at BIGINT NOT NULL
  )`
]

/** One operation's saved state. */
export interface Saved {
  readonly operation: string
  readonly samples: number
  /** The learned timeout in ms; absent before `minSamples`. */
  readonly learnedMillis: number | undefined
  readonly p99Millis: number | undefined
  readonly configuredMillis: number
  readonly buckets: Buckets
  /** When it was saved, in ms of the Effect `Clock`. */
  readonly updatedAt: number
}

const BucketsJson = Schema.parseJson(Schema.Array(Schema.Tuple(Schema.Int, Schema.Number)))
const decodeBuckets = Schema.decodeUnknownOption(BucketsJson)
const encodeBuckets = Schema.encodeSync(BucketsJson)

const Row = Schema.Struct({
  operation: Schema.String,
  samples: Schema.Number,
  learned_ms: Schema.NullOr(Schema.Number),
  p99_ms: Schema.NullOr(Schema.Number),
  configured_ms: Schema.Number,
  buckets: Schema.String,
  updated_at: Schema.Number
})
const decodeRow = Schema.decodeUnknownOption(Row)

/** Every saved operation. Rows that do not decode (written by another version) are skipped. */
export const load: Effect.Effect<ReadonlyArray<Saved>, SqlError, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<Record<string, unknown>>`SELECT operation, samples, learned_ms, p99_ms, configured_ms, buckets, updated_at
    FROM big3_adaptive_timeouts`
  const saved: Array<Saved> = []
  for (const raw of rows) {
    const row = decodeRow({ ...raw, samples: Number(raw.samples), updated_at: Number(raw.updated_at) })
    if (row._tag === "None") continue
    const buckets = decodeBuckets(row.value.buckets)
    saved.push({
      operation: row.value.operation,
      samples: row.value.samples,
      learnedMillis: row.value.learned_ms ?? undefined,
      p99Millis: row.value.p99_ms ?? undefined,
      configuredMillis: row.value.configured_ms,
      buckets: buckets._tag === "Some" ? buckets.value : [],
      updatedAt: row.value.updated_at
    })
  }
  return saved
})

/** Writes (inserts or replaces) each operation's row, in one transaction. */
export const save = (entries: ReadonlyArray<Saved>): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Store.transaction(sql, Effect.forEach(entries, (entry) =>
      sql`INSERT INTO big3_adaptive_timeouts (operation, samples, learned_ms, p99_ms, configured_ms, buckets, updated_at)
        VALUES (${entry.operation}, ${entry.samples}, ${entry.learnedMillis ?? null}, ${entry.p99Millis ?? null},
          ${entry.configuredMillis}, ${encodeBuckets(entry.buckets)}, ${Math.round(entry.updatedAt)})
        ON CONFLICT (operation) DO UPDATE SET samples = excluded.samples, learned_ms = excluded.learned_ms,
          p99_ms = excluded.p99_ms, configured_ms = excluded.configured_ms, buckets = excluded.buckets,
          updated_at = excluded.updated_at`.raw, { discard: true })))
