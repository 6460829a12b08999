/**
 * The agent registry: one row per agent in the `agents` table of the embedded SQLite database.
 *
 * `name` is the primary key, so two creates of one name cannot both succeed, even from two
 * `big3` processes sharing the database file. A create first reserves its name (a `creating`
 * row carrying a reservation id), then marks it `ready` with the session; a failed or timed-out
 * create deletes its own reservation and nothing else. A row that does not decode stops every
 * reader with `RegistryCorrupt` and is never rewritten.
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as Store from "../Store.js"
import type { AgentName } from "./Domain.js"
import { AgentExists, AgentName as AgentNameSchema, AgentStorageError, RegistryCorrupt } from "./Domain.js"

/** The table, created by `Agents.layer` when missing. */
export const createTable = `CREATE TABLE IF NOT EXISTS agents (
  name        TEXT PRIMARY KEY NOT NULL,
  type        TEXT NOT NULL,
  status      TEXT NOT NULL,
  session_id  TEXT,
  greeting    TEXT,
  reservation TEXT,
  created_at  INTEGER NOT NULL
)`

const Row = Schema.Struct({
  name: AgentNameSchema,
  type: Schema.String,
  status: Schema.Literal("creating", "ready"),
  session_id: Schema.NullOr(Schema.String),
  greeting: Schema.NullOr(Schema.String),
  reservation: Schema.NullOr(Schema.String),
  created_at: Schema.Number.pipe(Schema.finite(), Schema.nonNegative())
})
type Row = typeof Row.Type

/** A registered, ready agent. */
export interface AgentRecord {
  readonly name: AgentName
  readonly type: string
  readonly sessionId: string
  readonly greeting: string
  readonly createdAt: number
}

/** A name held by a create in progress. */
export interface Reservation {
  readonly name: AgentName
  readonly token: string
  /** A stale reservation (of a create that crashed) was taken over: its directory is leftover. */
  readonly tookOverStale: boolean
}

/** What a lookup finds. */
export type Lookup =
  | { readonly _tag: "Ready"; readonly agent: AgentRecord }
  | { readonly _tag: "Creating"; readonly createdAt: number }

const storageError = (what: string, agent?: string) => (error: SqlError): AgentStorageError => {
  const cause = Predicate.hasProperty(error.cause, "message") && typeof error.cause.message === "string"
    ? `: ${error.cause.message}`
    : ""
  return new AgentStorageError({
    service: "agents",
    message: `the agent registry could not ${what} (${error.message}${cause})`,
    ...(agent === undefined ? {} : { agent })
  })
}

const decodeRow = (raw: unknown): Effect.Effect<Row, RegistryCorrupt> =>
  Effect.flatMap(
    Effect.mapError(Schema.decodeUnknown(Row)(raw), (error) => corrupt(raw, ParseResult.TreeFormatter.formatErrorSync(error))),
    (row) =>
      row.status === "ready" && (row.session_id === null || row.greeting === null)
        ? Effect.fail(corrupt(raw, "a ready agent has no session id or greeting"))
        : Effect.succeed(row)
  )

const corrupt = (raw: unknown, detail: string): RegistryCorrupt => {
  const name = Predicate.hasProperty(raw, "name") && typeof raw.name === "string" ? raw.name : undefined
  const who = name === undefined ? "an agent registry entry" : `the registry entry of agent ${JSON.stringify(name)}`
  return new RegistryCorrupt({
    service: "agents",
    message: `${who} is unreadable (${detail.replace(/\s+/g, " ").slice(0, 300)}); big3 left it untouched: ` +
      `repair or remove the row in the "agents" table of the big3 database`,
    ...(name === undefined ? {} : { agent: name })
  })
}

const toRecord = (row: Row): AgentRecord => ({
  name: row.name,
  type: row.type,
  sessionId: row.session_id ?? "",
  greeting: row.greeting ?? "",
  createdAt: row.created_at
})

