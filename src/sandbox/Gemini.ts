/**
 * Emulator of Gemini's `models.generateContent`, `models.streamGenerateContent` (server-sent
 * events with `?alt=sse`, else a streamed JSON array) and `models.countTokens`, served under both
 * `/v1` and `/v1beta` as the real API is, in the public REST shapes and with Google's error
 * format (`{"error":{"code","message","status","details"?}}`).
 *
 * What the model says comes from a list of {@link Responder}s, asked in order, then the default
 * answer: a call of the first declared function (its required arguments filled from the
 * declared schema) or, once the last turn answers a call, text echoing the user. Whatever the
 * responder says is then shaped as the real API would: thinking models (Gemini 2.5, 3) report
 * `thoughtsTokenCount` and sign their first function call with a `thoughtSignature`,
 * `generationConfig.maxOutputTokens` cuts the answer (`MAX_TOKENS`), usage carries
 * `promptTokensDetails`.
 *
 * @since 0.1.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import {
  apiKeyInvalid,
  apiKeyMissing,
  errorBody,
  errorResponse,
  rateLimited,
  rejected,
  retryInfo,
  statusName,
  streamErrorEvent
} from "./GeminiErrors.js"
import type { Content, FunctionDeclaration, GenerateContentRequest, Part } from "./GeminiRequest.js"
import {
  answersFunctionCall,
  declarationsOf,
  lastUserText,
  partText,
  promptTokens,
  promptTokensDetails,
  readRequest,
  thinks
} from "./GeminiRequest.js"
import type { Answer, Incoming, StreamFault, Upstream } from "./Http.js"
import { approxTokens, eventStream, pseudoId, wordChunks } from "./Http.js"
import { sampleObject } from "./JsonSchema.js"

export type { Content, GenerateContentRequest, Part } from "./GeminiRequest.js"
export { declarationsOf } from "./GeminiRequest.js"

const modelOf = (incoming: Incoming): string => incoming.params["model"] ?? ""

/** The upstream's error writers. */
export const upstream: Upstream = {
  error: (incoming, status, retryAfter, quota) =>
    status === 429
      ? rateLimited(modelOf(incoming), retryAfter, quota ?? "minute")
      : errorResponse(status, statusName(status)[1], Option.match(retryAfter, { onNone: () => [], onSome: (d) => [retryInfo(d)] })),
  malformed: (incoming) =>
    upstream.isStream(incoming)
      ? HttpServerResponse.text(`data: {"candidates":[{"content":{"role":"model","parts":[{"text":"sandbox\r\n\r\n`, {
        contentType: "text/event-stream"
      })
      : HttpServerResponse.text(`{"candidates":[{"content":{"role":"model","parts":[{"text":"sandbox`, {
        contentType: "application/json"
      }),
  notFound: () => errorResponse(404, "Requested entity was not found."),
  // The documented limit of a whole generateContent request (inline data included).
  maxRequestBytes: 20 * 1024 * 1024,
  tooLarge: (_incoming, limit) => errorResponse(400, `Request payload size exceeds the limit: ${limit} bytes.`),
  isStream: (incoming) => incoming.path.endsWith(":streamGenerateContent")
}

// ---------------------------------------------------------------------------------------------
// Responders: what the model says
// ---------------------------------------------------------------------------------------------

/** The model's turn before the API shapes it: its parts, and why it stopped (default `STOP`). */
export interface ModelTurn {
  readonly parts: ReadonlyArray<Part>
  readonly finishReason?: string | undefined
}

/** What a responder knows besides the request. */
export interface ResponderContext {
  /** The model named in the path. */
  readonly model: string
  /** The request's 1-based arrival number (seeds ids). */
  readonly sequence: number
}

/**
 * One way of answering `generateContent`: the model's turn for `request`, or `Option.none()` to
 * leave it to the next responder. The sandbox asks its responders in order and ends with
 * {@link defaultResponder}; e.g. a responder that plays a computer-use plan when the request
 * carries the `computerUse` tool slots in first.
 */
export type Responder = (
  request: GenerateContentRequest,
  context: ResponderContext
) => Effect.Effect<Option.Option<ModelTurn>>

const argsFor = (declaration: FunctionDeclaration): Readonly<Record<string, unknown>> =>
  sampleObject(declaration.parametersJsonSchema ?? declaration.parameters)

/**
 * The default model: with declared functions (and `functionCallingConfig.mode` not `NONE`), a
 * call of the first allowed one until the last turn answers a call (`ANY` calls every time);
 * with only the computer-use tool, a `click_at` in the middle of the screen; otherwise text
 * echoing the last user text.
 */
