/**
 * The bodies of `big3 events …`, loaded on demand: the observability client from the
 * environment, over undici and the store (PostgreSQL at `BIG3_DATABASE_URL`, else SQLite at
 * `{BIG3_STATE_DIR}/big3.db`): `big3 events flush` drains that store's spool.
 *
 * The client is built per command and closed when the command ends, which flushes what is left
 * (or spools it) within `graceful_shutdown`. Like every big3 process, it also starts the spool's
 * background redelivery while it runs.
 *
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { redactUrl } from "../internal/redactUrl.js"
import * as Observability from "../Observability.js"
import { observabilityWith } from "../runtime/foundation.js"
import { CliExit, ExitCode, table } from "./shared.js"

/** The observability client and what it stands on; `SqlClient` stays visible to read the spool's reasons. */
const layer = observabilityWith()

/** The events URL as configured, without credentials a URL might carry. */
const configuredUrl = Effect.map(Observability.config, (options) => redactUrl(options.url ?? Observability.defaultUrl))

/** Prints `big3 events <command>: <message>` and fails with exit code `code`. */
const fail = (command: string, message: string, code: number = ExitCode.failure) =>
  Effect.zipRight(Console.error(`big3 events ${command}: ${message}`), new CliExit({ code, message }))

/**
 * Runs `body` with a client from the environment. A store that cannot be opened is reported as
 * a failure (exit 1); configuration errors go up unchanged (exit 78).
 */
const withClient = <A, E>(
  command: string,
  body: (url: string) => Effect.Effect<A, E, Observability.Observability | SqlClient.SqlClient>
) =>
  Effect.flatMap(configuredUrl, body).pipe(
    Effect.provide(layer),
    Effect.catchIf(
      (error): error is SqlError => error instanceof SqlError,
      (error) => fail(command, `SqlError: ${error.message}`)
    )
  )

/** Why a spooled event is there (`last_error`), when the spool still has it. */
const spoolReason = (where: { readonly id: string } | "oldest") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    (where === "oldest"
      ? sql<{ last_error: string | null }>`SELECT last_error FROM observability_spool WHERE owner IS NULL
          ORDER BY epoch, ordinal, seq LIMIT 1`
      : sql<{ last_error: string | null }>`SELECT last_error FROM observability_spool WHERE id = ${where.id} LIMIT 1`).pipe(
        Effect.map((rows) => rows.length === 0 ? undefined : rows[0]?.last_error ?? ""),
        Effect.orElseSucceed(() => undefined)
      ))

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

// ---------------------------------------------------------------------------------------------
// send
// ---------------------------------------------------------------------------------------------

export interface SendInput {
  readonly type: string
  readonly source: string
  readonly session: string
  readonly payload: Record<string, unknown>
  readonly summary: string | undefined
}

/**
 * Emits one event durably and waits for its outcome: delivered (exit 0), or spooled /
 * dead-lettered / lost (exit 1, with the reason: the database's own when the spool cannot be
 * written).
 */
export const send = (input: SendInput) =>
  withClient("send", (url) =>
    Effect.gen(function*() {
      const client = yield* Observability.Observability
      const now = yield* Clock.currentTimeMillis
      const id = Observability.uuidv7(now)
      const before = yield* client.stats
      // Durably: a spool that cannot be written fails here with the database's reason, which is
      // the reason to give when the event is not delivered either.
      const written = yield* Effect.either(client.emitDurable({
        id,
        source_app: input.source,
        session_id: input.session,
        hook_event_type: input.type,
        payload: input.payload,
        timestamp: now,
        ...(input.summary === undefined ? {} : { summary: input.summary })
      }))
      yield* client.flush
      const after = yield* client.stats
      const what = `event ${id} (${input.type})`

      if (after.delivered > before.delivered) {
        return yield* Console.log(`delivered ${what} to ${url}`)
      }
      if (after.rejected > before.rejected) {
        return yield* fail("send", `the client rejected ${what} as malformed (see the log above)`)
      }
      const dead = (yield* client.deadLetters(100)).find((letter) => letter.id === id)
      if (dead !== undefined) {
        return yield* fail(
          "send",
          `${url} refused ${what}; it was dead-lettered: ${dead.reason}. ` +
            `Fix the cause, then \`big3 events dead-letters --requeue\` and \`big3 events flush\``
        )
      }
      if (after.dropped > before.dropped) {
        const why = written._tag === "Left" ? `: ${written.left.message}` : " (see the log above)"
        return yield* fail("send", `${what} was lost: it could not be delivered and the spool cannot be written${why}`)
      }
      const reason = yield* spoolReason({ id })
      // Neither delivered nor on disk: it waits in memory for a spool that refuses writes, and
      // ends with this command.
      if (reason === undefined && written._tag === "Left") {
        return yield* fail(
          "send",
          `could not deliver ${what} to ${url}, and the event is lost: ${written.left.message}`
        )
      }
      // Not in the spool any more: the background redelivery has delivered it meanwhile.
      if (reason === undefined) {
        return yield* Console.log(`delivered ${what} to ${url} (from the spool)`)
      }
      const size = (yield* client.stats).spoolSize
      return yield* fail(
        "send",
        `could not deliver ${what} to ${url}; it was spooled${reason === "" ? "" : ` (${reason})`}. ` +
          `${plural(size, "event")} in the spool; \`big3 events flush\` redelivers them`
      )
    }))

// ---------------------------------------------------------------------------------------------
// stats
// ---------------------------------------------------------------------------------------------

