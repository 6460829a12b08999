/**
 * `big3 sandbox --port N [--faults FILE]`: serve the loopback emulator of the upstream APIs for
 * development. `--faults` gives the fault plans in force from the start (JSON, the shape of
 * `Sandbox.Options.plans`); the admin API under `/__sandbox/` changes them while it runs.
 *
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { ComputerUsePlan } from "../sandbox/ComputerUse.js"
import { CliExit, ExitCode, metricsOption, withMetrics } from "./shared.js"

const port = Options.integer("port").pipe(Options.withDefault(8787), Options.withDescription("port on 127.0.0.1 (0 picks one)"))
const eventsMode = Options.choice("events-mode", ["extended", "public"]).pipe(
  Options.withDefault("extended"),
  Options.withDescription("extended: idempotent /events and /events/batch; public: exactly the public observability server")
)
const faults = Options.file("faults", { exists: "yes" }).pipe(
  Options.optional,
  Options.withDescription(
    "a JSON file of fault plans per route, e.g. {\"gemini\": [429, {\"status\": 503}], \"anthropic\": {\"seed\": 7, \"rates\": {\"serverError\": 0.2}}}"
  )
)

/** A plans file is a few steps per route; anything larger is a mistake (or /dev/zero). */
const maxFaultsBytes = 1024 * 1024

const usage = (message: string) =>
  Effect.zipRight(Console.error(`big3 sandbox: ${message}`), new CliExit({ code: ExitCode.usage, message }))

const computerUsePlan = Options.fileSchema("computer-use-plan", ComputerUsePlan, "json").pipe(
  Options.optional,
  Options.withDescription("a JSON array whose i-th element is the parts of model turn i, for requests with the computerUse tool")
)

export const sandboxCommand = Command.make(
  "sandbox",
  { port, eventsMode, faults, computerUsePlan, metrics: metricsOption },
  ({ computerUsePlan, eventsMode, faults, metrics, port }) =>
    withMetrics(
      metrics,
      Effect.gen(function*() {
        if (!Number.isInteger(port) || port < 0 || port > 65535) {
          return yield* usage(`--port must be an integer from 0 to 65535 (0 picks a free port), got ${port}`)
        }
        const Sandbox = yield* Effect.tryPromise({
          try: () => import("../Sandbox.js"),
          catch: (cause) => new CliExit({ code: ExitCode.failure, message: `the sandbox module did not load: ${String(cause)}` })
        })
        const plans = Option.isNone(faults) ? {} : yield* Effect.gen(function*() {
          const fs = yield* FileSystem.FileSystem
          const file = faults.value
          const info = yield* Effect.orElseSucceed(fs.stat(file), () => undefined)
          if (info === undefined || info.type !== "File" || Number(info.size) > maxFaultsBytes) {
            return yield* usage(`--faults ${file}: expected a regular JSON file of at most ${maxFaultsBytes} bytes`)
          }
          const text = yield* fs.readFileString(file).pipe(
            Effect.catchAll((error) => usage(`--faults ${file}: cannot be read (${error.message})`))
          )
          return yield* Either.match(Sandbox.parsePlans(text), {
            onLeft: (reason) => usage(`--faults ${file}: ${reason}`),
            onRight: Effect.succeed
          })
        })
        return yield* Sandbox.run({ port, eventsMode, plans, computerUsePlan: Option.getOrUndefined(computerUsePlan) })
      })
    )
).pipe(Command.withDescription("serve the loopback Gemini / observability / Anthropic emulator until interrupted"))
