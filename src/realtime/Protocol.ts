/**
 * The OpenAI Realtime API's GA wire shapes that the client sends and reads.
 *
 * Client events are plain typed objects (we build them); server events are decoded with Schemas
 * that name only the fields the client acts on and ignore the rest, so a server that adds fields
 * does not break us. Any other event type decodes as `Other`: it still counts as traffic.
 *
 * @internal
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { messageOf } from "../internal/messageOf.js"

// ---------------------------------------------------------------------------------------------
// Client events
// ---------------------------------------------------------------------------------------------

/** A function the model may call (`session.tools[]`). `parameters` is a JSON Schema object. */
export interface FunctionTool {
  readonly type: "function"
  readonly name: string
  readonly description: string
  readonly parameters: Readonly<Record<string, unknown>>
}

/** The items the client creates: conversation history and function call outputs (GA shapes). */
export type ConversationItem =
  | {
    readonly type: "message"
    readonly role: "user"
    readonly content: ReadonlyArray<{ readonly type: "input_text"; readonly text: string }>
  }
  | {
    readonly type: "message"
    readonly role: "assistant"
    readonly content: ReadonlyArray<{ readonly type: "output_text"; readonly text: string }>
  }
  | { readonly type: "function_call"; readonly call_id: string; readonly name: string; readonly arguments: string }
  | { readonly type: "function_call_output"; readonly call_id: string; readonly output: string }

/** The `session` of a GA `session.update`: a realtime (not transcription) session, text out. */
export interface SessionConfig {
  readonly type: "realtime"
  readonly output_modalities: ReadonlyArray<"text" | "audio">
  readonly instructions?: string
  readonly tools?: ReadonlyArray<FunctionTool>
  readonly tool_choice?: "auto" | "none" | "required"
}

/** What the client sends. `event_id` is ours; the server echoes it in an `error` about the event. */
export type ClientEvent =
  | { readonly type: "session.update"; readonly event_id: string; readonly session: SessionConfig }
  | { readonly type: "conversation.item.create"; readonly event_id: string; readonly item: ConversationItem }
  | { readonly type: "response.create"; readonly event_id: string }

export const userMessage = (text: string): ConversationItem => ({
  type: "message",
  role: "user",
  content: [{ type: "input_text", text }]
})

export const assistantMessage = (text: string): ConversationItem => ({
  type: "message",
  role: "assistant",
  content: [{ type: "output_text", text }]
})

// ---------------------------------------------------------------------------------------------
// Server events
// ---------------------------------------------------------------------------------------------

const ContentPart = Schema.Struct({
  type: Schema.String,
  text: Schema.optional(Schema.String),
  transcript: Schema.optional(Schema.String)
})

/** An output item of a response: a message (text in `output_text` parts), a function call, or other. */
export const MessageItem = Schema.Struct({
  type: Schema.Literal("message"),
  role: Schema.String,
  content: Schema.Array(ContentPart)
})
export const FunctionCallItem = Schema.Struct({
  type: Schema.Literal("function_call"),
  call_id: Schema.String,
  name: Schema.String,
  arguments: Schema.String
})
const OtherItem = Schema.Struct({ type: Schema.String })
export const OutputItem = Schema.Union(MessageItem, FunctionCallItem, OtherItem)
export type OutputItem = typeof OutputItem.Type
export type FunctionCallItem = typeof FunctionCallItem.Type

/** A response's final state, as `response.done` reports it. */
export const ResponseStatus = Schema.Literal("completed", "cancelled", "failed", "incomplete", "in_progress")
export type ResponseStatus = typeof ResponseStatus.Type

const Response = Schema.Struct({
  id: Schema.optional(Schema.String),
  status: Schema.optional(ResponseStatus),
  status_details: Schema.optional(Schema.NullOr(Schema.Struct({
    type: Schema.optional(Schema.String),
    reason: Schema.optional(Schema.NullOr(Schema.String)),
    error: Schema.optional(Schema.NullOr(Schema.Struct({
      type: Schema.optional(Schema.String),
      code: Schema.optional(Schema.NullOr(Schema.String)),
      message: Schema.optional(Schema.String)
    })))
  }))),
  output: Schema.optional(Schema.Array(OutputItem))
})

export const ResponseCreated = Schema.Struct({ type: Schema.Literal("response.created"), response: Response })
export const ResponseDone = Schema.Struct({ type: Schema.Literal("response.done"), response: Response })
export type ResponseDone = typeof ResponseDone.Type
export const TextDelta = Schema.Struct({ type: Schema.Literal("response.output_text.delta"), delta: Schema.String })

