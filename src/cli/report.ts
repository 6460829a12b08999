/**
 * How a `big3` command tree is run: inside `Telemetry.layer`, with every failure printed once as
 * a line a person can act on and turned into an exit code. Shared by the whole program
 * (`app.ts`) and the events-only one (`events-main.ts`).
 *
 * @internal
 */
import type * as CommandDescriptor from "@effect/cli/CommandDescriptor"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Errors from "../Errors.js"
import * as Telemetry from "../Telemetry.js"
import { checkFlags } from "./flags.js"
import { CliExit, describeConfigError, ExitCode, usageError } from "./shared.js"

/** Prints a failure once, as a line a person can act on, and picks the exit code. */
export const report = (cause: Cause.Cause<unknown>, signalCode?: number): Effect.Effect<number> => {
  if (Cause.isInterruptedOnly(cause)) return Effect.succeed(signalCode ?? ExitCode.sigint)
  const failure = Option.getOrUndefined(Cause.failureOption(cause))
  if (failure === undefined) {
    return Effect.as(Console.error(`big3: unexpected error\n${Cause.pretty(cause)}`), ExitCode.failure)
  }
  // @effect/cli has printed the usage problem already.
  if (ValidationError.isValidationError(failure)) {
    return Effect.succeed(ValidationError.isHelpRequested(failure) ? 0 : ExitCode.usage)
  }
  if (failure instanceof CliExit) return Effect.succeed(failure.code)
  if (ConfigError.isConfigError(failure)) {
    return Effect.as(Console.error(`big3: configuration error: ${describeConfigError(failure)}`), ExitCode.config)
  }
  return Effect.as(Console.error(`big3: ${Errors.describe(failure)}`), ExitCode.failure)
}

/** The SGR escapes @effect/cli styles its help and usage errors with. */
const ansiStyle = /\x1b\[[0-9;]*m/g

const plain = (args: ReadonlyArray<unknown>) => args.map((arg) => (typeof arg === "string" ? arg.replace(ansiStyle, "") : arg))

/** NO_COLOR (any value but empty, https://no-color.org) or TERM=dumb: no colours even on a terminal. */
const colourRefused = Config.all([Config.string("NO_COLOR"), Config.string("TERM")].map(Config.withDefault(""))).pipe(
  Effect.map(([noColor, term]) => noColor !== "" || term === "dumb"),
  Effect.orElseSucceed(() => false)
)

/**
 * @effect/cli styles help and usage errors with ANSI escapes whatever they go to: keep them only
 * for a terminal that takes colours, so `big3 --help | less` and `2> file` read as plain text.
 */
const plainUnlessColourTerminal = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(colourRefused, (refused) =>
    Console.consoleWith((console) =>
      Console.withConsole(self, {
        ...console,
        log: !refused && process.stdout.isTTY === true ? console.log : (...args) => console.log(...plain(args)),
        error: !refused && process.stderr.isTTY === true ? console.error : (...args) => console.error(...plain(args))
      })
    ))

/**
 * Runs a command tree (what `Command.run` returns) with `argv` (as `process.argv`), reporting
 * failures; succeeds with the exit code. A mistake in the flags of one of `commands` (the tree's
 * subcommands) is answered first, `big3 <command>: --flag …` (exit 2; see `flags.ts`), and a
 * `--help` after other arguments shows the command's help, as right after the command. Every
 * command runs inside `Telemetry.layer`: `/metrics` while it runs when `BIG3_METRICS_PORT` is
 * set, OTLP export when `OTEL_EXPORTER_OTLP_ENDPOINT` is.
 */
export const runReported = <E, R>(
  cli: (argv: ReadonlyArray<string>) => Effect.Effect<void, E, R>,
  commands: ReadonlyArray<CommandDescriptor.Command<unknown>>
) =>
(argv: ReadonlyArray<string>, signalCode?: () => number | undefined) =>
  Effect.suspend((): Effect.Effect<void, E | CliExit, R> => {
    const checked = checkFlags(commands, argv.slice(2))
    if (checked === undefined) return cli(argv)
    return checked._tag === "Help"
      ? cli([...argv.slice(0, 2), ...checked.path, "--help"])
      : usageError(checked.command, checked.message)
  }).pipe(
    plainUnlessColourTerminal,
    Effect.provide(Telemetry.layer),
    Effect.as(0),
    Effect.catchAllCause((cause) => report(cause, signalCode?.()))
  )
