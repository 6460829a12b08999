/**
 * The body of `big3 browse`, loaded on demand: the browser agent on the runtime's browser stage
 * (configuration, Gemini, Observability, the store, Chromium), one task, its lines and outcome.
 *
 * @internal
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import type * as BrowserAgent from "../BrowserAgent.js"
import { BrowserAgent as BrowserAgentTag } from "../BrowserAgent.js"
import * as Runtime from "../Runtime.js"
import { CliExit, ExitCode, failCommand } from "./shared.js"

/** One action as a line: "✔ click_at {"x":500,"y":550} 312ms" or "✘ … : why". */
export const actionLine = (action: BrowserAgent.Action): string =>
  `${action.ok ? "✔" : "✘"} ${action.name} ${JSON.stringify(action.args)} ${Math.round(action.ms)}ms` +
  (action.error === undefined ? "" : `: ${action.error}`)

/** The outcome: status, turns and actions, the final URL, and the model's text. */
export const outcomeLines = (result: BrowserAgent.RunResult): string =>
  [
    `${result.status} after ${result.turns} turn${result.turns === 1 ? "" : "s"} and ${result.actions.length} action${
      result.actions.length === 1 ? "" : "s"
    }; final URL ${result.finalUrl}`,
    result.text
  ].filter((line) => line !== "").join("\n")

export const runBrowse = (input: {
  readonly task: string
  readonly url?: string | undefined
  readonly maxTurns?: number | undefined
  readonly json: boolean
}) =>
  Effect.gen(function*() {
    const agent = yield* BrowserAgentTag
    const say = (line: string) => (input.json ? Console.error(line) : Console.log(line))
    const result = yield* agent.run({
      task: input.task,
      url: input.url,
      maxTurns: input.maxTurns,
      onAction: (action) => say(actionLine(action))
    }).pipe(Effect.catchAll(failCommand("browse")))
    yield* Console.log(input.json ? JSON.stringify(result, null, 2) : outcomeLines(result))
    if (result.status !== "completed") return yield* new CliExit({ code: ExitCode.failure, message: "" })
  }).pipe(Effect.provide(Runtime.browserAgentWith()))
