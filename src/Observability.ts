/**
 * Observability client: `emit` never fails and never blocks; delivery is batched, retried,
 * guarded by a breaker and spooled to the store (SQLite, or PostgreSQL with `BIG3_DATABASE_URL`,
 * shared by every process on it) when the server is away. Durable by default: every
 * event reaches the spool in a group commit (`commitInterval`, 5 ms, or `commitEvents`), so a
 * crash loses at most that window; `emitDurable` waits for the commit. At least once: duplicates
 * only for requests cut in flight. No event is lost without being counted and logged.
 *
 * - `emit(event)`: validates (a bad event is a counted, logged rejection), stamps `id` (UUIDv7)
 *   and `timestamp` (ms), queues, returns.
 * - Delivery, in a background fiber of the layer's scope: `"single"` mode (default) sends one
 *   `POST /events` per event, 64 in flight, which is all the public observability server
 *   understands; `"batch"` mode sends `POST /events/batch` and counts a batch as delivered only
 *   when the answer is the batch route's JSON (`{"accepted":n,"duplicates":m}`). A 200 text/plain
 *   (the public server's answer to unknown routes) is a misconfiguration: logged as an error, the
 *   client falls back to single mode and re-sends the batch one by one.
 * - Every request: retry policy `observability`, breaker `observability`, bounded by
 *   `observability_event` / `observability_batch`. 4xx → dead-letter table (never retried);
 *   retries exhausted or breaker open → spool; the spool is redelivered oldest first once the
 *   server accepts events again (the breaker's half-open trial calls are the probe).
 * - Closing the scope flushes within `graceful_shutdown`; the rest stays in the spool and the
 *   next start redelivers it. SIGTERM / SIGINT commit what is pending first.
 * - Spool rows are claimed (an owner and a lease) before they are sent: one drainer per row,
 *   across processes; delivered rows are deleted as they are acknowledged; `spoolMax` bounds it.
 *
 * Configuration (`layer`, through `Config`): `OBSERVABILITY_SERVER_URL` (default
 * `http://localhost:4000/events`), `OBSERVABILITY_API_KEY` (sent as `X-API-Key`, redacted),
 * `BIG3_EVENTS_MODE`, `BIG3_EVENTS_BATCH_SIZE`, `BIG3_EVENTS_LINGER`, `BIG3_EVENTS_CONCURRENCY`,
 * `BIG3_EVENTS_QUEUE_CAPACITY`, `BIG3_EVENTS_DURABLE`, `BIG3_EVENTS_COMMIT_INTERVAL`,
 * `BIG3_EVENTS_COMMIT_EVENTS`, `BIG3_EVENTS_LEASE`, `BIG3_EVENTS_SPOOL_MAX`, `BIG3_EVENTS_TRANSPORT`,
 * `BIG3_EVENTS_SPOOL_PAGE_SIZE`, `BIG3_EVENTS_REDELIVERY_INTERVAL` (see `config`). The spool lives
 * in the `SqlClient` store (`Store.layerConfig`: `{BIG3_STATE_DIR}/big3.db`).
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { CircuitBreaker } from "./CircuitBreaker.js"
import * as Client from "./observability/Client.js"
import type { DeadLetter, DrainResult, EventInput, Service, Stats } from "./observability/Domain.js"
import * as Options from "./observability/Options.js"
import type { ReliabilityConfig } from "./ReliabilityConfig.js"

export { Event, EventInput, refusedField } from "./observability/Domain.js"
export type { DeadLetter, DrainResult, RequiredField, Service, Stats } from "./observability/Domain.js"
export type { Mode, Options, Settings, TransportKind } from "./observability/Options.js"
export { batchUrlOf, config, defaults, defaultUrl } from "./observability/Options.js"
export { schema as spoolSchema, schemaVersion as spoolSchemaVersion } from "./observability/Spool.js"
export { uuidv7 } from "./observability/Client.js"

/** The observability client's tag. */
export class Observability extends Context.Tag("big3/Observability")<Observability, Service>() {}

/** What the layer needs: configuration, breakers, an `HttpClient` and the store. */
export type Requirements = ReliabilityConfig | CircuitBreaker | HttpClient.HttpClient | SqlClient.SqlClient

/**
 * Builds the client from plain options in the current scope (closing the scope flushes and stops
 * it). Fails with a `ConfigError` naming an invalid option, or an `SqlError` when the store
 * cannot be opened.
 */
export const makeWith = (options: Options.Options = {}) => Effect.flatMap(Options.resolve(options), Client.make)

/** Builds the client from `config` (the environment, or the current `ConfigProvider`). */
export const make = Effect.flatMap(Options.config, makeWith)

/** The client configured from the environment (see `config`). Scoped: closing it flushes. */
export const layer: Layer.Layer<Observability, ConfigError.ConfigError | SqlError, Requirements> = Layer.scoped(
  Observability,
  make
)

/** The client from plain options, for tests and apps. Scoped: closing it flushes. */
export const layerWith = (
  options: Options.Options = {}
): Layer.Layer<Observability, ConfigError.ConfigError | SqlError, Requirements> =>
  Layer.scoped(Observability, makeWith(options))

// ---------------------------------------------------------------------------------------------
// Functions (for the CLI and apps)
// ---------------------------------------------------------------------------------------------

/** Validates, stamps and queues an event; never fails. */
export const emit = (event: EventInput): Effect.Effect<void, never, Observability> =>
  Effect.flatMap(Observability, (client) => client.emit(event))

/** `emit`, then waits until the event is in the spool (its group commit) or delivered; fails when the spool cannot be written. */
export const emitDurable = (event: EventInput): Effect.Effect<void, SqlError, Observability> =>
  Effect.flatMap(Observability, (client) => client.emitDurable(event))

/** Waits until everything emitted so far is delivered, spooled or dead-lettered. */
export const flush: Effect.Effect<void, never, Observability> = Effect.flatMap(Observability, (client) => client.flush)

/** The delivery counters. */
export const stats: Effect.Effect<Stats, never, Observability> = Effect.flatMap(Observability, (client) => client.stats)

/** `emit` then `flush`. */
export const send = (event: EventInput): Effect.Effect<void, never, Observability> =>
  Effect.flatMap(Observability, (client) => client.send(event))

/** Redelivers the spool now, until it is empty or the server stops accepting. */
export const drainSpool: Effect.Effect<DrainResult, SqlError, Observability> = Effect.flatMap(
  Observability,
  (client) => client.drainSpool
)

/** The most recent dead letters, newest first. */
export const deadLetters = (limit?: number): Effect.Effect<ReadonlyArray<DeadLetter>, SqlError, Observability> =>
  Effect.flatMap(Observability, (client) => client.deadLetters(limit))

/** Moves every dead letter back to the spool; returns how many. */
export const requeueDeadLetters: Effect.Effect<number, SqlError, Observability> = Effect.flatMap(
  Observability,
  (client) => client.requeueDeadLetters
)
