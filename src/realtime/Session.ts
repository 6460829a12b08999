/**
 * A Realtime session that outlives its connections.
 *
 * The session owns the conversation and the turn in progress (`Turns`, its state machine); a
 * connection only carries them. Every state change and every send happens under one lock, so an
 * item is either part of a replay or sent live, never both. Per connection, three fibers: the
 * socket (in `Connection`), the processor (frames in arrival order) and the watchdog (silence
 * while a response is pending). One supervisor fiber per session replaces a connection that
 * ended: it closes it, waits with the `network` policy's backoff (a `Resilience.retryDriver`,
 * reset by every completed response and by the loss, while idle, of a connection that lived at
 * least `websocket_message`, so a server that drops every connection before answering a turn, or
 * right after it opens, ends the session; a close that refuses what was sent ends it at once, as
 * its error is not retryable), connects through the protection pipeline
 * (`websocket_connect`, policy `network`), sends `session.update` again and replays the
 * conversation.
 *
 * @internal
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Errors from "../Errors.js"
import * as Metrics from "../Metrics.js"
import type { RetryDriver } from "../Resilience.js"
import * as Resilience from "../Resilience.js"
import type { Connection, OpenError, Settings } from "./Connection.js"
import { open, service } from "./Connection.js"
import { Conversation } from "./Conversation.js"
import type { FunctionCall, RealtimeError, Session, SessionOptions, Stats, Turn } from "./Domain.js"
import type { SessionConfig } from "./Protocol.js"
import { decodeServerEvent } from "./Protocol.js"
import { toRealtimeError } from "./ServerError.js"
import type { Ended, Live } from "./Turns.js"
import * as Turns from "./Turns.js"

/** What the session is built from (by `Realtime.make`). */
export interface Deps {
  readonly settings: Settings
  /** The protection pipeline of a connect: `websocket_connect` per attempt, policy `network`. */
  readonly protectConnect: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | OpenError, R>
  /** `websocket_message`: silence that makes a socket with a pending response dead. */
  readonly messageTimeout: Duration.Duration
  /**
   * `openai_api`: how long a response may take from `response.create` to `response.done`, events
   * or not; past it the connection is dead too (a server busy with anything but finishing).
   */
  readonly responseTimeout: Duration.Duration
  /** Paces reconnections (policy `network`). */
  readonly driver: RetryDriver
}

/**
 * Waits for the server's first event. The API opens every session with `session.created`; a bad
 * model or key, or a refusal, comes instead as an `error` event or a close, which fails the attempt
 * (retried or not as its error says). The caller bounds the wait (`websocket_connect`).
 */
const sessionCreated = (connection: Connection): Effect.Effect<void, RealtimeError> =>
  Effect.flatMap(connection.take, (frame) => {
    if (frame._tag === "Closed") return Effect.fail(frame.error)
    const decoded = decodeServerEvent(frame.text)
    if (decoded._tag === "Right" && decoded.right._tag === "SessionCreated") return Effect.void
    if (decoded._tag === "Right" && decoded.right._tag === "Error") return Effect.fail(toRealtimeError(decoded.right.event.error))
    const what = decoded._tag === "Left" ? decoded.left : decoded.right._tag === "Other" ? decoded.right.type : decoded.right._tag
    return Effect.zipRight(
      Effect.logWarning(`realtime: ignoring a server event before session.created: ${what}`),
      sessionCreated(connection)
    )
  })

/**
 * Opens a session in the current scope: the first connection (retried with policy `network`),
 * `session.update`, and the supervisor. Fails when the first connection cannot be made.
 */
