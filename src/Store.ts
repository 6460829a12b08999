/**
 * big3's store: one SQL database behind `@effect/sql`'s `SqlClient`, shared by every service that
 * keeps state (the agent registry, the runners' cluster storage, the observability spool).
 *
 * - Embedded (the default): SQLite at `{BIG3_STATE_DIR}/big3.db` (default `.big3/big3.db`); one
 *   machine, no server to install.
 * - Shared: `BIG3_DATABASE_URL=postgres://…` puts it on PostgreSQL (`@effect/sql-pg`), so several
 *   runners, on one machine or several, share the agents and their durable commands.
 *
 * `layerConfig` picks between them; anything that asks for `SqlClient` follows, the observability
 * spool included: on PostgreSQL every process and runner on the database shares one spool, and
 * any of them redelivers what another spooled.
 *
 * Schemas are owned by the services: each creates its own tables when its layer starts, with
 * `Store.ensureSchema(component, statements)` (idempotent `CREATE TABLE IF NOT EXISTS` DDL run in
 * one transaction), so a new service adds tables without touching anyone else's migrations.
 *
 * @since 0.1.0
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as path from "node:path"
import { pathSettingOr } from "./internal/pathSetting.js"
import { messageOf } from "./internal/messageOf.js"
import { preview } from "./internal/preview.js"

/** The default state directory, relative to the working directory. */
export const defaultStateDir = ".big3"

/** The database file name inside the state directory. */
export const databaseFile = "big3.db"

/** Options of `layer` / `make`. */
export interface Options {
  /** The database file; `":memory:"` for a private in-memory database (tests). */
  readonly filename: string
}

/**
 * `BIG3_STATE_DIR` (default `.big3`; blank is the default too): the directory that holds
 * `big3.db` and the agents. The one reader of this setting: the agents module builds on it.
 */
export const stateDir: Config.Config<string> = pathSettingOr("BIG3_STATE_DIR", defaultStateDir)

/** The database path under a state directory. */
export const databasePath = (dir: string): string => path.join(dir, databaseFile)

/** Where the store lives: the embedded SQLite file, or a PostgreSQL database. */
export type Location =
  | { readonly _tag: "Sqlite"; readonly filename: string }
  | { readonly _tag: "Postgres"; readonly url: Redacted.Redacted }

const postgresScheme = /^postgres(ql)?:\/\//i

/**
 * `BIG3_DATABASE_URL`: a `postgres://` (or `postgresql://`) URL puts the store on PostgreSQL;
 * unset or blank keeps it embedded. Redacted: it may carry a password, so no message repeats it.
 */
export const databaseUrl: Config.Config<Option.Option<Redacted.Redacted>> = Config.string("BIG3_DATABASE_URL").pipe(
  Config.option,
  Config.mapOrFail((value) => {
    const url = Option.filter(Option.map(value, (text) => text.trim()), (text) => text !== "")
    if (Option.isSome(url) && !postgresScheme.test(url.value)) {
      return Either.left(
        ConfigError.InvalidData(
          ["BIG3_DATABASE_URL"],
          "BIG3_DATABASE_URL: expected a PostgreSQL URL (postgres://user@host:port/database); " +
            "leave it unset for the embedded SQLite store"
        )
      )
    }
    return Either.right(Option.map(url, Redacted.make))
  })
)

/** `BIG3_DATABASE_URL` if set, else SQLite at `{BIG3_STATE_DIR}/big3.db`. */
export const locationConfig: Config.Config<Location> = Config.all([databaseUrl, stateDir]).pipe(
  Config.map(([url, dir]): Location =>
    Option.match(url, {
      onNone: () => ({ _tag: "Sqlite", filename: databasePath(dir) }),
      onSome: (url) => ({ _tag: "Postgres", url })
    })
  )
)

/** A location in words, for logs and `big3 serve`: never the URL's password. */
export const describeLocation = (location: Location): string => {
  if (location._tag === "Sqlite") return `SQLite at ${location.filename}`
  try {
    const url = new URL(Redacted.value(location.url))
    return `PostgreSQL at ${url.hostname}${url.port === "" ? "" : `:${url.port}`}${url.pathname}`
  } catch {
    return "PostgreSQL"
  }
}

