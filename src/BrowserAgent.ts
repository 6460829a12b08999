/**
 * The Gemini browser agent: the computer-use loop over one Chromium page.
 *
 * `run({ task, url?, maxTurns? })` screenshots the page, asks Gemini (with the `computerUse`
 * tool) what to do, executes each function call on the page and answers it with the new URL and
 * screenshot, until the model answers with text (`completed`), `maxTurns` model calls were made
 * (`max_turns`, default 30), a safety decision needs a confirmation nobody gave (`refused`), or
 * `browser_automation` (120 s, browser launch included) passes (`timed_out`, browser closed).
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Errors from "./Errors.js"
import type { GeminiError } from "./Gemini.js"

/** How a task ended. */
export type Status = "completed" | "max_turns" | "refused" | "timed_out"

/** One executed action, in the order run. `ms` is the time the action took on the page. */
export interface Action {
  readonly name: string
  readonly args: Readonly<Record<string, unknown>>
  readonly ok: boolean
  readonly error?: string | undefined
  readonly ms: number
}

export interface RunInput {
  /** What to do, in words (the first user turn). */
  readonly task: string
  /** The page to open before the first screenshot; default a blank page. */
  readonly url?: string | undefined
  /** Model calls allowed, a re-ask after `MALFORMED_FUNCTION_CALL` included; default 30. */
  readonly maxTurns?: number | undefined
}

export interface RunResult {
  readonly status: Status
  /** The model's final text (`completed`), or why the task stopped. */
  readonly text: string
  /** Model calls made. */
  readonly turns: number
  readonly actions: ReadonlyArray<Action>
  /** The page's URL when the task ended. */
  readonly finalUrl: string
}

/** Chromium could not be started or driven at all (not an action error, which the model is told). */
export class BrowserError extends Schema.TaggedError<BrowserError>()("BrowserError", {
  service: Schema.String,
  message: Schema.String,
  retryable: Errors.nonRetryableField
}) {}

/** Every way `run` can fail; a task that merely did not finish is a `RunResult`, not a failure. */
export type BrowserAgentError = GeminiError | BrowserError

export interface Service {
  readonly run: (input: RunInput) => Effect.Effect<RunResult, BrowserAgentError>
}

/** The browser agent service tag. */
export class BrowserAgent extends Context.Tag("big3/BrowserAgent")<BrowserAgent, Service>() {}

/** Runs a browser task with the agent in the context. */
export const run = (input: RunInput): Effect.Effect<RunResult, BrowserAgentError, BrowserAgent> =>
  Effect.flatMap(BrowserAgent, (agent) => agent.run(input))