/** The `error` event; `error.event_id` names the client event it is about, when it is about one. */
export const ErrorEvent = Schema.Struct({
  type: Schema.Literal("error"),
  error: Schema.Struct({
    type: Schema.String,
    code: Schema.optional(Schema.NullOr(Schema.String)),
    message: Schema.String,
    param: Schema.optional(Schema.NullOr(Schema.String)),
    event_id: Schema.optional(Schema.NullOr(Schema.String))
  })
})
export type ErrorEvent = typeof ErrorEvent.Type

export const RateLimitsUpdated = Schema.Struct({
  type: Schema.Literal("rate_limits.updated"),
  rate_limits: Schema.Array(Schema.Struct({
    name: Schema.optional(Schema.String),
    limit: Schema.optional(Schema.Number),
    remaining: Schema.optional(Schema.Number),
    reset_seconds: Schema.optional(Schema.Number)
  }))
})
export type RateLimitsUpdated = typeof RateLimitsUpdated.Type

/** Any other event: the client only needs to know something arrived. */
const Other = Schema.Struct({ type: Schema.String })

/** The server events the client reads, tagged by kind; `Other` is any other type. */
export type ServerEvent =
  /** The first event of every session: until it came, the session is not open. */
  | { readonly _tag: "SessionCreated" }
  | { readonly _tag: "ResponseCreated"; readonly event: typeof ResponseCreated.Type }
  /** `unreadable` says why, when the event did not match its schema (then `event` is a failed response). */
  | { readonly _tag: "ResponseDone"; readonly event: ResponseDone; readonly unreadable?: string }
  | { readonly _tag: "TextDelta"; readonly event: typeof TextDelta.Type }
  | { readonly _tag: "Error"; readonly event: ErrorEvent }
  | { readonly _tag: "RateLimits"; readonly event: RateLimitsUpdated }
  | { readonly _tag: "Other"; readonly type: string }

const describe = (error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    .slice(0, 2)
    .map((issue) => `${issue.path.length === 0 ? "" : `${issue.path.join(".")}: `}${issue.message}`)
    .join("; ")
    .slice(0, 300)

const decodeWith = <A, I>(schema: Schema.Schema<A, I>, json: unknown, type: string): Either.Either<A, string> =>
  Either.mapLeft(Schema.decodeUnknownEither(schema)(json), (error) => `${type}: ${describe(error)}`)

const decodeOther = Schema.decodeUnknownEither(Other)

/** What an unreadable `response.done` stands for: its response, failed, with nothing read from it. */
const unreadableDone = (reason: string): ResponseDone => ({
  type: "response.done",
  response: {
    status: "failed",
    status_details: { type: "failed", error: { type: "DecodeError", message: `the server's ${reason}` } }
  }
})

/**
 * Decodes one text frame. An event of a type the client acts on must match its schema; any
 * other type needs only a `type`. `Left` with a short reason otherwise.
 */
export const decodeServerEvent = (text: string): Either.Either<ServerEvent, string> =>
  Either.try({
    try: (): unknown => JSON.parse(text),
    catch: (error) => `not JSON: ${messageOf(error)}`
  }).pipe(
    Either.flatMap((json) =>
      Either.flatMap(Either.mapLeft(decodeOther(json), describe), ({ type }): Either.Either<ServerEvent, string> => {
        switch (type) {
          case "session.created":
            return Either.right({ _tag: "SessionCreated" })
          case "response.created":
            return Either.map(decodeWith(ResponseCreated, json, type), (event) => ({ _tag: "ResponseCreated", event }))
          case "response.done":
            // A response.done that cannot be read still ends its response: waiting for another
            // would hang the turn until the silence bound, then replay into the same answer.
            return Either.right(Either.match(decodeWith(ResponseDone, json, type), {
              onLeft: (reason): ServerEvent => ({ _tag: "ResponseDone", event: unreadableDone(reason), unreadable: reason }),
              onRight: (event): ServerEvent => ({ _tag: "ResponseDone", event })
            }))
          case "response.output_text.delta":
            return Either.map(decodeWith(TextDelta, json, type), (event) => ({ _tag: "TextDelta", event }))
          case "error":
            return Either.map(decodeWith(ErrorEvent, json, type), (event) => ({ _tag: "Error", event }))
          case "rate_limits.updated":
            return Either.map(decodeWith(RateLimitsUpdated, json, type), (event) => ({ _tag: "RateLimits", event }))
          default:
            return Either.right({ _tag: "Other", type })
        }
      })
    )
  )

/** The error codes the client acts on. */
export const errorCodes = {
  sessionExpired: "session_expired",
  activeResponse: "conversation_already_has_active_response",
  // The API answers a wrong key after the upgrade with this, then closes (code 3000).
  invalidApiKey: "invalid_api_key",
  rateLimited: "rate_limit_exceeded"
} as const

/** The text of an assistant message item (its `output_text` parts, or audio transcripts). */
export const messageText = (item: typeof MessageItem.Type): string =>
  item.content.map((part) => part.text ?? part.transcript ?? "").join("")
