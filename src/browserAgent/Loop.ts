/**
 * One browser task: open the browser, then screenshot → ask Gemini → run each call → answer each
 * call with the URL and the new screenshot, until the model answers with text, the turns run out,
 * a safety decision is refused, or `browser_automation` passes.
 *
 * What the task has done so far (turns, actions, URL) lives in a `Ref` outside the timed part, so
 * a task cut at its deadline still reports it.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import type * as Browser from "../Browser.js"
import { BrowserError } from "../Browser.js"
import type { Action, BrowserAgentError, RunInput, RunResult, Status } from "../BrowserAgent.js"
import * as Errors from "../Errors.js"
import * as Gemini from "../Gemini.js"
import type * as Observability from "../Observability.js"
import { uuidv7 } from "../Observability.js"
import * as Resilience from "../Resilience.js"
import * as Actions from "./Actions.js"
import * as Conversation from "./Conversation.js"
import { withSpanWhenTraced } from "../internal/tracing.js"

/** Model calls allowed when the input says nothing. */
export const defaultMaxTurns = 30

/** The tool every request carries. */
export const tools: ReadonlyArray<Gemini.Tool> = [{ computerUse: { environment: Gemini.environmentBrowser } }]

export interface Deps {
  readonly gemini: Gemini.Service
  readonly browser: Browser.Service
  readonly observability: Observability.Service
  /** `BIG3_BROWSER_CONFIRM=allow`: run calls whose safety decision requires confirmation. */
  readonly confirm: boolean
  readonly searchUrl: string
  readonly automationTimeout: Duration.Duration
}

interface Progress {
  readonly turns: number
  readonly actions: ReadonlyArray<Action>
  readonly url: string
}

/** A screenshot for the model, or why there is none. */
interface Capture {
  readonly screenshot?: string | undefined
  readonly error?: string | undefined
}

const capture = (page: Browser.Page): Effect.Effect<Capture> =>
  Effect.match(page.screenshot, {
    onFailure: (error) => ({ error: `screenshot: ${Errors.describe(error)}` }),
    onSuccess: (png) => ({ screenshot: Conversation.encodePng(png) })
  })

const joinErrors = (...errors: ReadonlyArray<string | undefined>): string | undefined => {
  const present = errors.filter((error): error is string => error !== undefined)
  return present.length === 0 ? undefined : present.join("; ")
}

const preview = (text: string, length = 300) => text.length <= length ? text : `${text.slice(0, length)}…`

