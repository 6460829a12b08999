/**
 * A Realtime session that outlives its connections.
 *
 * The session owns the conversation and the turn in progress; a connection only carries them.
 * Every state change and every send happens under one lock, so an item is either part of a
 * replay or sent live, never both, and the state is one record (`State`) rather than scattered
 * variables. Three fibers per connection: the socket (in `Connection`), the processor (frames in
 * arrival order) and the watchdog (silence while a response is pending). One supervisor fiber
 * per session replaces a connection that ended: it closes it, waits with the `network` policy's
 * backoff (a `Resilience.retryDriver`, reset by every completed response, so a server that drops
 * every connection before answering ends the session), connects through the protection pipeline
 * (`websocket_connect`, policy `network`), sends `session.update` again and replays the
 * conversation.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Metrics from "../Metrics.js"
import type { RetryDriver } from "../Resilience.js"
import * as Resilience from "../Resilience.js"
import type { Connection, OpenError, Settings } from "./Connection.js"
import { open, service } from "./Connection.js"
import { Conversation } from "./Conversation.js"
import type {
  AnsweredCall,
  FunctionCall,
  RealtimeError,
  ReconnectReason,
  Session,
  SessionOptions,
  Stats,
  Turn
} from "./Domain.js"
import { SessionExpired } from "./Domain.js"
import type { ClientEvent, ConversationItem, ErrorEvent, RateLimitsUpdated, ResponseDone, ResponseStatus, SessionConfig } from "./Protocol.js"
import { decodeServerEvent, errorCodes, messageText, userMessage } from "./Protocol.js"

/** What the session is built from (by `Realtime.make`). */
export interface Deps {
  readonly settings: Settings
  /** The protection pipeline of a connect: `websocket_connect` per attempt, policy `network`. */
  readonly protectConnect: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | OpenError, R>
  /** `websocket_message`: silence that makes a socket with a pending response dead. */
  readonly messageTimeout: Duration.Duration
  /** Paces reconnections (policy `network`). */
  readonly driver: RetryDriver
}

interface Ended {
  readonly reason: ReconnectReason
  readonly error: RealtimeError
}

/** A connection in use, with what the session keeps per connection. */
interface Live {
  readonly number: number
  readonly connection: Connection
  readonly scope: Scope.CloseableScope
  /** Poked by every server event and by each `response.create`: the watchdog's clock. */
  readonly traffic: Queue.Queue<void>
  readonly ended: Deferred.Deferred<Ended>
}

interface TurnState {
  readonly done: Deferred.Deferred<Turn, RealtimeError>
  readonly texts: Array<string>
  readonly calls: Array<AnsweredCall>
  readonly skipped: Array<string>
  responses: number
  status: ResponseStatus
  error: string | undefined
}

