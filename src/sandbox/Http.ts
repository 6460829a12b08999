/**
 * Shared pieces of the sandbox's upstream emulators: the request as the emulators see it, and
 * small helpers for ids, token counts and schema error messages.
 *
 * @since 0.1.0
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as NodeHttp from "node:http"
import type { MidStreamKind, QuotaWindow } from "./FaultPlan.js"
import { mulberry32 } from "./FaultPlan.js"
import { nestsDeeperThan } from "../internal/jsonDepth.js"
import { messageOf } from "../internal/messageOf.js"

/** One request, read once by the sandbox before the plan and the emulator look at it. */
export interface Incoming {
  /** 1-based arrival number across all routes; seeds deterministic ids. */
  readonly sequence: number
  /** Clock time at arrival, in milliseconds. */
  readonly time: number
  readonly method: string
  /** Path without the query string. */
  readonly path: string
  /** Query parameters, unredacted (the emulators need `key`); never recorded as is. */
  readonly query: Readonly<Record<string, string>>
  /** Lower-case header names, unredacted; never recorded as is. */
  readonly headers: Readonly<Record<string, string>>
  /** The raw body text ("" when there is none). */
  readonly text: string
  /** Path parameters captured by the router. */
  readonly params: Readonly<Record<string, string | undefined>>
}

/** How one upstream writes its error answers. */
export interface Upstream {
  /**
   * An error answer with `status` in this upstream's real format, with its retry hint if any;
   * `quota` says which quota a 429 names (upstreams without quota details ignore it).
   */
  readonly error: (
    incoming: Incoming,
    status: number,
    retryAfter: Option.Option<Duration.Duration>,
    quota?: QuotaWindow | undefined
  ) => HttpServerResponse.HttpServerResponse
  /** A 200 answer whose body is not valid JSON (or not a valid event stream). */
  readonly malformed: (incoming: Incoming) => HttpServerResponse.HttpServerResponse
  /** A 404 for a path this upstream does not serve. */
  readonly notFound: (incoming: Incoming) => HttpServerResponse.HttpServerResponse
  /** The largest request body the real API takes, in bytes. */
  readonly maxRequestBytes: number
  /** The real API's answer to a body over `maxRequestBytes` (the body was not read). */
  readonly tooLarge: (incoming: Incoming, limit: number) => HttpServerResponse.HttpServerResponse
  /** Whether the request asks for a streamed answer (mid-stream faults apply to those only). */
  readonly isStream: (incoming: Incoming) => boolean
}

/** A fault injected into a streamed answer after its first `after` events. */
export interface StreamFault {
  readonly kind: MidStreamKind
  readonly after: number
  /** The in-stream error's status; `undefined` for the upstream's usual overload error. */
  readonly status: number | undefined
  /** Drops the connection (after what was written has been flushed). */
  readonly dropConnection: Effect.Effect<void>
}

/**
 * A route handler of an emulator: the normal answer to a request, with `streamFault` injected
 * when the answer is a stream.
 */
export type Answer = (
  incoming: Incoming,
  streamFault?: StreamFault | undefined
) => Effect.Effect<HttpServerResponse.HttpServerResponse>

const encoder = new TextEncoder()

/**
 * A streamed answer: `events` (each already framed, e.g. `data: …\n\n`), cut by `fault` after
 * its first `after` events, where the fault writes `errorEvent(status)`, stalls, drops the
 * connection, or ends the body.
 */
export const eventStream = (
  events: ReadonlyArray<string>,
  fault: StreamFault | undefined,
  errorEvent: (status: number | undefined) => string,
  options: HttpServerResponse.Options.WithContentType
): HttpServerResponse.HttpServerResponse => {
  const sent = fault === undefined ? events : events.slice(0, fault.after)
  const head = Stream.fromIterable(sent.map((event) => encoder.encode(event)))
  const tail: Stream.Stream<Uint8Array> = fault === undefined
    ? Stream.empty
    : fault.kind === "error"
    ? Stream.make(encoder.encode(errorEvent(fault.status)))
    : fault.kind === "hang"
    ? Stream.never
    : fault.kind === "end"
    ? Stream.empty
    : Stream.drain(Stream.fromEffect(fault.dropConnection)).pipe(Stream.concat(Stream.never))
  return HttpServerResponse.stream(Stream.concat(head, tail), options)
}

