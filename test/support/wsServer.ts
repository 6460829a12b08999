/**
 * A bare WebSocket server for Realtime client tests, written on the `ws` package alone (not our
 * sandbox), so the client is tested against the protocol rather than against our emulator.
 * Each test scripts the server side by hand: wait for a client event, answer with server events,
 * drop or stall the connection.
 */
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Queue from "effect/Queue"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"
import { createHash } from "node:crypto"
import * as Http from "node:http"
import type * as Net from "node:net"
import { WebSocket, WebSocketServer } from "ws"

/** A client event as the server received it. */
export interface Received {
  readonly type: string
  readonly [key: string]: unknown
}

export interface ServerConnection {
  readonly number: number
  /** The upgrade request's headers (lower-case names). */
  readonly headers: Http.IncomingHttpHeaders
  /** Path and query of the upgrade request. */
  readonly path: string
  /** Every client event received so far, in order. */
  readonly received: Array<Received>
  /** The next client event not yet taken (waits for it). */
  readonly next: Effect.Effect<Received>
  /** Takes client events until one of `type` arrives; returns it. */
  readonly nextOf: (type: string) => Effect.Effect<Received>
  readonly send: (event: Readonly<Record<string, unknown>>) => Effect.Effect<void>
  /** Destroys the TCP connection without a close frame. */
  readonly drop: Effect.Effect<void>
  readonly close: (code: number, reason: string) => Effect.Effect<void>
  /** Resolves when the connection is gone. */
  readonly closed: Deferred.Deferred<{ readonly code: number }>
  /** Bytes sent but not yet taken by the peer's TCP stack: grows while the client reads nothing. */
  readonly bufferedAmount: () => number
}

export interface BareServer {
  /** `ws://127.0.0.1:<port>/v1/realtime` */
  readonly url: string
  /** Upgrade requests seen (accepted or not). */
  readonly upgrades: () => number
  /** TCP connections accepted, whatever came over them. */
  readonly tcpConnections: () => number
  /** "deaf" connections whose socket has closed. */
  readonly deafClosed: () => number
  /** The next accepted connection (waits for it). */
  readonly nextConnection: Effect.Effect<ServerConnection>
  readonly connections: Array<ServerConnection>
}

export interface BareServerOptions {
  /**
   * What to do with the n-th upgrade (1-based): accept it (default), answer an HTTP status, or
   * never answer ("hang"), or complete the handshake and then never read again ("deaf").
   */
  readonly onUpgrade?: ((n: number) => "accept" | "hang" | "deaf" | { readonly status: number; readonly body?: string }) | undefined
  /**
   * Whether each connection (a "deaf" one included) opens with `session.created`, as the real API
   * does (default true); false leaves the first event to the test.
   */
  readonly greet?: boolean | undefined
}

/** A client event: any JSON object with a string `type` (anything else fails the test loudly). */
const decodeReceived = Schema.decodeUnknownSync(
  Schema.parseJson(Schema.Struct({ type: Schema.String }, Schema.Record({ key: Schema.String, value: Schema.Unknown })))
)

const acceptKey = (key: string): string =>
  createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64")

/** One unmasked text frame (RFC 6455 §5.2), as a server sends it; payloads under 64 KiB. */
const textFrame = (text: string): Buffer => {
  const payload = Buffer.from(text, "utf8")
  const header = payload.length < 126
    ? Buffer.from([0x81, payload.length])
    : Buffer.from([0x81, 126, payload.length >> 8, payload.length & 0xff])
  return Buffer.concat([header, payload])
}

/** Starts the server on 127.0.0.1 (a free port); it stops, with every socket, when the scope closes. */
export const bareServer = (options: BareServerOptions = {}) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const greet = options.greet ?? true
      const connectionsQueue = yield* Queue.unbounded<ServerConnection>()
      const connections: Array<ServerConnection> = []
      const sockets = new Set<Net.Socket>()
      let upgrades = 0
      let tcpConnections = 0
      let deafClosed = 0
      const http = Http.createServer((_request, response) => {
        response.writeHead(404).end()
      })
      http.on("connection", (socket) => {
        tcpConnections++
        sockets.add(socket)
        socket.once("close", () => sockets.delete(socket))
      })
      const wss = new WebSocketServer({ noServer: true })
      http.on("upgrade", (request, socket, head) => {
        const n = ++upgrades
        const action = options.onUpgrade?.(n) ?? "accept"
        if (action === "hang") return
        if (action === "deaf") {
          // A handshake by hand, then silence: the peer never answers anything, a close included.
          const key = String(request.headers["sec-websocket-key"])
          socket.write(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
              `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`
          )
          if (greet) socket.write(textFrame(JSON.stringify(serverEvents.sessionCreated())))
          // Reads and ignores every frame (a close frame included); sees the client cut the socket.
          socket.on("data", () => undefined)
          // The HTTP server's sockets allow half-open connections: end ours when the client ends.
          socket.once("end", () => socket.end())
          socket.once("close", () => deafClosed++)
          return
        }
        if (typeof action === "object") {
          const body = action.body ?? JSON.stringify({ error: { message: "refused", type: "invalid_request_error" } })
          socket.end(
            `HTTP/1.1 ${action.status} Refused\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
              `Connection: close\r\n\r\n${body}`
          )
          return
        }
        wss.handleUpgrade(request, socket, head, (ws: WebSocket) => {
          const received: Array<Received> = []
          const inbox = Effect.runSync(Queue.unbounded<Received>())
          const closed = Deferred.unsafeMake<{ readonly code: number }>(FiberId.none)
          ws.on("message", (data) => {
            const event = decodeReceived(String(data))
            received.push(event)
            Queue.unsafeOffer(inbox, event)
          })
          ws.on("close", (code) => Deferred.unsafeDone(closed, Effect.succeed({ code })))
          ws.on("error", () => undefined)
          const take: Effect.Effect<Received> = Queue.take(inbox)
          const nextOf = (type: string): Effect.Effect<Received> =>
            Effect.flatMap(take, (event) => event.type === type ? Effect.succeed(event) : nextOf(type))
          const connection: ServerConnection = {
            number: connections.length + 1,
            headers: request.headers,
            path: request.url ?? "",
            received,
            next: take,
            nextOf,
            send: (event) => Effect.sync(() => ws.send(JSON.stringify(event))),
            drop: Effect.sync(() => ws.terminate()),
            close: (code, reason) => Effect.sync(() => ws.close(code, reason)),
            closed,
            bufferedAmount: () => ws.bufferedAmount
          }
          if (greet) ws.send(JSON.stringify(serverEvents.sessionCreated()))
          connections.push(connection)
          Queue.unsafeOffer(connectionsQueue, connection)
        })
      })
      const port = yield* Effect.async<number>((resume) => {
        http.listen(0, "127.0.0.1", () => {
          const address = http.address()
          resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0))
        })
      })
      const server: BareServer = {
        url: `ws://127.0.0.1:${port}/v1/realtime`,
        upgrades: () => upgrades,
        tcpConnections: () => tcpConnections,
        deafClosed: () => deafClosed,
        nextConnection: Queue.take(connectionsQueue),
        connections
      }
      return { server, http, wss, sockets }
    }),
    ({ http, sockets, wss }) =>
      Effect.async<void>((resume) => {
        for (const client of wss.clients) client.terminate()
        for (const socket of sockets) socket.destroy()
        http.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ server }) => server))

