/**
 * `big3 demo` (what `npm start` runs): the runtime against an in-process sandbox, four measured
 * failure scenarios and an end-to-end flow, with a live line per step and a closing table.
 *
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { CliExit, ExitCode, jsonOption, loadModule, metricsOption, table, withMetrics } from "./shared.js"

const seed = Options.integer("seed").pipe(Options.withDefault(42), Options.withDescription("makes jitter and faults repeatable (default 42)"))
const fast = Options.boolean("fast").pipe(Options.withDescription("scale the demo's waits down (for tests)"))
const live = Options.boolean("live").pipe(
  Options.withDescription("run the end-to-end flow against the real APIs (needs GEMINI_API_KEY and ANTHROPIC_API_KEY)")
)

export const demoCommand = Command.make(
  "demo",
  { seed, fast, live, json: jsonOption, metrics: metricsOption },
  ({ fast, json, live, metrics, seed }) =>
    withMetrics(
      metrics,
      Effect.gen(function*() {
        const Demo = yield* loadModule("demo", () => import("../demo/Demo.js"))
        if (live) {
          const outcome = yield* Demo.runLive({ say: (line) => Console.log(line) })
          if (outcome._tag === "Missing") {
            yield* Console.error(`big3 demo --live: ${outcome.message}`)
            return yield* new CliExit({ code: ExitCode.config, message: outcome.message })
          }
          return
        }
        const say = (line: string) => (json ? Effect.void : Console.log(line))
        const report = yield* Demo.runDemo({ seed, fast, say })
        yield* Console.log(json ? JSON.stringify(report, null, 2) : Demo.renderReport(report, table))
        if (report.scenarios.some((scenario) => !scenario.ok)) {
          return yield* new CliExit({ code: ExitCode.failure, message: "a demo scenario did not behave as expected" })
        }
      })
    )
).pipe(Command.withDescription("play the reliability scenarios against an in-process sandbox (what npm start runs)"))
