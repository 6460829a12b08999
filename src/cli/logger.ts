/**
 * The CLI's log format: one readable line per message on stderr ("WARN  gemini_api attempt 1/3
 * failed: …; retrying in 2.0s"), Info and above unless `BIG3_LOG_LEVEL` says otherwise, so that
 * retries show as they happen while stdout stays the command's answer.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

const render = (message: unknown): string =>
  Array.isArray(message) ? message.map(render).join(" ") : typeof message === "string" ? message : String(message)

export const cliLogger = Logger.make(({ annotations, cause, logLevel, message }) => {
  const extra = HashMap.isEmpty(annotations)
    ? ""
    : " " + Array.from(HashMap.toEntries(annotations), ([key, value]) => `${key}=${render(value)}`).join(" ")
  const failure = Cause.isEmpty(cause) ? "" : `\n${Cause.pretty(cause)}`
  process.stderr.write(`${logLevel.label.padEnd(5)} ${render(message)}${extra}${failure}\n`)
})

const levels: Record<string, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warn: LogLevel.Warning,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  none: LogLevel.None
}

/** Replaces the default logger and sets the minimum level from `BIG3_LOG_LEVEL` (default info). */
export const layer = Layer.unwrapEffect(
  Effect.map(
    Config.string("BIG3_LOG_LEVEL").pipe(Config.withDefault("info"), Effect.orElseSucceed(() => "info")),
    (name) =>
      Layer.merge(
        Logger.replace(Logger.defaultLogger, cliLogger),
        Logger.minimumLogLevel(levels[name.toLowerCase()] ?? LogLevel.Info)
      )
  )
)