/** What reading a request body gave: its text, or how many bytes had arrived when it passed the limit. */
export type BodyRead =
  | { readonly _tag: "Body"; readonly text: string }
  | { readonly _tag: "TooLarge"; readonly bytes: number }

/** How much of a body past its limit is read (and discarded) before the answer, at most. */
export const lingerBytes = 16 * 2 ** 20

/**
 * Reads a request body of at most `limit` bytes. A `content-length` above the limit is refused
 * before anything is read; a body that grows past it while arriving stops being kept, so a 100 MB
 * upload costs the sandbox no more than `limit` bytes. Its rest is read and discarded until it
 * ends, `lingerBytes` at most, before the answer: Node closes the socket after an answer that
 * comes while the body is still arriving, the client's next write meets a reset, and a reset
 * throws the answer away in the client's receive buffer (the client would see EPIPE, not the
 * 413). A client that goes on sending past that is answered and cut off.
 */
export const readBody = (message: NodeHttp.IncomingMessage, limit: number): Effect.Effect<BodyRead> =>
  Effect.async<BodyRead>((resume) => {
    const declared = Number(message.headers["content-length"])
    if (Number.isFinite(declared) && declared > limit) {
      message.resume()
      return resume(Effect.succeed({ _tag: "TooLarge", bytes: declared }))
    }
    if (message.readableEnded) return resume(Effect.succeed({ _tag: "Body", text: "" }))
    const chunks: Array<Buffer> = []
    let bytes = 0
    let done = false
    const finish = (read: BodyRead) => {
      if (done) return
      done = true
      message.off("data", onData)
      message.off("end", onEnd)
      message.off("error", onEnd)
      resume(Effect.succeed(read))
    }
    const onData = (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes <= limit) {
        chunks.push(chunk)
        return
      }
      chunks.length = 0
      if (bytes > limit + lingerBytes) {
        finish({ _tag: "TooLarge", bytes })
        // Keep the socket flowing (and discarding) until the answer closes it.
        message.resume()
      }
    }
    // An aborted upload reads as what arrived; the client is gone and will not see the answer.
    const onEnd = () =>
      finish(bytes > limit ? { _tag: "TooLarge", bytes } : { _tag: "Body", text: Buffer.concat(chunks).toString("utf8") })
    message.on("data", onData)
    message.once("end", onEnd)
    message.once("error", onEnd)
    return Effect.sync(() => {
      message.off("data", onData)
      message.off("end", onEnd)
      message.off("error", onEnd)
    })
  })

/**
 * Answers an unexpected failure of a route (a defect: answers are built to never fail) with
 * `fallback`, and logs it with its cause so it is never silent. Interruption (a client gone, a
 * hang released) passes through.
 */