/** Everything that changes, in one record, touched only under the lock. */
interface State {
  live: Live | undefined
  connections: number
  /** A response is pending: from our `response.create` (or the server's `response.created`) to its `response.done`. */
  active: boolean
  /** A `response.create` is owed once nothing is active and no call is running. */
  want: boolean
  /** The `event_id` of our `response.create` still waiting for its response. */
  pendingCreate: string | undefined
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

const errorMessage = (error: ErrorEvent["error"]): string =>
  `${error.type}${error.code ? ` (${error.code})` : ""}: ${error.message}`

const updateRateLimits = (event: RateLimitsUpdated) =>
  Effect.sync(() => {
    for (const limit of event.rate_limits) {
      const labels = Metrics.labelsFor(service, { name: limit.name ?? "unknown" })
      if (limit.limit !== undefined) Metrics.rateLimitLimit.unsafeUpdate(limit.limit, labels)
      if (limit.remaining !== undefined) Metrics.rateLimitRemaining.unsafeUpdate(limit.remaining, labels)
      if (limit.reset_seconds !== undefined) Metrics.rateLimitResetSeconds.unsafeUpdate(limit.reset_seconds, labels)
    }
  })

/**
 * Opens a session in the current scope: the first connection (retried with policy `network`),
 * `session.update`, and the supervisor. Fails when the first connection cannot be made.
 */
export const make = (deps: Deps, options: SessionOptions): Effect.Effect<Session, RealtimeError, Scope.Scope> =>
  Effect.gen(function*() {
    const sessionScope = yield* Effect.scope
    const lock = yield* Effect.makeSemaphore(1)
    const turns = yield* Effect.makeSemaphore(1)
    const calls = yield* FiberSet.make<void>()
    const conversation = new Conversation()
    const observe = options.onEvent ?? (() => Effect.void)
    const runCall = options.onFunctionCall ??
      ((call: FunctionCall) => Effect.succeed(`no handler for the function ${call.name}`))
    const sessionConfig: SessionConfig = {
      type: "realtime",
      output_modalities: ["text"],
      ...(options.instructions === undefined ? {} : { instructions: options.instructions }),
      ...(options.tools === undefined ? {} : { tools: options.tools, tool_choice: "auto" as const })
    }
    const state: State = {
      live: undefined,
      connections: 0,
      active: false,
      want: false,
      pendingCreate: undefined,
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
    }
    const locked = lock.withPermits(1)
    const nextEventId = () => `big3_${++state.eventIds}`
    const send = (event: ClientEvent) => state.live === undefined ? Effect.void : state.live.connection.send(event)
    const createItem = (item: ConversationItem) => send({ type: "conversation.item.create", event_id: nextEventId(), item })
    /** Our `response.create` is answered (done, refused or lost): one fewer in flight. */
    const answered = () => {
      state.inFlight = Math.max(0, state.inFlight - 1)
      state.pendingCreate = undefined
    }

    // ---------------------------------------------------------------------------------------
    // The turn's state machine (all under the lock)
    // ---------------------------------------------------------------------------------------

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

    /** Ends the turn once the model has nothing more to do for it. */
    const settleTurn = Effect.suspend(() => {
      const turn = state.turn
      if (turn === undefined || state.active || state.want || state.running > 0 || turn.responses === 0) return Effect.void
      state.turn = undefined
      return Deferred.succeed(turn.done, {
        text: turn.texts.join("\n"),
        calls: turn.calls.slice(),
        skipped: turn.skipped.slice(),
        responses: turn.responses,
        status: turn.status,
        error: turn.error
      })
    })

    const finishCall = (call: FunctionCall, output: string, ms: number) =>
      Effect.suspend(() => {
        conversation.answer(call.callId, output)
        state.running--
        state.want = true
        state.turn?.calls.push({ ...call, output, ms })
        return Effect.all([
          send({
            type: "conversation.item.create",
            event_id: nextEventId(),
            item: { type: "function_call_output", call_id: call.callId, output }
          }),
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
                `the tool ${call.name} failed unexpectedly: ${defect instanceof Error ? defect.message : String(defect)}`
              )
            )
          )
          const ms = (yield* Clock.currentTimeMillis) - startedAt
          yield* locked(finishCall(call, output, ms))
        })
        return Effect.zipRight(observe({ _tag: "FunctionCall", ...call }), FiberSet.run(calls, run))
      })

    const onResponseDone = (event: ResponseDone) =>
      Effect.gen(function*() {
        state.active = false
        answered()
        // A completed response proves the link: the next drop starts the backoff afresh.
        yield* deps.driver.reset
        const turn = state.turn
        const status = event.response.status ?? "completed"
        if (turn !== undefined) {
          turn.responses++
          turn.status = status
          const failure = event.response.status_details?.error
          turn.error = status === "failed"
            ? `${failure?.type ?? "error"}${failure?.code ? ` (${failure.code})` : ""}${failure?.message ? `: ${failure.message}` : ""}`
            : undefined
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
            if (conversation.startCall(call)) {
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
          return Deferred.succeed(live.ended, {
            reason: "session_expired",
            error: new SessionExpired({ service, message: errorMessage(error) })
          })
        }
        if (error.code === errorCodes.activeResponse) {
          // Another response is active: ours was refused; ask once more when that one is done.
          answered()
          state.active = true
          state.want = true
          return Effect.logInfo(`response.create refused (${error.message}); asking again when the active response is done`)
        }
        const report = Effect.zipRight(
          Effect.logWarning(`realtime server error: ${errorMessage(error)}`),
          observe({ _tag: "ServerError", type: error.type, code: error.code ?? undefined, message: error.message })
        )
        if (error.event_id !== undefined && error.event_id !== null && error.event_id === state.pendingCreate) {
          // Our response.create failed: no response will come for it.
          state.active = false
          answered()
          if (state.turn !== undefined) {
            state.turn.responses++
            state.turn.status = "failed"
            state.turn.error = errorMessage(error)
          }
          return Effect.zipRight(report, settleTurn)
        }
        return report
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
              return Effect.void
            }
            case "TextDelta":
              return observe({ _tag: "TextDelta", text: event.event.delta })
            case "ResponseDone":
              return onResponseDone(event.event)
            case "Error":
              return onError(live, event.event)
            case "RateLimits":
              return updateRateLimits(event.event)
            case "Other":
              return Effect.void
          }
        }))
      })

    // ---------------------------------------------------------------------------------------
    // Connections
    // ---------------------------------------------------------------------------------------

    /** One connect attempt: a connection in its own scope, closed again if the attempt fails. */
    const openOnce = Effect.gen(function*() {
      const scope = yield* Scope.make()
      const connection = yield* open(deps.settings).pipe(
        Scope.extend(scope),
        Effect.onExit((exit) => Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void)
      )
      return { scope, connection }
    })
    const connect = deps.protectConnect(openOnce)

    /** The processor: frames in order; the `Closed` frame ends the connection. */
    const processFrames = (live: Live) =>
      Effect.forever(Effect.flatMap(Queue.take(live.connection.inbox), (frame) =>
        frame._tag === "Closed"
          ? Deferred.succeed(live.ended, { reason: "dropped", error: frame.error })
          : onText(live, frame.text)))

    /** The watchdog: a pending response and no server event for `websocket_message` → dead. */
    const watch = (live: Live): Effect.Effect<void> =>
      Effect.flatMap(
        state.live === live && state.active
          ? Queue.take(live.traffic).pipe(
            Resilience.timeoutAfter(deps.messageTimeout, "websocket_message", service),
            Effect.as(true),
            Effect.catchTag("OperationTimeout", (error) =>
              Effect.as(Deferred.succeed(live.ended, { reason: "stalled", error }), false))
          )
          : Effect.as(Queue.take(live.traffic), true),
        (carryOn) => carryOn ? watch(live) : Effect.void
      )

    /** Makes `opened` the live connection: configures it, replays the conversation, goes on. */
    const install = (opened: { readonly scope: Scope.CloseableScope; readonly connection: Connection }) =>
      locked(Effect.gen(function*() {
        const live: Live = {
          number: ++state.connections,
          connection: opened.connection,
          scope: opened.scope,
          traffic: yield* Queue.sliding<void>(1),
          ended: yield* Deferred.make<Ended>()
        }
        state.live = live
        yield* live.connection.send({ type: "session.update", event_id: nextEventId(), session: sessionConfig })
        for (const item of conversation.replay()) {
          yield* live.connection.send({ type: "conversation.item.create", event_id: nextEventId(), item })
        }
        yield* Effect.forkIn(processFrames(live), live.scope)
        yield* Effect.forkIn(watch(live), live.scope)
        yield* pump
        return live
      }))

    /** Takes the ended connection out; a response it was carrying is owed again. */
    const retire = (live: Live, ended: Ended) =>
      Effect.gen(function*() {
        yield* ended.reason === "session_expired" ? live.connection.close : live.connection.terminate
        yield* Scope.close(live.scope, Exit.void)
        yield* locked(Effect.sync(() => {
          if (state.live !== live) return
          state.live = undefined
          if (state.active && state.turn !== undefined) state.want = true
          state.active = false
          state.inFlight = 0
          state.pendingCreate = undefined
        }))
      })

    const fail = (error: RealtimeError) =>
      locked(Effect.suspend(() => {
        state.failure = error
        const turn = state.turn
        state.turn = undefined
        return turn === undefined ? Effect.void : Deferred.fail(turn.done, error)
      }))

    const supervise = (first: Live): Effect.Effect<void> =>
      Effect.gen(function*() {
        let live = first
        while (true) {
          const ended = yield* Deferred.await(live.ended)
          const endedAt = yield* Clock.currentTimeMillis
          yield* retire(live, ended)
          const wait = yield* deps.driver.next(ended.error)
          if (Option.isNone(wait)) return yield* fail(ended.error)
          yield* Effect.sleep(wait.value)
          const opened = yield* Effect.either(connect)
          if (opened._tag === "Left") return yield* fail(opened.left)
          live = yield* install(opened.right)
          const attempt = yield* deps.driver.attempt
          state.reconnects.push({ reason: ended.reason, attempt })
          Metrics.reconnects.unsafeUpdate(1, Metrics.labelsFor(service, { reason: ended.reason }))
          yield* Effect.logInfo(`realtime reconnected after ${ended.reason} (attempt ${attempt}); conversation replayed`)
          yield* observe({
            _tag: "Reconnected",
            reason: ended.reason,
            attempt,
            connection: live.number,
            cause: ended.error.message,
            downMs: (yield* Clock.currentTimeMillis) - endedAt
          })
        }
      })

    const first = yield* install(yield* connect)
    yield* observe({ _tag: "Connected", connection: first.number })
    const supervisor = yield* Effect.forkIn(supervise(first), sessionScope)
    // Runs before the supervisor and the calls are interrupted (finalizers run in reverse).
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* Fiber.interrupt(supervisor)
        const live = state.live
        if (live !== undefined) {
          yield* live.connection.close
          yield* Scope.close(live.scope, Exit.void)
        }
      })
    )

    const sendTurn = (text: string) =>
      turns.withPermits(1)(Effect.gen(function*() {
        const done = yield* Deferred.make<Turn, RealtimeError>()
        yield* locked(Effect.suspend(() => {
          if (state.failure !== undefined) return Effect.fail(state.failure)
          state.turn = { done, texts: [], calls: [], skipped: [], responses: 0, status: "completed", error: undefined }
          conversation.addUser(text)
          state.want = true
          return Effect.zipRight(createItem(userMessage(text)), pump)
        }))
        return yield* Deferred.await(done).pipe(
          Effect.onInterrupt(() =>
            locked(Effect.sync(() => {
              if (state.turn?.done === done) state.turn = undefined
            }))
          )
        )
      }))

    const stats: Effect.Effect<Stats> = Effect.sync(() => ({
      connections: state.connections,
      reconnects: state.reconnects.slice(),
      responsesRequested: state.responsesRequested,
      maxResponsesInFlight: state.maxInFlight,
      callsRun: state.callsRun,
      callsSkipped: state.callsSkipped
    }))

    return { send: sendTurn, stats } satisfies Session
  })
