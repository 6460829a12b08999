/**
 * Emulator of Anthropic's Messages API: `POST /v1/messages` (plain and `"stream": true`) and
 * `POST /v1/messages/count_tokens`, with Anthropic's error format
 * (`{"type":"error","error":{"type","message"},"request_id"}`) and a `request-id` header on every
 * answer.
 *
 * @since 0.1.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { retryAfterSeconds } from "./FaultPlan.js"
import type { Answer, Incoming, Issue, Upstream } from "./Http.js"
import { approxTokens, decode, parseJson, pseudoId } from "./Http.js"

const Rest = Schema.Record({ key: Schema.String, value: Schema.Unknown })
const ContentBlock = Schema.Struct({ type: Schema.String, text: Schema.optional(Schema.String) }, Rest)
const Content = Schema.Union(Schema.String, Schema.Array(ContentBlock))
type Content = typeof Content.Type

const Message = Schema.Struct({
  role: Schema.Literal("user", "assistant"),
  content: Content
})

const Tool = Schema.Struct({ name: Schema.String }, Rest)

const ToolChoice = Schema.Struct({
  type: Schema.Literal("auto", "any", "tool", "none"),
  name: Schema.optional(Schema.String)
}, Rest)

const common = {
  model: Schema.String,
  messages: Schema.Array(Message),
  system: Schema.optional(Content),
  tools: Schema.optional(Schema.Array(Tool)),
  tool_choice: Schema.optional(ToolChoice)
}

/** The fields of a Messages request the sandbox reads; other fields are accepted and ignored. */
const MessagesRequest = Schema.Struct({
  ...common,
  max_tokens: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)),
  stream: Schema.optional(Schema.Boolean)
})
type MessagesRequest = typeof MessagesRequest.Type

const CountTokensRequest = Schema.Struct(common)
type CountTokensRequest = typeof CountTokensRequest.Type

const errorTypes: Readonly<Record<number, readonly [type: string, message: string]>> = {
  400: ["invalid_request_error", "Invalid request"],
  401: ["authentication_error", "invalid x-api-key"],
  402: ["billing_error", "Your credit balance is too low to access the Anthropic API."],
  403: ["permission_error", "Your API key does not have permission to use the specified resource."],
  404: ["not_found_error", "Not found"],
  413: ["request_too_large", "Request exceeds the maximum allowed number of bytes."],
  429: ["rate_limit_error", "This request would exceed the rate limit for your organization. Please try again later."],
  500: ["api_error", "Internal server error"],
  504: ["timeout_error", "Request timed out"],
  529: ["overloaded_error", "Overloaded"]
}

const errorType = (status: number): readonly [string, string] =>
  errorTypes[status] ??
    (status >= 500 ? ["api_error", "Internal server error"] : ["invalid_request_error", "Invalid request"])

/** Anthropic request ids look like `req_011CV…`; ours are derived from the arrival number. */
const requestId = (incoming: Incoming): string => `req_01${pseudoId(incoming.sequence, 22)}`

const errorResponse = (
  incoming: Incoming,
  status: number,
  message: string,
  retryAfter: Option.Option<Duration.Duration> = Option.none()
): HttpServerResponse.HttpServerResponse => {
  const id = requestId(incoming)
  return HttpServerResponse.unsafeJson(
    { type: "error", error: { type: errorType(status)[0], message }, request_id: id },
    {
      status,
      headers: {
        "request-id": id,
        ...Option.match(retryAfter, {
          onNone: () => ({}),
          onSome: (delay) => ({ "retry-after": String(retryAfterSeconds(delay)) })
        })
      }
    }
  )
}

/** The upstream's error writers. */
export const upstream: Upstream = {
  error: (incoming, status, retryAfter) => errorResponse(incoming, status, errorType(status)[1], retryAfter),
  malformed: (incoming) => {
    const stream = parseJson(incoming.text).pipe(
      Either.map((body) => typeof body === "object" && body !== null && "stream" in body && body.stream === true),
      Either.getOrElse(() => false)
    )
    return stream
      ? HttpServerResponse.text(`event: message_start\ndata: {"type":"message_start","message":{"id":\n\n`, {
        contentType: "text/event-stream",
        headers: { "request-id": requestId(incoming) }
      })
      : HttpServerResponse.text(`{"id":"msg_01","type":"message","content":[{"type":"text","text":"sandbox`, {
        contentType: "application/json",
        headers: { "request-id": requestId(incoming) }
      })
  },
  notFound: (incoming) => errorResponse(incoming, 404, "Not found")
}

/** Checks the key (`x-api-key`, or `authorization: Bearer`) and the `anthropic-version` header. */
const checkHeaders = (
  incoming: Incoming,
  apiKey: Redacted.Redacted<string>
): Option.Option<HttpServerResponse.HttpServerResponse> => {
  const bearer = incoming.headers["authorization"]?.match(/^Bearer\s+(.+)$/i)?.[1]
  const given = incoming.headers["x-api-key"] ?? bearer
  if (given === undefined) return Option.some(errorResponse(incoming, 401, "x-api-key header is required"))
  if (given !== Redacted.value(apiKey)) return Option.some(errorResponse(incoming, 401, "invalid x-api-key"))
  if (incoming.headers["anthropic-version"] === undefined) {
    return Option.some(errorResponse(incoming, 400, "anthropic-version: header is required"))
  }
  return Option.none()
}

const invalid = (incoming: Incoming, issues: ReadonlyArray<Issue>): HttpServerResponse.HttpServerResponse =>
  errorResponse(
    incoming,
    400,
    issues.map((issue) => `${issue.path.map(String).join(".")}: ${issue.missing ? "Field required" : issue.message}`)
      .join("; ")
  )