export const make = (deps: Deps, options: SessionOptions): Effect.Effect<Session, RealtimeError, Scope.Scope> =>
  Effect.gen(function*() {
    const sessionScope = yield* Effect.scope
    const lock = yield* Effect.makeSemaphore(1)
    const locked = lock.withPermits(1)
    const turnLock = yield* Effect.makeSemaphore(1)
    const state = Turns.initialState()
    const sessionConfig: SessionConfig = {
      type: "realtime",
      output_modalities: ["text"],
      ...(options.instructions === undefined ? {} : { instructions: options.instructions }),
      ...(options.tools === undefined ? {} : { tools: options.tools, tool_choice: "auto" as const })
    }
    const conversation = new Conversation()
    const observe = options.onEvent ?? (() => Effect.void)
    const machine = Turns.make({
      state,
      conversation,
      observe,
      runCall: options.onFunctionCall ?? ((call: FunctionCall) => Effect.succeed(`no handler for the function ${call.name}`)),
      calls: yield* FiberSet.make<void>(),
      locked,
      resetBackoff: deps.driver.reset
    })

    // ---------------------------------------------------------------------------------------
    // Connections
    // ---------------------------------------------------------------------------------------

    /**
     * One connect attempt, done once the server's session exists: a connection in its own scope,
     * closed again if the attempt fails.
     */
    const openOnce = Effect.gen(function*() {
      const scope = yield* Scope.make()
      const connection = yield* open(deps.settings).pipe(
        Effect.tap(sessionCreated),
        Scope.extend(scope),
        Effect.onExit((exit) => Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void)
      )
      return { scope, connection }
    })
    const connect = deps.protectConnect(openOnce)

    /** The processor: frames in order; the `Closed` frame ends the connection. */
    const processFrames = (live: Live) =>
      Effect.forever(Effect.flatMap(live.connection.take, (frame) =>
        frame._tag === "Closed"
          ? Deferred.succeed(live.ended, { reason: "dropped", error: frame.error })
          : machine.onText(live, frame.text)))

    /** A connection that lived this long (`websocket_message`) proved the link. */
    const stableMillis = Duration.toMillis(deps.messageTimeout)
    const responseMillis = Duration.toMillis(deps.responseTimeout)
    const responseTimeoutLabels = Metrics.labelsFor(service, { operation: "openai_api" })
    /** The pending response's age, counted from when the watchdog first saw it pending. */
    const responseAge = Effect.map(Clock.currentTimeMillis, (now) => {
      if (state.respondingSince === undefined) state.respondingSince = now
      return now - state.respondingSince
    })
    // Built once: the watchdog re-arms it at every server event.
    const silenceBound = Resilience.timeoutAfter(deps.messageTimeout, "websocket_message", service)
    const dead = (live: Live, error: RealtimeError) => Effect.as(Deferred.succeed(live.ended, { reason: "stalled" as const, error }), false)
    /**
     * The watchdog: a pending response and no server event for `websocket_message`, or a response
     * not done within `openai_api` however many events come, → dead.
     */
    const watch = (live: Live): Effect.Effect<void> =>
      Effect.flatMap(
        Effect.suspend(() =>
          state.live === live && state.active
            ? Effect.flatMap(responseAge, (age) => {
              if (age < responseMillis) {
                return Queue.take(live.traffic).pipe(
                  silenceBound,
                  Effect.as(true),
                  Effect.catchTag("OperationTimeout", (error) => dead(live, error))
                )
              }
              Metrics.timeouts.unsafeUpdate(1, responseTimeoutLabels)
              return dead(live, Errors.operationTimeout({ operation: "openai_api", timeout: deps.responseTimeout, service }))
            })
            : Effect.as(Queue.take(live.traffic), true)
        ),
        (carryOn) => carryOn ? watch(live) : Effect.void
      )

    /** Makes `opened` the live connection: configures it, replays the conversation, goes on. */
    const install = (opened: { readonly scope: Scope.CloseableScope; readonly connection: Connection }) =>
      locked(Effect.gen(function*() {
        const live: Live = {
          number: ++state.connections,
          openedAt: yield* Clock.currentTimeMillis,
          connection: opened.connection,
          scope: opened.scope,
          traffic: yield* Queue.sliding<void>(1),
          ended: yield* Deferred.make<Ended>()
        }
        state.live = live
        yield* live.connection.send({ type: "session.update", event_id: machine.nextEventId(), session: sessionConfig })
        for (const item of conversation.replay(live.number)) {
          yield* live.connection.send({ type: "conversation.item.create", event_id: machine.nextEventId(), item })
        }
        yield* Effect.forkIn(processFrames(live), live.scope)
        yield* Effect.forkIn(watch(live), live.scope)
        yield* machine.pump
        return live
      }))

    /** Closes an ended connection and takes it out of the session. */
    const retire = (live: Live, ended: Ended) =>
      Effect.gen(function*() {
        yield* ended.reason === "session_expired" ? live.connection.close : live.connection.terminate
        yield* Scope.close(live.scope, Exit.void)
        yield* locked(machine.connectionLost(live))
      })

    const lost = yield* Deferred.make<never, RealtimeError>()
    /** The session is lost: the turn in progress, every later one and `lost` fail with `error`. */
    const giveUp = (error: RealtimeError) => Effect.zipRight(locked(machine.fail(error)), Deferred.fail(lost, error))

    const supervise = (first: Live): Effect.Effect<void> =>
      Effect.gen(function*() {
        let live = first
        while (true) {
          const ended = yield* Deferred.await(live.ended)
          const endedAt = yield* Clock.currentTimeMillis
          yield* retire(live, ended)
          // A connection lost while idle after living a while proves nothing against the link:
          // it does not use up the attempts. One that ends sooner counts, idle or not, or a
          // server that closes every connection at once would be called again forever.
          const idle = state.turn === undefined && state.running === 0
          if (idle && endedAt - live.openedAt >= stableMillis) yield* deps.driver.reset
          const wait = yield* deps.driver.next(ended.error)
          if (Option.isNone(wait)) return yield* giveUp(ended.error)
          yield* Effect.sleep(wait.value)
          const opened = yield* Effect.either(connect)
          if (opened._tag === "Left") return yield* giveUp(opened.left)
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
      turnLock.withPermits(1)(Effect.gen(function*() {
        const done = yield* Deferred.make<Turn, RealtimeError>()
        yield* locked(machine.beginTurn(text, done))
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

    return { send: sendTurn, stats, lost: Deferred.await(lost) } satisfies Session
  })
