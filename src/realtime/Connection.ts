/**
 * One WebSocket connection to the Realtime API, on `@effect/platform`'s `Socket`.
 *
 * `open` resolves once the socket is open (the caller bounds it with `websocket_connect`); from
 * then on every frame is there to `take` in arrival order, followed by one `Closed` frame saying
 * why the socket ended. Frames not taken yet are bounded: past `maxQueuedChars` the socket stops
 * reading (TCP pushes back on the server) until the reader has caught up. Sends never block: a send on a socket that is going away is dropped (the
 * session keeps everything it sent and replays it on the next connection). `close` sends a close
 * frame and waits for the peer's, bounded by `websocket_close`, then cuts the socket.
 *
 * @internal
 */
import * as Socket from "@effect/platform/Socket"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Errors from "../Errors.js"
import * as Resilience from "../Resilience.js"
import { ErrorEvent, NodeWebSocket } from "./NodeWebSocket.js"
import type { ClientEvent } from "./Protocol.js"

/** The service named in errors, logs and metrics. */
export const service = "openai_realtime"

export interface Settings {
  /** The full URL, `?model=` included. Holds no secret. */
  readonly url: string
  /** Sent with the upgrade request; holds the key, so never logged. */
  readonly headers: Readonly<Record<string, string>>
  /** How long `close` waits for the peer's close frame (`websocket_close`). */
  readonly closeTimeout: Duration.Duration
  /**
   * Applied to everything the server sends before anyone reads it: defence in depth against an
   * upstream that echoes the key in an error.
   */
  readonly scrub: (text: string) => string
}

/** What arrives on a connection, in order: text frames, then why it ended. */
export type Frame =
  | { readonly _tag: "Text"; readonly text: string }
  | { readonly _tag: "Closed"; readonly error: Errors.NetworkError | Errors.InvalidRequest }

export interface Connection {
  /** The next frame, in arrival order (waits for it). */
  readonly take: Effect.Effect<Frame>
  /** Sends one event; dropped when the socket is already going away. */
  readonly send: (event: ClientEvent) => Effect.Effect<void>
  /** Closes with code 1000, waits for the peer within `closeTimeout`, then cuts the socket. */
  readonly close: Effect.Effect<void>
  /** Cuts the socket without the closing handshake (a dead socket would not answer it). */
  readonly terminate: Effect.Effect<void>
}

/** Text of frames received and not taken yet past which the socket stops reading, and where it reads again. */
export const maxQueuedChars = 4 * 1024 * 1024
const resumeQueuedChars = 1024 * 1024

/** Failures of `open`: transport trouble, or the server's HTTP answer to the upgrade. */
export type OpenError = Errors.Big3Error

const where = (url: string): string => {
  const parsed = new URL(url)
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
}

// The close reason and the transport's message come from the peer: scrubbed like its frames.
const describeClose = (error: Socket.SocketError, scrub: (text: string) => string): string =>
  scrub(
    error.reason === "Close"
      ? `the Realtime socket closed (code ${error.code}${error.closeReason ? `: ${error.closeReason}` : ""})`
      : `the Realtime socket failed (${error.reason})${error.cause instanceof ErrorEvent ? `: ${error.cause.message}` : ""}`
  )

/**
 * RFC 6455 close codes that refuse what the peer was sent: 1003 data it cannot accept, 1007 data
 * inconsistent with its type, 1008 a policy violation, 1009 a message too big. The same events
 * replayed on a new connection would be refused again.
 */
const refusingCodes: ReadonlySet<number> = new Set([1003, 1007, 1008, 1009])

/** Why the socket ended, as the `Closed` frame carries it. */
const closedError = (exit: Exit.Exit<void, Socket.SocketError>, scrub: (text: string) => string) => {
  if (!(Exit.isFailure(exit) && exit.cause._tag === "Fail" && Socket.isSocketError(exit.cause.error))) {
    return new Errors.NetworkError({ service, message: "the Realtime socket closed" })
  }
  const error = exit.cause.error
  const message = describeClose(error, scrub)
  return error.reason === "Close" && refusingCodes.has(error.code)
    ? new Errors.InvalidRequest({ service, message: `${message}: the server refuses what was sent; not retried` })
    : new Errors.NetworkError({ service, message })
}

