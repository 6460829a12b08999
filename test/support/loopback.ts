/** Bare servers on loopback for tests and benches: a free port, and a server listening for a scope. */
import * as Effect from "effect/Effect"
import type * as http from "node:http"
import * as net from "node:net"

const portOf = (server: net.Server): number => {
  const address = server.address()
  return typeof address === "object" && address !== null ? address.port : 0
}

/** A port on 127.0.0.1 that was free a moment ago (bound, read, released): nothing listens there now. */
export const freePort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = portOf(server)
    server.close(() => resume(Effect.succeed(port)))
  })
})

/**
 * Listens with `server` on a free port of 127.0.0.1 (or on `port`) until the scope closes, then
 * drops its connections (a request left unanswered included) and closes it. Gives the port and
 * `http://127.0.0.1:<port>`.
 */
export const listen = (server: http.Server, port = 0) =>
  Effect.acquireRelease(
    Effect.async<{ readonly port: number; readonly url: string }>((resume) => {
      server.listen(port, "127.0.0.1", () => {
        const port = portOf(server)
        resume(Effect.succeed({ port, url: `http://127.0.0.1:${port}` }))
      })
    }),
    () =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )
