/**
 * The runtime's default `HttpClient`, loaded on its first request: it speaks HTTP like the undici
 * client it loads (a bare server on loopback), and a connection refused is the client's own
 * `RequestError`, not a defect.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as http from "node:http"
import { lazyUndici } from "../src/runtime/httpClient.js"
import { freePort, listen } from "./support/loopback.js"

describe("Runtime HttpClient", () => {
  it.scopedLive("loads undici on the first request and answers it; later requests reuse it", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const { url } = yield* listen(http.createServer((request, response) => {
        seen.push(`${request.method} ${request.url}`)
        response.writeHead(200, { "content-type": "application/json" })
        response.end(JSON.stringify({ path: request.url }))
      }))
      const client = yield* HttpClient.HttpClient
      const first = yield* client.get(`${url}/one`)
      assert.strictEqual(first.status, 200)
      assert.deepStrictEqual(yield* first.json, { path: "/one" })
      const second = yield* client.post(`${url}/two`)
      assert.strictEqual(second.status, 200)
      assert.deepStrictEqual(seen, ["GET /one", "POST /two"])
    }).pipe(Effect.provide(lazyUndici)))

  it.scopedLive("a refused connection fails with the HttpClient's RequestError", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const client = yield* HttpClient.HttpClient
      const error = yield* Effect.flip(client.get(`http://127.0.0.1:${port}/`))
      assert.strictEqual(error._tag, "RequestError")
    }).pipe(Effect.provide(lazyUndici)))
})