/** The registry over `SqlClient` (result-name transforms off: the column names are ours). */
export const make = Effect.gen(function*() {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  yield* Store.ensureSchema("agents", [createTable]).pipe(
    Effect.provideService(SqlClient.SqlClient, sql),
    Effect.mapError(storageError("create its table"))
  )

  const select = (name: string) =>
    sql`SELECT name, type, status, session_id, greeting, reservation, created_at FROM agents WHERE name = ${name}`

  const lookup = (name: string): Effect.Effect<Option.Option<Lookup>, RegistryCorrupt | AgentStorageError> =>
    select(name).pipe(
      Effect.mapError(storageError(`read agent ${JSON.stringify(name)}`, name)),
      Effect.flatMap((rows) =>
        rows.length === 0
          ? Effect.succeed(Option.none())
          : Effect.map(decodeRow(rows[0]), (row): Option.Option<Lookup> =>
            Option.some(
              row.status === "ready"
                ? { _tag: "Ready", agent: toRecord(row) }
                : { _tag: "Creating", createdAt: row.created_at }
            ))
      )
    )

  /**
   * Reserves `name` for a create, or fails with `AgentExists`. A `creating` row older than
   * `staleBefore` (ms) belongs to a create that died and is taken over.
   */
  const reserve = (options: {
    readonly name: AgentName
    readonly type: string
    readonly token: string
    readonly now: number
    readonly staleBefore: number
  }): Effect.Effect<Reservation, AgentExists | RegistryCorrupt | AgentStorageError> => {
    const { name, now, staleBefore, token, type } = options
    return Effect.gen(function*() {
      const stale = yield* sql`DELETE FROM agents
        WHERE name = ${name} AND status = 'creating' AND created_at < ${staleBefore} RETURNING name`
      const inserted = yield* sql`INSERT INTO agents (name, type, status, reservation, created_at)
        VALUES (${name}, ${type}, 'creating', ${token}, ${now})
        ON CONFLICT (name) DO NOTHING RETURNING name`
      if (inserted.length > 0) return { name, token, tookOverStale: stale.length > 0 }
      const existing = yield* select(name)
      // A corrupt row is reported as such, not as "exists".
      const row = existing.length === 0 ? undefined : yield* decodeRow(existing[0])
      return yield* Effect.fail(
        new AgentExists({
          service: "agents",
          name,
          message: row?.status === "creating"
            ? `agent ${JSON.stringify(name)} is being created right now; pick another name or wait`
            : `agent ${JSON.stringify(name)} already exists; pick another name or delete it first`
        })
      )
    }).pipe(
      sql.withTransaction,
      Effect.catchTag("SqlError", (error) => Effect.fail(storageError(`reserve agent ${JSON.stringify(name)}`, name)(error)))
    )
  }

  /** Marks a reservation ready with its session. */
  const complete = (
    reservation: Reservation,
    session: { readonly sessionId: string; readonly greeting: string }
  ): Effect.Effect<AgentRecord, AgentStorageError> =>
    sql`UPDATE agents SET status = 'ready', session_id = ${session.sessionId}, greeting = ${session.greeting},
        reservation = NULL
      WHERE name = ${reservation.name} AND status = 'creating' AND reservation = ${reservation.token}
      RETURNING name, type, status, session_id, greeting, reservation, created_at`.pipe(
      Effect.mapError(storageError(`register agent ${JSON.stringify(reservation.name)}`, reservation.name)),
      Effect.flatMap((rows) =>
        rows.length === 0
          ? Effect.fail(
            new AgentStorageError({
              service: "agents",
              agent: reservation.name,
              message: `the reservation of agent ${JSON.stringify(reservation.name)} was lost before it was registered`
            })
          )
          : Effect.succeed(rows[0])
      ),
      Effect.flatMap((raw) =>
        Effect.mapError(decodeRow(raw), (error) =>
          new AgentStorageError({ service: "agents", agent: reservation.name, message: error.message }))
      ),
      Effect.map(toRecord)
    )

  /** Gives a reservation back (only this create's own row). */
  const release = (reservation: Reservation): Effect.Effect<void, AgentStorageError> =>
    sql`DELETE FROM agents
      WHERE name = ${reservation.name} AND status = 'creating' AND reservation = ${reservation.token}`.pipe(
      Effect.mapError(storageError(`release the reservation of agent ${JSON.stringify(reservation.name)}`, reservation.name)),
      Effect.asVoid
    )

  /** Every ready agent, oldest first. Any unreadable row fails the whole listing. */
  const list: Effect.Effect<ReadonlyArray<AgentRecord>, RegistryCorrupt | AgentStorageError> =
    sql`SELECT name, type, status, session_id, greeting, reservation, created_at FROM agents
      ORDER BY created_at, name`.pipe(
      Effect.mapError(storageError("list agents")),
      Effect.flatMap((rows) => Effect.forEach(rows, decodeRow)),
      Effect.map((rows) => rows.filter((row) => row.status === "ready").map(toRecord))
    )

  /** Removes a ready agent's row; false when there was none. */
  const remove = (name: AgentName): Effect.Effect<boolean, AgentStorageError> =>
    sql`DELETE FROM agents WHERE name = ${name} AND status = 'ready' RETURNING name`.pipe(
      Effect.mapError(storageError(`delete agent ${JSON.stringify(name)}`, name)),
      Effect.map((rows) => rows.length > 0)
    )

  return { lookup, reserve, complete, release, list, remove } as const
})

export type Registry = Effect.Effect.Success<typeof make>
