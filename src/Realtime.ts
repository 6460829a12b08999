/**
 * OpenAI Realtime API client over WebSocket (GA protocol), text modality.
 *
 * `connect(options)` opens a session in the current scope: `wss://…/v1/realtime?model=…` with
 * `Authorization: Bearer OPENAI_API_KEY`; once the server's `session.created` has come (an `error`
 * event before it fails the attempt with that error, a close before it with its code and reason),
 * `session.update` (`type: "realtime"`, `output_modalities: ["text"]`, the instructions and
 * tools). `session.send(text)` runs one user turn: the message, one `response.create`, the
 * model's function calls (each `call_id` run once, answered with a `function_call_output`, then
 * one `response.create` per round), until a response needs nothing more.
 *
 * Reliability:
 * - each connect attempt, `session.created` included, is bounded by `websocket_connect` and
 *   retried with policy `network` when its error is retryable (a `server_error` or a rate limit
 *   is, `invalid_api_key` or `model_not_found` is not), all attempts together by `openai_api`
 *   (the first connect included: when it gives up, `connect` fails with the cause);
 * - a socket silent for `websocket_message` while a response is pending is dead, and so is one
 *   whose response is not done within `openai_api` however many other events it sends; a dead socket,
 *   a dropped one, or an `error` with code `session_expired` is replaced: the session waits with
 *   the `network` policy's jittered backoff, connects again, sends `session.update` and replays
 *   the conversation (user and assistant messages, each answered function call with its output),
 *   and asks again for the response that was lost. A function call already seen is never run
 *   twice. Connections lost during a turn without a completed response in between count against
 *   the policy's attempts, and so do connections lost while idle that lived less than
 *   `websocket_message` (a longer-lived one lost while idle does not); when they run out the
 *   session fails;
 * - an `error` event tied to no event of ours (`event_id` null) while a response is pending ends
 *   the turn at once with status `failed` and the server's words, rather than waiting for a
 *   `response.done` that need not come, and so does one that names our `response.create`; the
 *   session goes on;
 * - one `response.create` in flight at a time; after `conversation_already_has_active_response`
 *   it waits for the active response's `response.done`, then asks once; a `response.done` for a
 *   response already done, for another than the active one, or with none active is ignored
 *   (logged), and one that cannot be read ends the active response as failed;
 * - `rate_limits.updated` feeds `Metrics.rateLimitLimit` / `rateLimitRemaining` /
 *   `rateLimitResetSeconds`; reconnects count in `Metrics.reconnects`;
 * - closing the scope closes the socket, bounded by `websocket_close`.
 *
 * Environment (through `Config`): `OPENAI_API_KEY` (redacted; missing or blank: the layer still
 * builds and `connect` fails with `Unauthorized` without connecting), `OPENAI_REALTIME_URL`
 * (default `wss://api.openai.com/v1/realtime`), `OPENAI_REALTIME_MODEL` (default `gpt-realtime`).
 *
 * @since 0.2.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type { CircuitBreaker } from "./CircuitBreaker.js"
import * as Errors from "./Errors.js"
import { urlSetting, webSocketUrl } from "./internal/urlSetting.js"
import { ReliabilityConfig } from "./ReliabilityConfig.js"
import * as Resilience from "./Resilience.js"
import { service } from "./realtime/Connection.js"
import type { RealtimeError, Session, SessionOptions } from "./realtime/Domain.js"
import * as RealtimeSession from "./realtime/Session.js"
import { secretScrubber } from "./internal/scrubSecret.js"

export { SessionExpired } from "./realtime/Domain.js"
export type {
  AnsweredCall,
  FunctionCall,
  RealtimeError,
  ReconnectReason,
  Session,
  SessionEvent,
  SessionOptions,
  Stats,
  Turn
} from "./realtime/Domain.js"
export type { ClientEvent, ConversationItem, FunctionTool, ResponseStatus, SessionConfig } from "./realtime/Protocol.js"
export { service }

export interface Service {
  /** Opens a session in the current scope; see the module documentation. */
  readonly connect: (options?: SessionOptions) => Effect.Effect<Session, RealtimeError, Scope.Scope>
  /** The endpoint, `?model=` included (no secret in it). */
  readonly url: string
  readonly model: string
}

/** The Realtime client service tag. */
export class Realtime extends Context.Tag("big3/Realtime")<Realtime, Service>() {}

