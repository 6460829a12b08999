/** Test helpers that capture what a program prints and logs. */
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"

const render = (args: ReadonlyArray<unknown>) => args.map((arg) => (typeof arg === "string" ? arg : String(arg))).join(" ")

/** Runs `self` with a console that records `log` / `error` lines instead of printing them. */
export const captureConsole = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const out: Array<string> = []
    const err: Array<string> = []
    const base = Context.get(DefaultServices.liveServices, Console.Console)
    const console: Console.Console = {
      ...base,
      log: (...args) => Effect.sync(() => void out.push(render(args))),
      info: (...args) => Effect.sync(() => void out.push(render(args))),
      warn: (...args) => Effect.sync(() => void err.push(render(args))),
      error: (...args) => Effect.sync(() => void err.push(render(args)))
    }
    return Effect.map(Effect.exit(Console.withConsole(self, console)), (exit) => ({
      exit,
      stdout: out.join("\n"),
      stderr: err.join("\n")
    }))
  })

/** A logger layer recording "LEVEL message" lines into `lines`. */
export const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    lines.push(`${logLevel.label} ${Array.isArray(message) ? message.map(String).join(" ") : String(message)}`)
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}
