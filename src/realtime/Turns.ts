/**
 * The turn's state machine of a Realtime session: what each server event does to the session's
 * state, when the one `response.create` owed goes out, when a function call starts and how its
 * output goes back, and when a turn is over. The state is one record, `State`, changed only under
 * the session's lock: the steps expect the caller to hold it, except `onText` (a frame from the
 * processor) and a finished call, which take it themselves.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Metrics from "../Metrics.js"
import type { Connection } from "./Connection.js"
import { service } from "./Connection.js"
import type { Conversation } from "./Conversation.js"
import type { AnsweredCall, FunctionCall, RealtimeError, ReconnectReason, SessionEvent, Turn } from "./Domain.js"
import type { ClientEvent, ConversationItem, ErrorEvent, RateLimitsUpdated, ResponseDone, ResponseStatus } from "./Protocol.js"
import { decodeServerEvent, errorCodes, messageText, userMessage } from "./Protocol.js"
import { messageOf } from "../internal/messageOf.js"
import { describe as describeServerError, isQuotaExhausted, responseQuotaExhausted, toRealtimeError } from "./ServerError.js"

/** Why a connection ended. */
export interface Ended {
  readonly reason: ReconnectReason
  readonly error: RealtimeError
}

/** A connection in use, with what the session keeps per connection. */
export interface Live {
  readonly number: number
  /** Clock time the connection was installed, in ms: how long it lived says whether it proved the link. */
  readonly openedAt: number
  readonly connection: Connection
  readonly scope: Scope.CloseableScope
  /** Poked by every server event and by each `response.create`: the watchdog's clock. */
  readonly traffic: Queue.Queue<void>
  readonly ended: Deferred.Deferred<Ended>
}

export interface TurnState {
  readonly done: Deferred.Deferred<Turn, RealtimeError>
  readonly texts: Array<string>
  readonly calls: Array<AnsweredCall>
  readonly skipped: Array<string>
  responses: number
  status: ResponseStatus
  error: string | undefined
}

/** Everything that changes, in one record, touched only under the lock. */
export interface State {
  live: Live | undefined
  connections: number
  /** A response is pending: from our `response.create` (or the server's `response.created`) to its `response.done`. */
  active: boolean
  /** A `response.create` is owed once nothing is active and no call is running. */
  want: boolean
  /** The `event_id` of our `response.create` still waiting for its response. */
  pendingCreate: string | undefined
  /** Clock time (ms) the watchdog first saw the pending response: how old it is. */
  respondingSince: number | undefined
  /** The active response's id, once `response.created` named it. */
  responseId: string | undefined
  /** Ids of the last responses done: a `response.done` for one of them again is stale. */
  readonly finished: Array<string>
  running: number
  turn: TurnState | undefined
  failure: RealtimeError | undefined
  eventIds: number
  readonly reconnects: Array<{ readonly reason: ReconnectReason; readonly attempt: number }>
  responsesRequested: number
  inFlight: number
  maxInFlight: number
  callsRun: number
  callsSkipped: number
}

/** The state of a session that has not connected yet. */
export const initialState = (): State => ({
  live: undefined,
  connections: 0,
  active: false,
  want: false,
  pendingCreate: undefined,
  respondingSince: undefined,
  responseId: undefined,
  finished: [],
  running: 0,
  turn: undefined,
  failure: undefined,
  eventIds: 0,
  reconnects: [],
  responsesRequested: 0,
  inFlight: 0,
  maxInFlight: 0,
  callsRun: 0,
  callsSkipped: 0
})

/** How many finished response ids are kept to recognise a `response.done` sent again. */
const finishedKept = 64

/**
 * The label of each limit the Realtime API reports; any other name is "other". The name comes
 * from the server: taken as is, a server inventing names would add series without bound.
 */
const rateLimitLabels = new Map(["requests", "tokens"].map((name) => [name, Metrics.labelsFor(service, { name })]))
const otherRateLimitLabels = Metrics.labelsFor(service, { name: "other" })
const rateLimitLabelsOf = (name: string | undefined) =>
  (name === undefined ? undefined : rateLimitLabels.get(name)) ?? otherRateLimitLabels

