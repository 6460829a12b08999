/**
 * Small helpers over the Gemini shapes: reading an answer, building turns and fake answers.
 *
 * @since 0.1.0
 */
import type { Candidate, Content, FunctionCall, GenerateContentResponse, Part } from "./schema.js"

/** The first candidate, if any. */
export const firstCandidate = (response: GenerateContentResponse): Candidate | undefined => response.candidates?.[0]

/** The parts of the first candidate (empty when there is none, e.g. stopped for safety). */
export const parts = (response: GenerateContentResponse): ReadonlyArray<Part> =>
  firstCandidate(response)?.content?.parts ?? []

/** The answer's text: the first candidate's text parts joined, thoughts left out ("" when none). */
export const text = (response: GenerateContentResponse): string =>
  parts(response).flatMap((part) => part.text === undefined || part.thought === true ? [] : [part.text]).join("")

/** The function calls (computer-use actions included) of the first candidate, in order. */
export const functionCalls = (response: GenerateContentResponse): ReadonlyArray<FunctionCall> =>
  parts(response).flatMap((part) => part.functionCall === undefined ? [] : [part.functionCall])

/** Why the first candidate stopped (`STOP`, `MAX_TOKENS`, `SAFETY`, …), if it says. */
export const finishReason = (response: GenerateContentResponse): string | undefined => firstCandidate(response)?.finishReason

/**
 * The model's turn, ready to append to the next request's `contents` (parts are kept whole, so
 * `thoughtSignature`s go back as the API requires). `undefined` when the answer has no content.
 */
export const modelTurn = (response: GenerateContentResponse): Content | undefined => {
  const content = firstCandidate(response)?.content
  return content?.parts === undefined ? undefined : { role: "model", parts: content.parts }
}

/** A user turn from text and other parts. */
export const userTurn = (...input: ReadonlyArray<string | Part>): Content => ({
  role: "user",
  parts: input.map((part) => typeof part === "string" ? { text: part } : part)
})

/** A part carrying base64 bytes, e.g. a PNG screenshot. */
export const inlineDataPart = (mimeType: string, data: string): Part => ({ inlineData: { mimeType, data } })

/** A part answering a function call. */
export const functionResponsePart = (
  name: string,
  response: Readonly<Record<string, unknown>>,
  id?: string
): Part => ({ functionResponse: id === undefined ? { name, response } : { name, response, id } })

/** A fake answer with one text candidate, for tests and `layerTest`. */
export const textResponse = (answer: string): GenerateContentResponse => ({
  candidates: [{ content: { role: "model", parts: [{ text: answer }] }, finishReason: "STOP", index: 0 }]
})

/** A fake answer calling functions, for tests and `layerTest`. */
export const functionCallResponse = (calls: ReadonlyArray<FunctionCall>): GenerateContentResponse => ({
  candidates: [{
    content: { role: "model", parts: calls.map((functionCall) => ({ functionCall })) },
    finishReason: "STOP",
    index: 0
  }]
})
