/**
 * `big3 sandbox --port N [--faults FILE] [--computer-use-plan FILE] [--max-events N]`: serve the loopback emulator
 * of the upstream APIs for development. `--faults` gives the fault plans in force from the start
 * (JSON, the shape of `Sandbox.Options.plans`, plus `realtime`: `Sandbox.Options.realtimePlan`);
 * the admin API under `/__sandbox/` changes them
 * while it runs. `--computer-use-plan` scripts the answers to computer-use requests.
 *
 * The command definition only: both files are checked with the sandbox's own parsers, loaded
 * with the sandbox when the command runs, so that other commands do not pay for them.
 *
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { checkPort, failCommand, loadModule, metricsOption, usageError, withMetrics } from "./shared.js"

const port = Options.integer("port").pipe(Options.withDefault(8787), Options.withDescription("port on 127.0.0.1 (default 8787; 0 picks a free one)"))
const eventsMode = Options.choice("events-mode", ["extended", "public"]).pipe(
  Options.withDefault("extended"),
  Options.withDescription("extended: idempotent /events and /events/batch; public: exactly the public observability server (default extended)")
)
// `exists: "either"`: `readJsonFile` checks the file and names the flag (@effect/cli would not).
const faults = Options.file("faults").pipe(
  Options.optional,
  Options.withDescription(
    "a JSON file of fault plans per route, e.g. {\"gemini\": [429, {\"status\": 503}], \"anthropic\": {\"seed\": 7, \"rates\": {\"serverError\": 0.2}}, \"realtime\": [{\"errorAfter\": 7}]}; realtime takes one step per WebSocket connection"
  )
)
const computerUsePlan = Options.file("computer-use-plan").pipe(
  Options.optional,
  Options.withDescription("a JSON array whose i-th element is the parts of model turn i, for requests with the computerUse tool")
)

const maxEvents = Options.integer("max-events").pipe(
  Options.optional,
  Options.withDescription("how many events the store keeps, the newest (default 100000); the oldest are dropped first")
)

/** A plans file is a few steps per route; anything larger is a mistake (or /dev/zero). */
const maxFileBytes = 1024 * 1024

const usage = (message: string) => usageError("sandbox", message)

/** Reads `file` (a regular JSON file of at most 1 MiB) and parses it; anything wrong is a usage error. */
const readJsonFile = <A>(flag: string, file: string, parse: (text: string) => Either.Either<A, string>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const info = yield* Effect.orElseSucceed(fs.stat(file), () => undefined)
    if (info === undefined && !(yield* Effect.orElseSucceed(fs.exists(file), () => true))) {
      return yield* usage(`${flag} ${file}: no such file`)
    }
    if (info === undefined || info.type !== "File" || Number(info.size) > maxFileBytes) {
      return yield* usage(`${flag} ${file}: expected a regular JSON file of at most ${maxFileBytes} bytes`)
    }
    const text = yield* fs.readFileString(file).pipe(
      Effect.catchAll((error) => usage(`${flag} ${file}: cannot be read (${error.message})`))
    )
    return yield* Either.match(parse(text), {
      onLeft: (reason) => usage(`${flag} ${file}: ${reason}`),
      onRight: Effect.succeed
    })
  })

export const sandboxCommand = Command.make(
  "sandbox",
  { port, eventsMode, maxEvents, faults, computerUsePlan, metrics: metricsOption },
  ({ computerUsePlan, eventsMode, faults, maxEvents, metrics, port }) =>
    withMetrics(
      metrics,
      Effect.gen(function*() {
        yield* checkPort("sandbox", "--port", port)
        if (Option.isSome(maxEvents) && maxEvents.value < 1) {
          return yield* usage(`--max-events must be 1 or more, got ${maxEvents.value}`)
        }
        const Sandbox = yield* loadModule("sandbox", () => import("../Sandbox.js"))
        const { realtime: realtimePlan, ...plans } = Option.isNone(faults)
          ? {}
          : yield* readJsonFile("--faults", faults.value, Sandbox.parsePlans)
        const plan = Option.isNone(computerUsePlan)
          ? undefined
          : yield* readJsonFile("--computer-use-plan", computerUsePlan.value, Sandbox.parseComputerUsePlan)
        return yield* Sandbox.run({
          port,
          eventsMode,
          plans,
          realtimePlan,
          computerUsePlan: plan,
          maxEvents: Option.getOrUndefined(maxEvents)
        }).pipe(
          Effect.catchAll(failCommand("sandbox"))
        )
      })
    )
).pipe(Command.withDescription("serve the loopback Gemini / observability / Anthropic emulator until interrupted"))
