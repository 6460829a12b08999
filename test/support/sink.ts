/**
 * A bare events server on loopback, written here rather than taken from our Sandbox so that a
 * client is not tuned to our own server: each POST body is kept, and answered 200 with the body
 * (as the observability server echoes the event), after an optional delay. Closed with its scope.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as http from "node:http"
import { listen } from "./loopback.js"

export interface Sink {
  /** `http://127.0.0.1:<port>/events` */
  readonly url: string
  /** Every request body received, in arrival order. */
  readonly bodies: Array<string>
  /** How many times each event id arrived (a body's top-level `id`). */
  readonly received: Map<string, number>
}

/** `port`: a server coming up where a client has been failing to connect (default: a free port). */
export const eventsSink = (
  options: { readonly delayMillis?: number; readonly port?: number } = {}
): Effect.Effect<Sink, never, Scope.Scope> => {
  const bodies: Array<string> = []
  const received = new Map<string, number>()
  const server = http.createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8")
      const answer = () => {
        bodies.push(body)
        const id: unknown = JSON.parse(body).id
        if (typeof id === "string") received.set(id, (received.get(id) ?? 0) + 1)
        response.writeHead(200, { "content-type": "application/json" })
        response.end(body)
      }
      const delay = options.delayMillis ?? 0
      if (delay > 0) setTimeout(answer, delay)
      else answer()
    })
  })
  return Effect.map(listen(server, options.port), ({ url }) => ({ url: `${url}/events`, bodies, received }))
}