export const answeringDefects = (
  method: string,
  path: string,
  fallback: () => HttpServerResponse.HttpServerResponse
) =>
<E, R>(self: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.catchAllCause(self, (cause) =>
    Cause.isInterruptedOnly(cause)
      ? Effect.failCause(cause)
      : Effect.as(Effect.logError(`sandbox: ${method} ${path} failed unexpectedly; answered 500`, cause), fallback()))

/** Adds `connection: close`, so Node closes the socket (and drops an unread body) after the answer. */
export const closingConnection = (response: HttpServerResponse.HttpServerResponse): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.setHeader(response, "connection", "close")

/** Parses the body as JSON: `Either.left` with the syntax error message when it is not JSON. */
export const parseJson = (text: string): Either.Either<unknown, string> =>
  Either.try({
    try: (): unknown => JSON.parse(text),
    catch: (error) => messageOf(error)
  })

/**
 * The deepest JSON the sandbox keeps as a value, in levels of objects and arrays. `JSON.parse`
 * takes any depth but `JSON.stringify` (every JSON answer) overflows the stack near 8,000 levels
 * on Node 20, so deeper JSON is refused (every route that parses a body, see {@link tooDeep}) or
 * kept as text (the request log).
 */
export const maxJsonDepth = 1000

/**
 * Why a parsed JSON value cannot be answered back (it nests deeper than {@link maxJsonDepth}), or
 * `undefined` when it can. Every route that parses a body refuses such a value with its API's 400,
 * before a walker of its own overflows the stack.
 */
export const tooDeep = (value: unknown): string | undefined =>
  nestsDeeperThan(value, maxJsonDepth) ? `nests deeper than ${maxJsonDepth} levels of objects and arrays` : undefined

/**
 * The body as recorded: parsed JSON, or the raw text when it is not JSON or nests deeper than
 * {@link maxJsonDepth} (so the admin API can always answer it), `undefined` when empty.
 */
export const recordedBody = (text: string): unknown => {
  if (text.length === 0) return undefined
  return Either.match(parseJson(text), {
    onLeft: () => text,
    onRight: (value) => tooDeep(value) === undefined ? value : text
  })
}

/** Splits text into at most three chunks on word boundaries, as a real stream delivers it. */
export const wordChunks = (text: string): ReadonlyArray<string> => {
  const words = text.split(/(?<= )/)
  const size = Math.max(1, Math.ceil(words.length / 3))
  const out: Array<string> = []
  for (let i = 0; i < words.length; i += size) out.push(words.slice(i, i + size).join(""))
  return out.length === 0 ? [""] : out
}

/** A rough, deterministic token count: one token per four characters, at least one. */
export const approxTokens = (text: string): number => Math.max(1, Math.ceil(text.length / 4))

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

/** A deterministic, random-looking base62 id of `width` characters derived from `n` (ids look like the real ones). */
export const pseudoId = (n: number, width: number): string => {
  let state = Math.floor(n) | 0
  let out = ""
  for (let i = 0; i < width; i++) {
    const [value, next] = mulberry32(state)
    state = next
    out += alphabet.charAt(Math.floor(value * 62))
  }
  return out
}

/** One schema issue: its path and message, with missing keys marked. */
export interface Issue {
  readonly path: ReadonlyArray<PropertyKey>
  readonly message: string
  readonly missing: boolean
}

/** Decodes `input` with `schema`, collecting every issue on failure. */
export const decode = <A, I>(
  schema: Schema.Schema<A, I, never>,
  input: unknown
): Either.Either<A, ReadonlyArray<Issue>> =>
  Either.mapLeft(
    Schema.decodeUnknownEither(schema, { errors: "all" })(input),
    (error) =>
      ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => ({
        path: issue.path,
        message: issue.message,
        missing: issue._tag === "Missing"
      }))
  )

/** Reads what the emulators need from a request; `text` is the body, already read. */
export const readIncoming = (
  request: HttpServerRequest.HttpServerRequest,
  params: Readonly<Record<string, string | undefined>>,
  text: string,
  time: number,
  sequence: number
): Incoming => {
  const url = new URL(request.url, "http://sandbox.invalid")
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(request.headers)) headers[name.toLowerCase()] = String(value)
  return {
    sequence,
    time,
    method: request.method,
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers,
    text,
    params
  }
}

/** Headers that carry secrets: recorded as "<redacted>". */
const secretHeaders: ReadonlySet<string> = new Set([
  "x-goog-api-key",
  "x-api-key",
  "authorization",
  "proxy-authorization",
  "cookie"
])

/** The WebSocket subprotocol that carries an OpenAI key (browsers cannot set `Authorization`). */
const insecureKeyPrefix = "openai-insecure-api-key."

const protocolsOf = (header: string): Array<string> => header.split(",").map((protocol) => protocol.trim())

/** The key a client offers as the subprotocol `openai-insecure-api-key.<key>`, if any. */
export const subprotocolKey = (header: string | undefined): string | undefined => {
  const offered = protocolsOf(header ?? "").find((protocol) => protocol.startsWith(insecureKeyPrefix) && protocol !== insecureKeyPrefix)
  return offered?.slice(insecureKeyPrefix.length)
}

const redactProtocols = (header: string): string =>
  protocolsOf(header).map((protocol) => protocol.startsWith(insecureKeyPrefix) ? `${insecureKeyPrefix}<redacted>` : protocol).join(", ")

/** Headers as recorded: every secret-carrying header reads "<redacted>", and so does a key offered as a subprotocol. */
export const redactHeaders = (headers: Readonly<Record<string, string>>): Readonly<Record<string, string>> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    out[name] = secretHeaders.has(name) ? "<redacted>" : name === "sec-websocket-protocol" ? redactProtocols(value) : value
  }
  return out
}

/** Query parameters as recorded: Gemini's `key` reads "<redacted>". */
export const redactQuery = (query: Readonly<Record<string, string>>): Readonly<Record<string, string>> =>
  "key" in query ? { ...query, key: "<redacted>" } : query