/**
 * Opens a connection in the current scope: closing the scope cuts the socket. Fails with the
 * HTTP error of a refused upgrade (`Errors.fromHttp`: 401 → `Unauthorized`, 429 → `RateLimited`,
 * 5xx → `ServiceUnavailable`) or a `NetworkError`.
 */
export const open = (settings: Settings): Effect.Effect<Connection, OpenError, Scope.Scope> =>
  Effect.gen(function*() {
    let created: NodeWebSocket | undefined
    const construct = (url: string, protocols?: string | Array<string> | undefined): globalThis.WebSocket => {
      created = new NodeWebSocket(url, protocols, settings.headers)
      return created
    }
    // Our own timeout (websocket_connect, through the protection pipeline) bounds the opening.
    const socket = yield* Socket.makeWebSocket(settings.url, {
      closeCodeIsError: () => true,
      openTimeout: Duration.infinity
    }).pipe(Effect.provideService(Socket.WebSocketConstructor, construct))

    const inbox = yield* Queue.unbounded<Frame>()
    // The queue itself is unbounded (an offer from a socket callback cannot wait): what bounds it
    // is the socket not reading while `queued` is past the mark.
    const flow = { queued: 0, paused: false }
    const opened = yield* Deferred.make<void>()
    const running = yield* socket.runRaw((data) => {
      const text = settings.scrub(typeof data === "string" ? data : new TextDecoder().decode(data))
      flow.queued += text.length
      inbox.unsafeOffer({ _tag: "Text", text })
      if (!flow.paused && flow.queued > maxQueuedChars) {
        flow.paused = true
        created?.pause()
      }
    }, { onOpen: Deferred.succeed(opened, undefined) }).pipe(Effect.forkScoped)
    const take = Effect.map(Queue.take(inbox), (frame) => {
      if (frame._tag === "Text") flow.queued -= frame.text.length
      if (flow.paused && flow.queued <= resumeQueuedChars) {
        flow.paused = false
        created?.resume()
      }
      return frame
    })

    const refused = (error: Socket.SocketError): OpenError => {
      const rejection = created?.rejection
      if (rejection !== undefined) {
        return Errors.fromHttp({ service, status: rejection.status, headers: rejection.headers, body: settings.scrub(rejection.body) })
      }
      return new Errors.NetworkError({ service, message: `could not connect to ${where(settings.url)}: ${describeClose(error, settings.scrub)}` })
    }
    yield* Effect.raceFirst(
      Deferred.await(opened),
      Effect.flatMap(Fiber.join(running), () =>
        Effect.fail(new Errors.NetworkError({ service, message: `${where(settings.url)} closed before the socket opened` })))
    ).pipe(Effect.catchIf(Socket.isSocketError, (error) => Effect.fail(refused(error))))

    // One `Closed` frame after the last text frame, whatever ended the socket.
    yield* Fiber.await(running).pipe(
      Effect.flatMap((exit) =>
        Exit.isInterrupted(exit) ? Effect.void : inbox.offer({ _tag: "Closed", error: closedError(exit, settings.scrub) })
      ),
      Effect.forkScoped
    )

    const write = yield* socket.writer
    // A write waits while the socket is not open; racing the socket's end keeps it from waiting
    // forever. Interruptible, so that the race's loser can be stopped inside a finalizer too.
    const writeOrEnd = (chunk: string | Socket.CloseEvent) =>
      Effect.raceFirst(write(chunk), Effect.asVoid(Fiber.await(running))).pipe(
        Effect.interruptible,
        Effect.catchAll((error) => Effect.logDebug(`realtime send dropped: ${error.message}`))
      )

    const close = Effect.gen(function*() {
      if (running.unsafePoll() !== null) return
      yield* writeOrEnd(new Socket.CloseEvent(1000, "client closing"))
      yield* Fiber.await(running).pipe(
        Effect.interruptible,
        Resilience.timeoutAfter(settings.closeTimeout, "websocket_close", service),
        Effect.catchTag("OperationTimeout", (error) =>
          Effect.zipRight(
            Effect.logWarning(`${error.message}; closing the socket without the closing handshake`),
            Effect.sync(() => created?.terminate())
          ))
      )
    })

    return {
      take,
      send: (event) => writeOrEnd(JSON.stringify(event)),
      close,
      terminate: Effect.sync(() => created?.terminate())
    } satisfies Connection
  })