/** Runs one task; see `BrowserAgent.Service.run`. */
export const run = (deps: Deps, input: RunInput): Effect.Effect<RunResult, BrowserAgentError> =>
  Effect.gen(function*() {
    const maxTurns = input.maxTurns ?? defaultMaxTurns
    if (!Number.isInteger(maxTurns) || maxTurns < 1) {
      return yield* new Errors.InvalidRequest({ service: "browser", message: `maxTurns must be a whole number of at least 1, got ${maxTurns}` })
    }
    const sessionId = `browser-${uuidv7(yield* Clock.currentTimeMillis)}`
    const emit = (type: string, payload: Record<string, unknown>, summary?: string) =>
      deps.observability.emit({
        source_app: "big3",
        session_id: sessionId,
        hook_event_type: type,
        payload,
        ...(summary === undefined ? {} : { summary })
      })
    const progress = yield* Ref.make<Progress>({ turns: 0, actions: [], url: input.url ?? "about:blank" })
    const result = (status: Status, text: string) =>
      Effect.map(Ref.get(progress), ({ actions, turns, url }): RunResult => ({ status, text, turns, actions, finalUrl: url }))

    yield* emit("BrowserTaskStarted", { task: input.task, url: input.url ?? null, max_turns: maxTurns }, preview(input.task, 120))

    const task = Effect.gen(function*() {
      const page = yield* deps.browser.open
      const context: Actions.Context = { page, searchUrl: deps.searchUrl }
      const notes: Array<string | undefined> = []
      if (input.url !== undefined) {
        const address = Actions.webAddress(input.url)
        if (Either.isLeft(address)) notes.push(`opening ${input.url} refused: ${address.left}`)
        else {
          const opened = yield* Effect.either(page.navigate(address.right))
          if (Either.isLeft(opened)) notes.push(`opening ${input.url} failed: ${Errors.describe(opened.left)}`)
        }
      }
      const first = yield* capture(page)
      notes.push(first.error)
      const startUrl = yield* page.url
      yield* Ref.update(progress, (p) => ({ ...p, url: startUrl }))

      /** Runs one call and answers it; the answer says what went wrong instead of failing. */
      const act = (call: Gemini.FunctionCall, acknowledged: boolean, turn: number) =>
        Effect.gen(function*() {
          const args = call.args ?? {}
          const startedAt = yield* Clock.currentTimeMillis
          const outcome = yield* Either.match(Actions.decode(call.name, args), {
            onLeft: (problem) => Effect.succeed(Either.left(problem)),
            onRight: (action) => Effect.either(Effect.mapError(Actions.run(context, action), Errors.describe))
          })
          const ms = (yield* Clock.currentTimeMillis) - startedAt
          const error = Either.isLeft(outcome) ? outcome.left : undefined
          const action: Action = { name: call.name, args, ok: error === undefined, ...(error === undefined ? {} : { error }), ms }
          const shot = yield* capture(page)
          // An action that never touches the page (wait_5_seconds) succeeds on a dead browser: only
          // the capture after it shows that Chromium is gone, and then no answer can be given.
          if ((error !== undefined || shot.error !== undefined) && !(yield* page.connected)) {
            return yield* new BrowserError({
              service: "browser",
              message: `Chromium went away during ${call.name}: ${joinErrors(error, shot.error)}`
            })
          }
          const url = yield* page.url
          yield* Ref.update(progress, (p) => ({ ...p, actions: [...p.actions, action], url }))
          yield* emit(
            "BrowserAction",
            { turn, name: call.name, args, ok: action.ok, ...(error === undefined ? {} : { error }), ms, url },
            `${call.name} ${action.ok ? "ok" : "failed"}`
          )
          if (input.onAction !== undefined) yield* input.onAction(action)
          return Conversation.functionResponse(call, { url, error: joinErrors(error, shot.error), acknowledged }, shot.screenshot)
        })

      let contents: ReadonlyArray<Gemini.Content> = [
        Conversation.firstTurn(input.task, joinErrors(...notes), first.screenshot)
      ]
      while (true) {
        const { turns } = yield* Ref.get(progress)
        if (turns >= maxTurns) return yield* result("max_turns", `stopped after ${maxTurns} model turns without finishing the task`)
        const response = yield* deps.gemini.generateContent({ contents, tools }).pipe(
          withSpanWhenTraced("BrowserAgent.turn", { "big3.turn": turns + 1 })
        )
        const turn = turns + 1
        yield* Ref.update(progress, (p) => ({ ...p, turns: turn }))
        const calls = Gemini.functionCalls(response)
        const text = Gemini.text(response)
        if (calls.length === 0) {
          const finishReason = Gemini.finishReason(response)
          const stopped = finishReason === undefined || finishReason === "STOP"
          // Nothing to act on: the model failed to write its call, or answered nothing at all (no
          // candidate, or an empty STOP). Ask again with the same conversation; it counts as a turn.
          if (finishReason === Gemini.malformedFunctionCall || (stopped && text === "")) continue
          // Cut short (SAFETY, RECITATION, MAX_TOKENS…): even with some text, not a finished answer.
          if (!stopped) {
            return yield* result(
              "refused",
              text === ""
                ? `Gemini stopped without an answer (finishReason ${finishReason})`
                : `Gemini stopped (finishReason ${finishReason}) after: ${text}`
            )
          }
          return yield* result("completed", text)
        }
        const modelTurn = Gemini.modelTurn(response)
        if (modelTurn !== undefined) contents = [...contents, modelTurn]
        const answers: Array<Gemini.Part> = []
        for (const call of calls) {
          const safety = Conversation.safetyDecision(call)
          const needsConfirmation = safety?.decision === "require_confirmation"
          if (needsConfirmation && !deps.confirm) {
            return yield* result(
              "refused",
              `${call.name} needs a person's confirmation${safety?.explanation === undefined ? "" : ` (${safety.explanation})`}; ` +
                `not run because BIG3_BROWSER_CONFIRM is not "allow"`
            )
          }
          answers.push(yield* act(call, needsConfirmation, turn).pipe(
            withSpanWhenTraced("BrowserAgent.action", { "big3.turn": turn, "big3.action": call.name })
          ))
        }
        contents = Conversation.pruneScreenshots([...contents, { role: "user", parts: answers }])
      }
    })

    const isDeadline = (error: BrowserAgentError): error is Errors.OperationTimeout =>
      error._tag === "OperationTimeout" && error.operation === "browser_automation"

    return yield* Effect.scoped(task).pipe(
      Resilience.timeoutAfter(deps.automationTimeout, "browser_automation", "browser"),
      Effect.catchIf(isDeadline, (error) => result("timed_out", `${error.message}; the browser was closed`)),
      Effect.onExit((exit) =>
        Effect.flatMap(Ref.get(progress), ({ actions, turns, url }) => {
          const base = { turns, actions: actions.length, final_url: url }
          if (Exit.isSuccess(exit)) {
            const { status, text } = exit.value
            return emit("BrowserTaskFinished", { ...base, status, text: preview(text) }, status)
          }
          if (Exit.isInterrupted(exit)) return emit("BrowserTaskFinished", { ...base, status: "interrupted" }, "interrupted")
          const error = Option.match(Cause.failureOption(exit.cause), {
            onNone: () => Cause.pretty(exit.cause),
            onSome: Errors.describe
          })
          return emit("BrowserTaskFinished", { ...base, status: "failed", error }, "failed")
        })
      )
    )
  })