/**
 * An error's message with the database's code when it carries one, as in
 * `unable to open database file (SQLITE_CANTOPEN)`: the message alone can be the same for
 * different causes.
 */
export const withCode = (cause: unknown): string =>
  `${messageOf(cause)}${Predicate.hasProperty(cause, "code") && typeof cause.code === "string" ? ` (${cause.code})` : ""}`

/**
 * Opens the database (creating its directory), in WAL mode with `synchronous = NORMAL` (durable
 * against a process crash; a power loss may lose the last commits), a 2 MiB page cache, and a 5 s
 * busy timeout, so a second process (the `big3` CLI next to an app) waits for a lock instead of
 * failing.
 */
export const make = (
  options: Options
): Effect.Effect<SqliteClient.SqliteClient, SqlError, Scope.Scope> =>
  Effect.gen(function*() {
    const filename = options.filename
    if (filename !== ":memory:" && filename !== "") {
      yield* Effect.try({
        try: () => fs.mkdirSync(path.dirname(path.resolve(filename)), { recursive: true }),
        catch: (cause) =>
          new SqlError({ cause, message: `cannot create the directory of the store ${filename}: ${messageOf(cause)}` })
      })
    }
    // better-sqlite3 throws synchronously from its constructor (unwritable path, corrupt file):
    // that is a failure to open the store, not a defect.
    const client = yield* SqliteClient.make({ filename }).pipe(
      Effect.catchAllDefect((cause) =>
        Effect.fail(new SqlError({ cause, message: `cannot open the store ${filename}: ${withCode(cause)}` }))
      ),
      Effect.provide(Reactivity.layer)
    )
    yield* client`PRAGMA busy_timeout = 5000`.raw
    if (filename !== ":memory:") {
      yield* client`PRAGMA synchronous = NORMAL`.raw
      // SQLite's own default page cache, 2 MiB (-2000 KiB): better-sqlite3 builds it with 16 MiB,
      // which a growing spool fills (+17 MiB of RSS with 100,000 events queued) for no speed we
      // could measure (spool writes and drains of 20,000 and 100,000 events).
      yield* client`PRAGMA cache_size = -2000`.raw
    }
    return client
  })

const contextOf = (client: SqliteClient.SqliteClient) =>
  Context.make(SqliteClient.SqliteClient, client).pipe(Context.add(SqlClient.SqlClient, client))

/** The store at `options.filename`, as `SqlClient` (and `SqliteClient`); closed with the layer. */
export const layer = (
  options: Options
): Layer.Layer<SqlClient.SqlClient | SqliteClient.SqliteClient, SqlError> =>
  Layer.scopedContext(Effect.map(make(options), contextOf))

/**
 * The PostgreSQL driver, loaded when a PostgreSQL store is opened: evaluating `pg` costs a
 * SQLite-only process (every `big3 events` command) a few hundred milliseconds at start-up.
 */
const loadPg = Effect.tryPromise({
  try: () => import("@effect/sql-pg/PgClient"),
  catch: (cause) => new SqlError({ cause, message: `cannot load the PostgreSQL driver: ${messageOf(cause)}` })
})

/**
 * Connects to PostgreSQL (a pool; `SELECT 1` must answer within 5 s). The failure names the host,
 * never the password.
 */
export const makePostgres = (
  url: Redacted.Redacted
): Effect.Effect<PgClient.PgClient, SqlError, Scope.Scope> =>
  Effect.flatMap(loadPg, (Pg) => Pg.make({ url, applicationName: "big3" })).pipe(
    Effect.mapError((error) =>
      new SqlError({
        cause: error.cause,
        message: `cannot open the store (${describeLocation({ _tag: "Postgres", url })}): ${error.message}` +
          (error.cause instanceof Error ? `: ${error.cause.message}` : "")
      })
    ),
    Effect.provide(Reactivity.layer)
  )

