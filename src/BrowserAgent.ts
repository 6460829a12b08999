/**
 * The Gemini browser agent: the computer-use loop over one Chromium page.
 *
 * `run({ task, url?, maxTurns? })` screenshots the page, asks Gemini (with the `computerUse`
 * tool) what to do, executes each function call on the page and answers it with the new URL and
 * screenshot, until the model answers with text (`completed`), `maxTurns` model calls were made
 * (`max_turns`, default 30), a safety decision needs a confirmation nobody gave (`refused`), or
 * `browser_automation` (120 s, browser launch included) passes (`timed_out`, browser closed).
 *
 * Every model call goes through `Gemini.generateContent` (so `gemini_api`, policy `gemini` and
 * breaker `gemini` apply); a failed action is answered to the model as an error and the task goes
 * on. Each task emits `BrowserTaskStarted`, one `BrowserAction` per action and
 * `BrowserTaskFinished` through `Observability`.
 *
 * Environment (through `Config`): `BIG3_BROWSER_CONFIRM` = `allow` runs calls whose
 * `safety_decision` requires confirmation (default `deny`: the task ends `refused`).
 *
 * @since 0.2.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Browser, BrowserError } from "./Browser.js"
import * as Loop from "./browserAgent/Loop.js"
import type { GeminiError } from "./Gemini.js"
import { Gemini } from "./Gemini.js"
import { Observability } from "./Observability.js"
import { ReliabilityConfig } from "./ReliabilityConfig.js"

export { actionNames, denormalize, playwrightKey } from "./browserAgent/Actions.js"
export type { ActionName } from "./browserAgent/Actions.js"
export { maxScreenshotBytes, pruneScreenshots, screenshotTurns } from "./browserAgent/Conversation.js"
export { defaultMaxTurns, tools } from "./browserAgent/Loop.js"
/** Chromium could not be started or driven at all; defined with the browser it is about. */
export { BrowserError }

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
  /**
   * The page to open before the first screenshot; default a blank page. As for `navigate`, http(s)
   * only (`https://` added when there is no scheme): another is not opened, and the model is told.
   */
  readonly url?: string | undefined
  /** Model calls allowed, a re-ask after `MALFORMED_FUNCTION_CALL` included; default 30. */
  readonly maxTurns?: number | undefined
  /** Called after each action has run (and been emitted as a `BrowserAction` event), e.g. to print it. */
  readonly onAction?: ((action: Action) => Effect.Effect<void>) | undefined
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

/** Options of `makeWith` / `layerWith`; anything omitted takes its default. */
export interface Options {
  /**
   * Run calls whose `safety_decision` requires a person's confirmation (`BIG3_BROWSER_CONFIRM=allow`);
   * default false: such a call ends the task `refused`.
   */
  readonly confirm?: boolean | undefined
  /** What the `search` action opens; default `https://www.google.com`. */
  readonly searchUrl?: string | undefined
}

export const defaultSearchUrl = "https://www.google.com"

/** `BIG3_BROWSER_CONFIRM`: `allow` or `deny` (the default). */
export const config: Config.Config<Options> = Config.all({
  confirm: Config.literal("allow", "deny")("BIG3_BROWSER_CONFIRM").pipe(
    Config.withDefault("deny"),
    Config.map((value) => value === "allow")
  )
})

/** What the agent needs: the browser, Gemini, Observability and the timeouts. */
export type Requirements = Browser | Gemini | Observability | ReliabilityConfig

/** Builds the agent from explicit options; reads `browser_automation` once. */
export const makeWith = (options: Options = {}): Effect.Effect<Service, never, Requirements> =>
  Effect.gen(function*() {
    const deps: Loop.Deps = {
      browser: yield* Browser,
      gemini: yield* Gemini,
      observability: yield* Observability,
      confirm: options.confirm ?? false,
      searchUrl: options.searchUrl ?? defaultSearchUrl,
      automationTimeout: (yield* ReliabilityConfig).timeoutOf("browser_automation")
    }
    return BrowserAgent.of({ run: Effect.fn("BrowserAgent.run")((input: RunInput) => Loop.run(deps, input)) })
  })

/** Builds the agent from the environment (`BIG3_BROWSER_CONFIRM`). */
export const make: Effect.Effect<Service, ConfigError.ConfigError, Requirements> = Effect.flatMap(config, makeWith)

/** The agent configured from the environment; needs `Browser`, `Gemini`, `Observability`, `ReliabilityConfig`. */
export const layer: Layer.Layer<BrowserAgent, ConfigError.ConfigError, Requirements> = Layer.effect(BrowserAgent, make)

/** The agent with explicit options. */
export const layerWith = (options: Options = {}): Layer.Layer<BrowserAgent, never, Requirements> =>
  Layer.effect(BrowserAgent, makeWith(options))