const decodeBody = <A, I>(
  incoming: Incoming,
  schema: Schema.Schema<A, I, never>,
  apiKey: Redacted.Redacted<string>
): Either.Either<A, HttpServerResponse.HttpServerResponse> =>
  Option.match(checkHeaders(incoming, apiKey), {
    onSome: Either.left,
    onNone: () =>
      Either.flatMap(
        Either.mapLeft(
          parseJson(incoming.text),
          (reason) => errorResponse(incoming, 400, `There was an issue with your request body: ${reason}`)
        ),
        (body) => Either.mapLeft(decode(schema, body), (issues) => invalid(incoming, issues))
      )
  })

const contentText = (content: Content): string =>
  typeof content === "string"
    ? content
    : content.flatMap((block) => block.type === "text" && block.text !== undefined ? [block.text] : []).join("\n")

const inputTokens = (request: CountTokensRequest): number =>
  approxTokens(
    [
      request.system === undefined ? "" : contentText(request.system),
      ...request.messages.map((message) =>
        typeof message.content === "string" ? message.content : JSON.stringify(message.content)
      ),
      request.tools === undefined ? "" : JSON.stringify(request.tools)
    ].join("")
  )

/** The assistant's single content block: `tool_use` when the request forces a tool, else text. */
const answerBlock = (
  request: MessagesRequest,
  incoming: Incoming
):
  | { readonly type: "text"; readonly text: string }
  | { readonly type: "tool_use"; readonly id: string; readonly name: string; readonly input: object } =>
{
  const choice = request.tool_choice
  const forced = choice?.type === "tool" ? choice.name : choice?.type === "any" ? request.tools?.[0]?.name : undefined
  if (forced !== undefined) {
    return { type: "tool_use", id: `toolu_01${pseudoId(incoming.sequence + 0x200000, 22)}`, name: forced, input: {} }
  }
  const lastUser = [...request.messages].reverse().find((message) =>
    message.role === "user" && contentText(message.content) !== ""
  )
  // Claude Code puts a long <system-reminder> block first: answer the user's own words, the last block.
  const lastText = lastUser === undefined
    ? ""
    : typeof lastUser.content === "string"
    ? lastUser.content
    : lastUser.content.flatMap((block) => block.type === "text" && block.text !== undefined ? [block.text] : []).at(-1) ?? ""
  return { type: "text", text: `sandbox answer to: ${lastText}` }
}

const sse = (type: string, data: object): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`

/** Splits text into a few chunks on word boundaries, as the real stream does. */
const chunks = (text: string): ReadonlyArray<string> => {
  const words = text.split(/(?<= )/)
  const size = Math.max(1, Math.ceil(words.length / 3))
  const out: Array<string> = []
  for (let i = 0; i < words.length; i += size) out.push(words.slice(i, i + size).join(""))
  return out.length === 0 ? [""] : out
}

/** `POST /v1/messages`. */
export const messages = (apiKey: Redacted.Redacted<string>): Answer => (incoming) =>
  Effect.sync(() =>
    Either.match(decodeBody(incoming, MessagesRequest, apiKey), {
      onLeft: (response) => response,
      onRight: (request) => {
        const id = `msg_01${pseudoId(incoming.sequence + 0x100000, 22)}`
        const block = answerBlock(request, incoming)
        const stopReason = block.type === "tool_use" ? "tool_use" : "end_turn"
        const input_tokens = inputTokens(request)
        const output_tokens = approxTokens(block.type === "text" ? block.text : JSON.stringify(block))
        const headers = { "request-id": requestId(incoming) }
        if (request.stream !== true) {
          return HttpServerResponse.unsafeJson({
            id,
            type: "message",
            role: "assistant",
            model: request.model,
            content: [block],
            stop_reason: stopReason,
            stop_sequence: null,
            usage: { input_tokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens }
          }, { headers })
        }
        const deltas = block.type === "text"
          ? chunks(block.text).map((text) =>
            sse("content_block_delta", { index: 0, delta: { type: "text_delta", text } })
          )
          : [sse("content_block_delta", { index: 0, delta: { type: "input_json_delta", partial_json: "{}" } })]
        const events = [
          sse("message_start", {
            message: {
              id,
              type: "message",
              role: "assistant",
              model: request.model,
              content: [],
              stop_reason: null,
              stop_sequence: null,
              usage: { input_tokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 }
            }
          }),
          sse("content_block_start", {
            index: 0,
            content_block: block.type === "text" ? { type: "text", text: "" } : { ...block, input: {} }
          }),
          sse("ping", {}),
          ...deltas,
          sse("content_block_stop", { index: 0 }),
          sse("message_delta", { delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens } }),
          sse("message_stop", {})
        ]
        const encoder = new TextEncoder()
        return HttpServerResponse.stream(Stream.fromIterable(events.map((event) => encoder.encode(event))), {
          contentType: "text/event-stream",
          headers: { ...headers, "cache-control": "no-cache" }
        })
      }
    })
  )

/** `POST /v1/messages/count_tokens`: `{"input_tokens": n}`. */
export const countTokens = (apiKey: Redacted.Redacted<string>): Answer => (incoming) =>
  Effect.sync(() =>
    Either.match(decodeBody(incoming, CountTokensRequest, apiKey), {
      onLeft: (response) => response,
      onRight: (request) =>
        HttpServerResponse.unsafeJson({ input_tokens: inputTokens(request) }, {
          headers: { "request-id": requestId(incoming) }
        })
    })
  )
