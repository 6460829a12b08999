/**
 * Emulator of the OpenAI Realtime API (GA, text modality): a WebSocket at `GET /v1/realtime`
 * on the sandbox port, with `?model=` and the key as `Authorization: Bearer <key>` or, as browsers
 * must send it, as the subprotocol `openai-insecure-api-key.<key>` (next to `realtime`, which is
 * the protocol the upgrade selects).
 *
 * A wrong key is answered as the API answers it: the upgrade succeeds, then an `error` event with
 * code `invalid_api_key` and a close with code 3000.
 *
 * Each connection is a fresh session: `session.created`; `session.update` → `session.updated`;
 * `conversation.item.create` → `conversation.item.added` + `conversation.item.done` (a
 * `function_call_output` must name a `function_call` of the conversation); `response.create` →
 * the full GA event sequence of one response (`response.created`, `rate_limits.updated`, output
 * item and content part events, text deltas or function call argument events,
 * `response.done`), or `conversation_already_has_active_response` while one is active.
 *
 * The model is a script of rules (`RealtimeModel.ts`).
 *
 * Fault plans apply per connection, the i-th connection taking the i-th step: refuse the upgrade
 * with an HTTP status, never answer it, drop the TCP connection after n server events, go silent
 * after n events, send `session_expired` after n events and close (1001), or send one `error`
 * event after n events and carry on. A `code` of `insufficient_quota` (on a 429 or an `error`
 * event) answers as the API does for an account out of credit.
 *
 * @since 0.2.0
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Socket from "@effect/platform/Socket"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import { retryAfterSeconds } from "./FaultPlan.js"
import { approxTokens, decode, parseJson, pseudoId, redactHeaders, subprotocolKey, tooDeep } from "./Http.js"
import type { ClientEvent, Item, RealtimeRule, StoredItem } from "./RealtimeModel.js"
import { answer, chunks, ClientEvent as ClientEventSchema, EventType } from "./RealtimeModel.js"

export type { RealtimeRule } from "./RealtimeModel.js"

// ---------------------------------------------------------------------------------------------
// Plans
// ---------------------------------------------------------------------------------------------

/**
 * What one connection gets; `"normal"` none of it. Event counts are server events sent on that
 * connection (`session.created` is the first).
 */
export type RealtimeFaultStep =
  | "normal"
  /** `code` picks the body's error: `insufficient_quota` on a 429 says the account is out of credit. */
  | { readonly status: number; readonly retryAfter?: Duration.DurationInput | undefined; readonly code?: string | undefined }
  | { readonly hang: true }
  | { readonly dropAfter: number }
  | { readonly stallAfter: number }
  | { readonly expireAfter: number }
  | { readonly errorAfter: number; readonly code?: string | undefined; readonly message?: string | undefined }

/** One step per connection, in order; connections after the last step are normal. */
export type RealtimePlan = ReadonlyArray<RealtimeFaultStep>

/** One connection as the sandbox saw it. */
export interface RealtimeConnection {
  /** 1-based. */
  readonly number: number
  /** Clock time of the upgrade request, in ms. */
  readonly time: number
  /** Lower-case names; `authorization` reads "<redacted>". */
  readonly headers: Readonly<Record<string, string>>
  readonly query: Readonly<Record<string, string>>
  readonly fault: RealtimeFaultStep
  /** The HTTP status of a refused upgrade, or how the socket ended. */
  readonly outcome: number | "hang" | "open" | "closed" | "dropped" | "stalled" | "expired" | "unauthorized"
  /** Client events, parsed, in arrival order. */
  readonly received: ReadonlyArray<unknown>
  /** Server events sent. */
  readonly sent: number
}

/** A connection's record while it lives (the sandbox updates it as things happen). */
type ConnectionRecord = { -readonly [K in keyof RealtimeConnection]: RealtimeConnection[K] } & { received: Array<unknown> }

export interface Options {
  readonly apiKey: Redacted.Redacted<string>
  readonly script?: ReadonlyArray<RealtimeRule> | undefined
  readonly plan?: RealtimePlan | undefined
}

// ---------------------------------------------------------------------------------------------
// The endpoint
// ---------------------------------------------------------------------------------------------