const meanings: ReadonlyArray<readonly [keyof Observability.Stats, string]> = [
  ["spoolSize", "events waiting in the spool for redelivery (big3 events flush)"],
  ["deadLetterSize", "events the server refused for good (big3 events dead-letters)"],
  ["emitted", "events accepted by emit, in this process"],
  ["delivered", "events delivered on their first trip, in this process"],
  ["redelivered", "events delivered on a later trip (from the spool, or from memory while the spool could not be written), in this process"],
  ["retried", "request retries, in this process"],
  ["spooled", "events written to the spool, in this process"],
  ["deadLettered", "events dead-lettered, in this process"],
  ["rejected", "malformed events refused by emit, in this process"],
  ["dropped", "events lost because the spool could not be written, in this process"],
  ["storageErrors", "reads and writes of the spool that failed, in this process (see the log)"],
  ["journaled", "events written to the spool by a group commit while in memory (durable default), in this process"],
  ["evicted", "events evicted from a full spool (BIG3_EVENTS_SPOOL_MAX), oldest first, in this process"],
  ["queued", "events waiting in memory now"],
  ["inFlight", "events being delivered now"]
]

/** The client's counters with the spool and dead-letter sizes. */
export const stats = (options: { readonly json: boolean }) =>
  withClient("stats", (url) =>
    Effect.gen(function*() {
      const current = yield* Observability.stats
      if (options.json) yield* Console.log(JSON.stringify({ url, ...current }, null, 2))
      else {
        const rows = meanings.map(([key, meaning]) => [key, String(current[key]), meaning])
        yield* Console.log(table([["url", url, ""], ["mode", current.mode, ""], ...rows]))
      }
      // A spool that could not be read is not empty: the sizes above may be stale.
      if (current.storageErrors > 0) {
        return yield* fail("stats", `${plural(current.storageErrors, "read or write", "reads or writes")} of the spool failed (see the log)`)
      }
    }))

// ---------------------------------------------------------------------------------------------
// flush
// ---------------------------------------------------------------------------------------------

/** Drains the spool now; exit 1 when events remain in it. */
export const flush = withClient("flush", (url) =>
  Effect.gen(function*() {
    const client = yield* Observability.Observability
    const drained = yield* client.drainSpool
    // The counters also hold what the background redelivery did before the drain got the spool.
    const counters = yield* client.stats
    const redelivered = Math.max(drained.redelivered, counters.redelivered)
    const deadLettered = Math.max(drained.deadLettered, counters.deadLettered)
    yield* Console.log(
      `redelivered ${redelivered}, dead-lettered ${deadLettered}, ${drained.remaining} left in the spool`
    )
    if (deadLettered > 0) {
      yield* Console.error(
        `big3 events flush: ${url} refused ${plural(deadLettered, "event")} for good; see \`big3 events dead-letters\``
      )
    }
    if (drained.held > 0) {
      yield* Console.error(
        `big3 events flush: ${plural(drained.held, "event is", "events are")} held by another big3 process ` +
          `(in its memory, or being redelivered by it); it delivers them, or they come back to the spool when it stops`
      )
    }
    if (drained.remaining > 0) {
      const reason = yield* spoolReason("oldest")
      return yield* fail(
        "flush",
        `${plural(drained.remaining, "event remains", "events remain")} in the spool: ${url} is not accepting events now` +
          `${reason === undefined || reason === "" ? "" : ` (${reason})`}`
      )
    }
  }))

// ---------------------------------------------------------------------------------------------
// dead-letters
// ---------------------------------------------------------------------------------------------

/** The event a dead letter holds, or its raw text when it is not JSON. */
const parseBody = (body: string): unknown => {
  try {
    return JSON.parse(body)
  } catch {
    return body
  }
}

const typeOf = (body: string): string => {
  const parsed = parseBody(body)
  return typeof parsed === "object" && parsed !== null && "hook_event_type" in parsed ? String(parsed.hook_event_type) : "?"
}

/** The most recent dead letters; with `requeue`, every dead letter goes back to the spool. */
export const deadLetters = (options: { readonly limit: number; readonly requeue: boolean; readonly json: boolean }) =>
  withClient("dead-letters", () =>
    Effect.gen(function*() {
      const client = yield* Observability.Observability
      const letters = yield* client.deadLetters(options.limit)
      const total = (yield* client.stats).deadLetterSize
      const requeued = options.requeue ? yield* client.requeueDeadLetters : undefined
      if (options.json) {
        return yield* Console.log(JSON.stringify(
          {
            total,
            deadLetters: letters.map(({ body, ...letter }) => ({ ...letter, event: parseBody(body) })),
            ...(requeued === undefined ? {} : { requeued })
          },
          null,
          2
        ))
      }
      if (total === 0 && letters.length === 0) {
        yield* Console.log("no dead letters")
      } else {
        const rows = letters.map((letter) => [
          String(letter.seq),
          letter.id,
          typeOf(letter.body),
          letter.status === undefined ? "-" : String(letter.status),
          new Date(letter.failedAt).toISOString(),
          letter.reason.replace(/\s+/g, " ")
        ])
        yield* Console.log(table([["SEQ", "ID", "TYPE", "STATUS", "FAILED AT", "REASON"], ...rows]))
        yield* Console.log(`${letters.length} of ${plural(total, "dead letter")} shown, newest first`)
      }
      if (requeued !== undefined) {
        yield* Console.log(
          `requeued ${plural(requeued, "dead letter")} to the spool; \`big3 events flush\` redelivers them`
        )
      }
    }))