const updateRateLimits = (event: RateLimitsUpdated) =>
  Effect.sync(() => {
    for (const limit of event.rate_limits) {
      const labels = rateLimitLabelsOf(limit.name)
      if (limit.limit !== undefined) Metrics.rateLimitLimit.unsafeUpdate(limit.limit, labels)
      if (limit.remaining !== undefined) Metrics.rateLimitRemaining.unsafeUpdate(limit.remaining, labels)
      if (limit.reset_seconds !== undefined) Metrics.rateLimitResetSeconds.unsafeUpdate(limit.reset_seconds, labels)
    }
  })

/** What the machine works with; all of it belongs to the session. */
export interface Context {
  readonly state: State
  readonly conversation: Conversation
  readonly observe: (event: SessionEvent) => Effect.Effect<void>
  readonly runCall: (call: FunctionCall) => Effect.Effect<string>
  /** Where function calls run: they outlive connections, not the session. */
  readonly calls: FiberSet.FiberSet<void>
  /** Runs an effect under the session's lock (for a call that finishes later). */
  readonly locked: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** A completed response proves the link: the reconnection backoff starts afresh. */
  readonly resetBackoff: Effect.Effect<void>
}

/** The machine's steps (see the module documentation for who holds the lock). */
export const make = (context: Context) => {
  const { calls, conversation, locked, observe, runCall, state } = context
  const nextEventId = () => `big3_${++state.eventIds}`
  const send = (event: ClientEvent) => state.live === undefined ? Effect.void : state.live.connection.send(event)
  const createItem = (item: ConversationItem) => send({ type: "conversation.item.create", event_id: nextEventId(), item })
  /** Our `response.create` is answered (done, refused or lost): one fewer in flight. */
  const answered = () => {
    state.inFlight = Math.max(0, state.inFlight - 1)
    state.pendingCreate = undefined
    state.respondingSince = undefined
  }

  /** The pending response is over (done, or lost): a `response.done` for it later is stale. */
  const responseOver = (responseId: string | undefined) => {
    state.active = false
    state.responseId = undefined
    if (responseId !== undefined) {
      state.finished.push(responseId)
      if (state.finished.length > finishedKept) state.finished.shift()
    }
    answered()
  }

  /** Sends the one `response.create` owed, when nothing is pending and no call is running. */
  const pump = Effect.suspend(() => {
    const live = state.live
    if (live === undefined || state.active || !state.want || state.running > 0 || state.failure !== undefined) {
      return Effect.void
    }
    const eventId = nextEventId()
    state.want = false
    state.active = true
    state.pendingCreate = eventId
    state.responsesRequested++
    state.inFlight++
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight)
    return Effect.zipRight(live.connection.send({ type: "response.create", event_id: eventId }), Queue.offer(live.traffic, undefined))
  })

  /** The turn had a response that failed, in the server's words. */
  const countFailed = (turn: TurnState, error: ErrorEvent["error"]) => {
    turn.responses++
    turn.status = "failed"
    turn.error = describeServerError(error)
  }

  /** Ends the turn in progress with what it has. */
  const endTurn = (turn: TurnState) => {
    state.turn = undefined
    return Deferred.succeed(turn.done, {
      text: turn.texts.join("\n"),
      calls: turn.calls.slice(),
      skipped: turn.skipped.slice(),
      responses: turn.responses,
      status: turn.status,
      error: turn.error
    })
  }

  /** Ends the turn once the model has nothing more to do for it. */
  const settleTurn = Effect.suspend(() => {
    const turn = state.turn
    if (turn === undefined || state.active || state.want || state.running > 0 || turn.responses === 0) return Effect.void
    return endTurn(turn)
  })

  const finishCall = (call: FunctionCall, output: string, ms: number) =>
    Effect.suspend(() => {
      // Without a connection, the output waits for the next replay.
      const items = conversation.answer(call.callId, output, state.live?.number ?? 0)
      state.running--
      state.want = true
      state.turn?.calls.push({ ...call, output, ms })
      return Effect.all([
        Effect.forEach(items, createItem, { discard: true }),
        observe({ _tag: "FunctionCallOutput", ...call, output, ms }),
        pump
      ], { discard: true })
    })

  const startCall = (call: FunctionCall) =>
    Effect.suspend(() => {
      state.running++
      state.callsRun++
      const run = Effect.gen(function*() {
        const startedAt = yield* Clock.currentTimeMillis
        const output = yield* runCall(call).pipe(
          Effect.catchAllDefect((defect) =>
            Effect.as(
              Effect.logError(`the function ${call.name} (${call.callId}) failed unexpectedly`, Cause.die(defect)),
              `the tool ${call.name} failed unexpectedly: ${messageOf(defect)}`
            )
          )
        )
        const ms = (yield* Clock.currentTimeMillis) - startedAt
        yield* locked(finishCall(call, output, ms))
      })
      return Effect.zipRight(observe({ _tag: "FunctionCall", ...call }), FiberSet.run(calls, run))
    })

  /**
   * Why a `response.done` is not the end of the pending response, if it is not: sent again for a
   * response already done, for another response than the active one, or with none active.
   * Taken as an answer, it would end the turn with a stale text, and every later turn with the
   * answer of the one before.
   */
  const staleDone = (event: ResponseDone): string | undefined => {
    const id = event.response.id
    if (id !== undefined && state.finished.includes(id)) return `${id} is done already`
    if (!state.active) return `no response is active`
    if (id !== undefined && state.responseId !== undefined && id !== state.responseId) {
      return `the active response is ${state.responseId}, not ${id}`
    }
    return undefined
  }

  const onResponseDone = (event: ResponseDone) =>
    Effect.gen(function*() {
      responseOver(event.response.id)
      // A completed response proves the link: the next drop starts the backoff afresh.
      yield* context.resetBackoff
      const turn = state.turn
      const status = event.response.status ?? "completed"
      if (turn !== undefined) {
        turn.responses++
        turn.status = status
        turn.error = status === "failed" ? describeServerError(event.response.status_details?.error ?? {}) : undefined
      }
      let callsSeen = 0
      let callsStarted = 0
      for (const item of event.response.output ?? []) {
        if (item.type === "message" && "content" in item && "role" in item && item.role === "assistant") {
          const text = messageText(item)
          if (text.length === 0) continue
          conversation.addAssistant(text)
          turn?.texts.push(text)
          yield* observe({ _tag: "AssistantText", text })
        } else if (item.type === "function_call" && "call_id" in item) {
          callsSeen++
          const call: FunctionCall = { callId: item.call_id, name: item.name, arguments: item.arguments }
          if (conversation.startCall(call, state.live?.number ?? 0)) {
            callsStarted++
            yield* startCall(call)
          } else {
            state.callsSkipped++
            turn?.skipped.push(call.callId)
            yield* Effect.logWarning(`the function call ${call.callId} (${call.name}) was already run; not running it again`)
            yield* observe({ _tag: "FunctionCallSkipped", ...call })
          }
        }
      }
      // Calls answered before: their outputs are in the conversation already; ask to go on.
      if (callsSeen > 0 && callsStarted === 0) state.want = true
      yield* observe({ _tag: "ResponseDone", status })
      yield* pump
      yield* settleTurn
    })

  const onError = (live: Live, event: ErrorEvent) =>
    Effect.suspend(() => {
      const error = event.error
      if (error.code === errorCodes.sessionExpired) {
        return Deferred.succeed(live.ended, { reason: "session_expired" as const, error: toRealtimeError(error) })
      }
      if (error.code === errorCodes.invalidApiKey || isQuotaExhausted(error)) {
        // Not retryable (a wrong key, or an account out of credit: every later response would
        // fail alike): the supervisor gives the session up instead of dialling again.
        return Deferred.succeed(live.ended, { reason: "dropped" as const, error: toRealtimeError(error) })
      }
      if (error.code === errorCodes.activeResponse) {
        // Another response is active: ours was refused; ask once more when that one is done.
        answered()
        state.active = true
        state.want = true
        return Effect.logInfo(`response.create refused (${error.message}); asking again when the active response is done`)
      }
      const report = Effect.zipRight(
        Effect.logWarning(`realtime server error: ${describeServerError(error)}`),
        observe({ _tag: "ServerError", type: error.type, code: error.code ?? undefined, message: error.message })
      )
      if (error.event_id !== undefined && error.event_id !== null && error.event_id === state.pendingCreate) {
        // Our response.create failed: no response will come for it.
        state.active = false
        answered()
        if (state.turn !== undefined) countFailed(state.turn, error)
        return Effect.zipRight(report, settleTurn)
      }
      if ((error.event_id === undefined || error.event_id === null) && state.active) {
        // About no event of ours, while a response is pending (a server_error in the middle of
        // it): no response.done need follow, so waiting would last until the silence bound.
        return Effect.zipRight(report, failResponse(error))
      }
      return report
    })

  /**
   * The pending response is lost: the turn waiting for it ends now with status `failed` and the
   * server's words, as a response that ends failed does; the session goes on.
   */
  const failResponse = (error: ErrorEvent["error"]) =>
    Effect.suspend(() => {
      responseOver(state.responseId)
      state.want = false
      const turn = state.turn
      if (turn === undefined) return Effect.void
      countFailed(turn, error)
      return endTurn(turn)
    })

  const onText = (live: Live, text: string) =>
    Effect.flatMap(Queue.offer(live.traffic, undefined), () => {
      const decoded = decodeServerEvent(text)
      if (decoded._tag === "Left") return Effect.logWarning(`realtime: ignoring a server event: ${decoded.left}`)
      const event = decoded.right
      return locked(Effect.suspend(() => {
        if (state.live !== live) return Effect.void
        switch (event._tag) {
          case "ResponseCreated": {
            state.active = true
            state.responseId = event.event.response.id
            return Effect.void
          }
          case "TextDelta":
            return observe({ _tag: "TextDelta", text: event.event.delta })
          case "ResponseDone": {
            const stale = staleDone(event.event)
            if (stale !== undefined) return Effect.logWarning(`realtime: ignoring a stale response.done: ${stale}`)
            const quota = responseQuotaExhausted(event.event)
            // Out of credit: every later response would fail alike. Ended as for the error event.
            if (quota !== undefined) return Deferred.succeed(live.ended, { reason: "dropped" as const, error: quota })
            return event.unreadable === undefined ? onResponseDone(event.event) : Effect.zipRight(
              Effect.logWarning(`realtime: a response.done could not be read; the response counts as failed: ${event.unreadable}`),
              onResponseDone(event.event)
            )
          }
          case "Error":
            return onError(live, event.event)
          case "RateLimits":
            return updateRateLimits(event.event)
          case "SessionCreated":
          case "Other":
            return Effect.void
        }
      }))
    })


  /** Starts a turn: the user's message, and a response owed. Fails when the session is lost. */
  const beginTurn = (text: string, done: Deferred.Deferred<Turn, RealtimeError>) =>
    Effect.suspend(() => {
      if (state.failure !== undefined) return Effect.fail(state.failure)
      state.turn = { done, texts: [], calls: [], skipped: [], responses: 0, status: "completed", error: undefined }
      conversation.addUser(text)
      state.want = true
      return Effect.zipRight(createItem(userMessage(text)), pump)
    })

  /** Takes an ended connection out; a response it was carrying for the turn is owed again. */
  const connectionLost = (live: Live) =>
    Effect.sync(() => {
      if (state.live !== live) return
      state.live = undefined
      if (state.active && state.turn !== undefined) state.want = true
      state.active = false
      state.inFlight = 0
      state.pendingCreate = undefined
      state.respondingSince = undefined
      state.responseId = undefined
    })

  /** The session is lost: the turn in progress and every later one fail with `error`. */
  const fail = (error: RealtimeError) =>
    Effect.suspend(() => {
      state.failure = error
      const turn = state.turn
      state.turn = undefined
      return turn === undefined ? Effect.void : Deferred.fail(turn.done, error)
    })

  return { nextEventId, pump, onText, beginTurn, connectionLost, fail }
}