/** The store on PostgreSQL at `url`, as `SqlClient` (and `PgClient`); the pool closes with the layer. */
export const layerPostgres = (
  url: Redacted.Redacted
): Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, SqlError> =>
  Layer.scopedContext(
    Effect.flatMap(makePostgres(url), (client) =>
      Effect.map(loadPg, (Pg) => Context.make(Pg.PgClient, client).pipe(Context.add(SqlClient.SqlClient, client))))
  )

/** The store at a location, as `SqlClient`. */
export const layerAt = (location: Location): Layer.Layer<SqlClient.SqlClient, SqlError> =>
  location._tag === "Sqlite" ? layer({ filename: location.filename }) : layerPostgres(location.url)

/**
 * The application's store: PostgreSQL when `BIG3_DATABASE_URL` is set, else SQLite at
 * `{BIG3_STATE_DIR}/big3.db` (default `.big3/big3.db`).
 */
export const layerConfig: Layer.Layer<SqlClient.SqlClient, SqlError | ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(locationConfig, layerAt)
)

/** The embedded store at `{BIG3_STATE_DIR}/big3.db`, whatever `BIG3_DATABASE_URL` says. */
export const layerEmbedded: Layer.Layer<
  SqlClient.SqlClient | SqliteClient.SqliteClient,
  SqlError | ConfigError.ConfigError
> = Layer.scopedContext(
  Effect.flatMap(stateDir, (dir) => Effect.map(make({ filename: databasePath(dir) }), contextOf))
)

/** A private in-memory store, for tests. */
export const layerMemory: Layer.Layer<SqlClient.SqlClient | SqliteClient.SqliteClient, SqlError> = layer({
  filename: ":memory:"
})

/**
 * Creates a component's tables: `statements` are idempotent DDL (`CREATE TABLE IF NOT EXISTS`,
 * `CREATE INDEX IF NOT EXISTS`), run in one transaction under the component's schema lock
 * (`ddlUnderLock`). Each service calls it for its own tables when its layer starts; `component`
 * names it in the error.
 */
export const ensureSchema = (
  component: string,
  statements: ReadonlyArray<string>
): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    ddlUnderLock(sql, component, statements, Effect.void).pipe(
      Effect.mapError((error) =>
        new SqlError({ cause: error, message: `cannot create the ${component} tables: ${error.message}` })
      )
    ))

/**
 * `sql.withTransaction` with a COMMIT or ROLLBACK that fails as a typed `SqlError`, not a defect:
 * `@effect/sql` makes those defects (`orDie`), and in WAL mode a full disk first shows at COMMIT
 * (SQLITE_FULL), so a full disk would read as a bug. A ROLLBACK fails when SQLite has already
 * rolled back on its own (after SQLITE_FULL, among others): the failure is then the statement's,
 * which carries SQLite's reason, not "no transaction is active".
 */
