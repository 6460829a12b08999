/**
 * What every `big3` command shares: the `--metrics` flag, exit codes, and printing errors a
 * person can act on.
 *
 * @internal
 */
import * as Options from "@effect/cli/Options"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Errors from "../Errors.js"
import { truncate } from "../internal/preview.js"
import * as Metrics from "../Metrics.js"
import { metricsRuntime } from "../telemetry/Settings.js"
import { messageOf } from "../internal/messageOf.js"

/** Exit codes: 2 bad usage, 78 bad configuration (sysexits EX_CONFIG), 1 any other failure. */
export const ExitCode = { failure: 1, usage: 2, config: 78, sighup: 129, sigint: 130, sigpipe: 141, sigterm: 143 } as const

/** A failure that has been reported to the user already; the process exits with `code`. */
export class CliExit extends Schema.TaggedError<CliExit>()("CliExit", {
  code: Schema.Number,
  message: Schema.String
}) {}

/**
 * Loads a command's module when the command runs (so that other commands do not pay for it at
 * start-up). A failed import is reported as one line naming the command (exit 1), not a defect
 * with a stack trace.
 */
export const loadModule = <M>(command: string, load: () => Promise<M>): Effect.Effect<M, CliExit> =>
  Effect.tryPromise({
    try: load,
    catch: (cause) =>
      new CliExit({
        code: ExitCode.failure,
        message: `cannot load its module (${messageOf(cause)}); ` +
          `reinstall big3 (npm install) and try again`
      })
  }).pipe(Effect.tapError((exit) => Console.error(`big3 ${command}: ${exit.message}`)))

/**
 * How a command ends on a failure: a `CliExit` or a configuration error goes up unchanged (the
 * latter exits 78); anything else prints `big3 <command>: <Tag>: <message>` and exits 1.
 */
export const failCommand = (command: string) => (error: unknown): Effect.Effect<never, CliExit | ConfigError.ConfigError> => {
  if (error instanceof CliExit || ConfigError.isConfigError(error)) return Effect.fail(error)
  return Effect.zipRight(
    Console.error(`big3 ${command}: ${Errors.describe(error)}`),
    Effect.fail(new CliExit({ code: ExitCode.failure, message: Errors.describe(error) }))
  )
}

/** A usage error of `command`: printed as `big3 <command>: <message>`, exit 2. */
export const usageError = (command: string, message: string): Effect.Effect<never, CliExit> =>
  Effect.zipRight(Console.error(`big3 ${command}: ${message}`), new CliExit({ code: ExitCode.usage, message }))

/** A port flag's value, checked before anything listens on it (Node would throw a `RangeError`). */
export const checkPort = (command: string, flag: string, port: number): Effect.Effect<number, CliExit> =>
  Number.isInteger(port) && port >= 0 && port <= 65535
    ? Effect.succeed(port)
    : usageError(command, `${flag} must be an integer from 0 to 65535 (0 picks a free port), got ${port}`)

// Help never shows an `Options.withDefault` value (@effect/cli 0.77 prints only "This setting is
// optional."): an option with a default says it in its description, "(default 8787)".

/** `--metrics`: print a Prometheus snapshot when the command ends. */
export const metricsOption = Options.boolean("metrics").pipe(
  Options.withDescription("print a snapshot of the metrics in Prometheus text format when the command ends")
)

/** `--json`: machine-readable output. */
export const jsonOption = Options.boolean("json").pipe(Options.withDescription("print JSON instead of a table"))

/** Runs a command body, printing metrics afterwards when asked (also after a failure). */
export const withMetrics = <A, E, R>(metrics: boolean, self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  metrics
    ? Effect.ensuring(
      self,
      // What `/metrics` serves: big3's own, and the runtime's with BIG3_METRICS_RUNTIME=on (a bad
      // value has already failed the command's telemetry at start).
      metricsRuntime.pipe(
        Effect.orElseSucceed(() => false),
        Effect.flatMap((all) => Metrics.exposition({ all })),
        Effect.flatMap((text) => Console.log(text.trimEnd()))
      )
    )
    : self

/** Pads cells into aligned columns. */
export const table = (rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths: Array<number> = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  ").trimEnd())
    .join("\n")
}

/** The longest part of one configuration problem printed: Effect's own messages echo whole values. */
const maxConfigMessage = 2_000

/**
 * A configuration error as one line that names the key: big3's own messages already do, Effect's
 * `Config` combinators (`Config.literal`, `Config.integer`) only carry it in the error's path.
 * Each problem is cut at 2,000 characters: `Config.integer` echoes the value it got, however long.
 */
export const describeConfigError = (error: ConfigError.ConfigError): string => {
  switch (error._op) {
    case "And":
      return `${describeConfigError(error.left)}; ${describeConfigError(error.right)}`
    case "Or":
      return `${describeConfigError(error.left)} (or ${describeConfigError(error.right)})`
    default: {
      const key = truncate(error.path.join("_"), 200)
      const message = truncate(error.message, maxConfigMessage)
      return key === "" || message.includes(key) ? message : `${key}: ${message}`
    }
  }
}
