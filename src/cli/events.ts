/**
 * `big3 events …`: send an event, show the delivery counters, drain the spool, look at (and
 * requeue) dead letters. The observability client is configured from the environment
 * (`OBSERVABILITY_SERVER_URL`, `OBSERVABILITY_API_KEY`, `BIG3_EVENTS_*`, `BIG3_STATE_DIR`).
 *
 * The command definitions only; the work is in `events-run.ts`, loaded when a command runs so
 * that `big3 --version` does not pay for the HTTP stack and SQLite.
 *
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import { CliExit, ExitCode, jsonOption, loadModule, metricsOption, withMetrics } from "./shared.js"
import { messageOf } from "../internal/messageOf.js"

const load = loadModule("events", () => import("./events-run.js"))

// ---------------------------------------------------------------------------------------------
// send
// ---------------------------------------------------------------------------------------------

const type = Options.text("type").pipe(Options.withDescription("the event's hook_event_type (e.g. Notification)"))
const source = Options.text("source").pipe(
  Options.withDefault("big3-cli"),
  Options.withDescription("the event's source_app (default big3-cli)")
)
const session = Options.text("session").pipe(Options.withDefault("cli"), Options.withDescription("the event's session_id (default cli)"))
const payload = Options.text("payload").pipe(
  Options.optional,
  Options.withDescription("the event's payload, a JSON object (default {})")
)
const summary = Options.text("summary").pipe(Options.optional, Options.withDescription("a one-line summary"))

/**
 * `--payload` as a JSON object, or a usage failure (exit 2) after saying what is wrong. Checked
 * before anything is started.
 */
export const parsePayload = (text: Option.Option<string>): Effect.Effect<Record<string, unknown>, CliExit> => {
  if (Option.isNone(text)) return Effect.succeed({})
  let parsed: unknown
  try {
    parsed = JSON.parse(text.value)
  } catch (error) {
    const message = `--payload is not valid JSON (${messageOf(error)}); ` +
      `give a JSON object such as '{"tool":"Bash"}'`
    return Effect.zipRight(Console.error(`big3 events send: ${message}`), new CliExit({ code: ExitCode.usage, message }))
  }
  if (!Predicate.isRecord(parsed)) {
    const message = `--payload must be a JSON object such as '{"tool":"Bash"}', got ${
      Array.isArray(parsed) ? "an array" : parsed === null ? "null" : `a ${typeof parsed}`
    }`
    return Effect.zipRight(Console.error(`big3 events send: ${message}`), new CliExit({ code: ExitCode.usage, message }))
  }
  return Effect.succeed(parsed)
}

const sendCommand = Command.make(
  "send",
  { type, source, session, payload, summary, metrics: metricsOption },
  (options) =>
    withMetrics(
      options.metrics,
      Effect.gen(function*() {
        const payload = yield* parsePayload(options.payload)
        const { send } = yield* load
        yield* send({
          type: options.type,
          source: options.source,
          session: options.session,
          payload,
          summary: Option.getOrUndefined(options.summary)
        })
      })
    )
).pipe(
  Command.withDescription(
    "send one event and wait for its delivery: exit 0 when the server took it, 1 when it was spooled or dead-lettered"
  )
)

// ---------------------------------------------------------------------------------------------
// stats, flush, dead-letters
// ---------------------------------------------------------------------------------------------

const statsCommand = Command.make(
  "stats",
  { json: jsonOption, metrics: metricsOption },
  ({ json, metrics }) => withMetrics(metrics, Effect.flatMap(load, (run) => run.stats({ json })))
).pipe(Command.withDescription("the delivery counters of this process, the spool size and the dead letters"))

const flushCommand = Command.make(
  "flush",
  { metrics: metricsOption },
  ({ metrics }) => withMetrics(metrics, Effect.flatMap(load, (run) => run.flush))
).pipe(Command.withDescription("redeliver the spool now; exit 1 when some events remain in it"))

const limit = Options.integer("limit").pipe(
  Options.withDefault(20),
  Options.withDescription("how many of the most recent dead letters to show (default 20)")
)
const requeue = Options.boolean("requeue").pipe(
  Options.withDescription("move every dead letter back to the spool (after fixing the cause); `big3 events flush` redelivers them")
)

const deadLettersCommand = Command.make(
  "dead-letters",
  { limit, requeue, json: jsonOption, metrics: metricsOption },
  ({ json, limit, metrics, requeue }) =>
    withMetrics(
      metrics,
      Effect.gen(function*() {
        if (limit < 0) {
          const message = `--limit must be 0 or more, got ${limit}`
          yield* Console.error(`big3 events dead-letters: ${message}`)
          return yield* new CliExit({ code: ExitCode.usage, message })
        }
        const run = yield* load
        yield* run.deadLetters({ limit, requeue, json })
      })
    )
).pipe(Command.withDescription("the events the server refused for good, newest first, with the reason"))

export const eventsCommand = Command.make("events").pipe(
  Command.withDescription("send events and inspect the observability client's spool and dead letters"),
  Command.withSubcommands([sendCommand, statsCommand, flushCommand, deadLettersCommand])
)