/** Options of `makeWith` / `layerWith`; anything omitted takes its default. */
export interface Options {
  /** `undefined` or blank: `connect` fails with `Unauthorized` and connects nowhere. */
  readonly apiKey?: Redacted.Redacted<string> | undefined
  /** Default `wss://api.openai.com/v1/realtime`. */
  readonly url?: string | undefined
  /** Default `gpt-realtime`. */
  readonly model?: string | undefined
}

export const defaultUrl = "wss://api.openai.com/v1/realtime"
export const defaultModel = "gpt-realtime"

/** `OPENAI_API_KEY`, `OPENAI_REALTIME_URL`, `OPENAI_REALTIME_MODEL`, with their defaults. */
export const config: Config.Config<Options> = Config.all({
  apiKey: Config.option(Config.redacted("OPENAI_API_KEY")).pipe(Config.map(Option.getOrUndefined)),
  // Credentials in it are refused: OpenAI is reached with OPENAI_API_KEY, and a URL is shown in errors.
  url: urlSetting("OPENAI_REALTIME_URL", defaultUrl, webSocketUrl(defaultUrl)),
  model: Config.string("OPENAI_REALTIME_MODEL").pipe(
    Config.withDefault(defaultModel),
    Config.mapOrFail((model) =>
      model.trim() !== "" ? Either.right(model) : Either.left(ConfigError.InvalidData(
        ["OPENAI_REALTIME_MODEL"],
        `OPENAI_REALTIME_MODEL is empty: expected a model name such as ${defaultModel}`
      ))
    )
  )
})

/** The endpoint with `?model=` set. */
export const endpoint = (url: string, model: string): string => {
  const parsed = new URL(url)
  parsed.searchParams.set("model", model)
  return parsed.toString()
}

const missingKey = () =>
  new Errors.Unauthorized({
    service,
    message: "OPENAI_API_KEY is not set: set it to an OpenAI API key; no connection was attempted"
  })

/** Builds the client from explicit options; configuration is read once, here. */
export const makeWith = (
  options: Options = {}
): Effect.Effect<Service, never, ReliabilityConfig | CircuitBreaker> =>
  Effect.gen(function*() {
    const reliability = yield* ReliabilityConfig
    const model = options.model ?? defaultModel
    const url = endpoint(options.url ?? defaultUrl, model)
    const apiKey = options.apiKey !== undefined && Redacted.value(options.apiKey).trim() !== "" ? options.apiKey : undefined
    const protectConnect = yield* Resilience.makeProtect({
      operation: "websocket_connect",
      policy: "network",
      service,
      deadline: reliability.timeoutOf("openai_api")
    })
    const messageTimeout = reliability.timeoutOf("websocket_message")
    const closeTimeout = reliability.timeoutOf("websocket_close")
    const policy = reliability.policyOf("network")

    const connect = Effect.fn("Realtime.connect")(function*(sessionOptions: SessionOptions = {}) {
      if (apiKey === undefined) return yield* Effect.fail(missingKey())
      const driver = yield* Resilience.retryDriver(policy, { service, operation: "realtime_session" })
      const secret = Redacted.value(apiKey)
      return yield* RealtimeSession.make({
        settings: {
          url,
          headers: { Authorization: `Bearer ${secret}` },
          closeTimeout,
          scrub: secretScrubber(secret)
        },
        protectConnect,
        messageTimeout,
        responseTimeout: reliability.timeoutOf("openai_api"),
        driver
      }, sessionOptions)
    })

    return Realtime.of({ connect, url, model })
  })

/** Builds the client from the environment. */
export const make: Effect.Effect<Service, ConfigError.ConfigError, ReliabilityConfig | CircuitBreaker> = Effect.flatMap(
  config,
  makeWith
)

/** The client configured from the environment; needs `ReliabilityConfig` and `CircuitBreaker`. */
export const layer: Layer.Layer<Realtime, ConfigError.ConfigError, ReliabilityConfig | CircuitBreaker> = Layer.effect(
  Realtime,
  make
)

/** The client with explicit options (no environment). */
export const layerWith = (options: Options = {}): Layer.Layer<Realtime, never, ReliabilityConfig | CircuitBreaker> =>
  Layer.effect(Realtime, makeWith(options))

/** The client with options read from any `Config`. */
export const layerConfig = (
  options: Config.Config<Options>
): Layer.Layer<Realtime, ConfigError.ConfigError, ReliabilityConfig | CircuitBreaker> =>
  Layer.effect(Realtime, Effect.flatMap(options, makeWith))

/** Opens a session with the `Realtime` service in context. */
export const connect = (
  options?: SessionOptions
): Effect.Effect<Session, RealtimeError, Realtime | Scope.Scope> =>
  Effect.flatMap(Realtime, (realtime) => realtime.connect(options))