export const transaction = <A, E, R>(
  sql: SqlClient.SqlClient,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R> =>
  Effect.suspend(() => {
    let failed: Option.Option<E> = Option.none()
    return sql.withTransaction(Effect.tapError(effect, (error) => Effect.sync(() => void (failed = Option.some(error))))).pipe(
      Effect.catchSomeDefect((defect): Option.Option<Effect.Effect<never, E | SqlError>> =>
        defect instanceof SqlError
          ? Option.some(Option.match(failed, { onNone: () => Effect.fail(defect), onSome: Effect.fail }))
          : Option.none()
      )
    )
  })

/**
 * Runs `statements`, then `andThen`, in one transaction that on PostgreSQL first takes a
 * transaction-scoped advisory lock named after `component`, so two runners starting together do
 * not race on the catalog (`CREATE TABLE IF NOT EXISTS` is not atomic there).
 */
const ddlUnderLock = (
  sql: SqlClient.SqlClient,
  component: string,
  statements: ReadonlyArray<string>,
  andThen: Effect.Effect<unknown, SqlError>
): Effect.Effect<void, SqlError> =>
  transaction(
    sql,
    sql.onDialectOrElse({
      pg: () => Effect.asVoid(sql`SELECT pg_advisory_xact_lock(hashtext(${`big3:schema:${component}`}))`.raw),
      orElse: () => Effect.void
    }).pipe(
      Effect.zipRight(Effect.forEach(statements, (statement) => sql.unsafe(statement).raw, { discard: true })),
      Effect.zipRight(andThen),
      Effect.asVoid
    )
  )

/** What a component's tables look like at each version (`versioned`). */
export interface SchemaVersions {
  /** The version this build writes. */
  readonly version: number
  /** Creates the tables at `version` from nothing (idempotent DDL). */
  readonly create: ReadonlyArray<string>
  /** The statements that take the tables from version `n` to `n + 1`. */
  readonly upgrades: Readonly<Record<number, ReadonlyArray<string>>>
  /**
   * Tables written before versions were recorded: the version they are at, or `undefined` when
   * there are none (probed outside any transaction, since a failed statement aborts one on
   * PostgreSQL).
   */
  readonly unrecorded: Effect.Effect<number | undefined, never, SqlClient.SqlClient>
}

/** Where each component records the version of its tables. */
const versionTable = `CREATE TABLE IF NOT EXISTS big3_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)`

/**
 * Brings a component's tables to `versions.version`: creates them, or upgrades them one version
 * at a time, in one transaction, and records the version in `big3_schema`. Tables from a newer
 * big3 are refused with an `SqlError` saying so: writing them with an older layout loses data.
 */
export const versioned = (
  component: string,
  versions: SchemaVersions
): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const fail = (message: string) => (error: SqlError) =>
      new SqlError({ cause: error, message: `${message}: ${messageOf(error.cause ?? error)}` })
    // Under its own lock: `CREATE TABLE IF NOT EXISTS` races on PostgreSQL's catalog.
    yield* ddlUnderLock(sql, "big3_schema", [versionTable], Effect.void).pipe(
      Effect.mapError(fail(`cannot create the schema version table`))
    )
    const recorded = yield* sql<{ version: number }>`SELECT version FROM big3_schema WHERE component = ${component}`.pipe(
      Effect.mapError(fail(`cannot read the ${component} schema version`))
    )
    const raw: unknown = recorded.length > 0 ? recorded[0]!.version : undefined
    const found = raw === undefined ? yield* versions.unrecorded : Number(raw)
    // Not a version big3 wrote (changed by hand, damaged): neither newer nor older can be assumed.
    if (raw !== undefined && !(found !== undefined && Number.isSafeInteger(found) && found >= 0 && String(found) === String(raw).trim())) {
      return yield* Effect.fail(
        new SqlError({
          message: `the ${component} tables record schema version ${preview(raw)}, which is not a version ` +
            `number big3 writes: the store was changed by hand or is damaged. Restore it, or use another BIG3_STATE_DIR`
        })
      )
    }
    if (found !== undefined && found > versions.version) {
      return yield* Effect.fail(
        new SqlError({
          message: `the ${component} tables are at schema version ${found}, newer than this big3 understands ` +
            `(${versions.version}): a newer big3 wrote this store. Use that version, or another BIG3_STATE_DIR`
        })
      )
    }
    if (found === versions.version) return
    const statements: Array<string> = []
    if (found === undefined) statements.push(...versions.create)
    else {
      for (let from = found; from < versions.version; from++) {
        const step = versions.upgrades[from]
        if (step === undefined) {
          return yield* Effect.fail(new SqlError({ message: `no upgrade of the ${component} tables from schema version ${from}` }))
        }
        statements.push(...step)
      }
    }
    // Idempotent steps under the lock, and an upsert: a second process that read the same old
    // version ends at the same new one.
    yield* ddlUnderLock(
      sql,
      component,
      statements,
      sql`INSERT INTO big3_schema (component, version) VALUES (${component}, ${versions.version})
          ON CONFLICT (component) DO UPDATE SET version = excluded.version`
    ).pipe(
      Effect.mapError(fail(
        found === undefined
          ? `cannot create the ${component} tables`
          : `cannot upgrade the ${component} tables from schema version ${found} to ${versions.version}`
      ))
    )
  })