const errorBody = (message: string, type: string, code: string | null, param: string | null = null) => ({
  error: { message, type, param, code }
})

// OpenAI's words for an account out of credit or past its spending limit, over HTTP and in events.
const insufficientQuota = {
  type: "insufficient_quota",
  message: "You exceeded your current quota, please check your plan and billing details. " +
    "For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
} as const

const httpError = (status: number, retryAfter?: Duration.Duration | undefined, code?: string | undefined) => {
  const body = status === 429 && code === insufficientQuota.type
    ? errorBody(insufficientQuota.message, insufficientQuota.type, insufficientQuota.type)
    : status === 429
    ? errorBody("Rate limit reached for requests. Please try again later.", "requests", "rate_limit_exceeded")
    : status >= 500
    ? errorBody("The server had an error while processing your request. Sorry about that!", "server_error", null)
    : status === 401
    ? errorBody("Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
    : errorBody("Invalid request.", "invalid_request_error", null)
  return HttpServerResponse.unsafeJson(body, {
    status,
    headers: retryAfter === undefined ? {} : { "retry-after": String(retryAfterSeconds(retryAfter)) }
  })
}

/** The endpoint's state and its route; `Sandbox` serves `route` at `GET /v1/realtime`. */
export const make = (options: Options) =>
  Effect.sync(() => {
    let plan: RealtimePlan = options.plan ?? []
    let planIndex = 0
    let script: ReadonlyArray<RealtimeRule> = options.script ?? []
    const records: Array<ConnectionRecord> = []
    // Ids and rate limits count across connections, as the upstream's do.
    let ids = 0
    let responses = 0
    const nextId = (prefix: string, width = 20) => `${prefix}_${pseudoId(++ids, width)}`
    /** A server `error` event the server raises itself (no client event to name). */
    const errorEvent = (type: string, code: string, message: string) =>
      JSON.stringify({ type: "error", event_id: nextId("event"), error: { type, code, message, param: null, event_id: null } })

    const route = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const url = new URL(request.url, "http://sandbox.invalid")
      const headers: Record<string, string> = {}
      for (const [name, value] of Object.entries(request.headers)) headers[name.toLowerCase()] = String(value)
      const fault = plan[planIndex] ?? "normal"
      if (planIndex < plan.length) planIndex++
      const record: ConnectionRecord = {
        number: records.length + 1,
        time: yield* Clock.currentTimeMillis,
        headers: redactHeaders(headers),
        query: Object.fromEntries(url.searchParams),
        fault,
        outcome: "open",
        received: [],
        sent: 0
      }
      records.push(record)

      if (typeof fault === "object" && "status" in fault) {
        record.outcome = fault.status
        return httpError(fault.status, fault.retryAfter === undefined ? undefined : Duration.decode(fault.retryAfter), fault.code)
      }
      if (typeof fault === "object" && "hang" in fault) {
        record.outcome = "hang"
        return yield* Effect.never
      }
      const bearer = headers["authorization"]?.match(/^Bearer\s+(.+)$/i)?.[1] ?? subprotocolKey(headers["sec-websocket-protocol"])
      if (bearer === undefined) {
        record.outcome = 401
        // The API's gateway refuses the upgrade itself, in the words it uses for every endpoint today.
        return HttpServerResponse.unsafeJson(
          errorBody("Missing bearer or basic authentication in header", "invalid_request_error", null),
          { status: 401 }
        )
      }
      if (!url.searchParams.get("model")) {
        record.outcome = 400
        return HttpServerResponse.unsafeJson(
          errorBody("Missing required parameter: 'model'.", "invalid_request_error", "missing_required_parameter", "model"),
          { status: 400 }
        )
      }
      if (headers["upgrade"]?.toLowerCase() !== "websocket") {
        record.outcome = 426
        return HttpServerResponse.unsafeJson(
          errorBody("This endpoint speaks WebSocket only: send an upgrade request.", "invalid_request_error", null),
          { status: 426 }
        )
      }
      const socket = yield* request.upgrade
      if (bearer !== Redacted.value(options.apiKey)) {
        record.outcome = "unauthorized"
        yield* refuseKey(socket, record)
        return HttpServerResponse.empty()
      }
      const raw = NodeHttpServerRequest.toIncomingMessage(request).socket
      yield* serve(socket, { raw, record, fault, model: url.searchParams.get("model") ?? "" })
      return HttpServerResponse.empty()
    }).pipe(Effect.catchTag("RequestError", () => Effect.succeed(HttpServerResponse.empty({ status: 400 }))))

    /**
     * A wrong key, as the API answers it: the upgrade succeeds, then one `error` event
     * (`invalid_api_key`) and a close with code 3000 and "<type>.<code>"; the key is not echoed.
     */
    const refuseKey = (socket: Socket.Socket, record: ConnectionRecord) =>
      Effect.gen(function*() {
        // What the client sends meanwhile is read and dropped: the session never starts.
        const running = yield* socket.runRaw(() => undefined).pipe(Effect.fork)
        const write = yield* socket.writer
        record.sent++
        yield* write(errorEvent(
          "invalid_request_error",
          "invalid_api_key",
          "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
        ))
        yield* write(new Socket.CloseEvent(3000, "invalid_request_error.invalid_api_key"))
        yield* Fiber.await(running)
      }).pipe(Effect.catchAll(() => Effect.void))

    /** One session: reads client events in order and answers them, applying the connection's fault. */
    const serve = (
      socket: Socket.Socket,
      context: {
        readonly raw: { readonly destroy: () => void }
        readonly record: ConnectionRecord
        readonly fault: RealtimeFaultStep
        readonly model: string
      }
    ) =>
      Effect.gen(function*() {
        const { fault, record } = context
        const inbox = yield* Queue.unbounded<string>()
        const running = yield* socket.runRaw((data) => {
          inbox.unsafeOffer(typeof data === "string" ? data : new TextDecoder().decode(data))
        }).pipe(Effect.fork)
        const write = yield* socket.writer
        const conversation: Array<StoredItem> = []
        const sessionId = nextId("sess", 22)
        let session: Record<string, unknown> = {
          id: sessionId,
          object: "realtime.session",
          type: "realtime",
          model: context.model,
          output_modalities: ["audio"],
          instructions: "",
          tools: [],
          tool_choice: "auto",
          max_output_tokens: "inf",
          // Unix seconds, as the API's: sessions last at most 60 minutes.
          expires_at: Math.floor(record.time / 1000) + 3600
        }
        let silent = false
        let errorSent = false
        // The response being produced, if any.
        let active: string | undefined

        const after = (n: number) => record.sent >= n
        /** Applies the connection's fault once `record.sent` events have gone out. */
        const applyFault: Effect.Effect<void, Socket.SocketError> = Effect.suspend(() => {
          if (silent || typeof fault !== "object") return Effect.void
          if ("dropAfter" in fault && after(fault.dropAfter)) {
            silent = true
            record.outcome = "dropped"
            return Effect.sync(() => context.raw.destroy())
          }
          if ("stallAfter" in fault && after(fault.stallAfter)) {
            silent = true
            record.outcome = "stalled"
            return Effect.void
          }
          if ("expireAfter" in fault && after(fault.expireAfter)) {
            silent = true
            record.outcome = "expired"
            const message = "Your session hit the maximum duration of 60 minutes."
            return Effect.zipRight(
              write(errorEvent("invalid_request_error", "session_expired", message)),
              write(new Socket.CloseEvent(1001, message))
            )
          }
          if ("errorAfter" in fault && after(fault.errorAfter) && !errorSent) {
            errorSent = true
            if (fault.code === insufficientQuota.type) {
              return write(errorEvent(insufficientQuota.type, insufficientQuota.type, fault.message ?? insufficientQuota.message))
            }
            return write(errorEvent(
              "server_error",
              fault.code ?? "server_error",
              fault.message ?? "The server had an error while processing your request. Sorry about that!"
            ))
          }
          return Effect.void
        })
        const emit = (event: Record<string, unknown>) =>
          Effect.suspend(() => {
            if (silent) return Effect.void
            record.sent++
            return Effect.zipRight(write(JSON.stringify({ event_id: nextId("event"), ...event })), applyFault)
          })
        const clientError = (message: string, code: string | null, eventId: string | undefined, param: string | null = null) =>
          emit({
            type: "error",
            error: { type: "invalid_request_error", code, message, param, event_id: eventId ?? null }
          })

        const addItem = (item: Item) =>
          Effect.gen(function*() {
            const stored: StoredItem = { ...item, id: nextId("item", 22) }
            const previous = conversation.at(-1)?.id ?? null
            conversation.push(stored)
            const shown = { object: "realtime.item", status: "completed", ...stored }
            yield* emit({ type: "conversation.item.added", previous_item_id: previous, item: shown })
            yield* emit({ type: "conversation.item.done", previous_item_id: previous, item: shown })
          })

        const respond = (eventId: string | undefined) =>
          Effect.gen(function*() {
            if (active !== undefined) {
              return yield* clientError(
                `Conversation already has an active response in progress: ${active}. Wait until the response is finished before creating a new one.`,
                "conversation_already_has_active_response",
                eventId
              )
            }
            responses++
            const responseId = nextId("resp", 22)
            active = responseId
            const base = {
              id: responseId,
              object: "realtime.response",
              conversation_id: `conv_${sessionId.slice(5)}`,
              output_modalities: ["text"],
              max_output_tokens: "inf",
              metadata: null
            }
            yield* emit({ type: "response.created", response: { ...base, status: "in_progress", status_details: null, output: [], usage: null } })
            yield* emit({
              type: "rate_limits.updated",
              rate_limits: [
                { name: "requests", limit: 5000, remaining: Math.max(0, 5000 - responses), reset_seconds: 0.012 },
                { name: "tokens", limit: 800000, remaining: Math.max(0, 800000 - responses * 120), reset_seconds: 0.009 }
              ]
            })
            const reply = answer(script, conversation)
            const itemId = nextId("item", 22)
            const previous = conversation.at(-1)?.id ?? null
            const ids = { response_id: responseId, item_id: itemId, output_index: 0 }
            let item: StoredItem
            if (reply._tag === "Call") {
              const callId = nextId("call", 16)
              const pending = { id: itemId, object: "realtime.item", type: "function_call", status: "in_progress", name: reply.name, call_id: callId, arguments: "" }
              yield* emit({ type: "response.output_item.added", response_id: responseId, output_index: 0, item: pending })
              yield* emit({ type: "conversation.item.added", previous_item_id: previous, item: pending })
              yield* emit({ type: "response.function_call_arguments.delta", ...ids, call_id: callId, delta: reply.arguments })
              yield* emit({ type: "response.function_call_arguments.done", ...ids, call_id: callId, name: reply.name, arguments: reply.arguments })
              item = { id: itemId, type: "function_call", call_id: callId, name: reply.name, arguments: reply.arguments }
            } else {
              const pending = { id: itemId, object: "realtime.item", type: "message", status: "in_progress", role: "assistant", content: [] }
              const part = { ...ids, content_index: 0 }
              yield* emit({ type: "response.output_item.added", response_id: responseId, output_index: 0, item: pending })
              yield* emit({ type: "conversation.item.added", previous_item_id: previous, item: pending })
              yield* emit({ type: "response.content_part.added", ...part, part: { type: "text", text: "" } })
              for (const delta of chunks(reply.text)) yield* emit({ type: "response.output_text.delta", ...part, delta })
              yield* emit({ type: "response.output_text.done", ...part, text: reply.text })
              yield* emit({ type: "response.content_part.done", ...part, part: { type: "text", text: reply.text } })
              item = { id: itemId, type: "message", role: "assistant", content: [{ type: "output_text", text: reply.text }] }
            }
            conversation.push(item)
            const done = { object: "realtime.item", status: "completed", ...item }
            yield* emit({ type: "response.output_item.done", response_id: responseId, output_index: 0, item: done })
            yield* emit({ type: "conversation.item.done", previous_item_id: previous, item: done })
            const input_tokens = approxTokens(JSON.stringify(conversation))
            const output_tokens = approxTokens(JSON.stringify(item))
            yield* emit({
              type: "response.done",
              response: {
                ...base,
                status: "completed",
                status_details: null,
                output: [done],
                // Broken down as the API's RealtimeResponseUsage is: a text-only turn is all text.
                usage: {
                  total_tokens: input_tokens + output_tokens,
                  input_tokens,
                  output_tokens,
                  input_token_details: {
                    text_tokens: input_tokens,
                    audio_tokens: 0,
                    image_tokens: 0,
                    cached_tokens: 0,
                    cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 }
                  },
                  output_token_details: { text_tokens: output_tokens, audio_tokens: 0 }
                }
              }
            })
            active = undefined
          })

        /** The `event_id` of the client event being handled, for an error about it. */
        let handling: string | undefined

        const handle = (text: string) =>
          Effect.gen(function*() {
            handling = undefined
            const json = parseJson(text)
            const deep = Either.isRight(json) ? tooDeep(json.right) : undefined
            record.received.push(deep === undefined ? Either.getOrElse(json, () => text) : text)
            if (silent) return
            if (Either.isLeft(json)) return yield* clientError(`Invalid JSON: ${json.left}`, "invalid_json", undefined)
            // Answered, not dropped: walking it (decoding, answering it back) would overflow the stack.
            if (deep !== undefined) return yield* clientError(`Invalid JSON: the event ${deep}`, "invalid_json", undefined)
            const head = decode(EventType, json.right)
            if (Either.isLeft(head)) return yield* clientError("Missing required parameter: 'type'.", "missing_required_parameter", undefined, "type")
            const { event_id: eventId, type } = head.right
            handling = eventId
            const event = decode(ClientEventSchema, json.right)
            if (Either.isLeft(event)) {
              const known = type === "session.update" || type === "conversation.item.create" || type === "response.create"
              const issue = event.left[0]
              return yield* clientError(
                known && issue !== undefined
                  ? `Invalid value for '${issue.path.map(String).join(".")}': ${issue.missing ? "missing" : issue.message}`
                  : `Invalid value: '${type}'. Supported values are: 'session.update', 'conversation.item.create' and 'response.create'.`,
                "invalid_value",
                eventId,
                known && issue !== undefined ? issue.path.map(String).join(".") : "type"
              )
            }
            yield* dispatch(event.right)
          })

        const dispatch = (event: ClientEvent) =>
          Effect.gen(function*() {
            switch (event.type) {
              case "session.update": {
                session = { ...session, ...event.session }
                return yield* emit({ type: "session.updated", session })
              }
              case "conversation.item.create": {
                const item = event.item
                if (item.type === "function_call_output" && !conversation.some((known) => known.type === "function_call" && known.call_id === item.call_id)) {
                  return yield* clientError(`Tool call ID '${item.call_id}' not found in conversation.`, null, event.event_id, "item.call_id")
                }
                return yield* addItem(item)
              }
              case "response.create":
                return yield* respond(event.event_id)
            }
          })

        yield* emit({ type: "session.created", session })
        // A bug of the sandbox answers that event with OpenAI's server_error and the session goes
        // on, as the real API does; a dead loop would leave the client waiting in silence.
        const handleSafely = (text: string) =>
          Effect.catchAllDefect(handle(text), (defect) =>
            Effect.zipRight(
              Effect.logError("sandbox: a Realtime client event failed unexpectedly; answered server_error", Cause.die(defect)),
              emit({
                type: "error",
                error: {
                  type: "server_error",
                  code: null,
                  message: "The server had an error while processing your request. Sorry about that!",
                  param: null,
                  event_id: handling ?? null
                }
              })
            ))

        yield* Effect.forever(Effect.flatMap(Queue.take(inbox), handleSafely)).pipe(
          Effect.catchAll(() => Effect.void),
          Effect.raceFirst(Fiber.await(running)),
          Effect.ensuring(Effect.sync(() => {
            if (record.outcome === "open") record.outcome = "closed"
          }))
        )
      })

    return {
      route,
      setPlan: (next: RealtimePlan) =>
        Effect.sync(() => {
          plan = next
          planIndex = 0
        }),
      /** The steps the next connections will take. */
      plan: Effect.sync((): RealtimePlan => plan.slice(planIndex)),
      setScript: (next: ReadonlyArray<RealtimeRule>) => Effect.sync(() => void (script = next)),
      connections: Effect.sync((): ReadonlyArray<RealtimeConnection> =>
        records.map((record) => ({ ...record, received: record.received.slice() }))
      ),
      reset: Effect.sync(() => {
        records.length = 0
        plan = []
        planIndex = 0
      })
    }
  })
