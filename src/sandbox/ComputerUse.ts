/**
 * The sandbox's computer-use model: a request to `generateContent` that carries the `computerUse`
 * tool is answered from a **computer-use plan**, a JSON array whose i-th element is the `parts`
 * of model turn i (real Gemini `Part` objects, e.g.
 * `[{"functionCall":{"name":"click_at","args":{"x":500,"y":300}}}]`). After the last element
 * every turn is `[{"text":"plan finished"}]`.
 *
 * An element may also be `{"parts": [...], "finishReason": "MALFORMED_FUNCTION_CALL"}` to script
 * the finish reason (no parts: a candidate without content, as Gemini sends for a malformed call).
 *
 * A turn is consumed only by a normal answer: a request the fault plan of the `gemini` route fails
 * (503, 429, a hang…) does not advance the plan, so the client's retry gets the same turn.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as Gemini from "./Gemini.js"
import { declarationsOf, Part } from "./GeminiRequest.js"
import { messageOf } from "../internal/messageOf.js"

/** A Gemini `Part`, kept as the plan wrote it (unknown fields included). */
const PlanPart = Part

/** One model turn: its parts, or its parts with a finish reason. */
export const PlanTurn = Schema.Union(
  Schema.Array(PlanPart),
  Schema.Struct({
    parts: Schema.optional(Schema.Array(PlanPart)),
    finishReason: Schema.optional(Schema.String)
  })
)
export type PlanTurn = typeof PlanTurn.Type

/** A computer-use plan: model turn i is element i. */
export const ComputerUsePlan = Schema.Array(PlanTurn)
export type ComputerUsePlan = typeof ComputerUsePlan.Type

/** What every turn past the end of the plan answers. */
export const planFinished: ReadonlyArray<Part> = [{ text: "plan finished" }]

/** Reads a plan from JSON text (the `--computer-use-plan FILE` of `big3 sandbox`). */
export const parsePlan = (text: string): Either.Either<ComputerUsePlan, string> =>
  Either.flatMap(
    Either.try({
      try: (): unknown => JSON.parse(text),
      catch: (error) => `not JSON: ${messageOf(error)}`
    }),
    (json) =>
      Either.mapLeft(
        Schema.decodeUnknownEither(ComputerUsePlan)(json),
        (error) =>
          `not a computer-use plan (an array whose elements are arrays of Gemini parts): ${
            ParseResult.ArrayFormatter.formatErrorSync(error)
              .slice(0, 3)
              .map((issue) => `${issue.path.join(".") || "plan"}: ${issue.message}`)
              .join("; ")
          }`
      )
  )

type PlanParts = ReadonlyArray<Part>

// `Array.isArray` does not narrow a readonly array out of a union.
const isParts = (turn: PlanTurn): turn is PlanParts => Array.isArray(turn)

const turnOf = (turn: PlanTurn): Gemini.ModelTurn =>
  isParts(turn) ? { parts: turn } : { parts: turn.parts ?? [], finishReason: turn.finishReason }

/** The sandbox's place in its plan. One per sandbox; `setPlan` starts over. */
export interface PlanPlayer {
  /**
   * The Gemini responder: a request carrying the `computerUse` tool gets the plan's next turn
   * (or "plan finished" past its end); any other request, or no plan, is left to the default.
   */
  readonly responder: Gemini.Responder
  readonly setPlan: (plan: ComputerUsePlan | undefined) => void
}

export const makePlayer = (initial?: ComputerUsePlan | undefined): PlanPlayer => {
  let plan = initial
  let turn = 0
  return {
    responder: (request) =>
      Effect.sync(() => {
        if (plan === undefined || !declarationsOf(request).computerUse) return Option.none()
        const planned = plan[turn] ?? planFinished
        turn++
        return Option.some(turnOf(planned))
      }),
    setPlan: (next) => {
      plan = next
      turn = 0
    }
  }
}
