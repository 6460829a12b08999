/**
 * Emulator of Anthropic's Messages API: `POST /v1/messages` (plain and `"stream": true`) and
 * `POST /v1/messages/count_tokens`, with Anthropic's error format
 * (`{"type":"error","error":{"type","message"},"request_id"}`), a `request-id` header on every
 * answer and `anthropic-ratelimit-*` headers on every Messages answer.
 *
 * Faithful where clients branch: an unknown model is 404 `not_found_error`, empty `messages` 400,
 * an unknown top-level Messages or count_tokens field 400 (`<field>: Extra inputs are not permitted`);
 * a forced `tool_use` fills the tool's required input; `max_tokens` and `stop_sequences` stop the
 * answer (`max_tokens`, `stop_sequence`); enabled thinking answers with a signed `thinking` block
 * first; usage carries `cache_creation` and `service_tier`; a mid-stream fault is an
 * `event: error` inside the 200 stream.
 *
 * @since 0.1.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { retryAfterSeconds } from "./FaultPlan.js"
import type { Answer, Incoming, Issue, StreamFault, Upstream } from "./Http.js"
import { approxTokens, decode, eventStream, parseJson, pseudoId, tooDeep, wordChunks } from "./Http.js"
import { sampleObject } from "./JsonSchema.js"
import type { RateLimits } from "./RateLimits.js"

export { RateLimits } from "./RateLimits.js"

const Rest = Schema.Record({ key: Schema.String, value: Schema.Unknown })
const ContentBlock = Schema.Struct({ type: Schema.String, text: Schema.optional(Schema.String) }, Rest)
const Content = Schema.Union(Schema.String, Schema.Array(ContentBlock))
type Content = typeof Content.Type

const Message = Schema.Struct({
  role: Schema.Literal("user", "assistant"),
  content: Content
})

const Tool = Schema.Struct({ name: Schema.String, input_schema: Schema.optional(Schema.Unknown) }, Rest)

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

const Thinking = Schema.Struct({ type: Schema.String, budget_tokens: Schema.optional(Schema.Number) }, Rest)

/** The fields of a Messages request the sandbox reads; the other known fields are accepted and ignored. */
const MessagesRequest = Schema.Struct({
  ...common,
  max_tokens: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)),
  stream: Schema.optional(Schema.Boolean),
  stop_sequences: Schema.optional(Schema.Array(Schema.String)),
  thinking: Schema.optional(Thinking)
})
type MessagesRequest = typeof MessagesRequest.Type

const CountTokensRequest = Schema.Struct(common)
type CountTokensRequest = typeof CountTokensRequest.Type

/**
 * The top-level body fields of a Messages request: the official SDK's `MessageCreateParams`, beta
 * ones included (`betas`, `user_profile_id` and `workspace_id` travel as headers). The API refuses
 * any other as an extra input.
 */
const messagesFields = [
  "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "thinking",
  "tools", "tool_choice", "service_tier", "speed", "container", "cache_control", "diagnostics",
  "inference_geo", "output_config", "output_format", "mcp_servers", "context_management",
  "compaction", "billing_policy", "fallbacks", "fallback_credit_token", "thread"
]

/**
 * The top-level body fields of a count_tokens request: the official SDK's
 * `MessageCountTokensParams`, beta ones included (`betas`, `user_profile_id` and `workspace_id`
 * travel as headers). Narrower than Messages: `max_tokens` is an extra input there.
 */
const countTokensFields: ReadonlySet<string> = new Set([
  "model", "messages", "system", "tools", "tool_choice", "thinking", "cache_control", "output_config",
  "output_format", "speed", "mcp_servers", "context_management", "compaction", "billing_policy"
])

/** API version 2026-10-21 removed the sampling parameters; 2023-06-01 still takes them. */
const messagesFieldsNow: ReadonlySet<string> = new Set(messagesFields)
const messagesFields20230601: ReadonlySet<string> = new Set([...messagesFields, "temperature", "top_k", "top_p"])

const knownMessagesFields = (incoming: Incoming): ReadonlySet<string> =>
  incoming.headers["anthropic-version"] === "2023-06-01" ? messagesFields20230601 : messagesFieldsNow

