/**
 * The body of `big3 gemini`, loaded on demand.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Gemini from "../Gemini.js"
import * as Runtime from "../Runtime.js"

export type GeminiOutcome =
  | {
    readonly _tag: "Success"
    readonly text: string
    readonly response: Gemini.GenerateContentResponse
    /** Said on stderr: the answer stopped before its end (`MAX_TOKENS`, `SAFETY`, …). */
    readonly note?: string | undefined
  }
  | { readonly _tag: "Failure"; readonly message: string }

const describeCalls = (calls: ReadonlyArray<Gemini.FunctionCall>): string =>
  calls.map((call) => `function call: ${call.name}(${JSON.stringify(call.args ?? {})})`).join("\n")

/** Why the answer stopped, when it is not its natural end: "MAX_TOKENS", "SAFETY: <finishMessage>". */
const earlyStop = (response: Gemini.GenerateContentResponse): string | undefined => {
  const reason = Gemini.finishReason(response)
  if (reason === undefined || reason === "STOP") return undefined
  const message = Gemini.firstCandidate(response)?.finishMessage
  return message === undefined ? reason : `${reason}: ${message}`
}

/**
 * The outcome of an answer: its text (or its function calls). An answer stopped early says so;
 * one stopped before it said anything (withheld for SAFETY, RECITATION, …) is a failure, so that
 * an empty line and exit 0 never stand for a refusal.
 */
const outcomeOf = (response: Gemini.GenerateContentResponse): GeminiOutcome => {
  const text = Gemini.text(response)
  const calls = Gemini.functionCalls(response)
  const stopped = earlyStop(response)
  if (stopped !== undefined && text === "" && calls.length === 0) {
    return { _tag: "Failure", message: `gemini gave no answer: it stopped with ${stopped}` }
  }
  return {
    _tag: "Success",
    response,
    text: text.length > 0 || calls.length === 0 ? text : describeCalls(calls),
    ...(stopped === undefined ? {} : { note: `the answer stopped before its end (${stopped})` })
  }
}

/** Asks Gemini once; a failure of the taxonomy becomes a message, configuration errors propagate. */
export const runGemini = (input: { readonly prompt: string; readonly model?: string | undefined }) =>
  Effect.gen(function*() {
    const gemini = yield* Gemini.Gemini
    return yield* gemini.generateContent({
      contents: [Gemini.userTurn(input.prompt)],
      ...(input.model === undefined ? {} : { model: input.model })
    }).pipe(
      Effect.map(outcomeOf),
      Effect.catchAll((error) =>
        Effect.succeed<GeminiOutcome>({
          _tag: "Failure",
          message: `${error._tag}${error.retryable ? " (retryable)" : ""}: ${error.message}`
        })
      )
    )
  }).pipe(Effect.provide(Runtime.geminiWith()))
