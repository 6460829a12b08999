/**
 * The `big3` program as values: the command tree, and how a failure becomes a message and an
 * exit code. `main.ts` runs it; tests run it in-process.
 *
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Cause from "effect/Cause"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { agentsCommand } from "./agents.js"
import { browseCommand } from "./browse.js"
import * as Errors from "../Errors.js"
import * as Telemetry from "../Telemetry.js"
import { configCommand } from "./config.js"
import { demoCommand } from "./demo.js"
import { eventsCommand } from "./events.js"
import { geminiCommand } from "./gemini.js"
import { sandboxCommand } from "./sandbox.js"
import { serveCommand } from "./serve.js"
import { voiceCommand } from "./voice.js"
import { CliExit, describeConfigError, ExitCode } from "./shared.js"
import { version } from "./version.js"

export const big3 = Command.make("big3").pipe(
  Command.withDescription("reliability runtime of the Big Three agent system"),
  Command.withSubcommands([configCommand, demoCommand, geminiCommand, eventsCommand, agentsCommand, sandboxCommand, browseCommand, voiceCommand, serveCommand])
)

export const cli = Command.run(big3, { name: "big3", version })

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

/**
 * Runs `big3` with `argv` (as `process.argv`), reporting failures; succeeds with the exit code.
 * Every command runs inside `Telemetry.layer`: `/metrics` while it runs when `BIG3_METRICS_PORT`
 * is set, OTLP export when `OTEL_EXPORTER_OTLP_ENDPOINT` is.
 */
export const run = (argv: ReadonlyArray<string>, signalCode?: () => number | undefined) =>
  cli(argv).pipe(
    Effect.provide(Telemetry.layer),
    Effect.as(0),
    Effect.catchAllCause((cause) => report(cause, signalCode?.()))
  )