/** Top-level fields outside `known`, in pydantic's words as the API reports them. */
const extraInputs = (body: unknown, known: ReadonlySet<string>): ReadonlyArray<Issue> =>
  Predicate.isRecord(body)
    ? Object.keys(body).filter((key) => !known.has(key)).map((key) => ({
      path: [key],
      message: "Extra inputs are not permitted",
      missing: false
    }))
    : []

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

/** `event: error` inside a 200 stream, as the API sends when it fails mid-answer (e.g. overloaded). */
const streamErrorEvent = (status: number | undefined): string => {
  const [type, message] = errorType(status ?? 529)
  return `event: error\ndata: ${JSON.stringify({ type: "error", error: { type, message } })}\n\n`
}

const wantsStream = (incoming: Incoming): boolean =>
  parseJson(incoming.text).pipe(
    Either.map((body) => typeof body === "object" && body !== null && "stream" in body && body.stream === true),
    Either.getOrElse(() => false)
  )

const withHeaders = (response: HttpServerResponse.HttpServerResponse, headers: Record<string, string>) =>
  HttpServerResponse.setHeaders(response, headers)

/** The upstream's error writers; Messages answers carry the rate-limit headers of `limits`. */
export const upstream = (limits: RateLimits): Upstream => ({
  error: (incoming, status, retryAfter) => {
    const response = errorResponse(incoming, status, errorType(status)[1], retryAfter)
    return incoming.path === "/v1/messages"
      ? withHeaders(response, limits.headers(incoming.time, status === 429 ? retryAfter : undefined))
      : response
  },
  malformed: (incoming) => {
    return wantsStream(incoming)
      ? HttpServerResponse.text(`event: message_start\ndata: {"type":"message_start","message":{"id":\n\n`, {
        contentType: "text/event-stream",
        headers: { "request-id": requestId(incoming) }
      })
      : HttpServerResponse.text(`{"id":"msg_01","type":"message","content":[{"type":"text","text":"sandbox`, {
        contentType: "application/json",
        headers: { "request-id": requestId(incoming) }
      })
  },
  notFound: (incoming) => errorResponse(incoming, 404, "Not found"),
  // The documented request size limit of the Messages API.
  maxRequestBytes: 32 * 1024 * 1024,
  tooLarge: (incoming) => errorResponse(incoming, 413, errorType(413)[1]),
  isStream: wantsStream
})

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

/**
 * Claude model ids and aliases as the API names them (`claude-sonnet-5-5`, `claude-opus-4-5-20251101`,
 * `claude-mythos-preview`, `claude-3-5-haiku-latest`, …: the families of the SDK's `Model` type);
 * anything else is a model the API does not have.
 */
const knownModel =
  /^claude-(?:(?:opus|sonnet|haiku|fable|mythos)-(?:\d+(?:-\d+)?|preview)|\d+(?:-\d+)?-(?:opus|sonnet|haiku))(?:-\d{8}|-latest)?$/

/** What the API checks beyond the shape: the model exists, there are messages, thinking fits. */
const check = (incoming: Incoming, request: CountTokensRequest | MessagesRequest): Option.Option<HttpServerResponse.HttpServerResponse> => {
  if (!knownModel.test(request.model)) return Option.some(errorResponse(incoming, 404, `model: ${request.model}`))
  if (request.messages.length === 0) {
    return Option.some(errorResponse(incoming, 400, "messages: at least one message is required"))
  }
  if (!("max_tokens" in request)) return Option.none()
  const thinking = request.thinking
  if (thinking?.type !== "enabled") return Option.none()
  const budget = thinking.budget_tokens ?? 0
  if (budget < 1024) {
    return Option.some(errorResponse(incoming, 400, "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"))
  }
  if (request.max_tokens <= budget) {
    return Option.some(errorResponse(incoming, 400, "`max_tokens` must be greater than `thinking.budget_tokens`."))
  }
  const choice = request.tool_choice?.type
  if (choice === "any" || choice === "tool") {
    return Option.some(errorResponse(incoming, 400, "Thinking may not be enabled when tool_choice forces tool use."))
  }
  return Option.none()
}

