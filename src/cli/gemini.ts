/**
 * `big3 gemini "prompt"`: one generateContent call through the full pipeline; retries are
 * printed as they happen (attempt, reason, wait) on stderr, the answer on stdout.
 *
 * @internal
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { CliExit, ExitCode, jsonOption, loadModule, metricsOption, withMetrics } from "./shared.js"

const prompt = Args.text({ name: "prompt" }).pipe(Args.withDescription("what to ask Gemini"))
const model = Options.text("model").pipe(
  Options.optional,
  Options.withDescription("the model (default: GEMINI_MODEL or gemini-2.5-computer-use-preview-10-2025)")
)

export const geminiCommand = Command.make(
  "gemini",
  { prompt, model, json: jsonOption, metrics: metricsOption },
  ({ json, metrics, model, prompt }) =>
    withMetrics(
      metrics,
      Effect.gen(function*() {
        // Loaded here so that other commands do not pay for the HTTP stack at start-up.
        const { runGemini } = yield* loadModule("gemini", () => import("./gemini-run.js"))
        const outcome = yield* runGemini({ prompt, model: Option.getOrUndefined(model) })
        if (outcome._tag === "Failure") {
          yield* Console.error(`big3 gemini: ${outcome.message}`)
          return yield* new CliExit({ code: ExitCode.failure, message: outcome.message })
        }
        yield* Console.log(json ? JSON.stringify(outcome.response, null, 2) : outcome.text)
        if (outcome.note !== undefined) yield* Console.error(`big3 gemini: ${outcome.note}`)
      })
    )
).pipe(Command.withDescription("ask Gemini through the retry / breaker / timeout pipeline"))