/** GA server events, as the real API sends them (only the fields a client reads, plus ids). */
export const serverEvents = {
  sessionCreated: (id = "sess_test") => ({
    type: "session.created",
    event_id: `event_${id}`,
    session: { id, object: "realtime.session", type: "realtime", model: "gpt-realtime", output_modalities: ["audio"] }
  }),
  textResponse: (id: string, text: string) => ({
    type: "response.done",
    event_id: `event_done_${id}`,
    response: {
      id,
      object: "realtime.response",
      status: "completed",
      output: [{
        id: `item_${id}`,
        object: "realtime.item",
        type: "message",
        role: "assistant",
        status: "completed",
        content: [{ type: "output_text", text }]
      }],
      usage: { total_tokens: 10, input_tokens: 5, output_tokens: 5 }
    }
  }),
  callResponse: (id: string, calls: ReadonlyArray<{ readonly callId: string; readonly name: string; readonly arguments: string }>) => ({
    type: "response.done",
    event_id: `event_done_${id}`,
    response: {
      id,
      object: "realtime.response",
      status: "completed",
      output: calls.map((call, i) => ({
        id: `item_${id}_${i}`,
        object: "realtime.item",
        type: "function_call",
        status: "completed",
        name: call.name,
        call_id: call.callId,
        arguments: call.arguments
      }))
    }
  }),
  error: (code: string | null, message: string, eventId: string | null = null, type = "invalid_request_error") => ({
    type: "error",
    event_id: "event_error",
    error: { type, code, message, param: null, event_id: eventId }
  })
}

/**
 * Waits, in real time, until `condition` holds (for tests on the `TestClock`, where the I/O
 * still happens in real time): polls every 5 ms, dies after `within` ms naming `what`.
 */
export const waitFor = (what: string, condition: () => boolean, within = 5000): Effect.Effect<void> =>
  Effect.suspend(() => {
    const deadline = Date.now() + within
    const poll: Effect.Effect<void> = Effect.suspend(() => {
      if (condition()) return Effect.void
      if (Date.now() > deadline) return Effect.dieMessage(`timed out waiting for ${what}`)
      return Effect.flatMap(
        Effect.async<void>((resume) => {
          const timer = setTimeout(() => resume(Effect.void), 5)
          return Effect.sync(() => clearTimeout(timer))
        }),
        () => poll
      )
    })
    return poll
  })

/** A real pause: only for checking that something does NOT happen within a short window. */
export const realPause = (millis: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

/**
 * On the `TestClock`: waits (in real time) until some fiber sleeps until `at` ms of test time,
 * i.e. the client has armed that timer, so that `TestClock.adjust` will fire it.
 */
export const waitForTimer = (at: number, within = 5000): Effect.Effect<void> =>
  Effect.suspend(() => {
    const deadline = Date.now() + within
    const poll: Effect.Effect<void> = Effect.flatMap(TestClock.sleeps(), (sleeps) => {
      if (Chunk.some(sleeps, (wake) => wake === at)) return Effect.void
      if (Date.now() > deadline) return Effect.dieMessage(`no timer armed for ${at} ms (armed: ${Chunk.join(Chunk.map(sleeps, String), ", ")})`)
      return Effect.zipRight(realPause(2), poll)
    })
    return poll
  })

/** `waitFor` with an effectful check. */
export const waitUntil = (what: string, check: Effect.Effect<boolean>, within = 5000): Effect.Effect<void> =>
  Effect.suspend(() => {
    const deadline = Date.now() + within
    const poll: Effect.Effect<void> = Effect.flatMap(check, (done) => {
      if (done) return Effect.void
      if (Date.now() > deadline) return Effect.dieMessage(`timed out waiting for ${what}`)
      return Effect.zipRight(realPause(5), poll)
    })
    return poll
  })