/** Reads a request body; with `known`, a top-level field outside it is refused too. */
const decodeBody = <A extends CountTokensRequest, I>(
  incoming: Incoming,
  schema: Schema.Schema<A, I, never>,
  apiKey: Redacted.Redacted<string>,
  known?: ReadonlySet<string>
): Either.Either<A, HttpServerResponse.HttpServerResponse> =>
  Option.match(checkHeaders(incoming, apiKey), {
    onSome: Either.left,
    onNone: () =>
      Either.flatMap(
        Either.mapLeft(
          parseJson(incoming.text),
          (reason) => errorResponse(incoming, 400, `There was an issue with your request body: ${reason}`)
        ),
        (body) => {
          const deep = tooDeep(body)
          if (deep !== undefined) return Either.left(errorResponse(incoming, 400, `The request body ${deep}`))
          const decoded = decode(schema, body)
          const extras = known === undefined ? [] : extraInputs(body, known)
          if (Either.isLeft(decoded) || extras.length > 0) {
            return Either.left(invalid(incoming, [...(Either.isLeft(decoded) ? decoded.left : []), ...extras]))
          }
          const request = decoded.right
          return Option.match(check(incoming, request), { onNone: () => Either.right(request), onSome: Either.left })
        }
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

type Block =
  | { readonly type: "thinking"; readonly thinking: string; readonly signature: string }
  | { readonly type: "text"; readonly text: string }
  | { readonly type: "tool_use"; readonly id: string; readonly name: string; readonly input: object }

interface Answered {
  readonly blocks: ReadonlyArray<Block>
  readonly stopReason: "end_turn" | "tool_use" | "max_tokens" | "stop_sequence"
  readonly stopSequence: string | null
  readonly outputTokens: number
}

const blockTokens = (block: Block): number =>
  approxTokens(block.type === "text" ? block.text : block.type === "thinking" ? block.thinking : JSON.stringify(block.input))

/** The user's own words: Claude Code puts a long <system-reminder> block first, so the last text block. */
const lastUserText = (request: MessagesRequest): string => {
  const lastUser = [...request.messages].reverse().find((message) =>
    message.role === "user" && contentText(message.content) !== ""
  )
  if (lastUser === undefined) return ""
  return typeof lastUser.content === "string"
    ? lastUser.content
    : lastUser.content.flatMap((block) => block.type === "text" && block.text !== undefined ? [block.text] : []).at(-1) ?? ""
}

/**
 * The assistant's answer: a signed thinking block when thinking is enabled, then `tool_use` when
 * the request forces a tool (its required input filled from `input_schema`), else text echoing
 * the user, cut at the first stop sequence, and everything within `max_tokens`.
 */
const answerOf = (request: MessagesRequest, incoming: Incoming): Answered => {
  const blocks: Array<Block> = []
  if (request.thinking?.type === "enabled") {
    blocks.push({
      type: "thinking",
      thinking: `The user wrote: ${lastUserText(request).slice(0, 200)}. I will answer directly.`,
      signature: Buffer.from(`sandbox-signature:${pseudoId(incoming.sequence + 0x300000, 48)}`).toString("base64")
    })
  }
  let budget = request.max_tokens - blocks.reduce((sum, block) => sum + blockTokens(block), 0)
  const choice = request.tool_choice
  const forcedName = choice?.type === "tool" ? choice.name : choice?.type === "any" ? request.tools?.[0]?.name : undefined
  const forced = forcedName === undefined ? undefined : request.tools?.find((tool) => tool.name === forcedName)
  if (forcedName !== undefined) {
    const id = `toolu_01${pseudoId(incoming.sequence + 0x200000, 22)}`
    const input = sampleObject(forced?.input_schema)
    blocks.push({ type: "tool_use", id, name: forcedName, input })
    return { blocks, stopReason: "tool_use", stopSequence: null, outputTokens: blocks.reduce((n, b) => n + blockTokens(b), 0) }
  }
  let text = `sandbox answer to: ${lastUserText(request)}`
  let stopReason: Answered["stopReason"] = "end_turn"
  let stopSequence: string | null = null
  for (const sequence of request.stop_sequences ?? []) {
    const at = sequence === "" ? -1 : text.indexOf(sequence)
    if (at >= 0 && (stopSequence === null || at < text.indexOf(stopSequence))) {
      stopSequence = sequence
      stopReason = "stop_sequence"
    }
  }
  if (stopSequence !== null) text = text.slice(0, text.indexOf(stopSequence))
  budget = Math.max(0, budget)
  if (approxTokens(text) > budget) {
    text = text.slice(0, budget * 4)
    stopReason = "max_tokens"
    stopSequence = null
  }
  blocks.push({ type: "text", text })
  return { blocks, stopReason, stopSequence, outputTokens: blocks.reduce((n, b) => n + blockTokens(b), 0) }
}

const sse = (type: string, data: object): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`

/** The events of one content block: start (empty), its deltas, stop. */
const blockEvents = (block: Block, index: number): ReadonlyArray<string> => {
  switch (block.type) {
    case "thinking":
      return [
        sse("content_block_start", { index, content_block: { type: "thinking", thinking: "", signature: "" } }),
        ...wordChunks(block.thinking).map((thinking) =>
          sse("content_block_delta", { index, delta: { type: "thinking_delta", thinking } })
        ),
        sse("content_block_delta", { index, delta: { type: "signature_delta", signature: block.signature } }),
        sse("content_block_stop", { index })
      ]
    case "text":
      return [
        sse("content_block_start", { index, content_block: { type: "text", text: "" } }),
        ...wordChunks(block.text).map((text) => sse("content_block_delta", { index, delta: { type: "text_delta", text } })),
        sse("content_block_stop", { index })
      ]
    case "tool_use":
      return [
        sse("content_block_start", { index, content_block: { ...block, input: {} } }),
        sse("content_block_delta", {
          index,
          delta: { type: "input_json_delta", partial_json: JSON.stringify(block.input) }
        }),
        sse("content_block_stop", { index })
      ]
  }
}

const usageOf = (input_tokens: number, output_tokens: number) => ({
  input_tokens,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
  cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
  output_tokens,
  service_tier: "standard"
})

/** `POST /v1/messages`. */
export const messages = (apiKey: Redacted.Redacted<string>, limits: RateLimits): Answer =>
(incoming, fault?: StreamFault) =>
  Effect.sync(() =>
    Either.match(decodeBody(incoming, MessagesRequest, apiKey, knownMessagesFields(incoming)), {
      onLeft: (response) =>
        response.status === 401 ? response : withHeaders(response, limits.headers(incoming.time, undefined)),
      onRight: (request) => {
        const id = `msg_01${pseudoId(incoming.sequence + 0x100000, 22)}`
        const answered = answerOf(request, incoming)
        const input_tokens = inputTokens(request)
        const headers = {
          "request-id": requestId(incoming),
          ...limits.served(incoming.time, input_tokens, answered.outputTokens)
        }
        if (request.stream !== true) {
          return HttpServerResponse.unsafeJson({
            id,
            type: "message",
            role: "assistant",
            model: request.model,
            content: answered.blocks,
            stop_reason: answered.stopReason,
            stop_sequence: answered.stopSequence,
            usage: usageOf(input_tokens, answered.outputTokens)
          }, { headers })
        }
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
              usage: usageOf(input_tokens, 1)
            }
          }),
          ...answered.blocks.flatMap((block, index) => index === 0 ? [] : blockEvents(block, index)),
          sse("message_delta", {
            delta: { stop_reason: answered.stopReason, stop_sequence: answered.stopSequence },
            usage: { output_tokens: answered.outputTokens }
          }),
          sse("message_stop", {})
        ]
        // The first block's start follows message_start, then a ping, as the real stream does.
        const first = answered.blocks[0] === undefined ? [] : blockEvents(answered.blocks[0], 0)
        const ordered = [events[0]!, ...first.slice(0, 1), sse("ping", {}), ...first.slice(1), ...events.slice(1)]
        return eventStream(ordered, fault, streamErrorEvent, {
          contentType: "text/event-stream",
          headers: { ...headers, "cache-control": "no-cache" }
        })
      }
    })
  )

/** `POST /v1/messages/count_tokens`: `{"input_tokens": n}`. */
export const countTokens = (apiKey: Redacted.Redacted<string>): Answer => (incoming) =>
  Effect.sync(() =>
    Either.match(decodeBody(incoming, CountTokensRequest, apiKey, countTokensFields), {
      onLeft: (response) => response,
      onRight: (request) =>
        HttpServerResponse.unsafeJson({ input_tokens: inputTokens(request) }, {
          headers: { "request-id": requestId(incoming) }
        })
    })
  )
