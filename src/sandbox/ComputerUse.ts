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
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/** A Gemini `Part`, kept as the plan wrote it. */
const PlanPart = Schema.Record({ key: Schema.String, value: Schema.Unknown })

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
export const planFinished: ReadonlyArray<Readonly<Record<string, unknown>>> = [{ text: "plan finished" }]

/** Reads a plan from JSON text (the `--computer-use-plan FILE` of `big3 sandbox`). */
export const parsePlan = (text: string): Either.Either<ComputerUsePlan, string> =>
  Either.flatMap(
    Either.try({
      try: (): unknown => JSON.parse(text),
      catch: (error) => `not JSON: ${error instanceof Error ? error.message : String(error)}`
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

/** The candidate of one model turn, as `generateContent` returns it. */
export interface Candidate {
  readonly content?: { readonly role: "model"; readonly parts: ReadonlyArray<Readonly<Record<string, unknown>>> }
  readonly finishReason: string
  readonly index: 0
}

type Parts = ReadonlyArray<Readonly<Record<string, unknown>>>

// `Array.isArray` does not narrow a readonly array out of a union.
const isParts = (turn: PlanTurn): turn is Parts => Array.isArray(turn)

const candidateOf = (turn: PlanTurn): Candidate => {
  const parts = isParts(turn) ? turn : turn.parts ?? []
  const finishReason = isParts(turn) ? "STOP" : turn.finishReason ?? "STOP"
  return parts.length === 0 ? { finishReason, index: 0 } : { content: { role: "model", parts }, finishReason, index: 0 }
}

/** The sandbox's place in its plan. One per sandbox; `setPlan` starts over. */
export interface Responder {
  /** The next turn's candidate, or `undefined` when no plan is set (the sandbox's default answer then). */
  readonly next: () => Candidate | undefined
  readonly setPlan: (plan: ComputerUsePlan | undefined) => void
}

export const makeResponder = (initial?: ComputerUsePlan | undefined): Responder => {
  let plan = initial
  let turn = 0
  return {
    next: () => {
      if (plan === undefined) return undefined
      const planned = plan[turn]
      turn++
      return candidateOf(planned ?? planFinished)
    },
    setPlan: (next) => {
      plan = next
      turn = 0
    }
  }
}