export const defaultResponder: Responder = (request) =>
  Effect.sync(() => {
    const { computerUse, functions } = declarationsOf(request)
    const calling = request.toolConfig?.functionCallingConfig
    const mode = (calling?.mode ?? "AUTO").toUpperCase()
    const allowed = calling?.allowedFunctionNames
    const callable = allowed === undefined ? functions : functions.filter((f) => allowed.includes(f.name))
    const wantsCall = mode === "ANY" || (mode !== "NONE" && !answersFunctionCall(request))
    if (wantsCall && (callable.length > 0 || (computerUse && functions.length === 0))) {
      const first = callable[0]
      return Option.some<ModelTurn>({
        parts: [
          first === undefined
            ? { functionCall: { name: "click_at", args: { x: 500, y: 500 } } }
            : { functionCall: { name: first.name, args: argsFor(first) } }
        ]
      })
    }
    return Option.some<ModelTurn>({ parts: [{ text: `sandbox answer to: ${lastUserText(request)}` }] })
  })

const firstTurn = (
  responders: ReadonlyArray<Responder>,
  request: GenerateContentRequest,
  context: ResponderContext
): Effect.Effect<ModelTurn> =>
  Effect.gen(function*() {
    for (const responder of responders) {
      const turn = yield* responder(request, context)
      if (Option.isSome(turn)) return turn.value
    }
    return Option.getOrElse(yield* defaultResponder(request, context), () => ({ parts: [] }))
  })

// ---------------------------------------------------------------------------------------------
// Shaping the answer as the API does
// ---------------------------------------------------------------------------------------------

/** A signature that looks like the real ones (base64 of opaque bytes). */
const signatureFor = (sequence: number, index: number): string =>
  Buffer.from(`sandbox-thought-signature:${pseudoId(sequence * 31 + index, 48)}`).toString("base64")

interface Shaped {
  readonly parts: ReadonlyArray<Part>
  readonly finishReason: string
  readonly usage: {
    readonly promptTokenCount: number
    readonly candidatesTokenCount?: number
    readonly thoughtsTokenCount?: number
    readonly totalTokenCount: number
    readonly promptTokensDetails: ReadonlyArray<{ readonly modality: string; readonly tokenCount: number }>
  }
}

const shape = (request: GenerateContentRequest, turn: ModelTurn, context: ResponderContext): Shaped => {
  const prompt = promptTokens(request)
  const promptTokenCount = prompt.text + prompt.image
  const thinking = thinks(context.model, request)
  const thoughtText = `**Answering**\n\nThe user wrote: ${lastUserText(request).slice(0, 200)}`
  const thoughtTokens = thinking ? approxTokens(thoughtText) + 8 : 0
  const limit = request.generationConfig?.maxOutputTokens
  // Thoughts count against maxOutputTokens: a small limit can leave nothing for the answer.
  let budget = limit === undefined ? Number.POSITIVE_INFINITY : Math.max(0, limit - thoughtTokens)
  let finishReason = turn.finishReason ?? "STOP"
  let signed = false
  const parts: Array<Part> = []
  if (thinking && request.generationConfig?.thinkingConfig?.includeThoughts === true) {
    parts.push({ text: thoughtText, thought: true })
  }
  turn.parts.forEach((part, index) => {
    if (part.text !== undefined && part.thought !== true) {
      const tokens = approxTokens(part.text)
      if (tokens > budget) {
        finishReason = "MAX_TOKENS"
        const kept = part.text.slice(0, Math.max(0, budget) * 4)
        budget = 0
        if (kept !== "") parts.push({ ...part, text: kept })
        return
      }
      budget -= tokens
    }
    // Thinking models sign the first function call of a turn; a client must send it back.
    if (part.functionCall !== undefined && thinking && !signed) {
      signed = true
      parts.push(part.thoughtSignature === undefined ? { ...part, thoughtSignature: signatureFor(context.sequence, index) } : part)
      return
    }
    parts.push(part)
  })
  const candidatesTokenCount = approxTokens(
    parts.filter((part) => part.thought !== true).map((part) => part.text ?? JSON.stringify(part.functionCall ?? "")).join("")
  )
  return {
    parts,
    finishReason,
    usage: {
      promptTokenCount,
      ...(parts.length > 0 ? { candidatesTokenCount } : {}),
      ...(thoughtTokens > 0 ? { thoughtsTokenCount: thoughtTokens } : {}),
      totalTokenCount: promptTokenCount + (parts.length > 0 ? candidatesTokenCount : 0) + thoughtTokens,
      promptTokensDetails: promptTokensDetails(prompt)
    }
  }
}

// A turn without parts (a malformed call) carries no content at all, as the real API answers it.
const candidate = (parts: ReadonlyArray<Part>, finishReason: string | undefined) => ({
  ...(parts.length > 0 ? { content: { role: "model", parts } } : {}),
  ...(finishReason === undefined ? {} : { finishReason }),
  index: 0
})

/** The responses of a streamed answer: text spread over chunks, the finish reason and full usage on the last. */
const streamedResponses = (shaped: Shaped, meta: { readonly modelVersion: string; readonly responseId: string }) => {
  const pieces: Array<ReadonlyArray<Part>> = []
  for (const part of shaped.parts) {
    if (part.text !== undefined && part.thought !== true) {
      for (const chunk of wordChunks(part.text)) pieces.push([{ ...part, text: chunk }])
    } else {
      pieces.push([part])
    }
  }
  if (pieces.length === 0) pieces.push([])
  const partial = {
    promptTokenCount: shaped.usage.promptTokenCount,
    totalTokenCount: shaped.usage.promptTokenCount,
    promptTokensDetails: shaped.usage.promptTokensDetails
  }
  return pieces.map((parts, i) => {
    const last = i === pieces.length - 1
    return {
      candidates: [candidate(parts, last ? shaped.finishReason : undefined)],
      usageMetadata: last ? shaped.usage : partial,
      ...meta
    }
  })
}

