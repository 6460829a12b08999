/**
 * Shared pieces of the sandbox's upstream emulators: the request as the emulators see it, and
 * small helpers for ids, token counts and schema error messages.
 *
 * @since 0.1.0
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { mulberry32 } from "./FaultPlan.js"

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
  /** An error answer with `status` in this upstream's real format, with its retry hint if any. */
  readonly error: (
    incoming: Incoming,
    status: number,
    retryAfter: Option.Option<Duration.Duration>
  ) => HttpServerResponse.HttpServerResponse
  /** A 200 answer whose body is not valid JSON (or not a valid event stream). */
  readonly malformed: (incoming: Incoming) => HttpServerResponse.HttpServerResponse
  /** A 404 for a path this upstream does not serve. */
  readonly notFound: (incoming: Incoming) => HttpServerResponse.HttpServerResponse
}

/** A route handler of an emulator: the normal answer to a request. */
export type Answer = (incoming: Incoming) => Effect.Effect<HttpServerResponse.HttpServerResponse>

/** Parses the body as JSON: `Either.left` with the syntax error message when it is not JSON. */
export const parseJson = (text: string): Either.Either<unknown, string> =>
  Either.try({
    try: (): unknown => JSON.parse(text),
    catch: (error) => error instanceof Error ? error.message : String(error)
  })

/** The body as recorded: parsed JSON, the raw text when it is not JSON, `undefined` when empty. */
export const recordedBody = (text: string): unknown =>
  text.length === 0 ? undefined : Either.getOrElse(parseJson(text), () => text)

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

/** Headers as recorded: every secret-carrying header reads "<redacted>". */
export const redactHeaders = (headers: Readonly<Record<string, string>>): Readonly<Record<string, string>> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) out[name] = secretHeaders.has(name) ? "<redacted>" : value
  return out
}

/** Query parameters as recorded: Gemini's `key` reads "<redacted>". */
export const redactQuery = (query: Readonly<Record<string, string>>): Readonly<Record<string, string>> =>
  "key" in query ? { ...query, key: "<redacted>" } : query
