/**
 * The shapes of the Realtime client: its errors, what a session reports as it goes, a turn's
 * result and a session's figures (re-exported by `Realtime`).
 *
 * @since 0.2.0
 */
import type * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Errors from "../Errors.js"
import type { FunctionTool, ResponseStatus } from "./Protocol.js"

/**
 * The server ended the session (`error` event with code `session_expired`: the API ends every
 * session after 60 minutes). Retryable: the client reconnects and replays the conversation.
 */
export class SessionExpired extends Schema.TaggedError<SessionExpired>()("SessionExpired", {
  service: Schema.String,
  message: Schema.String,
  retryable: Errors.retryableField
}) {}

/** Every way a Realtime session can fail. */
export type RealtimeError = Errors.Big3Error | SessionExpired

/** Why a connection was replaced by a new one. */
export type ReconnectReason =
  /** The socket closed or failed under us. */
  | "dropped"
  /** No server event for `websocket_message` while a response was pending: the socket is dead. */
  | "stalled"
  /** The server sent `error` with code `session_expired`. */
  | "session_expired"

/** A function call as the model made it; `arguments` is the JSON text the model wrote. */
export interface FunctionCall {
  readonly callId: string
  readonly name: string
  readonly arguments: string
}

/** What a session reports, in the order it happens. */
export type SessionEvent =
  /** The first connection is open and configured. */
  | { readonly _tag: "Connected"; readonly connection: number }
  /**
   * A new connection replaced one that ended (`reason`); `attempt` counts reconnections since the
   * last completed response, `connection` numbers the new connection (2 for the first reconnect),
   * `downMs` is how long the session had no connection (backoff and connect included).
   */
  | {
    readonly _tag: "Reconnected"
    readonly reason: ReconnectReason
    readonly attempt: number
    readonly connection: number
    readonly cause: string
    readonly downMs: number
  }
  /** A piece of assistant text, as it streams. */
  | { readonly _tag: "TextDelta"; readonly text: string }
  /** An assistant message, complete. */
  | { readonly _tag: "AssistantText"; readonly text: string }
  /** A new function call: it runs now. */
  | ({ readonly _tag: "FunctionCall" } & FunctionCall)
  /** A function call whose `call_id` was seen before: not run again. */
  | ({ readonly _tag: "FunctionCallSkipped" } & FunctionCall)
  /** A function call's output went back to the model; `ms` is how long the call ran. */
  | ({ readonly _tag: "FunctionCallOutput"; readonly output: string; readonly ms: number } & FunctionCall)
  /** An `error` event that did not end the session. */
  | { readonly _tag: "ServerError"; readonly type: string; readonly code: string | undefined; readonly message: string }
  /** A response finished (`response.done`). */
  | { readonly _tag: "ResponseDone"; readonly status: ResponseStatus }

/** A function call answered during a turn. */
export interface AnsweredCall extends FunctionCall {
  readonly output: string
  readonly ms: number
}

/** What one user turn produced, once the model has nothing more to do for it. */
export interface Turn {
  /** The assistant's messages of the turn, joined by new lines. */
  readonly text: string
  /** The function calls run and answered during the turn, in the order they finished. */
  readonly calls: ReadonlyArray<AnsweredCall>
  /** `call_id`s the server sent again and that were not run a second time. */
  readonly skipped: ReadonlyArray<string>
  /** Responses completed during the turn (one more after each round of function calls). */
  readonly responses: number
  /** The last response's status: `completed`, or `failed` / `cancelled` / `incomplete`. */
  readonly status: ResponseStatus
  /** Why the last response failed, when it did. */
  readonly error?: string | undefined
}

/** A session's figures so far. */
export interface Stats {
  /** Connections opened (1 + reconnects). */
  readonly connections: number
  readonly reconnects: ReadonlyArray<{ readonly reason: ReconnectReason; readonly attempt: number }>
  /** `response.create` events sent. */
  readonly responsesRequested: number
  /** The most responses ever pending at once: 1 unless the one-at-a-time rule broke. */
  readonly maxResponsesInFlight: number
  /** Function calls started (each `call_id` once). */
  readonly callsRun: number
  /** Function calls received again for a `call_id` already seen, and not run. */
  readonly callsSkipped: number
}

/** How to open a session. */
export interface SessionOptions {
  /** The session's instructions (`session.instructions`). */
  readonly instructions?: string | undefined
  /** Functions the model may call. */
  readonly tools?: ReadonlyArray<FunctionTool> | undefined
  /**
   * Runs one function call; its text goes back to the model as the call's output. It should not
   * fail (answer failures as text): a defect is answered as "the tool failed unexpectedly".
   */
  readonly onFunctionCall?: ((call: FunctionCall) => Effect.Effect<string>) | undefined
  /** Told about everything as it happens, in order. Must not call the session back. */
  readonly onEvent?: ((event: SessionEvent) => Effect.Effect<void>) | undefined
}

/** An open session; closing its scope closes the socket (bounded by `websocket_close`). */
export interface Session {
  /**
   * One user turn: sends the message, asks for a response, runs the model's function calls and
   * asks again after each round, until a response needs nothing more. Turns run one at a time.
   * Fails only when the session is lost (reconnects exhausted). A response that ends failed, whose
   * `response.create` the server refused, or that an `error` event tied to no event of ours cut
   * short (a `server_error` mid-response), is a `Turn` with status `failed` and the server's words;
   * one failed because the account is out of credit (`insufficient_quota`) loses the session with
   * `QuotaExhausted` instead, as every later response would fail alike.
   */
  readonly send: (text: string) => Effect.Effect<Turn, RealtimeError>
  readonly stats: Effect.Effect<Stats>
  /**
   * Waits until the session is lost (its reconnections used up, while a turn runs or while
   * idle), then fails with why; never succeeds. For a caller that waits on something else
   * meanwhile (the next line of input) and should not learn of the loss only at its next turn.
   */
  readonly lost: Effect.Effect<never, RealtimeError>
}
