/**
 * The agent registry: one row per agent in the `agents` table of the store (the embedded SQLite
 * database, or PostgreSQL when `BIG3_DATABASE_URL` is set: the SQL here runs on both).
 *
 * `name` is the primary key, so two creates of one name cannot both succeed, even from two
 * `big3` processes sharing the database file. A create first reserves its name (a `creating`
 * row carrying a reservation id), then marks it `ready` with the session; a failed or timed-out
 * create deletes its own reservation and nothing else. A row that does not decode stops every
 * reader with `RegistryCorrupt` and is never rewritten.
 *
 * Each row records where the agent lives: `directory` and the agents `root` it was created under
 * (both canonical at creation), so `delete` removes that directory and nothing the current
 * settings happen to point at. Databases made before these columns get them added (NULL) when
 * the layer starts. The old rows are not filled in from the settings in force at that moment:
 * those settings are exactly what may have changed since the agent was created, and nothing on
 * disk proves which directory is the agent's. Such an agent keeps working under the current
 * agents directory, but `delete` refuses to remove a directory for it (see `Directory.remove`).
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
import type { Recorded } from "./Directory.js"
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
  created_at  BIGINT NOT NULL,
  root        TEXT,
  directory   TEXT
)`

/** Columns added after the first release, as `ALTER TABLE` adds them to an older table. */
const addedColumns: ReadonlyArray<readonly [name: string, definition: string]> = [
  ["root", "TEXT"],
  ["directory", "TEXT"]
]

/** A BIGINT column as read back: PostgreSQL returns them as strings (they may exceed 2^53); ours are milliseconds or counts. */
export const BigIntColumn = Schema.Union(Schema.Number, Schema.NumberFromString)

const Row = Schema.Struct({
  name: AgentNameSchema,
  type: Schema.String,
  status: Schema.Literal("creating", "ready"),
  session_id: Schema.NullOr(Schema.String),
  greeting: Schema.NullOr(Schema.String),
  reservation: Schema.NullOr(Schema.String),
  created_at: BigIntColumn.pipe(Schema.finite(), Schema.nonNegative()),
  root: Schema.NullOr(Schema.String),
  directory: Schema.NullOr(Schema.String)
})
type Row = typeof Row.Type

/** A registered, ready agent. */
export interface AgentRecord {
  readonly name: AgentName
  readonly type: string
  readonly sessionId: string
  readonly greeting: string
  readonly createdAt: number
  /** Where it lives; `None` for an agent registered before big3 recorded it. */
  readonly location: Option.Option<Recorded>
}

/** A name held by a create in progress. */
export interface Reservation {
  readonly name: AgentName
  readonly token: string
  /** A stale reservation (of a create that crashed) was taken over. */
  readonly tookOverStale: boolean
  /** Where that stale create put the agent, when it recorded it (its directory may be leftover). */
  readonly staleLocation: Option.Option<Recorded>
}

/** What a lookup finds. */
export type Lookup =
  | { readonly _tag: "Ready"; readonly agent: AgentRecord }
  | { readonly _tag: "Creating"; readonly createdAt: number }

const causeMessage = (error: SqlError): string =>
  Predicate.hasProperty(error.cause, "message") && typeof error.cause.message === "string" ? error.cause.message : ""

export const storageError = (what: string, agent?: string) => (error: SqlError): AgentStorageError => {
  const detail = causeMessage(error)
  const cause = detail === "" ? "" : `: ${detail}`
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
        : (row.root === null) !== (row.directory === null)
        ? Effect.fail(corrupt(raw, "it records a directory without its agents root, or the other way round"))
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

const locationOf = (row: Row): Option.Option<Recorded> =>
  row.root === null || row.directory === null ? Option.none() : Option.some({ root: row.root, directory: row.directory })

const toRecord = (row: Row): AgentRecord => ({
  name: row.name,
  type: row.type,
  sessionId: row.session_id ?? "",
  greeting: row.greeting ?? "",
  createdAt: row.created_at,
  location: locationOf(row)
})

/**
 * Adds the columns an older `agents` table lacks. Two processes may race here: the loser's
 * "duplicate column name" means the column is there, which is all it wanted. (PostgreSQL has
 * `ADD COLUMN IF NOT EXISTS`; SQLite does not, so its columns are read first.)
 */
const addMissingColumns = (sql: SqlClient.SqlClient) =>
  sql.onDialectOrElse({
    pg: () =>
      Effect.forEach(
        addedColumns,
        ([name, definition]) => sql.unsafe(`ALTER TABLE agents ADD COLUMN IF NOT EXISTS ${name} ${definition}`).raw,
        { discard: true }
      ),
    orElse: () =>
      Effect.gen(function*() {
        const present = new Set(
          (yield* sql<{ readonly name: string }>`SELECT name FROM pragma_table_info('agents')`).map((column) => column.name)
        )
        for (const [name, definition] of addedColumns) {
          if (present.has(name)) continue
          yield* sql.unsafe(`ALTER TABLE agents ADD COLUMN ${name} ${definition}`).raw.pipe(
            Effect.catchIf((error) => /duplicate column name/i.test(causeMessage(error)), () => Effect.void)
          )
        }
      })
  })

/** The registry over `SqlClient` (result-name transforms off: the column names are ours). */
export const make = Effect.gen(function*() {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  yield* Store.ensureSchema("agents", [createTable]).pipe(
    Effect.provideService(SqlClient.SqlClient, sql),
    Effect.mapError(storageError("create its table"))
  )
  yield* addMissingColumns(sql).pipe(Effect.mapError(storageError("add the directory columns to its table")))

  const select = (name: string) =>
    sql`SELECT name, type, status, session_id, greeting, reservation, created_at, root, directory FROM agents WHERE name = ${name}`

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
    /** Where the agent will live. */
    readonly location: Recorded
  }): Effect.Effect<Reservation, AgentExists | RegistryCorrupt | AgentStorageError> => {
    const { location, name, now, staleBefore, token, type } = options
    return Effect.gen(function*() {
      const stale = yield* sql`DELETE FROM agents
        WHERE name = ${name} AND status = 'creating' AND created_at < ${staleBefore}
        RETURNING name, type, status, session_id, greeting, reservation, created_at, root, directory`
      const inserted = yield* sql`INSERT INTO agents (name, type, status, reservation, created_at, root, directory)
        VALUES (${name}, ${type}, 'creating', ${token}, ${now}, ${location.root}, ${location.directory})
        ON CONFLICT (name) DO NOTHING RETURNING name`
      if (inserted.length > 0) {
        // An unreadable stale row recorded nothing usable: its directory is not ours to remove.
        const staleRow = stale.length === 0 ? undefined : yield* Effect.option(decodeRow(stale[0]))
        return {
          name,
          token,
          tookOverStale: stale.length > 0,
          staleLocation: staleRow === undefined ? Option.none() : Option.flatMap(staleRow, locationOf)
        }
      }
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
      (reserve) => Store.transaction(sql, reserve),
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
      RETURNING name, type, status, session_id, greeting, reservation, created_at, root, directory`.pipe(
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
    sql`SELECT name, type, status, session_id, greeting, reservation, created_at, root, directory FROM agents
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
