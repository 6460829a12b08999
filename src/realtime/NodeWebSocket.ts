/**
 * A standard `WebSocket` over the `ws` package, for `@effect/platform`'s `Socket`.
 *
 * `Socket.makeWebSocket` builds its sockets with a `(url, protocols)` constructor, and the
 * standard `WebSocket` cannot send headers; the Realtime API wants `Authorization: Bearer`. So
 * this class opens a `ws` client with the headers and re-dispatches its events as DOM events
 * (`open`, `message` with string or `Uint8Array` data, `close` with code and reason, `error`).
 *
 * When the server refuses the upgrade, the HTTP answer (status, headers, a bounded body) is kept
 * in `rejection`, so the client can map it like any HTTP error (401 → `Unauthorized`, 429 with
 * `Retry-After` → `RateLimited`, …) instead of a bare "unexpected server response".
 *
 * @internal
 */
import type * as Http from "node:http"
import * as WS from "ws"

/** The `close` event: code and reason, as the standard `CloseEvent` carries them. */
export class CloseEvent extends Event {
  constructor(readonly code: number, readonly reason: string, readonly wasClean: boolean) {
    super("close")
  }
}

/** The `error` event, carrying the underlying error's message. */
export class ErrorEvent extends Event {
  readonly message: string
  constructor(readonly error: Error) {
    super("error")
    this.message = error.message
  }
}

/** An upgrade the server answered with a plain HTTP response instead of switching protocols. */
export interface Rejection {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

const maxRejectionBody = 4096

const headerRecord = (headers: Http.IncomingHttpHeaders): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(", ") : value
  }
  return out
}

const toBuffer = (data: WS.RawData): Buffer =>
  Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)

export class NodeWebSocket extends EventTarget implements globalThis.WebSocket {
  readonly CONNECTING = 0
  readonly OPEN = 1
  readonly CLOSING = 2
  readonly CLOSED = 3
  binaryType: "blob" | "arraybuffer" = "arraybuffer"
  onclose = null
  onerror = null
  onmessage = null
  onopen = null
  /** The HTTP answer when the server refused the upgrade. */
  rejection: Rejection | undefined = undefined
  private readonly socket: WS.WebSocket

  constructor(url: string, protocols: string | Array<string> | undefined, headers: Readonly<Record<string, string>>) {
    super()
    this.socket = new WS.WebSocket(url, protocols, { headers: { ...headers } })
    this.socket.on("open", () => this.dispatchEvent(new Event("open")))
    this.socket.on("message", (data, isBinary) => {
      const bytes = toBuffer(data)
      this.dispatchEvent(new MessageEvent("message", { data: isBinary ? new Uint8Array(bytes) : bytes.toString("utf8") }))
    })
    this.socket.on("close", (code, reason) => this.dispatchEvent(new CloseEvent(code, reason.toString("utf8"), code === 1000)))
    // Always listened to: an EventEmitter "error" without a listener would crash the process.
    this.socket.on("error", (error) => this.dispatchEvent(new ErrorEvent(error)))
    this.socket.on("unexpected-response", (_request, response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => {
        if (body.length < maxRejectionBody) body += chunk.slice(0, maxRejectionBody - body.length)
      })
      response.on("end", () => {
        this.rejection = { status: response.statusCode ?? 0, headers: headerRecord(response.headers), body }
        // Aborts the handshake: `ws` then emits "error" and "close".
        this.socket.terminate()
      })
    })
  }

  get bufferedAmount(): number {
    return this.socket.bufferedAmount
  }
  get extensions(): string {
    return this.socket.extensions
  }
  get protocol(): string {
    return this.socket.protocol
  }
  get readyState(): number {
    return this.socket.readyState
  }
  get url(): string {
    return this.socket.url
  }

  close(code?: number, reason?: string): void {
    this.socket.close(code, reason)
  }

  /** Stops reading from the socket (a few frames already read may still arrive): backpressure. */
  pause(): void {
    this.socket.pause()
  }

  /** Reads from the socket again after `pause`. */
  resume(): void {
    this.socket.resume()
  }

  /** Closes at once, without the closing handshake (for a peer that does not answer a close). */
  terminate(): void {
    this.socket.terminate()
  }

  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    this.socket.send(data)
  }
}