// ---------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------

const keyProblem = (incoming: Incoming, apiKey: Redacted.Redacted<string>): HttpServerResponse.HttpServerResponse | undefined => {
  const given = incoming.headers["x-goog-api-key"] ?? incoming.query["key"]
  if (given === undefined || given === "") return apiKeyMissing
  return given === Redacted.value(apiKey) ? undefined : apiKeyInvalid
}

/** The model's answer as API responses: one for generateContent, several for a stream. */
type Answered = { readonly single: object; readonly stream: ReadonlyArray<object> }

const answer = (
  incoming: Incoming,
  apiKey: Redacted.Redacted<string>,
  responders: ReadonlyArray<Responder>
): Effect.Effect<Either.Either<Answered, HttpServerResponse.HttpServerResponse>> =>
  Effect.suspend((): Effect.Effect<Either.Either<Answered, HttpServerResponse.HttpServerResponse>> => {
    const denied = keyProblem(incoming, apiKey)
    if (denied !== undefined) return Effect.succeed(Either.left(denied))
    const model = modelOf(incoming)
    const read = readRequest(incoming.text, { model })
    if (Either.isLeft(read)) return Effect.succeed(Either.left(rejected(read.left)))
    const request = read.right
    const meta = { modelVersion: model, responseId: pseudoId(incoming.sequence, 22) }
    if (request.contents.some((content: Content) => partText(content.parts).includes("BLOCK_ME"))) {
      const prompt = promptTokens(request)
      const blocked = {
        promptFeedback: { blockReason: "SAFETY" },
        usageMetadata: {
          promptTokenCount: prompt.text + prompt.image,
          totalTokenCount: prompt.text + prompt.image,
          promptTokensDetails: promptTokensDetails(prompt)
        },
        ...meta
      }
      return Effect.succeed(Either.right({ single: blocked, stream: [blocked] }))
    }
    const context: ResponderContext = { model, sequence: incoming.sequence }
    return Effect.map(firstTurn(responders, request, context), (turn) => {
      const shaped = shape(request, turn, context)
      return Either.right({
        single: { candidates: [candidate(shaped.parts, shaped.finishReason)], usageMetadata: shaped.usage, ...meta },
        stream: streamedResponses(shaped, meta)
      })
    })
  })

/** `POST /{v1,v1beta}/models/{model}:generateContent`. */
export const generateContent = (apiKey: Redacted.Redacted<string>, responders: ReadonlyArray<Responder> = []): Answer =>
(incoming) =>
  Effect.map(
    answer(incoming, apiKey, responders),
    Either.match({ onLeft: (response) => response, onRight: ({ single }) => HttpServerResponse.unsafeJson(single) })
  )

/**
 * `POST /{v1,v1beta}/models/{model}:streamGenerateContent`: with `?alt=sse`, one
 * `data: <GenerateContentResponse>` event per chunk (what the SDKs ask for); without it, the
 * chunks as one JSON array. Errors found before the first chunk are plain JSON errors.
 */
export const streamGenerateContent = (
  apiKey: Redacted.Redacted<string>,
  responders: ReadonlyArray<Responder> = []
): Answer =>
(incoming, fault?: StreamFault) =>
  Effect.map(
    answer(incoming, apiKey, responders),
    Either.match({
      onLeft: (response) => response,
      onRight: ({ stream }) => {
        if (incoming.query["alt"] === "sse") {
          return eventStream(
            stream.map((response) => `data: ${JSON.stringify(response)}\r\n\r\n`),
            fault,
            streamErrorEvent,
            { contentType: "text/event-stream", headers: { "cache-control": "no-cache" } }
          )
        }
        return eventStream(
          [...stream.map((response, i) => `${i === 0 ? "[" : ",\r\n"}${JSON.stringify(response)}`), "]"],
          fault,
          (status) => `${fault?.after === 0 ? "[" : ",\r\n"}${JSON.stringify(errorBody(status ?? 503, statusName(status ?? 503)[1]))}]`,
          { contentType: "application/json" }
        )
      }
    })
  )

/** `POST /{v1,v1beta}/models/{model}:countTokens`: `{"totalTokens", "promptTokensDetails"}`. */
export const countTokens = (apiKey: Redacted.Redacted<string>): Answer => (incoming) =>
  Effect.sync(() => {
    const denied = keyProblem(incoming, apiKey)
    if (denied !== undefined) return denied
    return Either.match(readRequest(incoming.text, { model: modelOf(incoming), countTokens: true }), {
      onLeft: rejected,
      onRight: (request) => {
        const prompt = promptTokens(request)
        return HttpServerResponse.unsafeJson({
          totalTokens: prompt.text + prompt.image,
          promptTokensDetails: promptTokensDetails(prompt)
        })
      }
    })
  })
