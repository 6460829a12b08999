/**
 * `big3 browse "<task>" [--url URL] [--max-turns N] [--json]`: one browser task with the Gemini
 * computer-use agent. Each action prints a line as it runs (on stderr with `--json`, so stdout is
 * the result object), then the outcome. Exit 0 when the task completed, 1 otherwise.
 *
 * The command definition only; the work is in `browse-run.ts`, loaded when the command runs so
 * that other commands do not pay for the browser, Gemini and the store.
 *
 * @internal
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { jsonOption, loadModule, metricsOption, usageError, withMetrics } from "./shared.js"

const task = Args.text({ name: "task" }).pipe(Args.withDescription("what the browser agent should do, in words"))
const url = Options.text("url").pipe(Options.optional, Options.withDescription("the page to open first (default: a blank page)"))
const maxTurns = Options.integer("max-turns").pipe(
  Options.optional,
  Options.withDescription("model calls allowed (default 30)")
)

export const browseCommand = Command.make(
  "browse",
  { task, url, maxTurns, json: jsonOption, metrics: metricsOption },
  ({ json, maxTurns, metrics, task, url }) =>
    withMetrics(
      metrics,
      Effect.gen(function*() {
        if (Option.isSome(maxTurns) && maxTurns.value < 1) {
          return yield* usageError("browse", `--max-turns must be 1 or more, got ${maxTurns.value}`)
        }
        const { runBrowse } = yield* loadModule("browse", () => import("./browse-run.js"))
        yield* runBrowse({
          task,
          url: Option.getOrUndefined(url),
          maxTurns: Option.getOrUndefined(maxTurns),
          json
        })
      })
    )
).pipe(Command.withDescription("run a browser task with the Gemini computer-use agent on a headless Chromium"))
