/**
 * The body of `big3 gemini`, loaded on demand.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Gemini from "../Gemini.js"
import * as Runtime from "../Runtime.js"

export type GeminiOutcome =
  | { readonly _tag: "Success"; readonly text: string; readonly response: Gemini.GenerateContentResponse }
  | { readonly _tag: "Failure"; readonly message: string }

const describeCalls = (calls: ReadonlyArray<Gemini.FunctionCall>): string =>
  calls.map((call) => `function call: ${call.name}(${JSON.stringify(call.args ?? {})})`).join("\n")

/** Asks Gemini once; a failure of the taxonomy becomes a message, configuration errors propagate. */
export const runGemini = (input: { readonly prompt: string; readonly model?: string | undefined }) =>
  Effect.gen(function*() {
    const gemini = yield* Gemini.Gemini
    return yield* gemini.generateContent({
      contents: [Gemini.userTurn(input.prompt)],
      ...(input.model === undefined ? {} : { model: input.model })
    }).pipe(
      Effect.map((response): GeminiOutcome => {
        const text = Gemini.text(response)
        const calls = Gemini.functionCalls(response)
        return { _tag: "Success", response, text: text.length > 0 || calls.length === 0 ? text : describeCalls(calls) }
      }),
      Effect.catchAll((error) =>
        Effect.succeed<GeminiOutcome>({
          _tag: "Failure",
          message: `${error._tag}${error.retryable ? " (retryable)" : ""}: ${error.message}`
        })
      )
    )
  }).pipe(Effect.provide(Runtime.geminiWith()))
